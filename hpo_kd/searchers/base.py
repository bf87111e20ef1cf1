"""What a searcher is: a class registered by name (`@register("name")`) that owns

* its options: a dataclass (`Options`) whose fields say what each key of its study table allows
  (`hpo_kd.checks.option`), read and checked before any compute (and by `hpo-kd run --dry-run`);
* its units of work: `expand` turns its options into the units of one setting and seed (fixed
  trials, as the grid does, or one search that runs `budget` Ray Tune trials);
* how a search runs (`runs`): `tune_search` gives the study's one Tuner a search (a Ray Tune
  `Searcher` batched by `hpo_kd.tune.search.Batched`, and optionally a scheduler of its own);
  or `run_alone` runs it in a Tuner of its own after the study's main Tuner; or `unit` makes
  the whole search one Ray Tune trial of the study's Tuner, that `hpo_kd.worker` runs in one
  process and whose rows are stored when it ends;
* what reports and the CLI show of it (label, colour, marker, order, words), as methods do.

A searcher chooses the temperatures of the `fixed` method, or of another `searchable` method
named by `method = NAME` in its table (LS-KD's base temperature).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

from ..checks import fail, read_options
from ..plan import Setting, Trial
from ..registry import Registry

SEARCHERS = Registry("searcher")


def register(name: Optional[str] = None):
    """`@register("name")`: a searcher class, found by the name of its study table."""
    return SEARCHERS.register(name)


def searched_method(path: str, key: str, table: Dict[str, Any], default: str) -> str:
    """The method whose temperatures a searcher's table searches: `method = NAME` (one whose class
    is `searchable`), by default the searcher's own (`fixed`)."""
    from .. import methods as methods_mod

    name = table.get("method", default)
    allowed = [n for n in methods_mod.names() if methods_mod.METHODS.get(n).searchable]
    if not isinstance(name, str) or name not in allowed:
        fail(path, key, f"{name!r} is not a method a searcher can search; allowed: {', '.join(allowed)}")
    return name


def one_tau_unless_student_temperature(path: str, key: str, method: str) -> None:
    """Fail at `key` (a separate tau_s) when the searched method has no student temperature of its
    own (TTM and WTTM: the student's softmax is at 1), before any compute."""
    from .. import methods as methods_mod

    if not methods_mod.METHODS.get(method).student_temperature:
        fail(path, key, f"{method} has no student temperature; allowed: one tau for tau_t and tau_s")


@dataclass
class SearchRun:
    """What a searcher's unit gets from the run that runs it (`hpo_kd.tune.runner`): the study's
    folder and store, the slots, and, for a Tuner of its own, the resources, the progress line
    and the run's context managers for Tune's environment and quiet loggers."""

    folder: str
    store: Any
    study: Any
    slots: int = 1
    resources: Optional[Dict[str, float]] = None
    progress: Any = None
    tune_env: Optional[Callable[[], Any]] = None
    quiet: Optional[Callable[[str], Any]] = None
    shared: Dict[str, Any] = field(default_factory=dict)  # what searchers open once per run (a storage)

    def rows(self, unit_id: str) -> List[Dict[str, Any]]:
        """Every store row of a unit (failed ones too), as the store held them when first asked."""
        if "trials" not in self.shared:
            self.shared["trials"] = self.store.trials()
        everything = self.shared["trials"]
        return everything[everything["unit_id"] == unit_id].to_dict("records") if len(everything) else []

    def finished(self, unit_id: str):
        """The unit's finished rows (a DataFrame)."""
        return self.store.unit_rows(unit_id)


class Searcher:
    """A searcher's display attributes and its hooks (see the module docstring)."""

    name = "searcher"
    kind = "searched"
    method = "fixed"  # the temperature method whose temperatures it chooses (unless the table names one)
    label: Optional[str] = None
    words: Optional[str] = None  # in sentences, when not the label
    color: Optional[str] = None
    marker = "o"
    order = 50

    Options: Any = None  # the dataclass of its options (a `method` field is added by `read`)
    budget_keys: Tuple[str, ...] = ()  # options that are not part of a search's id (raising them extends it)
    fixed_tau = True  # each of its trials trains at one τ (PBT's change theirs)
    resumes = True  # False: an interrupted search runs again whole (its members depend on each other)

    # ------------------------------------------------------------------ the report
    @classmethod
    def moved_temperatures(cls, options: Dict[str, Any]) -> List[Tuple[str, str]]:
        """The temperatures whose schedule the report's trajectories plot draws for a search's
        selected trial (curve column, name in a legend): none when each trial trains at one τ."""
        return [] if cls.fixed_tau else [("tau_t", "τ of the selected member")]

    # ------------------------------------------------------------------ the study file
    @classmethod
    def read(cls, path: str, key: str, table: Dict[str, Any]) -> Dict[str, Any]:
        """The options of its study table `key` (e.g. "methods.optuna"), checked, as a dict: what
        `Study.methods[name]` holds and what its units' `search` is made of."""
        method = searched_method(path, key + ".method", table, cls.method)
        opts = read_options(cls.Options, path, key + ".", table, extra={"method": method})
        return {k: v for k, v in dataclasses.asdict(opts).items() if v is not None}

    @classmethod
    def budget(cls, opts: Dict[str, Any]) -> int:
        """How many Ray Tune trials (store rows) one search runs."""
        return 1

    @classmethod
    def expand(cls, opts: Dict[str, Any], setting: Setting, seed: int, base: Dict[str, Any]) -> List[Trial]:
        """The units of one setting and seed: one search, its options in `search` (the searched
        method is in the config, and so in the id, not in `search`)."""
        search = {k: opts[k] for k in sorted(opts) if k != "method"}
        config = dict(base, method=opts["method"])
        return [Trial("search", cls.name, setting, seed, config, cls.budget(opts), search, cls.budget_keys)]

    # ------------------------------------------------------------------ running
    @classmethod
    def runs(cls, t: Trial) -> str:
        """How search `t` runs: "search" (the study's Tuner, `tune_search`), "alone" (a Tuner of
        its own, `run_alone`) or "unit" (one Ray Tune trial of the study's Tuner, `unit`)."""
        return "search"

    @classmethod
    def unit(cls, t: Trial, spec: Dict[str, Any]) -> Dict[str, Any]:
        """The spec of the one Ray Tune trial that runs search `t` whole (`runs(t) == "unit"`)."""
        raise NotImplementedError(f"searcher {cls.name!r} does not run as one trial")

    @classmethod
    def trials_to_run(cls, t: Trial, done) -> int:
        """How many Ray Tune trials search `t` still runs, given its finished store rows `done`."""
        if cls.resumes:
            return max(t.budget - len(done), 0)
        return t.budget if len(done) < t.budget else 0

    @classmethod
    def tune_search(cls, t: Trial, spec: Dict[str, Any], run: SearchRun):
        """(search, scheduler or None) of search `t` in the study's main Tuner: `search` is a
        `hpo_kd.tune.search.Batched`; a scheduler sees this search's trials only."""
        raise NotImplementedError(f"searcher {cls.name!r} has no search for the study's Tuner")

    @classmethod
    def run_alone(cls, t: Trial, spec: Dict[str, Any], run: SearchRun) -> None:
        """Run search `t` in a Tuner of its own (`runs(t) == "alone"`)."""
        raise NotImplementedError(f"searcher {cls.name!r} does not run alone")

    @classmethod
    def finished(cls, t: Trial, run: SearchRun) -> None:
        """Called for every search the store has finished, at the start of a run (e.g. to make a
        search's own storage follow the store)."""


class EpochBudgetSearcher(Searcher):
    """A searcher whose trials may stop early, with a budget in epochs: `budget` students, i.e.
    at most budget x (a trial's epochs) epochs per setting and seed, the grid's cost for a grid of
    `budget` temperatures. It proposes a trial only while its planned epochs still fit (so a trial
    that stops early leaves its unspent epochs to later ones); `trials` caps the number of trials.
    Its options need `budget` and `trials`; raising either extends the same search."""

    budget_keys = ("budget", "trials")

    @classmethod
    def budget(cls, opts: Dict[str, Any]) -> int:
        return opts["trials"]

    @staticmethod
    def trial_epochs(t: Trial) -> int:
        """The planned epochs of one of search `t`'s trials."""
        from .. import data as data_mod

        return int(t.config.get("epochs") or data_mod.train_defaults(t.config["dataset"])["epochs"])

    @classmethod
    def epochs_left(cls, t: Trial, done) -> float:
        """The budget's epochs that search `t`'s finished store rows `done` leave."""
        per_trial = cls.trial_epochs(t)
        spent = done["epochs_run"].fillna(per_trial).sum() if len(done) else 0.0
        return t.search["budget"] * per_trial - float(spent)

    @classmethod
    def trials_to_run(cls, t: Trial, done) -> int:
        """At most: the trials left, while one trial's planned epochs still fit the budget."""
        if cls.epochs_left(t, done) < cls.trial_epochs(t):
            return 0
        return max(t.budget - len(done), 0)
