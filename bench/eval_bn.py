"""What `eval_bn` changes: the MNIST-1D studies' no-KD students under strong augmentation, each
trained once per seed and evaluated both ways (running BatchNorm statistics, and statistics
recomputed on the clean train split), with the cost of the recomputation.

    .venv/bin/python bench/eval_bn.py [--seeds 0,1,2,3,4,5,6,7] [--augment strong] [--last 6]

Per seed: the test accuracy over the last `--last` epochs (lr near zero at the end of the cosine
schedule, so the weights barely move) and its sd across those epochs; then the last epoch's mean
and sd over seeds, for each way. The two trials of a seed train the same student (the same losses
every epoch: checked here); their trial-seconds, run alternately, give the recomputation's cost.
"""

from __future__ import annotations

import argparse
import statistics

import torch

from hpo_kd.train import run_trial


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="0,1,2,3,4,5,6,7")
    ap.add_argument("--augment", default="strong")
    ap.add_argument("--last", type=int, default=6)
    ap.add_argument("--cache-dir", default=".cache/hpo_kd")
    a = ap.parse_args()
    torch.set_num_threads(1)
    ways = ("running", "recompute")
    final = {w: [] for w in ways}
    seconds = {w: [] for w in ways}
    for i, seed in enumerate(int(s) for s in a.seeds.split(",")):
        cfg = dict(
            dataset="mnist1d",
            data_options={"train_size": 12000, "test_size": 4000},
            augment=a.augment,
            method="nokd",
            student="cnn_bn",
            teacher="cnn_mid",
            epochs=30,
            batch_size=64,
            lr=0.1,
            seed=seed,
            split_seed=seed,
            threads=1,
            cache_dir=a.cache_dir,
        )
        runs = {}
        for w in ways if i % 2 == 0 else ways[::-1]:  # alternate which way runs first
            runs[w] = run_trial(dict(cfg, eval_bn=w))
            seconds[w].append(runs[w]["seconds"])
        losses = [
            [{k: v for k, v in row.items() if k.startswith("train_")} for row in runs[w]["history"]] for w in ways
        ]
        assert losses[0] == losses[1], "the two ways trained different students"
        line = [f"seed {seed}"]
        for w in ways:
            tail = [100 * row["test_acc"] for row in runs[w]["history"][-a.last :]]
            final[w].append(tail[-1])
            line.append(f"{w}: " + " ".join(f"{t:.2f}" for t in tail) + f" (sd {statistics.stdev(tail):.2f})")
        print(" | ".join(line), flush=True)
    for w in ways:
        print(
            f"{w}: last epoch {statistics.mean(final[w]):.2f} % (sd over seeds {statistics.stdev(final[w]):.2f}); "
            f"trial-seconds median {statistics.median(seconds[w]):.2f}"
        )
    print(
        f"recompute / running trial-seconds (medians): "
        f"{statistics.median(seconds['recompute']) / statistics.median(seconds['running']):.3f}"
    )


if __name__ == "__main__":
    main()
