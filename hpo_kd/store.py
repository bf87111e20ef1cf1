"""The results store of a study: `runs/<study>/trials.parquet` (a row per finished trial) and
`runs/<study>/curves.parquet` (a row per trial and epoch). Every write is atomic (write a
temporary file, then rename), so a kill at any moment leaves the previous complete table.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import time
from typing import Any, Dict, Iterable, List, Optional

import pandas as pd

from .errors import UserError
from .files import atomic_write
from .record import NUMERIC, RESULT_COLUMNS, TRIAL_COLUMNS, TrialRecord

TRIALS = "trials.parquet"
CURVES = "curves.parquet"
DONE = ("ok", "diverged", "stopped")  # finished: never run again; `failed` is retried

# The columns, derived from the typed record (hpo_kd.record): TRIAL_COLUMNS, RESULT_COLUMNS, NUMERIC.
__all__ = ["CURVES", "DONE", "NUMERIC", "RESULT_COLUMNS", "TRIALS", "TRIAL_COLUMNS", "Store", "TrialRecord"]


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    """Numbers as floats (a missing value is NaN), whatever rows a table was built from."""
    for c in NUMERIC:
        if c in df.columns:
            df[c] = pd.to_numeric(df[c], errors="coerce").astype(float)
    return df


def _atomic_parquet(df: pd.DataFrame, path: str) -> None:
    atomic_write(path, lambda tmp: df.to_parquet(tmp, index=False))


class Store:
    def __init__(self, folder: str, create: bool = True):
        self.folder = os.path.abspath(folder)
        if create:
            os.makedirs(self.folder, exist_ok=True)
        self._trials = self._read(TRIALS)
        self._curves = self._read(CURVES)

    @classmethod
    def open_existing(cls, folder: str) -> "Store":
        """Open a store that must exist and hold trials (for `report` and `transfer`)."""
        if not os.path.isdir(folder):
            raise UserError(f"{folder!r} does not exist; expected a study's results folder (runs/<study>)")
        if not os.path.isfile(os.path.join(folder, TRIALS)):
            raise UserError(
                f"{folder!r} holds no {TRIALS}: not a results store (run `hpo-kd run studies/NAME.toml` first)"
            )
        s = cls(folder, create=False)
        if s.trials().empty:
            raise UserError(f"{folder!r} holds no finished trial yet")
        return s

    def _read(self, name: str) -> pd.DataFrame:
        path = os.path.join(self.folder, name)
        if os.path.isfile(path):
            try:
                # Read the bytes once: pyarrow may reopen a path, which a concurrent (atomic)
                # replace by a running study would swap underneath it.
                with open(path, "rb") as f:
                    return _typed(pd.read_parquet(io.BytesIO(f.read())))
            except Exception as e:  # a foreign or corrupt file
                raise UserError(f"{path!r} is not a readable results table ({e})") from None
        return pd.DataFrame()

    # ------------------------------------------------------------------ reading
    def trials(self) -> pd.DataFrame:
        return self._trials.copy()

    def curves(self) -> pd.DataFrame:
        return self._curves.copy()

    def finished_ids(self) -> set:
        if self._trials.empty:
            return set()
        return set(self._trials.loc[self._trials["status"].isin(DONE), "trial_id"])

    def unit_rows(self, unit_id: str) -> pd.DataFrame:
        if self._trials.empty:
            return self._trials
        t = self._trials
        return t[(t["unit_id"] == unit_id) & t["status"].isin(DONE)]

    # ------------------------------------------------------------------ writing
    def add(self, row: TrialRecord | Dict[str, Any], curve: Optional[Iterable[Dict[str, Any]]] = None) -> None:
        """Record one finished trial (replacing an earlier row with the same id) and its curve; `row`
        a TrialRecord or a dict of its fields (a missing one is empty)."""
        os.makedirs(self.folder, exist_ok=True)
        row = dataclasses.asdict(row) if isinstance(row, TrialRecord) else dict(row)
        if row.get("finished_at") is None:
            row["finished_at"] = time.time()
        if isinstance(row.get("options"), dict):
            row["options"] = json.dumps(row["options"], sort_keys=True)
        new = pd.DataFrame([{c: row.get(c) for c in TRIAL_COLUMNS}])
        t = self._trials
        if not t.empty:
            t = t[t["trial_id"] != row["trial_id"]]
        self._trials = _typed(pd.concat([t, new], ignore_index=True) if not t.empty else new)
        curve_rows: List[Dict[str, Any]] = [dict(r, trial_id=row["trial_id"]) for r in (curve or [])]
        if curve_rows:
            c = self._curves
            if not c.empty:
                c = c[c["trial_id"] != row["trial_id"]]
            newc = pd.DataFrame(curve_rows)
            self._curves = pd.concat([c, newc], ignore_index=True) if not c.empty else newc
            _atomic_parquet(self._curves, os.path.join(self.folder, CURVES))
        _atomic_parquet(self._trials, os.path.join(self.folder, TRIALS))

    def cost(self) -> pd.DataFrame:
        """Per setting and method: trials, epochs and trial-seconds spent."""
        t = self._trials
        if t.empty:
            return t
        return (
            t.groupby(["setting_label", "method"], sort=True)
            .agg(trials=("trial_id", "count"), epochs=("epochs_run", "sum"), trial_seconds=("seconds", "sum"))
            .reset_index()
        )
