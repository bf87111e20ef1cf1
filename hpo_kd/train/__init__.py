"""One distillation trial: data -> teacher (trained once, cached) -> student with a temperature method.

`run_trial(config, report=callback)` returns the final metrics; `report` gets one dict per epoch.

config: the options (TrialConfig, SCHEMA); runtime: device, seeds, precision; evaluate: predictions
and accuracy; optim: optimizer and schedule; logits: the teacher's logits, remembered; teacher:
teachers, cached; loop: the training loop (`fit`, `fit_members`); trials: `run_trial`, `run_trials`.
"""

from .config import SCHEMA, STUDY_TRAIN_KEYS, TrialConfig
from .evaluate import accuracy, predict, recomputed_bn
from .loop import fit
from .optim import make_scheduler, milestones
from .runtime import as_input, autocast, gpu_ready, on_device, pick_device
from .teacher import get_teacher, teacher_config, teacher_key, train_teacher
from .trials import group_key, make_method, run_trial, run_trials

__all__ = [
    "SCHEMA",
    "STUDY_TRAIN_KEYS",
    "TrialConfig",
    "accuracy",
    "as_input",
    "autocast",
    "fit",
    "get_teacher",
    "gpu_ready",
    "group_key",
    "make_method",
    "make_scheduler",
    "milestones",
    "on_device",
    "pick_device",
    "predict",
    "recomputed_bn",
    "run_trial",
    "run_trials",
    "teacher_config",
    "teacher_key",
    "train_teacher",
]
