"""Batch augmentation on tensors: `none`, `weak` (shift, flip, noise) and `strong` (+ Mixup/CutMix).

Images use timm's `Mixup` with Mixup and CutMix; 1-D signals use the same class with CutMix off
(plain mixup), plus random shift and Gaussian noise. Every random draw comes from the generator
passed in (timm's Mixup draws from NumPy's global generator, which the trial seeds).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import torch

AUGMENTS = ("none", "weak", "strong")


def random_shift(
    x: torch.Tensor, max_shift: int, gen: torch.Generator, fill: Optional[Tuple[float, ...]] = None
) -> torch.Tensor:
    """Shift every sample by its own random offset in [-max_shift, max_shift]: the same as padding
    by max_shift and cropping back to the size at a random place (CIFAR's RandomCrop(32, 4)).
    The padding is zero, or `fill` per channel (e.g. a black pixel after normalisation).

    Works for (B, C, L) signals and (B, C, H, W) images (both spatial axes)."""
    if max_shift <= 0:
        return x
    b = x.shape[0]
    spatial = x.shape[2:]
    pad = [max_shift] * (2 * len(spatial))
    if fill is None:
        xp = torch.nn.functional.pad(x, pad)
    else:
        padded = [b, x.shape[1], *(n + 2 * max_shift for n in spatial)]
        value = torch.tensor(fill, dtype=x.dtype, device=x.device).view(1, -1, *([1] * len(spatial)))
        xp = value.expand(padded).clone()
        xp[(slice(None), slice(None), *(slice(max_shift, max_shift + n) for n in spatial))] = x
    offs = [torch.randint(0, 2 * max_shift + 1, (b,), generator=gen).to(x.device) for _ in spatial]
    bi = torch.arange(b, device=x.device)
    if len(spatial) == 1:
        idx = offs[0][:, None] + torch.arange(spatial[0], device=x.device)[None, :]
        return xp.permute(0, 2, 1)[bi[:, None], idx].permute(0, 2, 1).contiguous()
    ih = offs[0][:, None] + torch.arange(spatial[0], device=x.device)[None, :]
    iw = offs[1][:, None] + torch.arange(spatial[1], device=x.device)[None, :]
    out = xp.permute(0, 2, 3, 1)[bi[:, None, None], ih[:, :, None], iw[:, None, :]]
    return out.permute(0, 3, 1, 2).contiguous()


def random_hflip(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    flip = (torch.rand(x.shape[0], generator=gen) < 0.5).to(x.device)
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


@dataclass
class Augmenter:
    level: str
    kind: str
    num_classes: int
    hflip: bool = False
    max_shift: int = 1
    fill: Optional[Tuple[float, ...]] = None  # the shift's padding per channel (None: zero)
    noise: float = 0.0
    mixup: Optional[object] = None  # timm.data.Mixup

    @property
    def mixes(self) -> bool:
        """True when targets come out soft (a (B, classes) distribution)."""
        return self.mixup is not None

    def __call__(self, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator):
        if self.level == "none":
            return x, y
        x = random_shift(x, self.max_shift, gen, self.fill)
        if self.hflip:
            x = random_hflip(x, gen)
        if self.noise > 0:
            x = x + self.noise * torch.randn(x.shape, generator=gen).to(x.device)
        if self.mixup is not None and len(x) >= 2:
            if len(x) % 2:  # timm's Mixup needs an even batch: the last sample sits this one out
                x, y = x[:-1], y[:-1]
            x, y = self.mixup(x, y)
        return x, y


def _mixup(**kw):
    from timm.data import Mixup  # imported only when needed: timm pulls in torchvision

    return Mixup(label_smoothing=0.0, **kw)


def make_augmenter(
    level: str,
    kind: str,
    num_classes: int,
    hflip: bool = False,
    size: int = 8,
    fill: Optional[Tuple[float, ...]] = None,
) -> Augmenter:
    """`weak` on 32x32 images is the CIFAR recipe's augmentation: a random crop of 32 from the image
    padded by 4 (with `fill`: a black pixel for the CIFAR readers) and a horizontal flip."""
    if level == "none":
        return Augmenter(level, kind, num_classes)
    if kind == "image":
        # 1 pixel of shift on 8x8 digits, 4 on 32x32 images.
        aug = Augmenter(level, kind, num_classes, hflip=hflip, max_shift=max(1, size // 8), fill=fill)
        if level == "strong":
            aug.mixup = _mixup(mixup_alpha=0.8, cutmix_alpha=1.0, num_classes=num_classes)
        return aug
    aug = Augmenter(level, kind, num_classes, max_shift=3, noise=0.05)
    if level == "strong":
        aug.noise = 0.1
        aug.mixup = _mixup(mixup_alpha=0.4, cutmix_alpha=0.0, num_classes=num_classes)
    return aug
