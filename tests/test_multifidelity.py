"""Multi-fidelity searchers (hpo_kd.searchers.asha, .optuna_pruned; hpo_kd.tune.multifidelity):
their options, the budget in epochs, a stopped trial told to Optuna as PRUNED (not COMPLETE), a
pruner that acts, and, through Ray, tiny studies: trials stopped early with their true epochs,
the budget kept, the same results twice, resume."""

import os

import pandas as pd
import pytest

from hpo_kd.cli import main
from hpo_kd.study import load_study

optuna = pytest.importorskip("optuna")
pytest.importorskip("ray")

from optuna.trial import TrialState  # noqa: E402

BASE = """
name = "mf"
seeds = [0]
[train]
epochs = 4
teacher_epochs = 2
batch_size = 32
lr = 0.1
[[settings]]
dataset = "digits"
fraction = 0.5
teacher = "mlp"
student = "mlp"
"""


@pytest.mark.parametrize(
    "table,message",
    [
        ("[methods.asha]\ntemperatures = [1, 2]\nlow = 1.0", "methods.asha.temperatures: give either temperatures"),
        ("[methods.asha]\ntemperatures = [1, 2]\ntrials = 3", "methods.asha.trials: 3 is more than the 2 temperatures"),
        ("[methods.asha]\ntemperatures = [1, 0]", "methods.asha.temperatures: 0 is out of range"),
        ("[methods.asha]\nreduction_factor = 1", "methods.asha.reduction_factor: 1 is out of range; allowed: [2"),
        (
            '[methods.optuna_pruned]\npruner = "hyperband"',
            "pruner: 'hyperband' is not allowed; allowed: median, halving",
        ),
        ("[methods.optuna_pruned]\nbudget = 0", "methods.optuna_pruned.budget: 0 is out of range; allowed: [1, inf]"),
        ("[methods.optuna_pruned]\nlow = 8.0\nhigh = 2.0", "methods.optuna_pruned.low: low = 8.0 must be below high"),
    ],
)
def test_bad_options_exit_2_naming_the_key(study_file, capsys, tmp_path, table, message):
    path = study_file(BASE + table + "\n")
    assert main(["run", path, "--dry-run", "--runs-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert path in err and message in err


def test_defaults_and_the_budget_is_not_in_the_id(study_file):
    s = load_study(study_file(BASE + "[methods.asha]\ntemperatures = [1, 2, 4, 8, 16]\n[methods.optuna_pruned]\n"))
    a, p = s.methods["asha"], s.methods["optuna_pruned"]
    assert (a["budget"], a["trials"], a["grace_period"], a["reduction_factor"], a["concurrent"]) == (5, 5, 1, 3, 1)
    assert "low" not in a and "high" not in a, "a list of temperatures has no range"
    assert (p["budget"], p["trials"], p["pruner"], p["startup_trials"]) == (8, 24, "median", 4)
    drawn = load_study(study_file(BASE + "[methods.asha]\nbudget = 4\n", "drawn.toml")).methods["asha"]
    assert (drawn["low"], drawn["high"], drawn["trials"]) == (1.0, 16.0, 12)
    more = load_study(study_file(BASE + "[methods.optuna_pruned]\nbudget = 12\n", "more.toml"))
    ids = {t.method: t.id for t in s.plan() if t.kind == "search"}
    assert [t.id for t in more.plan() if t.kind == "search"] == [ids["optuna_pruned"]]


def test_the_budget_in_epochs_decides_how_many_trials_run():
    from hpo_kd.searchers.base import EpochBudgetSearcher
    from hpo_kd.tune.multifidelity import EpochBudget

    s = EpochBudget({"unit_id": "u"}, None, trials=10, offset=0, batch=2, epochs_left=20, per_trial=6)
    assert s.room() == 2  # 2 full trials fit into 20 epochs, a batch of 2
    s.record("a", {"epoch": 2, "val_acc": 0.5}, False)  # stopped at epoch 2
    s.record("b", {"epoch": 6, "final": True}, False)
    assert s.epochs_left == 12 and s.room() == 2
    s.record("c", None, True)  # failed: charged its planned epochs
    assert s.epochs_left == 6 and s.room() == 1

    class T:
        config = {"epochs": 6, "dataset": "digits"}
        search = {"budget": 3}
        budget = 10

    done = pd.DataFrame({"epochs_run": [6.0, 2.0, 2.0]})
    assert EpochBudgetSearcher.epochs_left(T, done) == 8 and EpochBudgetSearcher.trials_to_run(T, done) == 7
    assert EpochBudgetSearcher.trials_to_run(T, pd.DataFrame({"epochs_run": [6.0, 6.0, 2.0]})) == 0


def _optuna_search(cls, **kw):

    space = {"tau": optuna.distributions.FloatDistribution(1.0, 16.0, log=True)}
    sampler = optuna.samplers.RandomSampler(seed=0)
    return cls(space=space, metric="val_acc", mode="max", sampler=sampler, **kw)


def _states(search):
    return [t.state for t in search._ot_study.get_trials(deepcopy=False)]


def test_ray_tells_a_scheduler_stopped_trial_complete_and_we_tell_it_pruned():
    """The pitfall: Ray Tune's OptunaSearch tells Optuna COMPLETE, at its early accuracy, a trial a
    scheduler stopped (no final report). StoppedAsPruned tells it PRUNED, its last epoch's
    accuracy its last intermediate value; a trial that ran every epoch stays COMPLETE."""
    from ray.tune.search.optuna import OptunaSearch

    from hpo_kd.tune.multifidelity import StoppedAsPruned

    stopped = {"val_acc": 0.3, "epoch": 2, "training_iteration": 2, "final": False}
    final = {"val_acc": 0.8, "epoch": 4, "training_iteration": 4, "final": True}
    ray_own = _optuna_search(OptunaSearch)
    ray_own.suggest("a")
    ray_own.on_trial_complete("a", result=stopped)
    assert _states(ray_own) == [TrialState.COMPLETE], "Ray's own OptunaSearch (if this fails, Ray has changed)"

    ours = _optuna_search(StoppedAsPruned, epochs=4)
    for sid in ("a", "b"):
        ours.suggest(sid)
    ours.on_trial_result("a", dict(stopped, val_acc=0.4, epoch=1, training_iteration=1))
    ours.on_trial_complete("a", result=stopped)
    ours.on_trial_complete("b", result=final)
    a, b = ours._ot_study.get_trials(deepcopy=False)
    assert (a.state, b.state) == (TrialState.PRUNED, TrialState.COMPLETE) and ours.pruned == {"a"}
    assert a.intermediate_values == {1: 0.4, 2: 0.3} and b.value == 0.8


def test_the_pruner_acts_and_its_scheduler_stops_the_trial():
    """Ray Tune's OptunaSearch never asks should_prune; PrunedOptunaSearch does, through its
    scheduler, and the stopped trial is told PRUNED."""
    from ray.tune.schedulers import TrialScheduler

    from hpo_kd.tune.multifidelity import PrunedOptunaSearch, PrunerScheduler, pruner_of

    pruner = pruner_of({"pruner": "median", "grace_period": 1, "startup_trials": 2})
    search = _optuna_search(PrunedOptunaSearch, epochs=4, pruner=pruner)
    scheduler = PrunerScheduler(search)

    class Trial:
        def __init__(self, sid):
            self.config = {"spec": {"search_trial": sid}}

    def epoch(sid, e, v):
        return scheduler.on_trial_result(None, Trial(sid), {"val_acc": v, "epoch": e, "final": False})

    search.suggest("good")
    assert [epoch("good", e, v) for e, v in ((1, 0.5), (2, 0.6), (3, 0.7))] == [TrialScheduler.CONTINUE] * 3
    assert epoch("good", 4, 0.8) == TrialScheduler.CONTINUE  # the last epoch is never pruned
    search.on_trial_complete("good", result={"val_acc": 0.8, "epoch": 4, "final": True})
    search.suggest("poor")
    # the median pruner compares a trial's best so far with the COMPLETE trials' median at an epoch
    assert epoch("poor", 1, 0.5) == TrialScheduler.CONTINUE  # not below the median (0.5) at epoch 1
    assert epoch("poor", 2, 0.55) == TrialScheduler.STOP  # below it (0.6) at epoch 2
    search.on_trial_complete("poor", result={"val_acc": 0.55, "epoch": 2, "final": False})
    assert _states(search) == [TrialState.COMPLETE, TrialState.PRUNED]
    assert search._ot_study.get_trials(deepcopy=False)[1].intermediate_values == {1: 0.5, 2: 0.55}


def test_a_stopped_store_row_is_pruned_in_the_optuna_storage(study_file, tmp_path):
    """Resume: the storage follows the store, a `stopped` row as PRUNED with its last epoch."""
    from hpo_kd.tune.search import open_storage, sync

    (t,) = [u for u in load_study(study_file(BASE + "[methods.optuna_pruned]\n")).plan() if u.kind == "search"]
    storage = open_storage(str(tmp_path / "mf"))
    rows = [
        {
            "trial_id": "a",
            "tau_t_config": 2.0,
            "tau_s_config": 2.0,
            "status": "ok",
            "val_acc": 0.7,
            "epochs_run": 4,
            "trial_index": 0,
        },
        {
            "trial_id": "b",
            "tau_t_config": 8.0,
            "tau_s_config": 8.0,
            "status": "stopped",
            "val_acc": 0.2,
            "epochs_run": 1,
            "trial_index": 1,
        },
    ]
    name = sync(t, storage, rows)
    got = optuna.load_study(study_name=name, storage=storage).get_trials()
    assert [(x.state, x.value, x.intermediate_values) for x in got] == [
        (TrialState.COMPLETE, 0.7, {}),
        (TrialState.PRUNED, None, {1: 0.2}),
    ]
    sync(t, storage, rows)
    assert len(optuna.load_study(study_name=name, storage=storage).get_trials()) == 2, "a second sync adds nothing"


STUDY = (
    BASE
    + """
[methods.grid]
temperatures = [1, 2, 4, 8]
[methods.asha]
temperatures = [8, 1, 16, 2, 4, 0.5]
budget = 4
grace_period = 1
reduction_factor = 2
[methods.optuna_pruned]
budget = 4
startup_trials = 2
grace_period = 1
[resources]
reproducible = true
"""
)


def _rows(runs):
    from hpo_kd.store import Store

    t = Store(os.path.join(runs, "mf")).trials()
    return t[t["method"].isin(["asha", "optuna_pruned"])].sort_values(["method", "trial_index"])


@pytest.mark.slow
def test_multi_fidelity_searches_stop_trials_keep_the_budget_and_repeat(shared_ray, study_file, tmp_path):
    from hpo_kd.tune import Runner

    path = study_file(STUDY)
    seen = []
    for name in ("a", "b"):
        runs = str(tmp_path / name)
        Runner(load_study(path), runs_dir=runs).run()
        t = _rows(runs)
        for m in ("asha", "optuna_pruned"):
            mine = t[t["method"] == m]
            assert mine["epochs_run"].sum() <= 4 * 4, f"{m}: at most the grid's budget (4 students x 4 epochs)"
            assert set(mine["status"]) <= {"ok", "stopped"}
            stopped = mine[mine["status"] == "stopped"]
            assert len(stopped) >= 1, f"{m}: no trial stopped early"
            assert (stopped["epochs_run"] < 4).all() and (mine.loc[mine["status"] == "ok", "epochs_run"] == 4).all()
        assert len(t[t["method"] == "asha"]) > 4, "the epochs stopped trials leave go to further trials"
        # every stopped Optuna trial reached Optuna as PRUNED, every other one as COMPLETE
        storage = f"sqlite:///{os.path.join(runs, 'mf', 'optuna.db')}"
        (study_name,) = optuna.get_all_study_names(storage=storage)
        ot = optuna.load_study(study_name=study_name, storage=storage).get_trials()
        opt = t[t["method"] == "optuna_pruned"]
        assert sorted(x.state.name for x in ot) == sorted(
            "PRUNED" if s == "stopped" else "COMPLETE" for s in opt["status"]
        )
        seen.append(t[["method", "tau_t_config", "status", "val_acc", "test_acc", "epochs_run"]].to_numpy().tolist())
    assert seen[0] == seen[1], "a fixed seed gives the same searches"
    assert Runner(load_study(path), runs_dir=str(tmp_path / "a")).run()["ran"] == 0, "finished: not run again"
