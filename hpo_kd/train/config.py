"""A trial's options: what each allows (Option, SCHEMA) and their values (TrialConfig)."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from .. import data as data_mod
from .. import methods as methods_mod
from .. import models as models_mod
from ..errors import UserError, check_range

OPTIMIZERS = ("sgd", "adamw")
DEVICES = ("auto", "cpu", "cuda")
LR_SCHEDULES = ("cosine", "multistep")
PRECISIONS = ("fp32", "bf16")
EVAL_BN = ("running", "recompute")


@dataclass(frozen=True)
class Option:
    """What a trial option allows. Each option is declared once, as a TrialConfig field (`option`);
    SCHEMA collects them: TrialConfig validates with it, `hpo-kd distill` derives its flags from it
    and a study's [train] table its keys (`study=True`)."""

    type: type = float
    lo: Optional[float] = None
    hi: Optional[float] = None
    lo_open: bool = False
    hi_open: bool = False
    choices: Optional[Tuple[str, ...]] = None
    help: str = ""
    study: bool = False

    def allowed(self) -> str:
        if self.choices is not None:
            return ", ".join(self.choices)
        left, right = "(" if self.lo_open else "[", ")" if self.hi_open else "]"
        lo = "-inf" if self.lo is None else f"{self.lo:g}"
        hi = "inf" if self.hi is None else f"{self.hi:g}"
        kind = {int: "an integer in ", list: "increasing integers in "}.get(self.type, "")
        return f"{kind}{left}{lo}, {hi}{right}"

    def check(self, key: str, value: Any) -> Any:
        """`value`, or a UserError naming `key` and what is allowed."""
        if self.choices is not None:
            if value not in self.choices:
                raise UserError(f"{key} = {value!r} is not allowed; allowed: {self.allowed()}")
            return value
        if self.type is list:  # a list of integers, increasing, each in range
            if not isinstance(value, (list, tuple)) or any(
                isinstance(v, bool) or not isinstance(v, int) for v in value
            ):
                raise UserError(f"{key} = {value!r}: expected a list of integers; allowed: {self.allowed()}")
            if list(value) != sorted(set(value)):
                raise UserError(f"{key} = {value!r}: expected increasing integers; allowed: {self.allowed()}")
            for v in value:
                Option(int, self.lo, self.hi, self.lo_open, self.hi_open).check(key, v)
            return value
        wanted = (int,) if self.type is int else (int, float)
        if isinstance(value, bool) or not isinstance(value, wanted):
            raise UserError(
                f"{key} = {value!r}: expected {'an integer' if self.type is int else 'a number'}; "
                f"allowed: {self.allowed()}"
            )
        try:
            return check_range(key, value, self.lo, self.hi, self.lo_open, self.hi_open)
        except UserError:
            raise UserError(f"{key} = {value!r} is out of range; allowed: {self.allowed()}") from None


def option(default: Any, type: type = float, **allows) -> Any:
    """A TrialConfig field that is a trial option: its default and what it allows (an Option)."""
    return field(default=default, metadata={"option": Option(type, **allows)})


@dataclass
class TrialConfig:
    """A trial's settings. The fields declared with `option` are the trial options (SCHEMA)."""

    dataset: str = "digits"
    root: Optional[str] = None
    data_options: Dict[str, Any] = field(default_factory=dict)  # e.g. mnist1d train_size, test_size
    split_seed: int = option(0, int, lo=0, help="seed of the train/meta/val split")
    fraction: float = option(1.0, float, lo=0, hi=1, lo_open=True, help="share of the train split")
    augment: str = option("none", str, choices=tuple(data_mod.AUGMENTS), help="augmentation level")
    teacher: Optional[str] = None
    teacher_checkpoint: Optional[str] = None  # a trained teacher's weights (a state_dict file): no training
    student: Optional[str] = None
    method: str = "fixed"
    method_options: Dict[str, Any] = field(default_factory=dict)
    # None: the method's own start (e.g. 4 for fixed, the authors' for CTKD)
    tau_t: Optional[float] = option(
        None, float, lo=0, lo_open=True, help="teacher temperature (start of a learned one); default: the method's own"
    )
    tau_s: Optional[float] = option(
        None, float, lo=0, lo_open=True, help="student temperature; default: the method's own"
    )
    alpha: float = option(0.9, float, lo=0, hi=1, help="weight of the KD term", study=True)
    optimizer: str = option("sgd", str, choices=OPTIMIZERS, study=True)
    lr: Optional[float] = option(None, float, lo=0, lo_open=True, help="default: per data set", study=True)
    momentum: float = option(0.9, float, lo=0, hi=1, hi_open=True, help="SGD momentum", study=True)
    weight_decay: float = option(5e-4, float, lo=0, study=True)
    warmup_epochs: int = option(1, int, lo=0, help="linear warm-up before the cosine schedule", study=True)
    epochs: Optional[int] = option(None, int, lo=1, help="default: per data set", study=True)
    batch_size: Optional[int] = option(None, int, lo=1, help="default: per data set", study=True)
    teacher_epochs: Optional[int] = option(None, int, lo=1, help="default: the student's epochs", study=True)
    teacher_lr: Optional[float] = option(None, float, lo=0, lo_open=True, help="default: the student's lr", study=True)
    teacher_optimizer: Optional[str] = option(None, str, choices=OPTIMIZERS, help="default: the student's", study=True)
    teacher_batch_size: Optional[int] = option(None, int, lo=1, help="default: the student's batch size", study=True)
    teacher_fraction: Optional[float] = option(
        None,
        float,
        lo=0,
        hi=1,
        lo_open=True,
        help="share of the train split the teacher trains on (e.g. 1 while the student has a fraction); "
        "default: the student's fraction",
        study=True,
    )
    teacher_augment: Optional[str] = option(
        None,
        str,
        choices=tuple(data_mod.AUGMENTS),
        help="the teacher's augmentation; default: the student's",
        study=True,
    )
    lr_schedule: str = option(
        "cosine",
        str,
        choices=LR_SCHEDULES,
        help="cosine to zero, or multistep (x lr_decay at each of lr_milestones)",
        study=True,
    )
    lr_milestones: Optional[List[int]] = option(
        None,
        list,
        lo=1,
        help="epochs where multistep decays (default: 62.5, 75 and 87.5 % of the epochs, e.g. 150, 180, 210 of 240)",
        study=True,
    )
    lr_decay: float = option(0.1, float, lo=0, hi=1, lo_open=True, help="multistep's factor", study=True)
    seed: int = option(0, int, lo=0, help="the student's seed")
    teacher_seed: int = option(0, int, lo=0)
    device: str = option("auto", str, choices=DEVICES)
    precision: str = option(
        "fp32",
        str,
        choices=PRECISIONS,
        help="bf16: the forward passes under bf16 autocast "
        "(CPU or CUDA); the KD loss, temperatures and MKD's meta step stay fp32",
        study=True,
    )
    eval_bn: str = option(
        "running",
        str,
        choices=EVAL_BN,
        help="the student's BatchNorm statistics when it is "
        "evaluated: running (PyTorch's running averages, dominated by the last ~10 training "
        "batches, augmented ones included) or recompute (averaged over the un-augmented train "
        "split before each evaluation, as precise BN does; training is unchanged)",
        study=True,
    )
    threads: Optional[int] = option(None, int, lo=1, help="torch threads (default: torch's)")
    cache_dir: Optional[str] = None

    def resolved(self) -> "TrialConfig":
        """A copy with every default filled in from the data set's defaults, validated."""
        d = data_mod.train_defaults(self.dataset)  # an unknown name raises with the list of names
        c = dataclasses.replace(
            self,
            method_options=dict(self.method_options),
            data_options=data_mod.check_options(self.dataset, self.data_options),
        )
        for k in ("teacher", "student", "epochs", "batch_size", "lr"):
            if getattr(c, k) is None:
                setattr(c, k, d[k])
        if c.teacher_epochs is None:
            c.teacher_epochs = c.epochs
        if c.cache_dir is None:
            c.cache_dir = os.environ.get("HPO_KD_CACHE", os.path.join(os.getcwd(), ".cache", "hpo_kd"))
        c.validate()
        return c

    def validate(self) -> None:
        for k, opt in SCHEMA.items():
            v = getattr(self, k)
            if v is not None or _DEFAULTS[k] is not None:  # None: the default chosen later
                opt.check(k, v)
        if self.teacher_checkpoint is not None and not os.path.isfile(self.teacher_checkpoint):
            raise UserError(f"teacher_checkpoint: file not found: {self.teacher_checkpoint}")
        methods_mod.METHODS.get(self.method)
        for name in (self.teacher, self.student):
            if name not in models_mod.MODELS:
                import timm

                if not timm.is_model(name):
                    models_mod.MODELS.get(name, ["or any timm model name (see timm.list_models())"])


SCHEMA: Dict[str, Option] = {
    f.name: f.metadata["option"] for f in dataclasses.fields(TrialConfig) if "option" in f.metadata
}
STUDY_TRAIN_KEYS = tuple(k for k, o in SCHEMA.items() if o.study)
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrialConfig)}
