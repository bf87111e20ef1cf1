"""The driver's Tune callback that writes every finished trial to the store. It imports Ray Tune:
only the runner imports it, once Ray is starting."""

from __future__ import annotations

import dataclasses
import sys
import time
from typing import Any, Dict, List

from ray import tune

from ..record import TAU_S, TAU_T
from ..store import Store
from ..study import Study
from .progress import Progress
from .rows import nan_to_none, store_row
from .signals import stop_if_interrupted
from .units import planned_epochs


class StoreCallback(tune.Callback):
    """Writes every finished trial to the store as soon as it finishes (driver side)."""

    def __init__(self, store: Store, study: Study, progress: Progress):
        self.store, self.study, self.progress = store, study, progress
        self.curves: Dict[str, List[Dict[str, Any]]] = {}  # per-epoch reports (ASHA searches)
        self.started: Dict[str, float] = {}
        self.own_modules_said = False  # the group fallback's warning: once per run

    def on_trial_start(self, iteration, trials, trial, **info):
        self.started[trial.trial_id] = time.time()

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if not result.get("final", False):
            row = {k: result[k] for k in str(result.get("curve_keys", "")).split(",") if k in result}
            self.curves.setdefault(trial.trial_id, []).append(row)

    def _record(self, trial, status=None, error=None):
        spec = trial.config["spec"]
        if spec["kind"] in ("group", "population"):
            return self._record_group(trial, spec, status, error)
        last = dict(trial.last_result or {})
        curve = self.curves.pop(trial.trial_id, [])
        if last.get("final") and isinstance(last.get("curve"), list):
            curve = last["curve"]  # the whole curve came with the final report
        from_curve = status is None and not last.get("final") and curve
        if status is None:
            # No final report: a scheduler (ASHA) ended the trial. It is `stopped` early unless
            # it had already run every planned epoch.
            status = (
                last.get("status")
                if last.get("final")
                else ("ok" if curve and len(curve) >= planned_epochs(spec) else "stopped")
            )
        record = store_row(self.study, spec, trial.config, last, status, error or nan_to_none(last.get("error")))
        # The order in which a search proposed its trials, after the trials an interrupted
        # search had already finished (for the other trials: their place in this run).
        record.trial_index = spec.get("index", 0)
        if from_curve:
            best = max(curve, key=lambda r: r["val_acc"])
            record = dataclasses.replace(
                record,
                epochs_run=len(curve),
                val_acc=curve[-1]["val_acc"],
                test_acc=curve[-1]["test_acc"],
                best_val_acc=best["val_acc"],
                test_at_best_val=best["test_acc"],
                best_epoch=best["epoch"],
                tau_t=curve[-1].get(TAU_T),
                tau_s=curve[-1].get(TAU_S),
                seconds=sum(r.get("epoch_seconds", 0) for r in curve),
            )
        self.store.add(record, curve)
        self.progress.timings.append(
            {
                "start": self.started.pop(trial.trial_id, None),
                "end": time.time(),
                "pid": nan_to_none(last.get("pid")),
                "entered": nan_to_none(last.get("started_at")),
                "import_s": nan_to_none(last.get("import_s")),
                "run_s": nan_to_none(last.get("run_s")),
                "seconds": record.seconds,
                "kind": spec["kind"],
            }
        )
        self.progress.finished(dataclasses.asdict(record))
        stop_if_interrupted()  # the row above is stored

    def _record_group(self, trial, spec, status=None, error=None):
        """A row per member of a group trial or PBT population (all `failed` if the trial's process
        failed). A population's member is known by its place (`trial_index`), with its last tau."""
        last = dict(trial.last_result or {})
        finals = last.get("members") if last.get("final") else None
        n = len(spec["members"]) if spec["kind"] == "group" else spec["search"]["population"]
        if not isinstance(finals, list) or len(finals) != n:
            finals = [
                {
                    "status": "failed",
                    "error": error or nan_to_none(last.get("error")) or "group trial ended without a result",
                }
                for _ in range(n)
            ]
        started = self.started.pop(trial.trial_id, None)
        for i, final in enumerate(finals):
            final = dict(final, node=last.get("node"), started_at=last.get("started_at"), gpu_ids=last.get("gpu_ids"))
            if spec["kind"] == "group":
                member = spec["members"][i]
                config = {"spec": member}
            else:
                member = dict(spec, kind="pbt", index=i, trial_id=f"{spec['unit_id']}-{i}")
                tau = nan_to_none(final.get(TAU_T))
                config = {"spec": member, **({"tau": tau} if tau is not None else {})}
            record = store_row(
                self.study,
                member,
                config,
                final,
                status or final.get("status"),
                error or nan_to_none(final.get("error")),
            )
            record.trial_index = member.get("index", 0)
            curve = final.get("curve") if isinstance(final.get("curve"), list) else []
            self.store.add(record, curve)
            self.progress.finished(dataclasses.asdict(record))
        if last.get("group_kernels") == "own" and not self.own_modules_said:
            self.own_modules_said = True
            print(
                f"warning: fused kernels are not bitwise exact on node {last.get('node')}: grouped students "
                "train on their own modules there (the same results, less saving; the store's "
                "group_kernels column)",
                file=sys.stderr,
                flush=True,
            )
        self.progress.timings.append(
            {
                "start": started,
                "end": time.time(),
                "pid": nan_to_none(last.get("pid")),
                "entered": nan_to_none(last.get("started_at")),
                "import_s": nan_to_none(last.get("import_s")),
                "run_s": nan_to_none(last.get("run_s")),
                "seconds": sum(nan_to_none(f.get("seconds")) or 0.0 for f in finals),
                "kind": "group",
            }
        )
        stop_if_interrupted()  # the rows above are stored

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._record(trial)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._record(trial, status="failed", error=str(getattr(trial, "error_msg", None) or "trial process failed"))
