"""LS-KD, Logit Standardization KD (Sun et al., CVPR 2024, "Logit Standardization in Knowledge
Distillation").

Each sample's teacher logits and student logits are z-scored separately over the classes,
z -> (z - mean(z)) / (std(z) + 1e-7), std with Bessel's n - 1 (torch's default, as in the
authors' code), and the usual KD term is taken on them at a base temperature T (the authors'
default 2) with the factor T^2. Since softmax ignores a shift of all logits, that is KD at a
per-sample temperature T * (std(z) + 1e-7), different for teacher and student, with the factor
T^2 (`hpo_kd.kd.StandardizedTemperature`). The student's std is not detached: its gradient flows
through the standardization, as in the authors' code.

Weighting: our loss is alpha * KD + (1 - alpha) * CE (alpha = 0.9 by default), the authors' is
9 * KD + 1 * CE: the same ratio, ten times the scale. We keep our weighting: the scale is absorbed
into the learning rate, and the same scale keeps LS-KD comparable to the other methods on the same
optimizer. (Their recipe at our alpha = 0.9 is ours with a learning rate ten times larger.)

`tau_t` is the base temperature (searchable by the grid and Optuna, `method = "lskd"` in their
table); `tau_s` the student's base, by default `tau_t` (the authors use one T). The factor is
tau_t * tau_s. The epoch log's tau_t and tau_s are the epoch's mean per-sample temperatures
T * (std + eps) of the teacher and of the student; the base temperatures are in the trial's config.
"""

from __future__ import annotations

from typing import Optional

import torch

from ..errors import check_range
from ..kd import StandardizedTemperature
from .base import Step, TemperatureMethod, register

AUTHORS_T = 2.0  # the authors' base temperature for KD with logit standardization
AUTHORS_EPS = 1e-7  # added to the std


@register("lskd")
class LSKD(TemperatureMethod):
    """KD on z-scored logits: a per-sample temperature base * std(logits) for teacher and student."""

    name = "lskd"
    kind = "learned"  # its temperatures move while training (per sample); runs on its own in a study
    searchable = True  # a searcher (grid, optuna) may choose its base temperature
    label = "LS-KD"
    color = "C5"
    marker = "P"
    order = 45

    @classmethod
    def moved_temperatures(cls, options):
        return [("tau_t", "mean per-sample τ_t")]

    def __init__(self, tau_t: float = AUTHORS_T, tau_s: Optional[float] = None):
        check_range("tau_t", tau_t, 0, None, lo_open=True)
        if tau_s is None:
            tau_s = tau_t
        check_range("tau_s", tau_s, 0, None, lo_open=True)
        super().__init__(tau_t, tau_s)
        self.rule_t = StandardizedTemperature(self.tau_t, AUTHORS_EPS, unbiased=True)
        self.rule_s = StandardizedTemperature(self.tau_s, AUTHORS_EPS, unbiased=True)
        self._sums = None  # the epoch's sums of per-sample temperatures (device tensors), and count
        self._n = 0
        self._last = None  # the last finished reading, (teacher, student)

    def temperatures(self):
        return self.rule_t, self.rule_s

    def start_epoch(self, epoch: int) -> None:
        self._sums, self._n = None, 0

    def observe(self, step: Step) -> None:
        if step.teacher_logits is None:
            return
        with torch.no_grad():  # summed on the device: no host copy per step
            t = self.rule_t(step.teacher_logits).sum()
            s = self.rule_s(step.student_logits).sum()
            sums = torch.stack([t, s])
            self._sums = sums if self._sums is None else self._sums + sums
            self._n += len(step.student_logits)

    def current(self):
        """The mean per-sample temperatures (teacher, student) of the steps seen since the epoch
        began; before any step, the base temperatures."""
        if self._n:
            t, s = (self._sums / self._n).tolist()
            self._last = (float(t), float(s))
        return self._last if self._last is not None else (self.tau_t, self.tau_s)

    def state_dict(self):
        return {"tau_t": self.tau_t, "tau_s": self.tau_s}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.rule_t = StandardizedTemperature(self.tau_t, AUTHORS_EPS, unbiased=True)
        self.rule_s = StandardizedTemperature(self.tau_s, AUTHORS_EPS, unbiased=True)
