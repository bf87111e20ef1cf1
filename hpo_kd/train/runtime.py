"""Where and how a trial computes: its device, seeds, precision and memory layout."""

from __future__ import annotations

import contextlib
import random

import numpy as np
import torch

from .. import data as data_mod
from ..errors import UserError


def pick_device(requested: str) -> torch.device:
    if requested == "cuda" and not torch.cuda.is_available():
        raise UserError("device 'cuda' was requested but no GPU is available here; allowed: cpu, auto")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)  # timm's Mixup draws from NumPy's global generator
    torch.manual_seed(seed)


def autocast(device: torch.device, precision: str):
    """The context of the forward passes: none for fp32, bf16 autocast (CPU or CUDA) for bf16."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def as_input(x: torch.Tensor) -> torch.Tensor:
    """A batch as the models take it: channels_last for images on a GPU (faster convolutions
    with cuDNN), unchanged elsewhere."""
    if x.dim() == 4 and x.is_cuda:
        return x.contiguous(memory_format=torch.channels_last)
    return x


def gpu_ready(model: torch.nn.Module, device: torch.device, image: bool) -> torch.nn.Module:
    """The model on `device`; in channels_last for images on a GPU."""
    model = model.to(device)
    if image and device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model


def on_device(bundle, device: torch.device):
    """On a GPU: every in-memory split resident on the device (copied once, from pinned memory; a
    split streamed from disk stays there), and cuDNN free to pick the fastest convolution for the
    shapes (cudnn.benchmark). A CPU bundle is returned as it is."""
    if device.type != "cuda":
        return bundle
    torch.backends.cudnn.benchmark = True
    bundle.splits = {
        k: (x.pin_memory().to(device, non_blocking=True) if isinstance(x, torch.Tensor) else x, y.to(device))
        for k, (x, y) in bundle.splits.items()
    }
    return bundle


def load_data(c):
    """A trial's device (and torch's threads) and its data set on that device."""
    device = pick_device(c.device)
    if c.threads:
        torch.set_num_threads(c.threads)
    bundle = on_device(
        data_mod.load(
            c.dataset, seed=c.split_seed, fraction=c.fraction, augment=c.augment, root=c.root, **c.data_options
        ),
        device,
    )
    return device, bundle
