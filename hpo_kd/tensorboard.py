"""A study's curves as TensorBoard event files: `runs/<study>/tensorboard/`, one run per trial.

A run is named so that a person finds a trial by what it is:
`<setting_label>/<method>[-tau<value>]/seed<N>-<short trial id>` (characters that are awkward in a
path or a shell made safe, e.g. `mnist1d(100%,none)` -> `mnist1d_100pct_none`). Its scalars, with
the epoch as the step: `acc/val`, `acc/test`, `tau/t`, `tau/s`, `loss/<term>` for each `train_<term>`
column, `lr`, `time/epoch_seconds` and `time/samples_per_s` (how the run went, not what it found),
and every other numeric column of the curve (a method's own metrics) as `method/<name>`. An epoch
without a value (a metric another method logs, or accuracies a trial did not evaluate that epoch)
is left out rather than written as NaN.

Written with tensorboardX (it comes with Ray Tune); viewing needs `tensorboard`, which is not a
dependency: `pip install tensorboard; tensorboard --logdir runs/<study>/tensorboard`.

Incremental: a trial whose run folder exists is not written again, so calling `write_events` after
each run of a study adds the new trials only. A run is written in a folder outside the log
directory and renamed into place when complete, so an interrupted call leaves no half-written run
that a later call would take for done.
"""

from __future__ import annotations

import math
import os
import re
import shutil
from typing import Dict, List, Optional, Tuple

import pandas as pd

from .store import DONE, Store

LOGDIR = "tensorboard"
_TMP = ".tensorboard-tmp"  # beside the log directory, not in it: TensorBoard never sees a partial run
SHORT_ID = 8  # characters of a trial id in a run's name: the end, which tells a search's trials apart
_TAGS = {
    "val_acc": "acc/val",
    "test_acc": "acc/test",
    "tau_t": "tau/t",
    "tau_s": "tau/s",
    "lr": "lr",
    "epoch_seconds": "time/epoch_seconds",
    "samples_per_s": "time/samples_per_s",
}
_NOT_SCALARS = {"trial_id", "epoch"}


def safe(text) -> str:
    """`text` as one path component: letters, digits and `.=+-` kept, `%` as `pct`, runs of anything
    else as one `_`; no `_` or `.` at either end (no hidden folder, no `..`)."""
    return re.sub(r"[^A-Za-z0-9.=+-]+", "_", str(text).replace("%", "pct")).strip("_.") or "_"


def _num(v) -> Optional[float]:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _tau(row) -> str:
    t, s = _num(row.get("tau_t_config")), _num(row.get("tau_s_config"))
    if t is None and s is None:
        return ""
    if s is None or t == s:
        return f"-tau{t:.4g}"
    if t is None:
        return f"-taus{s:.4g}"
    return f"-taut{t:.4g}-taus{s:.4g}"


def run_name(row) -> str:
    """The run's folder, relative to the log directory (always `/`-separated)."""
    seed = _num(row.get("seed"))
    seed_s = f"seed{int(seed)}" if seed is not None else "seed_"
    label = row.get("setting_label")
    if label is None or (isinstance(label, float) and math.isnan(label)):
        label = row.get("setting") or "_"
    tid = str(row["trial_id"])
    return "/".join([safe(label), safe(f"{row.get('method')}{_tau(row)}"), safe(f"{seed_s}-{tid[-SHORT_ID:]}")])


def tag(column: str) -> Optional[str]:
    """The scalar's tag for a curve column (None: not a scalar)."""
    if column in _NOT_SCALARS:
        return None
    if column in _TAGS:
        return _TAGS[column]
    if column.startswith("train_"):
        return "loss/" + column[len("train_") :]
    return "method/" + column


def scalars(curve: pd.DataFrame) -> List[Tuple[str, int, float]]:
    """(tag, epoch, value) for every finite number of one trial's curve, sorted by epoch."""
    out = []
    curve = curve.sort_values("epoch")
    for col in curve.columns:
        name = tag(col)
        if name is None or not pd.api.types.is_numeric_dtype(curve[col]):
            continue
        for epoch, v in zip(curve["epoch"], curve[col]):
            f, e = _num(v), _num(epoch)
            if f is not None and e is not None:
                out.append((name, int(e), f))
    return out


def _walltimes(row, curve: pd.DataFrame) -> Dict[int, float]:
    """Each epoch's end as wall time, from the trial's start and its epochs' seconds (TensorBoard's
    relative axis then shows training time); the writing time where the store lacks them."""
    start = _num(row.get("started_at"))
    if start is None or "epoch_seconds" not in curve:
        return {}
    c = curve.sort_values("epoch")
    secs = [(_num(x) or 0.0) for x in c["epoch_seconds"]]
    out, t = {}, start
    for e, s in zip(c["epoch"], secs):
        t += s
        if _num(e) is not None:
            out[int(e)] = t
    return out


def write_events(folder: str) -> int:
    """Write the curve of every finished trial of the store at `folder` (runs/<study>) whose run is
    not yet in `<folder>/tensorboard/`; return how many trials were written."""
    from tensorboardX import SummaryWriter

    store = Store.open_existing(folder)
    trials, curves = store.trials(), store.curves()
    if curves.empty or "trial_id" not in curves or "epoch" not in curves:
        return 0
    logdir = os.path.join(store.folder, LOGDIR)
    # this process's own: a concurrent call (the study runner's, a user's) has its own
    tmp_root = os.path.join(store.folder, _TMP, str(os.getpid()))
    shutil.rmtree(tmp_root, ignore_errors=True)  # an interrupted earlier call's with the same pid
    done = trials[trials["status"].isin(DONE)].sort_values("trial_id")
    by_trial = {k: g for k, g in curves.groupby("trial_id", sort=False)}
    written = 0
    try:
        for _, row in done.iterrows():
            curve = by_trial.get(row["trial_id"])
            if curve is None:
                continue
            name = run_name(row)
            final = os.path.join(logdir, *name.split("/"))
            if os.path.exists(final):
                continue
            points = scalars(curve.dropna(axis=1, how="all"))
            if not points:
                continue
            walls = _walltimes(row, curve)
            tmp = os.path.join(tmp_root, f"{written}")
            w = SummaryWriter(logdir=tmp, flush_secs=3600)
            try:
                for t, step, value in points:
                    w.add_scalar(t, value, global_step=step, walltime=walls.get(step))
            finally:
                w.close()
            os.makedirs(os.path.dirname(final), exist_ok=True)
            try:
                os.rename(tmp, final)
            except OSError:
                if not os.path.isdir(final):
                    raise
                shutil.rmtree(tmp)  # a concurrent call wrote this run first
                continue
            written += 1
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)
        try:
            os.rmdir(os.path.dirname(tmp_root))
        except OSError:
            pass  # another call's runs in progress (or an interrupted one's, harmless: outside the log directory)
    return written
