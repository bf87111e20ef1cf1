"""Images/s of an image folder read in memory against streamed from disk, side by side.

    .venv/bin/python bench/imagefolder_stream.py [--per-class 300] [--classes 10] [--source 64]
                                                 [--image-size 32] [--workers 0,2] [--repeats 3]

Writes a generated folder (PNG files of --source x --source pixels; --per-class training images of
each class, a fifth as many for val and test) to a temporary directory, then measures:

1. reading: one pass over the training split in shuffled batches of 64, uint8 batches on the CPU;
   in memory (after decoding its files, whose seconds are printed too) and streamed with
   each number of DataLoader workers;
2. a trial (cnn_bn student, KD from a cnn_small teacher, weak augmentation, 1 epoch): its
   training images/s, in memory and streamed, and whether the two runs give the same results.

Runs alternate; each figure is the median over --repeats. On a GPU machine (--device cuda) the
streamed batches go through pinned memory.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time

import torch

from hpo_kd import data
from hpo_kd.data.fake import write_imagefolder
from hpo_kd.data.stream import take
from hpo_kd.train import run_trial

TIMING = {"epoch_seconds", "samples_per_s", "seconds"}


def read_pass(x, device, seed=0, batch=64):
    order = list(torch.randperm(len(x), generator=torch.Generator().manual_seed(seed)).split(batch))
    t0 = time.perf_counter()
    n = sum(len(b) for b in take(x, order, device))
    return n / (time.perf_counter() - t0)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--per-class", type=int, default=300)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--source", type=int, default=64, help="pixels of the files on disk (square)")
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--workers", default="0,2")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cpu")
    a = p.parse_args()
    workers = [int(w) for w in a.workers.split(",")]
    device = torch.device(a.device)
    torch.set_num_threads(1)
    root = tempfile.mkdtemp(prefix="hpo_kd_folder_")
    small = max(a.per_class // 5, 2)
    write_imagefolder(root, classes=a.classes, per_class=(a.per_class, small, small), size=(a.source, a.source))
    n_files = a.classes * (a.per_class + 2 * small)
    print(f"{n_files} PNG files of {a.source}x{a.source} px in {root}, read at {a.image_size}x{a.image_size}")

    opts = dict(root=root, image_size=a.image_size)
    mem_x = data.load("imagefolder", stream=False, workers=max(workers), **opts).splits["train"][0]
    disk = {w: data.load("imagefolder", stream=True, workers=w, **opts).splits["train"][0] for w in workers}
    load_s = []  # decoding the training split's files (ImageFiles.load: what an in-memory load does, uncached)
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        disk[max(workers)].load()
        load_s.append(time.perf_counter() - t0)
    rates = {"memory": []} | {w: [] for w in workers}
    for r in range(a.repeats):
        rates["memory"].append(read_pass(mem_x, device, r))
        for w in workers:
            rates[w].append(read_pass(disk[w], device, r))
    print(f"\n1. reading the training split ({len(mem_x)} images), median of {a.repeats}:")
    print(
        f"   in memory: decoding the split's files took {statistics.median(load_s):.2f} s "
        f"(workers={max(workers)}); then {statistics.median(rates['memory']):,.0f} images/s"
    )
    for w in workers:
        print(f"   streamed, workers={w}: {statistics.median(rates[w]):,.0f} images/s")

    base = dict(
        dataset="imagefolder",
        root=root,
        augment="weak",
        teacher="cnn_small",
        student="cnn_bn",
        epochs=1,
        teacher_epochs=1,
        method="fixed",
        seed=0,
        device=a.device,
        cache_dir=tempfile.mkdtemp(prefix="hpo_kd_cache_"),
    )
    runs = {"memory": [], "streamed": []}
    histories = {}
    w = max(workers)
    for _ in range(a.repeats):
        for name, stream in (("memory", False), ("streamed", True)):
            res = run_trial(dict(base, data_options={"image_size": a.image_size, "stream": stream, "workers": w}))
            runs[name].append(res["history"][-1]["samples_per_s"])
            histories[name] = [{k: v for k, v in row.items() if k not in TIMING} for row in res["history"]]
    m, s = statistics.median(runs["memory"]), statistics.median(runs["streamed"])
    print(f"\n2. a trial's training images/s (1 epoch, weak augmentation, KD), median of {a.repeats}:")
    print(f"   in memory {m:,.0f}, streamed (workers={w}) {s:,.0f}: streamed / memory = {s / m:.2f}")
    same = histories["memory"] == histories["streamed"]
    print(f"   same results: {'yes' if same else 'NO'}")
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(base["cache_dir"], ignore_errors=True)
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
