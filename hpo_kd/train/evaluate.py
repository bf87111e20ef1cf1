"""A model's predictions and accuracy, and its BatchNorm statistics recomputed for an evaluation."""

from __future__ import annotations

import contextlib

import torch

from .. import data as data_mod
from .runtime import as_input, autocast


@torch.no_grad()
def predict(model, x: torch.Tensor, prepare, batch_size: int = 1024, precision: str = "fp32") -> torch.Tensor:
    """The model's fp32 logits for `x`, in chunks, in eval mode (under autocast for bf16)."""
    was = model.training
    model.eval()
    dev = next(model.parameters()).device  # the split may live elsewhere (e.g. on the CPU)
    chunks = [slice(i, i + batch_size) for i in range(0, len(x), batch_size)]
    with autocast(dev, precision):
        out = [model(as_input(prepare(xb.to(dev, non_blocking=True)))).float() for xb in data_mod.take(x, chunks, dev)]
    model.train(was)
    return torch.cat(out)


def accuracy(model, split, prepare, precision: str = "fp32") -> float:
    x, y = split
    return (predict(model, x, prepare, precision=precision).argmax(-1).to(y.device) == y).float().mean().item()


@contextlib.contextmanager
def recomputed_bn(model, x: torch.Tensor, prepare, precision: str = "fp32", chunk: int = 1024):
    """Inside: every BatchNorm of `model` holds statistics recomputed on the inputs `x` (the clean
    train split), as "precise BN" does, instead of its running averages. On leaving, the running
    statistics, momenta and modes are restored, so training goes on as if nothing happened.

    Each layer's statistics are the sample-weighted average of the chunks' batch statistics,
    computed in train mode for the BatchNorms only (dropout and the like stay off), in a fixed
    order (one seeded permutation), without gradients. (torch.optim.swa_utils.update_bn does the
    recomputation for a finished model: it puts the whole model in train mode, weights every batch
    alike and keeps the new statistics; here they are temporary, between training epochs.)"""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not bns:
        yield model
        return
    saved = [(m.momentum, m.training, {k: b.clone() for k, b in m.named_buffers(recurse=False)}) for m in bns]
    was = model.training
    dev = next(model.parameters()).device
    try:
        model.eval()
        for m in bns:
            m.train()
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
        chunks = [order[i : i + chunk] for i in range(0, len(x), chunk)]
        seen = 0
        with torch.no_grad(), autocast(dev, precision):
            for idx, xb in zip(chunks, data_mod.take(x, chunks, dev)):
                n = len(idx)
                for m in bns:  # running = (1 - momentum) * running + momentum * this chunk's statistic
                    m.momentum = n / (seen + n)
                model(as_input(prepare(xb)))
                seen += n
        for m in bns:
            m.eval()
        yield model
    finally:
        for m, (momentum, training, buffers) in zip(bns, saved):
            m.momentum = momentum
            for k, b in buffers.items():
                getattr(m, k).copy_(b)
        model.train(was)
        for m, (_, training, _) in zip(bns, saved):
            m.train(training)
