"""Load teacher weights from a checkpoint file (e.g. the CIFAR-100 teachers released by
RepDistiller / mdistiller, saved as {"model": state_dict, "epoch": ..., ...}).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch
from torch import nn
from torch.nn.modules.utils import consume_prefix_in_state_dict_if_present

from ..errors import UserError
from ..files import hasher, short

# Where training scripts nest the state_dict inside a checkpoint, in the order they are tried.
NESTED_KEYS = ("model", "state_dict", "net")
_SHOW = 10  # keys listed per kind in a mismatch message


def file_hash(path) -> str:
    """The sha256 of the file's bytes, as short as `files.digest` (for cache keys)."""
    h = hasher()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return short(h)


def _is_state_dict(obj) -> bool:
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def _find_state_dict(obj, path: Path) -> Mapping[str, torch.Tensor]:
    if _is_state_dict(obj):
        return obj
    if isinstance(obj, Mapping):
        for key in NESTED_KEYS:
            if key in obj and _is_state_dict(obj[key]):
                return obj[key]
        found = ", ".join(repr(k) for k in list(obj)[:_SHOW])
        raise UserError(
            f"checkpoint {path} holds no state_dict: expected a mapping of parameter names to "
            f"tensors, or one under the key {' / '.join(map(repr, NESTED_KEYS))}; "
            f"its top-level keys are: {found or '(none)'}"
        )
    raise UserError(f"checkpoint {path} holds a {type(obj).__name__}, not a state_dict")


def _listing(what: str, keys: list[str]) -> str:
    shown = ", ".join(keys[:_SHOW])
    more = f", ... (+{len(keys) - _SHOW} more)" if len(keys) > _SHOW else ""
    return f"{len(keys)} {what}: {shown}{more}"


def load_weights(model: nn.Module, path) -> dict:
    """Load the checkpoint at `path` into `model` with strict key matching.

    Accepts a raw state_dict or one nested under `model`, `state_dict` or `net`; strips a
    DataParallel `module.` prefix. Raises UserError (naming the file) when the file is missing or
    unreadable, or when its keys or shapes do not match the model. Returns
    {"path", "sha256", "keys"}.
    """
    p = Path(path)
    if not p.is_file():
        raise UserError(f"checkpoint file not found: {p}")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # unpickling, zip, weights-only refusals: all "cannot read"
        reason = " ".join(str(e).split())[:300] or type(e).__name__
        raise UserError(f"cannot read checkpoint {p}: {reason}") from None
    sd = _find_state_dict(obj, p)
    if not isinstance(sd, dict):
        sd = dict(sd)
    consume_prefix_in_state_dict_if_present(sd, "module.")

    expected = model.state_dict()
    missing = [k for k in expected if k not in sd]
    # Checkpoints from before PyTorch 0.4.1 have no BatchNorm batch counters: tolerated (below the
    # model keeps its own, as BatchNorm's loader does for such files); any other gap is an error.
    only_counters = all(k.endswith(".num_batches_tracked") for k in missing)
    unexpected = [k for k in sd if k not in expected]
    bad_shape = [
        f"{k} (checkpoint {tuple(sd[k].shape)}, model {tuple(v.shape)})"
        for k, v in expected.items()
        if k in sd and sd[k].shape != v.shape
    ]
    if not only_counters or unexpected or bad_shape:
        parts = [_listing("missing keys", missing), _listing("unexpected keys", unexpected)]
        if bad_shape:
            parts.append(_listing("shape mismatches", bad_shape))
        raise UserError(f"checkpoint {p} does not fit the model {type(model).__name__}: " + "; ".join(parts))
    n_keys = len(sd)
    for k in missing:  # only batch counters by now
        sd[k] = expected[k]
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        reason = " ".join(str(e).split())[:600]
        raise UserError(f"checkpoint {p} does not fit the model {type(model).__name__}: {reason}") from None
    return {"path": str(p), "sha256": file_hash(p), "keys": n_keys}
