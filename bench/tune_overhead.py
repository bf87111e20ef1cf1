"""Ray Tune overhead: a 16-trial study through Ray Tune (2 concurrent trials) vs a plain loop.

Measured side by side in one run:
  * plain loop: the same 16 student trials, one after another in this process, 1 thread each,
    after the teacher is in the cache;
  * study: `hpo-kd run` on the same 16 trials (embedded Ray with 2 CPUs, 1 CPU per trial),
    the whole wall time: Ray start, the teacher trial (a cache hit), 16 trials, Ray stop.
Goal: study wall <= 1.10 * (plain loop / 2) + 15 s.

Usage: python bench/tune_overhead.py [--epochs 15] [--repeats 1]
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from hpo_kd.study import load_study  # noqa: E402
from hpo_kd.train import run_trial, train_teacher  # noqa: E402
from hpo_kd.tune import Runner  # noqa: E402

STUDY = """
name = "bench"
seeds = [0, 1]
[train]
epochs = {epochs}
teacher_epochs = 10
[[settings]]
dataset = "digits"
[methods.grid]
temperatures = [1, 1.5, 2, 3, 4, 6, 8, 16]
[resources]
cpus_per_trial = 1
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--repeats", type=int, default=1)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="hpo_kd_bench_")
    path = os.path.join(work, "bench.toml")
    with open(path, "w") as f:
        f.write(STUDY.format(epochs=a.epochs))
    study = load_study(path)
    trials = [t for t in study.plan() if t.kind == "trial"]
    assert len(trials) == 16
    cache = os.path.join(work, "cache")
    teacher_cfg = dict(next(t for t in study.plan() if t.kind == "teacher").config, cache_dir=cache)
    teacher_cfg.pop("method")
    train_teacher(teacher_cfg)

    plain, tuned = [], []
    for r in range(a.repeats):
        torch.set_num_threads(1)
        t0 = time.perf_counter()
        for t in trials:
            res = run_trial(dict(t.config, cache_dir=cache, device="cpu", threads=1))
            assert res["status"] == "ok"
        plain.append(time.perf_counter() - t0)

        runs = os.path.join(work, f"runs{r}")
        os.makedirs(os.path.join(runs, "bench", "teachers"))
        for f in os.listdir(os.path.join(cache, "teachers")):
            if f.endswith(".pt"):
                shutil.copy(os.path.join(cache, "teachers", f), os.path.join(runs, "bench", "teachers", f))
        t0 = time.perf_counter()
        out = Runner(study, runs_dir=runs, log=lambda m: None).run()
        tuned.append(time.perf_counter() - t0)
        assert out["ran"] == 17, out

    p, s = min(plain), min(tuned)
    budget = 1.10 * (p / 2) + 15
    per_trial = (s - p / 2) * 2 / len(trials)
    print(f"16 trials, {a.epochs} epochs each, digits cnn_wide->mlp, 2 CPUs")
    print(f"plain loop (sequential, 1 thread): {p:7.2f} s   (runs: {', '.join(f'{x:.2f}' for x in plain)})")
    print(f"Ray Tune study (2 concurrent):    {s:7.2f} s   (runs: {', '.join(f'{x:.2f}' for x in tuned)})")
    print(f"ideal (plain / 2):                 {p / 2:7.2f} s")
    print(f"ratio study / (plain / 2):         {s / (p / 2):7.2f}")
    print(f"implied overhead per trial:        {per_trial:7.2f} s of slot time")
    print(f"goal: study <= 1.10 * plain/2 + 15 s = {budget:.2f} s -> {'met' if s <= budget else 'NOT met'}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
