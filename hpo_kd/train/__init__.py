"""One distillation trial: data -> teacher (trained once, cached) -> student with a temperature method.

`run_trial(config, report=callback)` returns the final metrics; `report` gets one dict per epoch.
It is `student_trainer(config, report)` (the data, method, teacher and seeded student: a
`Trainer` before its first epoch), then `trainer.run()` and `trainer.finish()`. PBT drives the
same trainer a few epochs at a time (`run(start, stop, on_epoch)`, `state`, `load_state`);
`run_trials` trains students of one setting and seed together in one `Trainer` (`trainers`);
`run_population` trains a PBT population so, copying members between its trainers.

config: the options (TrialConfig, SCHEMA); runtime: device, seeds, precision; evaluate: predictions
and accuracy; optim: optimizer and schedule; logits: the teacher's logits, remembered; teacher:
teachers, cached; loop: the trainer (`Trainer`, `Member`; `fit`); trials: `student_trainer`,
`run_trial`, `run_trials`, `trainers`; population: `run_population` (PBT in one process).
"""

from .config import SCHEMA, STUDY_TRAIN_KEYS, TrialConfig
from .evaluate import accuracy, predict, recomputed_bn
from .loop import Member, Trainer, fit
from .optim import make_scheduler, milestones
from .population import run_population
from .runtime import as_input, autocast, gpu_ready, on_device, pick_device
from .teacher import get_teacher, teacher_config, teacher_key, train_teacher
from .trials import as_config, group_key, make_method, run_trial, run_trials, student_trainer, trainers

__all__ = [
    "SCHEMA",
    "STUDY_TRAIN_KEYS",
    "Member",
    "Trainer",
    "TrialConfig",
    "accuracy",
    "as_config",
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
    "run_population",
    "run_trial",
    "run_trials",
    "student_trainer",
    "teacher_config",
    "teacher_key",
    "train_teacher",
    "trainers",
]
