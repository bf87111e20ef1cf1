"""The grid: every temperature of a list (or every pair of `pairs`), one fixed-τ student each;
the one with the best val accuracy is selected. The shortest searcher: read its table, expand it
into fixed trials (they run as any fixed-config student does, grouped with the setting's others).

    [methods.grid]
    temperatures = [1, 2, 4, 8, 16]   # tau_t = tau_s; or pairs = [[4, 2], [8, 4]]
    method = "fixed"                  # or another searchable method (e.g. "lskd")
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List

from ..checks import as_list, fail, known_keys, number
from ..plan import Setting, Trial
from .base import Searcher, register, searched_method


@dataclass(frozen=True)
class GridOptions:
    pairs: List[List[float]]  # (tau_t, tau_s) per student
    method: str = "fixed"


@register("grid")
class Grid(Searcher):
    """Every temperature (pair) of a list; the one with the best val accuracy is selected."""

    name = "grid"
    label = "grid"
    words = "the grid's selected τ"
    color = "C0"
    marker = "o"
    order = 0
    Options = GridOptions

    @classmethod
    def read(cls, path: str, key: str, table: Dict[str, Any]) -> Dict[str, Any]:
        known_keys(path, key + ".", table, {"temperatures", "pairs", "method"})
        if ("temperatures" in table) == ("pairs" in table):
            fail(path, key, "give exactly one of temperatures = [...] or pairs = [[tau_t, tau_s], ...]")
        if "temperatures" in table:
            pairs = [[t, t] for t in as_list(path, key + ".temperatures", table["temperatures"], "positive numbers")]
        else:
            pairs = as_list(path, key + ".pairs", table["pairs"], "[tau_t, tau_s] pairs")
        for j, pr in enumerate(pairs):
            if not (isinstance(pr, list) and len(pr) == 2):
                fail(path, f"{key}.pairs[{j}]", f"expected [tau_t, tau_s], got {pr!r}")
            for v in pr:
                number(path, key + ".temperatures", v, 0, None, lo_open=True)
        opts = GridOptions(
            [[float(a), float(b)] for a, b in pairs], searched_method(path, key + ".method", table, cls.method)
        )
        return {"pairs": opts.pairs, "method": opts.method}

    @classmethod
    def expand(cls, opts: Dict[str, Any], setting: Setting, seed: int, base: Dict[str, Any]) -> List[Trial]:
        return [
            Trial("trial", cls.name, setting, seed, dict(base, method=opts["method"], tau_t=tt, tau_s=ts))
            for tt, ts in opts["pairs"]
        ]
