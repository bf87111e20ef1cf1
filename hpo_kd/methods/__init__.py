"""Temperature methods, one file each, found by name: `create(name, **options)`."""
from __future__ import annotations

import inspect

from ..errors import UserError
from .base import METHODS, Step, TemperatureMethod, TrialContext, register
from . import fixed, mkd, dts, ctkd  # noqa: F401  (registration)


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
            f"unknown option(s) {', '.join(unknown)} for method {name!r}; allowed: {', '.join(allowed)}"
        )
    return cls(**options)


def options_of(name: str) -> dict:
    """The options of method `name` with their defaults."""
    cls = METHODS.get(name)
    params = inspect.signature(cls.__init__).parameters
    return {k: p.default for k, p in params.items() if k != "self" and p.default is not inspect._empty}


__all__ = ["create", "names", "options_of", "register", "Step", "TemperatureMethod", "TrialContext"]
