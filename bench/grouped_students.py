"""What training a seed's students together saves, and that it changes no result.

    .venv/bin/python bench/grouped_students.py [--study studies/transfer.toml] [--seed 0]
                                               [--epochs 5] [--repeats 3] [--cache-dir DIR]

The transfer study trains, per setting and seed, six students that see the same batches: the
grid's five temperatures and no-KD. `hpo_kd.train.run_trials` trains them as one
`GroupedStudents` model (hpo_kd/models/grouped.py), which is what a study's Ray Tune trial does
with up to `students_per_trial` of them. This script runs those six trials of one seed, for each
MNIST-1D setting of the study (its configs, `--epochs` epochs), both ways in one process,
alternating: six `run_trial` calls one after the other, and one `run_trials` call. It prints the
median wall seconds of each way over `--repeats` pairs, their ratio, and whether every result
(accuracies, best epoch, every per-epoch number but the timings) is the same both ways. Teachers
are read from (or trained into) `--cache-dir`: `runs/transfer` when `make transfer` has trained
them there, else `.cache/hpo_kd`. Single-threaded, as a study's trials are.
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import time

import torch

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
    ap.add_argument("--cache-dir", default="runs/transfer" if os.path.isdir("runs/transfer/teachers") else ".cache/hpo_kd")
    a = ap.parse_args()
    torch.set_num_threads(1)
    study = load_study(a.study)
    temps = study.methods["grid"]["pairs"]
    for s in study.settings:
        if not s.dataset.startswith("mnist1d"):
            continue
        base = dict(study.base_config(s, a.seed), threads=1, epochs=a.epochs, cache_dir=os.path.abspath(a.cache_dir))
        cfgs = [dict(base, method="fixed", tau_t=tt, tau_s=ts) for tt, ts in temps] + [dict(base, method="nokd")]
        run_trials(cfgs)  # warm-up: the teacher (trained if missing), the data, the teacher's logits
        alone, together, same = [], [], True
        for r in range(a.repeats):
            for way in (("alone", "together") if r % 2 == 0 else ("together", "alone")):
                t = time.perf_counter()
                res = [run_trial(c) for c in cfgs] if way == "alone" else run_trials(cfgs)
                (alone if way == "alone" else together).append(time.perf_counter() - t)
                if way == "alone":
                    ref = [_key(x) for x in res]
                else:
                    got = [_key(x) for x in res]
                    grouped = res[0]["grouped"]
            same = same and got == ref
        ma, mt = statistics.median(alone), statistics.median(together)
        print(f"{s.label}: {len(cfgs)} students, {a.epochs} epochs; one by one {ma:.2f} s "
              f"(runs {', '.join(f'{x:.2f}' for x in alone)}), together ({grouped} in a group) {mt:.2f} s "
              f"(runs {', '.join(f'{x:.2f}' for x in together)}): {ma / mt:.2f} x; "
              f"results {'the same' if same else 'DIFFERENT'}", flush=True)


if __name__ == "__main__":
    main()
