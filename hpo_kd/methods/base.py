"""The interface every temperature method implements.

A method gives the temperatures for the next training step (`temperatures`), may compute the
step's loss terms itself (`loss`: by default Hinton's KD loss at those temperatures; TTM, WTTM and
MLKD have their own), may take over the backward pass of a step (`backward`, MKD does), learns
from the step that just ran (`observe`: teacher/student logits, labels, loss terms), adds scalars
to the epoch log (`epoch_metrics`), and saves/loads its state (`state_dict`). Register a new
method with `@register("name")` in its own file under `hpo_kd/methods/` (every module there is
imported), or in a module of your own named by the environment variable `HPO_KD_PLUGINS`
(comma-separated module names).

What studies, reports and the CLI need to know about a method lives on its class: `kind`
(`searched`: fixed temperatures that a searcher chooses; `learned`: a method that runs on its own
in a study, most of them moving their temperatures while training; `baseline`), `searchable` (a
study's searchers, grid and Optuna, may choose its tau_t/tau_s: `method = NAME` in their table),
`label`, `color`, `marker` and `order` (its place in tables and legends). What the report's plots
draw of it is on the class too: `moved_temperatures` (the temperatures it moves while training, each
with its name in a legend), `trajectory_colors`, `clamps` and `held_temperatures`, and
`beside_transfer` (its own runs against the grid shown beside the transfer matrix).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import torch
from torch import nn

from ..kd import kd_loss
from ..registry import Registry

METHODS = Registry("temperature method")
register = METHODS.register


@dataclass
class TrialContext:
    """What a method may use, handed over once before training starts."""

    model: nn.Module
    epochs: int
    steps_per_epoch: int
    alpha: float
    device: torch.device
    # meta_batches() yields (x, y) batches of the `meta` split forever (un-augmented), on `device`;
    # meta_batches(True): through the trial's augmentation (y then may be soft targets).
    meta_batches: Optional[Callable[..., Iterator[Tuple[torch.Tensor, torch.Tensor]]]] = None
    # The current learning rate of the student optimizer.
    lr: Callable[[], float] = lambda: 0.0
    # The precision of the trainer's forward passes ("fp32", or "bf16" autocast); Step's logits are fp32.
    precision: str = "fp32"


@dataclass
class Step:
    """One training step, as the trainer ran it."""

    epoch: int  # counted from 1
    step: int  # global step, counted from 0
    x: torch.Tensor
    target: torch.Tensor  # class indices or soft (Mixup) targets
    student_logits: torch.Tensor
    teacher_logits: Optional[torch.Tensor]
    losses: Dict[str, torch.Tensor]
    tau_t: Any
    tau_s: Any
    lr: float


class TemperatureMethod:
    """Base class: a fixed pair of temperatures, trained with the KD loss."""

    name = "base"
    uses_kd = True  # False: cross-entropy only, no teacher at all
    kind = "learned"  # "searched" | "learned" | "baseline"
    searchable = False  # whether a searcher (grid, optuna) may choose its temperatures
    student_temperature = True  # False: no tau_s of its own (TTM's student is at 1): a searcher gives one tau
    label: Optional[str] = None  # in tables, legends and sentences; default: the name
    color: Optional[str] = None  # a matplotlib colour; default: a stable pick from tab20
    marker = "o"
    order = 50  # place in tables and legends (lower first)
    # The report's plots: a colour per temperature ({"tau_t": ..., "tau_s": ...}) when the
    # trajectories plot draws several of its temperatures; None: the method's colour.
    trajectory_colors: Optional[Dict[str, str]] = None
    # The report shows its runs against each setting's grid selection beside the transfer matrix
    # (a method that sets its temperature on each setting needs no transfer).
    beside_transfer = False

    def __init__(self, tau_t: float = 4.0, tau_s: float = 4.0):
        self.tau_t = float(tau_t)
        self.tau_s = float(tau_s)
        self.ctx: Optional[TrialContext] = None

    @classmethod
    def trains_in_group(cls) -> bool:
        """Whether this method's students can train in one group with others that see the same
        batches (hpo_kd.models.grouped): any method that leaves the backward pass to the trainer.
        A method that takes it over (MKD differentiates its own loss twice) trains alone."""
        return cls.backward is TemperatureMethod.backward

    def relative_cost(self) -> float:
        """The student's compute per training step as a multiple of an ordinary KD step: for
        planning estimates (`hpo-kd run --dry-run`), not a measurement."""
        return 1.0

    # -- what the report draws of it ------------------------------------------------------
    @classmethod
    def moved_temperatures(cls, options: Dict[str, Any]) -> List[Tuple[str, str]]:
        """The temperatures a run with `options` (its stored options) moves while training: (curve
        column, "tau_t" or "tau_s"; its name in a legend). The trajectories plot draws them and the
        start-dependence rows compare where they end."""
        return [("tau_t", "T")]

    @classmethod
    def clamps(cls, options: Dict[str, Any]) -> Optional[Tuple[float, float]]:
        """The range its temperatures are clamped to in a run with `options` (None: not clamped); a
        run that ends at a bound is flagged in the report."""
        return None

    @classmethod
    def held_temperatures(cls, options: Dict[str, Any]) -> Dict[str, float]:
        """The temperatures a run with `options` holds where they started (named in a plot's title)."""
        return {}

    # -- lifecycle -------------------------------------------------------------------------
    def setup(self, ctx: TrialContext) -> None:
        self.ctx = ctx

    def parameters(self) -> List[nn.Parameter]:
        """Extra parameters trained by the student's optimizer (CTKD's temperature)."""
        return []

    def start_epoch(self, epoch: int) -> None:
        """Called before each epoch (counted from 1)."""

    # -- per step --------------------------------------------------------------------------
    def temperatures(self) -> Tuple[Any, Any]:
        return self.tau_t, self.tau_s

    def loss(
        self,
        student_logits: torch.Tensor,
        teacher_logits: Optional[torch.Tensor],
        target: torch.Tensor,
        tau_t: Any,
        tau_s: Any,
        alpha: float,
    ) -> Dict[str, torch.Tensor]:
        """The step's loss terms at the temperatures `temperatures()` gave: `loss` (minimised), `kd`
        (the KD term before alpha) and `ce`, in that order and no others (the students of a group
        log their terms side by side). With alpha = 0 the loss is the cross-entropy alone and
        `teacher_logits` may be None. Default: `hpo_kd.kd.kd_loss`."""
        return kd_loss(student_logits, teacher_logits, target, tau_t, tau_s, alpha)

    def backward(self, step: Step) -> None:
        """Fill .grad of the student's parameters; the trainer then steps its optimizer."""
        step.losses["loss"].backward()

    def observe(self, step: Step) -> None:
        """Learn from the step that just ran (after the optimizer step)."""

    # -- logging and checkpoints -----------------------------------------------------------
    def current(self) -> Tuple[float, float]:
        t, s = self.temperatures()
        return float(t), float(s)

    def epoch_metrics(self) -> Dict[str, float]:
        return {}

    def state_dict(self) -> Dict[str, Any]:
        return {"tau_t": self.tau_t, "tau_s": self.tau_s}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.tau_t = float(state["tau_t"])
        self.tau_s = float(state["tau_s"])
