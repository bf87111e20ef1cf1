"""The trial record: one typed row of a study's store (`runs/<study>/trials.parquet`).

`TrialRecord` is the schema; everything else that names its columns is derived from it:
the store's columns and numeric columns (`hpo_kd.store`), the columns a row takes from the
trainer's final result (`RESULT_COLUMNS`), the scalars a Ray worker reports (`SCALARS`, in
`hpo_kd.worker`) and the columns a re-run reproduces bit for bit (`OUTCOME_COLUMNS`, what the
tests compare). Each field says where its value comes from (`source`):

- "trial": what the plan says the trial is (its setting, method, seed, configured temperatures);
- "result": the trainer's final result (`hpo_kd.train.run_trial`);
- "run": where and when it ran (node, times), or how a search proposed it.

This module imports nothing heavy: a Ray worker imports it before torch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Optional, Tuple

# The two temperatures of a trial: the teacher's (tau_t) and the student's (tau_s). A search that
# samples one `tau` sets both.
TAU_T, TAU_S = "tau_t", "tau_s"
TAUS = (TAU_T, TAU_S)


def _col(source: str, outcome: bool = False):
    """A column taken from `source`; `outcome`: a re-run of the trial reproduces it bit for bit."""
    return field(default=None, metadata={"source": source, "outcome": outcome})


@dataclass
class TrialRecord:
    """One finished (or failed) trial, as the store keeps it; the fields in the store's column order."""

    trial_id: Optional[str] = _col("trial")
    unit_id: Optional[str] = _col("trial")
    study: Optional[str] = _col("trial")
    setting: Optional[str] = _col("trial")
    setting_label: Optional[str] = _col("trial")
    dataset: Optional[str] = _col("trial")
    augment: Optional[str] = _col("trial")
    fraction: Optional[float] = _col("trial")
    teacher: Optional[str] = _col("trial")
    student: Optional[str] = _col("trial")
    method: Optional[str] = _col("trial")
    seed: Optional[int] = _col("trial")
    tau_t_config: Optional[float] = _col("trial")  # the temperatures the trial was given (None: its method's own)
    tau_s_config: Optional[float] = _col("trial")
    options: Optional[str] = _col("trial")  # the method's options, or the search's, as JSON
    status: Optional[str] = _col("result", outcome=True)  # ok, diverged, stopped or failed
    error: Optional[str] = _col("result", outcome=True)
    val_acc: Optional[float] = _col("result", outcome=True)  # after the last epoch
    test_acc: Optional[float] = _col("result", outcome=True)
    best_val_acc: Optional[float] = _col("result", outcome=True)
    test_at_best_val: Optional[float] = _col("result", outcome=True)
    best_epoch: Optional[int] = _col("result", outcome=True)
    tau_t: Optional[float] = _col("result", outcome=True)  # the temperatures at the end
    tau_s: Optional[float] = _col("result", outcome=True)
    epochs: Optional[int] = _col("trial")  # planned
    epochs_run: Optional[int] = _col("result", outcome=True)
    seconds: Optional[float] = _col("result")
    device: Optional[str] = _col("result")
    node: Optional[str] = _col("run")
    gpu_ids: Optional[str] = _col("run")
    started_at: Optional[float] = _col("run")
    finished_at: Optional[float] = _col("run")
    trial_index: Optional[int] = _col("run")  # the order in which a search proposed its trials (Tune's trial number)
    grouped: Optional[int] = _col("result")  # how many students of its setting and seed trained together (1: alone)
    group_kernels: Optional[str] = _col("result")  # how a group ran: "fused" kernels or each member's "own" modules


FIELDS = dataclasses.fields(TrialRecord)
TRIAL_COLUMNS: Tuple[str, ...] = tuple(f.name for f in FIELDS)
# The columns a row takes from the trainer's final result; the rest describe the trial, the run or the search.
RESULT_COLUMNS: Tuple[str, ...] = tuple(f.name for f in FIELDS if f.metadata["source"] == "result")
# The columns stored as numbers (floats; a missing value is NaN).
NUMERIC: Tuple[str, ...] = tuple(f.name for f in FIELDS if f.type in ("Optional[float]", "Optional[int]"))
# The result's columns a re-run reproduces bit for bit (not its time, device or grouping).
OUTCOME_COLUMNS: Tuple[str, ...] = tuple(f.name for f in FIELDS if f.metadata["outcome"])
# A worker's final report: the result's columns and the accuracies of the teacher the student learned from.
SCALARS: Tuple[str, ...] = RESULT_COLUMNS + ("teacher_val_acc", "teacher_test_acc")
