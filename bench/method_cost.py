"""Cost of a training step per temperature method, as a ratio to fixed-temperature KD.

    .venv/bin/python bench/method_cost.py [--repeats 6] [--epochs 3] [--threads 1]

Default digits pair (teacher cnn_wide, student mlp, batch 64) trained by hpo_kd.train.fit with
augment='weak', so the teacher runs on every (augmented) batch as in a real KD step. Methods:
fixed tau, MKD exact (second-order hypergradient every step), MKD first-order, MKD every=4.
Only training steps are timed: fit's per-epoch `samples_per_s` covers the step loop only (not the
val/test evaluation nor the trial setup); mean step time = batch size / samples_per_s.
Runs are interleaved (each repeat runs every method once, in a rotated order), the first epoch of
each run is dropped as warm-up, and each method's time is the median over its runs.
Goals: exact <= 2.5, first-order <= 1.5, every-4 <= 1.3 times the fixed-tau step. LS-KD (a
per-sample temperature from each sample's logits) is printed beside them, with no goal.

`--searches`: also a PBT search's wall time against the grid's at the same population (5), both
PBTs (grouped, the default, and Ray Tune's, `grouped = false`), as tiny studies through Ray Tune
(digits, 6 epochs, one seed), in rotated order, `--search-repeats` rounds: the time from
`Runner.run` to its return, the teacher trained beforehand in each.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import statistics
import tempfile
import time

import torch

from hpo_kd import data, methods, models
from hpo_kd.train import TrialConfig, fit

BATCH = 64
METHODS = {
    "fixed tau": ("fixed", {}),
    "MKD exact": ("mkd", {}),
    "MKD first-order": ("mkd", {"first_order": True}),
    "MKD every=4": ("mkd", {"every": 4}),
    "LS-KD": ("lskd", {"tau_t": 2.0, "tau_s": 2.0}),
}
GOALS = {"MKD exact": 2.5, "MKD first-order": 1.5, "MKD every=4": 1.3}


def run(bundle, teacher, c, label, seed):
    name, options = METHODS[label]
    torch.manual_seed(seed)
    student = models.create(c.student, bundle.input_shape, bundle.num_classes)
    method = methods.create(name, **{"tau_t": c.tau_t, "tau_s": c.tau_s, **options})
    out = fit(student, bundle, method, teacher, c, torch.device("cpu"), None)
    assert out["status"] == "ok", out["error"]
    return [BATCH / row["samples_per_s"] for row in out["history"]]  # seconds per step


def teacher_forward_time(bundle, teacher, n=50):
    x = bundle.prepare(bundle.splits["train"][0][:BATCH])
    with torch.no_grad():
        teacher(x)
        t0 = time.perf_counter()
        for _ in range(n):
            teacher(x)
    return (time.perf_counter() - t0) / n


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=6)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument(
        "--threads", type=int, default=1, help="torch intra-op threads (1: steadier on a shared 2-core box)"
    )
    ap.add_argument("--profile", action="store_true", help="print a cProfile of every MKD variant")
    ap.add_argument("--searches", action="store_true", help="also time a PBT search against the grid (Ray Tune)")
    ap.add_argument("--search-repeats", type=int, default=2)
    a = ap.parse_args()
    if a.searches:
        searches(a.search_repeats)
    torch.set_num_threads(a.threads)
    bundle = data.load("digits", seed=0, augment="weak")
    torch.manual_seed(0)
    teacher = models.create("cnn_wide", bundle.input_shape, bundle.num_classes).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    labels = list(METHODS)
    with tempfile.TemporaryDirectory() as cache:
        c = TrialConfig(
            dataset="digits",
            augment="weak",
            epochs=a.epochs,
            batch_size=BATCH,
            device="cpu",
            tau_t=4.0,
            tau_s=4.0,
            cache_dir=cache,
        ).resolved()
        warm = TrialConfig(
            dataset="digits",
            augment="weak",
            epochs=1,
            batch_size=BATCH,
            device="cpu",
            tau_t=4.0,
            tau_s=4.0,
            cache_dir=cache,
        ).resolved()
        for label in labels:
            run(bundle, teacher, warm, label, 99)
        times = {label: [] for label in labels}
        for r in range(a.repeats):
            for label in labels[r % len(labels) :] + labels[: r % len(labels)]:
                times[label].append(statistics.median(run(bundle, teacher, c, label, r)[1:]))
        med = {label: statistics.median(v) for label, v in times.items()}
        t_teacher = teacher_forward_time(bundle, teacher)
        print(
            f"digits, teacher cnn_wide (forward every step, augment weak), student mlp, batch {BATCH}, "
            f"torch threads {torch.get_num_threads()}, {a.repeats} interleaved repeats x {a.epochs - 1} timed epochs"
        )
        print(f"teacher forward alone: {t_teacher * 1e3:.3f} ms per batch")
        missed = []
        for label in labels:
            ratio = med[label] / med["fixed tau"]
            goal = GOALS.get(label)
            verdict = ""
            if goal is not None:
                ok = ratio <= goal
                verdict = f"goal <= {goal}: {'met' if ok else 'MISSED'}"
                if not ok:
                    missed.append(label)
            spread = f"[{min(times[label]) * 1e3:.3f} .. {max(times[label]) * 1e3:.3f}]"
            extra = (med[label] - med["fixed tau"]) * 1e3
            print(
                f"{label:16s} {med[label] * 1e3:7.3f} ms/step {spread:20s} (+{extra:6.3f} ms) "
                f"ratio {ratio:5.2f}  {verdict}"
            )
        for label in missed if not a.profile else [lb for lb in labels if lb in GOALS]:
            prof = cProfile.Profile()
            prof.enable()
            run(bundle, teacher, c, label, 0)
            prof.disable()
            s = io.StringIO()
            pstats.Stats(prof, stream=s).sort_stats("tottime").print_stats(12)
            print(f"\ncProfile of fit with {label} (by own time):\n{s.getvalue()}")


SEARCH_STUDY = """
name = "{name}"
seeds = [0]
[train]
epochs = 6
teacher_epochs = 5
[resources]
cpus_per_trial = 1
[[settings]]
dataset = "digits"
teacher = "cnn_small"
student = "mlp"
[methods.{table}]
{options}
"""


def searches(repeats: int) -> None:
    """Wall time of PBT searches (population 5; grouped and Ray Tune's) against the grid's (5
    temperatures), side by side."""
    import os

    from hpo_kd.study import load_study
    from hpo_kd.tune import Runner

    kinds = {
        "grid": ("grid", "temperatures = [1, 2, 4, 8, 16]"),
        "pbt": ("pbt", "population = 5\ninterval = 2"),
        "pbt_ray": ("pbt", "population = 5\ninterval = 2\ngrouped = false"),
    }
    times = {k: [] for k in kinds}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeats):
            order = list(kinds)
            for kind in order[r % len(order) :] + order[: r % len(order)]:
                table, options = kinds[kind]
                path = os.path.join(tmp, f"{kind}{r}.toml")
                with open(path, "w") as f:
                    f.write(SEARCH_STUDY.format(name=f"{kind}{r}", table=table, options=options))
                study = load_study(path)
                runner = Runner(study, runs_dir=os.path.join(tmp, "runs"), log=lambda m: None)
                runner.run([t for t in study.plan() if t.method == "teacher"])  # the teacher, untimed
                t0 = time.perf_counter()
                runner.run()
                times[kind].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"search of 5 on digits (mlp, 6 epochs), {repeats} rounds, median wall time (runs):")
    for k, v in times.items():
        print(f"  {k:8s} {med[k]:5.1f} s {[round(x, 1) for x in v]}  / grid = {med[k] / med['grid']:.2f}")


if __name__ == "__main__":
    main()
