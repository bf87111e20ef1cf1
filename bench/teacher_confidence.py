"""How near one-hot is a study's teacher? Its softmax on the students' training split, per setting.

    .venv/bin/python bench/teacher_confidence.py [--study studies/quickstart.toml] [--seeds 0,1]
                                                 [--cache-dir runs/quickstart]

A teacher whose softmax is one-hot on the training split gives the student nothing a label does
not: its temperature then changes little but the gradient's scale, and a transfer axis on that
data set would measure noise. For every setting of the study and each seed, the teacher is read
from (or trained into) `--cache-dir` (by default the study's store, `runs/<name>`, when it has
teachers, else `.cache/hpo_kd`), then printed: its training-split accuracy, the mean of its
largest softmax probability at tau = 1 and at tau = 4, and the share of training samples whose
largest probability at tau = 1 is at least 0.99.
"""

from __future__ import annotations

import argparse
import os

import torch

from hpo_kd.study import load_study
from hpo_kd.train.config import TrialConfig
from hpo_kd.train.evaluate import predict
from hpo_kd.train.runtime import load_data
from hpo_kd.train.teacher import get_teacher


def confidence(cfg) -> dict:
    c = TrialConfig(**cfg).resolved()
    device, bundle = load_data(c)
    teacher, _ = get_teacher(c, bundle, device)
    x, y = bundle.splits["train"]
    z = predict(teacher, x, bundle.prepare)
    p1, p4 = z.softmax(1).max(1).values, (z / 4).softmax(1).max(1).values
    return {
        "acc": (z.argmax(1) == y).float().mean().item(),
        "p1": p1.mean().item(),
        "p4": p4.mean().item(),
        "one_hot": (p1 >= 0.99).float().mean().item(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--study", default="studies/quickstart.toml")
    ap.add_argument("--seeds", default=None, help="comma-separated (default: the study's)")
    ap.add_argument("--cache-dir", default=None)
    a = ap.parse_args()
    study = load_study(a.study)
    cache = a.cache_dir or next(
        (d for d in (os.path.join("runs", study.name), ".cache/hpo_kd") if os.path.isdir(os.path.join(d, "teachers"))),
        ".cache/hpo_kd",
    )
    seeds = [int(s) for s in a.seeds.split(",")] if a.seeds else study.seeds
    torch.set_num_threads(1)
    print(f"{study.name}: teachers from {cache}; training split, mean over seeds {seeds}")
    head = ("setting", "teacher", "train acc", "max p (tau 1)", "max p (tau 4)", "p >= 0.99")
    print(f"{head[0]:34s} {head[1]:10s} {head[2]:>9s} {head[3]:>13s} {head[4]:>13s} {head[5]:>9s}")
    for s in study.settings:
        rows = [
            confidence(dict(study.base_config(s, seed), threads=1, cache_dir=os.path.abspath(cache), method="nokd"))
            for seed in seeds
        ]
        mean = {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]}
        print(
            f"{s.label:34s} {s.teacher:10s} {100 * mean['acc']:8.2f}% {mean['p1']:13.3f} {mean['p4']:13.3f} "
            f"{100 * mean['one_hot']:8.1f}%",
            flush=True,
        )


if __name__ == "__main__":
    main()
