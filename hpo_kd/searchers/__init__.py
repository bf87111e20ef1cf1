"""Searchers of a fixed temperature, one file each, found by name (`SEARCHERS.get(name)`): the
grid, Optuna, PBT, and any other module in this package (every one is imported) or in a module
named by `HPO_KD_PLUGINS` (imported with the methods). See `base` for what a searcher owns, and
`grid` for the shortest one.
"""

from __future__ import annotations

import importlib
import pkgutil

from .base import SEARCHERS, Searcher, SearchRun, register, searched_method

for _m in pkgutil.iter_modules(__path__):
    if _m.name != "base":
        importlib.import_module(f"{__name__}.{_m.name}")


def of(t) -> type:
    """The searcher class of a search unit (or of a searcher's name)."""
    return SEARCHERS.get(t if isinstance(t, str) else t.method)


__all__ = ["SEARCHERS", "Searcher", "SearchRun", "of", "register", "searched_method"]
