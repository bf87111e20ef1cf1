"""Trials: one (`run_trial`), or several that differ only in their temperature method (`run_trials`)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import torch

from .. import data as data_mod
from .. import methods as methods_mod
from .. import models as models_mod
from ..errors import UserError
from ..files import digest
from ..models.grouped import why_not_groupable
from ..record import TAUS
from .config import TrialConfig
from .loop import Member, Trainer
from .runtime import as_input, gpu_ready, load_data, seed_everything
from .teacher import get_teacher

# What the students of one group may differ in: their temperature method and its options. Everything
# else (data, split, seed, teacher, student, recipe) they share, and with it every batch.
GROUP_FREE = ("method", "method_options", *TAUS)


def group_key(config: TrialConfig | Dict[str, Any]) -> str:
    """Trials with the same key can train in one group (`run_trials`)."""
    c = dataclasses.asdict(as_config(config)) if not isinstance(config, dict) else dict(config)
    return json.dumps({k: v for k, v in sorted(c.items()) if k not in GROUP_FREE}, sort_keys=True, default=str)


def as_config(config: TrialConfig | Dict[str, Any]) -> TrialConfig:
    """A trial's options as a TrialConfig (a dict's unknown keys: a UserError naming the allowed ones)."""
    if isinstance(config, dict):
        unknown = set(config) - {f.name for f in dataclasses.fields(TrialConfig)}
        if unknown:
            raise UserError(
                f"unknown trial option(s) {', '.join(sorted(unknown))}; allowed: "
                + ", ".join(f.name for f in dataclasses.fields(TrialConfig))
            )
        config = TrialConfig(**config)
    return config


def student_trainer(
    config: TrialConfig | Dict[str, Any],
    report: Optional[Callable[[Dict[str, Any]], None]] = None,
    log: Callable[[str], None] = lambda m: None,
) -> Trainer:
    """The trainer of one student, before its first epoch: the data on the trial's device, the
    temperature method, the teacher (trained once and cached) if the method distils, and the
    student, seeded by the trial's seed. `report(row)` after every epoch."""
    c = as_config(config).resolved()
    device, bundle = load_data(c)
    method = make_method(c)
    teacher, tinfo = get_teacher(c, bundle, device, log) if method.uses_kd else (None, None)
    seed_everything(c.seed)
    model = models_mod.create(c.student, bundle.input_shape, bundle.num_classes)
    info = dict(
        grouped=1, group_kernels=None, **teacher_fields(tinfo), student_params=models_mod.count_parameters(model)
    )
    member = Member(model, method, report, info=info)
    return Trainer([member], bundle, teacher, c, device, logits_key(tinfo, bundle, device))


def run_trial(
    config: TrialConfig | Dict[str, Any],
    report: Optional[Callable[[Dict[str, Any]], None]] = None,
    log: Callable[[str], None] = lambda m: None,
) -> Dict[str, Any]:
    """Run one distillation trial; `report(row)` is called after every epoch.

    Returns the final metrics (status `ok` or `diverged`, accuracies, final temperatures, ...)."""
    trainer = student_trainer(config, report, log)
    trainer.run()
    return trainer.finish()[0]


def run_trials(
    configs: List[TrialConfig | Dict[str, Any]],
    reports: Optional[List[Optional[Callable[[Dict[str, Any]], None]]]] = None,
    log: Callable[[str], None] = lambda m: None,
) -> List[Dict[str, Any]]:
    """Run trials that differ only in their temperature method (GROUP_FREE): one data set, seed,
    teacher and student, the data and the teacher loaded once (`trainers`). Each result is
    bitwise the one `run_trial` gives for its config alone."""
    results: List[Optional[Dict[str, Any]]] = [None] * len(configs)
    for idx, trainer in trainers(configs, reports, log):
        trainer.run()
        for i, r in zip(idx, trainer.finish()):
            results[i] = r
    return results


def trainers(
    configs: List[TrialConfig | Dict[str, Any]],
    reports: Optional[List[Optional[Callable[[Dict[str, Any]], None]]]] = None,
    log: Callable[[str], None] = lambda m: None,
) -> Iterator[Tuple[List[int], Trainer]]:
    """The trainers of trials that differ only in their temperature method, before their first
    epoch, each with the indices of its configs: the students whose methods train in a group
    (`TemperatureMethod.trains_in_group`) as one `GroupedStudents` trainer when their
    architecture allows it (fused convolutions where a bitwise check of one step passes on this
    machine, else each on its own modules, with a warning), then one trainer per other student,
    made when asked for (every student seeded as a trial alone seeds it)."""
    cs = [as_config(c).resolved() for c in configs]
    reports = list(reports) if reports is not None else [None] * len(cs)
    keys = {group_key(dataclasses.replace(c, cache_dir=None)) for c in cs}
    if len(keys) > 1:
        raise ValueError(f"run_trials: the trials differ in more than {', '.join(GROUP_FREE)}")
    c0 = cs[0]
    device, bundle = load_data(c0)
    methods = [make_method(c) for c in cs]
    teacher, tinfo = None, None
    if any(m.uses_kd for m in methods):
        teacher, tinfo = get_teacher(c0, bundle, device, log)
    key = logits_key(tinfo, bundle, device)

    def student(i: int, **info) -> Member:
        seed_everything(c0.seed)  # as a trial alone seeds it: every student of a seed starts the same
        model = models_mod.create(c0.student, bundle.input_shape, bundle.num_classes)
        used = tinfo if methods[i].uses_kd else None  # a student without KD has no teacher, in a group too
        info.update(teacher_fields(used), student_params=models_mod.count_parameters(model))
        return Member(model, methods[i], reports[i], info=info)

    alone = list(range(len(cs)))
    together = [i for i, m in enumerate(methods) if type(m).trains_in_group()]
    if len(together) >= 2:
        members = [student(i, grouped=len(together), group_kernels=None) for i in together]
        for m in members:
            m.model = gpu_ready(m.model, device, len(bundle.input_shape) == 3)
        reason = "bf16 autocast" if c0.precision != "fp32" else why_not_groupable(members[0].model)
        if reason is None:
            inexact = _check_group([m.model for m in members], bundle, c0, device)
            if inexact:
                log(
                    f"warning: fused kernels are not bitwise exact here ({inexact}): {len(together)} students of "
                    "one seed train together on their own modules"
                )
            for m in members:
                m.info["group_kernels"] = "own" if inexact else "fused"
            alone = [i for i in alone if i not in together]
            yield together, Trainer(members, bundle, teacher, c0, device, key, group=True, fused=not inexact)
        else:
            log(f"{len(together)} students of one seed train one by one ({reason})")
    for i in alone:
        yield [i], Trainer([student(i, grouped=1, group_kernels=None)], bundle, teacher, c0, device, key)


def logits_key(tinfo: Optional[Dict[str, Any]], bundle, device) -> Optional[str]:
    """The key of a teacher's logits on a data set and device (None: no teacher): computed once per process."""
    return f"{tinfo['path']}|{digest(bundle.key)}|{device}" if tinfo else None


def teacher_fields(used: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """The accuracies of the teacher a student learned from (None: none), as its result has them."""
    return {
        "teacher_val_acc": used["val_acc"] if used else None,
        "teacher_test_acc": used["test_acc"] if used else None,
        "teacher_cached": used["cached"] if used else None,
    }


def _check_group(students, bundle, c: TrialConfig, device) -> Optional[str]:
    """None if `students` can train as one fused group here; otherwise why not (see models.grouped)."""
    from ..models import grouped

    x_tr, y_tr = bundle.splits["train"]
    idx = torch.arange(min(c.batch_size, len(y_tr)))
    x = as_input(bundle.prepare(next(iter(data_mod.take(x_tr, [idx], device)))))
    return grouped.bitwise_check(students, x, y_tr[idx].to(device))


def make_method(c: TrialConfig):
    """The trial's temperature method: the temperatures it was given (a method that has no such
    temperature rejects one, naming what it allows) and its options."""
    taus = {k: getattr(c, k) for k in TAUS if getattr(c, k) is not None}
    return methods_mod.create(c.method, **taus, **c.method_options)
