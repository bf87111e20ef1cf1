"""Kernel pins for studies whose results should not depend on the x86-64 CPU they run on.

Floating-point results differ between CPU kinds because the math libraries pick their kernels by
the instructions the CPU has: MKL's matrix products, oneDNN's convolutions, ATen's vectorised
element-wise and reduction loops (AVX-512 on one machine, AVX2 on another, each summing in its own
order). `[resources] reproducible = true` in a study pins all three to the AVX2 code paths, which
every x86-64 machine of this project's kind has:

- `MKL_CBWR=AVX2`: MKL's conditional numerical reproducibility, AVX2 branch;
- `ONEDNN_MAX_CPU_ISA=AVX2`: oneDNN's JIT kernels at most AVX2;
- `ATEN_CPU_CAPABILITY=avx2`: ATen's dispatch to its AVX2 kernels.

The pins go into the environment of every Ray worker (the embedded Ray's and a cluster's, through
its runtime_env) before torch loads, and into the provenance the report header prints.
`bench/reproducible.py` records a digest of a few small trials run under them and checks it on
another machine.
"""

from __future__ import annotations

import os
from typing import Dict

PINS: Dict[str, str] = {"MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}


def worker_env(reproducible: bool) -> Dict[str, str]:
    """The environment a study's workers need for `reproducible` (nothing when it is off)."""
    return dict(PINS) if reproducible else {}


def in_effect() -> Dict[str, str]:
    """The kernel-selection variables set in this process's environment (pins or not)."""
    names = set(PINS) | {"MKL_ENABLE_INSTRUCTIONS", "ONEDNN_DEFAULT_FPMATH_MODE"}
    return {k: os.environ[k] for k in sorted(names) if k in os.environ}


def pinned() -> bool:
    return all(os.environ.get(k) == v for k, v in PINS.items())
