"""One trial: teacher cache, determinism, divergence, and the command line (hpo_kd.train, hpo_kd.cli)."""

import json
import math
import os
import subprocess
import sys

import pytest
import torch

from hpo_kd import cli
from hpo_kd import data as data_mod
from hpo_kd import models as models_mod
from hpo_kd import train as train_mod
from hpo_kd.methods.base import METHODS
from hpo_kd.methods.fixed import Fixed
from hpo_kd.train import TrialConfig, get_teacher, run_trial
from hpo_kd.train import logits as logits_mod
from hpo_kd.train import loop as loop_mod

TIMING = {"epoch_seconds", "samples_per_s", "seconds"}


def _cfg(cache, **kw):
    base = dict(dataset="digits", epochs=2, teacher_epochs=2, cache_dir=cache, device="cpu")
    base.update(kw)
    return base


def _strip(history):
    return [{k: v for k, v in row.items() if k not in TIMING} for row in history]


# --------------------------------------------------------------------------- teacher cache


def test_teacher_logits_are_computed_once_per_process_and_change_nothing(tmp_path, monkeypatch):
    """A reused Ray actor runs many trials with one teacher: its logits of the training split are
    remembered per (teacher file, data, device); the results are those of a fresh process."""
    cache = str(tmp_path / "cache")
    logits_mod._LOGITS.clear()
    fresh = run_trial(_cfg(cache, tau_t=2.0, tau_s=2.0))  # computes and remembers them
    n_train = len(data_mod.load("digits", seed=0).splits["train"][1])
    calls = []
    real_predict = logits_mod.predict

    def counting_predict(model, x, prepare, **kw):
        if len(x) == n_train:  # not the val/test evaluations
            calls.append(len(x))
        return real_predict(model, x, prepare, **kw)

    monkeypatch.setattr(logits_mod, "predict", counting_predict)  # teacher_logits's
    again = run_trial(_cfg(cache, tau_t=2.0, tau_s=2.0))
    assert calls == [], "the teacher's training-split logits were computed again"
    assert _strip(again["history"]) == _strip(fresh["history"])
    logits_mod._LOGITS.clear()
    cold = run_trial(_cfg(cache, tau_t=2.0, tau_s=2.0))
    assert len(calls) == 1
    assert _strip(cold["history"]) == _strip(fresh["history"])
    other = run_trial(_cfg(cache, tau_t=2.0, tau_s=2.0, split_seed=1))  # other data: other logits
    assert len(calls) == 2 and _strip(other["history"]) != _strip(fresh["history"])


def test_teacher_cache_hit_trains_nothing(tmp_path, monkeypatch):
    cache = str(tmp_path / "cache")
    calls = []
    real_run = loop_mod.Trainer.run

    def counting_run(self, *args, **kwargs):  # the teacher's training and the student's
        calls.append(self.members[0].method.name)
        return real_run(self, *args, **kwargs)

    monkeypatch.setattr(loop_mod.Trainer, "run", counting_run)
    cfg = _cfg(cache, teacher_seed=11)
    r1 = run_trial(cfg)
    assert calls == ["nokd", "fixed"]  # teacher, then student
    assert r1["teacher_cached"] is False and r1["status"] == "ok"
    teachers = os.listdir(os.path.join(cache, "teachers"))
    pts = sorted(f for f in teachers if f.endswith(".pt"))
    assert len(pts) == 1
    path = os.path.join(cache, "teachers", pts[0])
    mtime = os.stat(path).st_mtime_ns

    calls.clear()
    r2 = run_trial(cfg)
    assert calls == ["fixed"]  # the student only
    assert r2["teacher_cached"] is True
    assert os.stat(path).st_mtime_ns == mtime
    assert r2["teacher_val_acc"] == r1["teacher_val_acc"]
    assert r2["teacher_test_acc"] == r1["teacher_test_acc"]

    # get_teacher directly: same path, cached, weights identical to a fresh load.
    c = TrialConfig(**cfg).resolved()
    from hpo_kd import data

    bundle = data.load("digits", seed=0)
    t1, info1 = get_teacher(c, bundle, torch.device("cpu"))
    assert info1["cached"] and os.path.realpath(info1["path"]) == os.path.realpath(path)
    assert os.stat(path).st_mtime_ns == mtime
    assert not any(p.requires_grad for p in t1.parameters()) and not t1.training
    assert calls == ["fixed"]


def test_a_teacher_evaluated_after_its_last_epoch_only_is_the_same_teacher(monkeypatch):
    """Teachers skip the per-epoch val/test passes (nobody reads their curve): the weights and
    the recorded accuracies are those of a run that evaluates every epoch."""
    from hpo_kd import data, methods, models

    bundle = data.load("digits", seed=0)
    c = TrialConfig(dataset="digits", epochs=3, device="cpu").resolved()
    evaluated = []
    real_accuracy = loop_mod.accuracy

    def counting_accuracy(model, split, *a, **kw):
        evaluated.append(len(split[1]))
        return real_accuracy(model, split, *a, **kw)

    monkeypatch.setattr(loop_mod, "accuracy", counting_accuracy)
    runs = {}
    for every in (True, False):
        torch.manual_seed(0)
        model = models.create("cnn_small", bundle.input_shape, bundle.num_classes)
        evaluated.clear()
        out = train_mod.fit(
            model, bundle, methods.create("nokd"), None, c, torch.device("cpu"), None, every_epoch=every
        )
        runs[every] = (out, {k: v.clone() for k, v in model.state_dict().items()}, len(evaluated))
    (full, w_full, n_full), (last, w_last, n_last) = runs[True], runs[False]
    assert (n_full, n_last) == (6, 2)  # val and test per epoch, or after the last epoch only
    assert last["status"] == "ok" and last["epochs_run"] == 3
    assert (last["val_acc"], last["test_acc"]) == (full["val_acc"], full["test_acc"])
    assert all(torch.equal(w_full[k], w_last[k]) for k in w_full)
    assert [r["val_acc"] for r in last["history"]][:2] == [None, None]


def test_other_teacher_seed_or_epochs_is_another_cache_file(cache):
    def teacher_path(**kw):
        c = TrialConfig(**_cfg(cache, **kw)).resolved()
        from hpo_kd import data

        bundle = data.load("digits", seed=c.split_seed)
        model, info = get_teacher(c, bundle, torch.device("cpu"))
        return info["path"], model

    p0, m0 = teacher_path(teacher_seed=21, teacher_epochs=1)
    p1, m1 = teacher_path(teacher_seed=22, teacher_epochs=1)
    p2, _ = teacher_path(teacher_seed=21, teacher_epochs=2)
    p3, _ = teacher_path(teacher_seed=21, teacher_epochs=1, split_seed=1)
    assert len({p0, p1, p2, p3}) == 4
    assert all(os.path.exists(p) for p in (p0, p1, p2, p3))
    # Another teacher seed gives other weights.
    w0 = next(iter(m0.state_dict().values()))
    w1 = next(iter(m1.state_dict().values()))
    assert not torch.equal(w0, w1)
    # The saved info records the key.
    blob = torch.load(p0, weights_only=True)
    info = json.loads(blob["info"])
    assert info["key"]["seed"] == 21 and info["key"]["epochs"] == 1


# --------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("augment", ["none", "strong"])
def test_same_seed_same_metrics(cache, tmp_path, augment):
    cfg = _cfg(cache, augment=augment, seed=3)
    a = run_trial(cfg)
    b = run_trial(cfg)
    assert a["status"] == b["status"] == "ok"
    assert len(a["history"]) == 2
    assert _strip(a["history"]) == _strip(b["history"])
    assert a["tau_t"] == b["tau_t"] and a["val_acc"] == b["val_acc"]
    # A fresh cache (teacher trained again in the same process) gives the same teacher and
    # student: the teacher's initialisation is seeded by teacher_seed, not inherited.
    torch.randn(100)  # disturb the global generators
    c = run_trial(dict(cfg, cache_dir=str(tmp_path / "fresh")))
    assert c["teacher_cached"] is False
    assert c["teacher_val_acc"] == a["teacher_val_acc"]
    assert _strip(c["history"]) == _strip(a["history"])
    d = run_trial(dict(cfg, seed=4))
    assert _strip(d["history"]) != _strip(a["history"])
    assert d["history"][-1]["train_loss"] != a["history"][-1]["train_loss"]


# --------------------------------------------------------------------------- divergence


class _NaNTemperature(Fixed):
    name = "nan_test"

    def temperatures(self):
        return float("nan"), float("nan")


def test_non_finite_loss_is_reported_as_diverged(cache, monkeypatch):
    monkeypatch.setitem(METHODS._items, "nan_test", _NaNTemperature)
    rows = []
    r = run_trial(_cfg(cache, method="nan_test"), report=rows.append)
    assert r["status"] == "diverged"
    assert "non-finite" in r["error"]
    for k in ("val_acc", "test_acc", "best_val_acc", "test_at_best_val", "method_state"):
        assert r[k] is None
    assert rows == [] and r["epochs_run"] == 0


def test_huge_learning_rate_diverges_without_raising(cache):
    # nokd: no teacher (a teacher trained with this lr would diverge too, and get_teacher raises).
    r = run_trial(_cfg(cache, method="nokd", lr=1e6, warmup_epochs=0, epochs=2))
    assert r["status"] == "diverged" and r["val_acc"] is None and r["epochs_run"] == 0


# --------------------------------------------------------------------------- command line


def _distill(capsys, *args, cache="unused"):
    code = cli.main(["distill", "--cache-dir", cache, "--epochs", "1", "--teacher-epochs", "1", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize(
    "args,words",
    [
        (["--dataset", "imagenet"], ["'imagenet'", "allowed", "digits", "mnist1d", "cifar10"]),
        (["--student", "nonet"], ["'nonet'", "allowed", "mlp", "cnn_small", "timm"]),
        (["--teacher", "nonet"], ["'nonet'", "allowed", "cnn_wide"]),
        (["--method", "magic"], ["'magic'", "allowed", "fixed", "mkd", "dts", "ctkd", "nokd"]),
        (["--tau-t", "0"], ["tau_t", "(0, inf]"]),
        (["--tau-s", "-1"], ["tau_s", "(0, inf]"]),
        (["--alpha", "1.5"], ["alpha", "[0, 1]"]),
        (["--fraction", "0"], ["fraction", "(0, 1]"]),
        (["--fraction", "1.5"], ["fraction", "(0, 1]"]),
        (["--epochs", "0"], ["epochs", "[1, inf]"]),
        (["--augment", "mega"], ["'mega'", "none", "weak", "strong"]),
        (["--optimizer", "lbfgs"], ["'lbfgs'", "sgd", "adamw"]),
        (["--method", "mkd", "--opt", "speed=3"], ["speed", "allowed", "meta_lr"]),
        (["--method", "mkd", "--opt", "learn=alpha"], ["learn", "both", "tau_t", "tau_s"]),
    ],
)
def test_cli_bad_inputs_exit_2(capsys, tmp_path, args, words):
    code, out, err = _distill(capsys, *args, cache=str(tmp_path))
    assert code == 2
    assert err.startswith("hpo-kd: error: ")
    assert "Traceback" not in err and out == ""
    for w in words:
        assert w in err, (w, err)
    assert not os.path.exists(tmp_path / "teachers")  # rejected before any training


def test_cli_missing_cifar_root(capsys, tmp_path):
    missing = str(tmp_path / "nowhere")
    code, out, err = _distill(capsys, "--dataset", "cifar10", "--root", missing, cache=str(tmp_path))
    assert code == 2 and "Traceback" not in err
    assert missing in err and "cifar-10-batches-py" in err
    code, out, err = _distill(capsys, "--dataset", "cifar10", cache=str(tmp_path))
    assert code == 2 and "--root" in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_cli_cuda_without_gpu(capsys, tmp_path):
    code, out, err = _distill(capsys, "--device", "cuda", cache=str(tmp_path))
    assert code == 2 and "Traceback" not in err
    assert "cuda" in err and "allowed: cpu, auto" in err


def test_cli_unparsable_number_exits_2(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["distill", "--epochs", "two"])
    assert e.value.code == 2
    assert "--epochs" in capsys.readouterr().err


def test_cli_list(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    lines = {line.split(":")[0].strip(): line for line in out.splitlines() if ":" in line}
    assert {"data sets", "models", "methods"} <= set(lines)
    for name in ("digits", "mnist1d", "cifar10", "cifar100", "imagefolder"):
        assert name in lines["data sets"]
    for name in ("mlp", "mlp_wide", "cnn_small", "cnn_wide"):
        assert name in lines["models"]
    for name in ("fixed", "nokd", "mkd", "dts", "ctkd"):
        assert name in lines["methods"]


def test_cli_distill_in_process(capsys, cache):
    code = cli.main(
        [
            "distill",
            "--dataset",
            "digits",
            "--epochs",
            "1",
            "--teacher-epochs",
            "1",
            "--cache-dir",
            cache,
            "--method",
            "mkd",
            "--opt",
            "learn=tau_s",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0
    result = json.loads(out.strip().splitlines()[-1])
    assert result["status"] == "ok" and result["epochs_run"] == 1
    assert "history" not in result and result["tau_t"] == pytest.approx(4.0)
    assert "epoch   1" in err and "meta_loss=" in err


def _hpo_kd_script():
    here = os.path.join(os.path.dirname(sys.executable), "hpo-kd")
    return here if os.path.exists(here) else "hpo-kd"


@pytest.mark.slow
def test_cli_subprocess_distill(tmp_path):
    cache = tmp_path / "cache"
    env = dict(os.environ, HPO_KD_CACHE=str(tmp_path / "env_cache"), OMP_NUM_THREADS="1")
    p = subprocess.run(
        [
            _hpo_kd_script(),
            "distill",
            "--dataset",
            "digits",
            "--epochs",
            "1",
            "--teacher-epochs",
            "1",
            "--cache-dir",
            str(cache),
        ],
        capture_output=True,
        text=True,
        cwd=str(tmp_path),
        env=env,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr
    result = json.loads(p.stdout.strip().splitlines()[-1])
    assert result["status"] == "ok"
    assert 0.0 <= result["val_acc"] <= 1.0 and math.isfinite(result["tau_s"])
    assert result["teacher_cached"] is False
    assert any(f.endswith(".pt") for f in os.listdir(cache / "teachers"))
    assert not (tmp_path / "env_cache").exists()  # --cache-dir wins over the environment


def test_the_store_owns_the_result_columns(tmp_path):
    """Every column a stored row takes from the trainer's result is returned by the trainer,
    travels in the Ray worker's final report, and is one of the store's columns."""
    import dataclasses

    from hpo_kd import record, store, worker

    assert store.TRIAL_COLUMNS == tuple(f.name for f in dataclasses.fields(store.TrialRecord))
    assert set(store.RESULT_COLUMNS) <= set(worker.SCALARS)
    assert set(store.RESULT_COLUMNS) <= set(store.TRIAL_COLUMNS)
    assert set(record.OUTCOME_COLUMNS) <= set(store.RESULT_COLUMNS)
    assert {"seed", "val_acc", "tau_t", "epochs_run", "grouped"} <= set(store.NUMERIC)
    assert not {"trial_id", "status", "device", "group_kernels"} & set(store.NUMERIC)
    r = run_trial(_cfg(str(tmp_path / "cache"), epochs=1, teacher_epochs=1))
    assert set(store.RESULT_COLUMNS) <= set(r)
    assert set(worker.SCALARS) <= set(r)


# --------------------------------------------------------------------------- bring your own teacher


def test_a_teacher_checkpoint_round_trips(tmp_path, capsys):
    """A trained teacher saved as a training script would save it ({"model": state_dict} with a
    DataParallel `module.` prefix) is loaded, evaluated, cached by the file's hash, and distils the
    same student as the teacher it was saved from."""
    cache = str(tmp_path / "cache")
    trained = run_trial(_cfg(cache, tau_t=4.0, tau_s=4.0))
    c = TrialConfig(**_cfg(cache)).resolved()
    bundle = data_mod.load("digits", seed=0)
    _, info = get_teacher(c, bundle, torch.device("cpu"))  # in use, the teacher's BatchNorm is folded
    weights = torch.load(info["path"], weights_only=True)["state_dict"]  # the cache keeps the trained layout
    ckpt = tmp_path / "teacher.pth"
    torch.save({"model": {f"module.{k}": v for k, v in weights.items()}, "epoch": 2}, ckpt)

    other_cache = str(tmp_path / "other")
    loaded = run_trial(_cfg(other_cache, tau_t=4.0, tau_s=4.0, teacher_checkpoint=str(ckpt)))
    assert loaded["teacher_cached"] is False
    assert loaded["teacher_val_acc"] == pytest.approx(info["val_acc"])
    assert loaded["teacher_test_acc"] == pytest.approx(info["test_acc"])
    assert _strip(loaded["history"]) == _strip(trained["history"])
    again = run_trial(_cfg(other_cache, tau_t=4.0, tau_s=4.0, teacher_checkpoint=str(ckpt)))
    assert again["teacher_cached"] is True

    # The command line: the same, and a checkpoint that does not fit the model exits 2 naming keys.
    code = cli.main(
        ["distill", "--cache-dir", other_cache, "--epochs", "2", "--teacher-checkpoint", str(ckpt), "--quiet"]
    )
    assert code == 0
    assert json.loads(capsys.readouterr().out)["teacher_val_acc"] == pytest.approx(info["val_acc"])
    code = cli.main(
        [
            "distill",
            "--cache-dir",
            other_cache,
            "--epochs",
            "1",
            "--teacher",
            "mlp",
            "--teacher-checkpoint",
            str(ckpt),
            "--quiet",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "missing keys" in err and "unexpected keys" in err and "Traceback" not in err
    code = cli.main(["distill", "--cache-dir", other_cache, "--teacher-checkpoint", str(tmp_path / "none.pth")])
    assert code == 2 and "teacher_checkpoint: file not found" in capsys.readouterr().err


def test_a_study_setting_takes_a_teacher_checkpoint(tmp_path, study_file, capsys):
    from hpo_kd.study import load_study

    ckpt = tmp_path / "t.pth"
    torch.save({"w": torch.zeros(1)}, ckpt)
    text = """
name = "byo"
[[settings]]
dataset = "digits"
teacher = "cnn_wide"
teacher_checkpoint = "t.pth"
[methods.nokd]
[methods.mkd]
"""
    s = load_study(study_file(text))
    assert s.settings[0].teacher_checkpoint == str(ckpt)
    assert "|teacher_checkpoint=" in s.settings[0].id
    assert all(t.config["teacher_checkpoint"] == str(ckpt) for t in s.plan())
    code = cli.main(["run", study_file(text.replace("t.pth", "gone.pth"), "b.toml"), "--dry-run"])
    err = capsys.readouterr().err
    assert code == 2 and "settings[0].teacher_checkpoint: file not found" in err


# --------------------------------------------------------------------------- the standard recipe


def test_multistep_schedule_decays_at_the_milestones():
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    sched = train_mod.make_scheduler(
        opt, total_steps=40, warmup_steps=0, schedule="multistep", decay_steps=(10, 20, 30), decay=0.1
    )
    lrs = []
    for _ in range(40):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == lrs[9] == pytest.approx(0.05)
    assert lrs[10] == lrs[19] == pytest.approx(0.005)
    assert lrs[20] == pytest.approx(0.0005) and lrs[39] == pytest.approx(0.00005)
    c = TrialConfig(dataset="digits", epochs=240, lr_schedule="multistep").resolved()
    assert train_mod.milestones(c) == [150, 180, 210]  # the CIFAR KD recipe's


def test_recipe_options_reach_the_trial_and_the_teacher(tmp_path, capsys):
    cache = str(tmp_path / "cache")
    base = _cfg(cache, tau_t=4.0, tau_s=4.0, epochs=4, lr_schedule="multistep", lr_milestones=[2, 3], warmup_epochs=0)
    r = run_trial(base)
    # an epoch's row holds the rate after its last step: decayed after epochs 2 and 3
    assert [row["lr"] for row in r["history"]] == pytest.approx([0.05, 0.005, 0.0005, 0.0005])
    c = TrialConfig(**base).resolved()
    bundle = data_mod.load("digits", seed=0)
    own = dict(base, teacher_lr=0.01, teacher_optimizer="adamw", teacher_batch_size=256)
    t0 = train_mod.teacher_key(c, bundle)
    t1 = train_mod.teacher_key(TrialConfig(**own).resolved(), bundle)
    assert (t0["lr"], t0["optimizer"], t0["batch_size"]) == (c.lr, "sgd", c.batch_size)
    assert (t1["lr"], t1["optimizer"], t1["batch_size"]) == (0.01, "adamw", 256)
    tc = train_mod.teacher_config(TrialConfig(**own).resolved())
    assert (tc.lr, tc.batch_size) == (0.01, 256)
    # the command line and a study's [train] table take the same options
    code = cli.main(
        ["distill", "--cache-dir", cache, "--epochs", "1", "--teacher-epochs", "1", "--lr-schedule", "steps", "--quiet"]
    )
    assert code == 2 and "lr_schedule = 'steps' is not allowed; allowed: cosine, multistep" in capsys.readouterr().err
    code = cli.main(
        ["distill", "--cache-dir", cache, "--epochs", "1", "--teacher-epochs", "1", "--lr-milestones", "3,2", "--quiet"]
    )
    assert code == 2 and "expected increasing integers" in capsys.readouterr().err


def test_the_frozen_teacher_has_its_batchnorm_folded_and_the_same_outputs(cache):
    """get_teacher returns the teacher with each BatchNorm folded into the layer before it (a
    faster forward); its logits equal those of the trained model, to float rounding."""
    c = TrialConfig(**_cfg(cache, teacher="cnn_mid", teacher_epochs=1)).resolved()
    bundle = data_mod.load("digits", seed=0)
    teacher, info = get_teacher(c, bundle, torch.device("cpu"))
    trained = models_mod.create("cnn_mid", bundle.input_shape, bundle.num_classes)
    trained.load_state_dict(torch.load(info["path"], weights_only=True)["state_dict"])
    trained.eval()
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in trained.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in teacher.modules())
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    x = bundle.prepare(bundle.splits["val"][0][:64])
    with torch.no_grad():
        torch.testing.assert_close(teacher(x), trained(x), rtol=1e-4, atol=1e-4)

    # a model torch.fx cannot trace is used as it is
    class Branchy(torch.nn.Module):
        def forward(self, x):
            return x if x.sum() > 0 else -x

    b = Branchy()
    assert models_mod.fold_batchnorm(b) is b


def test_teacher_logits_of_augmented_batches_are_replayed_for_other_temperatures(tmp_path, monkeypatch):
    """With augmentation the teacher sees each batch once per step; trials of the same data, seed and
    batches (e.g. the grid's temperatures) reuse the first one's recorded logits. The results are
    those computed without the replay, and an input that does not match its recording is sent to the
    teacher."""
    cache = str(tmp_path / "cache")
    cfg = lambda **kw: _cfg(cache, augment="strong", teacher_epochs=1, **kw)  # noqa: E731
    logits_mod._AUG_LOGITS.clear()
    first = run_trial(cfg(tau_t=1.0, tau_s=1.0))  # records
    assert len(logits_mod._AUG_LOGITS) == 1
    calls = []
    real = logits_mod._AugmentedTeacher.__call__

    def counting(self, x):
        n = self.reused
        z = real(self, x)
        calls.append(self.reused == n)  # True: the teacher ran
        return z

    monkeypatch.setattr(logits_mod._AugmentedTeacher, "__call__", counting)
    replayed = run_trial(cfg(tau_t=4.0, tau_s=4.0))
    assert calls and not any(calls), "the teacher ran although every batch was recorded"
    monkeypatch.setattr(logits_mod, "_AUG_LOGITS_BYTES", 0)  # replay off: the teacher runs every step
    calls.clear()
    direct = run_trial(cfg(tau_t=4.0, tau_s=4.0))
    assert calls and all(calls)
    assert _strip(replayed["history"]) == _strip(direct["history"])
    assert _strip(first["history"]) != _strip(direct["history"])
    # A recording whose inputs differ (here: corrupted fingerprints) is not used.
    monkeypatch.setattr(logits_mod, "_AUG_LOGITS_BYTES", 512 * 2**20)
    ((key, rec),) = logits_mod._AUG_LOGITS.items()
    logits_mod._AUG_LOGITS[key] = [(fp + 1, z * 0) for fp, z in rec]
    calls.clear()
    again = run_trial(cfg(tau_t=4.0, tau_s=4.0))
    assert calls and all(calls)
    assert _strip(again["history"]) == _strip(direct["history"])
    # Other seed: other batches, another recording.
    run_trial(cfg(tau_t=4.0, tau_s=4.0, seed=1))
    assert len(logits_mod._AUG_LOGITS) == 2
    logits_mod._AUG_LOGITS.clear()


def test_a_timm_teacher_takes_a_local_weights_file(tmp_path):
    """Any timm model loads a local weights file as the zoo's do (nested, `module.` prefix), and is
    evaluated with those weights: its recorded accuracy is that of the saved model."""
    from hpo_kd import models
    from hpo_kd.data import fake

    fake.write_cifar10(str(tmp_path / "data"))
    torch.manual_seed(5)
    teacher = models.create("resnet10t", (3, 32, 32), 10)
    torch.save({"state_dict": {f"module.{k}": v for k, v in teacher.state_dict().items()}}, tmp_path / "t.pth")
    bundle = data_mod.load("cifar10", seed=0, root=str(tmp_path / "data"))
    expected = train_mod.accuracy(teacher.eval(), bundle.splits["val"], bundle.prepare)
    out = run_trial(
        dict(
            dataset="cifar10",
            root=str(tmp_path / "data"),
            teacher="resnet10t",
            student="cnn_small",
            teacher_checkpoint=str(tmp_path / "t.pth"),
            epochs=1,
            cache_dir=str(tmp_path / "cache"),
            device="cpu",
        )
    )
    assert out["status"] == "ok" and out["teacher_val_acc"] == pytest.approx(expected)
    c = TrialConfig(
        dataset="cifar10",
        root=str(tmp_path / "data"),
        teacher="resnet10t",
        teacher_checkpoint=str(tmp_path / "t.pth"),
        cache_dir=str(tmp_path / "cache"),
    ).resolved()
    loaded, info = get_teacher(c, bundle, torch.device("cpu"))
    assert info["cached"] is True  # the run above cached it under the file's hash
    x = bundle.prepare(bundle.splits["test"][0][:16])
    with torch.no_grad():  # the saved weights, BatchNorm folded: equal to float rounding
        torch.testing.assert_close(loaded(x), teacher(x), atol=1e-4, rtol=1e-4)


# --------------------------------------------------------------------------- BatchNorm statistics at evaluation


def test_recomputed_bn_holds_the_train_splits_statistics_and_restores_the_running_ones():
    """Inside the context a BatchNorm's statistics are those of the given inputs (the mean exactly,
    the variance as the sample-weighted mean of the chunks' unbiased variances); on leaving, the
    running statistics, momentum and modes are what they were, bit for bit."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.BatchNorm1d(3), torch.nn.Dropout(0.5), torch.nn.Linear(3, 2))
    model.train()
    for _ in range(3):  # some running statistics from "training"
        model(torch.randn(8, 3) * 5 + 2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(2500, 3) * torch.tensor([1.0, 2.0, 3.0]) + torch.tensor([-1.0, 0.0, 4.0])
    bn = model[0]
    with train_mod.recomputed_bn(model, x, lambda t: t, chunk=1000) as m:
        assert m is model and not bn.training and not model[1].training
        torch.testing.assert_close(bn.running_mean, x.mean(0), rtol=0, atol=1e-5)
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
        chunks = [x[order[i : i + 1000]] for i in range(0, len(x), 1000)]
        var = sum(len(c) * c.var(0) for c in chunks) / len(x)
        torch.testing.assert_close(bn.running_var, var, rtol=1e-5, atol=1e-5)
        inside = model(x[:5])
    assert model.training and bn.training and bn.momentum == 0.1
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    # The predictions inside do not depend on the running statistics training left behind.
    other = torch.nn.Sequential(torch.nn.BatchNorm1d(3), torch.nn.Dropout(0.5), torch.nn.Linear(3, 2))
    other.load_state_dict(before)
    other[0].running_mean.fill_(100.0)
    with train_mod.recomputed_bn(other, x, lambda t: t, chunk=1000):
        torch.testing.assert_close(other(x[:5]), inside)


def test_recomputed_bn_changes_the_evaluation_only(cache):
    """`eval_bn = "recompute"` trains the same student as `running` (the same losses every epoch)
    and evaluates it with the train split's statistics; a teacher keeps its running statistics."""
    cfg = _cfg(cache, student="cnn_bn", teacher="cnn_small", augment="strong", epochs=3, seed=1)
    a = run_trial(dict(cfg, eval_bn="running"))
    b = run_trial(dict(cfg, eval_bn="recompute"))
    assert a["status"] == b["status"] == "ok"

    def losses(r):
        return [{k: v for k, v in row.items() if k.startswith("train_")} for row in r["history"]]

    assert losses(a) == losses(b)
    assert [r["val_acc"] for r in a["history"]] != [r["val_acc"] for r in b["history"]]
    assert b["teacher_val_acc"] == a["teacher_val_acc"]
    assert train_mod.teacher_config(TrialConfig(**dict(cfg, eval_bn="recompute")).resolved()).eval_bn == "running"


def test_eval_bn_names_what_it_allows():
    with pytest.raises(Exception) as e:
        TrialConfig(dataset="digits", eval_bn="precise").resolved()
    assert "eval_bn" in str(e.value) and "running, recompute" in str(e.value)
