"""Image folders streamed from disk (hpo_kd.data.stream): the same pixels, batches and runs as in memory."""

import pytest
import torch

from hpo_kd import data
from hpo_kd.data.fake import write_imagefolder
from hpo_kd.data.stream import ImageFiles, take
from hpo_kd.errors import UserError
from hpo_kd.train import run_trial

TIMING = {"epoch_seconds", "samples_per_s", "seconds"}
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """3,000 PNG files of 40x36 pixels: 10 classes x (200 train, 50 val, 50 test)."""
    return write_imagefolder(str(tmp_path_factory.mktemp("folder")), classes=10, per_class=(200, 50, 50))


@pytest.fixture(scope="module")
def both(folder):
    return (
        data.load("imagefolder", root=folder, image_size=16, stream=False, augment="weak"),
        data.load("imagefolder", root=folder, image_size=16, stream=True, workers=2, augment="weak"),
    )


def test_a_streamed_folder_has_the_same_splits_and_pixels(both):
    mem, disk = both
    assert mem.key == disk.key  # how the files are read is not part of the data's identity
    assert mem.input_shape == disk.input_shape == (3, 16, 16)
    for s in data.SPLITS:
        xm, ym = mem.splits[s]
        xd, yd = disk.splits[s]
        assert isinstance(xm, torch.Tensor) and isinstance(xd, ImageFiles)
        assert torch.equal(ym, yd) and len(xd) == len(xm)
    x_mem, x_disk = mem.splits["train"][0], disk.splits["train"][0]
    order = [torch.tensor([7, 0, 1500, 3]), slice(10, 40), torch.randperm(len(x_mem))[:64]]
    for workers in (0, 2):
        x_disk.workers = workers
        got = list(take(x_disk, order, CPU))
        assert [b.dtype for b in got] == [torch.uint8] * 3
        assert all(torch.equal(g, x_mem[ix]) for g, ix in zip(got, order))


def test_auto_streams_only_above_the_memory_budget(folder):
    # 3,000 images of 3 x 16 x 16 bytes = 2.2 MB.
    small = data.load("imagefolder", root=folder, image_size=16, memory_mb=3)
    large = data.load("imagefolder", root=folder, image_size=16, memory_mb=2)
    assert isinstance(small.splits["train"][0], torch.Tensor)
    assert isinstance(large.splits["train"][0], ImageFiles)


@pytest.mark.slow
@pytest.mark.parametrize(
    "method,options,augment", [("fixed", {}, "weak"), ("mkd", {"meta_augment": True}, "weak"), ("fixed", {}, "none")]
)
def test_a_streamed_trial_equals_the_in_memory_trial(folder, tmp_path, method, options, augment):
    """Same seed, same run: the teacher's training (its own cache each), KD with weak augmentation
    (crops and flips drawn by the trial's generator on batched tensors) or with the teacher's
    logits of the whole training split (no augmentation), and MKD's meta batches."""
    results = {}
    for stream in (False, True):
        cfg = dict(
            dataset="imagefolder",
            root=folder,
            data_options={"image_size": 16, "stream": stream},
            augment=augment,
            teacher="cnn_small",
            student="cnn_bn",
            epochs=2,
            teacher_epochs=1,
            batch_size=64,
            method=method,
            method_options=options,
            seed=3,
            device="cpu",
            cache_dir=str(tmp_path / f"cache_{stream}"),
        )
        results[stream] = run_trial(cfg)
        row = results[stream]["history"][-1]
        print(f"stream={stream}: {row['samples_per_s']:.0f} training images/s, {results[stream]['seconds']:.1f} s")
    mem, disk = results[False], results[True]
    assert mem["status"] == disk["status"] == "ok" and mem["teacher_cached"] is False is disk["teacher_cached"]
    assert disk["teacher_val_acc"] == mem["teacher_val_acc"] and disk["teacher_test_acc"] == mem["teacher_test_acc"]
    strip = lambda h: [{k: v for k, v in r.items() if k not in TIMING} for r in h]  # noqa: E731
    assert strip(disk["history"]) == strip(mem["history"])
    assert mem["history"][-1]["val_acc"] > 0.2  # it learns (10 classes)


@pytest.mark.parametrize(
    "options,words",
    [
        ({"stream": "maybe"}, ["stream", "'maybe'", "auto"]),
        ({"workers": -1}, ["workers", "-1", "at least 0"]),
        ({"memory_mb": 0}, ["memory_mb"]),
        ({"image_size": 4}, ["image_size", "at least 8"]),
    ],
)
def test_bad_imagefolder_options_name_the_key(folder, options, words):
    with pytest.raises(UserError) as e:
        data.check_options("imagefolder", options)
    assert all(w in str(e.value) for w in words), str(e.value)


def test_reading_options_leave_a_settings_id_and_label_alone(folder, study_file):
    """A study can switch streaming on or off and keep its finished trials: same ids, same labels."""
    from hpo_kd.study import load_study

    def study(options):
        return load_study(
            study_file(
                f"""
name = "s"
seeds = [0]
[[settings]]
dataset = "imagefolder"
root = "{folder}"
options = {options}
[methods.nokd]
""",
                f"s{len(options)}.toml",
            )
        )

    a = study("{image_size = 16}")
    b = study("{image_size = 16, stream = true, workers = 4, memory_mb = 100}")
    assert [t.id for t in a.plan()] == [t.id for t in b.plan()]
    assert a.settings[0].label == b.settings[0].label == "imagefolder[image_size=16](100%,none)"
    assert b.plan()[0].config["data_options"]["stream"] is True  # but the trial reads as asked


def test_a_folder_in_memory_is_decoded_once_per_process_until_a_file_changes(tmp_path, monkeypatch):
    import os

    from hpo_kd.data import stream

    root = write_imagefolder(str(tmp_path / "f"), classes=2, per_class=(12, 3, 3))
    calls = []
    real = stream.ImageFiles.load

    def counting(self):
        calls.append(len(self))
        return real(self)

    monkeypatch.setattr(stream.ImageFiles, "load", counting)
    first = data.load("imagefolder", root=root, image_size=8, stream=False)
    again = data.load("imagefolder", root=root, image_size=8, stream=False)
    assert sorted(calls) == [6, 6, 24]  # train, val, test: once
    assert torch.equal(first.splits["test"][0], again.splits["test"][0])
    first.splits["test"][0][:] = 0  # a trial that wrote into its split would not touch the next one
    assert not torch.equal(first.splits["test"][0], again.splits["test"][0])
    png = os.path.join(root, "test", "c0", "0.png")
    from PIL import Image

    Image.new("RGB", (40, 36), (1, 2, 3)).save(png)
    os.utime(png, ns=(1, 1))  # another size and time: the folder changed
    changed = data.load("imagefolder", root=root, image_size=8, stream=False)
    assert sorted(calls) == [6, 6, 6, 24]  # only the changed split is decoded again
    assert not torch.equal(changed.splits["test"][0], again.splits["test"][0])


def test_batchnorm_statistics_recomputed_from_a_streamed_folder_equal_the_in_memory_ones(both):
    """`eval_bn = "recompute"` reads the train split once per evaluation: from disk, the same
    statistics as from memory."""
    from hpo_kd import models
    from hpo_kd.train import recomputed_bn

    mem, disk = both
    torch.manual_seed(0)
    model = models.create("cnn_bn", mem.input_shape, mem.num_classes)
    stats = []
    for bundle in (mem, disk):
        with recomputed_bn(model, bundle.splits["train"][0], bundle.prepare, chunk=512):
            stats.append([b.clone() for b in model.buffers()])
    assert all(torch.equal(a, b) for a, b in zip(*stats))
    assert not torch.equal(stats[0][0], torch.zeros_like(stats[0][0]))
