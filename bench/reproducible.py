"""Do a few small trials give bitwise the same results on this machine as where the digest was recorded?

    .venv/bin/python bench/reproducible.py            # check: prints "same" or "differs" per trial
    .venv/bin/python bench/reproducible.py --record   # write bench/reproducible.json on this machine
    .venv/bin/python bench/reproducible.py --cost     # also: seconds unpinned vs pinned, side by side

Four students of one MNIST-1D seed (fixed tau 1 and 4, no-KD, MKD; 3 epochs on 2,000 signals,
strong augmentation, teacher trained in a temporary folder) run in a child process under the
kernel pins of `[resources] reproducible = true` (hpo_kd.reproducible.PINS), and again under the
pins plus caps that change what the CPU offers the libraries (MKL_ENABLE_INSTRUCTIONS), a proxy on
one machine for a CPU of another kind. Each trial's per-epoch numbers (losses, accuracies, temperatures) are hashed.
A mismatch with the recorded digest is what this script exists to find: it exits 0 either way and
is not a test.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RECORD = os.path.join(HERE, "reproducible.json")
SKIP = {"epoch_seconds", "samples_per_s", "seconds"}


def trials() -> dict:
    """Run the trials in this process; their digests by name."""
    import torch

    from hpo_kd.train import run_trials

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as cache:
        base = dict(
            dataset="mnist1d",
            student="cnn_bn",
            teacher="cnn_small",
            epochs=3,
            teacher_epochs=3,
            cache_dir=cache,
            device="cpu",
            augment="strong",
            eval_bn="recompute",
            threads=1,
            data_options={"train_size": 2000, "test_size": 500},
        )
        cfgs = {
            "fixed-1": dict(base, method="fixed", tau_t=1.0, tau_s=1.0),
            "fixed-4": dict(base, method="fixed", tau_t=4.0, tau_s=4.0),
            "nokd": dict(base, method="nokd"),
            "mkd": dict(base, method="mkd"),
        }
        start = time.perf_counter()
        results = run_trials(list(cfgs.values()))
        seconds = time.perf_counter() - start
    out = {}
    for name, r in zip(cfgs, results):
        rows = [{k: v for k, v in row.items() if k not in SKIP} for row in r["history"]]
        blob = json.dumps({"history": rows, "teacher": r["teacher_val_acc"], "val": r["val_acc"]}, sort_keys=True)
        out[name] = hashlib.sha256(blob.encode()).hexdigest()[:16]
    return {"digests": out, "seconds": round(seconds, 2), "grouped": [r["grouped"] for r in results]}


def child(extra_env: dict) -> dict:
    env = dict(os.environ, **extra_env)
    out = subprocess.run([sys.executable, __file__, "--child"], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--record", action="store_true", help="write the digest of this machine")
    ap.add_argument("--cost", action="store_true", help="time the trials unpinned and pinned, alternating")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(trials()))
        return
    from hpo_kd.models.grouped import machine_line
    from hpo_kd.reproducible import PINS

    print(machine_line())
    pinned = child(PINS)
    if a.record:
        with open(RECORD, "w") as f:
            json.dump({"machine": machine_line(), "pins": PINS, "digests": pinned["digests"]}, f, indent=1)
            f.write("\n")
        print(f"recorded {RECORD}")
    if os.path.isfile(RECORD):
        with open(RECORD) as f:
            ref = json.load(f)
        for name, d in pinned["digests"].items():
            print(f"{name:8} {'same' if ref['digests'].get(name) == d else 'differs'} as recorded on {ref['machine']}")
    for caps in ({"MKL_ENABLE_INSTRUCTIONS": "AVX2"}, {"MKL_ENABLE_INSTRUCTIONS": "SSE4_2"}):
        got = child(dict(PINS, **caps))["digests"]
        print(f"pins + {caps}: {'same' if got == pinned['digests'] else 'differs'} as pins alone")
    free = child({})
    print(
        f"unpinned: {'same' if free['digests'] == pinned['digests'] else 'differs'} as pinned (expected to differ "
        "where this CPU has more than AVX2)"
    )
    if a.cost:
        times = {"unpinned": [], "pinned": []}
        for i in range(3):
            for way in ("unpinned", "pinned") if i % 2 == 0 else ("pinned", "unpinned"):
                times[way].append(child(PINS if way == "pinned" else {})["seconds"])
        med = {k: sorted(v)[1] for k, v in times.items()}
        print(
            f"seconds (median of 3, alternating): unpinned {med['unpinned']:.2f}, pinned {med['pinned']:.2f}: "
            f"pinned / unpinned = {med['pinned'] / med['unpinned']:.2f}"
        )


if __name__ == "__main__":
    main()
