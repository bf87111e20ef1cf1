"""Fixed temperatures (the grid and Optuna search over these) and the no-KD baseline."""

from __future__ import annotations

from ..errors import check_range
from .base import TemperatureMethod, register


@register("fixed")
class Fixed(TemperatureMethod):
    """Constant tau_t and tau_s for the whole run."""

    name = "fixed"
    kind = "searched"  # run by the searchers (grid, optuna), never alone in a study
    searchable = True
    label = "fixed τ"

    def __init__(self, tau_t: float = 4.0, tau_s: float = 4.0):
        check_range("tau_t", tau_t, 0, None, lo_open=True)
        check_range("tau_s", tau_s, 0, None, lo_open=True)
        super().__init__(tau_t, tau_s)


@register("nokd")
class NoKD(TemperatureMethod):
    """The student trained with cross-entropy only (alpha = 0); no teacher is used."""

    name = "nokd"
    uses_kd = False
    kind = "baseline"
    label = "no-KD"
    color = "0.35"
    marker = "X"
    order = 90

    def __init__(self):  # no temperature: setting one is an error, not silently ignored
        super().__init__(1.0, 1.0)

    def current(self):
        return float("nan"), float("nan")
