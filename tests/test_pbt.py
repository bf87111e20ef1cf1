"""PBT: seeded draws, explore in range, Tune's quantile rule; a population in one process
(hpo_kd.train.population: an exploit copies weights, momentum and tau between members, the same
decisions twice, no exploit = the grid's students); through Ray Tune's PBT (hpo_kd.tune.pbt), a
checkpoint/restore of the trainer's state; and, through Ray, tiny studies: same result twice, resume."""

import os
import random

import pytest
import torch

from hpo_kd.study import load_study
from hpo_kd.train import population
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
    a, b = population.initial_taus(SEARCH, 0), population.initial_taus(SEARCH, 0)
    assert a == b and len(a) == 3 and all(1.0 <= t <= 16.0 for t in a)
    assert population.initial_taus(SEARCH, 1) != a


def test_explore_stays_in_range():
    rng = random.Random(0)
    seen = set()
    for tau in (1.0, 15.9, 16.0, 4.0):
        for _ in range(200):
            new = population.explore(tau, SEARCH, rng)
            assert 1.0 <= new <= 16.0
            seen.add(round(new / tau, 6))
    assert {1.2, 0.8} <= seen  # perturbed, and (other ratios) resampled
    interval_of = population.interval_of
    assert interval_of({}, 20) == 5 and interval_of({}, 2) == 1 and interval_of({"interval": 3}, 20) == 3


def test_quantiles_follow_tunes_rule():
    scores = [(0, 0.5), (1, 0.2), (2, 0.9), (3, 0.2), (4, 0.7)]
    assert population.quantiles(scores, 0.25) == ([1, 3], [4, 2])  # ceil(5 * 0.25) = 2; a tie keeps its order
    assert population.quantiles(scores, 0.5) == ([1, 3], [4, 2])  # at most n / 2
    assert population.quantiles(scores[:3], 0.25) == ([1], [2])
    assert population.quantiles(scores[:1], 0.5) == ([], [])


def _strip(history):
    """A curve without its timings (which differ from run to run)."""
    return [{k: v for k, v in r.items() if k not in ("epoch_seconds", "samples_per_s")} for r in history]


def test_an_exploit_copies_weights_momentum_and_curve_and_then_the_copy_trains_as_its_donor(study_file, cache):
    from hpo_kd.train import trainers

    path = study_file(STUDY)
    ((idx, trainer),) = trainers([_cfg(path, cache, 2.0), _cfg(path, cache, 8.0)])
    assert idx == [0, 1] and trainer.group  # the members of a population train as one group
    trainer.run(0, 1)
    (src, dst) = trainer.members
    population.copy_member(trainer, src, trainer, dst, 2.0)
    for p_src, p_dst in zip(src.model.parameters(), dst.model.parameters()):
        assert torch.equal(p_src, p_dst) and p_src is not p_dst
        m_src = trainer.optimizer.state[p_src]["momentum_buffer"]
        m_dst = trainer.optimizer.state[p_dst]["momentum_buffer"]
        assert torch.equal(m_src, m_dst) and m_src.data_ptr() != m_dst.data_ptr()
    assert dst.method.temperatures() == (2.0, 2.0) and dst.history == src.history
    trainer.run(1, 3)  # the copy at its donor's tau: the donor's run, bitwise
    for p_src, p_dst in zip(src.model.state_dict().values(), dst.model.state_dict().values()):
        assert torch.equal(p_src, p_dst)
    assert _strip(src.history) == _strip(dst.history) and len(dst.history) == 3


def test_a_population_makes_the_same_decisions_twice_and_without_exploits_is_the_grid(study_file, cache):
    from hpo_kd.train import run_trials

    cfg = _cfg(study_file(STUDY), cache, 4.0)
    logs = [[], []]
    a, b = (population.run_population(cfg, SEARCH, log=log.append) for log in logs)
    assert logs[0] == logs[1] and logs[0], "the same exploits, and there were some"
    assert [_strip(r["history"]) for r in a] == [_strip(r["history"]) for r in b]
    assert all(r["status"] == "ok" and r["epochs_run"] == 3 for r in a)
    assert [r["tau_t"] for r in a] != population.initial_taus(SEARCH, 0), "some member explored"
    assert all(1.0 <= r["tau_t"] <= 16.0 for r in a) and all(r["grouped"] == 3 for r in a)
    # interval >= epochs: no exploit, every member the grid's student at its tau
    alone = population.run_population(cfg, dict(SEARCH, interval=3))
    taus = population.initial_taus(SEARCH, 0)
    grid = run_trials([dict(cfg, tau_t=t, tau_s=t) for t in taus])
    assert [_strip(r["history"]) for r in alone] == [_strip(r["history"]) for r in grid]
    assert [r["tau_t"] for r in alone] == taus


def test_a_population_that_cannot_group_trains_in_turns_with_the_same_result(study_file, cache, monkeypatch):
    """A student that cannot train in a group (a residual network): one trainer per member, run in
    turns, each on its own random streams; the same numbers as the group."""
    from hpo_kd.train import trials

    cfg = _cfg(study_file(STUDY), cache, 4.0)
    grouped = population.run_population(cfg, SEARCH)
    monkeypatch.setattr(trials, "why_not_groupable", lambda model: "not in this test")
    turns = population.run_population(cfg, SEARCH)
    assert all(r["grouped"] == 1 for r in turns)
    assert [_strip(r["history"]) for r in turns] == [_strip(r["history"]) for r in grouped]


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


def _pbt_rows(runs):
    """A PBT study's member rows (in population order) and their curves."""
    from hpo_kd.store import Store

    store = Store(os.path.join(runs, "tinypbt"))
    t = store.trials()
    t = t[t["method"] == "pbt"].sort_values("trial_index")
    assert list(t["trial_index"]) == [0, 1, 2] and (t["status"] == "ok").all()
    assert t["tau_t"].between(1.0, 16.0).all() and (t["tau_t"] == t["tau_t_config"]).all()
    assert (t["epochs_run"] == 3).all() and t["trial_id"].nunique() == 3
    c = store.curves()
    c = c[c["trial_id"].isin(t["trial_id"])].sort_values(["trial_id", "epoch"])
    assert len(c) == 9 and c["tau_t"].between(1.0, 16.0).all()
    return t, c


@pytest.mark.slow
def test_study_same_result_twice_and_resume(shared_ray, study_file, tmp_path, capsys, cache):
    """Through Ray: a grouped population is one Ray Tune trial whose rows are what
    `run_population` gives; Ray Tune's PBT (`grouped = false`) gives the same result twice; a
    finished search is not run again."""
    from hpo_kd.cli import main
    from hpo_kd.tune import Runner

    path = study_file(STUDY)
    assert main(["run", path, "--dry-run", "--runs-dir", str(tmp_path / "dry")]) == 0
    out = capsys.readouterr().out
    assert "pbt" in out and "3 trial(s)" in out
    runner = Runner(load_study(path), runs_dir=str(tmp_path / "grouped"))
    assert runner.run()["ran"] == 4  # teacher + 3 members
    assert runner.timing["trials"] == 2, "the teacher, then the population as one Ray Tune trial"
    t, c = _pbt_rows(str(tmp_path / "grouped"))
    direct = population.run_population(_cfg(path, cache, 4.0), SEARCH)
    assert list(t["val_acc"]) == [r["val_acc"] for r in direct]
    assert list(t["tau_t"]) == [r["tau_t"] for r in direct]
    assert list(c["tau_t"]) == [h["tau_t"] for r in direct for h in r["history"]]
    assert Runner(load_study(path), runs_dir=str(tmp_path / "grouped")).run()["ran"] == 0  # resumed: nothing to do

    ray_pbt = study_file(STUDY + "grouped = false\n", "ray.toml")
    results = []
    for name in ("a", "b"):
        runs = str(tmp_path / name)
        assert Runner(load_study(ray_pbt), runs_dir=runs).run()["ran"] == 4  # teacher + 3 members
        t, c = _pbt_rows(runs)
        results.append((list(t["tau_t"]), list(t["val_acc"]), list(t["test_acc"]), list(c["tau_t"])))
    assert results[0] == results[1]
    assert Runner(load_study(ray_pbt), runs_dir=str(tmp_path / "a")).run()["ran"] == 0
