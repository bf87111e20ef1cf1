"""The teacher cache: one file per teacher key under `<cache_dir>/teachers/`, trained once.

A teacher's key is everything that determines its weights (data, architecture, training options,
seed). Workers that need the same teacher at the same time wait on a file lock: the first trains
and saves it (atomically), the others load it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from typing import Any, Callable, Dict, Tuple

import torch

from .files import atomic_write, digest

VERSION = 1  # bump when a change to training makes old teachers wrong


def key(data_key: Dict[str, Any], arch: str, **training: Any) -> Dict[str, Any]:
    """Everything that determines a teacher's weights."""
    return {"data": dict(data_key), "arch": arch, **training, "version": VERSION}


def path(cache_dir: str, arch: str, teacher_key: Dict[str, Any]) -> str:
    return os.path.join(cache_dir, "teachers", f"{arch}-{digest(teacher_key)}.pt")


@contextlib.contextmanager
def lock(file: str):
    """An exclusive lock on `file.lock`, held while the block runs."""
    os.makedirs(os.path.dirname(file), exist_ok=True)
    with open(file + ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def get_or_train(
    file: str, model: torch.nn.Module, train: Callable[[], Dict[str, Any]], teacher_key: Dict[str, Any]
) -> Tuple[Dict[str, Any], bool]:
    """Load `model`'s weights from `file`, or (first comer, under the lock) `train()` it and save
    it with the info `train` returns. Returns (info, cached)."""
    with lock(file):
        if os.path.exists(file):
            blob = torch.load(file, map_location="cpu", weights_only=True)
            model.load_state_dict(blob["state_dict"])
            return json.loads(blob["info"]), True
        info = dict(train(), key=teacher_key)
        blob = {"state_dict": model.state_dict(), "info": json.dumps(info)}
        atomic_write(file, lambda tmp: torch.save(blob, tmp))
        return info, False
