"""MNIST-1D (Greydanus 2020), generated offline by the `mnist1d` package, and its shuffled variant."""

from __future__ import annotations

import functools

import numpy as np

from ...errors import UserError, check_range
from ..core import DATASETS, RawData, defaults, standardize


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
        x=standardize(x, x)[:, None, :],
        y=np.asarray(y, dtype=np.int64),
        x_test=standardize(xt, x)[:, None, :],
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
