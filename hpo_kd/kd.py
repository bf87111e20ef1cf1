"""Hinton knowledge-distillation loss with separate teacher and student temperatures.

The temperatures are numbers (or scalar tensors, which may require grad) for the whole batch, or
per sample: a tensor of shape (B,), or a `LogitTemperature`, a rule that gives each sample its
temperature from its own logits (LS-KD's `StandardizedTemperature`). A method hands either kind
to the trainer from `temperatures()`; `kd_loss` takes the per-sample form when one of them is.
"""

from __future__ import annotations

from typing import Dict, Optional, Union

import torch
import torch.nn.functional as F


class LogitTemperature:
    """A temperature per sample, computed from that sample's logits: `self(logits)` has shape
    (B,). `base` is the number the KD factor uses in its place (the factor is base_t * base_s)."""

    base: float

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class StandardizedTemperature(LogitTemperature):
    """`base * (std(z) + eps)` per sample, std over the classes: softmax(z / that) equals
    softmax(((z - mean(z)) / (std(z) + eps)) / base), the softmax of the z-scored logits at
    temperature `base` (softmax does not change when a constant is added to every logit).
    `unbiased=True` (Bessel's n - 1) and eps = 1e-7 added to the std: as Logit Standardization KD's
    authors do (torch's `Tensor.std` default). The std is not detached: the student's gradient
    flows through it, as through the authors' normalization."""

    def __init__(self, base: float, eps: float = 1e-7, unbiased: bool = True):
        self.base = float(base)
        self.eps = float(eps)
        self.unbiased = bool(unbiased)

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        return self.base * (logits.std(dim=-1, unbiased=self.unbiased) + self.eps)

    def __repr__(self) -> str:
        return f"StandardizedTemperature(base={self.base}, eps={self.eps}, unbiased={self.unbiased})"


Temperature = Union[float, torch.Tensor, LogitTemperature]


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against class indices (B,) or a distribution over classes (B, C)."""
    if target.dim() == logits.dim():
        return -(target * F.log_softmax(logits, dim=-1)).sum(-1).mean()
    return F.cross_entropy(logits, target)


def _per_sample(tau) -> bool:
    return isinstance(tau, LogitTemperature) or (isinstance(tau, torch.Tensor) and tau.dim() > 0)


def _column(tau):
    """A temperature that divides (B, C) logits row by row: (B,) -> (B, 1); a scalar as it is."""
    return tau.unsqueeze(-1) if isinstance(tau, torch.Tensor) and tau.dim() > 0 else tau


def kd_per_sample(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    tau_t: Union[float, torch.Tensor],
    tau_s: Union[float, torch.Tensor],
    factor: Optional[Union[float, torch.Tensor]] = None,
) -> torch.Tensor:
    """Each sample's KD term, shape (B,): `factor_b * KL(softmax(z_t,b / tau_t,b) || softmax(z_s,b / tau_s,b))`.

    The temperatures and the factor are numbers (the same for every sample) or tensors of shape
    (B,); the factor defaults to tau_t * tau_s, sample by sample. The KL is summed over classes in
    log space, as in `kd_loss`; the batch's KD term is the mean of these.
    """
    log_p_t = F.log_softmax(teacher_logits / _column(tau_t), dim=-1)
    log_p_s = F.log_softmax(student_logits / _column(tau_s), dim=-1)
    kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(-1)
    if factor is None:
        factor = tau_t * tau_s
    return factor * kl


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

    Per-sample temperatures (a (B,) tensor, or a `LogitTemperature` evaluated on the teacher's
    logits for tau_t and on the student's for tau_s): the KD term is the batch mean of
    `kd_per_sample`, each sample's KL times its own factor: tau_t,b * tau_s,b for tensors, and
    for a `LogitTemperature` its `base` in place of its per-sample value (LS-KD's T^2).
    Returns a dict with `loss`, `kd` (the scaled KL term before alpha) and `ce`.
    """
    ce = soft_cross_entropy(student_logits, target)
    if alpha == 0:
        zero = student_logits.new_zeros(())
        return {"loss": ce, "kd": zero, "ce": ce}
    if _per_sample(tau_t) or _per_sample(tau_s):
        t = tau_t(teacher_logits) if isinstance(tau_t, LogitTemperature) else tau_t
        s = tau_s(student_logits) if isinstance(tau_s, LogitTemperature) else tau_s
        f_t = tau_t.base if isinstance(tau_t, LogitTemperature) else t
        f_s = tau_s.base if isinstance(tau_s, LogitTemperature) else s
        kd = kd_per_sample(student_logits, teacher_logits, t, s, f_t * f_s).mean()
    else:
        log_p_t = F.log_softmax(teacher_logits / tau_t, dim=-1)
        log_p_s = F.log_softmax(student_logits / tau_s, dim=-1)
        kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(-1).mean()
        kd = tau_t * tau_s * kl
    loss = alpha * kd + (1 - alpha) * ce
    return {"loss": loss, "kd": kd, "ce": ce}
