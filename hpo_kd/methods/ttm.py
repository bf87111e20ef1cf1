"""TTM, Transformed Teacher Matching (Zheng & Yang, ICLR 2024, "Knowledge Distillation Based on
Transformed Teacher Matching").

The student's temperature is dropped: its logits enter the softmax at 1. The teacher's
probabilities are raised to a power gamma and renormalised,

    p~_t = p_t^gamma / sum_k p_t,k^gamma,

and the KD term is KL(p~_t || softmax(z_s)), summed over the classes and averaged over the batch,
without a temperature factor (the authors' code has none). Since p_t^gamma is proportional to
exp(gamma * z_t), p~_t = softmax(z_t / tau) with gamma = 1 / tau: TTM is KD with tau_s = 1.

`tau_t` is that tau (gamma = 1 / tau_t), and is what a study's grid and Optuna search
(`method = "ttm"` in their table). TTM has no student temperature: a searcher hands every method
tau_t = tau_s = tau, so `tau_s` is accepted when it equals `tau_t` (or is unset) and refused
otherwise. The epoch log's tau_t is tau; its tau_s is 1, the student's temperature.

Default tau_t = 10 (gamma = 0.1): the value of the authors' CIFAR-100 example (their README,
VGG-13 -> VGG-8, with KD weight beta = 45 and CE weight 1); their argument parser's default,
gamma = 1, is no transform at all. Weighting: ours, alpha * KD + (1 - alpha) * CE with alpha = 0.9
(ratio 9:1), where the authors weight 1 * CE + beta * KD with beta chosen per teacher-student pair.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F

from ..errors import UserError, check_range
from ..kd import soft_cross_entropy
from .base import TemperatureMethod, register

AUTHORS_TAU = 10.0  # gamma = 0.1, the authors' README example on CIFAR-100 (VGG-13 -> VGG-8)


def transformed_teacher(teacher_logits: torch.Tensor, tau: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """(log p~_t, log U): the log of the power-transformed teacher p_t^gamma / U, gamma = 1 / tau,
    shape (B, C), and the log of each sample's power sum U = sum_k p_t,k^gamma, shape (B,).
    Computed in log space: gamma * log_softmax(z_t), normalised by its logsumexp."""
    scaled = F.log_softmax(teacher_logits, dim=-1) / tau
    log_u = torch.logsumexp(scaled, dim=-1)
    return scaled - log_u.unsqueeze(-1), log_u


def ttm_per_sample(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, tau: float
) -> Tuple[torch.Tensor, torch.Tensor]:
    """(KL, U): each sample's KL(p~_t || softmax(z_s)) and its power sum U, both of shape (B,)."""
    log_pt, log_u = transformed_teacher(teacher_logits, tau)
    log_ps = F.log_softmax(student_logits, dim=-1)
    kl = (log_pt.exp() * (log_pt - log_ps)).sum(-1)
    return kl, log_u.exp()


def check_tau_s(name: str, tau_t: float, tau_s: Optional[float]) -> None:
    """A method without a student temperature takes tau_s only as a searcher sets it (= tau_t)."""
    if tau_s is None:
        return
    check_range("tau_s", tau_s, 0, None, lo_open=True)
    if float(tau_s) != float(tau_t):
        raise UserError(
            f"{name}: tau_s = {tau_s!r} differs from tau_t = {tau_t!r}; {name} has no student temperature "
            "(the student's softmax is at 1); allowed: tau_s unset, or equal to tau_t (a searcher's single tau)"
        )


@register("ttm")
class TTM(TemperatureMethod):
    """KL(p_t^gamma / sum p_t^gamma || softmax(z_s)), gamma = 1 / tau_t: KD without the student's temperature."""

    name = "ttm"
    kind = "learned"  # runs on its own in a study, at the authors' tau; its tau does not move
    searchable = True  # a searcher (grid, optuna) may choose its tau (gamma = 1 / tau)
    student_temperature = False  # a searcher's tau_s must be unset or equal to tau_t (check_tau_s)
    label = "TTM"
    color = "C6"
    marker = "v"
    order = 50

    def __init__(self, tau_t: float = AUTHORS_TAU, tau_s: Optional[float] = None):
        check_range("tau_t", tau_t, 0, None, lo_open=True)
        check_tau_s(self.name, tau_t, tau_s)
        super().__init__(tau_t, 1.0)  # the student's temperature is 1

    @property
    def gamma(self) -> float:
        return 1.0 / self.tau_t

    def weights(self, power_sum: torch.Tensor) -> Optional[torch.Tensor]:
        """Each sample's weight on its KL term (None: the plain batch mean)."""
        return None

    def loss(self, student_logits, teacher_logits, target, tau_t, tau_s, alpha):
        """alpha * mean_b(w_b * KL_b) + (1 - alpha) * CE; w_b = 1 for TTM."""
        ce = soft_cross_entropy(student_logits, target)
        if alpha == 0:
            return {"loss": ce, "kd": student_logits.new_zeros(()), "ce": ce}
        kl, power_sum = ttm_per_sample(student_logits, teacher_logits, float(tau_t))
        w = self.weights(power_sum)
        kd = (kl if w is None else w * kl).mean()
        return {"loss": alpha * kd + (1 - alpha) * ce, "kd": kd, "ce": ce}
