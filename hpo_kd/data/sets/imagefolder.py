"""A folder of class sub-folders per split (train, val, test), in memory or streamed from disk."""

from __future__ import annotations

import functools
import os

import numpy as np

from ...errors import UserError, check_range
from ..core import DATASETS, RawData, defaults, require_root
from ..stream import ImageFiles

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
    root = require_root("imagefolder", root, IMAGEFOLDER_LAYOUT)
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
