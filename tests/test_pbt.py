"""PBT (hpo_kd.tune.pbt): seeded draws, explore in range, checkpoint/restore of the trainer's state
(an exploit copies weights and tau), and, through Ray, a tiny study: same result twice, resume."""

import os
import random

import pytest
import torch

from hpo_kd.study import load_study
from hpo_kd.tune import pbt

SEARCH = {
    "population": 3,
    "interval": 1,
    "quantile": 0.25,
    "resample_probability": 0.25,
    "low": 1.0,
    "high": 16.0,
    "seed": 0,
    "method": "fixed",
}

STUDY = """
name = "tinypbt"
seeds = [0]
[train]
epochs = 3
teacher_epochs = 2
batch_size = 32
lr = 0.1
[[settings]]
dataset = "digits"
fraction = 0.3
teacher = "mlp"
student = "mlp"
[methods.pbt]
population = 3
interval = 1
"""


def test_initial_taus_seeded_and_in_range():
    a, b = pbt.initial_taus(SEARCH, 0), pbt.initial_taus(SEARCH, 0)
    assert a == b and len(a) == 3 and all(1.0 <= t <= 16.0 for t in a)
    assert pbt.initial_taus(SEARCH, 1) != a


def test_explore_stays_in_range():
    rng = random.Random(0)
    seen = set()
    for tau in (1.0, 15.9, 16.0, 4.0):
        for _ in range(200):
            new = pbt.explore(tau, SEARCH, rng)
            assert 1.0 <= new <= 16.0
            seen.add(round(new / tau, 6))
    assert {1.2, 0.8} <= seen  # perturbed, and (other ratios) resampled
    assert pbt.interval_of({}, 20) == 5 and pbt.interval_of({}, 2) == 1 and pbt.interval_of({"interval": 3}, 20) == 3


def _cfg(study_path, cache, tau):
    study = load_study(study_path)
    cfg = dict(study.base_config(study.settings[0], 0), method="fixed", tau_t=tau, tau_s=tau)
    return dict(cfg, cache_dir=cache, device="cpu", threads=1)


def test_exploit_copies_weights_tau_and_state(study_file, cache):
    from hpo_kd.train import student_trainer

    path = study_file(STUDY)  # a member is the plain trial's trainer, run a few epochs at a time
    # A: 2 epochs straight at tau 2
    run_a = student_trainer(_cfg(path, cache, 2.0))
    a = run_a.members[0]
    run_a.run(0, 1)
    rows = list(a.history)
    saved = pbt.load_bytes(pbt.save_bytes(run_a.state(1)))
    run_a.run(1, 2)
    # B (tau 8) copies A after its first epoch and goes on at A's tau: A's run, bitwise
    run_b = student_trainer(_cfg(path, cache, 8.0))
    b = run_b.members[0]
    run_b.run(0, 1)
    start = pbt.load_state(run_b, saved, 2.0)
    assert start == 1 and b.method.temperatures() == (2.0, 2.0)
    assert [r["tau_t"] for r in b.history] == [2.0]
    run_b.run(start, 2)
    for pa, pb in zip(a.model.state_dict().values(), b.model.state_dict().values()):
        assert torch.equal(pa, pb)
    assert [r["val_acc"] for r in a.history] == [r["val_acc"] for r in b.history]
    assert rows == a.history[:1]
    # C (tau 8) copies A's epoch-1 state and explores to another tau: A's weights, C's new tau
    run_c = student_trainer(_cfg(path, cache, 8.0))
    c = run_c.members[0]
    pbt.load_state(run_c, saved, 2.4)
    for k, v in saved["model"].items():
        assert torch.equal(c.model.state_dict()[k], v)
    epochs = []
    run_c.run(1, 2, epochs.append)
    assert epochs == [2] and [r["tau_t"] for r in c.history] == [2.0, 2.4]


def test_unfinished_search_runs_again_whole(study_file, tmp_path):
    from hpo_kd.store import Store
    from hpo_kd.tune import Runner

    study = load_study(study_file(STUDY))
    runner = Runner(study, runs_dir=str(tmp_path / "runs"))
    search = next(t for t in study.plan() if t.method == "pbt")
    assert search.budget == 3
    store = Store(runner.folder)
    store.add({"trial_id": f"{search.id}-0", "unit_id": search.id, "method": "pbt", "status": "ok"})
    runner.store = Store(runner.folder, create=False)
    todo = runner.pending()
    assert search in todo and runner.remaining([search]) == 3


@pytest.mark.slow
def test_study_same_result_twice_and_resume(study_file, tmp_path, capsys):
    ray = pytest.importorskip("ray")
    from hpo_kd.cli import main
    from hpo_kd.store import Store
    from hpo_kd.tune import Runner

    path = study_file(STUDY)
    assert main(["run", path, "--dry-run", "--runs-dir", str(tmp_path / "dry")]) == 0
    out = capsys.readouterr().out
    assert "pbt" in out and "3 trial(s)" in out
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        results = []
        for name in ("a", "b"):
            runs = str(tmp_path / name)
            assert Runner(load_study(path), runs_dir=runs).run()["ran"] == 4  # teacher + 3 members
            t = Store(os.path.join(runs, "tinypbt")).trials()
            t = t[t["method"] == "pbt"].sort_values("trial_index")
            assert list(t["trial_index"]) == [0, 1, 2] and (t["status"] == "ok").all()
            assert t["tau_t"].between(1.0, 16.0).all()
            c = Store(os.path.join(runs, "tinypbt")).curves()
            c = c[c["trial_id"].isin(t["trial_id"])]
            assert len(c) == 9 and c["tau_t"].between(1.0, 16.0).all()
            results.append(
                (
                    list(t["tau_t"]),
                    list(t["val_acc"]),
                    list(t["test_acc"]),
                    list(c.sort_values(["trial_id", "epoch"])["tau_t"]),
                )
            )
        assert results[0] == results[1]
        # resumed: the finished search is not run again
        assert Runner(load_study(path), runs_dir=str(tmp_path / "a")).run()["ran"] == 0
    finally:
        ray.shutdown()
