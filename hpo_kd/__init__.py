"""hpo_kd: compare distillation-temperature tuning methods on the same budget."""

__version__ = "0.1.0"
