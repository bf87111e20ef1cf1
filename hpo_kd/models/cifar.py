"""CIFAR models of the knowledge-distillation literature (CRD / RepDistiller, mdistiller, DKD...).

The module names, and so the state_dict keys, shapes and parameter counts, follow the CIFAR
definitions of HobbitLong/RepDistiller (`models/`), also used by megvii-research/mdistiller
(`mdistiller/models/cifar/`): the CIFAR-100 teacher checkpoints those projects release load
here with `load_state_dict(strict=True)` (see `hpo_kd.models.checkpoint.load_weights`).
Forward returns the logits only.

The nets are built for 32x32 images. The final pooling is a global average, which on 32x32 input
is exactly the fixed-size pooling of the reference definitions (and also accepts other sizes).
The input channel count follows `input_shape[0]` (3 for the released checkpoints).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from . import MODELS


def _in_channels(input_shape: Sequence[int], name: str) -> int:
    if len(input_shape) != 3:
        raise UserError(f"model {name!r} needs (C, H, W) images; this input is {tuple(input_shape)}")
    return int(input_shape[0])


def _conv3(cin: int, cout: int, stride: int = 1, groups: int = 1, bias: bool = False) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, groups=groups, bias=bias)


def _conv1(cin: int, cout: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride=stride, groups=groups, bias=False)


def _gap(x: torch.Tensor) -> torch.Tensor:
    return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)


def _init_weights(model: nn.Module, linear_std: float | None = None, zero_linear_bias: bool = False):
    """He-normal (fan-out) convolutions, unit/zero BatchNorm, as the reference definitions do."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            if linear_std is not None:
                nn.init.normal_(m.weight, 0.0, linear_std)
            if zero_linear_bias or linear_std is not None:
                nn.init.zeros_(m.bias)


# --------------------------------------------------------------------------- ResNet (CIFAR, 6n+2)


class _ResBlock(nn.Module):
    """Post-activation basic block: two 3x3 conv-BN, identity or 1x1 conv-BN shortcut."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = _conv3(cin, cout, stride)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = _conv3(cout, cout)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(_conv1(cin, cout, stride), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        skip = x if self.downsample is None else self.downsample(x)
        return F.relu(y + skip)


class CifarResNet(nn.Module):
    """ResNet for 32x32 inputs: a 3x3 stem, three stages of n basic blocks (stride 1, 2, 2)."""

    def __init__(self, depth: int, widths: Sequence[int], num_classes: int, in_chans: int = 3):
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"ResNet depth must be 6n+2, got {depth}")
        n = (depth - 2) // 6
        self.conv1 = _conv3(in_chans, widths[0])
        self.bn1 = nn.BatchNorm2d(widths[0])
        c = widths[0]
        for i, (w, s) in enumerate(zip(widths[1:], (1, 2, 2)), start=1):
            blocks = []
            for j in range(n):
                blocks.append(_ResBlock(c, w, s if j == 0 else 1))
                c = w
            setattr(self, f"layer{i}", nn.Sequential(*blocks))
        self.fc = nn.Linear(c, num_classes)
        _init_weights(self)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(_gap(x))


_NARROW = (16, 16, 32, 64)
_X4 = (32, 64, 128, 256)


# name: (depth, widths, description). Parameter counts at 100 classes, as the KD tables round them:
# resnet20 0.28M, resnet56 0.86M, resnet110 1.74M, resnet8x4 1.23M, resnet32x4 7.43M.
_RESNETS = {
    "resnet8": (8, _NARROW, "1 block per stage, 16-16-32-64 channels"),
    "resnet14": (14, _NARROW, "2 blocks per stage, 16-16-32-64 channels"),
    "resnet20": (20, _NARROW, "3 blocks per stage, 16-16-32-64 channels"),
    "resnet32": (32, _NARROW, "5 blocks per stage, 16-16-32-64 channels"),
    "resnet44": (44, _NARROW, "7 blocks per stage, 16-16-32-64 channels"),
    "resnet56": (56, _NARROW, "9 blocks per stage, 16-16-32-64 channels"),
    "resnet110": (110, _NARROW, "18 blocks per stage, 16-16-32-64 channels"),
    "resnet8x4": (8, _X4, "ResNet-8 at 4x width, 32-64-128-256 channels"),
    "resnet32x4": (32, _X4, "ResNet-32 at 4x width, 32-64-128-256 channels"),
}


def _register_resnet(name: str, depth: int, widths, what: str) -> None:
    def create(input_shape, num_classes, **_):
        return CifarResNet(depth, widths, num_classes, _in_channels(input_shape, name))

    create.__name__, create.__doc__ = name, f"CIFAR ResNet ({what})."
    MODELS.register(name)(create)


for _name, (_depth, _widths, _what) in _RESNETS.items():
    _register_resnet(_name, _depth, _widths, _what)


# --------------------------------------------------------------------------- Wide ResNet (6n+4)


class _WideBlock(nn.Module):
    """Pre-activation block (BN-ReLU-conv twice); a 1x1 shortcut conv when the width changes,
    applied to the pre-activated input."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = _conv3(cin, cout, stride)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = _conv3(cout, cout)
        self.convShortcut = None if cin == cout else _conv1(cin, cout, stride)

    def forward(self, x):
        a = F.relu(self.bn1(x))
        y = self.conv2(F.relu(self.bn2(self.conv1(a))))
        return y + (x if self.convShortcut is None else self.convShortcut(a))


class _WideStage(nn.Module):
    def __init__(self, n: int, cin: int, cout: int, stride: int):
        super().__init__()
        self.layer = nn.Sequential(
            *[_WideBlock(cin if i == 0 else cout, cout, stride if i == 0 else 1) for i in range(n)]
        )

    def forward(self, x):
        return self.layer(x)


class WideResNet(nn.Module):
    """WRN-depth-k for 32x32 inputs: 16-16k-32k-64k channels, final BN-ReLU, global pool."""

    def __init__(self, depth: int, widen: int, num_classes: int, in_chans: int = 3):
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"WRN depth must be 6n+4, got {depth}")
        n = (depth - 4) // 6
        w = [16, 16 * widen, 32 * widen, 64 * widen]
        self.conv1 = _conv3(in_chans, w[0])
        self.block1 = _WideStage(n, w[0], w[1], 1)
        self.block2 = _WideStage(n, w[1], w[2], 2)
        self.block3 = _WideStage(n, w[2], w[3], 2)
        self.bn1 = nn.BatchNorm2d(w[3])
        self.fc = nn.Linear(w[3], num_classes)
        _init_weights(self, zero_linear_bias=True)

    def forward(self, x):
        x = self.block3(self.block2(self.block1(self.conv1(x))))
        return self.fc(_gap(F.relu(self.bn1(x))))


@MODELS.register("wrn_16_1")
def wrn_16_1(input_shape, num_classes, **_):
    """Wide ResNet 16-1 (depth 16, width 1)."""
    return WideResNet(16, 1, num_classes, _in_channels(input_shape, "wrn_16_1"))


@MODELS.register("wrn_16_2")
def wrn_16_2(input_shape, num_classes, **_):
    """Wide ResNet 16-2 (depth 16, width 2; 0.70M params at 100 classes)."""
    return WideResNet(16, 2, num_classes, _in_channels(input_shape, "wrn_16_2"))


@MODELS.register("wrn_40_1")
def wrn_40_1(input_shape, num_classes, **_):
    """Wide ResNet 40-1 (depth 40, width 1)."""
    return WideResNet(40, 1, num_classes, _in_channels(input_shape, "wrn_40_1"))


@MODELS.register("wrn_40_2")
def wrn_40_2(input_shape, num_classes, **_):
    """Wide ResNet 40-2 (depth 40, width 2; 2.26M params at 100 classes)."""
    return WideResNet(40, 2, num_classes, _in_channels(input_shape, "wrn_40_2"))


# --------------------------------------------------------------------------- VGG with BatchNorm

_VGG_STAGES = {
    "vgg8": ((64,), (128,), (256,), (512,), (512,)),
    "vgg11": ((64,), (128,), (256, 256), (512, 512), (512, 512)),
    "vgg13": ((64, 64), (128, 128), (256, 256), (512, 512), (512, 512)),
}


def _vgg_stage(cin: int, widths: Sequence[int]) -> nn.Sequential:
    # conv(bias)-BN-ReLU repeated; the stage ends at the last BN (the ReLU is applied in forward),
    # so the Sequential indices are 0 conv, 1 bn, 2 relu, 3 conv, 4 bn, ...
    mods: list[nn.Module] = []
    for w in widths:
        if mods:
            mods.append(nn.ReLU(inplace=True))
        mods += [_conv3(cin, w, bias=True), nn.BatchNorm2d(w)]
        cin = w
    return nn.Sequential(*mods)


class CifarVGG(nn.Module):
    """VGG-BN for 32x32 inputs: five conv stages (max-pool after the first three), global average
    pool, a single linear classifier on 512 features."""

    def __init__(self, stages: Sequence[Sequence[int]], num_classes: int, in_chans: int = 3):
        super().__init__()
        cin = in_chans
        for i, widths in enumerate(stages):
            setattr(self, f"block{i}", _vgg_stage(cin, widths))
            cin = widths[-1]
        self.classifier = nn.Linear(cin, num_classes)
        _init_weights(self, linear_std=0.01)

    def forward(self, x):
        big = x.shape[2] == 64  # the reference pools once more for 64x64 (Tiny-ImageNet) inputs
        x = F.relu(self.block0(x))
        for i in (1, 2, 3):
            x = F.relu(getattr(self, f"block{i}")(F.max_pool2d(x, 2)))
        if big:
            x = F.max_pool2d(x, 2)
        x = F.relu(self.block4(x))
        return self.classifier(_gap(x))


_VGG_WHAT = {"vgg8": "one conv per stage", "vgg11": "configuration A", "vgg13": "configuration B"}


def _register_vgg(name: str, what: str) -> None:
    def create(input_shape, num_classes, **_):
        return CifarVGG(_VGG_STAGES[name], num_classes, _in_channels(input_shape, name))

    create.__name__, create.__doc__ = name, f"CIFAR VGG with BatchNorm ({what})."
    MODELS.register(name)(create)


for _name, _what in _VGG_WHAT.items():
    _register_vgg(_name, _what)


# --------------------------------------------------------------------------- MobileNetV2 (half)


def _conv_bn_relu(cin: int, cout: int, k: int, stride: int = 1) -> nn.Sequential:
    conv = _conv3(cin, cout, stride) if k == 3 else _conv1(cin, cout, stride)
    return nn.Sequential(conv, nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class _InvertedResidual(nn.Module):
    """Expand (1x1) - depthwise 3x3 - project (1x1, linear); residual when shapes agree. The
    expansion conv is kept even at ratio 1, as in the reference."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        mid = cin * expand
        self.residual = stride == 1 and cin == cout
        self.conv = nn.Sequential(
            _conv1(cin, mid),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            _conv3(mid, mid, stride, groups=mid),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            _conv1(mid, cout),
            nn.BatchNorm2d(cout),
        )

    def forward(self, x):
        y = self.conv(x)
        return x + y if self.residual else y


class CifarMobileNetV2(nn.Module):
    """MobileNetV2 for 32x32 inputs (stride-2 stem, 1280-wide head at any width <= 1)."""

    # (expansion, channels, blocks, first stride); expansion None means `expand`.
    SETTING = (
        (1, 16, 1, 1),
        (None, 24, 2, 1),
        (None, 32, 3, 2),
        (None, 64, 4, 2),
        (None, 96, 3, 1),
        (None, 160, 3, 2),
        (None, 320, 1, 1),
    )

    def __init__(self, num_classes: int, expand: int = 6, width: float = 0.5, in_chans: int = 3):
        super().__init__()
        c = int(32 * width)
        self.conv1 = _conv_bn_relu(in_chans, c, 3, stride=2)
        self.blocks = nn.ModuleList()
        for t, ch, n, s in self.SETTING:
            out = int(ch * width)
            stage = []
            for i in range(n):
                stage.append(_InvertedResidual(c, out, s if i == 0 else 1, expand if t is None else t))
                c = out
            self.blocks.append(nn.Sequential(*stage))
        last = int(1280 * width) if width > 1.0 else 1280
        self.conv2 = _conv_bn_relu(c, last, 1)
        self.classifier = nn.Sequential(nn.Linear(last, num_classes))
        _init_weights(self, linear_std=0.01)

    def forward(self, x):
        x = self.conv1(x)
        for stage in self.blocks:
            x = stage(x)
        return self.classifier(_gap(self.conv2(x)))


@MODELS.register("mobilenetv2")
def mobilenetv2(input_shape, num_classes, **_):
    """MobileNetV2 at half width, expansion 6 (the KD papers' `mobile_half`; 0.81M params)."""
    return CifarMobileNetV2(num_classes, 6, 0.5, _in_channels(input_shape, "mobilenetv2"))


# --------------------------------------------------------------------------- ShuffleNet V1 / V2


def _channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class _ShuffleV1Unit(nn.Module):
    """Grouped 1x1 - shuffle - depthwise 3x3 - grouped 1x1; stride 2 concatenates an average-pooled
    shortcut (so the unit adds `cout` channels to its input), stride 1 adds it."""

    def __init__(self, cin: int, cout: int, stride: int, groups: int):
        super().__init__()
        mid = cout // 4
        self.stride = stride
        self.g1 = 1 if cin == 24 else groups  # the stem output is too narrow to group
        self.conv1 = _conv1(cin, mid, groups=self.g1)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = _conv3(mid, mid, stride, groups=mid)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = _conv1(mid, cout, groups=groups)
        self.bn3 = nn.BatchNorm2d(cout)

    def forward(self, x):
        y = _channel_shuffle(F.relu(self.bn1(self.conv1(x))), self.g1)
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        if self.stride == 2:
            return F.relu(torch.cat([y, F.avg_pool2d(x, 3, stride=2, padding=1)], 1))
        return F.relu(y + x)


class CifarShuffleNetV1(nn.Module):
    """ShuffleNet V1 (g=3, 240-480-960 channels, 4-8-4 units) with a 1x1 stem for 32x32 inputs."""

    def __init__(self, num_classes: int, widths=(240, 480, 960), units=(4, 8, 4), groups: int = 3, in_chans: int = 3):
        super().__init__()
        self.conv1 = _conv1(in_chans, 24)
        self.bn1 = nn.BatchNorm2d(24)
        c = 24
        for i, (w, n) in enumerate(zip(widths, units), start=1):
            stage = []
            for j in range(n):
                stage.append(_ShuffleV1Unit(c, w - c if j == 0 else w, 2 if j == 0 else 1, groups))
                c = w
            setattr(self, f"layer{i}", nn.Sequential(*stage))
        self.linear = nn.Linear(c, num_classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.linear(_gap(x))


class _ShuffleV2Unit(nn.Module):
    """Keeps half the channels, runs 1x1 - depthwise 3x3 - 1x1 on the other half, concatenates
    and shuffles."""

    def __init__(self, channels: int):
        super().__init__()
        c = channels // 2
        self.conv1 = _conv1(c, c)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = _conv3(c, c, groups=c)
        self.bn2 = nn.BatchNorm2d(c)
        self.conv3 = _conv1(c, c)
        self.bn3 = nn.BatchNorm2d(c)

    def forward(self, x):
        c = x.shape[1] // 2
        keep, y = x[:, :c], x[:, c:]
        y = F.relu(self.bn1(self.conv1(y)))
        y = self.bn2(self.conv2(y))
        y = F.relu(self.bn3(self.conv3(y)))
        return _channel_shuffle(torch.cat([keep, y], 1), 2)


class _ShuffleV2Down(nn.Module):
    """Stride-2 unit: two branches (dw3x3-1x1 and 1x1-dw3x3-1x1), concatenated and shuffled."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        mid = cout // 2
        self.conv1 = _conv3(cin, cin, 2, groups=cin)
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv2 = _conv1(cin, mid)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = _conv1(cin, mid)
        self.bn3 = nn.BatchNorm2d(mid)
        self.conv4 = _conv3(mid, mid, 2, groups=mid)
        self.bn4 = nn.BatchNorm2d(mid)
        self.conv5 = _conv1(mid, mid)
        self.bn5 = nn.BatchNorm2d(mid)

    def forward(self, x):
        left = F.relu(self.bn2(self.conv2(self.bn1(self.conv1(x)))))
        right = F.relu(self.bn3(self.conv3(x)))
        right = F.relu(self.bn5(self.conv5(self.bn4(self.conv4(right)))))
        return _channel_shuffle(torch.cat([left, right], 1), 2)


class CifarShuffleNetV2(nn.Module):
    """ShuffleNet V2 1x (116-232-464 channels, 3-7-3 units, 1024-wide head), 1x1 stem."""

    def __init__(self, num_classes: int, widths=(116, 232, 464, 1024), units=(3, 7, 3), in_chans: int = 3):
        super().__init__()
        self.conv1 = _conv1(in_chans, 24)
        self.bn1 = nn.BatchNorm2d(24)
        c = 24
        for i, (w, n) in enumerate(zip(widths[:3], units), start=1):
            stage = [_ShuffleV2Down(c, w)] + [_ShuffleV2Unit(w) for _ in range(n)]
            setattr(self, f"layer{i}", nn.Sequential(*stage))
            c = w
        self.conv2 = _conv1(c, widths[3])
        self.bn2 = nn.BatchNorm2d(widths[3])
        self.linear = nn.Linear(widths[3], num_classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return self.linear(_gap(x))


@MODELS.register("shufflenetv1")
def shufflenetv1(input_shape, num_classes, **_):
    """ShuffleNet V1 for CIFAR, groups 3 (the KD papers' `ShuffleV1`; 0.95M params)."""
    return CifarShuffleNetV1(num_classes, in_chans=_in_channels(input_shape, "shufflenetv1"))


@MODELS.register("shufflenetv2")
def shufflenetv2(input_shape, num_classes, **_):
    """ShuffleNet V2 1x for CIFAR (the KD papers' `ShuffleV2`; 1.36M params)."""
    return CifarShuffleNetV2(num_classes, in_chans=_in_channels(input_shape, "shufflenetv2"))


CIFAR_MODELS = (
    "resnet8",
    "resnet14",
    "resnet20",
    "resnet32",
    "resnet44",
    "resnet56",
    "resnet110",
    "resnet8x4",
    "resnet32x4",
    "wrn_16_1",
    "wrn_16_2",
    "wrn_40_1",
    "wrn_40_2",
    "vgg8",
    "vgg11",
    "vgg13",
    "mobilenetv2",
    "shufflenetv1",
    "shufflenetv2",
)
