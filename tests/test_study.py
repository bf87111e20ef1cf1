"""Study files: validation before any compute (exit 2, file + key named) and the trial plan."""

import pytest

from hpo_kd.cli import main
from hpo_kd.errors import UserError
from hpo_kd.study import load_study, plan_counts

GOOD = """
name = "ok"
seeds = [0, 1]
[train]
epochs = 2
[[settings]]
dataset = ["digits", "mnist1d"]
fraction = [1.0, 0.5]
[methods.grid]
temperatures = [1, 4]
[methods.optuna]
trials = 3
[methods.mkd]
every = 2
[methods.nokd]
"""


def test_plan_expands_settings_methods_and_seeds(study_file):
    s = load_study(study_file(GOOD))
    assert len(s.settings) == 4  # 2 data sets x 2 fractions
    plan = s.plan()
    counts = plan_counts(plan)
    assert counts[("digits(50%,none)", "grid")] == 4  # 2 temperatures x 2 seeds
    assert counts[("digits(50%,none)", "optuna")] == 6  # 3 trials x 2 seeds
    assert counts[("mnist1d(100%,none)", "mkd")] == 2
    assert sum(1 for t in plan if t.kind == "teacher") == 4  # one per (data set, fraction)
    ids = [t.id for t in plan]
    assert len(ids) == len(set(ids)), "trial ids must be unique"
    # ids are stable: the same file gives the same ids
    assert ids == [t.id for t in load_study(study_file(GOOD, "again.toml")).plan()]


def test_adding_a_seed_keeps_old_trial_ids(study_file):
    a = {t.id for t in load_study(study_file(GOOD)).plan()}
    b = {t.id for t in load_study(study_file(GOOD.replace("seeds = [0, 1]", "seeds = [0, 1, 2]"), "b.toml")).plan()}
    assert a < b
    assert len(b - a) == 4 * (2 + 1 + 1 + 1)  # per setting: 2 grid, 1 optuna search, mkd, nokd


BAD = [
    ("bogus = 1\n" + GOOD, "bogus: unknown key"),
    (
        GOOD.replace('dataset = ["digits", "mnist1d"]', 'dataset = "nope"'),
        "settings[0].dataset: unknown data set 'nope'; allowed:",
    ),
    (GOOD.replace("fraction = [1.0, 0.5]", "fraction = 1.5"), "settings[0].fraction: 1.5 is out of range"),
    (GOOD.replace("fraction = [1.0, 0.5]", 'augment = "heavy"'), "settings[0].augment: unknown augmentation 'heavy'"),
    (GOOD.replace("temperatures = [1, 4]", "temperatures = []"), "methods.grid.temperatures: must not be empty"),
    (GOOD.replace("temperatures = [1, 4]", "temperatures = [0, 4]"), "methods.grid.temperatures: 0 is out of range"),
    (GOOD.replace("temperatures = [1, 4]", 'temperatures = ["a"]'), "methods.grid.temperatures: expected a number"),
    (GOOD.replace("[methods.nokd]", "[methods.magic]"), "methods.magic: unknown method; allowed:"),
    (GOOD.replace("every = 2", "speed = 2"), "methods.mkd.speed: unknown key; allowed:"),
    (GOOD.replace("every = 2", "every = 0"), "methods.mkd: every = 0 is out of range"),
    (GOOD.replace("trials = 3", "trials = 0"), "methods.optuna.trials: 0 is out of range"),
    (GOOD.replace("epochs = 2", "epochs = 0"), "train.epochs = 0 is out of range; allowed: an integer in [1, inf]"),
    (GOOD.replace("epochs = 2", 'epochs = "two"'), "train.epochs = 'two': expected an integer"),
    # a value that only a trial rejected once (it passed --dry-run and failed in a Ray worker)
    (GOOD.replace("epochs = 2", "epochs = 2\nmomentum = 1.0"), "train.momentum = 1.0 is out of range; allowed: [0, 1)"),
    (
        GOOD.replace("epochs = 2", 'epochs = 2\noptimizer = "lion"'),
        "train.optimizer = 'lion' is not allowed; allowed: sgd, adamw",
    ),
    (GOOD.replace("[methods.nokd]", "[methods.ctkd]\ntau_s = 2.0"), "tau_s"),
    (GOOD.replace("seeds = [0, 1]", "seeds = []"), "seeds: must not be empty"),
    (GOOD + "\n[resources]\ngpus_per_trial = -1\n", "resources.gpus_per_trial: -1 is out of range"),
    (GOOD + "\n[resources]\nstudents_per_trial = 0\n", "resources.students_per_trial: 0 is out of range"),
    (GOOD + "\n[resources]\nstudents_per_trial = 2.5\n", "resources.students_per_trial: expected an integer"),
    (
        GOOD + '\n[resources]\nreproducible = "yes"\n',
        "resources.reproducible: 'yes' is not allowed; allowed: true or false",
    ),
    (
        GOOD.replace('dataset = ["digits", "mnist1d"]', 'dataset = "digits"\nstudent = "nonet"'),
        "settings[0].student: unknown model 'nonet'",
    ),
    (
        GOOD.replace('dataset = ["digits", "mnist1d"]', 'dataset = "cifar10"'),
        "settings[0].root: data set 'cifar10' needs a local root",
    ),
    ("name = 'x'\n[methods.nokd]\n", "settings: missing"),
    ("this is not toml", "not valid TOML"),
    (
        GOOD.replace("seeds = [0, 1]", 'seeds = [0, 1]\nseed_varies = "everything"'),
        "seed_varies: 'everything' is not allowed; allowed: student, split, teacher",
    ),
    (
        GOOD.replace("fraction = [1.0, 0.5]", "options = {size = 3}"),
        "settings[0].options: unknown option(s) size for data set 'digits'; allowed: none",
    ),
    (
        GOOD.replace('dataset = ["digits", "mnist1d"]', 'dataset = "mnist1d"\noptions = {test_size = 4005}'),
        "mnist1d option test_size = 4005: expected a multiple of 10",
    ),
    (GOOD + "\n[report]\nmargin = 0\n", "report.margin: 0 is out of range"),
    (
        GOOD + "\n[report]\nalpha = 0.1\n",
        "report.alpha: unknown key; allowed: margin, max_spread, published, smoke_test, sources",
    ),
]


@pytest.mark.parametrize("text,message", BAD)
def test_invalid_study_exits_2_naming_file_and_key(study_file, capsys, text, message, tmp_path):
    path = study_file(text)
    assert main(["run", path, "--dry-run", "--runs-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert path in err
    assert message in err
    assert "Traceback" not in err


def test_one_schema_for_trials_the_cli_and_study_files():
    """Every trial option of train.SCHEMA is a TrialConfig field and a `distill` flag; a study's
    [train] keys are the schema's study keys; the defaults are TrialConfig's."""
    import dataclasses

    from hpo_kd.cli import build_parser
    from hpo_kd.study import _train
    from hpo_kd.train import SCHEMA, STUDY_TRAIN_KEYS, TrialConfig

    fields = {f.name for f in dataclasses.fields(TrialConfig)}
    assert set(SCHEMA) <= fields
    args = build_parser().parse_args(["distill"])
    for k in SCHEMA:
        assert getattr(args, k) is None, f"--{k} must default to TrialConfig's value (None = unset)"
    assert {"momentum", "weight_decay", "warmup_epochs", "lr", "epochs"} <= set(STUDY_TRAIN_KEYS)
    for k in STUDY_TRAIN_KEYS:  # a value of each key's own kind passes; a string never does (but for choices)
        opt = SCHEMA[k]
        good = opt.choices[0] if opt.choices else [1] if opt.type is list else 1 if opt.type is int else 0.5
        assert _train("f.toml", {k: good}) == {k: good}
        if not opt.choices:
            with pytest.raises(UserError, match=f"train.{k}"):
                _train("f.toml", {k: "x"})


def test_per_data_set_defaults_live_with_the_data_sets():
    from hpo_kd import data
    from hpo_kd.train import TrialConfig

    for name in data.names():
        d = data.train_defaults(name)
        assert set(d) == {"teacher", "student", "epochs", "batch_size", "lr"}, name
    c = TrialConfig(dataset="mnist1d_shuffled").resolved()  # once fell through to resnet18
    assert (c.teacher, c.student) == (
        data.train_defaults("mnist1d")["teacher"],
        data.train_defaults("mnist1d")["student"],
    )


def test_missing_study_file(capsys, tmp_path):
    assert main(["run", str(tmp_path / "none.toml"), "--dry-run"]) == 2
    assert "study file not found" in capsys.readouterr().err


def test_dry_run_prints_counts(study_file, capsys, tmp_path):
    assert main(["run", study_file(GOOD), "--dry-run", "--runs-dir", str(tmp_path / "runs")]) == 0
    out = capsys.readouterr().out
    assert "digits(50%,none)" in out and "optuna" in out
    total = sum(t.budget for t in load_study(study_file(GOOD)).plan())
    assert f"total: {total} trial(s); 0 finished" in out
    assert not (tmp_path / "runs").exists(), "a dry run writes nothing"


def test_shipped_studies_are_valid():
    q = load_study("studies/quickstart.toml")
    assert {s.dataset for s in q.settings} == {"digits", "mnist1d"}
    assert set(q.methods) == {"grid", "optuna", "pbt", "mkd", "dts", "ctkd", "lskd", "nokd"}
    assert q.methods["grid"]["pairs"] == [[t, t] for t in (1.0, 2.0, 4.0, 8.0, 16.0)]
    assert q.methods["optuna"]["trials"] == 8 and len(q.seeds) == 2
    assert q.report.get("smoke_test")  # the report says "Smoke test, not evidence" and why
    t = load_study("studies/transfer.toml")
    assert len(t.seeds) >= 8 and t.seed_varies == "teacher"
    assert len({s.dataset for s in t.settings}) >= 2
    assert {"none", "strong"} <= {s.augment for s in t.settings}
    # the transfer study's axes around its base setting: data, augmentation, fraction, pair
    axes = ("dataset", "augment", "fraction", "student")
    base = next(s for s in t.settings if tuple(getattr(s, k) for k in axes) == ("mnist1d", "none", 1, "cnn_bn"))
    moved = {tuple(k for k in axes if getattr(s, k) != getattr(base, k)) for s in t.settings if s != base}
    assert moved == {("dataset",), ("augment",), ("fraction",), ("student",)}
    # the fraction axis moves the student's data alone: its teacher is the base setting's
    (half,) = [s for s in t.settings if s.fraction != 1]
    assert t.base_config(half, 0)["teacher_fraction"] == 1.0 and "teacher_fraction" not in t.base_config(base, 0)
    assert set(t.methods) == {"grid", "nokd"}
    c = load_study("studies/compare.toml")
    assert set(c.methods) >= {"grid", "optuna", "pbt", "mkd", "dts", "ctkd", "lskd", "nokd"} and len(c.seeds) == 8
    # the searchers at the same budget: as many Optuna trials and PBT members as grid temperatures
    assert len(c.methods["grid"]["pairs"]) == c.methods["optuna"]["trials"] == c.methods["pbt"]["population"]
    for st in (q, t):  # test splits of at least 4,000 samples where the data set allows it
        for s in st.settings:
            if s.dataset.startswith("mnist1d"):
                assert dict(s.options)["test_size"] >= 4000


def test_seed_varies_the_split_and_the_teacher(study_file):
    text = GOOD.replace("seeds = [0, 1]", "seeds = [0, 1]\nsplit_seed = 10")
    student = load_study(study_file(text, "student.toml"))
    full = load_study(study_file(text.replace("split_seed = 10", 'split_seed = 10\nseed_varies = "teacher"'), "t.toml"))
    split = load_study(study_file(text.replace("split_seed = 10", 'split_seed = 10\nseed_varies = "split"'), "s.toml"))
    s0 = student.settings[0]
    assert student.base_config(s0, 1)["split_seed"] == 10 and "teacher_seed" not in student.base_config(s0, 1)
    assert split.base_config(s0, 1)["split_seed"] == 11 and "teacher_seed" not in split.base_config(s0, 1)
    assert full.base_config(s0, 1)["split_seed"] == 11 and full.base_config(s0, 1)["teacher_seed"] == 1
    n = lambda st: sum(1 for t in st.plan() if t.kind == "teacher")  # noqa: E731
    assert (n(student), n(split), n(full)) == (4, 8, 8)  # one teacher per setting, or per setting and seed
    teach = [t for t in full.plan() if t.kind == "teacher" and t.seed == 1]
    assert all(t.config["teacher_seed"] == 1 and t.config["seed"] == 1 for t in teach)
    # "student" keeps every trial id of a study written before the key existed
    assert [t.id for t in student.plan()] == [t.id for t in load_study(study_file(text, "again.toml")).plan()]


def test_data_set_options_reach_the_trials_and_the_labels(study_file):
    text = GOOD.replace(
        'dataset = ["digits", "mnist1d"]', 'dataset = "mnist1d"\noptions = {train_size = 2000, test_size = 500}'
    )
    s = load_study(study_file(text))
    assert s.settings[0].label == "mnist1d[test_size=500,train_size=2000](100%,none)"
    assert all(t.config["data_options"] == {"train_size": 2000, "test_size": 500} for t in s.plan())


def test_method_variants_run_the_base_method_with_their_options(study_file):
    text = GOOD.replace(
        "[methods.nokd]", '[methods.nokd]\n[methods."mkd:from16"]\ntau_t = 16.0\ntau_s = 16.0\nlearn = "tau_t"\n'
    )
    s = load_study(study_file(text))
    v = [t for t in s.plan() if t.method == "mkd:from16"]
    assert len(v) == 4 * 2  # 4 settings x 2 seeds
    assert all(t.config["method"] == "mkd" and t.config["tau_t"] == 16.0 for t in v)
    assert v[0].config["method_options"] == {"learn": "tau_t"}
    assert len({t.id for t in s.plan()}) == len(s.plan())


@pytest.mark.parametrize(
    "table,message",
    [
        ('[methods."grid:x"]\ntemperatures = [1]', "methods.grid:x: unknown method"),
        ('[methods."magic:x"]', "methods.magic:x: unknown method"),
        ('[methods."mkd:x"]\nspeed = 1', "methods.mkd:x.speed: unknown key"),
    ],
)
def test_bad_method_variants(study_file, capsys, tmp_path, table, message):
    path = study_file(GOOD + "\n" + table + "\n")
    assert main(["run", path, "--dry-run", "--runs-dir", str(tmp_path / "runs")]) == 2
    assert message in capsys.readouterr().err


def test_a_data_set_without_defaults_says_what_to_add():
    from hpo_kd import data

    @data.DATASETS.register("bare_for_test")
    def _bare(root=None):
        raise AssertionError("not loaded")

    try:
        with pytest.raises(RuntimeError, match="@defaults"):
            data.train_defaults("bare_for_test")
        assert data.needs_root("bare_for_test") is False
    finally:
        data.DATASETS._items.pop("bare_for_test")


def test_a_reproducible_study_pins_its_workers_kernels_and_says_so(study_file):
    """`[resources] reproducible = true`: the pins go into the workers' environment (the embedded
    Ray's and a cluster's runtime_env) and into the report header's provenance line."""
    from hpo_kd import provenance, reproducible
    from hpo_kd.tune import Runner

    on = load_study(study_file(GOOD + "\n[resources]\nreproducible = true\n"))
    off = load_study(study_file(GOOD, "off.toml"))
    assert on.resources["reproducible"] is True and off.resources["reproducible"] is False
    env_on, env_off = Runner(on)._worker_env(), Runner(off)._worker_env()
    assert {k: env_on[k] for k in reproducible.PINS} == reproducible.PINS
    assert not set(reproducible.PINS) & set(env_off)
    line = provenance.describe(provenance.current(1, reproducible.worker_env(True)))
    assert "kernels pinned (ATEN_CPU_CAPABILITY=avx2, MKL_CBWR=AVX2, ONEDNN_MAX_CPU_ISA=AVX2)" in line
    assert "kernels as the CPU picks them" in provenance.describe(provenance.current(1, {}))
