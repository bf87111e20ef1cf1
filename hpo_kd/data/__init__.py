"""Data sets by name, with deterministic stratified train / meta / val / test splits.

`load(name, seed=0, fraction=1.0, augment="none", root=None)` returns a `DataBundle` whose splits
are in-memory tensors (or, for a large image folder, `stream.ImageFiles` read batch by batch;
`take` gives the batches of either). `meta` is the held-out slice MKD's meta objective uses, `val` selects
hyper-parameters, `test` is only reported.
"""

from __future__ import annotations

import functools
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
    prepare = _uint8_normalizer(raw.mean, raw.std) if raw.uint8_images else (lambda t: t)
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


def _uint8_normalizer(mean, std):
    m = torch.tensor(mean).view(1, -1, 1, 1)
    s = torch.tensor(std).view(1, -1, 1, 1)

    def prepare(x: torch.Tensor) -> torch.Tensor:
        x = x.float().div_(255.0)
        return (x - m.to(x.device)) / s.to(x.device)

    return prepare


def _standardize(x: np.ndarray, ref: np.ndarray) -> np.ndarray:
    return ((x - ref.mean()) / (ref.std() + 1e-8)).astype(np.float32)


# --------------------------------------------------------------------------- embedded data sets


@DATASETS.register("digits")
@defaults(teacher="cnn_wide", student="mlp", epochs=20, batch_size=64, lr=0.05)
def _digits(root=None) -> RawData:
    """scikit-learn's 8x8 handwritten digits: 1,797 images, 10 classes (ships with sklearn)."""
    x, y = _digits_arrays()
    return RawData(kind="image", x=x, y=y)


@functools.lru_cache(maxsize=1)
def _digits_arrays():
    """Read once per process (a reused worker runs many trials); callers index copies out of it."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0 - 0.5) / 0.5
    x, y = x[:, None, :, :], d.target.astype(np.int64)
    x.flags.writeable = False
    y.flags.writeable = False
    return x, y


@functools.lru_cache(maxsize=4)
def _mnist1d_arrays(seed: int, train_size: int, test_size: int, shuffle_seq: bool):
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.seed = seed
    args.num_samples = train_size + test_size
    args.train_split = train_size / (train_size + test_size)
    args.shuffle_seq = shuffle_seq
    d = make_dataset(args)  # generated locally; never the package's download path
    # The generator splits at int(n * train_split); re-split at exactly train_size.
    x, y = np.concatenate([d["x"], d["x_test"]]), np.concatenate([d["y"], d["y_test"]])
    return x[:train_size], y[:train_size], x[train_size:], y[train_size:]


def _check_mnist1d(generator_seed: int = 42, train_size: int = 4000, test_size: int = 1000) -> None:
    for k, v in (("train_size", train_size), ("test_size", test_size)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 100 or v % 10:
            raise UserError(f"mnist1d option {k} = {v!r}: expected a multiple of 10, at least 100")
    check_range("generator_seed", generator_seed, 0, None)


def _mnist1d_raw(generator_seed: int, train_size: int, test_size: int, shuffle_seq: bool) -> RawData:
    _check_mnist1d(generator_seed, train_size, test_size)
    x, y, xt, yt = _mnist1d_arrays(generator_seed, train_size, test_size, shuffle_seq)
    return RawData(
        kind="signal",
        x=_standardize(x, x)[:, None, :],
        y=np.asarray(y, dtype=np.int64),
        x_test=_standardize(xt, x)[:, None, :],
        y_test=np.asarray(yt, dtype=np.int64),
    )


@DATASETS.register("mnist1d")
@defaults(teacher="cnn_wide", student="cnn_small", epochs=20, batch_size=64, lr=0.05)
def _mnist1d(root=None, generator_seed: int = 42, train_size: int = 4000, test_size: int = 1000) -> RawData:
    """MNIST-1D generated offline by the mnist1d package: 1x40 signals; `train_size` signals
    (train, meta and val are drawn from them) and `test_size` test signals, each a multiple of 10
    (the generator makes as many of each class)."""
    return _mnist1d_raw(generator_seed, train_size, test_size, False)


@DATASETS.register("mnist1d_shuffled")
@defaults(teacher="cnn_wide", student="cnn_small", epochs=20, batch_size=64, lr=0.05)
def _mnist1d_shuffled(root=None, generator_seed: int = 42, train_size: int = 4000, test_size: int = 1000) -> RawData:
    """MNIST-1D with the package's `shuffle_seq`: one fixed random permutation of the 40 positions,
    so no spatial structure is left for a convolution to use (the MNIST-1D paper's shuffled
    variant). Options as for `mnist1d`."""
    return _mnist1d_raw(generator_seed, train_size, test_size, True)


_mnist1d.check = _mnist1d_shuffled.check = _check_mnist1d  # values checked without generating the data


# --------------------------------------------------------------------------- data from a local root

CIFAR_LAYOUT = {
    "cifar10": "<root>/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta} "
    "(the python version of CIFAR-10)",
    "cifar100": "<root>/cifar-100-python/{train, test, meta} (the python version of CIFAR-100)",
}
CIFAR_STATS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}


def _require_root(name: str, root: Optional[str], layout: str) -> str:
    if not root:
        raise UserError(f"data set {name!r} needs a local root (--root PATH); expected layout: {layout}")
    if not os.path.isdir(root):
        raise UserError(f"data root {root!r} for {name!r} does not exist; expected layout: {layout}")
    return root


def _local_cifar(name: str):
    from torchvision import datasets

    base = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100

    class LocalCIFAR(base):  # type: ignore[misc, valid-type]
        # torchvision checks the files against the official md5 sums; we read whatever the user
        # has (e.g. a re-packed or test copy), requiring only that the files exist.
        def _check_integrity(self) -> bool:
            files = [f for f, _ in self.train_list + self.test_list]
            return all(os.path.isfile(os.path.join(self.root, self.base_folder, f)) for f in files)

        def _load_meta(self) -> None:
            self.classes = []

    return LocalCIFAR


def _cifar(name: str, root: Optional[str]) -> RawData:
    root = _require_root(name, root, CIFAR_LAYOUT[name])
    cls = _local_cifar(name)
    try:
        train = cls(root, train=True, download=False)
        test = cls(root, train=False, download=False)
    except RuntimeError as e:
        raise UserError(f"could not read {name!r} from {root!r} ({e}); expected layout: {CIFAR_LAYOUT[name]}") from None
    mean, std = CIFAR_STATS[name]
    return RawData(
        kind="image",
        x=np.ascontiguousarray(train.data.transpose(0, 3, 1, 2)),
        y=np.asarray(train.targets, dtype=np.int64),
        x_test=np.ascontiguousarray(test.data.transpose(0, 3, 1, 2)),
        y_test=np.asarray(test.targets, dtype=np.int64),
        num_classes=10 if name == "cifar10" else 100,
        hflip=True,
        uint8_images=True,
        mean=mean,
        std=std,
    )


@DATASETS.register("cifar10")
@defaults(
    teacher="resnet18",
    student="resnet10t",
    epochs=30,
    batch_size=128,
    lr=0.05,
    needs_root=True,
    shape=((3, 32, 32), 10, 50000),
)
def _cifar10(root=None) -> RawData:
    """CIFAR-10 read from a local root (torchvision, download=False)."""
    return _cifar("cifar10", root)


@DATASETS.register("cifar100")
@defaults(
    teacher="resnet18",
    student="resnet10t",
    epochs=30,
    batch_size=128,
    lr=0.05,
    needs_root=True,
    shape=((3, 32, 32), 100, 50000),
)
def _cifar100(root=None) -> RawData:
    """CIFAR-100 read from a local root (torchvision, download=False)."""
    return _cifar("cifar100", root)


IMAGEFOLDER_LAYOUT = "<root>/{train,val,test}/<class name>/<image files> (same classes in each)"


def _check_imagefolder(image_size: int = 32, stream="auto", memory_mb: int = 4096, workers: int = 2) -> None:
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 8:
        raise UserError(f"imagefolder option image_size = {image_size!r}: expected an integer, at least 8")
    if not (stream is True or stream is False or stream == "auto"):
        raise UserError(
            f'imagefolder option stream = {stream!r}; allowed: "auto" (stream when the '
            "decoded images exceed memory_mb), true, false"
        )
    check_range("memory_mb", memory_mb, 0, None, lo_open=True)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise UserError(f"imagefolder option workers = {workers!r}: expected an integer, at least 0")


@DATASETS.register("imagefolder")
@defaults(teacher="resnet18", student="resnet10t", epochs=30, batch_size=64, lr=0.05, needs_root=True)
def _imagefolder(root=None, image_size: int = 32, stream="auto", memory_mb: int = 4096, workers: int = 2) -> RawData:
    """A folder of class sub-folders per split, resized to image_size x image_size, RGB.

    `stream`: true reads each batch from disk (decoded and resized by `workers` DataLoader
    processes); false decodes every image into memory once (by the same workers); "auto" (the
    default) streams when the decoded images (N x 3 x image_size^2 bytes) exceed `memory_mb`.
    Either way the same seed gives the same run."""
    from torchvision import datasets

    _check_imagefolder(image_size, stream, memory_mb, workers)
    root = _require_root("imagefolder", root, IMAGEFOLDER_LAYOUT)
    parts = {}
    classes = None
    for split in ("train", "val", "test"):
        path = os.path.join(root, split)
        try:
            ds = datasets.ImageFolder(path, loader=str)  # lists the files; decoding comes later
        except (FileNotFoundError, RuntimeError) as e:
            raise UserError(
                f"could not read imagefolder split {path!r} ({e}); expected layout: {IMAGEFOLDER_LAYOUT}"
            ) from None
        if classes is None:
            classes = ds.classes
        elif ds.classes != classes:
            raise UserError(
                f"imagefolder split {path!r} has classes {ds.classes}, but train has {classes}; "
                f"expected layout: {IMAGEFOLDER_LAYOUT}"
            )
        files = ImageFiles([p for p, _ in ds.samples], image_size, workers)
        parts[split] = (files, np.asarray(ds.targets, dtype=np.int64))
    total = sum(f.nbytes() for f, _ in parts.values())
    if not (stream is True or (stream == "auto" and total > memory_mb * 2**20)):
        parts = {k: (_decoded(f), y) for k, (f, y) in parts.items()}
    return RawData(
        kind="image",
        x=parts["train"][0],
        y=parts["train"][1],
        x_val=parts["val"][0],
        y_val=parts["val"][1],
        x_test=parts["test"][0],
        y_test=parts["test"][1],
        num_classes=len(classes),
        hflip=True,
        uint8_images=True,
        mean=(0.5, 0.5, 0.5),
        std=(0.25, 0.25, 0.25),
    )


def _decoded(files: ImageFiles) -> np.ndarray:
    """The split's images in memory: decoded once per process (a reused Ray actor runs many trials
    on one folder), again if a file changed (its size or modification time). Read-only: `load`
    copies what it does not index."""
    return _decoded_once(tuple(files.paths), files.size, files.workers, files.digest())


@functools.lru_cache(maxsize=3)  # train, val and test of one folder
def _decoded_once(paths: tuple, size: int, workers: int, stamp: bytes) -> np.ndarray:
    x = ImageFiles(paths, size, workers).load()
    x.flags.writeable = False
    return x


_imagefolder.check = _check_imagefolder
# How the images are read, not which: left out of the data's key, so that a teacher trained on the
# folder in memory serves a streamed run of it (and the other way round).
_imagefolder.reading_options = ("stream", "memory_mb", "workers")
