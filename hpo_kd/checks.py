"""The checks of a study file's values: each failure is a StudyError naming the file, the key and
what is allowed (`hpo-kd run` prints it and exits with code 2).

A searcher's options are a dataclass whose fields say what each key allows (`option`); the
searcher reads its table with `read_options`, so that a new searcher gets the same messages as
the built-in ones without writing a check of its own.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Iterable, Optional

from .errors import UserError

NUM = (int, float)


class StudyError(UserError):
    pass


def fail(path: str, key: str, msg: str):
    raise StudyError(f"{path}: {key}: {msg}")


def typed(path, key, value, types, what):
    """`value` if it is of `types` (a bool only where bool is named), else a StudyError."""
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        fail(path, key, f"expected {what}, got {value!r}")
    if not isinstance(value, types):
        fail(path, key, f"expected {what}, got {value!r}")
    return value


def number(path, key, value, lo=None, hi=None, lo_open=False, integer=False):
    """`value` if it is a number (an integer with `integer`) in [lo, hi] (or (lo, hi])."""
    typed(path, key, value, int if integer else NUM, "an integer" if integer else "a number")
    bad = (lo is not None and (value <= lo if lo_open else value < lo)) or (hi is not None and value > hi)
    if bad:
        left = "(" if lo_open else "["
        fail(
            path,
            key,
            f"{value!r} is out of range; allowed: {left}{lo if lo is not None else '-inf'}, "
            f"{hi if hi is not None else 'inf'}]",
        )
    return value


def as_list(path, key, value, what):
    """`value` as a non-empty list (a single value becomes a list of one)."""
    if not isinstance(value, list):
        value = [value]
    if not value:
        fail(path, key, f"must not be empty; expected {what}")
    return value


def known_keys(path, prefix, table: Dict[str, Any], allowed: Iterable[str]):
    allowed = set(allowed)
    for k in table:
        if k not in allowed:
            fail(path, f"{prefix}{k}", f"unknown key; allowed: {', '.join(sorted(allowed))}")


# ---------------------------------------------------------------------- a searcher's options


def option(default: Any, kind: str, lo=None, hi=None, lo_open: bool = False, doc: str = "", choices=()):
    """A field of a searcher's options: `kind` is "int", "float", "bool", "choice" (one of
    `choices`) or "floats" (a non-empty list of numbers); a number is checked against [lo, hi]
    (or (lo, hi] with `lo_open`). A default of None leaves the key unset unless the table gives
    it (the searcher fills it in `resolve`)."""
    check = {"kind": kind, "lo": lo, "hi": hi, "lo_open": lo_open, "doc": doc, "choices": tuple(choices)}
    return dataclasses.field(default=default, metadata={"check": check})


def read_value(path: str, key: str, value: Any, check: Dict[str, Any]) -> Any:
    """One option's value, checked as its field says (a float is stored as a float)."""
    kind = check["kind"]
    if kind == "bool":
        return typed(path, key, value, bool, "true or false")
    if kind == "choice":
        if not isinstance(value, str) or value not in check["choices"]:
            fail(path, key, f"{value!r} is not allowed; allowed: {', '.join(check['choices'])}")
        return value
    if kind == "floats":
        values = as_list(path, key, value, "a list of numbers")
        return [float(number(path, key, v, check["lo"], check["hi"], check["lo_open"])) for v in values]
    value = number(path, key, value, check["lo"], check["hi"], check["lo_open"], integer=kind == "int")
    return float(value) if kind == "float" else value


def read_options(cls, path: str, prefix: str, table: Dict[str, Any], extra: Optional[Dict[str, Any]] = None):
    """An instance of the options dataclass `cls` from a study table: every key known, every
    value of the right kind and range (`option`), then the instance's own `resolve` and `check`
    (defaults that depend on other keys, and rules between keys). `extra`: values already read
    (e.g. the searched method) given to the constructor as they are."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    known_keys(path, prefix, table, fields)
    values: Dict[str, Any] = dict(extra or {})
    for name, f in fields.items():
        check = f.metadata.get("check")
        if check is None or name in values:
            continue
        if name in table:
            values[name] = read_value(path, prefix + name, table[name], check)
    opts = cls(**values)
    resolve = getattr(opts, "resolve", None)
    if resolve is not None:
        opts = resolve()
        for name, f in fields.items():  # a default filled in by `resolve` is checked too
            check = f.metadata.get("check")
            value = getattr(opts, name)
            if check is not None and value is not None and name not in table:
                read_value(path, prefix + name, value, check)
    check_fn = getattr(opts, "check", None)
    if check_fn is not None:
        check_fn(path, prefix)
    return opts


def low_below_high(path: str, prefix: str, low: float, high: float) -> None:
    if low >= high:
        fail(path, prefix + "low", f"low = {low} must be below high = {high}")
