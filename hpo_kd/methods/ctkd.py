"""CTKD-style curriculum temperature: one learnable T, trained adversarially.

T = T_lo + T_span * sigmoid(w). The student's optimizer trains w through a gradient-reversal
layer whose factor lambda follows a cosine from 0 to -1 over the first `ramp_epochs` epochs, so
the temperature learns to *raise* the KD loss (an ever harder curriculum) while the student
learns to lower it.

As in the authors' code: w starts at 1 (T = 1 + 20 * sigmoid(1) = 15.62) unless `tau_t` gives the
start, and epoch e (counted from 1) trains with lambda(e), so lambda reaches -1 at epoch
`ramp_epochs`. One temperature for teacher and student: there is no `tau_s`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import check_range
from .base import TemperatureMethod, register


class GradientReversal(torch.autograd.Function):
    """Identity forward; backward multiplies the incoming gradient by `lam`."""

    @staticmethod
    def forward(ctx, x, lam: float):
        ctx.lam = lam
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.lam, None


AUTHORS_W0 = 1.0  # the authors' initial parameter (T = T_lo + T_span * sigmoid(1))


def reversal_factor(epoch: int, ramp_epochs: int, lam_min: float = 0.0, lam_max: float = -1.0) -> float:
    """Cosine ramp from lam_min at epoch 0 to lam_max at epoch >= ramp_epochs."""
    if ramp_epochs <= 0 or epoch >= ramp_epochs:
        return lam_max
    return lam_min + (lam_max - lam_min) * 0.5 * (1.0 - math.cos(math.pi * epoch / ramp_epochs))


@register("ctkd")
class CTKD(TemperatureMethod):
    name = "ctkd"
    kind = "learned"
    label = "CTKD"
    color = "C4"
    marker = "^"
    order = 40

    def __init__(
        self,
        tau_t: float | None = None,
        T_lo: float = 1.0,
        T_span: float = 20.0,
        ramp_epochs: int = 10,
    ):
        check_range("T_lo", T_lo, 0, None, lo_open=True)
        check_range("T_span", T_span, 0, None, lo_open=True)
        check_range("ramp_epochs", ramp_epochs, 0, None)
        if tau_t is None:  # the authors' start: w = 1
            w0 = AUTHORS_W0
            tau_t = T_lo + T_span / (1.0 + math.exp(-w0))
        else:
            check_range("tau_t", tau_t, T_lo, T_lo + T_span, lo_open=True, hi_open=True)
            p = (tau_t - T_lo) / T_span
            w0 = math.log(p / (1 - p))
        super().__init__(tau_t, tau_t)
        self.T_lo, self.T_span, self.ramp_epochs = float(T_lo), float(T_span), int(ramp_epochs)
        self.w = nn.Parameter(torch.tensor(float(w0)))
        self.lam = reversal_factor(0, self.ramp_epochs)

    def setup(self, ctx):
        super().setup(ctx)
        self.w.data = self.w.data.to(ctx.device)

    def parameters(self):
        return [self.w]

    def start_epoch(self, epoch: int) -> None:
        # epoch is counted from 1, as in the authors' loop: lambda(ramp_epochs) = -1.
        self.lam = reversal_factor(epoch, self.ramp_epochs)

    def temperature(self) -> torch.Tensor:
        return self.T_lo + self.T_span * torch.sigmoid(GradientReversal.apply(self.w, self.lam))

    def temperatures(self):
        T = self.temperature()
        return T, T

    def current(self):
        with torch.no_grad():
            T = float(self.T_lo + self.T_span * torch.sigmoid(self.w))
        return T, T

    def epoch_metrics(self):
        return {"lambda": self.lam}

    def state_dict(self):
        return {"w": float(self.w.detach()), "lam": self.lam}

    def load_state_dict(self, state):
        with torch.no_grad():
            self.w.fill_(float(state["w"]))
        self.lam = float(state["lam"])
