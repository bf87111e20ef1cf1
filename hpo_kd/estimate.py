"""A planning estimate of a study's GPU-hours, from the models' multiply-adds (no data needed).

Per trial: the student's training passes (3x its forward per image: forward and backward) times the
method's relative cost per step, the teacher's forward per image per epoch when augmentation keeps
its logits from being cached (once per trial otherwise), the val/test evaluation per epoch, and
3x the teacher's forward for every teacher trained. GPU-seconds = 2 x multiply-adds / the effective
FLOP/s a GPU reaches on these small networks, which the user sets (`--gpu-tflops`) and
`bench/cifar_step.py` measures. It is an estimate for planning, printed as such.
"""

from __future__ import annotations

import functools
from typing import Dict, Optional

import torch

from . import data as data_mod
from . import methods as methods_mod
from . import models as models_mod

DEFAULT_TFLOPS = 10.0  # effective, per GPU, for CIFAR-sized networks at batch 64 (a guess; measure yours)


@functools.lru_cache(maxsize=None)
def forward_macs(model: str, input_shape: tuple, num_classes: int) -> int:
    """Multiply-adds of one forward pass of one input (convolutions and linear layers)."""
    net = models_mod.create(model, input_shape, num_classes).eval()
    total = [0]

    def hook(mod, inp, out):
        if isinstance(mod, torch.nn.modules.conv._ConvNd):
            k = mod.in_channels // mod.groups
            for s in mod.kernel_size:
                k *= s
            total[0] += out.numel() * k
        elif isinstance(mod, torch.nn.Linear):
            total[0] += out.numel() * mod.in_features

    hs = [
        m.register_forward_hook(hook)
        for m in net.modules()
        if isinstance(m, (torch.nn.modules.conv._ConvNd, torch.nn.Linear))
    ]
    with torch.no_grad():
        net(torch.zeros(1, *input_shape))
    for h in hs:
        h.remove()
    return total[0]


def gpu_hours(study, tflops: float = DEFAULT_TFLOPS) -> Dict[str, object]:
    """{"hours", "flops", "tflops"} for the whole plan of `study`; {"missing": data set} when a
    data set declares no shape (the estimate needs one)."""
    from .train import TrialConfig

    flops = 0.0
    for unit in study.plan():
        c = TrialConfig(**unit.config).resolved()
        hint = data_mod.shape_hint(c.dataset)
        if hint is None:
            return {"missing": c.dataset}
        shape, classes, pool = hint
        n_train = pool * (1 - data_mod.VAL_SHARE - data_mod.META_SHARE) * c.fraction
        n_eval = pool * data_mod.VAL_SHARE + pool * data_mod.TEST_SHARE  # val, and a test file of ~20 %
        if unit.kind == "teacher":
            if not c.teacher_checkpoint:
                t = forward_macs(c.teacher, tuple(shape), classes)
                flops += 2 * unit.budget * c.teacher_epochs * (3 * t * n_train + t * n_eval)
            continue
        s = forward_macs(c.student, tuple(shape), classes)
        method = methods_mod.create(
            c.method, **{k: getattr(c, k) for k in ("tau_t", "tau_s") if getattr(c, k) is not None}, **c.method_options
        )
        per_epoch = 3 * s * n_train * method.relative_cost() + s * n_eval
        once = 0.0
        if method.uses_kd:
            t = forward_macs(c.teacher, tuple(shape), classes)
            if c.augment == "none":
                once = t * n_train
            else:
                per_epoch += t * n_train
        flops += 2 * unit.budget * (c.epochs * per_epoch + once)
    return {"hours": flops / (tflops * 1e12) / 3600, "flops": flops, "tflops": tflops}


def describe(study, tflops: Optional[float] = None) -> str:
    """One line for `--dry-run`."""
    est = gpu_hours(study, tflops or DEFAULT_TFLOPS)
    if "missing" in est:
        return f"GPU-hours: no estimate (data set {est['missing']!r} declares no input shape and size)"
    h = est["hours"]
    return (
        f"GPU-hours (estimate): {h:,.1f} = {est['flops']:.2e} FLOPs at {est['tflops']:g} effective TFLOP/s per "
        f"GPU (--gpu-tflops; `python bench/cifar_step.py` on your GPU measures it): about {h / 24:,.1f} days "
        f"on one GPU, {h / 24 / 8:,.1f} on eight"
    )
