"""The two file helpers every module uses: an atomic write and a short content hash."""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Callable

HASH_CHARS = 16  # hex characters kept of a sha256 (64 bits)


def atomic_write(path: str, write: Callable[[str], None]) -> None:
    """`write(tmp)` writes the file at a temporary path beside `path`, which then replaces
    `path` in one step: a reader sees the old file or the new one, never half of one."""
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def digest(data: Any) -> str:
    """The sha256 of `data` (bytes, or anything JSON can write, keys sorted), first HASH_CHARS hex."""
    if not isinstance(data, (bytes, bytearray)):
        data = json.dumps(data, sort_keys=True).encode()
    return hashlib.sha256(data).hexdigest()[:HASH_CHARS]


def hasher():
    """An incremental sha256 whose `short(h)` gives the same length as `digest`."""
    return hashlib.sha256()


def short(h) -> str:
    return h.hexdigest()[:HASH_CHARS]
