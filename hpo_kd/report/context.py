"""What a report is made of, typed: `Analysis`, every table computed from a store's trials
(`report.analyse`), and `ReportContext`, the analysis with what the report says about where it came
from (the study, the command, provenance, options, the plots drawn). Built once per report; each
section of the report (`report.sections`) computes and renders its part from it."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Dict, List, Optional

import pandas as pd


@dataclass
class Analysis:
    """Every table of a report, computed from the store's trials (no files written)."""

    trials: pd.DataFrame  # every stored trial
    curves: pd.DataFrame  # every trial's per-epoch curve
    sel: pd.DataFrame  # the selected trial per (setting, method, seed)
    summary: pd.DataFrame  # per setting and method: test mean, sd, CI, val, cost, mean rank
    comparisons: pd.DataFrame  # every comparison with the grid and no-KD, with its verdict
    transfer: pd.DataFrame  # the transfer cells (with the cross-fitted `xfit_*` columns)
    stability: pd.DataFrame  # the selection within a setting and its floor
    starts: pd.DataFrame  # the start-dependence rows of learned temperatures
    ranks: pd.DataFrame  # average rank per method (exploratory)
    friedman: Optional[Dict[str, Any]]  # Friedman's test and the Wilcoxon–Holm pairs
    rank_blocks: pd.DataFrame  # the rank of each method in each (setting, seed) block
    spread: pd.DataFrame  # the seed spread per setting, flagged above `max_spread`
    teachers: pd.DataFrame  # the teachers' accuracies per setting
    weak_teachers: List[str]  # a warning per teacher below its no-KD student on val
    margin: float  # points: an interval inside ±margin is "equivalent"
    max_spread: float
    consistency: Optional[pd.DataFrame] = None  # several draws pooled: each verdict per draw
    draws: List[Dict[str, Any]] = field(default_factory=list)  # several draws pooled: store, study, seeds


@dataclass
class ReportContext(Analysis):
    """An analysis and what the report says about it: the study, what produced it, its options."""

    study: str = ""
    opts: Dict[str, Any] = field(default_factory=dict)  # the study file's report keys (`study_options`)
    provenance: List[Dict[str, Any]] = field(default_factory=list)  # the store's recorded runs
    command: str = ""  # the command that writes this report
    report_code: str = ""  # the code version that wrote it
    overlap: List[Dict[str, Any]] = field(default_factory=list)  # trials shared with other stores
    published: Optional[pd.DataFrame] = None  # published figures beside the measured ones
    plots: List[str] = field(default_factory=list)  # the plot files drawn, in order

    @classmethod
    def of(cls, analysis: Analysis, **more) -> "ReportContext":
        """A report's context from an analysis and the other fields."""
        return cls(**{f.name: getattr(analysis, f.name) for f in fields(Analysis)}, **more)

    @property
    def n_trials(self) -> int:
        return len(self.trials)

    @property
    def statuses(self) -> str:
        """How many stored trials ended in each status."""
        counts = self.trials["status"].value_counts().sort_index()
        return ", ".join(f"{k}: {v}" for k, v in counts.items())

    @property
    def seed_varies(self) -> str:
        return self.opts["seed_varies"]

    @property
    def smoke(self) -> str:
        return self.opts["smoke"]

    @property
    def train(self) -> Dict[str, Any]:
        return self.opts["train"]

    @property
    def sources(self) -> Dict[str, str]:
        return self.opts["sources"]
