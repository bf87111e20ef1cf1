"""Training-loop overhead: hpo_kd.train.fit vs a bare PyTorch loop doing the same work.

    .venv/bin/python bench/trainer_overhead.py [--repeats 5] [--epochs 4] [--threads 1]

Both sides train the default digits student (`mlp`) with fixed-temperature KD from the default
teacher (`cnn_wide`), batch size 64, SGD (momentum 0.9, weight decay 5e-4), the same per-step
learning-rate schedule (linear warm-up, then cosine), and teacher logits computed once for the
whole training split before training (as the trainer does with augment='none').

Fairness: only training steps are timed.
- fit reports `samples_per_s` per epoch = samples seen / time of the epoch's step loop; the
  val/test evaluation that follows each epoch is outside that window, and so is the per-trial
  setup (teacher logits, optimizer). steps/s = samples_per_s / batch size (ragged last batches
  are dropped, so every step has exactly 64 samples).
- the bare loop times each epoch's step loop the same way (time.perf_counter around the loop).
- the two run as interleaved pairs (fit then bare, bare then fit, ...) on the same data
  tensors, each run with a fresh student and optimizer; the first epoch of every run is dropped
  as warm-up and a run's rate is the median of its other epochs.
The ratio fit/bare is the share of the bare loop's speed the trainer keeps (goal >= 0.95): the
median over pairs of fit/bare (a pair runs back to back, so background load mostly cancels),
and, as a cross-check, best fit run / best bare run.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import math
import pstats
import statistics
import tempfile
import time

import torch

from hpo_kd import data, methods, models
from hpo_kd.kd import kd_loss
from hpo_kd.train import TrialConfig, fit

BATCH = 64


def make_setup():
    bundle = data.load("digits", seed=0)
    torch.manual_seed(0)
    teacher = models.create("cnn_wide", bundle.input_shape, bundle.num_classes).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return bundle, teacher


def config(epochs: int, cache: str) -> TrialConfig:
    return TrialConfig(
        dataset="digits", epochs=epochs, batch_size=BATCH, device="cpu", tau_t=4.0, tau_s=4.0, cache_dir=cache
    ).resolved()


def run_fit(bundle, teacher, c: TrialConfig, seed: int):
    torch.manual_seed(seed)
    student = models.create(c.student, bundle.input_shape, bundle.num_classes)
    method = methods.create("fixed", tau_t=c.tau_t, tau_s=c.tau_s)
    out = fit(student, bundle, method, teacher, c, torch.device("cpu"), None)
    assert out["status"] == "ok"
    return [row["samples_per_s"] / BATCH for row in out["history"]]


def run_bare(bundle, teacher, c: TrialConfig, seed: int):
    """The same training, written as a plain loop."""
    torch.manual_seed(seed)
    x_tr, y_tr = bundle.splits["train"]
    student = models.create(c.student, bundle.input_shape, bundle.num_classes).train()
    with torch.no_grad():
        teacher_logits = teacher(x_tr)  # once, like the trainer's cache
    opt = torch.optim.SGD(student.parameters(), lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay)
    n = len(y_tr)
    steps_per_epoch = n // BATCH
    total = c.epochs * steps_per_epoch
    warm = min(c.warmup_epochs * steps_per_epoch, total - 1)
    sched = torch.optim.lr_scheduler.SequentialLR(
        opt,
        [
            torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.01, total_iters=warm),
            torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(total - warm, 1)),
        ],
        milestones=[warm],
    )
    gen = torch.Generator().manual_seed(seed)
    rates = []
    for _ in range(c.epochs):
        t0 = time.perf_counter()
        perm = torch.randperm(n, generator=gen)
        running = 0.0
        for i in range(0, n - n % BATCH, BATCH):
            idx = perm[i : i + BATCH]
            x, y, z_t = x_tr[idx], y_tr[idx], teacher_logits[idx]
            loss = kd_loss(student(x), z_t, y, c.tau_t, c.tau_s, c.alpha)["loss"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            running += loss.item()  # a loop that logs its loss reads it back, like fit's NaN check
        seconds = time.perf_counter() - t0
        assert math.isfinite(running)
        rates.append(steps_per_epoch / seconds)
    return rates


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=12)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument(
        "--threads", type=int, default=1, help="torch intra-op threads (1: steadier on a shared 2-core box)"
    )
    ap.add_argument("--profile", action="store_true", help="always print the cProfile of fit")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    bundle, teacher = make_setup()
    with tempfile.TemporaryDirectory() as cache:
        c = config(a.epochs, cache)
        run_fit(bundle, teacher, config(1, cache), 99)  # warm-up of both paths
        run_bare(bundle, teacher, config(1, cache), 99)
        fit_rates, bare_rates, pair_ratios = [], [], []
        for r in range(a.repeats):
            # Alternate which side goes first; a pair runs back to back, so it sees the same load.
            order = (("fit", run_fit), ("bare", run_bare)) if r % 2 == 0 else (("bare", run_bare), ("fit", run_fit))
            pair = {}
            for name, fn in order:
                pair[name] = statistics.median(fn(bundle, teacher, c, r)[1:])  # drop the warm-up epoch
            fit_rates.append(pair["fit"])
            bare_rates.append(pair["bare"])
            pair_ratios.append(pair["fit"] / pair["bare"])
        f, b = statistics.median(fit_rates), statistics.median(bare_rates)
        ratio = statistics.median(pair_ratios)
        best = max(fit_rates) / max(bare_rates)
        print(
            f"digits, teacher cnn_wide (logits cached), student mlp, batch {BATCH}, fixed tau, "
            f"torch threads {torch.get_num_threads()}, {a.repeats} interleaved pairs x {a.epochs - 1} timed epochs"
        )
        print(f"fit (hpo_kd.train) : {f:8.1f} steps/s  (median of runs; best {max(fit_rates):.1f})")
        print(f"bare PyTorch loop  : {b:8.1f} steps/s  (median of runs; best {max(bare_rates):.1f})")
        print(
            f"per step (best)    : fit {1e6 / max(fit_rates):.1f} us, bare {1e6 / max(bare_rates):.1f} us, "
            f"overhead {1e6 / max(fit_rates) - 1e6 / max(bare_rates):+.1f} us"
        )
        print(f"pair ratios        : {' '.join(f'{x:.3f}' for x in pair_ratios)}")
        print(
            f"ratio fit / bare   : {ratio:.3f} median of pairs, {best:.3f} best vs best  "
            f"(goal >= 0.95: {'met' if ratio >= 0.95 else 'MISSED'})"
        )
        if ratio < 0.95 or a.profile:
            prof = cProfile.Profile()
            prof.enable()
            run_fit(bundle, teacher, c, 0)
            prof.disable()
            s = io.StringIO()
            pstats.Stats(prof, stream=s).sort_stats("tottime").print_stats(15)
            print("\ncProfile of fit (by own time):")
            print(s.getvalue())


if __name__ == "__main__":
    main()
