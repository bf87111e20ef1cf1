"""The training loop: students (members) trained in lockstep on the same batches."""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import torch

from .. import data as data_mod
from .. import methods as methods_mod
from ..kd import kd_loss
from .config import TrialConfig
from .evaluate import accuracy, recomputed_bn
from .logits import teacher_outputs
from .optim import make_optimizer, make_scheduler, milestones
from .runtime import as_input, autocast, gpu_ready


def _batches(n: int, batch_size: int, gen: torch.Generator):
    perm = torch.randperm(n, generator=gen)
    stop = n - n % batch_size if n >= batch_size else n  # drop the ragged last batch
    for i in range(0, stop, batch_size):
        yield perm[i : i + batch_size]


@dataclass
class Member:
    """One student of a training run: its model, temperature method and per-epoch callback, and
    what its training produced (filled in by `fit_members`)."""

    model: Any
    method: Any
    report: Optional[Callable[[Dict[str, Any]], None]] = None
    use_kd: bool = False
    alpha: float = 0.0
    history: List[Dict[str, Any]] = field(default_factory=list)
    best: Dict[str, Any] = field(default_factory=lambda: {"val_acc": -1.0})
    status: str = "ok"
    error: Optional[str] = None
    seconds: float = 0.0
    sums: Dict[str, float] = field(default_factory=dict)
    seen: int = 0


def fit(model, bundle, method, teacher, c: TrialConfig, device, report,
        logits_key: Optional[str] = None, every_epoch: bool = True) -> Dict[str, Any]:
    """Train `model` on `bundle` with `method` (KD from `teacher` if the method uses it).
    `logits_key` names the teacher and data, so that the teacher's logits are computed once per
    process. `every_epoch=False`: val and test accuracy after the last epoch only (a teacher keeps
    its last weights and records only their accuracy; evaluating leaves training unchanged)."""
    return fit_members([Member(model, method, report)], bundle, teacher, c, device, logits_key,
                       every_epoch, group=False)[0]


def fit_members(members: List[Member], bundle, teacher, c: TrialConfig, device,
                logits_key: Optional[str] = None, every_epoch: bool = True, group: bool = False
                ) -> List[Dict[str, Any]]:
    """Train every member on the same batches (same seed, same augmentation draws, same teacher
    outputs) in lockstep, the step's shared work (batch, augmentation, teacher, learning rate)
    done once. `group=True`: the members' forward and backward run as one `GroupedStudents`
    model, which gives each member bitwise the numbers it gets alone (see hpo_kd.models.grouped;
    the caller checks that this holds here). Otherwise there must be one member.
    A member whose loss or accuracy turns non-finite stops as `diverged`; the others go on."""
    assert group or len(members) == 1
    image = len(bundle.input_shape) == 3
    for m in members:
        m.model = gpu_ready(m.model, device, image).train()
        m.use_kd = m.method.uses_kd and teacher is not None
        m.alpha = c.alpha if m.use_kd else 0.0
    x_tr, y_tr = (t.to(device) for t in bundle.splits["train"])
    amp = c.precision
    prepare, augment = bundle.prepare, bundle.augmenter
    n = len(y_tr)
    steps_per_epoch = max(1, n // c.batch_size)  # a ragged last batch is dropped (see _batches)
    gen = torch.Generator().manual_seed(c.seed)
    use_kd = any(m.use_kd for m in members)

    # Teacher logits of the un-augmented training data, computed once per trial, unless they would
    # outgrow the memory budget (a large image folder): then the teacher sees each batch.
    cached_logits, aug_teacher = None, None
    if use_kd:
        cached_logits, aug_teacher = teacher_outputs(teacher, bundle, x_tr, c, steps_per_epoch, logits_key, device)

    def meta_batches(augmented: bool = False):  # only a method that asks for meta batches pays for the copy
        """Batches of the meta split, forever; `augmented`: through the trial's augmentation, with
        its own generators (Mixup's NumPy draws included), so the training batches stay as they are."""
        meta_split = tuple(t.to(device) for t in bundle.splits["meta"])
        mgen = torch.Generator().manual_seed(c.seed + 7919)
        np_state = np.random.RandomState(c.seed + 7919).get_state()
        while True:
            order = list(_batches(len(meta_split[1]), c.batch_size, mgen))
            for idx, xb in zip(order, data_mod.take(meta_split[0], order, device)):
                x, y = prepare(xb), meta_split[1][idx]
                if augmented:
                    train_state = np.random.get_state()
                    np.random.set_state(np_state)
                    x, y = augment(x, y, mgen)
                    np_state = np.random.get_state()
                    np.random.set_state(train_state)
                yield as_input(x), y

    # One optimizer over every member's parameters: its update is per tensor, so each member's
    # parameters move exactly as under an optimizer of their own.
    optimizer = make_optimizer(c, [m.model for m in members], [p for m in members for p in m.method.parameters()])
    total = c.epochs * steps_per_epoch
    scheduler = make_scheduler(optimizer, total, min(c.warmup_epochs * steps_per_epoch, total - 1), c.lr_schedule,
                               tuple(s * steps_per_epoch for s in milestones(c)), c.lr_decay)
    for m in members:
        m.method.setup(methods_mod.TrialContext(
            model=m.model,
            epochs=c.epochs,
            steps_per_epoch=steps_per_epoch,
            alpha=m.alpha,
            device=device,
            meta_batches=meta_batches,
            lr=lambda: optimizer.param_groups[0]["lr"],
            precision=amp,
        ))
    active = list(members)
    grouped = _regroup(active, group)
    start = time.perf_counter()
    step = 0

    def stop(m: Member, message: str) -> None:
        m.status, m.error = "diverged", message
        for p in list(m.model.parameters()) + list(m.method.parameters()):
            p.grad = None  # the optimizer skips a parameter without a gradient
        active.remove(m)

    for epoch in range(1, c.epochs + 1):
        if not active:
            break
        t0 = time.perf_counter()
        for m in active:
            m.method.start_epoch(epoch)
            m.sums, m.seen = {}, 0
        in_epoch = len(active)
        # The epoch's batches are drawn up front (the same draws as one by one), so that a
        # split read from disk can decode ahead of the loop.
        order = list(_batches(n, c.batch_size, gen))
        for idx, xb in zip(order, data_mod.take(x_tr, order, device)):
            if not active:
                break
            x, y = prepare(xb), y_tr[idx]
            z_t = None
            if cached_logits is not None:
                z_t = cached_logits[idx]
            x, target = augment(x, y, gen)
            x = as_input(x)
            with autocast(device, amp):  # the forward passes; the loss below is fp32
                if aug_teacher is not None:
                    z_t = aug_teacher(x)
                if grouped is None:  # one member: its own module
                    z_all = [active[0].model(x).float()]
                else:
                    out = grouped(x).float()
                    z_all = [out[g] for g in range(len(active))]
            if z_t is not None and len(z_t) != len(z_all[0]):  # augmentation shortened the batch
                z_t = z_t[: len(z_all[0])]
            optimizer.zero_grad(set_to_none=True)
            infos = []
            for m, z_s in zip(active, z_all):
                tau_t, tau_s = m.method.temperatures()
                zt_m = z_t if m.use_kd else None
                losses = kd_loss(z_s, zt_m, target, tau_t, tau_s, m.alpha)  # alpha = 0: CE only
                infos.append(methods_mod.Step(
                    epoch=epoch, step=step, x=x, target=target, student_logits=z_s,
                    teacher_logits=zt_m, losses=losses, tau_t=tau_t, tau_s=tau_s,
                    lr=optimizer.param_groups[0]["lr"],
                ))
            if grouped is None:
                active[0].method.backward(infos[0])
            else:  # each member's gradient is its own loss's: the sum's derivative is 1 for each
                sum(info.losses["loss"] for info in infos).backward()
            # Loss terms as Python floats for the epoch sums, in one device->host copy (the NaN
            # check below needs the value anyway; per-term tensor sums cost ~30 us a step).
            flat = torch.stack([v.detach() for info in infos for v in info.losses.values()]).tolist()
            k = len(infos[0].losses)
            values = [dict(zip(info.losses, flat[i * k:(i + 1) * k])) for i, info in enumerate(infos)]
            entries = list(zip(active, infos, values))
            for m, _, v in entries:
                if not math.isfinite(v["loss"]):  # stopped before its optimizer step, as alone
                    stop(m, f"non-finite loss ({v['loss']}) at epoch {epoch}, step {step}")
            if len(active) < len(entries):
                entries = [e for e in entries if e[0] in active]
                grouped = _regroup(active, group, grouped)
            optimizer.step()
            scheduler.step()
            for m, info, v in entries:
                m.method.observe(info)
                b = len(x)
                for key, val in v.items():
                    m.sums[key] = m.sums.get(key, 0.0) + val * b
                m.seen += b
            step += 1
        if grouped is not None:
            grouped.sync()
        train_seconds = (time.perf_counter() - t0) / max(in_epoch, 1)  # each member's share
        for m in list(active):
            t1 = time.perf_counter()
            if every_epoch or epoch == c.epochs:
                with (recomputed_bn(m.model, x_tr, prepare, amp) if c.eval_bn == "recompute"
                      else contextlib.nullcontext()):
                    val_acc = accuracy(m.model, bundle.splits["val"], prepare, amp)
                    test_acc = accuracy(m.model, bundle.splits["test"], prepare, amp)
            else:
                val_acc = test_acc = None
            tt, ts = m.method.current()
            row = {
                "epoch": epoch,
                **{f"train_{k}": float(v) / max(m.seen, 1) for k, v in m.sums.items()},
                "val_acc": val_acc,
                "test_acc": test_acc,
                "tau_t": tt,
                "tau_s": ts,
                "lr": optimizer.param_groups[0]["lr"],
                "epoch_seconds": train_seconds + time.perf_counter() - t1,
                "samples_per_s": m.seen / max(train_seconds, 1e-9),
                **m.method.epoch_metrics(),
            }
            m.seconds += row["epoch_seconds"]
            if val_acc is not None and not all(math.isfinite(row[k]) for k in ("val_acc", "test_acc")):
                stop(m, f"non-finite accuracy at epoch {epoch}")
                grouped = _regroup(active, group, grouped)
                continue
            m.history.append(row)
            if val_acc is not None and val_acc > m.best["val_acc"]:
                m.best = {"val_acc": val_acc, "test_acc": test_acc, "epoch": epoch}
            if m.report is not None:
                m.report(row)
    if aug_teacher is not None:
        aug_teacher.finish(any(m.status == "ok" and len(m.history) == c.epochs for m in members))
    if len(members) == 1:  # one member: its seconds are the whole run's, set-up included
        members[0].seconds = time.perf_counter() - start
    return [_result(m, device) for m in members]


def _regroup(active: List[Member], group: bool, old=None):
    """The GroupedStudents of the active members (None: one member, or no grouping: its module)."""
    if old is not None:
        old.sync()
    if not group or len(active) < 2:
        return None
    from ..models.grouped import GroupedStudents

    return GroupedStudents([m.model for m in active])


def _result(m: Member, device) -> Dict[str, Any]:
    ok = m.status == "ok"
    last = m.history[-1] if m.history else {}
    tt, ts = m.method.current()
    return {
        "status": m.status,
        "error": m.error,
        "val_acc": last.get("val_acc") if ok else None,
        "test_acc": last.get("test_acc") if ok else None,
        "best_val_acc": m.best["val_acc"] if ok else None,
        "test_at_best_val": m.best.get("test_acc") if ok else None,
        "best_epoch": m.best.get("epoch"),
        "tau_t": tt,
        "tau_s": ts,
        "epochs_run": len(m.history),
        "seconds": m.seconds,
        "device": str(device),
        "history": m.history,
        "method_state": m.method.state_dict() if ok else None,
    }
