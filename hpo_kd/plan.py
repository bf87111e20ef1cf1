"""What a study plans: its settings (data set x augmentation x fraction x teacher/student pair) and
its units of work (`Trial`: a teacher, a student, or a search), each with a stable id hashed from
what determines it, so that a re-run can skip the finished ones. `hpo_kd.study` builds them from a
study file; the searchers (`hpo_kd.searchers`) build their own units."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple

from . import data as data_mod
from .files import digest


@dataclass(frozen=True)
class Setting:
    dataset: str
    augment: str
    fraction: float
    teacher: str
    student: str
    root: Optional[str] = None
    options: Tuple[Tuple[str, Any], ...] = ()  # data set options, sorted (key, value) pairs
    name: Optional[str] = None  # the study file's name for the data (default: data set and options)
    teacher_checkpoint: Optional[str] = None  # absolute path of a trained teacher's weights
    checkpoint_hash: Optional[str] = None  # its content hash: part of the id
    train: Tuple[Tuple[str, Any], ...] = ()  # this setting's [train] values (e.g. a student's lr), sorted
    show_pair: bool = False  # the label names the pair (when other settings differ only by their pair)

    def data_options(self) -> Tuple[Tuple[str, Any], ...]:
        """The options that choose the data (not those that only say how it is read, such as
        streaming an image folder: a study can switch them and keep its finished trials)."""
        reading = data_mod.reading_options(self.dataset)
        return tuple((k, v) for k, v in self.options if k not in reading)

    @property
    def id(self) -> str:
        opts = "".join(f"|{k}={v}" for k, v in self.data_options())
        ckpt = f"|teacher_checkpoint={self.checkpoint_hash}" if self.teacher_checkpoint else ""
        own = "".join(f"|train.{k}={v}" for k, v in self.train)
        return f"{self.dataset}|{self.augment}|{self.fraction:g}|{self.teacher}>{self.student}{opts}{ckpt}{own}"

    @property
    def label(self) -> str:
        chosen = self.data_options()
        opts = "[" + ",".join(f"{k}={v}" for k, v in chosen) + "]" if chosen else ""
        pair = f",{self.teacher}>{self.student}" if self.show_pair else ""
        return f"{self.name or self.dataset + opts}({self.fraction:.0%},{self.augment}{pair})"


@dataclass
class Trial:
    """One unit of work: a teacher, one fixed-config student, or one search (a searcher's unit
    that runs `budget` Ray Tune trials; hpo_kd.searchers)."""

    kind: str  # "teacher", "trial", "search"
    method: str  # teacher, a searcher's name (grid, optuna, pbt, ...), or a method (mkd, dts, ctkd, nokd, ...)
    setting: Setting
    seed: int
    config: Dict[str, Any]  # TrialConfig fields
    budget: int = 1  # number of Ray Tune trials this unit runs
    search: Dict[str, Any] = field(default_factory=dict)  # a search's options (its searcher's table)
    budget_keys: Tuple[str, ...] = ()  # the options of `search` that are not part of its id

    @property
    def id(self) -> str:
        # A search's budget is not part of its id (its searcher names those keys): raising Optuna's
        # `trials` extends the same search (its finished trials are kept and handed to the
        # sampler), and so does a new startup_trials.
        search = {k: v for k, v in self.search.items() if k not in self.budget_keys}
        # Nor is how the data is read (streaming, workers): the same seed gives the same results.
        config = dict(self.config)
        if "data_options" in config:
            chosen = dict(self.setting.data_options())
            config.pop("data_options")
            if chosen:
                config["data_options"] = chosen
        blob = json.dumps(
            {"kind": self.kind, "method": self.method, "config": config, "search": search},
            sort_keys=True,
        )
        return digest(blob.encode())
