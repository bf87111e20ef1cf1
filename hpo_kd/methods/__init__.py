"""Temperature methods, one file each, found by name: `create(name, **options)`.

Every module in this package is imported (a new method is a new file here), and so are the
modules named by the environment variable `HPO_KD_PLUGINS` (comma-separated), for methods that
live outside the package.
"""

from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
from typing import Any, Dict, List

from ..errors import UserError
from ..searchers import SEARCHERS, Searcher
from .base import METHODS, Step, TemperatureMethod, TrialContext, register

PLUGINS_ENV = "HPO_KD_PLUGINS"

for _m in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_m.name}")


def load_plugins() -> None:
    """Import the modules named in $HPO_KD_PLUGINS (their `@register` adds their methods)."""
    for mod in filter(None, (x.strip() for x in os.environ.get(PLUGINS_ENV, "").split(","))):
        try:
            importlib.import_module(mod)
        except ImportError as e:
            raise UserError(f"{PLUGINS_ENV}: cannot import {mod!r} ({e})") from None


load_plugins()


def names() -> list[str]:
    return METHODS.names()


def create(name: str, **options) -> TemperatureMethod:
    """Create method `name`; unknown options are an error that lists the allowed ones."""
    cls = METHODS.get(name)
    params = inspect.signature(cls.__init__).parameters
    allowed = [p for p in params if p != "self" and params[p].kind is not inspect.Parameter.VAR_KEYWORD]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise UserError(
            f"unknown option(s) {', '.join(unknown)} for method {name!r}; allowed: {', '.join(allowed) or 'none'}"
        )
    return cls(**options)


def options_of(name: str) -> dict:
    """The options of method `name` with their defaults."""
    cls = METHODS.get(name)
    params = inspect.signature(cls.__init__).parameters
    return {k: p.default for k, p in params.items() if k != "self" and p.default is not inspect._empty}


def study_methods() -> List[str]:
    """What a study's [methods] table may name: the searchers, then every method that runs on its
    own (not `searched`: those run under a searcher)."""
    own = [n for n in METHODS.names() if METHODS.get(n).kind != "searched"]
    return SEARCHERS.names() + sorted(own, key=lambda n: (METHODS.get(n).order, n))


def info(name: str) -> Dict[str, Any]:
    """What reports show of a study method (a searcher or a method; "mkd:from16" is MKD's variant):
    kind, label, words (in sentences), color (None: pick one), marker, order."""
    base = name.split(":", 1)[0]
    if base in SEARCHERS:
        cls = SEARCHERS.get(base)
    elif base in METHODS:
        cls = METHODS.get(base)
    else:  # e.g. a store written with a plugin that is not loaded now
        return {"kind": "learned", "label": name, "words": name, "color": None, "marker": "o", "order": 50}
    label = cls.label or base
    if name != base:
        label = f"{label}:{name.split(':', 1)[1]}"
    return {
        "kind": cls.kind,
        "label": label,
        "words": getattr(cls, "words", None) or label,
        "color": cls.color if name == base else None,
        "marker": cls.marker,
        "order": cls.order,
    }


__all__ = [
    "create",
    "info",
    "names",
    "options_of",
    "register",
    "study_methods",
    "Searcher",
    "SEARCHERS",
    "Step",
    "TemperatureMethod",
    "TrialContext",
]
