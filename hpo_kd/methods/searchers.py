"""The searchers of a study: they choose the fixed temperatures of the `fixed` method, or of
another `searchable` method named by `method = NAME` in their study table (LS-KD's base).

Their study-file options are parsed by `hpo_kd.study`; what reports and the CLI show of them
(label, colour, marker, order) lives here, on the class, as it does for temperature methods.
"""

from __future__ import annotations

from typing import Optional

from ..registry import Registry

SEARCHERS = Registry("searcher")


class Searcher:
    name = "searcher"
    kind = "searched"
    method = "fixed"  # the temperature method whose temperatures it chooses (unless the table names one)
    label: Optional[str] = None
    words: Optional[str] = None  # in sentences, when not the label
    color: Optional[str] = None
    marker = "o"
    order = 50


@SEARCHERS.register("grid")
class Grid(Searcher):
    """Every temperature (pair) of a list; the one with the best val accuracy is selected."""

    name = "grid"
    label = "grid"
    words = "the grid's selected τ"
    color = "C0"
    marker = "o"
    order = 0


@SEARCHERS.register("optuna")
class Optuna(Searcher):
    """Optuna's seeded TPE through Ray Tune's `OptunaSearch` (optionally with ASHA)."""

    name = "optuna"
    label = "Optuna"
    color = "C1"
    marker = "D"
    order = 10


@SEARCHERS.register("pbt")
class Pbt(Searcher):
    """Ray Tune's Population Based Training: a population of `fixed` students whose τ is
    perturbed every few epochs, the worst copying the best (hpo_kd.tune.pbt)."""

    name = "pbt"
    label = "PBT"
    color = "C9"
    marker = "P"
    order = 20
