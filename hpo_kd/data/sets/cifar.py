"""CIFAR-10 and CIFAR-100, read from a local root (the python versions; torchvision, download=False)."""

from __future__ import annotations

import os
from typing import Optional

import numpy as np

from ...errors import UserError
from ..core import DATASETS, RawData, defaults, require_root

CIFAR_LAYOUT = {
    "cifar10": "<root>/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta} "
    "(the python version of CIFAR-10)",
    "cifar100": "<root>/cifar-100-python/{train, test, meta} (the python version of CIFAR-100)",
}
CIFAR_STATS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}


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
    root = require_root(name, root, CIFAR_LAYOUT[name])
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


def _register(name: str, classes: int) -> None:
    def reader(root=None) -> RawData:
        return _cifar(name, root)

    reader.__doc__ = f"CIFAR-{classes} read from a local root (torchvision, download=False)."
    shape = ((3, 32, 32), classes, 50000)
    deco = defaults("resnet18", "resnet10t", epochs=30, batch_size=128, lr=0.05, needs_root=True, shape=shape)
    DATASETS.register(name)(deco(reader))


_register("cifar10", 10)
_register("cifar100", 100)
