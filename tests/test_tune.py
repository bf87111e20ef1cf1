"""Studies through Ray Tune: store, resume, added seeds, failures, GPU fallback, a 2-node cluster."""

import json
import os
import warnings

import pandas as pd
import pytest

ray = pytest.importorskip("ray")

from hpo_kd.cli import main  # noqa: E402
from hpo_kd.store import Store  # noqa: E402
from hpo_kd.study import load_study  # noqa: E402
from hpo_kd.tune import Runner  # noqa: E402

pytestmark = pytest.mark.slow  # every test here runs Ray

STUDY = """
name = "tiny"
seeds = [0]
[train]
epochs = 2
teacher_epochs = 2
batch_size = 128
[[settings]]
dataset = "digits"
[[settings]]
dataset = "mnist1d"
fraction = 0.25
[methods.grid]
temperatures = [1, 4]
[methods.optuna]
trials = 2
[methods.mkd]
[methods.dts]
[methods.ctkd]
[methods.nokd]
"""


def _run(path, runs):
    return Runner(load_study(path), runs_dir=runs).run()


def test_study_runs_every_method_and_resumes(shared_ray, study_file, tmp_path, capsys):
    path = study_file(STUDY)
    runs = str(tmp_path / "runs")
    assert main(["run", path, "--dry-run", "--runs-dir", runs]) == 0
    planned = int(capsys.readouterr().out.split("total: ")[1].split()[0])

    out = _run(path, runs)
    assert out["ran"] == planned == 2 + 2 * (2 + 2 + 4)  # teachers + per setting: grid, optuna, 4 methods
    store = Store(os.path.join(runs, "tiny"))
    t = store.trials()
    assert len(t) == planned, "--dry-run counts match the trials actually run"
    assert set(t["status"]) == {"ok"}
    assert set(t["method"]) == {"teacher", "grid", "optuna", "mkd", "dts", "ctkd", "nokd"}
    assert t.groupby("setting").size().to_dict() == {s: planned // 2 for s in t["setting"].unique()}
    students = t[t["method"] != "teacher"]
    assert students["val_acc"].between(0, 1).all() and students["test_acc"].between(0, 1).all()
    assert (students["epochs_run"] == 2).all()
    opt = t[t["method"] == "optuna"]
    assert opt["tau_t_config"].between(1, 16).all() and (opt["tau_t_config"] == opt["tau_s_config"]).all()
    c = store.curves()
    assert len(c) == 2 * len(students)  # one row per epoch
    assert {"tau_t", "tau_s", "val_acc", "train_loss"} <= set(c.columns)
    # every metric the trainer logs, the methods' own ones included
    assert {"lambda", "meta_loss", "samples_per_s", "train_kd", "train_ce"} <= set(c.columns)
    # teachers are stored under the study's folder, once per teacher key
    assert len([f for f in os.listdir(os.path.join(runs, "tiny", "teachers")) if f.endswith(".pt")]) == 2
    # every trial with a curve is a TensorBoard run: <setting>/<method>[-tau]/seed<N>-<id>
    board = os.path.join(runs, "tiny", "tensorboard")
    assert sum(1 for _, _, files in os.walk(board) if any("tfevents" in f for f in files)) == c["trial_id"].nunique()

    # resume after a completed run: nothing to do
    assert _run(path, runs)["ran"] == 0
    assert len(Store(os.path.join(runs, "tiny")).trials()) == planned

    # adding a seed runs only the new trials
    path2 = study_file(STUDY.replace("seeds = [0]", "seeds = [0, 1]"), "more.toml")
    out = _run(path2, runs)
    assert out["ran"] == planned - 2
    t2 = Store(os.path.join(runs, "tiny")).trials()
    assert len(t2) == 2 * planned - 2
    kept = t2.set_index("trial_id").loc[t["trial_id"], "finished_at"]
    assert (kept.to_numpy() == t.set_index("trial_id")["finished_at"].to_numpy()).all(), "old rows untouched"


def test_failed_trial_is_recorded_and_others_finish(shared_ray, study_file, tmp_path):
    broken = tmp_path / "broken_images"
    (broken / "train" / "a").mkdir(parents=True)  # no val/ or test/ split
    text = f"""
name = "fails"
[train]
epochs = 1
teacher_epochs = 1
[[settings]]
dataset = "digits"
[[settings]]
dataset = "imagefolder"
root = "{broken}"
teacher = "cnn_wide"
student = "mlp"
[methods.grid]
temperatures = [2]
[methods.nokd]
"""
    runs = str(tmp_path / "runs")
    _run(study_file(text), runs)
    t = Store(os.path.join(runs, "fails")).trials()
    bad = t[t["dataset"] == "imagefolder"]
    good = t[t["dataset"] == "digits"]
    assert set(bad["status"]) == {"failed"}
    assert bad["error"].str.contains("could not read imagefolder split").all()
    assert set(good["status"]) == {"ok"} and len(good) == 3
    # a re-run retries the failed trials only
    assert _run(study_file(text, "again.toml"), runs)["ran"] == len(bad)


def test_gpu_request_on_cpu_only_cluster_falls_back(shared_ray, study_file, tmp_path):
    text = """
name = "gpu"
[train]
epochs = 1
teacher_epochs = 1
[[settings]]
dataset = "digits"
[methods.nokd]
[resources]
gpus_per_trial = 0.25
"""
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        out = _run(study_file(text), str(tmp_path / "runs"))
    assert out["ran"] == 1
    assert any("has no GPU; running on CPU" in str(x.message) for x in w)
    t = Store(str(tmp_path / "runs" / "gpu")).trials()
    assert t["device"].tolist() == ["cpu"] and t["status"].tolist() == ["ok"]


def test_optuna_with_asha_records_stopped_trials(shared_ray, study_file, tmp_path):
    text = """
name = "asha"
[train]
epochs = 6
teacher_epochs = 2
[[settings]]
dataset = "mnist1d"
fraction = 0.25
[methods.optuna]
trials = 6
low = 0.5
high = 30
startup_trials = 6
asha = true
grace_period = 1
reduction_factor = 3
[resources]
max_concurrent = 1
"""
    runs = str(tmp_path / "runs")
    assert _run(study_file(text), runs)["ran"] == 1 + 6
    t = Store(os.path.join(runs, "asha")).trials()
    opt = t[t["method"] == "optuna"]
    assert len(opt) == 6 and set(opt["status"]) <= {"ok", "stopped"}
    stopped = opt[opt["status"] == "stopped"]
    # ASHA (one trial at a time, rungs at epochs 1 and 3) stops the trials below the top third
    assert len(stopped) >= 1, "ASHA stopped no trial"
    assert (stopped["epochs_run"] < 6).all() and (opt.loc[opt["status"] == "ok", "epochs_run"] == 6).all()
    assert stopped["val_acc"].notna().all(), "a stopped trial keeps its last val accuracy"
    # a finished search is not run again
    assert _run(study_file(text, "again.toml"), runs)["ran"] == 0


def test_more_cpus_per_trial_than_the_cluster_has_is_an_error(shared_ray, study_file, tmp_path, capsys):
    text = """
[[settings]]
dataset = "digits"
[methods.nokd]
[resources]
cpus_per_trial = 3
"""
    # the module's Ray has 2 CPUs: such a trial would wait forever
    assert main(["run", study_file(text), "--runs-dir", str(tmp_path / "runs")]) == 2
    assert "resources.cpus_per_trial = 3 but the Ray cluster has 2 CPU(s)" in capsys.readouterr().err


CLUSTER_STUDY = """
name = "shared"
seeds = [0]
[train]
epochs = 2
teacher_epochs = 2
[[settings]]
dataset = "digits"
[methods.grid]
temperatures = [1, 2, 4, 8]
[resources]
cpus_per_trial = 0.5
gpus_per_trial = 0.25
"""


def _max_overlap(df):
    events = sorted([(s, 1) for s in df["started_at"]] + [(f, -1) for f in df["finished_at"]])
    cur = best = 0
    for _, d in events:
        cur += d
        best = max(best, cur)
    return best


def test_fractional_gpus_on_a_two_node_cluster_match_embedded(own_ray, study_file, tmp_path):
    from ray.cluster_utils import Cluster

    path = study_file(CLUSTER_STUDY)
    # The embedded default (no GPU here): falls back to CPU.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _run(path, str(tmp_path / "embedded"))
    assert not ray.is_initialized(), "the embedded Ray is stopped at the end"
    embedded = Store(str(tmp_path / "embedded" / "shared")).trials().set_index("trial_id")

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    gpu_node = cluster.add_node(num_cpus=2, num_gpus=1)
    cluster.wait_for_nodes()
    try:
        runner = Runner(load_study(path), runs_dir=str(tmp_path / "cluster"), address=cluster.address)
        runner.run()
    finally:
        ray.shutdown()
        cluster.shutdown()
    t = Store(str(tmp_path / "cluster" / "shared")).trials().set_index("trial_id")
    grid = t[t["method"] == "grid"]
    assert (t["node"] == gpu_node.node_id).all(), "0.25-GPU trials are placed on the GPU node"
    assert all(json.loads(g) == ["0"] for g in grid["gpu_ids"]), "they share GPU 0"
    assert _max_overlap(grid) == 4, "four trials at a time share the one GPU"
    # the same trials, the same results, whichever way Ray was reached
    cols = ["status", "val_acc", "test_acc", "tau_t_config"]
    pd.testing.assert_frame_equal(t.loc[embedded.index, cols], embedded[cols])


KILL_STUDY = """
name = "killed"
seeds = [0, 1]
[train]
epochs = 40  # trials of about 0.5 s: the signal lands mid-study, not in the shutdown
teacher_epochs = 2
[[settings]]
dataset = "digits"
[methods.grid]
temperatures = [1, 2, 4, 8]
[methods.nokd]
"""


@pytest.mark.parametrize("sig", ["SIGKILL", "SIGINT"])
def test_interrupted_run_loses_no_finished_trial_and_redoes_none(shared_ray, study_file, tmp_path, sig):
    import signal
    import subprocess
    import sys
    import time

    path = study_file(KILL_STUDY)
    runs = str(tmp_path / "runs")
    trials_file = os.path.join(runs, "killed", "trials.parquet")
    planned = 1 + 2 * 5
    cmd = [sys.executable, "-m", "hpo_kd.cli", "run", path, "--runs-dir", runs]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 180
    while time.time() < deadline and p.poll() is None:
        if os.path.exists(trials_file) and len(Store(os.path.dirname(trials_file)).trials()) >= 4:
            break
        time.sleep(0.2)
    assert p.poll() is None, "the study ended before it could be interrupted"
    if sig == "SIGKILL":  # kill -9 of the driver and everything it started
        os.killpg(p.pid, signal.SIGKILL)
    else:  # Ctrl-C
        os.kill(p.pid, signal.SIGINT)
    out = p.communicate(timeout=120)[0].decode()
    if sig == "SIGINT":
        assert p.returncode == 130 and "finished results are kept" in out, out[-3000:]
        try:
            os.killpg(p.pid, signal.SIGKILL)  # anything Ray left behind
        except ProcessLookupError:
            pass
    before = Store(os.path.join(runs, "killed")).trials()
    assert 4 <= len(before) < planned and set(before["status"]) == {"ok"}

    out = _run(path, runs)
    assert out["ran"] == planned - len(before), "only the missing trials run again"
    after = Store(os.path.join(runs, "killed")).trials().set_index("trial_id")
    assert len(after) == planned and set(after["status"]) == {"ok"}
    kept = after.loc[before["trial_id"]]
    assert (kept["finished_at"].to_numpy() == before["finished_at"].to_numpy()).all(), "no finished trial redone"


@pytest.mark.slow
def test_ctrl_c_swallowed_inside_the_driver_still_stops_the_study(shared_ray, study_file, tmp_path, monkeypatch):
    """Once in a full test run a Ctrl-C left the study running to the end (exit 0): a library in
    the driver had swallowed the KeyboardInterrupt. The handler also remembers the signal, so the
    study stops after the Ray Tune trial that was finishing, keeping what finished. The Ray here is
    the caller's and outlives the run: the trials still running are stopped, their CPUs freed,
    and the next run in the same Ray finishes the rest."""
    import signal
    import time

    from hpo_kd import tune as tune_mod

    real = tune_mod.Progress.finished

    def finished(self, row):
        real(self, row)
        if self.done == 2:
            try:  # what a library that catches everything does with Ctrl-C
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.5)
            except KeyboardInterrupt:
                pass

    monkeypatch.setattr(tune_mod.Progress, "finished", finished)
    path = study_file(KILL_STUDY.replace("epochs = 40", "epochs = 5"))
    runs = str(tmp_path / "runs")
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        _run(path, runs)
    assert signal.getsignal(signal.SIGINT) is handler  # the run's own handler is gone
    deadline = time.time() + 60  # the interrupted trials' actors stopped: every CPU free again
    while ray.available_resources().get("CPU", 0) < ray.cluster_resources()["CPU"] and time.time() < deadline:
        time.sleep(0.2)
    assert ray.available_resources().get("CPU", 0) == ray.cluster_resources()["CPU"]
    kept = Store(os.path.join(runs, "killed")).trials()
    # the teacher, and the Ray Tune trial that was finishing: a seed's five students, trained
    # together (students_per_trial), whose rows are all stored before the study stops
    assert len(kept) == 1 + 5 and set(kept["status"]) == {"ok"}
    monkeypatch.setattr(tune_mod.Progress, "finished", real)
    out = _run(path, runs)
    assert out["ran"] == 1 + 2 * 5 - len(kept)  # the rest, and only the rest


OPTUNA = """
name = "opt"
seeds = [0]
[train]
epochs = 1
teacher_epochs = 1
batch_size = 256
[[settings]]
dataset = "digits"
[methods.optuna]
trials = 6
startup_trials = 2
"""


@pytest.mark.slow
def test_optuna_search_depends_on_results_not_timing_and_a_raised_budget_extends_it(shared_ray, study_file, tmp_path):
    """Two runs of the same search propose the same temperatures in the same order (batches of
    2 concurrent trials: TPE only sees whole batches), and the store keeps that order. The second
    run is a search of 2 trials raised to 6: only the 4 new trials run, the finished ones are kept,
    and it proposes what the search of 6 proposed."""
    fresh, raised = str(tmp_path / "fresh"), str(tmp_path / "raised")
    _run(study_file(OPTUNA), fresh)
    _run(study_file(OPTUNA.replace("trials = 6", "trials = 2"), "small.toml"), raised)
    first = Store(os.path.join(raised, "opt")).trials()
    first = first[first["method"] == "optuna"]
    assert len(first) == 2
    assert _run(study_file(OPTUNA, "big.toml"), raised)["ran"] == 4, "only the 4 new trials run"
    seen = []
    for runs in (fresh, raised):
        t = Store(os.path.join(runs, "opt")).trials()
        t = t[t["method"] == "optuna"].sort_values("trial_index")
        assert t["trial_index"].tolist() == list(range(6)) and t["unit_id"].nunique() == 1
        seen.append(t["tau_t_config"].round(10).tolist())
        (trials,) = _optuna_trials(runs).values()  # the Optuna storage holds the same trials
        assert [(s, round(tau, 10), v) for s, tau, v in trials] == [
            ("COMPLETE", round(a, 10), b) for a, b in zip(t["tau_t_config"], t["val_acc"])
        ]
        prov = json.load(open(os.path.join(runs, "opt", "provenance.json")))
        assert prov[-1]["code"].startswith("hpo_kd") and prov[-1]["torch_threads_per_trial"] == 1
    assert seen[0] == seen[1]
    kept = t.set_index("trial_id").loc[first["trial_id"], "finished_at"]  # t: the raised search's rows
    assert (kept.to_numpy() == first["finished_at"].to_numpy()).all(), "finished trials kept"


def test_a_new_per_epoch_metric_reaches_the_curves():
    from hpo_kd.worker import curve_row

    row = {"epoch": 3, "val_acc": 0.5, "my_new_metric": 1.25, "nothing": None, "note": "text"}
    out = curve_row(row)
    assert out["my_new_metric"] == 1.25 and out["epoch"] == 3
    assert out["nothing"] != out["nothing"]  # None travels as NaN
    assert "note" not in out  # curves hold numbers


# A temperature method defined here, in the test, and nowhere else: the study, the Ray workers
# and the report must find it through the registry alone (one file per method).
PLUGIN = '''
from hpo_kd.methods import register
from hpo_kd.methods.base import TemperatureMethod


@register("halving")
class Halving(TemperatureMethod):
    """Starts at tau_t and halves both temperatures each epoch after the first (a toy schedule)."""

    name = "halving"
    kind = "learned"
    label = "halving τ"
    color = "C5"
    marker = "v"
    order = 45

    def __init__(self, tau_t: float = 8.0):
        super().__init__(tau_t, tau_t)
        self.start, self.halvings = tau_t, 0

    def start_epoch(self, epoch):
        self.halvings = epoch - 1
        self.tau_t = self.tau_s = max(self.start / 2 ** self.halvings, 1.0)

    def epoch_metrics(self):
        return {"halvings": float(self.halvings)}
'''

PLUGIN_STUDY = """
name = "plugin"
seeds = [0, 1]
[train]
epochs = 2
teacher_epochs = 2
batch_size = 128
[[settings]]
dataset = "digits"
[methods.grid]
temperatures = [4]
[methods.halving]
tau_t = 8.0
[methods.nokd]
"""


def test_a_method_defined_in_a_test_file_runs_in_a_study_and_reaches_the_report(study_file, tmp_path, capsys):
    import subprocess
    import sys

    from hpo_kd import methods
    from hpo_kd.methods import base

    assert hasattr(base.TemperatureMethod, "start_epoch"), "the toy method uses this hook"
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "halving_plugin.py").write_text(PLUGIN)
    env = dict(
        os.environ,
        HPO_KD_PLUGINS="halving_plugin",
        PYTHONPATH=os.pathsep.join([str(tmp_path / "plugins"), os.environ.get("PYTHONPATH", "")]),
    )
    path = study_file(PLUGIN_STUDY)
    runs, reports = str(tmp_path / "runs"), str(tmp_path / "reports")
    for cmd in (["run", path, "--runs-dir", runs], ["report", os.path.join(runs, "plugin"), "--out", reports]):
        p = subprocess.run(
            [sys.executable, "-m", "hpo_kd.cli", *cmd], env=env, capture_output=True, text=True, timeout=300
        )
        assert p.returncode == 0, p.stderr[-3000:]
    trials = Store(os.path.join(runs, "plugin")).trials()
    mine = trials[trials["method"] == "halving"]
    assert len(mine) == 2 and set(mine["status"]) == {"ok"}
    assert list(mine["tau_t"]) == [4.0, 4.0]  # 8, then 4 in epoch 2: the method ran
    curves = Store(os.path.join(runs, "plugin")).curves()
    assert sorted(curves.loc[curves["trial_id"].isin(mine["trial_id"]), "halvings"]) == [0, 0, 1, 1]
    md = open(os.path.join(reports, "plugin", "report.md")).read()
    assert "| halving | 4, 4 | 2 |" in md  # its row: final τ per seed, 2 seeds
    assert "| halving − grid |" in md and "| halving − nokd |" in md  # compared like any method
    # Without the plugin (this process never imported it) the study names an unknown method,
    # before any compute.
    assert "halving" not in methods.names()
    assert main(["run", path, "--dry-run", "--runs-dir", runs]) == 2
    assert "methods.halving: unknown method" in capsys.readouterr().err


GROUPS = """
name = "groups"
seeds = [0]
[train]
epochs = 2
teacher_epochs = 2
[resources]
students_per_trial = {n}
[[settings]]
dataset = "digits"
augment = "strong"
[methods.grid]
temperatures = {temps}
[methods.mkd]
[methods.nokd]
{dts}
"""


def test_students_trained_together_store_what_they_store_alone(shared_ray, study_file, tmp_path):
    """A seed's students in one Ray Tune trial (students_per_trial) give the rows and curves they
    give one per trial, also when a re-run adds students to a finished group."""
    from hpo_kd.record import OUTCOME_COLUMNS

    cols = ["trial_id", *OUTCOME_COLUMNS]

    def run(name, n, temps, dts):
        runner = Runner(
            load_study(study_file(GROUPS.format(n=n, temps=temps, dts=dts), f"{name}.toml")),
            runs_dir=str(tmp_path / name),
        )
        runner.run()
        return runner

    alone = run("alone", 1, "[1, 2, 4]", "[methods.dts]")
    assert alone.timing["trials"] == 1 + 6  # the teacher, then every student in a trial of its own
    together = run("together", 8, "[1, 4]", "")
    assert together.timing["trials"] == 1 + 1 + 1  # the teacher, MKD alone, grid and no-KD together
    together = run("together", 8, "[1, 2, 4]", "[methods.dts]")
    assert together.timing["trials"] == 1  # the two new students, together
    a, b = (Store(os.path.join(str(tmp_path / d), "groups")) for d in ("alone", "together"))
    ta, tb = (s.trials().sort_values("trial_id").reset_index(drop=True) for s in (a, b))
    assert len(ta) == 7 and set(ta["status"]) == {"ok"}
    pd.testing.assert_frame_equal(ta[cols], tb[cols])
    keep = [c for c in a.curves().columns if c not in ("epoch_seconds", "samples_per_s")]
    ca, cb = (s.curves()[keep].sort_values(["trial_id", "epoch"]).reset_index(drop=True) for s in (a, b))
    pd.testing.assert_frame_equal(ca, cb)


def _optuna_trials(runs, name="opt"):
    """The Optuna storage's trials of a study's searches: {study name: [(state, tau, value)]}."""
    import optuna

    storage = f"sqlite:///{os.path.join(runs, name, 'optuna.db')}"
    out = {}
    for s in optuna.get_all_study_names(storage=storage):
        trials = optuna.load_study(study_name=s, storage=storage).get_trials(deepcopy=False)
        out[s] = [(t.state.name, t.params.get("tau"), t.value) for t in trials]
    return out


def _store_trials(runs, name="opt"):
    t = Store(os.path.join(runs, name)).trials()
    t = t[t["method"] == "optuna"]
    return sorted((float(a), None if v != v else float(v)) for a, v in zip(t["tau_t_config"], t["val_acc"]))


def test_the_optuna_storage_follows_the_store(study_file, tmp_path):
    """No Ray: a search's storage after a kill (a trial told, a trial stored but not told, a trial
    asked and never finished) is made to follow the store's rows, and a second time changes nothing."""
    import optuna
    from optuna.trial import TrialState

    from hpo_kd.tune.search import open_storage, sync

    (t,) = [u for u in load_study(study_file(OPTUNA)).plan() if u.kind == "search"]
    folder = str(tmp_path / "opt")
    storage = open_storage(folder)
    name = sync(t, storage, [])
    assert name == "digits(100%,none)/seed0"
    study = optuna.load_study(study_name=name, storage=storage)
    dist = {"tau": optuna.distributions.FloatDistribution(1.0, 16.0, log=True)}
    a, b, c = (study.ask(fixed_distributions=dist) for _ in range(3))
    study.tell(a, 0.5)

    def row(trial, status, val):
        return {
            "trial_id": f"x-{trial.number}",
            "tau_t_config": trial.params["tau"],
            "tau_s_config": trial.params["tau"],
            "status": status,
            "val_acc": val,
            "trial_index": trial.number,
        }

    rows = [
        row(a, "ok", 0.5),
        row(b, "stopped", 0.7),
        {**row(a, "failed", None), "tau_t_config": 2.0, "tau_s_config": 2.0, "trial_index": 3},
    ]
    assert sync(t, storage, rows) == name
    got = [(x.state, x.value) for x in optuna.load_study(study_name=name, storage=storage).trials]
    assert got == [
        (TrialState.COMPLETE, 0.5),
        (TrialState.PRUNED, None),  # stopped early (ASHA): never a COMPLETE value TPE would take as final
        (TrialState.FAIL, None),
        (TrialState.FAIL, None),
    ]  # c never finished; the failed row added as FAIL
    sync(t, storage, rows)
    assert len(optuna.load_study(study_name=name, storage=storage).trials) == 4, "a second sync adds nothing"
    # a storage that holds a finished trial the store lacks is rebuilt from the store
    sync(t, storage, rows[:1])
    got = [(x.state, x.value) for x in optuna.load_study(study_name=name, storage=storage).trials]
    assert got == [(TrialState.COMPLETE, 0.5)]


def test_an_optuna_search_killed_mid_batch_resumes_with_its_storage_equal_to_the_store(
    shared_ray, study_file, tmp_path
):
    """kill -9 of the driver (as test_interrupted_run_... does it) in the middle of the search: the
    storage may hold trials asked but never finished, or stored but not yet told. The resumed run
    ends with the storage's finished trials equal to the store's (same temperatures and values,
    each once), and a second resume adds nothing."""
    import signal
    import subprocess
    import sys
    import time

    path = study_file(OPTUNA.replace("\nepochs = 1\n", "\nepochs = 40\n").replace("trials = 6", "trials = 8"))
    runs = str(tmp_path / "runs")
    trials_file = os.path.join(runs, "opt", "trials.parquet")
    cmd = [sys.executable, "-m", "hpo_kd.cli", "run", path, "--runs-dir", runs]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 180
    while time.time() < deadline and p.poll() is None:
        if os.path.exists(trials_file) and len(Store(os.path.dirname(trials_file)).trials()) >= 4:
            break
        time.sleep(0.1)
    assert p.poll() is None, "the study ended before it could be killed"
    os.killpg(p.pid, signal.SIGKILL)
    p.communicate(timeout=120)
    kept = _store_trials(runs)
    assert 3 <= len(kept) < 8
    out = _run(path, runs)
    assert out["ran"] == 8 - len(kept), "only the missing trials run again"
    ((name, trials),) = _optuna_trials(runs).items()
    assert name == "digits(100%,none)/seed0"
    done = sorted((tau, v) for s, tau, v in trials if s == "COMPLETE")
    assert done == _store_trials(runs) and len(done) == 8, (trials, _store_trials(runs))
    assert {s for s, _, _ in trials} <= {"COMPLETE", "FAIL"}
    assert _run(path, runs)["ran"] == 0
    assert _optuna_trials(runs) == {name: trials}, "a second resume adds nothing"
