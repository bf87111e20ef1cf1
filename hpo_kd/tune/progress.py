"""A run's progress on the terminal (Progress) and where its time went (timing)."""

from __future__ import annotations

import sys
import time
from typing import Any, Callable, Dict, List, Optional


def _learned(method: str) -> bool:
    from .. import methods

    return methods.info(method)["kind"] == "learned"


def _fixed_tau(method: str) -> bool:
    """A trial at one configured τ: a transfer run, or a searcher's trial (not PBT's: its τ changes)."""
    from ..searchers import SEARCHERS

    return method == "transfer" or (method in SEARCHERS and SEARCHERS.get(method).fixed_tau)


def _duration(seconds: float) -> str:
    s = int(round(max(seconds, 0.0)))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class Progress:
    """The run's progress on stderr: at most one line every `every` seconds (and the last one),
    `[done/total] percent, elapsed, ETA | per setting, the best student so far by val accuracy`
    (the val-selected result, with its test accuracy). A failed trial and the weak-teacher
    warning are printed as they happen. `clock` (seconds) is there for the tests."""

    def __init__(self, total: int, concurrency: int, every: float = 10.0, clock: Callable[[], float] = time.monotonic):
        # No stream is held: Ray Tune pickles its callbacks with the experiment state.
        self.total, self.done, self.concurrency = total, 0, max(concurrency, 1)
        self.every, self.clock = every, clock
        self.start = clock()
        self.last_line: Optional[float] = None  # when the last progress line was printed
        self.failed = 0
        self.trial_seconds = 0.0
        self.timings: List[Dict[str, Any]] = []  # one per finished trial, for `Runner.timing`
        self.teacher_val: Dict[str, List[float]] = {}  # setting -> its teachers' val accuracies
        self.best: Dict[str, Dict[str, Any]] = {}  # setting label -> its best student row by val so far
        self.warned: set = set()

    def know_teachers(self, rows) -> None:
        """Teachers finished by an earlier run (a resumed study does not train them again)."""
        for r in rows:
            if (
                r.get("method") == "teacher"
                and r.get("status") == "ok"
                and r.get("val_acc") == r.get("val_acc")
                and r.get("val_acc") is not None
            ):
                self.teacher_val.setdefault(r["setting"], []).append(r["val_acc"])

    def weak_teacher(self, row: Dict[str, Any]) -> Optional[str]:
        """A warning when a no-KD student beats its setting's teachers on val (once per setting)."""
        if row["method"] != "nokd" or row.get("val_acc") is None or row["setting"] in self.warned:
            return None
        vals = self.teacher_val.get(row["setting"])
        if not vals or row["val_acc"] <= sum(vals) / len(vals):
            return None
        self.warned.add(row["setting"])
        return (
            f"warning: on {row['setting_label']} the teacher's val accuracy ({100 * sum(vals) / len(vals):.2f} %, "
            f"mean of {len(vals)}) is below the no-KD student's ({100 * row['val_acc']:.2f} %, seed "
            f"{row['seed']}): distillation from this teacher is not expected to help"
        )

    @staticmethod
    def _taus(row: Dict[str, Any]) -> str:
        if _fixed_tau(row["method"]) and row.get("tau_t_config") is not None:
            return f" tau_t={row['tau_t_config']:.3g} tau_s={row['tau_s_config']:.3g}"
        if row["method"] != "teacher" and _learned(row["method"]) and row.get("tau_t") is not None:
            return f" -> tau_t={row['tau_t']:.3g} tau_s={row['tau_s']:.3g}"
        return ""

    def line(self) -> str:
        """The progress line: trials done, time, ETA, and per setting the best student by val."""
        elapsed = self.clock() - self.start
        left = self.total - self.done
        eta = _duration(elapsed / self.done * left) if self.done else "?"
        pct = 100 * self.done / self.total if self.total else 100.0
        failed = f", {self.failed} failed" if self.failed else ""
        best = "; ".join(
            f"{label} {r['method']} seed={r['seed']}{self._taus(r)} val={r['val_acc']:.4f} test={r['test_acc']:.4f}"
            for label, r in sorted(self.best.items())
        )
        return f"[{self.done}/{self.total}] {pct:.0f}%{failed}, elapsed {_duration(elapsed)}, ETA {eta}" + (
            f" | best by val: {best}" if best else ""
        )

    def drop(self, n: int) -> None:
        """`n` planned trials will not run (a search whose budget in epochs is spent)."""
        self.total = max(self.total - n, self.done)

    def finished(self, row: Dict[str, Any]) -> None:
        self.know_teachers([row])
        self.done += 1
        self.trial_seconds += row.get("seconds") or 0.0
        val = row.get("val_acc")
        if row["method"] != "teacher" and row["status"] != "failed" and val is not None and val == val:
            best = self.best.get(row["setting_label"])
            if best is None or val > best["val_acc"]:
                self.best[row["setting_label"]] = {
                    k: row.get(k)
                    for k in ("method", "seed", "val_acc", "test_acc", "tau_t_config", "tau_s_config", "tau_t", "tau_s")
                }
        if row["status"] == "failed":
            self.failed += 1
            err = f": {row['error'][:200]}" if row.get("error") else ""
            print(
                f"trial failed: {row['setting_label']} {row['method']} seed={row['seed']}{self._taus(row)}{err}",
                file=sys.stderr,
                flush=True,
            )
        weak = self.weak_teacher(row)
        if weak:
            print(weak, file=sys.stderr, flush=True)
        now = self.clock()
        if self.last_line is None or now - self.last_line >= self.every or self.done >= self.total:
            self.last_line = now
            print(self.line(), file=sys.stderr, flush=True)


def timing(marks: Dict[str, float], progress: Progress, slots: int) -> Dict[str, Any]:
    """Where a run's time went, in seconds: the fixed costs of the run (Ray's start and stop, the
    Tuner's start before the first trial and its end after the last) and, per trial, the mean of
    what an actor spent outside the trial's training (`seconds`): imports on a new actor, set-up
    in the trial (data, teacher, model), and the driver's gap between two trials on one actor."""
    t = sorted((x for x in progress.timings if x["start"] is not None), key=lambda x: x["start"])
    out: Dict[str, Any] = {
        "slots": slots,
        "trials": len(progress.timings),
        "wall_s": marks["ray_stopped"] - marks["run"],
        "ray_start_s": marks["ray_started"] - marks["run"],
        "ray_stop_s": marks["ray_stopped"] - marks["tune_ended"],
        "trial_seconds": sum(x["seconds"] or 0.0 for x in progress.timings),
    }
    if "tune_started" in marks and t:
        out["tuner_to_first_trial_s"] = t[0]["start"] - marks["tune_started"]
        out["last_trial_to_tuner_end_s"] = marks["tune_ended"] - max(x["end"] for x in t)
    n = max(len(t), 1)
    out["actors"] = len({x["pid"] for x in t if x["pid"] is not None})
    out["import_s_per_trial"] = sum(x["import_s"] or 0.0 for x in t) / n
    out["setup_s_per_trial"] = (
        sum(max((x["run_s"] or 0.0) - (x["seconds"] or 0.0), 0.0) for x in t if x["kind"] != "teacher") / n
    )
    out["fit_s_per_trial"] = sum(x["seconds"] or 0.0 for x in t) / n
    gaps, last_end = [], {}
    for x in t:
        if x["pid"] in last_end:
            gaps.append(x["start"] - last_end[x["pid"]])
        last_end[x["pid"]] = x["end"]
    out["between_trials_s_per_trial"] = sum(gaps) / n
    out["slot_s_per_trial_outside_fit"] = (slots * out["wall_s"] - out["trial_seconds"]) / n
    out["per_trial"] = t
    return out
