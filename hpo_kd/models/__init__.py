"""Model factory: small built-ins for 8x8 images and 1x40 signals, or any timm model by name.

Built-ins adapt to the input: a (C, L) input shape gets 1-D convolutions, (C, H, W) gets 2-D.
"""

from __future__ import annotations

from typing import Sequence

from torch import nn

from ..errors import UserError
from ..registry import Registry

MODELS = Registry("model")


def _conv(dim: int):
    return nn.Conv1d if dim == 1 else nn.Conv2d


def _bn(dim: int):
    return nn.BatchNorm1d if dim == 1 else nn.BatchNorm2d


def _pool(dim: int):
    return nn.AdaptiveAvgPool1d(1) if dim == 1 else nn.AdaptiveAvgPool2d(1)


def _spatial_dim(input_shape: Sequence[int]) -> int:
    if len(input_shape) not in (2, 3):
        raise UserError(f"input shape {tuple(input_shape)} is neither (C, L) nor (C, H, W)")
    return len(input_shape) - 1


@MODELS.register("mlp")
def mlp(input_shape, num_classes, width: int = 32, **_):
    """Two-layer perceptron on the flattened input (the weakest student)."""
    n_in = 1
    for s in input_shape:
        n_in *= s
    return nn.Sequential(nn.Flatten(), nn.Linear(n_in, width), nn.ReLU(), nn.Linear(width, num_classes))


@MODELS.register("mlp_wide")
def mlp_wide(input_shape, num_classes, width: int = 256, **_):
    """Three-layer perceptron, 256 units per hidden layer."""
    n_in = 1
    for s in input_shape:
        n_in *= s
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(n_in, width),
        nn.ReLU(),
        nn.Linear(width, width),
        nn.ReLU(),
        nn.Linear(width, num_classes),
    )


@MODELS.register("cnn_small")
def cnn_small(input_shape, num_classes, width: int = 8, **_):
    """Two small convolutions (8 and 16 channels), global average pool, linear head; no BN."""
    d = _spatial_dim(input_shape)
    conv = _conv(d)
    return nn.Sequential(
        conv(input_shape[0], width, 3, padding=1),
        nn.ReLU(),
        conv(width, 2 * width, 3, padding=1, stride=2),
        nn.ReLU(),
        _pool(d),
        nn.Flatten(),
        nn.Linear(2 * width, num_classes),
    )


@MODELS.register("cnn_wide")
def cnn_wide(input_shape, num_classes, width: int = 64, **_):
    """Four 3-wide convolutions (64-64-128-128 channels) with BatchNorm (the default teacher)."""
    d = _spatial_dim(input_shape)
    conv, bn = _conv(d), _bn(d)

    def block(cin, cout, stride=1):
        return [conv(cin, cout, 3, padding=1, stride=stride, bias=False), bn(cout), nn.ReLU()]

    return nn.Sequential(
        *block(input_shape[0], width),
        *block(width, width),
        *block(width, 2 * width, stride=2),
        *block(2 * width, 2 * width),
        _pool(d),
        nn.Flatten(),
        nn.Linear(2 * width, num_classes),
    )


@MODELS.register("cnn_bn")
def cnn_bn(input_shape, num_classes, width: int = 8, **_):
    """A small student with BatchNorm: 8 and 16 channels (kernel 5, then 3 with stride 2), global
    average pool, linear head. Trains more stably than cnn_small under strong augmentation."""
    d = _spatial_dim(input_shape)
    conv, bn = _conv(d), _bn(d)
    return nn.Sequential(
        conv(input_shape[0], width, 5, padding=2, bias=False),
        bn(width),
        nn.ReLU(),
        conv(width, 2 * width, 3, padding=1, stride=2, bias=False),
        bn(2 * width),
        nn.ReLU(),
        _pool(d),
        nn.Flatten(),
        nn.Linear(2 * width, num_classes),
    )


@MODELS.register("cnn_mid")
def cnn_mid(input_shape, num_classes, width: int = 32, **_):
    """cnn_wide at half the width (32-32-64-64 channels): a teacher about 4x cheaper to run."""
    return cnn_wide(input_shape, num_classes, width=width)


def names() -> list[str]:
    return MODELS.names()


def create(name: str, input_shape: Sequence[int], num_classes: int, **options) -> nn.Module:
    """Create model `name`: a built-in, or any timm model (`timm.list_models()`), never pretrained."""
    if name in MODELS:
        return MODELS.get(name)(tuple(input_shape), num_classes, **options)
    import timm

    if not timm.is_model(name):
        MODELS.get(name, extra_allowed=["or any timm model name (see timm.list_models())"])
    if len(input_shape) != 3:
        raise UserError(f"timm model {name!r} needs (C, H, W) images; this input is {tuple(input_shape)}")
    return timm.create_model(name, pretrained=False, num_classes=num_classes, in_chans=input_shape[0], **options)


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of an eval-mode model for inference, with each BatchNorm folded into the convolution
    or linear layer before it (torch.fx); the model itself where it cannot be traced. A frozen
    teacher's forward then skips its BatchNorm kernels (~18 % faster for cnn_mid on a CPU); its
    outputs agree to float rounding."""
    from torch.fx.experimental.optimization import fuse

    try:
        return fuse(model.eval())
    except Exception:  # not traceable by torch.fx (data-dependent control flow): keep it as it is
        return model


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


from . import cifar, images28  # noqa: E402,F401  (register the CIFAR zoo and the 28x28 built-ins)
