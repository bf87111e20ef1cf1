"""Hinton knowledge-distillation loss with separate teacher and student temperatures."""
from __future__ import annotations

from typing import Dict, Union

import torch
import torch.nn.functional as F

Temperature = Union[float, torch.Tensor]


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against class indices (B,) or a distribution over classes (B, C)."""
    if target.dim() == logits.dim():
        return -(target * F.log_softmax(logits, dim=-1)).sum(-1).mean()
    return F.cross_entropy(logits, target)


def kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    target: torch.Tensor,
    tau_t: Temperature = 4.0,
    tau_s: Temperature = 4.0,
    alpha: float = 0.9,
) -> Dict[str, torch.Tensor]:
    """`alpha * tau_t * tau_s * KL(softmax(z_t/tau_t) || softmax(z_s/tau_s)) + (1-alpha) * CE(z_s, y)`.

    The KL is summed over classes and averaged over the batch, computed in log space; with
    tau_t = tau_s = T it is the usual T^2-scaled Hinton loss. `target` may be class indices or
    soft (Mixup) targets. The temperatures may be tensors that require grad. With alpha = 0 the
    loss is the cross-entropy alone and `teacher_logits` may be None.
    Returns a dict with `loss`, `kd` (the scaled KL term before alpha) and `ce`.
    """
    ce = soft_cross_entropy(student_logits, target)
    if alpha == 0:
        zero = student_logits.new_zeros(())
        return {"loss": ce, "kd": zero, "ce": ce}
    log_p_t = F.log_softmax(teacher_logits / tau_t, dim=-1)
    log_p_s = F.log_softmax(student_logits / tau_s, dim=-1)
    kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(-1).mean()
    kd = tau_t * tau_s * kl
    loss = alpha * kd + (1 - alpha) * ce
    return {"loss": loss, "kd": kd, "ce": ce}
