"""One distillation trial: data -> teacher (trained once, cached) -> student with a temperature method.

`run_trial(config, report=callback)` returns the final metrics; `report` gets one dict per epoch.

config: the options (TrialConfig, SCHEMA); runtime: device, seeds, precision; evaluate: predictions
and accuracy; optim: optimizer and schedule; logits: the teacher's logits, remembered; teacher:
teachers, cached; loop: the training loop (`fit`, `fit_members`); trials: `run_trial`, `run_trials`.
"""
from .config import SCHEMA, STUDY_TRAIN_KEYS, Option, TrialConfig
from .evaluate import accuracy, predict, recomputed_bn
from .loop import Member, fit, fit_members
from .optim import make_optimizer, make_scheduler, milestones
from .runtime import as_input, autocast, gpu_ready, on_device, pick_device, seed_everything
from .teacher import get_teacher, teacher_config, teacher_key, train_teacher
from .trials import GROUP_FREE, group_key, make_method, run_trial, run_trials

__all__ = [
    "GROUP_FREE", "SCHEMA", "STUDY_TRAIN_KEYS", "Member", "Option", "TrialConfig", "accuracy", "as_input",
    "autocast", "fit", "fit_members", "get_teacher", "gpu_ready", "group_key", "make_method", "make_optimizer",
    "make_scheduler", "milestones", "on_device", "pick_device", "predict", "recomputed_bn", "run_trial",
    "run_trials", "seed_everything", "teacher_config", "teacher_key", "train_teacher",
]
