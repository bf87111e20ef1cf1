"""The units of a run without Ray: a trial's spec, students grouped into one Tune trial, and the
teacher a unit waits for. (The store row of a finished trial: `hpo_kd.tune.rows`.)"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional

from ..study import Study, Trial


def planned_epochs(spec) -> int:
    from .. import data as data_mod

    c = spec["config"]
    return c.get("epochs") or data_mod.train_defaults(c["dataset"])["epochs"]


def unit_spec(t: Trial, cache_dir: str, device: str, threads: int) -> Dict[str, Any]:
    s = t.setting
    return {
        "kind": t.kind,
        "method": t.method,
        "seed": t.seed,
        "config": t.config,
        "trial_id": t.id,
        "search": t.search,
        "unit_id": t.id,
        "cache_dir": cache_dir,
        "device": device,
        "threads": threads,
        "setting": {
            "id": s.id,
            "label": s.label,
            "dataset": s.dataset,
            "augment": s.augment,
            "fraction": s.fraction,
            "teacher": s.teacher,
            "student": s.student,
        },
    }


def groupable(spec: Dict[str, Any]) -> bool:
    """Whether a fixed-config student may train in a group (hpo_kd.train.run_trials): its method
    leaves the backward pass to the trainer, its student's architecture allows it, fp32."""
    from .. import methods
    from ..models.grouped import trains_in_groups

    c = spec["config"]
    if spec["kind"] != "trial" or c.get("precision", "fp32") != "fp32":
        return False
    from .. import data as data_mod

    student = c.get("student") or data_mod.train_defaults(c["dataset"])["student"]
    return methods.METHODS.get(c["method"]).trains_in_group() and trains_in_groups(student)


def grouped_units(specs: List[Dict[str, Any]], per_trial: int) -> List[Dict[str, Any]]:
    """The fixed-config units of a run, with the students that see the same batches (same
    setting, seed and recipe; other temperature methods) joined into group units of at most
    `per_trial` members, each one Ray Tune trial. A group stands where its first member stood."""
    from ..train import group_key

    if per_trial <= 1:
        return specs
    buckets: Dict[str, List[Dict[str, Any]]] = {}
    for spec in specs:
        if groupable(spec):
            buckets.setdefault(group_key(spec["config"]), []).append(spec)
    chunks = {}
    for members in buckets.values():
        for i in range(0, len(members), per_trial):
            chunk = members[i : i + per_trial]
            if len(chunk) > 1:
                chunks[chunk[0]["unit_id"]] = chunk
    in_chunk = {m["unit_id"] for chunk in chunks.values() for m in chunk}
    out = []
    for spec in specs:
        if spec["unit_id"] in chunks:
            members = chunks[spec["unit_id"]]
            out.append(dict(members[0], kind="group", unit_id=f"group-{members[0]['unit_id']}", members=members))
        elif spec["unit_id"] not in in_chunk:
            out.append(spec)
    return out


def teacher_key_of(study: Study, t: Trial) -> Optional[str]:
    """The key of the teacher trial a unit waits for (as `Study.teachers()` builds it), or None."""
    if t.kind == "teacher":
        return json.dumps(t.config, sort_keys=True)
    if t.config.get("method") == "nokd":
        return None
    cfg = study.base_config(t.setting, t.seed)
    cfg.pop("student", None)
    cfg.update(method="nokd", seed=cfg.get("teacher_seed", 0))
    return json.dumps(cfg, sort_keys=True)
