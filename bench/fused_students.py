"""How much would training a seed's grid students as one batched model save? (not built)

    .venv/bin/python bench/fused_students.py [--students 6] [--steps 500] [--repeats 5]

The transfer study trains, per setting and seed, six students that see the same batches (the
grid's five temperatures and no-KD) as six trials. Their steps are framework overhead, so one
model that holds all six (torch.func.stack_module_state + vmap over functional_call, the batch
shared) might take far less than six steps. This times, single-threaded, a training step of the
study's student (cnn_bn on random MNIST-1D-shaped signals, batch 64, SGD with momentum and
weight decay; the values do not change the time of a step) alone, and of
`--students` of them batched, each step with its loss, backward and optimizer step. Runs
alternate; each run's time is the mean step over `--steps` steps after a warm-up, and the
printed figures are medians over `--repeats` runs.
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state, vmap

from hpo_kd import models

BATCH, LENGTH, CLASSES = 64, 40, 10


def single(x, y):
    m = models.create("cnn_bn", (1, LENGTH), CLASSES).train()
    opt = torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)

    def step():
        loss = F.cross_entropy(m(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def batched(x, y, g):
    nets = [models.create("cnn_bn", (1, LENGTH), CLASSES).train() for _ in range(g)]
    params, buffers = stack_module_state(nets)
    params = {k: v.detach().requires_grad_() for k, v in params.items()}
    base = copy.deepcopy(nets[0]).to("meta")
    opt = torch.optim.SGD(list(params.values()), lr=0.05, momentum=0.9, weight_decay=5e-4)

    def forward(p, b, inp):
        return functional_call(base, (p, b), (inp,))

    def step():
        out = vmap(forward, in_dims=(0, 0, None))(params, buffers, x)  # (g, batch, classes)
        # the sum of the students' mean losses: each student's gradient is its own loss's
        loss = F.cross_entropy(out.reshape(-1, CLASSES), y.repeat(g), reduction="sum") / len(y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def timed(step, steps: int) -> float:
    for _ in range(50):
        step()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - t) / steps * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--students", type=int, default=6)
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    x, y = torch.randn(BATCH, 1, LENGTH), torch.randint(0, CLASSES, (BATCH,))
    one, many = single(x, y), batched(x, y, a.students)
    t1, tg = [], []
    for r in range(a.repeats):
        for label in (("one", "many") if r % 2 == 0 else ("many", "one")):
            (t1 if label == "one" else tg).append(timed(one if label == "one" else many, a.steps))
    m1, mg = statistics.median(t1), statistics.median(tg)
    print(f"one student: {m1:.2f} ms a step (runs {', '.join(f'{t:.2f}' for t in t1)})")
    print(f"{a.students} students batched: {mg:.2f} ms a step (runs {', '.join(f'{t:.2f}' for t in tg)})")
    print(f"speed-up over {a.students} separate steps: {a.students * m1 / mg:.2f} x")


if __name__ == "__main__":
    main()
