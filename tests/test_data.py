"""Data sets, splits and augmentation (hpo_kd.data)."""

import collections
import hashlib
import re

import numpy as np
import pytest
import torch

from hpo_kd import data
from hpo_kd.data import fake
from hpo_kd.data.augment import make_augmenter
from hpo_kd.errors import UserError


def _row_hashes(x):
    x = x.numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    x = np.ascontiguousarray(x.reshape(len(x), -1))
    return [hashlib.sha1(r.tobytes()).hexdigest() for r in x]


@pytest.fixture(scope="module")
def bundles():
    return {name: data.load(name, seed=0) for name in ("digits", "mnist1d")}


def _raw_pool(name):
    raw = data.DATASETS.get(name)()
    xs = [raw.x] + ([raw.x_test] if raw.x_test is not None else [])
    ys = [raw.y] + ([raw.y_test] if raw.y_test is not None else [])
    return np.concatenate(xs), np.concatenate(ys)


@pytest.mark.parametrize("name,total", [("digits", 1797), ("mnist1d", 5000)])
def test_splits_partition_the_data(bundles, name, total):
    b = bundles[name]
    assert set(b.splits) == {"train", "meta", "val", "test"}
    hashes = {s: _row_hashes(b.splits[s][0]) for s in data.SPLITS}
    # No sample is used twice (the data sets have no duplicate rows, checked below).
    for i, s in enumerate(data.SPLITS):
        assert len(set(hashes[s])) == len(hashes[s])
        for t in data.SPLITS[i + 1 :]:
            assert not set(hashes[s]) & set(hashes[t]), f"{s} and {t} share samples"
    # Together they are exactly the data set (as a multiset of (row, label)).
    assert sum(b.size(s) for s in data.SPLITS) == total
    x_all, y_all = _raw_pool(name)
    assert len(y_all) == total
    full = collections.Counter(zip(_row_hashes(x_all), y_all.tolist()))
    assert len(full) == total  # no duplicate rows in the source
    got = collections.Counter()
    for s in data.SPLITS:
        got.update(zip(hashes[s], b.splits[s][1].tolist()))
    assert got == full
    for s in data.SPLITS:
        x, y = b.splits[s]
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert tuple(x.shape[1:]) == b.input_shape
    assert b.num_classes == 10


@pytest.mark.parametrize("name", ["digits", "mnist1d"])
def test_splits_are_stratified(bundles, name):
    b = bundles[name]
    y_all = torch.cat([b.splits[s][1] for s in data.SPLITS])
    overall = torch.bincount(y_all, minlength=10).double() / len(y_all)
    for s in data.SPLITS:
        y = b.splits[s][1]
        share = torch.bincount(y, minlength=10).double() / len(y)
        worst = (share - overall).abs().max().item()
        assert worst <= 0.03, f"{name}/{s}: a class share is off by {worst:.3f}"


@pytest.mark.parametrize("name", ["digits", "mnist1d"])
def test_splits_depend_only_on_the_seed(bundles, name):
    again = data.load(name, seed=0)
    assert again.fingerprint() == bundles[name].fingerprint()
    other = data.load(name, seed=1)
    assert other.fingerprint() != bundles[name].fingerprint()
    # Another seed draws other samples into each held-out split, not just another order.
    assert set(_row_hashes(other.splits["val"][0])) != set(_row_hashes(bundles[name].splits["val"][0]))


def test_fraction_subsamples_train_only(bundles):
    full = bundles["digits"]
    part = data.load("digits", seed=0, fraction=0.25)
    n, k = full.size("train"), part.size("train")
    assert abs(k - 0.25 * n) <= 1
    assert set(_row_hashes(part.splits["train"][0])) <= set(_row_hashes(full.splits["train"][0]))
    for s in ("meta", "val", "test"):
        assert torch.equal(part.splits[s][0], full.splits[s][0])
        assert torch.equal(part.splits[s][1], full.splits[s][1])
    # Still every class, in about the same proportions.
    counts = torch.bincount(part.splits["train"][1], minlength=10)
    assert counts.min().item() >= 20
    assert part.key["fraction"] == 0.25 and part.fingerprint() != full.fingerprint()


@pytest.mark.parametrize("fraction", [0.0, 1.5, -0.1, float("nan")])
def test_bad_fraction_is_a_user_error(fraction):
    with pytest.raises(UserError) as e:
        data.load("digits", fraction=fraction)
    msg = str(e.value)
    assert "fraction" in msg and "(0, 1]" in msg


def test_unknown_augment_and_dataset_are_user_errors():
    with pytest.raises(UserError) as e:
        data.load("digits", augment="extreme")
    assert "augment" in str(e.value) and "'extreme'" in str(e.value)
    for a in ("none", "weak", "strong"):
        assert a in str(e.value)
    with pytest.raises(UserError) as e:
        data.load("imagenet")
    msg = str(e.value)
    assert "'imagenet'" in msg and "data set" in msg
    for name in ("digits", "mnist1d", "cifar10", "cifar100", "imagefolder"):
        assert name in msg


# --------------------------------------------------------------------------- augmentation


def _augment(aug, x, y, seed):
    np.random.seed(seed)  # timm's Mixup draws lambda / mode from NumPy's global generator
    return aug(x.clone(), y.clone(), torch.Generator().manual_seed(seed))


def test_strong_augment_on_digits_gives_soft_targets(bundles):
    b = data.load("digits", seed=0, augment="strong")
    assert b.augmenter.mixes
    x, y = b.splits["train"][0][:16], b.splits["train"][1][:16]
    xa, ta = _augment(b.augmenter, x, y, 0)
    assert xa.shape == x.shape
    assert ta.shape == (16, 10)
    assert torch.allclose(ta.sum(-1), torch.ones(16), atol=1e-6)
    assert (ta >= 0).all()
    # Odd batches lose their last sample (timm's Mixup needs an even batch).
    xo, to = _augment(b.augmenter, x[:15], y[:15], 0)
    assert xo.shape[0] == 14 and to.shape == (14, 10)
    # Mixup pairs sample i with sample B-1-i: with lam < 1 targets carry two classes.
    lam = ta.max(-1).values
    assert (lam < 1).any() or not torch.equal(xa, x)


def test_weak_augment_keeps_shapes_and_labels(bundles):
    b = data.load("digits", seed=0, augment="weak")
    assert not b.augmenter.mixes
    x, y = b.splits["train"][0][:32], b.splits["train"][1][:32]
    xa, ya = _augment(b.augmenter, x, y, 0)
    assert xa.shape == x.shape and torch.equal(ya, y)
    assert not torch.equal(xa, x)  # something moved
    # Each image is the original shifted by at most one pixel per axis, zero padded.
    padded = torch.nn.functional.pad(x, [1, 1, 1, 1])
    for i in range(len(x)):
        assert any(torch.equal(xa[i], padded[i, :, dy : dy + 8, dx : dx + 8]) for dy in range(3) for dx in range(3)), (
            f"sample {i} is not a <= 1 pixel shift"
        )


@pytest.mark.parametrize("level", ["weak", "strong"])
def test_same_seed_same_augmentation(bundles, level):
    b = data.load("digits", seed=0, augment=level)
    x, y = b.splits["train"][0][:32], b.splits["train"][1][:32]
    x1, t1 = _augment(b.augmenter, x, y, 5)
    x2, t2 = _augment(b.augmenter, x, y, 5)
    assert torch.equal(x1, x2) and torch.equal(t1, t2)
    x3, t3 = _augment(b.augmenter, x, y, 6)
    assert not torch.equal(x1, x3)


def test_mnist1d_strong_augment():
    b = data.load("mnist1d", seed=0, augment="strong")
    x, y = b.splits["train"][0][:16], b.splits["train"][1][:16]
    assert x.shape == (16, 1, 40)
    xa, ta = _augment(b.augmenter, x, y, 0)
    assert xa.shape == (16, 1, 40)
    assert ta.shape == (16, 10) and torch.allclose(ta.sum(-1), torch.ones(16), atol=1e-6)
    assert torch.isfinite(xa).all() and not torch.equal(xa, x)


def test_augment_none_is_identity():
    aug = make_augmenter("none", "image", 10)
    x, y = torch.randn(4, 1, 8, 8), torch.arange(4)
    xa, ya = aug(x, y, torch.Generator().manual_seed(0))
    assert xa is x and ya is y


# --------------------------------------------------------------------------- local data sets


_cifar_image = fake.cifar_image
write_fake_cifar10 = fake.write_cifar10
write_fake_cifar100 = fake.write_cifar100


def test_cifar10_from_a_local_root(tmp_path):
    write_fake_cifar10(str(tmp_path))
    b = data.load("cifar10", root=str(tmp_path), seed=0)
    assert b.num_classes == 10 and b.input_shape == (3, 32, 32) and b.kind == "image"
    assert b.size("test") == 50
    assert b.size("train") + b.size("meta") + b.size("val") == 200
    assert b.size("val") == 30  # ceil(0.15 * 200)
    assert b.size("meta") >= 10 and b.size("train") >= 140
    for s in data.SPLITS:
        x, y = b.splits[s]
        assert x.dtype == torch.uint8 and x.shape[1:] == (3, 32, 32)
        # Channel-first with the right pixel order: red plane encodes the label.
        assert torch.equal(x[:, 0, 0, 0].long(), 2 * y)
        assert torch.equal(x[0, 2, 5], torch.arange(32, dtype=torch.uint8))
        assert set(torch.bincount(y, minlength=10).tolist()) != {0}
    # Each class in each of the pool's splits (stratified).
    for s in ("train", "meta", "val"):
        assert torch.bincount(b.splits[s][1], minlength=10).min() >= 1
    xf = b.prepare(b.splits["train"][0][:4])
    assert xf.dtype == torch.float32 and xf.shape == (4, 3, 32, 32)
    assert torch.isfinite(xf).all()
    # hflip is on for CIFAR's weak augmentation and keeps shapes.
    bw = data.load("cifar10", root=str(tmp_path), seed=0, augment="weak")
    assert bw.augmenter.hflip
    xa, ya = _augment(bw.augmenter, xf, b.splits["train"][1][:4], 0)
    assert xa.shape == (4, 3, 32, 32)


def test_cifar100_from_a_local_root(tmp_path):
    # Stratified splits need every held-out split to hold >= 1 sample of each of the 100
    # classes: meta gets ~10% of the pool, so the pool needs >= 10 images per class
    # (4 per class, as a first guess, is impossible: sklearn refuses a 40-sample held-out split).
    write_fake_cifar100(str(tmp_path), per_class_train=10)
    b = data.load("cifar100", root=str(tmp_path), seed=0)
    assert b.num_classes == 100 and b.input_shape == (3, 32, 32)
    assert b.size("test") == 100
    assert b.size("train") + b.size("meta") + b.size("val") == 1000
    assert b.size("val") == 150
    for s in ("train", "meta", "val"):
        assert torch.bincount(b.splits[s][1], minlength=100).min() >= 1
    x, y = b.splits["val"]
    assert torch.equal(x[:, 0, 0, 0].long(), 2 * y)


def test_cifar100_with_too_few_images_per_class_fails(tmp_path):
    write_fake_cifar100(str(tmp_path), per_class_train=4)
    with pytest.raises(UserError) as e:  # a message, not a bare sklearn ValueError traceback
        data.load("cifar100", root=str(tmp_path), seed=0)
    assert "stratified" in str(e.value) and "100 classes" in str(e.value)


@pytest.mark.parametrize("fraction", [0.995, 0.999, 0.001])
def test_extreme_fractions(bundles, fraction):
    # Dropping fewer samples than there are classes (0.995 of 1077 drops 5) cannot be
    # stratified by sklearn; it used to crash with a ValueError.
    n = bundles["digits"].size("train")
    b = data.load("digits", seed=0, fraction=fraction)
    assert b.size("train") == max(10, round(fraction * n))
    assert set(_row_hashes(b.splits["train"][0])) <= set(_row_hashes(bundles["digits"].splits["train"][0]))
    assert data.load("digits", seed=0, fraction=fraction).fingerprint() == b.fingerprint()


def _write_png(path, color, size=(24, 20)):
    from PIL import Image

    Image.new("RGB", size, color).save(path)


def test_imagefolder_from_a_local_root(tmp_path):
    colors = {"cat": (200, 0, 0), "dog": (0, 0, 200)}
    counts = {"train": 10, "val": 3, "test": 2}
    for split, n in counts.items():
        for cls, color in colors.items():
            d = tmp_path / split / cls
            d.mkdir(parents=True)
            for i in range(n):
                _write_png(str(d / f"{i}.png"), color)
    b = data.load("imagefolder", root=str(tmp_path), image_size=16)
    assert b.num_classes == 2 and b.input_shape == (3, 16, 16)
    assert b.size("val") == 6 and b.size("test") == 4
    assert b.size("train") + b.size("meta") == 20
    for s in data.SPLITS:
        x, y = b.splits[s]
        assert x.shape[1:] == (3, 16, 16) and x.dtype == torch.uint8
        # ImageFolder sorts classes: cat = 0 (red), dog = 1 (blue).
        assert torch.equal((x[:, 2, 8, 8] > x[:, 0, 8, 8]).long(), y)
    assert b.key["image_size"] == 16


def test_imagefolder_class_mismatch_is_a_user_error(tmp_path):
    for split, classes in (("train", ["a", "b"]), ("val", ["a", "c"]), ("test", ["a", "b"])):
        for cls in classes:
            d = tmp_path / split / cls
            d.mkdir(parents=True)
            for i in range(10):
                _write_png(str(d / f"{i}.png"), (i, i, i))
    with pytest.raises(UserError) as e:
        data.load("imagefolder", root=str(tmp_path), image_size=8)
    assert "classes" in str(e.value) and "expected layout" in str(e.value)


@pytest.mark.parametrize(
    "name,layout_word",
    [
        ("cifar10", "cifar-10-batches-py"),
        ("cifar100", "cifar-100-python"),
        ("imagefolder", "{train,val,test}"),
    ],
)
def test_missing_root_names_path_and_layout(tmp_path, name, layout_word):
    missing = str(tmp_path / "no-such-dir")
    with pytest.raises(UserError) as e:
        data.load(name, root=missing)
    msg = str(e.value)
    assert missing in msg and "expected layout" in msg and layout_word in msg


def test_root_without_cifar_files_names_layout(tmp_path):
    with pytest.raises(UserError) as e:
        data.load("cifar10", root=str(tmp_path))
    assert str(tmp_path) in str(e.value) and "cifar-10-batches-py" in str(e.value)


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "imagefolder"])
def test_root_none_is_a_user_error(name):
    with pytest.raises(UserError) as e:
        data.load(name, root=None)
    assert "--root" in str(e.value) and name in str(e.value)


def test_mnist1d_size_options():
    b = data.load("mnist1d", seed=0, train_size=2000, test_size=600)
    assert b.size("test") == 600
    assert b.size("train") + b.size("meta") + b.size("val") == 2000
    assert data.load("mnist1d", seed=0).size("test") == 1000  # the package's default 4,000 + 1,000
    # the default options give the same data (and teacher key) as no options
    assert data.load("mnist1d", seed=0, train_size=4000, test_size=1000).key == data.load("mnist1d", seed=0).key
    shuffled = data.load("mnist1d_shuffled", seed=0, train_size=2000, test_size=600)
    assert shuffled.splits["test"][1].tolist() == b.splits["test"][1].tolist()  # same signals, permuted
    assert not torch.equal(shuffled.splits["test"][0], b.splits["test"][0])
    assert torch.equal(shuffled.splits["test"][0].sort(-1).values, b.splits["test"][0].sort(-1).values)


@pytest.mark.parametrize(
    "options,message",
    [
        ({"train_size": 2005}, "train_size = 2005: expected a multiple of 10"),
        ({"test_size": 0}, "test_size = 0"),
        ({"colour": "red"}, "unknown option(s) colour for data set 'mnist1d'; allowed: generator_seed"),
    ],
)
def test_bad_data_set_options_are_user_errors(options, message):
    with pytest.raises(UserError, match=re.escape(message)):
        data.load("mnist1d", **options)


def test_cifar_weak_augmentation_is_the_recipe_crop_and_flip_on_the_batch(tmp_path):
    """`weak` on CIFAR is RandomCrop(32, padding=4) + RandomHorizontalFlip, done on the batch
    tensor with one draw per sample: every augmented image equals the normalised image, padded by
    4 black pixels (black before normalisation, as torchvision pads), flipped or not, and
    cropped at some offset in [0, 8] x [0, 8]; offsets and flips differ across the batch."""
    write_fake_cifar10(str(tmp_path))
    b = data.load("cifar10", root=str(tmp_path), seed=0, augment="weak")
    raw = b.splits["train"][0][:64]
    x = b.prepare(raw)
    xa, _ = _augment(b.augmenter, x, b.splits["train"][1][:64], 3)
    black = b.prepare(torch.zeros(1, 3, 1, 1, dtype=torch.uint8))  # a black pixel, normalised
    padded = black.expand(64, 3, 40, 40).clone()
    padded[:, :, 4:36, 4:36] = x
    seen = set()
    for i in range(64):
        hits = [
            (dy, dx, f)
            for f in (False, True)
            for dy in range(9)
            for dx in range(9)
            if torch.equal(xa[i], (padded[i].flip(-1) if f else padded[i])[:, dy : dy + 32, dx : dx + 32])
        ]
        assert hits, f"image {i} is not a padded crop of the original"
        seen.update(hits[:1])
    assert len(seen) > 20 and {f for _, _, f in seen} == {False, True}
