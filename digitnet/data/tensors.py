"""Digits as model inputs: normalised tensors on the device, augmentation, and whole-batch loading.

```pycon
>>> import torch
>>> loader = batch_loader(torch.zeros(10, 1, 28, 28), torch.arange(10), batch_size=4)
>>> [tuple(y.tolist()) for _, y in loader]
[(0, 1, 2, 3), (4, 5, 6, 7), (8, 9)]

```
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset, Sampler

from digitnet.configs import DataConfig, Normalization
from digitnet.data.sources import Digits
from digitnet.data.split import Split
from digitnet.errors import ConfigError, DataError


@dataclass(frozen=True)
class NormStats:
    """The affine map ``(pixel - mean) / std`` applied to 0–255 pixel values."""

    mean: float
    std: float

    def apply(self, pixels: Tensor) -> Tensor:
        """``pixels`` (0–255, any shape, floating point) as the model sees them: the one place the map is
        written, for training, the figures and ``predict`` alike."""
        return self.apply_(pixels.clone())

    def apply_(self, pixels: Tensor) -> Tensor:
        """[apply][digitnet.data.tensors.NormStats.apply] in place, for a tensor made to be normalised: a
        whole split is then normalised without another copy of it."""
        return pixels.sub_(self.mean).div_(self.std)


@dataclass(frozen=True)
class TensorSplit:
    """The split as float tensors on one device, normalised, shaped (N, 1, 28, 28) for every model."""

    train_x: Tensor
    train_y: Tensor
    val_x: Tensor
    val_y: Tensor
    test_x: Tensor
    test_y: Tensor
    stats: NormStats
    augment: bool = False
    background: float = field(default=0.0)  # the normalised value of a blank (0) pixel

    def head(self, train: int, evaluate: int) -> TensorSplit:
        """The first ``train`` training digits and first ``evaluate`` validation and test digits.

        For short runs on the same data (benchmarks, tests); normalisation, augmentation and the
        background value carry over, so the short run trains exactly as the full one would.
        """
        return replace(
            self,
            train_x=self.train_x[:train],
            train_y=self.train_y[:train],
            val_x=self.val_x[:evaluate],
            val_y=self.val_y[:evaluate],
            test_x=self.test_x[:evaluate],
            test_y=self.test_y[:evaluate],
        )


# --------------------------------------------------------------------------------------- normalisation


def normalization_stats(train_images: Tensor, mode: Normalization) -> NormStats:
    """The map applied to 0–255 pixels; ``standard`` measures the *training* split only, so validation
    and test stay unseen."""
    if mode == "none":
        return NormStats(0.0, 1.0)
    if mode == "unit":
        return NormStats(0.0, 255.0)
    if train_images.dtype == torch.uint8 and train_images.numel() > 1:
        # From the 256-bin histogram: the same mean and (unbiased) std as over a float64 copy of every
        # pixel, exact up to the last bits, without making that copy (300 MB for MNIST's training split).
        counts = torch.bincount(train_images.flatten(), minlength=256).to(torch.float64)
        values = torch.arange(256, dtype=torch.float64)
        total = counts.sum()
        mean = (counts * values).sum() / total
        std = float(((counts * (values - mean) ** 2).sum() / (total - 1)).sqrt())
        stats = NormStats(float(mean), std)
    else:
        pixels = train_images.to(torch.float64)
        stats = NormStats(float(pixels.mean()), float(pixels.std()))
    if not stats.std > 0:  # every pixel the same (or one pixel): dividing by 0 would make every input NaN
        raise DataError(
            "the training digits have no contrast (every pixel has the same value); "
            "nothing can be learned from them"
        )
    return stats


def to_tensors(split: Split, config: DataConfig, device: torch.device) -> TensorSplit:
    """Normalise once and move the whole split to ``device`` so batches never leave it."""
    stats = normalization_stats(split.train.images, config.normalize)

    def prepare(digits: Digits) -> tuple[Tensor, Tensor]:
        x = digits.images.to(device, torch.float32).unsqueeze(1)  # (N, 1, 28, 28)
        return stats.apply_(x).contiguous(), digits.labels.to(device)

    train_x, train_y = prepare(split.train)
    val_x, val_y = prepare(split.val)
    test_x, test_y = prepare(split.test)
    return TensorSplit(
        train_x,
        train_y,
        val_x,
        val_y,
        test_x,
        test_y,
        stats,
        augment=config.augment,
        background=float(stats.apply(torch.zeros((), dtype=torch.float64))),  # what a blank pixel becomes
    )


# --------------------------------------------------------------------------------------- augmentation


def augment_batch(
    images: Tensor,
    generator: torch.Generator,
    max_degrees: float = 10.0,
    max_shift: float = 2.0,
    background: float = 0.0,
) -> Tensor:
    """Rotate each image by U(±max_degrees) and shift by U(±max_shift) pixels, all in one ``grid_sample``.

    Parameters are drawn from ``generator`` on the CPU so the result is the same on every device.
    Pixels that come in from outside the frame take the ``background`` value (blank paper).
    """
    B = images.shape[0]
    H, W = images.shape[-2:]
    angles = (torch.rand(B, generator=generator) * 2 - 1) * math.radians(max_degrees)
    shifts = (torch.rand(B, 2, generator=generator) * 2 - 1) * max_shift
    cos, sin = torch.cos(angles), torch.sin(angles)
    theta = torch.zeros(B, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = cos, -sin
    theta[:, 1, 0], theta[:, 1, 1] = sin, cos
    # affine_grid works in [-1, 1] coordinates: a shift of s pixels is 2s / size.
    theta[:, 0, 2] = shifts[:, 0] * 2 / W
    theta[:, 1, 2] = shifts[:, 1] * 2 / H
    theta = theta.to(images.device, images.dtype)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    shifted = F.grid_sample(
        images - background, grid, mode="bilinear", padding_mode="zeros", align_corners=False
    )
    return shifted + background


# ------------------------------------------------------------------------------------------- batching


class TensorBatches(Dataset[tuple[Tensor, Tensor]]):
    """A dataset indexed by a whole tensor of indices at once: one gather per batch."""

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        augment: bool = False,
        generator: torch.Generator | None = None,
        background: float = 0.0,
    ) -> None:
        self.images, self.labels = images, labels
        self.augment, self.generator, self.background = augment, generator, background

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, index: Tensor) -> tuple[Tensor, Tensor]:
        if self.images.device.type != "cpu":
            index = index.to(self.images.device, non_blocking=True)
        x = self.images.index_select(0, index)  # ~3× faster than self.images[index] on CPU
        if self.augment:
            assert self.generator is not None
            x = augment_batch(x, self.generator, background=self.background)
        return x, self.labels.index_select(0, index)


class BatchIndexSampler(Sampler[Tensor]):
    """Yields index tensors of ``batch_size`` (the last may be short); reshuffled each epoch if asked."""

    def __init__(self, size: int, batch_size: int, shuffle: bool, generator: torch.Generator | None) -> None:
        if batch_size < 1:
            raise ConfigError(f"--batch-size: expected a whole number ≥ 1, got {batch_size}")
        if shuffle and generator is None:
            raise ValueError("a shuffled sampler needs a seeded generator")
        self.size, self.batch_size, self.shuffle, self.generator = size, batch_size, shuffle, generator

    def __len__(self) -> int:
        return math.ceil(self.size / self.batch_size)

    def __iter__(self) -> Iterator[Tensor]:
        order = (
            torch.randperm(self.size, generator=self.generator) if self.shuffle else torch.arange(self.size)
        )
        yield from torch.split(order, self.batch_size)


class Batches:
    """The batches of one split, in a fresh (shuffled, if asked) order each time it is iterated.

    This is what a ``DataLoader(TensorBatches(...), batch_size=None, sampler=BatchIndexSampler(...))``
    yields, batch for batch, without the DataLoader: with the data already one tensor in memory there is
    nothing left for it to do (no per-sample reads, no collation, no worker processes), and its
    bookkeeping (a profiler range, fetcher and pin-memory checks) cost about 50 µs a batch here, a tenth
    of a small model's training step.
    """

    def __init__(self, dataset: TensorBatches, sampler: BatchIndexSampler) -> None:
        self.dataset, self.sampler = dataset, sampler

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        # A DataLoader draws one number from torch's global generator as each epoch starts (a seed for
        # worker processes, drawn even without any). Drawn here too, dropout, which uses that generator,
        # makes the same masks as when the batches came through a DataLoader: runs trained before and after
        # are the same to the last digit, and one can resume the other.
        torch.empty((), dtype=torch.int64).random_()
        for index in self.sampler:
            yield self.dataset[index]


def batch_loader(
    images: Tensor,
    labels: Tensor,
    batch_size: int,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
    augment: bool = False,
    background: float = 0.0,
) -> Batches:
    """Whole batches, each one gather from ``images`` and ``labels`` (augmented on the way if asked)."""
    dataset = TensorBatches(images, labels, augment, generator, background)
    return Batches(dataset, BatchIndexSampler(len(dataset), batch_size, shuffle, generator))


__all__ = [
    "Batches",
    "NormStats",
    "TensorSplit",
    "augment_batch",
    "batch_loader",
    "normalization_stats",
    "to_tensors",
]
