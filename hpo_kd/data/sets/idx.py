"""The IDX files of MNIST, Fashion-MNIST, KMNIST and EMNIST, read from a user's root folder."""

from __future__ import annotations

import gzip
import os
import struct
from typing import Optional

import numpy as np

from ...errors import UserError
from ..core import DATASETS, RawData, defaults, require_root

IDX_LAYOUT = (
    "<root>/{prefix}{train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
    "t10k-labels-idx1-ubyte}, each optionally .gz (the files as MNIST, Fashion-MNIST and KMNIST ship them)"
)
# IDX type codes (the third byte of the magic number) this reader accepts.
_TYPES = {0x08: np.uint8}


def read_idx(path: str) -> np.ndarray:
    """One IDX file (gzip or not): magic 0x0000 TT NN, NN big-endian uint32 dimensions, the data."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        blob = f.read()
    if len(blob) < 4 or blob[0] != 0 or blob[1] != 0:
        raise UserError(f"{path}: not an IDX file (its magic number does not start with two zero bytes)")
    code, ndim = blob[2], blob[3]
    if code not in _TYPES:
        raise UserError(f"{path}: IDX data type 0x{code:02x} not supported; allowed: 0x08 (unsigned bytes)")
    dims = struct.unpack(f">{ndim}I", blob[4 : 4 + 4 * ndim])
    data = np.frombuffer(blob, dtype=_TYPES[code], offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise UserError(f"{path}: {data.size} values for dimensions {dims}")
    return data.reshape(dims)


def _find(root: str, prefix: str, stem: str) -> str:
    for name in (f"{prefix}{stem}", f"{prefix}{stem}.gz", f"{prefix}{stem.replace('-idx', '.idx')}"):
        path = os.path.join(root, name)
        if os.path.isfile(path):
            return path
    raise UserError(f"idx: no file {prefix}{stem}[.gz] in {root!r}; expected layout: {IDX_LAYOUT}")


def _pair(root: str, prefix: str, part: str):
    x = read_idx(_find(root, prefix, f"{part}-images-idx3-ubyte"))
    y = read_idx(_find(root, prefix, f"{part}-labels-idx1-ubyte")).astype(np.int64)
    if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
        raise UserError(f"idx: {part} images {x.shape} and labels {y.shape} do not match (N x H x W and N)")
    return x[:, None, :, :], y


@DATASETS.register("idx")
@defaults(teacher="cnn28", student="mlp", epochs=30, batch_size=64, lr=0.02, needs_root=True)
def idx(root: Optional[str] = None, prefix: str = "") -> RawData:
    """Grey images in IDX files (MNIST, Fashion-MNIST, KMNIST, EMNIST) from a local root: the train
    files are the pool the seed splits, the t10k files the test split. `prefix` goes before each
    file name (e.g. "emnist-letters-"). Classes: the largest label + 1. Pixels are normalised by
    the mean and std of the train images."""
    if not isinstance(prefix, str):
        raise UserError(f'idx option prefix = {prefix!r}: expected a string, e.g. "emnist-digits-"')
    root = require_root("idx", root, IDX_LAYOUT)
    x, y = _pair(root, prefix, "train")
    x_test, y_test = _pair(root, prefix, "t10k")
    scaled = x.astype(np.float64) / 255
    return RawData(
        kind="image",
        x=x,
        y=y,
        x_test=x_test,
        y_test=y_test,
        num_classes=int(max(y.max(), y_test.max())) + 1,
        uint8_images=True,
        mean=(float(scaled.mean()),),
        std=(float(scaled.std()),),
    )
