"""Population Based Training (Jaderberg et al., 2017): per setting and seed a population of
`fixed` students (tau_t = tau_s = tau) whose weak members copy the strong ones and perturb τ every
`interval` epochs. By default (`grouped = true`) a population trains in one process as the grid's
students do, in lockstep on the same batches, an exploit a copy between members
(`hpo_kd.train.population`), and a search is one Ray Tune trial of the study's Tuner, beside the
other trials. `grouped = false`: Ray Tune's `PopulationBasedTraining`, each member a Ray Tune trial,
each search in a Tuner of its own after the main one (PBT refuses a search algorithm in its
Tuner; `hpo_kd.tune.pbt`). Both follow Tune's synchronous rule; their decisions come from
different generators, so their results differ. An interrupted search runs again whole (a
population's state is not in the store).

    [methods.pbt]
    population = 5             # students per setting and seed (trials in the budget)
    interval = 4               # epochs between perturbations (default: a quarter of the epochs)
    quantile = 0.25            # the bottom quantile copies a top member
    resample_probability = 0.25  # else tau x1.2 / x0.8; clamped to [low, high]
    low = 1.0
    high = 16.0
    seed = 0                   # first taus and PBT's decisions (combined with the study seed)
    grouped = true             # false: Ray Tune's PopulationBasedTraining, a trial per member
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional

from ..checks import fail, low_below_high, option
from ..plan import Trial
from .base import Searcher, SearchRun, register


@dataclass(frozen=True)
class PbtOptions:
    population: int = option(5, "int", lo=2, doc="students per setting and seed")
    quantile: float = option(0.25, "float", lo=0, hi=0.5, lo_open=True)
    resample_probability: float = option(0.25, "float", lo=0, hi=1)
    low: float = option(1.0, "float", lo=0, lo_open=True)
    high: float = option(16.0, "float", lo=0, lo_open=True)
    seed: int = option(0, "int", lo=0)
    # epochs between perturbations; unset: a quarter of the trial's epochs (hpo_kd.tune.pbt)
    interval: Optional[int] = option(None, "int", lo=1)
    grouped: bool = option(True, "bool", doc="train a population in one process (false: Ray Tune's PBT)")
    method: str = "fixed"

    def check(self, path: str, prefix: str) -> None:
        low_below_high(path, prefix, self.low, self.high)
        if self.method != "fixed":
            fail(path, prefix + "method", "PBT searches the `fixed` method's temperature only")


@register("pbt")
class Pbt(Searcher):
    """Population Based Training: a population of `fixed` students whose τ is perturbed every few
    epochs, the worst copying the best; in one process (hpo_kd.train.population), or with
    `grouped = false` through Ray Tune's PBT (hpo_kd.tune.pbt)."""

    name = "pbt"
    label = "PBT"
    color = "C9"
    marker = "P"
    order = 20
    Options = PbtOptions
    fixed_tau = False  # a member's τ is perturbed: its τ schedule is in its curve
    resumes = False  # its members depend on each other

    @classmethod
    def budget(cls, opts: Dict[str, Any]) -> int:
        return opts["population"]

    @classmethod
    def runs(cls, t: Trial) -> str:
        # grouped: one trial of the study's Tuner; else a Tuner of its own (Ray Tune's PBT refuses
        # the main Tuner's search algorithm)
        return "unit" if t.search.get("grouped", True) else "alone"

    @classmethod
    def unit(cls, t: Trial, spec: Dict[str, Any]) -> Dict[str, Any]:
        return dict(spec, kind="population")

    @classmethod
    def run_alone(cls, t: Trial, spec: Dict[str, Any], run: SearchRun) -> None:
        from ..tune.pbt import run_search

        run_search(t, spec, run.resources, run.slots, run.store, run.study, run.progress, run.tune_env, run.quiet)
