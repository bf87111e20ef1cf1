"""Ray Tune overhead, measured side by side in one run.

Default: a 16-trial study through Ray Tune (2 concurrent trials) against a plain loop, alternately
(plain, study, plain, study, ...), `--repeats` times (default 3):
  * plain loop: the same 16 student trials, one after another in this process, 1 thread each,
    after the teacher is in the cache;
  * study: `Runner.run()` on the same 16 trials (embedded Ray with 2 CPUs, 1 CPU per trial),
    the whole wall time: Ray start, the teacher trial (a cache hit), 16 trials, Ray stop.
  Goal, on every run: study wall <= 1.10 * (plain loop / 2) + 15 s. It also prints where the
  study's time went (Ray's start and stop, the Tuner's start, imports on a new actor, the trials'
  own set-up outside `seconds`, the driver's gap between two trials on one actor).

`--study FILE`: a whole `hpo-kd run FILE --runs-dir <fresh folder>` command, `--repeats` times.
  Goal, on every run: wall <= 1.25 * (sum of trial-seconds) / slots + 15 s, where trial-seconds is
  the `seconds` column of the run's trials.parquet. `--against 'COMMAND'` runs the same study with
  another hpo-kd command too, alternately (e.g. an older checkout:
  --against 'env PYTHONPATH=/path/to/old/checkout python -m hpo_kd.cli'), for a before/after.

Usage: python bench/tune_overhead.py [--epochs 15] [--repeats 3]
       python bench/tune_overhead.py --study studies/quickstart.toml [--repeats 3] [--against CMD]
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

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


def _mmm(xs) -> str:
    return f"min {min(xs):7.2f}  median {statistics.median(xs):7.2f}  max {max(xs):7.2f}"


def _breakdown(timings) -> None:
    """The study's time, per run: what Runner.timing measured."""
    keys = [
        ("ray_start_s", "Ray start (s)"),
        ("tuner_to_first_trial_s", "Tuner start to first trial (s)"),
        ("ray_stop_s", "Ray stop (s)"),
        ("actors", "actors started"),
        ("import_s_per_trial", "imports on a new actor, per trial (s)"),
        ("setup_s_per_trial", "trial set-up outside `seconds`, per trial (s)"),
        ("between_trials_s_per_trial", "driver gap between trials on an actor, per trial (s)"),
        ("fit_s_per_trial", "trial `seconds`, per trial (s)"),
        ("slot_s_per_trial_outside_fit", "slot time outside `seconds`, per trial (s)"),
    ]
    print("where the study's time went (per run):")
    for k, label in keys:
        vals = [t.get(k, float("nan")) for t in timings]
        print(f"  {label:<55s} " + "  ".join(f"{v:6.3f}" if isinstance(v, float) else f"{v:6d}" for v in vals))


def sixteen_trials(a) -> int:
    import torch

    from hpo_kd.study import load_study
    from hpo_kd.train import run_trial, train_teacher
    from hpo_kd.tune import Runner

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

    plain, tuned, timings = [], [], []
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
        runner = Runner(study, runs_dir=runs, log=lambda m: None)
        t0 = time.perf_counter()
        out = runner.run()
        tuned.append(time.perf_counter() - t0)
        timings.append(runner.timing)
        assert out["ran"] == 17, out

    print(f"16 trials, {a.epochs} epochs each, digits cnn_wide->mlp, 2 CPUs; {a.repeats} run(s), alternately")
    print(f"plain loop (sequential, 1 thread): {_mmm(plain)}  (runs: {', '.join(f'{x:.2f}' for x in plain)})")
    print(f"Ray Tune study (2 concurrent):     {_mmm(tuned)}  (runs: {', '.join(f'{x:.2f}' for x in tuned)})")
    ok = 0
    for p, s in zip(plain, tuned):
        budget = 1.10 * (p / 2) + 15
        ok += s <= budget
        print(
            f"  run: study {s:6.2f} s, plain/2 {p / 2:5.2f} s, ratio {s / (p / 2):5.2f}, "
            f"overhead {(s - p / 2) * 2 / len(trials):5.2f} s of slot time per trial; "
            f"goal <= {budget:5.2f} s: {'met' if s <= budget else 'NOT met'}"
        )
    _breakdown(timings)
    print(
        f"goal: study <= 1.10 * plain/2 + 15 s on every run -> {'met' if ok == len(tuned) else 'NOT met'} "
        f"({ok}/{len(tuned)} runs)"
    )
    shutil.rmtree(work, ignore_errors=True)
    return 0


def _slots(study_path: str) -> int:
    from hpo_kd.study import load_study

    r = load_study(study_path).resources
    slots = int((os.cpu_count() or 1) // r["cpus_per_trial"])
    return max(1, min(slots, r.get("max_concurrent", slots)))


def whole_study(a) -> int:
    import pandas as pd

    from hpo_kd.study import load_study

    name = load_study(a.study).name
    slots = _slots(a.study)
    commands = {"this tree": [sys.executable, "-m", "hpo_kd.cli"]}
    if a.against:
        commands["against"] = shlex.split(a.against)
    results = {k: [] for k in commands}
    for r in range(a.repeats):
        for label, cmd in commands.items():
            runs = tempfile.mkdtemp(prefix="hpo_kd_bench_runs_")
            t0 = time.perf_counter()
            p = subprocess.run(
                cmd + ["run", a.study, "--runs-dir", runs], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
            )
            wall = time.perf_counter() - t0
            if p.returncode != 0:
                print(p.stderr[-3000:], file=sys.stderr)
                raise SystemExit(f"{label}: exit code {p.returncode}")
            t = pd.read_parquet(os.path.join(runs, name, "trials.parquet"))
            secs = float(t["seconds"].sum())
            budget = 1.25 * secs / slots + 15
            results[label].append((wall, secs, budget))
            print(
                f"{label:>10s} run {r + 1}: {len(t)} trials, wall {wall:7.2f} s, trial-seconds {secs:7.2f} "
                f"(/ {slots} slots = {secs / slots:6.2f} s), goal <= {budget:6.2f} s: "
                f"{'met' if wall <= budget else 'NOT met'}",
                flush=True,
            )
            shutil.rmtree(runs, ignore_errors=True)
    for label, rs in results.items():
        walls = [w for w, _, _ in rs]
        ok = sum(w <= b for w, _, b in rs)
        print(
            f"{label}: wall {_mmm(walls)}; trial-seconds/slots {_mmm([s / slots for _, s, _ in rs])}; "
            f"wall / (trial-seconds/slots) {_mmm([w / (s / slots) for w, s, _ in rs])}"
        )
        print(
            f"{label}: goal wall <= 1.25 * trial-seconds/slots + 15 s on every run -> "
            f"{'met' if ok == len(rs) else 'NOT met'} ({ok}/{len(rs)} runs)"
        )
    return 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=15, help="student epochs of the 16-trial study")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--study", default=None, help="time `hpo-kd run STUDY` as a whole command instead")
    ap.add_argument(
        "--against", default=None, help="with --study: another hpo-kd command to run alternately (a before/after)"
    )
    a = ap.parse_args()
    sys.exit(whole_study(a) if a.study else sixteen_trials(a))


if __name__ == "__main__":
    main()
