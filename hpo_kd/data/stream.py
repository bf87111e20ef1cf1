"""Image files read on demand: a split of an image folder too large to hold in memory.

`ImageFiles` stands where an in-memory split holds a uint8 tensor (N, 3, S, S). The trainer asks
for batches with `take(x, order, device)`: for a tensor, `x[idx]`; for image files, a DataLoader
whose workers open, decode and resize the batch's files (the same `decode` the in-memory load
uses, so both give the same pixels), in pinned memory when the batch goes to a GPU. The batch
order is the trainer's (its generator draws the permutation), and augmentation runs on the
batched tensor on the trial's device, as for an in-memory split: the same seed gives the same
run either way.
"""

from __future__ import annotations

import os
from typing import Iterable, Iterator, Sequence, Union

import numpy as np
import torch

from ..files import hasher

Index = Union[torch.Tensor, slice]


def decode(path: str, size: int) -> torch.Tensor:
    """One image file as a (3, size, size) uint8 tensor: RGB, resized (bilinear, antialiased)."""
    from PIL import Image
    from torchvision.transforms import functional as TF

    with open(path, "rb") as f:
        img = Image.open(f).convert("RGB")
    return TF.pil_to_tensor(TF.resize(img, [size, size]))


class _Decoder(torch.utils.data.Dataset):
    """What a DataLoader worker sees: index -> decoded image."""

    def __init__(self, paths: np.ndarray, size: int):
        self.paths, self.size = paths, size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        return decode(self.paths[i], self.size)


class ImageFiles:
    """A split of image files, decoded when a batch is asked for (see the module's docstring)."""

    def __init__(self, paths: Sequence[str], size: int, workers: int = 2):
        self.paths = np.asarray(paths, dtype=object)
        self.size = int(size)
        self.workers = int(workers)

    @property
    def shape(self):
        return (len(self.paths), 3, self.size, self.size)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, idx) -> "ImageFiles":
        """The files at `idx` (indices, a mask or a slice): a subset, still on disk."""
        return ImageFiles(self.paths[np.asarray(idx) if not isinstance(idx, slice) else idx], self.size, self.workers)

    def to(self, device=None, **_) -> "ImageFiles":
        return self  # stays on disk: each batch is copied to the device when it is read

    def nbytes(self) -> int:
        return int(np.prod(self.shape))

    def digest(self) -> bytes:
        """Names, sizes and modification times of the files, and the image size: what the pixels
        depend on, without reading them."""
        h = hasher()
        h.update(str(self.size).encode())
        for p in self.paths:
            st = os.stat(p)
            h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return h.digest()

    def batches(self, order: Iterable[Index], device: torch.device) -> Iterator[torch.Tensor]:
        """The batches of `order`, decoded by `workers` DataLoader processes (0: in this process),
        each batch copied to `device` (from pinned memory for a GPU)."""
        n = len(self)
        order = [range(*ix.indices(n)) if isinstance(ix, slice) else ix.tolist() for ix in order]
        if not order:
            return
        cuda = torch.device(device).type == "cuda"
        loader = torch.utils.data.DataLoader(
            _Decoder(self.paths, self.size),
            batch_sampler=order,
            num_workers=self.workers,
            pin_memory=cuda,
            prefetch_factor=4 if self.workers else None,
        )
        for xb in loader:
            yield xb.to(device, non_blocking=cuda)

    def load(self) -> np.ndarray:
        """Every image in memory, (N, 3, S, S) uint8, decoded by the workers."""
        if len(self) == 0:
            return np.zeros(self.shape, dtype=np.uint8)
        chunks = [slice(i, i + 256) for i in range(0, len(self), 256)]
        return torch.cat(list(self.batches(chunks, torch.device("cpu")))).numpy()


def take(x, order: Iterable[Index], device: torch.device) -> Iterator[torch.Tensor]:
    """The batches `x[idx]` for each idx of `order` (index tensors or slices), on `device`:
    indexed in memory for a tensor, read from disk for `ImageFiles`."""
    if isinstance(x, ImageFiles):
        return x.batches(order, device)
    return (x[ix] for ix in order)
