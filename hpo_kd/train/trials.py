"""Trials: one (`run_trial`), or several that differ only in their temperature method (`run_trials`)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Callable, Dict, List, Optional

import torch

from .. import data as data_mod
from .. import methods as methods_mod
from .. import models as models_mod
from ..errors import UserError
from ..files import digest
from ..models.grouped import why_not_groupable
from .config import TrialConfig
from .loop import Member, fit, fit_members
from .runtime import as_input, gpu_ready, load_data, seed_everything
from .teacher import get_teacher

# What the students of one group may differ in: their temperature method and its options. Everything
# else (data, split, seed, teacher, student, recipe) they share, and with it every batch.
GROUP_FREE = ("method", "method_options", "tau_t", "tau_s")


def group_key(config: TrialConfig | Dict[str, Any]) -> str:
    """Trials with the same key can train in one group (`run_trials`)."""
    c = dataclasses.asdict(_as_config(config)) if not isinstance(config, dict) else dict(config)
    return json.dumps({k: v for k, v in sorted(c.items()) if k not in GROUP_FREE}, sort_keys=True, default=str)


def _as_config(config: TrialConfig | Dict[str, Any]) -> TrialConfig:
    if isinstance(config, dict):
        unknown = set(config) - {f.name for f in dataclasses.fields(TrialConfig)}
        if unknown:
            raise UserError(
                f"unknown trial option(s) {', '.join(sorted(unknown))}; allowed: "
                + ", ".join(f.name for f in dataclasses.fields(TrialConfig))
            )
        config = TrialConfig(**config)
    return config


def run_trial(
    config: TrialConfig | Dict[str, Any],
    report: Optional[Callable[[Dict[str, Any]], None]] = None,
    log: Callable[[str], None] = lambda m: None,
) -> Dict[str, Any]:
    """Run one distillation trial; `report(row)` is called after every epoch.

    Returns the final metrics (status `ok` or `diverged`, accuracies, final temperatures, ...)."""
    return run_trials([config], [report], log)[0]


def run_trials(
    configs: List[TrialConfig | Dict[str, Any]],
    reports: Optional[List[Optional[Callable[[Dict[str, Any]], None]]]] = None,
    log: Callable[[str], None] = lambda m: None,
) -> List[Dict[str, Any]]:
    """Run trials that differ only in their temperature method (GROUP_FREE): one data set, seed,
    teacher and student. The data and the teacher are loaded once. The students whose methods
    train in a group (`TemperatureMethod.trains_in_group`) train together as one
    `GroupedStudents` model when their architecture allows it: with fused convolutions where a
    bitwise check of one step passes on this machine, else each on its own modules (exact by
    construction, and a warning); the others one after the other. Either way each result is
    bitwise the one `run_trial` gives for its config alone."""
    cs = [_as_config(c).resolved() for c in configs]
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
    logits_key = f"{tinfo['path']}|{digest(bundle.key)}|{device}" if tinfo else None
    image = len(bundle.input_shape) == 3

    counted = []

    def student():  # seeded as a trial alone seeds it: every student of a seed starts the same
        seed_everything(c0.seed)
        model = models_mod.create(c0.student, bundle.input_shape, bundle.num_classes)
        counted.append(models_mod.count_parameters(model))
        return gpu_ready(model, device, image)

    results: List[Optional[Dict[str, Any]]] = [None] * len(cs)
    together = [i for i, m in enumerate(methods) if type(m).trains_in_group()]
    if len(together) >= 2:
        students = [student() for _ in together]
        reason = "bf16 autocast" if c0.precision != "fp32" else why_not_groupable(students[0])
        if reason is None:
            inexact = _check_group(students, bundle, c0, device)
            if inexact:
                log(
                    f"warning: fused kernels are not bitwise exact here ({inexact}): {len(together)} students of "
                    "one seed train together on their own modules"
                )
            members = [Member(s, methods[i], reports[i]) for s, i in zip(students, together)]
            kernels = "own" if inexact else "fused"
            for i, r in zip(
                together, fit_members(members, bundle, teacher, c0, device, logits_key, group=True, fused=not inexact)
            ):
                results[i] = dict(r, grouped=len(together), group_kernels=kernels)
        else:
            log(f"{len(together)} students of one seed train one by one ({reason})")
    for i, m in enumerate(methods):
        if results[i] is None:
            results[i] = dict(
                fit(student(), bundle, m, teacher, c0, device, reports[i], logits_key), grouped=1, group_kernels=None
            )
    for r, m in zip(results, methods):
        _add_teacher(r, tinfo if m.uses_kd else None)  # a student without KD has no teacher, in a group too
        r["student_params"] = counted[0]
    return results


def _add_teacher(result: Dict[str, Any], used: Optional[Dict[str, Any]]) -> None:
    """The accuracies of the teacher a student learned from (None: none) in its result."""
    result["teacher_val_acc"] = used["val_acc"] if used else None
    result["teacher_test_acc"] = used["test_acc"] if used else None
    result["teacher_cached"] = used["cached"] if used else None


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
    taus = {k: getattr(c, k) for k in ("tau_t", "tau_s") if getattr(c, k) is not None}
    return methods_mod.create(c.method, **taus, **c.method_options)
