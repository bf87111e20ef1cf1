"""One distillation trial: data -> teacher (trained once, cached) -> student with a temperature method.

`run_trial(config, report=callback)` returns the final metrics; `report` gets one dict per epoch.
"""
from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
import math
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import torch

from . import data as data_mod
from . import methods as methods_mod
from . import models as models_mod
from .errors import UserError, check_range
from .kd import kd_loss
from . import teacher_cache
from .files import digest

OPTIMIZERS = ("sgd", "adamw")
DEVICES = ("auto", "cpu", "cuda")
LR_SCHEDULES = ("cosine", "multistep")
PRECISIONS = ("fp32", "bf16")
EVAL_BN = ("running", "recompute")
MULTISTEP_FRACTIONS = (0.625, 0.75, 0.875)  # the CIFAR KD recipe's 150, 180, 210 of 240 epochs


@dataclass(frozen=True)
class Option:
    """What a trial option allows. SCHEMA below is the one home of these facts: TrialConfig
    validates with it, `hpo-kd distill` derives its flags from it and a study's [train] table its
    keys (`study=True`)."""

    type: type = float
    lo: Optional[float] = None
    hi: Optional[float] = None
    lo_open: bool = False
    hi_open: bool = False
    choices: Optional[Tuple[str, ...]] = None
    help: str = ""
    study: bool = False

    def allowed(self) -> str:
        if self.choices is not None:
            return ", ".join(self.choices)
        left, right = "(" if self.lo_open else "[", ")" if self.hi_open else "]"
        lo = "-inf" if self.lo is None else f"{self.lo:g}"
        hi = "inf" if self.hi is None else f"{self.hi:g}"
        kind = {int: "an integer in ", list: "increasing integers in "}.get(self.type, "")
        return f"{kind}{left}{lo}, {hi}{right}"

    def check(self, key: str, value: Any) -> Any:
        """`value`, or a UserError naming `key` and what is allowed."""
        if self.choices is not None:
            if value not in self.choices:
                raise UserError(f"{key} = {value!r} is not allowed; allowed: {self.allowed()}")
            return value
        if self.type is list:  # a list of integers, increasing, each in range
            if not isinstance(value, (list, tuple)) or any(isinstance(v, bool) or not isinstance(v, int)
                                                           for v in value):
                raise UserError(f"{key} = {value!r}: expected a list of integers; allowed: {self.allowed()}")
            if list(value) != sorted(set(value)):
                raise UserError(f"{key} = {value!r}: expected increasing integers; allowed: {self.allowed()}")
            for v in value:
                Option(int, self.lo, self.hi, self.lo_open, self.hi_open).check(key, v)
            return value
        wanted = (int,) if self.type is int else (int, float)
        if isinstance(value, bool) or not isinstance(value, wanted):
            raise UserError(f"{key} = {value!r}: expected {'an integer' if self.type is int else 'a number'}; "
                            f"allowed: {self.allowed()}")
        try:
            return check_range(key, value, self.lo, self.hi, self.lo_open, self.hi_open)
        except UserError:
            raise UserError(f"{key} = {value!r} is out of range; allowed: {self.allowed()}") from None


SCHEMA: Dict[str, Option] = {
    "split_seed": Option(int, lo=0, help="seed of the train/meta/val split"),
    "fraction": Option(float, lo=0, hi=1, lo_open=True, help="share of the train split"),
    "augment": Option(str, choices=tuple(data_mod.AUGMENTS), help="augmentation level"),
    "tau_t": Option(float, lo=0, lo_open=True, help="teacher temperature (start of a learned one); "
                                                    "default: the method's own"),
    "tau_s": Option(float, lo=0, lo_open=True, help="student temperature; default: the method's own"),
    "alpha": Option(float, lo=0, hi=1, help="weight of the KD term", study=True),
    "optimizer": Option(str, choices=OPTIMIZERS, study=True),
    "lr": Option(float, lo=0, lo_open=True, help="default: per data set", study=True),
    "momentum": Option(float, lo=0, hi=1, hi_open=True, help="SGD momentum", study=True),
    "weight_decay": Option(float, lo=0, study=True),
    "warmup_epochs": Option(int, lo=0, help="linear warm-up before the cosine schedule", study=True),
    "epochs": Option(int, lo=1, help="default: per data set", study=True),
    "batch_size": Option(int, lo=1, help="default: per data set", study=True),
    "teacher_epochs": Option(int, lo=1, help="default: the student's epochs", study=True),
    "teacher_lr": Option(float, lo=0, lo_open=True, help="default: the student's lr", study=True),
    "teacher_optimizer": Option(str, choices=OPTIMIZERS, help="default: the student's", study=True),
    "teacher_batch_size": Option(int, lo=1, help="default: the student's batch size", study=True),
    "lr_schedule": Option(str, choices=LR_SCHEDULES, help="cosine to zero, or multistep (x lr_decay at "
                                                          "each of lr_milestones)", study=True),
    "lr_milestones": Option(list, lo=1, help="epochs where multistep decays (default: 62.5, 75 and 87.5 % "
                                             "of the epochs, e.g. 150, 180, 210 of 240)", study=True),
    "lr_decay": Option(float, lo=0, hi=1, lo_open=True, help="multistep's factor", study=True),
    "seed": Option(int, lo=0, help="the student's seed"),
    "teacher_seed": Option(int, lo=0),
    "device": Option(str, choices=DEVICES),
    "precision": Option(str, choices=PRECISIONS, help="bf16: the forward passes under bf16 autocast (CPU or "
                                                      "CUDA); the KD loss, temperatures and MKD's meta step "
                                                      "stay fp32", study=True),
    "eval_bn": Option(str, choices=EVAL_BN, help="the student's BatchNorm statistics when it is evaluated: running "
                                                  "(PyTorch's running averages, dominated by the last ~10 training "
                                                  "batches, augmented ones included) or recompute (averaged over the "
                                                  "un-augmented train split before each evaluation, as precise BN "
                                                  "does; training is unchanged)", study=True),
    "threads": Option(int, lo=1, help="torch threads (default: torch's)"),
}
STUDY_TRAIN_KEYS = tuple(k for k, o in SCHEMA.items() if o.study)


@dataclass
class TrialConfig:
    dataset: str = "digits"
    root: Optional[str] = None
    data_options: Dict[str, Any] = field(default_factory=dict)  # e.g. mnist1d train_size, test_size
    split_seed: int = 0
    fraction: float = 1.0
    augment: str = "none"
    teacher: Optional[str] = None
    teacher_checkpoint: Optional[str] = None  # a trained teacher's weights (a state_dict file): no training
    student: Optional[str] = None
    method: str = "fixed"
    method_options: Dict[str, Any] = field(default_factory=dict)
    tau_t: Optional[float] = None  # None: the method's own start (e.g. 4 for fixed, the authors' for CTKD)
    tau_s: Optional[float] = None
    alpha: float = 0.9
    optimizer: str = "sgd"
    lr: Optional[float] = None
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_epochs: int = 1
    epochs: Optional[int] = None
    batch_size: Optional[int] = None
    seed: int = 0
    teacher_epochs: Optional[int] = None
    teacher_lr: Optional[float] = None  # None: the student's
    teacher_optimizer: Optional[str] = None  # None: the student's
    teacher_batch_size: Optional[int] = None  # None: the student's
    lr_schedule: str = "cosine"
    lr_milestones: Optional[List[int]] = None  # None: MULTISTEP_FRACTIONS of the epochs
    lr_decay: float = 0.1
    teacher_seed: int = 0
    device: str = "auto"
    precision: str = "fp32"
    eval_bn: str = "running"
    threads: Optional[int] = None
    cache_dir: Optional[str] = None

    def resolved(self) -> "TrialConfig":
        """A copy with every default filled in from the data set's defaults, validated."""
        d = data_mod.train_defaults(self.dataset)  # an unknown name raises with the list of names
        c = dataclasses.replace(self, method_options=dict(self.method_options),
                                data_options=data_mod.check_options(self.dataset, self.data_options))
        for k in ("teacher", "student", "epochs", "batch_size", "lr"):
            if getattr(c, k) is None:
                setattr(c, k, d[k])
        if c.teacher_epochs is None:
            c.teacher_epochs = c.epochs
        if c.cache_dir is None:
            c.cache_dir = os.environ.get("HPO_KD_CACHE", os.path.join(os.getcwd(), ".cache", "hpo_kd"))
        c.validate()
        return c

    def validate(self) -> None:
        for k, opt in SCHEMA.items():
            v = getattr(self, k)
            if v is not None or _FIELD_DEFAULTS[k] is not None:  # None: the default chosen later
                opt.check(k, v)
        if self.teacher_checkpoint is not None and not os.path.isfile(self.teacher_checkpoint):
            raise UserError(f"teacher_checkpoint: file not found: {self.teacher_checkpoint}")
        methods_mod.METHODS.get(self.method)
        for name in (self.teacher, self.student):
            if name not in models_mod.MODELS:
                import timm

                if not timm.is_model(name):
                    models_mod.MODELS.get(name, ["or any timm model name (see timm.list_models())"])


_FIELD_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrialConfig)}
assert set(SCHEMA) <= set(_FIELD_DEFAULTS), "SCHEMA names a field TrialConfig lacks"


def pick_device(requested: str) -> torch.device:
    if requested == "cuda" and not torch.cuda.is_available():
        raise UserError("device 'cuda' was requested but no GPU is available here; allowed: cpu, auto")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)  # timm's Mixup draws from NumPy's global generator
    torch.manual_seed(seed)


# --------------------------------------------------------------------------- evaluation


def autocast(device: torch.device, precision: str):
    """The context of the forward passes: none for fp32, bf16 autocast (CPU or CUDA) for bf16."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def as_input(x: torch.Tensor) -> torch.Tensor:
    """A batch as the models take it: channels_last for images on a GPU (faster convolutions
    with cuDNN), unchanged elsewhere."""
    if x.dim() == 4 and x.is_cuda:
        return x.contiguous(memory_format=torch.channels_last)
    return x


def gpu_ready(model: torch.nn.Module, device: torch.device, image: bool) -> torch.nn.Module:
    """The model on `device`; in channels_last for images on a GPU."""
    model = model.to(device)
    if image and device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model


@torch.no_grad()
def predict(model, x: torch.Tensor, prepare, batch_size: int = 1024, precision: str = "fp32") -> torch.Tensor:
    """The model's fp32 logits for `x`, in chunks, in eval mode (under autocast for bf16)."""
    was = model.training
    model.eval()
    dev = next(model.parameters()).device  # the split may live elsewhere (e.g. on the CPU)
    chunks = [slice(i, i + batch_size) for i in range(0, len(x), batch_size)]
    with autocast(dev, precision):
        out = [model(as_input(prepare(xb.to(dev, non_blocking=True)))).float()
               for xb in data_mod.take(x, chunks, dev)]
    model.train(was)
    return torch.cat(out)


def accuracy(model, split, prepare, precision: str = "fp32") -> float:
    x, y = split
    return (predict(model, x, prepare, precision=precision).argmax(-1).to(y.device) == y).float().mean().item()


@contextlib.contextmanager
def recomputed_bn(model, x: torch.Tensor, prepare, precision: str = "fp32", chunk: int = 1024):
    """Inside: every BatchNorm of `model` holds statistics recomputed on the inputs `x` (the clean
    train split), as "precise BN" does, instead of its running averages. On leaving, the running
    statistics, momenta and modes are restored, so training goes on as if nothing happened.

    Each layer's statistics are the sample-weighted average of the chunks' batch statistics,
    computed in train mode for the BatchNorms only (dropout and the like stay off), in a fixed
    order (one seeded permutation), without gradients. (torch.optim.swa_utils.update_bn does the
    recomputation for a finished model: it puts the whole model in train mode, weights every batch
    alike and keeps the new statistics; here they are temporary, between training epochs.)"""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
           and m.track_running_stats]
    if not bns:
        yield model
        return
    saved = [(m.momentum, m.training, {k: b.clone() for k, b in m.named_buffers(recurse=False)}) for m in bns]
    was = model.training
    dev = next(model.parameters()).device
    try:
        model.eval()
        for m in bns:
            m.train()
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
        chunks = [order[i : i + chunk] for i in range(0, len(x), chunk)]
        seen = 0
        with torch.no_grad(), autocast(dev, precision):
            for idx, xb in zip(chunks, data_mod.take(x, chunks, dev)):
                n = len(idx)
                for m in bns:  # running = (1 - momentum) * running + momentum * this chunk's statistic
                    m.momentum = n / (seen + n)
                model(as_input(prepare(xb)))
                seen += n
        for m in bns:
            m.eval()
        yield model
    finally:
        for m, (momentum, training, buffers) in zip(bns, saved):
            m.momentum = momentum
            for k, b in buffers.items():
                getattr(m, k).copy_(b)
        model.train(was)
        for m, (_, training, _) in zip(bns, saved):
            m.train(training)


# --------------------------------------------------------------------------- teachers


def teacher_key(c: TrialConfig, bundle) -> Dict[str, Any]:
    """Everything that determines a teacher's weights (for a checkpoint: the file's hash) and
    its accuracies (the data)."""
    if c.teacher_checkpoint:
        from .models.checkpoint import file_hash

        return teacher_cache.key(bundle.key, c.teacher, checkpoint=file_hash(c.teacher_checkpoint))
    t = teacher_config(c)
    schedule = {} if t.lr_schedule == "cosine" else {  # absent for cosine: older keys stay valid
        "lr_schedule": t.lr_schedule, "lr_milestones": milestones(t), "lr_decay": t.lr_decay}
    if t.precision != "fp32":  # likewise
        schedule["precision"] = t.precision
    return teacher_cache.key(
        bundle.key, t.teacher, epochs=t.epochs, optimizer=t.optimizer, lr=t.lr, momentum=t.momentum,
        weight_decay=t.weight_decay, warmup_epochs=t.warmup_epochs, batch_size=t.batch_size, seed=t.seed,
        **schedule,
    )


def teacher_config(c: TrialConfig) -> TrialConfig:
    """How the teacher of `c` is trained: cross-entropy only, with the teacher's epochs, seed,
    optimizer and lr (the student's where the teacher has none of its own)."""
    return dataclasses.replace(
        c, method="nokd", method_options={}, tau_t=None, tau_s=None, epochs=c.teacher_epochs, seed=c.teacher_seed,
        eval_bn="running",  # a teacher is used, and evaluated, with its running statistics
        lr=c.teacher_lr or c.lr, optimizer=c.teacher_optimizer or c.optimizer,
        batch_size=c.teacher_batch_size or c.batch_size)


def milestones(c: TrialConfig) -> List[int]:
    """The epochs after which a multistep schedule decays."""
    if c.lr_milestones is not None:
        return list(c.lr_milestones)
    return [max(1, round(f * c.epochs)) for f in MULTISTEP_FRACTIONS]


def get_teacher(c: TrialConfig, bundle, device, log: Callable[[str], None] = lambda m: None):
    """Load the teacher for this config from the cache, training it (once) if missing.

    Returns (model in eval mode without grad, info dict with val/test accuracy and `cached`)."""
    key = teacher_key(c, bundle)
    path = teacher_cache.path(c.cache_dir, c.teacher, key)
    # The key promises that teacher_seed fixes the weights: seed the initialisation (and Mixup's
    # NumPy draws) rather than inheriting whatever state the global generators are in.
    seed_everything(c.teacher_seed)
    model = models_mod.create(c.teacher, bundle.input_shape, bundle.num_classes)

    def load() -> Dict[str, Any]:
        from .models.checkpoint import load_weights

        t0 = time.perf_counter()
        src = load_weights(model, c.teacher_checkpoint)
        log(f"teacher {c.teacher} from {c.teacher_checkpoint} ({src['keys']} tensors, sha256 {src['sha256']})")
        model.to(device)
        return {"val_acc": accuracy(model, bundle.splits["val"], bundle.prepare, c.precision),
                "test_acc": accuracy(model, bundle.splits["test"], bundle.prepare, c.precision),
                "seconds": time.perf_counter() - t0, "epochs_run": 0, "checkpoint": src["path"]}

    def train() -> Dict[str, Any]:
        if c.teacher_checkpoint:
            return load()
        log(f"training teacher {c.teacher} ({os.path.basename(path)}) for {c.teacher_epochs} epochs")
        tc = teacher_config(c)
        info = fit(model, bundle, methods_mod.create("nokd"), None, tc, device, None, every_epoch=False)
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


# --------------------------------------------------------------------------- the training loop


def _batches(n: int, batch_size: int, gen: torch.Generator):
    perm = torch.randperm(n, generator=gen)
    stop = n - n % batch_size if n >= batch_size else n  # drop the ragged last batch
    for i in range(0, stop, batch_size):
        yield perm[i : i + batch_size]


def make_optimizer(c: TrialConfig, model, extra_params):
    """The student's optimizer over `model` (or a list of models, one optimizer for all: the update
    is per tensor) and a method's extra parameters (without weight decay)."""
    nets = model if isinstance(model, (list, tuple)) else [model]
    groups = [{"params": [p for net in nets for p in net.parameters() if p.requires_grad]}]
    if extra_params:
        groups.append({"params": list(extra_params), "weight_decay": 0.0})
    params = [p for g in groups for p in g["params"]]
    # torch's fused kernels (one call for all tensors; CPU and CUDA) do the same update as the
    # per-tensor loop, ~7 % faster a step for the small students here; elsewhere (e.g. MPS), or while
    # a method's parameter is still on another device than the model's, the loop.
    fused = all(p.device == params[0].device and p.device.type in ("cpu", "cuda") and p.is_floating_point()
                for p in params)
    if c.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay, fused=fused)
    return torch.optim.AdamW(groups, lr=c.lr, weight_decay=c.weight_decay, fused=fused)


def make_scheduler(optimizer, total_steps: int, warmup_steps: int, schedule: str = "cosine",
                   decay_steps: Tuple[int, ...] = (), decay: float = 0.1):
    """Per-step learning rate: linear warm-up from 1 % of the base rate, then cosine to zero, or
    (multistep) the base rate times `decay` after each of `decay_steps`."""
    sched = torch.optim.lr_scheduler
    if schedule == "multistep":
        def factor(step: int) -> float:
            warm = 0.01 + 0.99 * step / warmup_steps if step < warmup_steps else 1.0
            return warm * decay ** sum(step >= m for m in decay_steps)

        return sched.LambdaLR(optimizer, factor)
    cosine = sched.CosineAnnealingLR(optimizer, T_max=max(total_steps - warmup_steps, 1))
    if warmup_steps <= 0:
        return cosine
    warm = sched.LinearLR(optimizer, start_factor=0.01, end_factor=1.0, total_iters=warmup_steps)
    return sched.SequentialLR(optimizer, [warm, cosine], milestones=[warmup_steps])


# Teacher logits of un-augmented training data, per process: a reused Ray actor runs many trials
# with the same teacher and data, and the logits are a pure function of (teacher file, data).
_LOGITS: "collections.OrderedDict[str, torch.Tensor]" = collections.OrderedDict()
_LOGITS_KEEP = 4


def teacher_logits(teacher, x, prepare, key: Optional[str], precision: str = "fp32") -> torch.Tensor:
    """`predict(teacher, x)`, remembered under `key` (None: not remembered)."""
    if key is not None and key in _LOGITS:
        _LOGITS.move_to_end(key)
        return _LOGITS[key]
    out = predict(teacher, x, prepare, precision=precision)
    if key is not None:
        _LOGITS[key] = out
        while len(_LOGITS) > _LOGITS_KEEP:
            _LOGITS.popitem(last=False)
    return out


# Teacher logits of augmented batches, per process. Trials with the same data, seed, batch size,
# epochs and augmentation draw the same batches whatever their temperatures (the batches and the
# augmentation come from the seed's generators, not from the model): the grid's temperatures, no-KD,
# DTS, CTKD and MKD of one seed all show the teacher the same inputs. The first trial records the
# teacher's logits step by step; a later one reuses a step's logits only where its input matches
# the recorded input's fingerprint, and asks the teacher otherwise. CPU only (on a GPU the teacher's
# forward is cheap next to the memory a CIFAR run's logits would take), within a size budget.
_AUG_LOGITS: "collections.OrderedDict[str, List[Tuple[torch.Tensor, torch.Tensor]]]" = collections.OrderedDict()
_AUG_LOGITS_BYTES = 512 * 2**20


def _fingerprint(x: torch.Tensor) -> torch.Tensor:
    """Three sums (plain, weighted by position, weighted by sample) that tell batches apart: equal
    fingerprints mean (all but surely) equal inputs."""
    flat = x.reshape(len(x), -1).double()
    by_pos = torch.arange(1, flat.shape[1] + 1, dtype=torch.float64, device=x.device)
    by_sample = torch.arange(1, len(x) + 1, dtype=torch.float64, device=x.device)
    return torch.stack([flat.sum(), (flat @ by_pos).sum(), (flat.sum(1) * by_sample).sum()])


class _AugmentedTeacher:
    """The teacher's logits of each augmented training batch, recorded or replayed (see _AUG_LOGITS)."""

    def __init__(self, teacher, key: Optional[str], n_steps: int, out_dim: int, batch: int, device):
        self.teacher, self.key, self.step = teacher, key, 0
        size = n_steps * batch * out_dim * 4
        self.enabled = key is not None and device.type == "cpu" and size <= _AUG_LOGITS_BYTES
        self.replay = _AUG_LOGITS.get(key) if self.enabled else None
        self.record: Optional[List] = [] if self.enabled and self.replay is None else None
        self.reused = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        i, self.step = self.step, self.step + 1
        fp = _fingerprint(x) if self.enabled else None
        if self.replay is not None and i < len(self.replay):
            seen_fp, z = self.replay[i]
            if torch.equal(seen_fp, fp) and len(z) == len(x):
                self.reused += 1
                return z
        with torch.no_grad():
            z = self.teacher(x).float()
        if self.record is not None:
            self.record.append((fp, z))
        return z

    def finish(self, complete: bool) -> None:
        """Keep a complete recording for the next trials of this process."""
        if self.record is not None and complete:
            _AUG_LOGITS[self.key] = self.record
            while len(_AUG_LOGITS) > 1 and sum(len(r) * r[0][1].numel() * 4 for r in _AUG_LOGITS.values()
                                               if r) > _AUG_LOGITS_BYTES:
                _AUG_LOGITS.popitem(last=False)
        elif self.key in _AUG_LOGITS:
            _AUG_LOGITS.move_to_end(self.key)


@dataclass
class Member:
    """One student of a training run: its model, temperature method and per-epoch callback, and
    what its training produced (filled in by `fit_members`)."""

    model: Any
    method: Any
    report: Optional[Callable[[Dict[str, Any]], None]] = None
    use_kd: bool = False
    alpha: float = 0.0
    history: List[Dict[str, Any]] = field(default_factory=list)
    best: Dict[str, Any] = field(default_factory=lambda: {"val_acc": -1.0})
    status: str = "ok"
    error: Optional[str] = None
    seconds: float = 0.0
    sums: Dict[str, float] = field(default_factory=dict)
    seen: int = 0


def fit(model, bundle, method, teacher, c: TrialConfig, device, report,
        logits_key: Optional[str] = None, every_epoch: bool = True) -> Dict[str, Any]:
    """Train `model` on `bundle` with `method` (KD from `teacher` if the method uses it).
    `logits_key` names the teacher and data, so that the teacher's logits are computed once per
    process. `every_epoch=False`: val and test accuracy after the last epoch only (a teacher keeps
    its last weights and records only their accuracy; evaluating leaves training unchanged)."""
    return fit_members([Member(model, method, report)], bundle, teacher, c, device, logits_key,
                       every_epoch, group=False)[0]


def fit_members(members: List[Member], bundle, teacher, c: TrialConfig, device,
                logits_key: Optional[str] = None, every_epoch: bool = True, group: bool = False
                ) -> List[Dict[str, Any]]:
    """Train every member on the same batches (same seed, same augmentation draws, same teacher
    outputs) in lockstep, the step's shared work (batch, augmentation, teacher, learning rate)
    done once. `group=True`: the members' forward and backward run as one `GroupedStudents`
    model, which gives each member bitwise the numbers it gets alone (see hpo_kd.models.grouped;
    the caller checks that this holds here). Otherwise there must be one member.
    A member whose loss or accuracy turns non-finite stops as `diverged`; the others go on."""
    assert group or len(members) == 1
    image = len(bundle.input_shape) == 3
    for m in members:
        m.model = gpu_ready(m.model, device, image).train()
        m.use_kd = m.method.uses_kd and teacher is not None
        m.alpha = c.alpha if m.use_kd else 0.0
    x_tr, y_tr = (t.to(device) for t in bundle.splits["train"])
    amp = c.precision
    prepare, augment = bundle.prepare, bundle.augmenter
    n = len(y_tr)
    steps_per_epoch = max(1, n // c.batch_size)  # a ragged last batch is dropped (see _batches)
    gen = torch.Generator().manual_seed(c.seed)
    use_kd = any(m.use_kd for m in members)

    # Teacher logits of the un-augmented training data, computed once per trial, unless they would
    # outgrow the memory budget (a large image folder): then the teacher sees each batch.
    cached_logits, aug_teacher = None, None
    if use_kd and augment.level == "none" and n * bundle.num_classes * 4 <= _AUG_LOGITS_BYTES:
        cached_logits = teacher_logits(teacher, x_tr, prepare, logits_key, amp)
    elif use_kd:
        aug_key = None if logits_key is None else (
            f"{logits_key}|{augment.level}|seed={c.seed}|batch={c.batch_size}|epochs={c.epochs}|{amp}")
        aug_teacher = _AugmentedTeacher(teacher, aug_key, c.epochs * steps_per_epoch, bundle.num_classes,
                                        c.batch_size, device)

    def meta_batches(augmented: bool = False):  # only a method that asks for meta batches pays for the copy
        """Batches of the meta split, forever; `augmented`: through the trial's augmentation, with
        its own generators (Mixup's NumPy draws included), so the training batches stay as they are."""
        meta_split = tuple(t.to(device) for t in bundle.splits["meta"])
        mgen = torch.Generator().manual_seed(c.seed + 7919)
        np_state = np.random.RandomState(c.seed + 7919).get_state()
        while True:
            order = list(_batches(len(meta_split[1]), c.batch_size, mgen))
            for idx, xb in zip(order, data_mod.take(meta_split[0], order, device)):
                x, y = prepare(xb), meta_split[1][idx]
                if augmented:
                    train_state = np.random.get_state()
                    np.random.set_state(np_state)
                    x, y = augment(x, y, mgen)
                    np_state = np.random.get_state()
                    np.random.set_state(train_state)
                yield as_input(x), y

    # One optimizer over every member's parameters: its update is per tensor, so each member's
    # parameters move exactly as under an optimizer of their own.
    optimizer = make_optimizer(c, [m.model for m in members], [p for m in members for p in m.method.parameters()])
    total = c.epochs * steps_per_epoch
    scheduler = make_scheduler(optimizer, total, min(c.warmup_epochs * steps_per_epoch, total - 1), c.lr_schedule,
                               tuple(s * steps_per_epoch for s in milestones(c)), c.lr_decay)
    for m in members:
        m.method.setup(methods_mod.TrialContext(
            model=m.model,
            epochs=c.epochs,
            steps_per_epoch=steps_per_epoch,
            alpha=m.alpha,
            device=device,
            meta_batches=meta_batches,
            lr=lambda: optimizer.param_groups[0]["lr"],
            precision=amp,
        ))
    active = list(members)
    grouped = _regroup(active, group)
    start = time.perf_counter()
    step = 0

    def stop(m: Member, message: str) -> None:
        m.status, m.error = "diverged", message
        for p in list(m.model.parameters()) + list(m.method.parameters()):
            p.grad = None  # the optimizer skips a parameter without a gradient
        active.remove(m)

    for epoch in range(1, c.epochs + 1):
        if not active:
            break
        t0 = time.perf_counter()
        for m in active:
            m.method.start_epoch(epoch)
            m.sums, m.seen = {}, 0
        in_epoch = len(active)
        # The epoch's batches are drawn up front (the same draws as one by one), so that a
        # split read from disk can decode ahead of the loop.
        order = list(_batches(n, c.batch_size, gen))
        for idx, xb in zip(order, data_mod.take(x_tr, order, device)):
            if not active:
                break
            x, y = prepare(xb), y_tr[idx]
            z_t = None
            if cached_logits is not None:
                z_t = cached_logits[idx]
            x, target = augment(x, y, gen)
            x = as_input(x)
            with autocast(device, amp):  # the forward passes; the loss below is fp32
                if aug_teacher is not None:
                    z_t = aug_teacher(x)
                if grouped is None:  # one member: its own module
                    z_all = [active[0].model(x).float()]
                else:
                    out = grouped(x).float()
                    z_all = [out[g] for g in range(len(active))]
            if z_t is not None and len(z_t) != len(z_all[0]):  # augmentation shortened the batch
                z_t = z_t[: len(z_all[0])]
            optimizer.zero_grad(set_to_none=True)
            infos = []
            for m, z_s in zip(active, z_all):
                tau_t, tau_s = m.method.temperatures()
                zt_m = z_t if m.use_kd else None
                losses = kd_loss(z_s, zt_m, target, tau_t, tau_s, m.alpha)  # alpha = 0: CE only
                infos.append(methods_mod.Step(
                    epoch=epoch, step=step, x=x, target=target, student_logits=z_s,
                    teacher_logits=zt_m, losses=losses, tau_t=tau_t, tau_s=tau_s,
                    lr=optimizer.param_groups[0]["lr"],
                ))
            if grouped is None:
                active[0].method.backward(infos[0])
            else:  # each member's gradient is its own loss's: the sum's derivative is 1 for each
                sum(info.losses["loss"] for info in infos).backward()
            # Loss terms as Python floats for the epoch sums, in one device->host copy (the NaN
            # check below needs the value anyway; per-term tensor sums cost ~30 us a step).
            flat = torch.stack([v.detach() for info in infos for v in info.losses.values()]).tolist()
            k = len(infos[0].losses)
            values = [dict(zip(info.losses, flat[i * k:(i + 1) * k])) for i, info in enumerate(infos)]
            entries = list(zip(active, infos, values))
            for m, _, v in entries:
                if not math.isfinite(v["loss"]):  # stopped before its optimizer step, as alone
                    stop(m, f"non-finite loss ({v['loss']}) at epoch {epoch}, step {step}")
            if len(active) < len(entries):
                entries = [e for e in entries if e[0] in active]
                grouped = _regroup(active, group, grouped)
            optimizer.step()
            scheduler.step()
            for m, info, v in entries:
                m.method.observe(info)
                b = len(x)
                for key, val in v.items():
                    m.sums[key] = m.sums.get(key, 0.0) + val * b
                m.seen += b
            step += 1
        if grouped is not None:
            grouped.sync()
        train_seconds = (time.perf_counter() - t0) / max(in_epoch, 1)  # each member's share
        for m in list(active):
            t1 = time.perf_counter()
            if every_epoch or epoch == c.epochs:
                with (recomputed_bn(m.model, x_tr, prepare, amp) if c.eval_bn == "recompute"
                      else contextlib.nullcontext()):
                    val_acc = accuracy(m.model, bundle.splits["val"], prepare, amp)
                    test_acc = accuracy(m.model, bundle.splits["test"], prepare, amp)
            else:
                val_acc = test_acc = None
            tt, ts = m.method.current()
            row = {
                "epoch": epoch,
                **{f"train_{k}": float(v) / max(m.seen, 1) for k, v in m.sums.items()},
                "val_acc": val_acc,
                "test_acc": test_acc,
                "tau_t": tt,
                "tau_s": ts,
                "lr": optimizer.param_groups[0]["lr"],
                "epoch_seconds": train_seconds + time.perf_counter() - t1,
                "samples_per_s": m.seen / max(train_seconds, 1e-9),
                **m.method.epoch_metrics(),
            }
            m.seconds += row["epoch_seconds"]
            if val_acc is not None and not all(math.isfinite(row[k]) for k in ("val_acc", "test_acc")):
                stop(m, f"non-finite accuracy at epoch {epoch}")
                grouped = _regroup(active, group, grouped)
                continue
            m.history.append(row)
            if val_acc is not None and val_acc > m.best["val_acc"]:
                m.best = {"val_acc": val_acc, "test_acc": test_acc, "epoch": epoch}
            if m.report is not None:
                m.report(row)
    if aug_teacher is not None:
        aug_teacher.finish(any(m.status == "ok" and len(m.history) == c.epochs for m in members))
    if len(members) == 1:  # one member: its seconds are the whole run's, set-up included
        members[0].seconds = time.perf_counter() - start
    return [_result(m, device) for m in members]


def _regroup(active: List[Member], group: bool, old=None):
    """The GroupedStudents of the active members (None: one member, or no grouping: its module)."""
    if old is not None:
        old.sync()
    if not group or len(active) < 2:
        return None
    from .models.grouped import GroupedStudents

    return GroupedStudents([m.model for m in active])


def _result(m: Member, device) -> Dict[str, Any]:
    ok = m.status == "ok"
    last = m.history[-1] if m.history else {}
    tt, ts = m.method.current()
    return {
        "status": m.status,
        "error": m.error,
        "val_acc": last.get("val_acc") if ok else None,
        "test_acc": last.get("test_acc") if ok else None,
        "best_val_acc": m.best["val_acc"] if ok else None,
        "test_at_best_val": m.best.get("test_acc") if ok else None,
        "best_epoch": m.best.get("epoch"),
        "tau_t": tt,
        "tau_s": ts,
        "epochs_run": len(m.history),
        "seconds": m.seconds,
        "device": str(device),
        "history": m.history,
        "method_state": m.method.state_dict() if ok else None,
    }


# --------------------------------------------------------------------------- one trial


# What the students of one group may differ in: their temperature method and its options. Everything
# else (data, split, seed, teacher, student, recipe) they share, and with it every batch.
GROUP_FREE = ("method", "method_options", "tau_t", "tau_s")


def group_key(config: TrialConfig | Dict[str, Any]) -> str:
    """Trials with the same key can train in one group (`run_trials`)."""
    c = dataclasses.asdict(_as_config(config)) if not isinstance(config, dict) else dict(config)
    return json.dumps({k: v for k, v in sorted(c.items()) if k not in GROUP_FREE}, sort_keys=True, default=str)


def _as_config(config: TrialConfig | Dict[str, Any]) -> TrialConfig:
    if isinstance(config, dict):
        unknown = set(config) - {f.name for f in dataclasses.fields(TrialConfig)}
        if unknown:
            raise UserError(
                f"unknown trial option(s) {', '.join(sorted(unknown))}; allowed: "
                + ", ".join(f.name for f in dataclasses.fields(TrialConfig))
            )
        config = TrialConfig(**config)
    return config


def run_trial(
    config: TrialConfig | Dict[str, Any],
    report: Optional[Callable[[Dict[str, Any]], None]] = None,
    log: Callable[[str], None] = lambda m: None,
) -> Dict[str, Any]:
    """Run one distillation trial; `report(row)` is called after every epoch.

    Returns the final metrics (status `ok` or `diverged`, accuracies, final temperatures, ...)."""
    return run_trials([config], [report], log)[0]


def run_trials(
    configs: List[TrialConfig | Dict[str, Any]],
    reports: Optional[List[Optional[Callable[[Dict[str, Any]], None]]]] = None,
    log: Callable[[str], None] = lambda m: None,
) -> List[Dict[str, Any]]:
    """Run trials that differ only in their temperature method (GROUP_FREE): one data set, seed,
    teacher and student. The data and the teacher are loaded once. The students whose methods
    train in a group (`TemperatureMethod.trains_in_group`) train together as one
    `GroupedStudents` model when their architecture allows it and a bitwise check of one step
    passes on this machine; the others, and all of them otherwise, one after the other. Either way
    each result is bitwise the one `run_trial` gives for its config alone."""
    cs = [_as_config(c).resolved() for c in configs]
    reports = list(reports) if reports is not None else [None] * len(cs)
    keys = {group_key(dataclasses.replace(c, cache_dir=None)) for c in cs}
    if len(keys) > 1:
        raise ValueError(f"run_trials: the trials differ in more than {', '.join(GROUP_FREE)}")
    c0 = cs[0]
    device = pick_device(c0.device)
    if c0.threads:
        torch.set_num_threads(c0.threads)
    bundle = on_device(data_mod.load(c0.dataset, seed=c0.split_seed, fraction=c0.fraction, augment=c0.augment,
                                     root=c0.root, **c0.data_options), device)
    methods = [make_method(c) for c in cs]
    teacher, tinfo = None, None
    if any(m.uses_kd for m in methods):
        teacher, tinfo = get_teacher(c0, bundle, device, log)
    logits_key = f"{tinfo['path']}|{digest(bundle.key)}|{device}" if tinfo else None
    image = len(bundle.input_shape) == 3

    counted = []

    def student():  # seeded as a trial alone seeds it: every student of a seed starts the same
        seed_everything(c0.seed)
        model = models_mod.create(c0.student, bundle.input_shape, bundle.num_classes)
        counted.append(models_mod.count_parameters(model))
        return gpu_ready(model, device, image)

    results: List[Optional[Dict[str, Any]]] = [None] * len(cs)
    together = [i for i, m in enumerate(methods) if type(m).trains_in_group()]
    if len(together) >= 2:
        students = [student() for _ in together]
        reason = "bf16 autocast" if c0.precision != "fp32" else _check_group(students, bundle, c0, device)
        if reason is None:
            members = [Member(s, methods[i], reports[i]) for s, i in zip(students, together)]
            for i, r in zip(together, fit_members(members, bundle, teacher, c0, device, logits_key, group=True)):
                results[i] = dict(r, grouped=len(together))
        else:
            log(f"{len(together)} students of one seed train one by one ({reason})")
    for i, m in enumerate(methods):
        if results[i] is None:
            results[i] = dict(fit(student(), bundle, m, teacher, c0, device, reports[i], logits_key), grouped=1)
    for r, m in zip(results, methods):
        used = tinfo if m.uses_kd else None  # a student without KD has no teacher, in a group too
        r["teacher_val_acc"] = used["val_acc"] if used else None
        r["teacher_test_acc"] = used["test_acc"] if used else None
        r["teacher_cached"] = used["cached"] if used else None
        r["student_params"] = counted[0]
    return results


def _check_group(students, bundle, c: TrialConfig, device) -> Optional[str]:
    """None if `students` can train as one group here; otherwise why not (see models.grouped)."""
    from .models import grouped

    x_tr, y_tr = bundle.splits["train"]
    idx = torch.arange(min(c.batch_size, len(y_tr)))
    x = as_input(bundle.prepare(next(iter(data_mod.take(x_tr, [idx], device)))))
    return grouped.groupable(students, x, y_tr[idx].to(device))


def on_device(bundle, device: torch.device):
    """On a GPU: every in-memory split resident on the device (copied once, from pinned memory; a
    split streamed from disk stays there), and cuDNN free to pick the fastest convolution for the
    shapes (cudnn.benchmark). A CPU bundle is returned as it is."""
    if device.type != "cuda":
        return bundle
    torch.backends.cudnn.benchmark = True
    bundle.splits = {k: (x.pin_memory().to(device, non_blocking=True) if isinstance(x, torch.Tensor) else x,
                         y.to(device)) for k, (x, y) in bundle.splits.items()}
    return bundle


def make_method(c: TrialConfig):
    """The trial's temperature method: the temperatures it was given (a method that has no such
    temperature rejects one, naming what it allows) and its options."""
    taus = {k: getattr(c, k) for k in ("tau_t", "tau_s") if getattr(c, k) is not None}
    return methods_mod.create(c.method, **taus, **c.method_options)


def train_teacher(config: TrialConfig | Dict[str, Any], log=lambda m: None) -> Dict[str, Any]:
    """Make sure the teacher of `config` is in the cache; returns its info (accuracies, cached)."""
    c = (TrialConfig(**config) if isinstance(config, dict) else config).resolved()
    device = pick_device(c.device)
    if c.threads:
        torch.set_num_threads(c.threads)
    bundle = on_device(data_mod.load(c.dataset, seed=c.split_seed, fraction=c.fraction, augment=c.augment,
                                     root=c.root, **c.data_options), device)
    _, info = get_teacher(c, bundle, device, log)
    return info
