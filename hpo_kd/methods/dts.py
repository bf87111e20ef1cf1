"""DTS, the Dynamic Temperature Scheduler (arXiv 2511.13767).

One temperature T for teacher and student. After every training step:

    gap = CE_teacher - CE_student                      # usually negative
    c   = 0.5 * (1 + cos(curve * pi * epoch / epochs))  # epoch counted from 1
    if adjust and gap / (gap + 1) > 1:          # adjust is off by default, as in the authors' code
        s = gap / (gap + 1); if s > cap_above: s = cap
        T* = T0 * c * s
    else:
        T* = T0 * c
    T* = clamp(T*, T_min, T_max);  T = momentum * T + (1 - momentum) * T*

T0 is the method's `tau_t` (the start). One temperature for teacher and student: no `tau_s`.
"""

from __future__ import annotations

import math

from ..errors import check_range
from ..kd import soft_cross_entropy
from .base import Step, TemperatureMethod, register


def next_temperature(
    T: float,
    ce_teacher: float,
    ce_student: float,
    epoch: int,
    epochs: int,
    T0: float = 4.0,
    T_min: float = 2.0,
    T_max: float = 4.0,
    curve: float = 1.0,
    adjust: bool = False,
    cap: float = 1.35,
    cap_above: float = 2.0,
    momentum: float = 0.9,
) -> float:
    """The DTS update rule: the temperature after a step with these losses."""
    gap = ce_teacher - ce_student
    c = 0.5 * (1.0 + math.cos(curve * math.pi * epoch / epochs))
    ratio = gap / (gap + 1.0) if gap != -1.0 else -math.inf
    if adjust and ratio > 1.0:
        s = cap if ratio > cap_above else ratio
        target = T0 * c * s
    else:
        target = T0 * c
    target = min(max(target, T_min), T_max)
    return momentum * T + (1.0 - momentum) * target


@register("dts")
class DTS(TemperatureMethod):
    """Cosine-scheduled temperature, boosted when the student lags the teacher."""

    name = "dts"
    kind = "learned"
    label = "DTS"
    color = "C2"
    marker = "s"
    order = 30

    def __init__(
        self,
        tau_t: float = 4.0,
        T_min: float = 2.0,
        T_max: float = 4.0,
        curve: float = 1.0,
        adjust: bool = False,
        cap: float = 1.35,
        cap_above: float = 2.0,
        momentum: float = 0.9,
    ):
        T0 = float(tau_t)
        check_range("tau_t", T0, 0, None, lo_open=True)
        check_range("T_min", T_min, 0, None, lo_open=True)
        check_range("T_max", T_max, T_min, None)
        check_range("momentum", momentum, 0, 1, hi_open=True)
        super().__init__(T0, T0)
        self.rule = dict(
            T0=T0,
            T_min=T_min,
            T_max=T_max,
            curve=curve,
            adjust=bool(adjust),
            cap=cap,
            cap_above=cap_above,
            momentum=momentum,
        )
        self.T = T0

    def temperatures(self):
        return self.T, self.T

    def observe(self, step: Step) -> None:
        ce_t = soft_cross_entropy(step.teacher_logits, step.target).item()
        ce_s = step.losses["ce"].item()
        self.T = next_temperature(self.T, ce_t, ce_s, step.epoch, self.ctx.epochs, **self.rule)

    def state_dict(self):
        return {"T": self.T}

    def load_state_dict(self, state):
        self.T = float(state["T"])
