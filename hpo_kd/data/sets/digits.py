"""scikit-learn's 8x8 handwritten digits, embedded in scikit-learn."""

from __future__ import annotations

import functools

import numpy as np

from ..core import DATASETS, RawData, defaults


@DATASETS.register("digits")
@defaults(teacher="cnn_wide", student="mlp", epochs=20, batch_size=64, lr=0.05)
def digits(root=None) -> RawData:
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
