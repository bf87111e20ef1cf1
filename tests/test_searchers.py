"""Searchers as plug-ins (hpo_kd.searchers): each reads and checks its own table (exit 2 naming the
key and what is allowed), expands into its own units, and a searcher defined in a test file is
found by name like the built-in ones."""

from dataclasses import dataclass

import pytest

from hpo_kd.checks import option
from hpo_kd.cli import main
from hpo_kd.plan import Trial
from hpo_kd.searchers import SEARCHERS, Searcher, register
from hpo_kd.study import load_study

BASE = """
name = "s"
seeds = [0]
[train]
epochs = 4
[[settings]]
dataset = "digits"
"""


def test_the_built_in_searchers_are_registered_with_their_display():
    assert {"grid", "optuna", "pbt"} <= set(SEARCHERS.names())
    for name in ("grid", "optuna", "pbt"):
        cls = SEARCHERS.get(name)
        assert cls.kind == "searched" and cls.label and cls.color and cls.marker
    from hpo_kd import methods

    assert methods.info("pbt")["label"] == "PBT" and methods.info("grid")["words"] == "the grid's selected τ"


def test_list_names_every_searcher(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert all(n in out for n in SEARCHERS.names())


@pytest.mark.parametrize(
    "table,message",
    [
        ("[methods.optuna]\ntrials = 1.5", "methods.optuna.trials: expected an integer, got 1.5"),
        ("[methods.optuna]\nlow = 4.0\nhigh = 2.0", "methods.optuna.low: low = 4.0 must be below high = 2.0"),
        ("[methods.optuna]\nasha = 1", "methods.optuna.asha: expected true or false, got 1"),
        ("[methods.optuna]\nreduction_factor = 1", "methods.optuna.reduction_factor: 1 is out of range; allowed: [2"),
        ("[methods.optuna]\npruner = 1", "methods.optuna.pruner: unknown key; allowed: asha, grace_period, high"),
        ("[methods.pbt]\nquantile = 0.75", "methods.pbt.quantile: 0.75 is out of range; allowed: (0, 0.5]"),
        (
            '[methods.optuna]\nmethod = "ttm"\nseparate = true',
            "methods.optuna.separate: ttm has no student temperature",
        ),
        (
            '[methods.optuna_pruned]\nmethod = "wttm"\nseparate = true',
            "methods.optuna_pruned.separate: wttm has no student temperature",
        ),
        ('[methods.pbt]\ngrouped = "yes"', "methods.pbt.grouped: expected true or false, got 'yes'"),
        ("[methods.pbt]\ninterval = 0", "methods.pbt.interval: 0 is out of range; allowed: [1, inf]"),
        ('[methods.pbt]\nmethod = "lskd"', "methods.pbt.method: PBT searches the `fixed` method's temperature only"),
        ("[methods.grid]\ntemperatures = [1]\npairs = [[1, 2]]", "methods.grid: give exactly one of temperatures"),
        ("[methods.grid]\npairs = [[1, 2, 3]]", "methods.grid.pairs[0]: expected [tau_t, tau_s], got [1, 2, 3]"),
        ('[methods.grid]\ntemperatures = [1]\nmethod = "dts"', "methods.grid.method: 'dts' is not a method a searcher"),
    ],
)
def test_a_searchers_bad_option_exits_2_naming_the_key(study_file, capsys, tmp_path, table, message):
    path = study_file(BASE + table + "\n")
    assert main(["run", path, "--dry-run", "--runs-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert path in err and message in err and "Traceback" not in err


def test_defaults_are_filled_as_before(study_file):
    s = load_study(study_file(BASE + "[methods.optuna]\ntrials = 6\n[methods.pbt]\n"))
    assert s.methods["optuna"] == {
        "trials": 6,
        "startup_trials": 3,
        "low": 1.0,
        "high": 16.0,
        "separate": False,
        "seed": 0,
        "asha": False,
        "grace_period": 2,
        "reduction_factor": 2,
        "method": "fixed",
    }
    assert "interval" not in s.methods["pbt"], "an unset interval stays unset (a quarter of the epochs)"
    (search,) = [t for t in s.plan() if t.method == "optuna"]
    assert search.budget == 6 and search.budget_keys == ("trials", "startup_trials")
    more = load_study(study_file(BASE + "[methods.optuna]\ntrials = 9\n[methods.pbt]\n", "more.toml"))
    assert [t.id for t in more.plan() if t.method == "optuna"] == [search.id], "the budget is not in the id"


@dataclass(frozen=True)
class _EveryOtherOptions:
    count: int = option(2, "int", lo=1)
    start: float = option(1.0, "float", lo=0, lo_open=True)
    method: str = "fixed"


@pytest.fixture
def every_other():
    """A searcher defined here, in the test, and nowhere else: fixed trials at start, 2·start, ..."""

    @register("every_other")
    class EveryOther(Searcher):
        name = "every_other"
        label = "every other"
        Options = _EveryOtherOptions

        @classmethod
        def expand(cls, opts, setting, seed, base):
            taus = [opts["start"] * 2**i for i in range(opts["count"])]
            return [Trial("trial", cls.name, setting, seed, dict(base, method="fixed", tau_t=t, tau_s=t)) for t in taus]

    yield EveryOther
    SEARCHERS._items.pop("every_other")


def test_a_searcher_defined_in_a_test_file_expands_and_checks_its_options(study_file, every_other, capsys, tmp_path):
    s = load_study(study_file(BASE + "[methods.every_other]\ncount = 3\nstart = 2\n"))
    mine = [t for t in s.plan() if t.method == "every_other"]
    assert [t.config["tau_t"] for t in mine] == [2.0, 4.0, 8.0] and s.methods["every_other"]["start"] == 2.0
    bad = study_file(BASE + "[methods.every_other]\ncount = 0\n", "bad.toml")
    assert main(["run", bad, "--dry-run", "--runs-dir", str(tmp_path / "runs")]) == 2
    assert "methods.every_other.count: 0 is out of range; allowed: [1, inf]" in capsys.readouterr().err
