"""`make gpu-check`: try the GPU path in about a minute, on a fake CIFAR-100 written to a temporary folder.

    .venv/bin/python bench/gpu_check.py [--cpu]

1. One bf16 trial, resnet32x4 -> resnet8x4, on CUDA: its device, its images/s per epoch.
2. Four trials of 0.25 GPU each through Ray (a study with the grid's four temperatures): whether
   they ran at the same time on the GPU, and their images/s, each and together.
3. An image folder (1,400 generated PNG files) in memory and streamed from disk (DataLoader
   workers, pinned memory): each trial's status and images/s, and whether the two agree (on a GPU
   cudnn.benchmark picks kernels by timing, so they may differ in the last digits).
Without CUDA it says so and exits 2. `--cpu` runs the same steps on the CPU with no GPU request and
the small pair resnet20 -> resnet8 (to try the script; the figures then mean nothing).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import pandas as pd
import torch

from hpo_kd.cli import main as cli
from hpo_kd.data import fake
from hpo_kd.train import run_trial

STUDY = """
name = "gpucheck"
seeds = [0]
[train]
epochs = 2
teacher_epochs = 1
batch_size = 64
precision = "bf16"
[resources]
cpus_per_trial = 1
gpus_per_trial = {gpus}
[[settings]]
dataset = "cifar100"
root = "data"
augment = "weak"
teacher = "{teacher}"
student = "{student}"
[methods.grid]
temperatures = [1, 2, 4, 8]
"""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cpu", action="store_true", help="run on the CPU instead (to try the script)")
    p.add_argument(
        "--per-class",
        type=int,
        default=40,
        help="fake training images per class (default 40; at least 12, to split 100 classes four ways)",
    )
    a = p.parse_args()
    teacher, student = ("resnet20", "resnet8") if a.cpu else ("resnet32x4", "resnet8x4")
    if not a.cpu and not torch.cuda.is_available():
        print(
            "gpu-check: no CUDA device here (torch.cuda.is_available() is False); nothing to check. "
            "On a GPU machine: make gpu-check",
            file=sys.stderr,
        )
        return 2
    device = "cpu" if a.cpu else "cuda"
    with tempfile.TemporaryDirectory() as tmp:
        fake.write_cifar100(os.path.join(tmp, "data"), per_class_train=a.per_class)
        print(
            f"fake CIFAR-100: {100 * a.per_class} training images in {tmp}/data; device {device}"
            + (f" ({torch.cuda.get_device_name(0)})" if device == "cuda" else "")
        )

        # 1. one bf16 trial
        t0 = time.perf_counter()
        r = run_trial(
            dict(
                dataset="cifar100",
                root=os.path.join(tmp, "data"),
                teacher=teacher,
                student=student,
                augment="weak",
                epochs=2,
                teacher_epochs=1,
                batch_size=64,
                precision="bf16",
                device=device,
                cache_dir=os.path.join(tmp, "cache"),
                tau_t=4.0,
                tau_s=4.0,
            )
        )
        print(
            f"1. one bf16 trial, {teacher} -> {student}: status {r['status']}, device {r['device']}, "
            + ", ".join(f"epoch {h['epoch']}: {h['samples_per_s']:.0f} images/s" for h in r["history"])
            + f"; {time.perf_counter() - t0:.1f} s with the teacher's training"
        )
        ok = r["status"] == "ok" and r["device"].startswith(device)

        # 2. four 0.25-GPU trials through Ray
        study = os.path.join(tmp, "gpucheck.toml")
        with open(study, "w") as f:
            f.write(STUDY.format(gpus=0 if a.cpu else 0.25, teacher=teacher, student=student))
        runs = os.path.join(tmp, "runs")
        code = cli(["run", study, "--runs-dir", runs])
        trials = pd.read_parquet(os.path.join(runs, "gpucheck", "trials.parquet"))
        curves = pd.read_parquet(os.path.join(runs, "gpucheck", "curves.parquet"))
        grid = trials[trials["method"] == "grid"].sort_values("started_at")
        rate = curves[curves["epoch"] == 2].set_index("trial_id")["samples_per_s"]
        start, end = grid["started_at"].astype(float), grid["finished_at"].astype(float)
        overlap = max(0.0, end.min() - start.max())
        print(
            f"2. {len(grid)} trials of {0 if a.cpu else 0.25} GPU through Ray (exit {code}): "
            + ", ".join(
                f"τ={r.tau_t_config:g} on {r.device} gpu {r.gpu_ids}: {rate.get(r.trial_id, float('nan')):.0f}"
                for r in grid.itertuples()
            )
            + f" images/s; {rate.reindex(grid['trial_id']).sum():.0f} together; all four running at once for "
            f"{overlap:.1f} s"
        )
        ok = ok and code == 0 and (grid["status"] == "ok").all() and len(grid) == 4
        if not a.cpu:
            ok = ok and overlap > 0 and grid["device"].str.startswith("cuda").all()

        # 3. an image folder, in memory and streamed
        folder = fake.write_imagefolder(os.path.join(tmp, "folder"), classes=10, per_class=(100, 20, 20))
        res = {}
        for stream in (False, True):
            res[stream] = run_trial(
                dict(
                    dataset="imagefolder",
                    root=folder,
                    data_options={"image_size": 32, "stream": stream},
                    teacher=teacher,
                    student=student,
                    augment="weak",
                    epochs=2,
                    teacher_epochs=1,
                    batch_size=64,
                    precision="bf16",
                    device=device,
                    cache_dir=os.path.join(tmp, "cache"),
                    tau_t=4.0,
                    tau_s=4.0,
                )
            )
        same = [h["val_acc"] for h in res[False]["history"]] == [h["val_acc"] for h in res[True]["history"]]
        print(
            "3. an image folder: "
            + ", ".join(
                f"{'streamed' if k else 'in memory'} {r['status']} on {r['device']}, "
                f"{r['history'][-1]['samples_per_s'] if r['history'] else float('nan'):.0f} images/s"
                for k, r in res.items()
            )
            + f"; val accuracies {'equal' if same else 'differ'}"
        )
        ok = ok and all(r["status"] == "ok" and r["device"].startswith(device) for r in res.values())
    print("gpu-check: " + ("passed" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
