"""The store row of a finished Ray Tune trial (a `TrialRecord`): what its spec and config say the
trial is, and its final result."""

from __future__ import annotations

import json
import math

from ..files import digest
from ..record import RESULT_COLUMNS, TAU_S, TAU_T, TrialRecord
from ..study import Study
from ..worker import trial_config


def nan_to_none(v):
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def search_trial_id(spec, config) -> str:
    """The store id of a search's trial: its unit and its temperatures."""
    c = trial_config(config)
    return f"{spec['unit_id']}-{digest([c[TAU_T], c[TAU_S]])}"


def store_row(study: Study, spec, config, last, status, error) -> TrialRecord:
    """The store's record of a finished trial: what its spec and config say it is, and the final
    result `last` (its RESULT_COLUMNS; a failed trial has no accuracies)."""
    c = trial_config(config)
    trial_id = spec["trial_id"]
    if spec["kind"] == "search":
        trial_id = search_trial_id(spec, config)
    s = spec["setting"]
    results = {k: nan_to_none(last.get(k)) for k in RESULT_COLUMNS if k not in ("status", "error")}
    if status == "failed":
        results.update(val_acc=None, test_acc=None, best_val_acc=None, test_at_best_val=None)
    return TrialRecord(
        trial_id=trial_id,
        unit_id=spec["unit_id"],
        study=study.name,
        setting=s["id"],
        setting_label=s["label"],
        dataset=s["dataset"],
        augment=s["augment"],
        fraction=s["fraction"],
        teacher=s["teacher"],
        student=s["student"] if spec["kind"] != "teacher" else None,
        method=spec["method"],
        seed=spec["seed"],
        tau_t_config=c.get(TAU_T),
        tau_s_config=c.get(TAU_S),
        options=json.dumps(spec.get("search") or c.get("method_options", {}), sort_keys=True),
        status=status,
        error=error,
        epochs=c.get("epochs"),
        node=nan_to_none(last.get("node")),
        started_at=nan_to_none(last.get("started_at")),
        gpu_ids=nan_to_none(last.get("gpu_ids")),
        **results,
    )
