"""MLKD's multi-temperature instance term (Jin et al., CVPR 2023, "Multi-level Logit Distillation").

The KD term is Hinton's at several temperatures at once, each with its factor T^2, summed:

    KD = sum_{T in temperatures} T^2 * KL(softmax(z_t / T) || softmax(z_s / T)),

each KL summed over the classes and averaged over the batch; `reduce = "mean"` divides the sum by
the number of temperatures. The authors' code sums over {4, 3, 5, 2, 6} (their config's T = 4 and
four fixed ones), weighting each term 0.9 and the CE 0.1 on CIFAR-100: at our alpha = 0.9 and
`reduce = "sum"` that is their instance term on one view.

Only the instance-level term is implemented. Left out (docs/methods.md): the class-level and
batch-level alignment terms, the second, strongly augmented view, and the confidence masking.

No single temperature: the epoch log's tau_t and tau_s are NaN; the temperatures are in the
trial's options.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Sequence, Tuple, Union

from ..errors import UserError
from ..kd import kd_per_sample, soft_cross_entropy
from .base import TemperatureMethod, register

AUTHORS_TEMPERATURES = (2.0, 3.0, 4.0, 5.0, 6.0)  # their code's {4, 3, 5, 2, 6}
REDUCES = ("sum", "mean")


def parse_temperatures(value: Union[str, Sequence[float]]) -> Tuple[float, ...]:
    """A non-empty list of positive numbers, or the same as comma-separated text ("2,3,4")."""
    allowed = 'a non-empty list of positive numbers, e.g. [2, 3, 4, 5, 6] (or "2,3,4,5,6")'
    items = value.split(",") if isinstance(value, str) else value
    try:
        temps = tuple(float(v) for v in items)
    except (TypeError, ValueError):
        raise UserError(f"mlkd option temperatures = {value!r}; allowed: {allowed}") from None
    if not temps or not all(math.isfinite(t) and t > 0 for t in temps):
        raise UserError(f"mlkd option temperatures = {value!r}; allowed: {allowed}")
    return temps


@register("mlkd")
class MLKD(TemperatureMethod):
    """KD summed (or averaged) over a set of temperatures, each with its T^2: MLKD's instance term."""

    name = "mlkd"
    kind = "learned"  # runs on its own in a study; nothing is searched
    label = "MLKD"
    color = "goldenrod"
    marker = "h"
    order = 55

    def __init__(self, temperatures: Sequence[float] = AUTHORS_TEMPERATURES, reduce: str = "sum"):
        self.taus = parse_temperatures(temperatures)
        if reduce not in REDUCES:
            raise UserError(f"mlkd option reduce = {reduce!r}; allowed: {', '.join(REDUCES)}")
        self.reduce = reduce
        super().__init__(1.0, 1.0)  # unused: the loss takes its temperatures from the set

    def current(self):
        return float("nan"), float("nan")

    def loss(self, student_logits, teacher_logits, target, tau_t, tau_s, alpha):
        """alpha * KD + (1 - alpha) * CE with KD the sum (or mean) over the set of T^2-scaled KD terms."""
        ce = soft_cross_entropy(student_logits, target)
        if alpha == 0:
            return {"loss": ce, "kd": student_logits.new_zeros(()), "ce": ce}
        kd = sum(kd_per_sample(student_logits, teacher_logits, t, t).mean() for t in self.taus)
        if self.reduce == "mean":
            kd = kd / len(self.taus)
        return {"loss": alpha * kd + (1 - alpha) * ce, "kd": kd, "ce": ce}

    def state_dict(self) -> Dict[str, Any]:
        return {"temperatures": list(self.taus), "reduce": self.reduce}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.taus = parse_temperatures(state["temperatures"])
        self.reduce = state["reduce"]
