"""Small CIFAR files in the python-pickle layout, for tests, benches and for trying a CIFAR study
without the data: `python -m hpo_kd.data.fake ROOT [--per-class N]` writes ROOT/cifar-100-python.
`write_imagefolder` writes an image folder (PNG files) for the `imagefolder` data set.

Each image encodes its label (red plane = 2 x label for CIFAR-100, mod 256), so a network can learn
the fake set; green is the image's index and blue a horizontal gradient.
"""

from __future__ import annotations

import argparse
import os
import pickle

import numpy as np


def cifar_image(label, i):
    """A (3, 32, 32) uint8 image: red plane = 2*label, green = i % 256, blue = a gradient."""
    img = np.empty((3, 32, 32), dtype=np.uint8)
    img[0] = (2 * label) % 256
    img[1] = i % 256
    img[2] = np.arange(32, dtype=np.uint8)[None, :]
    return img


def _batch(labels, start, label_key):
    x = np.stack([cifar_image(lab, start + j) for j, lab in enumerate(labels)])
    # The real files are Python-2 pickles whose str keys torchvision reads back as str
    # (pickle.load(..., encoding="latin1")); writing str keys reproduces that.
    return {"data": x.reshape(len(labels), 3072), label_key: list(map(int, labels)), "batch_label": "fake"}


def _dump(obj, path):
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def write_cifar10(root, per_class_train=20, per_class_test=5) -> str:
    folder = os.path.join(root, "cifar-10-batches-py")
    os.makedirs(folder)
    labels = np.tile(np.arange(10), per_class_train)
    rng = np.random.default_rng(0)
    rng.shuffle(labels)
    for k, part in enumerate(np.array_split(labels, 5)):
        _dump(_batch(part, 1000 * k, "labels"), os.path.join(folder, f"data_batch_{k + 1}"))
    _dump(_batch(np.tile(np.arange(10), per_class_test), 9000, "labels"), os.path.join(folder, "test_batch"))
    _dump(
        {"label_names": [f"c{i}" for i in range(10)], "num_cases_per_batch": len(labels) // 5},
        os.path.join(folder, "batches.meta"),
    )
    return folder


def write_cifar100(root, per_class_train, per_class_test=1) -> str:
    folder = os.path.join(root, "cifar-100-python")
    os.makedirs(folder)
    labels = np.tile(np.arange(100), per_class_train)
    _dump(_batch(labels, 0, "fine_labels"), os.path.join(folder, "train"))
    _dump(_batch(np.tile(np.arange(100), per_class_test), 0, "fine_labels"), os.path.join(folder, "test"))
    _dump({"fine_label_names": [f"c{i}" for i in range(100)], "coarse_label_names": []}, os.path.join(folder, "meta"))
    return folder


def write_imagefolder(root, classes=10, per_class=(80, 10, 10), size=(40, 36), seed=0) -> str:
    """<root>/{train,val,test}/c<k>/<i>.png, per_class = (train, val, test) images of each class, of
    `size` (width, height) pixels: a class colour (hue k / classes) with noise, and a bright bar at a
    random height, so that a network can learn the classes and no two images are alike."""
    import colorsys

    from PIL import Image

    rng = np.random.default_rng(seed)
    w, h = size
    for split, n in zip(("train", "val", "test"), per_class):
        for k in range(classes):
            folder = os.path.join(root, split, f"c{k}")
            os.makedirs(folder, exist_ok=True)
            base = np.array(colorsys.hsv_to_rgb(k / classes, 0.8, 0.8)) * 255
            for i in range(n):
                img = base[None, None, :] + rng.normal(0, 40, (h, w, 3))
                bar = rng.integers(0, h - 4)
                img[bar : bar + 4] = 255
                Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(os.path.join(folder, f"{i}.png"))
    return root


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("root")
    p.add_argument("--per-class", type=int, default=5, help="training images per class (default 5)")
    p.add_argument("--test-per-class", type=int, default=1)
    a = p.parse_args(argv)
    print(write_cifar100(a.root, a.per_class, a.test_per_class))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
