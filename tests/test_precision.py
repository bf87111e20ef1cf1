"""precision = "bf16": the forward passes under bf16 autocast, the loss and temperatures in fp32.
CPU autocast supports bf16, so the whole path runs here; on a GPU the same code runs with CUDA's
autocast (and channels_last, cudnn.benchmark, data on the device), which `make gpu-check` tries."""

import math
import os

import pytest
import torch

from hpo_kd import cli
from hpo_kd import data as data_mod
from hpo_kd import models as models_mod
from hpo_kd import train as train_mod
from hpo_kd.train import TrialConfig, run_trial


def _cfg(cache, **kw):
    # An MLP teacher: a CPU without native bf16 runs a CNN teacher's convolutions slowly (~30 s a
    # training); the convolutions under autocast are tested by test_predict_returns_fp32_logits_under_bf16.
    base = dict(dataset="digits", teacher="mlp", epochs=2, teacher_epochs=2, cache_dir=cache, device="cpu")
    base.update(kw)
    return base


def _dtypes_seen(monkeypatch):
    """Record the dtype of every Linear output of the students the trainer creates."""
    seen = []
    real = models_mod.create

    def create(*a, **k):
        m = real(*a, **k)
        for mod in m.modules():
            if isinstance(mod, torch.nn.Linear):
                mod.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
        return m

    monkeypatch.setattr(models_mod, "create", create)
    return seen


@pytest.fixture(scope="module")
def bf16_cache(tmp_path_factory):
    """One cache for the methods below: the first trial trains the bf16 teacher, the others load it."""
    return str(tmp_path_factory.mktemp("bf16_teacher"))


@pytest.mark.parametrize(
    "method,options",
    [
        ("fixed", {}),
        ("nokd", {}),
        ("dts", {}),
        ("ctkd", {}),
        ("mkd", {}),
        ("mkd", {"first_order": True}),
    ],
)
def test_bf16_runs_every_method_on_the_cpu_with_fp32_losses_and_temperatures(bf16_cache, monkeypatch, method, options):
    seen = _dtypes_seen(monkeypatch)
    taus = {} if method in ("nokd", "dts", "ctkd") else {"tau_t": 4.0, "tau_s": 4.0}
    r = run_trial(_cfg(bf16_cache, method=method, method_options=options, precision="bf16", **taus))
    assert r["status"] == "ok" and r["epochs_run"] == 2
    assert torch.bfloat16 in seen  # the student's forward ran under autocast
    for row in r["history"]:
        assert all(math.isfinite(v) for k, v in row.items() if k.startswith("train_") or k.endswith("_acc"))
    assert r["history"][-1]["val_acc"] > 0.3  # it learns: 10 classes, chance is 0.1 (epoch 1 is warm-up)
    if method != "nokd":
        assert math.isfinite(r["tau_t"]) and isinstance(r["tau_t"], float)


def test_bf16_and_fp32_train_the_same_student_closely_and_have_their_own_teachers(bf16_cache):
    cache = bf16_cache  # may already hold the bf16 teacher (trained above), never an fp32 one
    bf16 = run_trial(_cfg(cache, tau_t=4.0, tau_s=4.0, epochs=4, precision="bf16"))
    fp32 = run_trial(_cfg(cache, tau_t=4.0, tau_s=4.0, epochs=4))
    assert fp32["teacher_cached"] is False  # the bf16 teacher is not the fp32 one: trained anew
    teachers = [f for f in os.listdir(os.path.join(cache, "teachers")) if f.endswith(".pt")]
    assert len(teachers) == 2
    assert abs(bf16["test_acc"] - fp32["test_acc"]) < 0.1
    assert abs(bf16["teacher_test_acc"] - fp32["teacher_test_acc"]) < 0.1
    c32, c16 = TrialConfig(**_cfg(cache)).resolved(), TrialConfig(**_cfg(cache, precision="bf16")).resolved()
    bundle = data_mod.load("digits", seed=0)
    k32, k16 = train_mod.teacher_key(c32, bundle), train_mod.teacher_key(c16, bundle)
    assert "precision" not in k32 and k16["precision"] == "bf16"  # fp32 keys are as before


def test_predict_returns_fp32_logits_under_bf16():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.Flatten(), torch.nn.Linear(256, 10))
    x = torch.randn(300, 1, 8, 8)
    out = train_mod.predict(model, x, lambda t: t, batch_size=128, precision="bf16")
    assert out.dtype == torch.float32 and out.shape == (300, 10)
    ref = train_mod.predict(model, x, lambda t: t)
    assert not torch.equal(out, ref) and torch.allclose(out, ref, atol=0.1)


def test_the_gpu_helpers_leave_cpu_tensors_and_bundles_as_they_are():
    x = torch.randn(2, 3, 8, 8)
    assert train_mod.as_input(x) is x
    m = torch.nn.Conv2d(3, 4, 3)
    assert train_mod.gpu_ready(m, torch.device("cpu"), image=True) is m
    assert m.weight.is_contiguous()  # channels_last only on a GPU
    bundle = data_mod.load("digits", seed=0)
    before = bundle.splits["train"][0]
    assert train_mod.on_device(bundle, torch.device("cpu")).splits["train"][0] is before


def test_precision_is_an_option_of_distill_and_of_a_study_and_is_checked(tmp_path, capsys):
    assert "precision" in train_mod.STUDY_TRAIN_KEYS
    code = cli.main(
        [
            "distill",
            "--cache-dir",
            str(tmp_path),
            "--epochs",
            "1",
            "--teacher-epochs",
            "1",
            "--precision",
            "fp16",
            "--quiet",
        ]
    )
    assert code == 2 and "precision = 'fp16' is not allowed; allowed: fp32, bf16" in capsys.readouterr().err
