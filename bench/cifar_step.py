"""Trainer steps/s against a bare PyTorch loop, resnet32x4 -> resnet8x4 on CIFAR-shaped tensors.

    .venv/bin/python bench/cifar_step.py [--steps 8] [--repeats 3] [--batch 64] [--device auto]
                                         [--precision fp32] [--threads N]

Both sides do the same work per step, on the same device, with the same frozen teacher: a batch of
uint8 images normalised and augmented (crop + flip, the CIFAR recipe, by hpo_kd's batch
augmenter), the teacher's forward, the student's forward and backward on the KD loss at tau = 4,
an SGD step and a learning-rate step. The trainer side is hpo_kd.train.fit, timed by its
per-epoch `samples_per_s` (the step loop only, not the val/test evaluation); the bare side is a
plain loop timed the same way. Each run trains two epochs and keeps the second (the first warms
up); the runs alternate and each side's figure is the median over repeats. Goal: trainer / bare
>= 0.95.

With a GPU it then prints images/s of the trainer for fp32 and bf16, and for 1, 2 and 4 trainer
processes sharing the GPU at once (as Ray's 0.25-GPU trials do): a user with a GPU runs this to
see what the fast path gives on theirs.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import time

import torch
import torch.nn.functional as F

from hpo_kd import methods, models
from hpo_kd.data import CIFAR_STATS, DataBundle, uint8_normalizer
from hpo_kd.data.augment import make_augmenter
from hpo_kd.train import TrialConfig, as_input, autocast, fit, gpu_ready, make_scheduler, on_device, pick_device

TEACHER, STUDENT, CLASSES, TAU, ALPHA = "resnet32x4", "resnet8x4", 100, 4.0, 0.9


def bundle(n_train: int, device) -> DataBundle:
    g = torch.Generator().manual_seed(0)

    def split(n):
        return (
            torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g),
            torch.randint(0, CLASSES, (n,), generator=g),
        )

    mean, std = CIFAR_STATS["cifar100"]
    prepare = uint8_normalizer(mean, std)
    black = tuple(prepare(torch.zeros(1, 3, 1, 1, dtype=torch.uint8)).flatten().tolist())
    b = DataBundle(
        name="cifar-shaped",
        kind="image",
        input_shape=(3, 32, 32),
        num_classes=CLASSES,
        splits={"train": split(n_train), "meta": split(64), "val": split(64), "test": split(64)},
        augmenter=make_augmenter("weak", "image", CLASSES, hflip=True, size=32, fill=black),
        key={"bench": n_train},
        prepare=prepare,
    )
    return on_device(b, device)


def teacher(device):
    torch.manual_seed(1)
    t = models.create(TEACHER, (3, 32, 32), CLASSES)
    t = models.fold_batchnorm(gpu_ready(t, device, True).eval())
    for p in t.parameters():
        p.requires_grad_(False)
    return t


def config(batch: int, precision: str, device) -> TrialConfig:
    return TrialConfig(
        dataset="cifar100",
        teacher=TEACHER,
        student=STUDENT,
        epochs=2,
        batch_size=batch,
        lr=0.05,
        warmup_epochs=0,
        precision=precision,
        device=device.type,
    ).resolved()


def run_trainer(b, t, c, device) -> float:
    torch.manual_seed(2)
    student = models.create(STUDENT, (3, 32, 32), CLASSES)
    r = fit(student, b, methods.create("fixed", tau_t=TAU, tau_s=TAU), t, c, device, None)
    return r["history"][1]["samples_per_s"]


def run_bare(b, t, c, device) -> float:
    torch.manual_seed(2)
    student = gpu_ready(models.create(STUDENT, (3, 32, 32), CLASSES), device, True).train()
    x_tr, y_tr = b.splits["train"]
    n = len(y_tr)
    steps = n // c.batch_size
    opt = torch.optim.SGD(student.parameters(), lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay)
    sched = make_scheduler(opt, 2 * steps, 0, "cosine")
    gen = torch.Generator().manual_seed(c.seed)
    rate = 0.0
    for epoch in range(2):
        perm = torch.randperm(n, generator=gen)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for i in range(steps):
            idx = perm[i * c.batch_size : (i + 1) * c.batch_size].to(device)
            x, y = b.augmenter(b.prepare(x_tr[idx]), y_tr[idx], gen)
            x = as_input(x)
            with autocast(device, c.precision):
                with torch.no_grad():
                    z_t = t(x).float()
                z_s = student(x).float()
            kl = F.kl_div(
                F.log_softmax(z_s / TAU, -1), F.log_softmax(z_t / TAU, -1), reduction="batchmean", log_target=True
            )
            loss = ALPHA * TAU * TAU * kl + (1 - ALPHA) * F.cross_entropy(z_s, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss.item()  # the trainer reads its loss every step (NaN check); so does this loop
        if device.type == "cuda":
            torch.cuda.synchronize()
        rate = steps * c.batch_size / (time.perf_counter() - t0)
    return rate


def _shared(args):
    """One of several processes sharing the GPU: its trainer images/s."""
    batch, steps, precision, start = args
    device = torch.device("cuda")
    b, t = bundle(batch * steps, device), teacher(device)
    start.wait()
    return run_trainer(b, t, config(batch, precision, device), device)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=8, help="steps per epoch (default 8; more on a GPU)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    device = pick_device(a.device)
    b, t = bundle(a.batch * a.steps, device), teacher(device)
    c = config(a.batch, a.precision, device)
    print(
        f"{TEACHER} -> {STUDENT}, batch {a.batch}, {a.steps} steps per epoch, {a.precision}, on {device} "
        f"({torch.get_num_threads()} threads), {a.repeats} repeats, alternating"
    )
    rates = {"trainer": [], "bare": []}
    for r in range(a.repeats):
        order = ("trainer", "bare") if r % 2 == 0 else ("bare", "trainer")
        for side in order:
            rates[side].append((run_trainer if side == "trainer" else run_bare)(b, t, c, device))
    med = {k: statistics.median(v) for k, v in rates.items()}
    for k, v in rates.items():
        print(f"  {k:8s} images/s: " + " / ".join(f"{x:.1f}" for x in sorted(v)) + f"  (median {med[k]:.1f})")
    ratio = med["trainer"] / med["bare"]
    print(f"trainer / bare = {ratio:.3f}  (goal >= 0.95: {'met' if ratio >= 0.95 else 'NOT met'})")
    if device.type != "cuda":
        print("no GPU: the fp32/bf16 and shared-GPU figures need one")
        return 0
    steps = max(a.steps, 50)
    for prec in ("fp32", "bf16"):
        bb = bundle(a.batch * steps, device)
        print(f"trainer {prec}: {run_trainer(bb, t, config(a.batch, prec, device), device):.0f} images/s")
    ctx = mp.get_context("spawn")
    for n in (1, 2, 4):
        with ctx.Manager() as m:
            start = m.Event()
            with ctx.Pool(n) as pool:
                res = pool.map_async(_shared, [(a.batch, steps, "bf16", start)] * n)
                time.sleep(2.0 + 3.0 * n)  # let every process build its models before they start together
                start.set()
                rs = res.get()
        print(
            f"{n} trainer(s) sharing the GPU (bf16): {sum(rs):.0f} images/s in all, "
            + ", ".join(f"{x:.0f}" for x in rs)
            + " each"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
