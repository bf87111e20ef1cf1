"""What every data set shares: the registry, the reader's `RawData`, the trial's `DataBundle`, and
`load`, which draws deterministic stratified train / meta / val / test splits.

`load(name, seed=0, fraction=1.0, augment="none", root=None)` returns a `DataBundle` whose splits
are in-memory tensors (or, for a large image folder, `stream.ImageFiles` read batch by batch;
`take` gives the batches of either). `meta` is the held-out slice MKD's meta objective uses, `val` selects
hyper-parameters, `test` is only reported.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional, Tuple

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from ..errors import UserError, check_range
from ..files import hasher, short
from ..registry import Registry
from .augment import AUGMENTS, Augmenter, make_augmenter
from .stream import ImageFiles, take  # noqa: F401  (take: the trainer's batches)

DATASETS = Registry("data set")

# Share of the non-test pool that goes to each held-out split (the rest is `train`).
META_SHARE = 0.10
VAL_SHARE = 0.15
# Used when a data set has no official test split.
TEST_SHARE = 0.20

SPLITS = ("train", "meta", "val", "test")


@dataclass
class DataBundle:
    name: str
    kind: str  # "image" or "signal"
    input_shape: Tuple[int, ...]
    num_classes: int
    splits: Dict[str, Tuple[torch.Tensor, torch.Tensor]]
    augmenter: Augmenter
    key: Dict[str, object] = field(default_factory=dict)
    # Turns a stored batch (e.g. uint8 images) into the float input of a model.
    prepare: Callable[[torch.Tensor], torch.Tensor] = staticmethod(lambda x: x)

    def size(self, split: str) -> int:
        return len(self.splits[split][1])

    def fingerprint(self) -> str:
        """Hash of the stored tensors; two loads with the same arguments give the same value."""
        h = hasher()
        for s in SPLITS:
            x, y = self.splits[s]
            # (a split may live on a GPU: see train.on_device; or on disk: see stream.ImageFiles)
            h.update(x.digest() if isinstance(x, ImageFiles) else x.cpu().numpy().tobytes())
            h.update(y.cpu().numpy().tobytes())
        return short(h)


@dataclass
class RawData:
    """What a data set reader returns: a pool to split and, if the data set has one, a test set."""

    kind: str
    x: np.ndarray
    y: np.ndarray
    x_test: Optional[np.ndarray] = None
    y_test: Optional[np.ndarray] = None
    x_val: Optional[np.ndarray] = None
    y_val: Optional[np.ndarray] = None
    num_classes: int = 10
    hflip: bool = False
    uint8_images: bool = False
    mean: Tuple[float, ...] = ()
    std: Tuple[float, ...] = ()


def defaults(
    teacher: str,
    student: str,
    epochs: int,
    batch_size: int,
    lr: float,
    needs_root: bool = False,
    shape: Optional[Tuple[Tuple[int, ...], int, int]] = None,
):
    """Attach a data set's training defaults (what a trial uses when the user gives none) and
    whether it reads a local root; put it under `@DATASETS.register(...)`. `shape` = (input
    shape, classes, images in the train file) lets `--dry-run` estimate GPU-hours without the data."""

    def deco(fn):
        fn.train_defaults = dict(teacher=teacher, student=student, epochs=epochs, batch_size=batch_size, lr=lr)
        fn.needs_root = needs_root
        fn.shape = shape
        return fn

    return deco


def shape_hint(name: str) -> Optional[Tuple[Tuple[int, ...], int, int]]:
    """(input shape, classes, train pool size) as the data set declares it, or None."""
    return getattr(DATASETS.get(name), "shape", None)


def train_defaults(name: str) -> Dict[str, object]:
    """teacher, student, epochs, batch_size and lr for data set `name`."""
    found = getattr(DATASETS.get(name), "train_defaults", None)
    if found is None:
        raise RuntimeError(
            f"data set {name!r} is registered without training defaults: put "
            "@defaults(teacher=..., student=..., epochs=..., batch_size=..., lr=...) under its "
            "@DATASETS.register"
        )
    return dict(found)


def needs_root(name: str) -> bool:
    return getattr(DATASETS.get(name), "needs_root", False)


def names() -> list[str]:
    return DATASETS.names()


def options_of(name: str) -> Dict[str, object]:
    """The options of data set `name` (besides `root`) with their defaults."""
    import inspect

    params = inspect.signature(DATASETS.get(name)).parameters
    return {k: p.default for k, p in params.items() if k != "root"}


def reading_options(name: str) -> Tuple[str, ...]:
    """The options of data set `name` that say how its data is read, not which data (e.g. streaming
    an image folder): left out of the data's key and of a study setting's id and label."""
    return tuple(getattr(DATASETS.get(name), "reading_options", ()))


def check_options(name: str, options: Dict[str, object]) -> Dict[str, object]:
    """Reject an option data set `name` does not have, naming the ones it has."""
    allowed = options_of(name)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        listed = ", ".join(f"{k} (default {v!r})" for k, v in allowed.items()) or "none"
        raise UserError(f"unknown option(s) {', '.join(unknown)} for data set {name!r}; allowed: {listed}")
    check = getattr(DATASETS.get(name), "check", None)
    if check is not None:
        check(**options)
    return dict(options)


def _split(y: np.ndarray, share: float, seed: int):
    idx = np.arange(len(y))
    try:
        keep, held = train_test_split(idx, test_size=share, stratify=y, random_state=seed)
    except ValueError as e:  # too few samples per class for a stratified split
        raise UserError(
            f"cannot split {len(y)} samples of {len(np.unique(y))} classes into stratified "
            f"train/meta/val/test splits ({e}); every class needs more samples"
        ) from None
    return np.sort(keep), np.sort(held)


def load(
    name: str,
    seed: int = 0,
    fraction: float = 1.0,
    augment: str = "none",
    root: Optional[str] = None,
    **options,
) -> DataBundle:
    """Load data set `name` with splits drawn by `seed`; `fraction` subsamples the train split."""
    reader = DATASETS.get(name)
    check_options(name, options)
    check_range("fraction", fraction, 0.0, 1.0, lo_open=True)
    if augment not in AUGMENTS:
        raise UserError(f"unknown augmentation {augment!r}; allowed: {', '.join(AUGMENTS)}")
    raw: RawData = reader(root=root, **options)
    x, y = raw.x, raw.y
    if raw.x_test is None:
        pool, test = _split(y, TEST_SHARE, seed)
        x_test, y_test = x[test], y[test]
        x, y = x[pool], y[pool]
    else:
        x_test, y_test = raw.x_test, raw.y_test
    if raw.x_val is None:
        pool, val = _split(y, VAL_SHARE, seed + 1)
        x_val, y_val = x[val], y[val]
        x, y = x[pool], y[pool]
    else:
        x_val, y_val = raw.x_val, raw.y_val
    train, meta = _split(y, META_SHARE / (1 - VAL_SHARE), seed + 2)
    x_meta, y_meta = x[meta], y[meta]
    x, y = x[train], y[train]
    if fraction < 1.0:
        n_keep = max(raw.num_classes, int(round(fraction * len(y))))
        if n_keep < len(y):
            if len(y) - n_keep >= raw.num_classes:
                keep, _ = train_test_split(np.arange(len(y)), train_size=n_keep, stratify=y, random_state=seed + 3)
            else:  # sklearn cannot stratify a drop of fewer samples than classes
                keep = np.random.default_rng(seed + 3).choice(len(y), n_keep, replace=False)
            keep = np.sort(keep)
            x, y = x[keep], y[keep]

    def tens(a, b):
        if isinstance(a, ImageFiles):  # streamed from disk
            return a, torch.from_numpy(np.asarray(b)).long()
        # A read-only array is a reader's cache (e.g. a decoded image folder): the trial gets a copy.
        xa = torch.from_numpy(np.ascontiguousarray(a) if a.flags.writeable else np.array(a))
        if not raw.uint8_images:
            xa = xa.float()
        return xa, torch.from_numpy(np.asarray(b)).long()

    splits = {
        "train": tens(x, y),
        "meta": tens(x_meta, y_meta),
        "val": tens(x_val, y_val),
        "test": tens(x_test, y_test),
    }
    input_shape = tuple(splits["train"][0].shape[1:])
    prepare = uint8_normalizer(raw.mean, raw.std) if raw.uint8_images else (lambda t: t)
    # uint8 images are normalised before augmentation: pad with a black pixel, as torchvision's
    # RandomCrop(32, padding=4) does before its Normalize (the CIFAR recipe).
    black = (
        tuple(prepare(torch.zeros(1, input_shape[0], 1, 1, dtype=torch.uint8)).flatten().tolist())
        if raw.uint8_images
        else None
    )
    augmenter = make_augmenter(augment, raw.kind, raw.num_classes, hflip=raw.hflip, size=input_shape[-1], fill=black)
    key = {"dataset": name, "split_seed": seed, "fraction": fraction, "augment": augment}
    defaults = options_of(name)
    reading = reading_options(name)
    key.update({k: v for k, v in sorted(options.items()) if v != defaults[k] and k not in reading})  # one key per data
    return DataBundle(
        name=name,
        kind=raw.kind,
        input_shape=input_shape,
        num_classes=raw.num_classes,
        splits=splits,
        augmenter=augmenter,
        key=key,
        prepare=prepare,
    )


def uint8_normalizer(mean, std):
    m = torch.tensor(mean).view(1, -1, 1, 1)
    s = torch.tensor(std).view(1, -1, 1, 1)

    def prepare(x: torch.Tensor) -> torch.Tensor:
        x = x.float().div_(255.0)
        return (x - m.to(x.device)) / s.to(x.device)

    return prepare


def standardize(x: np.ndarray, ref: np.ndarray) -> np.ndarray:
    return ((x - ref.mean()) / (ref.std() + 1e-8)).astype(np.float32)


def require_root(name: str, root: Optional[str], layout: str) -> str:
    """`root` when it is a folder; else a UserError that shows the layout data set `name` expects."""
    if not root:
        raise UserError(f"data set {name!r} needs a local root (--root PATH); expected layout: {layout}")
    if not os.path.isdir(root):
        raise UserError(f"data root {root!r} for {name!r} does not exist; expected layout: {layout}")
    return root
