"""What the cheaper ways to train the MNIST-1D students of the comparison and transfer studies (the
same [train]) would cost their evidence.

    .venv/bin/python bench/study_cuts.py [--study studies/transfer.toml] [--seeds 0,...,7]
                                         [--workers 2] [--cache-dir DIR]

`make compare` and `make transfer` spend their time in trials whose steps are framework overhead (README), so only
fewer steps make it much cheaper. This script measures two ways to take fewer steps against the
study's own training, on the study's MNIST-1D setting (its whole training set, student `cnn_bn`)
with and without strong augmentation:

  study          the study's [train] (30 epochs, batch 64, lr 0.1);
  16 epochs      the students trained for 16 epochs (about half the steps);
  batch 128      the students at batch 128 and lr 0.2 (half the steps; the lr scaled with the batch).

For each, the no-KD student and the fixed-temperature student at the grid's temperature with the
best mean val accuracy in the shipped report (tau 4 without augmentation, tau 1 with strong),
for every seed of the study, each seed with its own split and teacher as in the study (the trial
configs come from the study file). Teachers are read from (or trained into) `--cache-dir`: by
default `runs/transfer` when a `make transfer` run has trained them there, else `.cache/hpo_kd`
(a study's folder is left alone).

Printed per cell: mean test accuracy and its sd over seeds (the study's spread, goal <= 1.0), the
paired difference from the study's training (95 % t interval, verdict against the study's margin,
uncorrected), and the median trial-seconds with its ratio to the study's. Trials of a seed run
together, in a pool of `--workers` single-threaded processes, so machine drift hits every way.
"""

from __future__ import annotations

import argparse
import os
import statistics
from concurrent.futures import ProcessPoolExecutor

import torch

from hpo_kd.report.stats import compare
from hpo_kd.study import load_study
from hpo_kd.train import run_trial

WAYS = {
    "study": {},
    "16 epochs": {"epochs": 16},
    "batch 128": {"batch_size": 128, "lr": 0.2},
}
TAU = {"none": 4.0, "strong": 1.0}  # the grid's best mean val accuracy in the study this was first measured on


def _run(cfg):
    torch.set_num_threads(1)
    r = run_trial(cfg)
    if r["status"] != "ok":
        raise RuntimeError(f"trial failed: {r['error']}")
    return 100 * r["test_acc"], r["seconds"], r["teacher_cached"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--study", default="studies/transfer.toml")
    ap.add_argument("--seeds", default=None, help="comma-separated (default: the study's)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument(
        "--cache-dir", default="runs/transfer" if os.path.isdir("runs/transfer/teachers") else ".cache/hpo_kd"
    )
    a = ap.parse_args()
    study = load_study(a.study)
    margin = study.report.get("margin", 0.5)
    seeds = [int(s) for s in a.seeds.split(",")] if a.seeds else study.seeds
    setting = next(s for s in study.settings if s.dataset == "mnist1d" and s.fraction == 1)
    cells = {}  # (augment, method) -> {seed: config}
    for s in study.settings:
        same = (s.dataset, s.options, s.fraction, s.student) == (setting.dataset, setting.options, 1, setting.student)
        if not same or s.augment not in TAU:
            continue
        for seed in seeds:
            base = dict(study.base_config(s, seed), threads=1, cache_dir=os.path.abspath(a.cache_dir))
            cells.setdefault((s.augment, "no-KD"), {})[seed] = dict(base, method="nokd")
            tau = TAU[s.augment]
            cells.setdefault((s.augment, f"tau {tau:g}"), {})[seed] = dict(base, method="fixed", tau_t=tau, tau_s=tau)
    jobs = [(cell, way, seed) for seed in seeds for cell in cells for way in WAYS]
    with ProcessPoolExecutor(a.workers) as pool:
        futures = {job: pool.submit(_run, dict(cells[job[0]][job[2]], **WAYS[job[1]])) for job in jobs}
        res = {job: f.result() for job, f in futures.items()}
    kd = [r for r in res.values() if r[2] is not None]
    trained = sum(1 for r in kd if not r[2])
    print(
        f"{study.name}: {setting.name or setting.dataset}, seeds {seeds}, margin {margin:g} points; "
        f"{trained} of {len(kd)} KD trials trained their teacher (the rest read it from {a.cache_dir})"
    )
    for cell in cells:
        print(f"\n{cell[0]} augmentation, {cell[1]}")
        ref = [res[(cell, "study", s)] for s in seeds]
        for way in WAYS:
            acc = [res[(cell, way, s)][0] for s in seeds]
            sec = statistics.median(res[(cell, way, s)][1] for s in seeds)
            line = (
                f"  {way:10s} test {statistics.mean(acc):6.2f} % (sd {statistics.stdev(acc):.2f})"
                f"  trial-s median {sec:5.1f} ({sec / statistics.median(r[1] for r in ref):.2f} x study)"
            )
            if way != "study":
                c = compare([x - r[0] for x, r in zip(acc, ref)], margin)
                line += f"  vs study {c['mean']:+.2f} [{c['lo']:+.2f}, {c['hi']:+.2f}] {c['verdict']}"
            print(line, flush=True)


if __name__ == "__main__":
    main()
