"""A tiny name -> factory registry (like timm's @register_model)."""

from __future__ import annotations

from typing import Callable, Dict, Iterable

from .errors import UserError


class Registry:
    def __init__(self, kind: str):
        self.kind = kind
        self._items: Dict[str, Callable] = {}

    def register(self, name: str | None = None):
        def deco(obj):
            key = name or getattr(obj, "name", None) or obj.__name__
            if key in self._items:
                raise RuntimeError(f"{self.kind} {key!r} registered twice")
            self._items[key] = obj
            return obj

        return deco

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        return name in self._items

    def get(self, name: str, extra_allowed: Iterable[str] = ()) -> Callable:
        try:
            return self._items[name]
        except KeyError:
            allowed = ", ".join(list(self.names()) + list(extra_allowed))
            raise UserError(f"unknown {self.kind} {name!r}; allowed: {allowed}") from None
