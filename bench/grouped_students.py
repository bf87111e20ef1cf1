"""What training a seed's students together saves, and that it changes no result.

    .venv/bin/python bench/grouped_students.py [--study studies/transfer.toml] [--seed 0]
                                               [--epochs 5] [--repeats 3] [--cache-dir DIR]

The comparison and transfer studies train, per setting and seed, students that see the same
batches; among them the grid's five temperatures and no-KD, the six this script times.
`hpo_kd.train.run_trials` trains them as one `GroupedStudents` model (hpo_kd/models/grouped.py),
which is what a study's Ray Tune trial does with up to `students_per_trial` of them. This script
runs those six trials of one seed, for each MNIST-1D setting of the study on its whole training
set with student `cnn_bn` (its configs, `--epochs` epochs), three ways in one process,
alternating: six `run_trial` calls one after the other; one `run_trials` call (fused kernels where
they are exact on this machine, which the line names); and one `run_trials` call with the members
on their own modules (what a machine whose fused kernels are not exact gets). It prints the median
wall seconds of each way over `--repeats` rounds, the ratios, and whether every result (accuracies,
best epoch, every per-epoch number but the timings) is the same all three ways. Teachers are read
from (or trained into) `--cache-dir`: `runs/transfer` when `make transfer` has trained them there,
else `.cache/hpo_kd`. Single-threaded, as a study's trials are.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time

import torch

from hpo_kd.models import grouped as grouped_mod
from hpo_kd.study import load_study
from hpo_kd.train import run_trial, run_trials

TIMING = {"epoch_seconds", "samples_per_s", "seconds"}


def _key(r):
    def norm(v):
        return "nan" if isinstance(v, float) and math.isnan(v) else v

    hist = [tuple((k, norm(v)) for k, v in sorted(row.items()) if k not in TIMING) for row in r["history"]]
    return (r["status"], r["val_acc"], r["test_acc"], r["best_val_acc"], r["best_epoch"], tuple(hist))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--study", default="studies/transfer.toml")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--cache-dir", default="runs/transfer" if os.path.isdir("runs/transfer/teachers") else ".cache/hpo_kd"
    )
    a = ap.parse_args()
    torch.set_num_threads(1)
    print(grouped_mod.machine_line(), flush=True)
    study = load_study(a.study)
    temps = study.methods["grid"]["pairs"]
    for s in study.settings:
        if not s.dataset.startswith("mnist1d") or s.fraction != 1 or s.student != "cnn_bn":
            continue
        base = dict(study.base_config(s, a.seed), threads=1, epochs=a.epochs, cache_dir=os.path.abspath(a.cache_dir))
        cfgs = [dict(base, method="fixed", tau_t=tt, tau_s=ts) for tt, ts in temps] + [dict(base, method="nokd")]
        run_trials(cfgs)  # warm-up: the teacher (trained if missing), the data, the teacher's logits
        times = {"alone": [], "together": [], "own": []}
        same, kernels, results = True, None, {}
        for r in range(a.repeats):
            ways = ["alone", "together", "own"]
            for way in ways if r % 2 == 0 else ways[::-1]:
                t = time.perf_counter()
                res = run_ways[way](cfgs)
                times[way].append(time.perf_counter() - t)
                got = [_key(x) for x in res]
                if way == "alone":
                    ref = got
                else:
                    results[way] = got
                if way == "together":
                    kernels, grouped = res[0]["group_kernels"], res[0]["grouped"]
            same = same and results["together"] == ref and results["own"] == ref
        med = {k: statistics.median(v) for k, v in times.items()}
        print(
            f"{s.label}: {len(cfgs)} students, {a.epochs} epochs; one by one {med['alone']:.2f} s; "
            f"together ({grouped} in a group, {kernels} kernels) {med['together']:.2f} s: "
            f"{med['alone'] / med['together']:.2f} x; on own modules {med['own']:.2f} s: "
            f"{med['alone'] / med['own']:.2f} x; results {'the same' if same else 'DIFFERENT'}",
            flush=True,
        )


def _own_modules(cfgs):
    """run_trials as where the fused kernels are not exact: each member on its own modules."""
    check = grouped_mod.bitwise_check
    grouped_mod.bitwise_check = lambda *a, **k: "forced by the benchmark"
    try:
        return run_trials(cfgs)
    finally:
        grouped_mod.bitwise_check = check


run_ways = {"alone": lambda cfgs: [run_trial(c) for c in cfgs], "together": run_trials, "own": _own_modules}

if __name__ == "__main__":
    main()
