"""WTTM, Weighted Transformed Teacher Matching (Zheng & Yang, ICLR 2024, the same paper as TTM).

As TTM (`hpo_kd.methods.ttm`), but each sample's KL term is weighted by the power sum of its
teacher's probabilities,

    U_b = sum_k p_t,b,k^gamma,   KD = mean_b(U_b * KL(p~_t,b || softmax(z_s,b))),

with gamma = 1 / tau_t. The weight is not normalised, as in the authors' code (`mean(norm * KL)`,
norm the power sum): for gamma < 1 it lies in [1, C^(1 - gamma)] over C classes, larger for a smoother
teacher. It carries no gradient (the teacher's logits carry none).

`tau_t` (gamma = 1 / tau_t) is searchable by the grid and Optuna, as TTM's. Default tau_t = 5
(gamma = 0.2): the value of the authors' CIFAR-100 example for WTTM (their README, where WTTM is
added to CRD with weight 4). Weighting: ours, alpha * KD + (1 - alpha) * CE with alpha = 0.9,
where the authors weight 1 * CE + beta * KD with beta chosen per teacher-student pair.
"""

from __future__ import annotations

from typing import Optional

import torch

from .base import register
from .ttm import TTM

AUTHORS_TAU = 5.0  # gamma = 0.2, the authors' README example for WTTM on CIFAR-100


@register("wttm")
class WTTM(TTM):
    """TTM with each sample's KL weighted by sum_k p_t,k^gamma, the teacher's power sum."""

    name = "wttm"
    label = "WTTM"
    color = "C8"
    marker = "<"
    order = 52

    def __init__(self, tau_t: float = AUTHORS_TAU, tau_s: Optional[float] = None):
        super().__init__(tau_t, tau_s)

    def weights(self, power_sum: torch.Tensor) -> Optional[torch.Tensor]:
        return power_sum
