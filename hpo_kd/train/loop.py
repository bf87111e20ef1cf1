"""The trainer: students (members) of one setting and seed trained in lockstep on the same batches.

`Trainer(members, ...)` sets a run up; `run(start, stop, on_epoch)` trains its epochs; `finish()`
gives every member's result; `state`/`load_state` save and restore a one-member run between
epochs (PBT). `fit` is a one-member run in one call (a teacher's)."""

from __future__ import annotations

import contextlib
import functools
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import torch

from .. import data as data_mod
from .. import methods as methods_mod
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
    what its training produced (filled in by the `Trainer`)."""

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
    info: Dict[str, Any] = field(default_factory=dict)  # added to its result as they are (teacher, grouping)


def fit(
    model,
    bundle,
    method,
    teacher,
    c: TrialConfig,
    device,
    report,
    logits_key: Optional[str] = None,
    every_epoch: bool = True,
) -> Dict[str, Any]:
    """Train `model` on `bundle` with `method` (KD from `teacher` if the method uses it).
    `logits_key` names the teacher and data, so that the teacher's logits are computed once per
    process. `every_epoch=False`: val and test accuracy after the last epoch only (a teacher keeps
    its last weights and records only their accuracy; evaluating leaves training unchanged)."""
    trainer = Trainer([Member(model, method, report)], bundle, teacher, c, device, logits_key, every_epoch)
    trainer.run()
    return trainer.finish()[0]


def _meta_batches(bundle, c: TrialConfig, device, augmented: bool = False):
    """Batches of the meta split, forever; `augmented`: through the trial's augmentation, with
    its own generators (Mixup's NumPy draws included), so the training batches stay as they are.
    Only a method that asks for meta batches pays for the copy."""
    prepare, augment = bundle.prepare, bundle.augmenter
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


class Trainer:
    """Members trained in lockstep on the same batches (same seed, same augmentation draws, same
    teacher outputs), the step's shared work (batch, augmentation, teacher, learning rate) done
    once: what they share (the training split, its batches and augmentation, the teacher's logits,
    one optimizer and schedule), the members still training (`active`) and, in a group, their
    `GroupedStudents` model (`grouped`). One member is one student trained alone: the plain
    trial, and a PBT member. `group=True`: several members whose forward and backward run as one
    `GroupedStudents` model, which gives each member bitwise the numbers it gets alone (see
    hpo_kd.models.grouped): `fused` convolutions where the caller's check found them exact here,
    else each member's own modules. A member whose loss or accuracy turns non-finite stops as
    `diverged`; the others go on.

    `logits_key` names the teacher and data, so that the teacher's logits are computed once per
    process; `every_epoch=False`: val and test accuracy after the last epoch only."""

    def __init__(
        self,
        members: List[Member],
        bundle,
        teacher,
        c: TrialConfig,
        device,
        logits_key: Optional[str] = None,
        every_epoch: bool = True,
        group: bool = False,
        fused: bool = True,
    ):
        assert group or len(members) == 1
        image = len(bundle.input_shape) == 3
        for m in members:
            m.model = gpu_ready(m.model, device, image).train()
            m.use_kd = m.method.uses_kd and teacher is not None
            m.alpha = c.alpha if m.use_kd else 0.0
        self.members, self.bundle, self.c, self.device = members, bundle, c, device
        self.every_epoch, self.group, self.fused = every_epoch, group, fused
        self.x_tr, self.y_tr = (t.to(device) for t in bundle.splits["train"])
        self.prepare, self.augment = bundle.prepare, bundle.augmenter
        self.steps_per_epoch = max(1, len(self.y_tr) // c.batch_size)  # a ragged last batch is dropped (see _batches)
        self.gen = torch.Generator().manual_seed(c.seed)
        self.cached_logits, self.aug_teacher = None, None
        if any(m.use_kd for m in members):
            self.cached_logits, self.aug_teacher = teacher_outputs(
                teacher, bundle, self.x_tr, c, self.steps_per_epoch, logits_key, device
            )
        self.optimizer, self.scheduler = self._optimizer()
        meta_batches = functools.partial(_meta_batches, bundle, c, device)
        for m in members:
            m.method.setup(
                methods_mod.TrialContext(
                    model=m.model,
                    epochs=c.epochs,
                    steps_per_epoch=self.steps_per_epoch,
                    alpha=m.alpha,
                    device=device,
                    meta_batches=meta_batches,
                    lr=self.lr,
                    precision=c.precision,
                )
            )
        self.active = list(members)
        self.grouped = None
        self._regroup()
        self.start = time.perf_counter()
        self.steps = 0

    def run(self, start: int = 0, stop: Optional[int] = None, on_epoch: Optional[Callable[[int], None]] = None) -> None:
        """Train epochs start+1 .. stop (default: the last), every active member on each batch;
        `on_epoch(epoch)` after each epoch (each member's `report` gets its row before)."""
        stop = self.c.epochs if stop is None else stop
        for epoch in range(start + 1, stop + 1):
            if not self.active:
                break
            t0 = time.perf_counter()
            in_epoch = self.start_epoch(epoch)
            for idx, xb in self.epoch_batches():
                if not self.active:
                    break
                self.step(epoch, idx, xb)
            self.end_epoch(epoch, t0, in_epoch)
            if on_epoch is not None:
                on_epoch(epoch)

    def state(self, epoch: int) -> Dict[str, Any]:
        """A one-member run's state after `epoch`: the member's weights, the optimiser and LR
        schedule, the method's state, the batch-order generator (and NumPy's, for Mixup), the
        steps, and the curve so far. `load_state` in another run goes on from there bitwise."""
        (m,) = self.members
        return {
            "model": m.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "method": m.method.state_dict(),
            "gen": self.gen.get_state(),
            "numpy": np.random.get_state(),
            "steps": self.steps,
            "epoch": epoch,
            "history": list(m.history),
            "best": dict(m.best),
            "seconds": m.seconds,
        }

    def load_state(self, s: Dict[str, Any]) -> int:
        """Restore `state`'s content into this (fresh) one-member run; the epoch to go on after."""
        (m,) = self.members
        m.model.load_state_dict(s["model"])
        self.optimizer.load_state_dict(s["optimizer"])
        self.scheduler.load_state_dict(s["scheduler"])
        m.method.load_state_dict(s["method"])
        self.gen.set_state(s["gen"])
        np.random.set_state(s["numpy"])
        self.steps = s["steps"]
        m.history, m.best, m.seconds = list(s["history"]), dict(s["best"]), s["seconds"]
        return int(s["epoch"])

    def _optimizer(self):
        """One optimizer over every member's parameters (its update is per tensor, so each member's
        parameters move exactly as under an optimizer of their own) and its per-step schedule."""
        c, per_epoch = self.c, self.steps_per_epoch
        optimizer = make_optimizer(
            c, [m.model for m in self.members], [p for m in self.members for p in m.method.parameters()]
        )
        total = c.epochs * per_epoch
        scheduler = make_scheduler(
            optimizer,
            total,
            min(c.warmup_epochs * per_epoch, total - 1),
            c.lr_schedule,
            tuple(s * per_epoch for s in milestones(c)),
            c.lr_decay,
        )
        return optimizer, scheduler

    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def _regroup(self) -> None:
        """The GroupedStudents of the active members (None: one member, or no grouping: its module)."""
        if self.grouped is not None:
            self.grouped.sync()
        self.grouped = None
        if self.group and len(self.active) >= 2:
            from ..models.grouped import GroupedStudents

            self.grouped = GroupedStudents([m.model for m in self.active], self.fused)

    def stop(self, m: Member, message: str) -> None:
        """`m` diverged: it leaves the active members (the caller regroups them)."""
        m.status, m.error = "diverged", message
        for p in list(m.model.parameters()) + list(m.method.parameters()):
            p.grad = None  # the optimizer skips a parameter without a gradient
        self.active.remove(m)

    # ------------------------------------------------------------------ one epoch

    def start_epoch(self, epoch: int) -> int:
        """How many members start the epoch."""
        for m in self.active:
            m.method.start_epoch(epoch)
            m.sums, m.seen = {}, 0
        return len(self.active)

    def epoch_batches(self):
        """(rows, batch) of the epoch. The batches are drawn up front (the same draws as one by
        one), so that a split read from disk can decode ahead of the loop."""
        order = list(_batches(len(self.y_tr), self.c.batch_size, self.gen))
        return zip(order, data_mod.take(self.x_tr, order, self.device))

    def step(self, epoch: int, idx: torch.Tensor, xb) -> None:
        """One optimizer step of every active member on the batch `xb` (the training rows `idx`)."""
        x, target, z_t = self._batch(idx, xb)
        z_t, z_all = self._forward(x, z_t)
        self.optimizer.zero_grad(set_to_none=True)
        infos = [self._loss(m, epoch, x, target, z_s, z_t) for m, z_s in zip(self.active, z_all)]
        if self.grouped is None:
            self.active[0].method.backward(infos[0])
        else:  # each member's gradient is its own loss's: the sum's derivative is 1 for each
            sum(info.losses["loss"] for info in infos).backward()
        entries = self._stop_diverged(epoch, infos, _loss_values(infos))
        self.optimizer.step()
        self.scheduler.step()
        for m, info, values in entries:
            m.method.observe(info)
            b = len(x)
            for key, val in values.items():
                m.sums[key] = m.sums.get(key, 0.0) + val * b
            m.seen += b
        self.steps += 1

    def _batch(self, idx: torch.Tensor, xb):
        """The augmented input, its targets and the teacher's cached logits of its rows (or None)."""
        x, y = self.prepare(xb), self.y_tr[idx]
        z_t = None
        if self.cached_logits is not None:
            z_t = self.cached_logits[idx]
        x, target = self.augment(x, y, self.gen)
        return as_input(x), target, z_t

    def _forward(self, x: torch.Tensor, z_t: Optional[torch.Tensor]):
        """The teacher's logits (cached, or of this batch) and every active member's."""
        with autocast(self.device, self.c.precision):  # the forward passes; the loss is fp32
            if self.aug_teacher is not None:
                z_t = self.aug_teacher(x)
            if self.grouped is None:  # one member: its own module
                z_all = [self.active[0].model(x).float()]
            else:
                out = self.grouped(x).float()
                z_all = [out[g] for g in range(len(self.active))]
        if z_t is not None and len(z_t) != len(z_all[0]):  # augmentation shortened the batch
            z_t = z_t[: len(z_all[0])]
        return z_t, z_all

    def _loss(self, m: Member, epoch: int, x, target, z_s, z_t) -> "methods_mod.Step":
        """Member `m`'s losses at its temperatures, as the step its method observes."""
        tau_t, tau_s = m.method.temperatures()
        zt_m = z_t if m.use_kd else None
        losses = m.method.loss(z_s, zt_m, target, tau_t, tau_s, m.alpha)  # alpha = 0: CE only
        return methods_mod.Step(
            epoch=epoch,
            step=self.steps,
            x=x,
            target=target,
            student_logits=z_s,
            teacher_logits=zt_m,
            losses=losses,
            tau_t=tau_t,
            tau_s=tau_s,
            lr=self.lr(),
        )

    def _stop_diverged(self, epoch: int, infos, values) -> List[tuple]:
        """(member, step, loss values) of the members that go on: one whose loss is not finite
        stops before its optimizer step, as it would alone."""
        entries = list(zip(self.active, infos, values))
        for m, _, v in entries:
            if not math.isfinite(v["loss"]):
                self.stop(m, f"non-finite loss ({v['loss']}) at epoch {epoch}, step {self.steps}")
        if len(self.active) < len(entries):
            entries = [e for e in entries if e[0] in self.active]
            self._regroup()
        return entries

    def end_epoch(self, epoch: int, t0: float, in_epoch: int) -> None:
        """Every active member's row of the epoch (evaluated every epoch, or after the last)."""
        if self.grouped is not None:
            self.grouped.sync()
        train_seconds = (time.perf_counter() - t0) / max(in_epoch, 1)  # each member's share
        for m in list(self.active):
            self._record(m, epoch, train_seconds)

    def _record(self, m: Member, epoch: int, train_seconds: float) -> None:
        t1 = time.perf_counter()
        val_acc, test_acc = self._accuracies(m, epoch)
        tt, ts = m.method.current()
        row = {
            "epoch": epoch,
            **{f"train_{k}": float(v) / max(m.seen, 1) for k, v in m.sums.items()},
            "val_acc": val_acc,
            "test_acc": test_acc,
            "tau_t": tt,
            "tau_s": ts,
            "lr": self.lr(),
            "epoch_seconds": train_seconds + time.perf_counter() - t1,
            "samples_per_s": m.seen / max(train_seconds, 1e-9),
            **m.method.epoch_metrics(),
        }
        m.seconds += row["epoch_seconds"]
        if val_acc is not None and not all(math.isfinite(row[k]) for k in ("val_acc", "test_acc")):
            self.stop(m, f"non-finite accuracy at epoch {epoch}")
            self._regroup()
            return
        m.history.append(row)
        if val_acc is not None and val_acc > m.best["val_acc"]:
            m.best = {"val_acc": val_acc, "test_acc": test_acc, "epoch": epoch}
        if m.report is not None:
            m.report(row)

    def _accuracies(self, m: Member, epoch: int):
        """`m`'s val and test accuracy (None, None: not evaluated this epoch)."""
        c = self.c
        if not (self.every_epoch or epoch == c.epochs):
            return None, None
        with (
            recomputed_bn(m.model, self.x_tr, self.prepare, c.precision)
            if c.eval_bn == "recompute"
            else contextlib.nullcontext()
        ):
            return (
                accuracy(m.model, self.bundle.splits["val"], self.prepare, c.precision),
                accuracy(m.model, self.bundle.splits["test"], self.prepare, c.precision),
            )

    def finish(self) -> List[Dict[str, Any]]:
        """Every member's result."""
        if self.aug_teacher is not None:
            self.aug_teacher.finish(any(m.status == "ok" and len(m.history) == self.c.epochs for m in self.members))
        if len(self.members) == 1:  # one member: its seconds are the whole run's, set-up included
            self.members[0].seconds = time.perf_counter() - self.start
        return [_result(m, self.device) for m in self.members]


def _loss_values(infos) -> List[Dict[str, float]]:
    """Each step's loss terms as Python floats for the epoch sums, in one device->host copy (the
    NaN check needs the value anyway; per-term tensor sums cost ~30 us a step)."""
    flat = torch.stack([v.detach() for info in infos for v in info.losses.values()]).tolist()
    k = len(infos[0].losses)
    return [dict(zip(info.losses, flat[i * k : (i + 1) * k])) for i, info in enumerate(infos)]


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
        **m.info,
    }
