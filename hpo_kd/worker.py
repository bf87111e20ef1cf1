"""The Ray Tune trainable: one teacher, one student trial, a group of students (`members`: one
setting and seed, trained together by `hpo_kd.train.run_trials`) or a PBT population (its
`search`, trained by `hpo_kd.train.run_population`), run inside a (reused) Tune actor.

This module is what a Tune actor imports to run a trial, so it imports nothing heavy at module
level: torch, scikit-learn and the training code are imported by the first trial an actor runs
(`import_s` in its final report) and stay imported for every later trial on that actor.

A trial reports once, at the end, with its per-epoch curve inside the final result (`curve`),
unless its search has a scheduler that reads per-epoch results (`spec["per_epoch"]`, for ASHA):
then every epoch is a `tune.report` of its own, as Tune's schedulers need.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from typing import Any, Dict

# SCALARS: the final result's scalar fields (the store's RESULT_COLUMNS and the teacher's
# accuracies), derived from the typed record (hpo_kd.record imports nothing heavy). Curves keep
# every number the trainer logs per epoch.
from .record import SCALARS, TAU_S, TAU_T, TAUS


def trial_config(config: Dict[str, Any]) -> Dict[str, Any]:
    """The trial's TrialConfig fields: the planned ones plus the temperatures a searcher sampled
    (`tau` for tau_t = tau_s, or `tau_t` and `tau_s`)."""
    cfg = dict(config["spec"]["config"])
    if "tau" in config:
        cfg[TAU_T] = cfg[TAU_S] = float(config["tau"])
    for k in TAUS:
        if k in config:
            cfg[k] = float(config[k])
    return cfg


def run_config(config: Dict[str, Any], spec: Dict[str, Any] | None = None) -> Dict[str, Any]:
    """The TrialConfig fields a trial runs with: its own (`trial_config`) and where it runs (the
    spec's cache folder, device and threads; `spec`: a group's, for one of its members)."""
    spec = config["spec"] if spec is None else spec
    return dict(trial_config(config), cache_dir=spec["cache_dir"], device=spec["device"], threads=spec["threads"])


def final_scalars(result: Dict[str, Any]) -> Dict[str, Any]:
    """A trainer's result as a final report has it: its SCALARS (a missing one None)."""
    return {k: result.get(k) for k in SCALARS}


def member_final(result: Dict[str, Any]) -> Dict[str, Any]:
    """A group member's part of its trial's final report: its scalars, its temperatures as they are
    (None: the method has none) and its curve (a PBT member that copied another carries its curve)."""
    m = {k: clean(v) for k, v in final_scalars(result).items()}
    if result["status"] == "ok":
        m[TAU_T], m[TAU_S] = result[TAU_T], result[TAU_S]
    return dict(m, curve=[curve_row(r) for r in result["history"]])


def clean(v):
    """None as NaN: Tune's result handling wants numbers."""
    if v is None:
        return float("nan")
    return v


def curve_row(row: Dict[str, Any]) -> Dict[str, Any]:
    """An epoch of the trainer's log, every metric in it (a method's own ones included)."""
    return {k: clean(v) for k, v in row.items() if v is None or isinstance(v, (int, float))}


def _node_id() -> str:
    try:
        import ray

        return ray.get_runtime_context().get_node_id()
    except Exception:
        return ""


def _gpu_ids():
    try:
        import ray

        return ray.get_gpu_ids()
    except Exception:
        return []


def import_training() -> float:
    """Import the training code (torch, scikit-learn, ...) once per process; the seconds it took
    (0 when this process already had it)."""
    if "hpo_kd.train" in sys.modules:
        return 0.0
    t0 = time.perf_counter()
    import hpo_kd.train  # noqa: F401

    return time.perf_counter() - t0


def trial_fn(config: Dict[str, Any]) -> None:
    """The Ray Tune trainable: one teacher, one student trial, a group of students or a PBT population."""
    started = time.time()
    from ray import tune

    import_s = import_training()
    from .errors import UserError
    from .train import run_population, run_trial, run_trials, train_teacher

    spec = config["spec"]
    cfg = run_config(config)
    node = _node_id()
    per_epoch = bool(spec.get("per_epoch"))
    curve = []
    t_run = time.perf_counter()
    try:
        if spec["kind"] in ("group", "population"):  # students of one setting and seed, trained together
            if spec["kind"] == "group":
                results = run_trials([run_config({"spec": m}, spec) for m in spec["members"]])
            else:
                results = run_population(cfg, spec["search"])
            final = {
                "status": "ok",
                "members": [member_final(r) for r in results],
                "grouped": results[0].get("grouped", 1),
                "group_kernels": results[0].get("group_kernels"),
                "seconds": sum(r["seconds"] for r in results),
            }
        elif spec["kind"] == "teacher":
            cfg.pop("method", None)
            info = train_teacher(cfg)
            # Cost: the teacher's own training (whichever trial happened to train it).
            final = {
                "status": "ok",
                "val_acc": info["val_acc"],
                "test_acc": info["test_acc"],
                "best_val_acc": info["val_acc"],
                "test_at_best_val": info["test_acc"],
                "epochs_run": info["epochs_run"],
                "seconds": info["seconds"],
            }
        else:

            def on_epoch(row):
                r = curve_row(row)
                if per_epoch:  # a scheduler (ASHA) reads every epoch: report it now
                    # (which keys are the trainer's: Tune adds its own to every result)
                    tune.report(dict(r, final=False, curve_keys=",".join(r)))
                else:  # nobody reads it before the end: it travels in the final report
                    curve.append(r)

            final = final_scalars(run_trial(cfg, report=on_epoch))
            if final["epochs_run"]:
                final["epoch"] = final["epochs_run"]
    except Exception as e:  # recorded as `failed`; the other trials go on
        msg = str(e) if isinstance(e, UserError) else f"{type(e).__name__}: {e}"
        final = {"status": "failed", "error": msg, "trace": traceback.format_exc()[-2000:]}
    final.update(
        final=True,
        node=node,
        pid=os.getpid(),
        started_at=started,
        gpu_ids=json.dumps([str(g) for g in _gpu_ids()]),
        import_s=import_s,
        run_s=time.perf_counter() - t_run,
    )
    out = {k: v if k == "members" else clean(v) for k, v in final.items()}
    if not per_epoch:
        out["curve"] = curve
    tune.report(out)
