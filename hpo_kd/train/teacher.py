"""Teachers: what determines one (its cache key), how it is trained, and getting it from the cache."""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any, Callable, Dict

from .. import methods as methods_mod
from .. import models as models_mod
from .. import teacher_cache
from ..errors import UserError
from .config import TrialConfig
from .evaluate import accuracy
from .loop import fit
from .optim import milestones
from .runtime import gpu_ready, load_data, on_device, seed_everything


def teacher_key(c: TrialConfig, bundle) -> Dict[str, Any]:
    """Everything that determines a teacher's weights (for a checkpoint: the file's hash) and
    its accuracies (the data)."""
    if c.teacher_checkpoint:
        from ..models.checkpoint import file_hash

        return teacher_cache.key(teacher_data_key(c, bundle), c.teacher, checkpoint=file_hash(c.teacher_checkpoint))
    t = teacher_config(c)
    schedule = (
        {}
        if t.lr_schedule == "cosine"
        else {  # absent for cosine: older keys stay valid
            "lr_schedule": t.lr_schedule,
            "lr_milestones": milestones(t),
            "lr_decay": t.lr_decay,
        }
    )
    if t.precision != "fp32":  # likewise
        schedule["precision"] = t.precision
    return teacher_cache.key(
        teacher_data_key(c, bundle),
        t.teacher,
        epochs=t.epochs,
        optimizer=t.optimizer,
        lr=t.lr,
        momentum=t.momentum,
        weight_decay=t.weight_decay,
        warmup_epochs=t.warmup_epochs,
        batch_size=t.batch_size,
        seed=t.seed,
        **schedule,
    )


def teacher_config(c: TrialConfig) -> TrialConfig:
    """How the teacher of `c` is trained: cross-entropy only, with the teacher's epochs, seed,
    optimizer and lr (the student's where the teacher has none of its own)."""
    return dataclasses.replace(
        c,
        method="nokd",
        method_options={},
        tau_t=None,
        tau_s=None,
        epochs=c.teacher_epochs,
        seed=c.teacher_seed,
        eval_bn="running",  # a teacher is used, and evaluated, with its running statistics
        lr=c.teacher_lr or c.lr,
        optimizer=c.teacher_optimizer or c.optimizer,
        batch_size=c.teacher_batch_size or c.batch_size,
    )


def _teacher_data(c: TrialConfig):
    """The teacher's share of the train split and its augmentation (the student's by default)."""
    return (c.fraction if c.teacher_fraction is None else c.teacher_fraction), (c.teacher_augment or c.augment)


def teacher_data_key(c: TrialConfig, bundle) -> Dict[str, Any]:
    """The key of the data the teacher of `c` trains on, from the student's bundle without loading
    the teacher's: `load` keys a bundle by its fraction and augmentation beside the rest."""
    fraction, augment = _teacher_data(c)
    if fraction == c.fraction and augment == c.augment:
        return bundle.key
    return dict(bundle.key, fraction=fraction, augment=augment)


def teacher_bundle(c: TrialConfig, bundle, device):
    """The data the teacher of `c` trains on: the student's bundle, unless `teacher_fraction` or
    `teacher_augment` differ from the student's. The split seed is the same, so meta, val and test
    are the student's; only the train split (its share) and its augmentation change."""
    fraction, augment = _teacher_data(c)
    if fraction == c.fraction and augment == c.augment:
        return bundle
    from .. import data as data_mod

    own = data_mod.load(c.dataset, seed=c.split_seed, fraction=fraction, augment=augment, root=c.root, **c.data_options)
    return on_device(own, device)


def get_teacher(c: TrialConfig, bundle, device, log: Callable[[str], None] = lambda m: None):
    """Load the teacher for this config from the cache, training it (once) if missing.

    Returns (model in eval mode without grad, info dict with val/test accuracy and `cached`)."""
    key = teacher_key(c, bundle)  # the teacher's own data is loaded only if it must be trained
    path = teacher_cache.path(c.cache_dir, c.teacher, key)
    # The key promises that teacher_seed fixes the weights: seed the initialisation (and Mixup's
    # NumPy draws) rather than inheriting whatever state the global generators are in.
    seed_everything(c.teacher_seed)
    model = models_mod.create(c.teacher, bundle.input_shape, bundle.num_classes)

    def load() -> Dict[str, Any]:
        from ..models.checkpoint import load_weights

        t0 = time.perf_counter()
        src = load_weights(model, c.teacher_checkpoint)
        log(f"teacher {c.teacher} from {c.teacher_checkpoint} ({src['keys']} tensors, sha256 {src['sha256']})")
        model.to(device)
        return {
            "val_acc": accuracy(model, bundle.splits["val"], bundle.prepare, c.precision),
            "test_acc": accuracy(model, bundle.splits["test"], bundle.prepare, c.precision),
            "seconds": time.perf_counter() - t0,
            "epochs_run": 0,
            "checkpoint": src["path"],
        }

    def train() -> Dict[str, Any]:
        if c.teacher_checkpoint:
            return load()
        log(f"training teacher {c.teacher} ({os.path.basename(path)}) for {c.teacher_epochs} epochs")
        tc = teacher_config(c)
        own = teacher_bundle(c, bundle, device)
        info = fit(model, own, methods_mod.create("nokd"), None, tc, device, None, every_epoch=False)
        if info["status"] != "ok":
            raise UserError(
                f"teacher {c.teacher} training {info['status']}: {info.get('error', '')}; "
                f"try a lower teacher_lr (now {tc.lr:g}) or another teacher_optimizer"
            )
        return {k: info[k] for k in ("val_acc", "test_acc", "seconds", "epochs_run")}

    info, cached = teacher_cache.get_or_train(path, model, train, key)
    model = models_mod.fold_batchnorm(gpu_ready(model, device, len(bundle.input_shape) == 3).eval())
    for p in model.parameters():
        p.requires_grad_(False)
    return model, dict(info, cached=cached, path=path)


def train_teacher(config: TrialConfig | Dict[str, Any], log=lambda m: None) -> Dict[str, Any]:
    """Make sure the teacher of `config` is in the cache; returns its info (accuracies, cached)."""
    c = (TrialConfig(**config) if isinstance(config, dict) else config).resolved()
    device, bundle = load_data(c)
    _, info = get_teacher(c, bundle, device, log)
    return info
