"""What produced a result: the code version, the library versions and the machine. The runner
records it in the store folder (`provenance.json`, one entry per run); the report prints it."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from typing import Dict, List

from .files import atomic_write

PACKAGES = ("torch", "optuna", "ray", "scipy", "numpy", "pandas", "timm")
FILE = "provenance.json"


def _git(*args: str) -> str:
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        out = subprocess.run(["git", "-C", here, *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def code_version(runs: bool = False) -> str:
    """hpo_kd's version and the git commit that last changed the package (not HEAD, so that a
    commit that only adds reports does not change it), marked when the package has uncommitted
    changes; the version alone outside a git checkout. `runs=True`: the code that produces
    results, i.e. the package without `report/` (a report-only change does not change a run)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        v = version("hpo_kd")
    except PackageNotFoundError:
        v = "unknown"
    pkg = os.path.dirname(os.path.abspath(__file__))
    paths = ["--", pkg] + ([f":(exclude){os.path.join(pkg, 'report')}"] if runs else [])
    commit = _git("log", "-1", "--format=%h", *paths)
    if not commit:
        return f"hpo_kd {v}"
    dirty = _git("status", "--porcelain", *paths)
    return f"hpo_kd {v}, commit {commit}" + (" + uncommitted changes" if dirty else "")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions() -> Dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for p in PACKAGES:
        try:
            out[p] = version(p)
        except PackageNotFoundError:
            out[p] = "not installed"
    return out


def current(threads_per_trial: int | None = None, kernel_pins: Dict[str, str] | None = None) -> Dict:
    import torch

    return {
        "code": code_version(runs=True),
        "versions": versions(),
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads_per_trial": threads_per_trial,
        "torch_default_threads": torch.get_num_threads(),
        "kernel_pins": dict(kernel_pins or {}),
    }


def record(folder: str, threads_per_trial: int | None, kernel_pins: Dict[str, str] | None = None) -> None:
    """Append this run's provenance to `folder/provenance.json` (atomically); `kernel_pins`: the
    kernel-selection variables the workers ran under (hpo_kd.reproducible)."""
    path = os.path.join(folder, FILE)
    runs = load(folder)
    entry = current(threads_per_trial, kernel_pins)
    if not runs or {k: v for k, v in runs[-1].items()} != entry:
        runs.append(entry)

    def write(tmp):
        with open(tmp, "w") as f:
            json.dump(runs, f, indent=1, sort_keys=True)

    atomic_write(path, write)


def load(folder: str) -> List[Dict]:
    path = os.path.join(folder, FILE)
    if not os.path.isfile(path):
        return []
    with open(path) as f:
        return json.load(f)


def describe(entry: Dict) -> str:
    v = entry.get("versions", {})
    libs = ", ".join(f"{k} {v[k]}" for k in ("torch", "optuna", "ray", "scipy") if k in v)
    threads = entry.get("torch_threads_per_trial")
    pins = entry.get("kernel_pins")
    kernels = (
        ""
        if pins is None
        else "; kernels "
        + (
            "pinned (" + ", ".join(f"{k}={v}" for k, v in sorted(pins.items())) + ")"
            if pins
            else "as the CPU picks them"
        )
    )
    return (
        f"{entry.get('code', '?')}; {libs}; Python {entry.get('python', '?')}; CPU {entry.get('cpu', '?')}, "
        f"{entry.get('cores', '?')} cores, {threads if threads else '?'} torch thread(s) per trial{kernels}"
    )
