"""The four model families of the assignments, built from one small config.

* ``mlp``  — Flatten → [Linear → ReLU] × hidden → Linear(10)
* ``nmlp`` — as ``mlp`` with LayerNorm after each hidden Linear and dropout (default 0.2)
* ``bn``   — as ``mlp`` with BatchNorm1d after each hidden Linear; ``dropout`` > 0 gives "BN + dropout"
* ``cnn``  — LeNet-style: conv 5×5 → pool → conv 5×5 → pool → 120 → 84 → 10; with
  ``first_layer="pca"`` its first convolution is fixed to the digits' principal 5×5 patterns
  ([pca_filters][digitnet.models.pca_filters])
* ``cnn-bn`` — as ``cnn`` with BatchNorm after each convolution and each dense layer
* ``vgg``  — VGG-style: two stages of [3×3 conv → BatchNorm → ReLU] × 2 → pool, then the dense head with
  BatchNorm: twice LeNet's depth at over twice its cost, the network of the ``best-cnn`` presets

Every model takes (B, 1, 28, 28) and returns (B, 10) logits; cross-entropy lives in the trainer.

```pycon
>>> model = build_model(ModelConfig(name="mlp", hidden_sizes=(100, 50)))
>>> count_parameters(model)   # 784·100+100 + 100·50+50 + 50·10+10
84060

```
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from digitnet.configs import CNN_MODELS, DEFAULT_CNN_HIDDEN, ModelConfig, widths_text
from digitnet.data import IMAGE_SIZE, NUM_CLASSES

INPUT_PIXELS = IMAGE_SIZE * IMAGE_SIZE


def _dense_stack(
    in_features: int, hidden: tuple[int, ...], dropout: float, norm: Callable[[int], nn.Module] | None
) -> list[nn.Module]:
    """[Linear → (norm) → ReLU → (dropout)] per hidden width, then the Linear to 10 classes."""
    layers: list[nn.Module] = []
    width = in_features
    for size in hidden:
        layers.append(nn.Linear(width, size))
        if norm is not None:
            layers.append(norm(size))
        layers.append(nn.ReLU())
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = size
    layers.append(nn.Linear(width, NUM_CLASSES))
    return layers


class MLP(nn.Sequential):
    """Multi-layer perceptron on flattened pixels; ``norm`` picks plain, LayerNorm or BatchNorm."""

    def __init__(
        self,
        hidden_sizes: tuple[int, ...],
        dropout: float = 0.0,
        norm: Literal["none", "layer", "batch"] = "none",
    ) -> None:
        norm_layer: Callable[[int], nn.Module] | None = {
            "none": None,
            "layer": nn.LayerNorm,
            "batch": nn.BatchNorm1d,
        }[norm]
        super().__init__(nn.Flatten(), *_dense_stack(INPUT_PIXELS, hidden_sizes, dropout, norm_layer))


class _ConvNet(nn.Module):
    """A CNN as ``features`` (convolutions, kept channels-last) then ``classifier`` (the dense head)."""

    features: nn.Sequential
    classifier: nn.Sequential

    def forward(self, x: Tensor) -> Tensor:
        features = self.features(x.contiguous(memory_format=torch.channels_last))
        return self.classifier(features)  # type: ignore[no-any-return]


class LeNet(_ConvNet):
    """LeNet-5 style CNN: two 5×5 conv + 2×2 max-pool stages, then a small dense head.

    The first convolution pads by 2 so a 28×28 digit is treated like LeNet's 32×32 input:
    (B, 1, 28, 28) → conv → (B, c1, 28, 28) → pool → (B, c1, 14, 14) → conv → (B, c2, 10, 10)
    → pool → (B, c2, 5, 5) → flatten → dense head.

    Two choices make it about 1.6× faster on a CPU without changing what it computes:
    pooling comes before the ReLU (max-pool and ReLU commute, so the ReLU touches 4× fewer values),
    and the convolution weights are kept channels-last, the layout oneDNN's convolution and pooling
    kernels are fastest in (measured in scripts/benchmark.py).

    ``batch_norm`` puts BatchNorm after every convolution (before the pool, so the statistics see
    every position) and every hidden dense layer; the convolutions then drop their bias, which the
    BatchNorm shift makes redundant.

    ``fixed_first`` freezes the first convolution (no gradient, not counted as a parameter); its
    filters are then set from the training digits by [use_pca_filters][digitnet.models.use_pca_filters].
    """

    def __init__(
        self,
        channels: tuple[int, int] = (16, 32),
        hidden_sizes: tuple[int, ...] = DEFAULT_CNN_HIDDEN,
        dropout: float = 0.0,
        batch_norm: bool = False,
        fixed_first: bool = False,
    ) -> None:
        super().__init__()
        c1, c2 = channels

        def stage(in_channels: int, out_channels: int, padding: int) -> list[nn.Module]:
            conv = nn.Conv2d(in_channels, out_channels, kernel_size=5, padding=padding, bias=not batch_norm)
            norm: list[nn.Module] = [nn.BatchNorm2d(out_channels)] if batch_norm else []
            return [conv, *norm, nn.MaxPool2d(2), nn.ReLU()]

        self.features = nn.Sequential(*stage(1, c1, 2), *stage(c1, c2, 0), nn.Flatten())
        dense_norm = nn.BatchNorm1d if batch_norm else None
        self.classifier = nn.Sequential(*_dense_stack(c2 * 5 * 5, hidden_sizes, dropout, dense_norm))
        self.features.to(memory_format=torch.channels_last)
        if fixed_first:
            self.features[0].requires_grad_(False)

    def fixed_stage(self) -> tuple[nn.Module, nn.Module] | None:
        """(first stage, the rest of the network) when the first convolution is fixed, else None.

        The first stage (convolution, pool, ReLU) then has nothing to learn and no dropout, so its output
        for a digit never changes: the trainer computes it once per digit and trains the rest on it
        (``rest(first(x))`` is ``self(x)``, the same modules). Without BatchNorm only: a BatchNorm in the
        first stage would still learn.
        """
        if any(p.requires_grad for p in self.features[0].parameters()) or len(self.features) != 7:
            return None
        return _ChannelsLast(self.features[:3]), nn.Sequential(self.features[3:], self.classifier)


class _ChannelsLast(nn.Module):
    """``module`` on its input made channels-last, as [_ConvNet][digitnet.models._ConvNet]'s forward does."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: Tensor) -> Tensor:
        return self.module(x.contiguous(memory_format=torch.channels_last))  # type: ignore[no-any-return]


# Digits whose 5×5 patches give the principal patterns: 2,000 digits are 1.6 million patches, plenty for a
# 25×25 covariance, in under a fifth of a second (5,000 gave filters pointing the same way to within a
# thousandth, in over twice the time).
PCA_DIGITS = 2_000
PCA_CHUNK = 500  # digits unfolded at a time: 500 × 784 patches × 25 pixels, 39 MB


def pca_filters(
    images: Tensor, out_channels: int, kernel: int = 5, padding: int = 2
) -> tuple[Tensor, Tensor]:
    """Weights ``(out_channels, 1, kernel, kernel)`` and bias ``(out_channels,)`` of a convolution whose
    filters are the principal ``kernel``×``kernel`` patterns of ``images`` (N, 1, H, W), whitened.

    The principal patterns are the directions in which small pieces of digits vary most: strokes and edges
    at a few orientations, much like what a first layer learns, found by one eigen-decomposition of the
    patches' 25×25 covariance instead of over epochs (airbench, the fastest CIFAR-10 training, fixes its
    first layer the same way). Each filter is divided by the square root of its pattern's variance, so
    every channel's output has unit variance over the patches (whitening), and the bias subtracts the mean
    patch's response, so each is centred on zero. An eigenvector's sign is arbitrary: each filter is
    turned so its largest weight is positive, and every machine builds the same layer.
    """
    size = kernel * kernel
    total = torch.zeros(size, dtype=torch.float64, device=images.device)
    outer = torch.zeros(size, size, dtype=torch.float64, device=images.device)
    count = 0
    for chunk in torch.split(images[:PCA_DIGITS].float(), PCA_CHUNK):
        patches = F.unfold(chunk, kernel, padding=padding)  # (digits, 25, positions), never transposed
        total += patches.sum((0, 2)).double()
        outer += (patches @ patches.transpose(1, 2)).sum(0).double()  # a 25×25 product per digit
        count += patches.shape[0] * patches.shape[2]
    mean = total / count
    variance, directions = torch.linalg.eigh(outer / count - torch.outer(mean, mean))
    order = variance.argsort(descending=True)[:out_channels]
    filters = directions[:, order].T
    filters = filters * filters.gather(1, filters.abs().argmax(1, keepdim=True)).sign()
    # A pattern with (almost) no variance would be scaled without bound; 1e-4 of the largest caps it.
    filters = filters / (variance[order, None] + 1e-4 * variance.max()).sqrt()
    bias = -(filters @ mean)
    return filters.reshape(out_channels, 1, kernel, kernel).float(), bias.float()


def use_pca_filters(model: nn.Module, images: Tensor) -> None:
    """Set a fixed-first-layer LeNet's first convolution to [pca_filters][digitnet.models.pca_filters] of
    ``images`` (the training split, normalised as the model will see it)."""
    assert isinstance(model, LeNet) and model.fixed_stage() is not None
    conv = model.features[0]
    assert isinstance(conv, nn.Conv2d) and conv.bias is not None
    weight, bias = pca_filters(images, conv.out_channels, conv.kernel_size[0], 2)
    with torch.no_grad():
        conv.weight.copy_(weight)
        conv.bias.copy_(bias)


def fixed_stage(model: nn.Module) -> tuple[nn.Module, nn.Module] | None:
    """``model``'s fixed first stage and the rest (see
    [LeNet.fixed_stage][digitnet.models.LeNet.fixed_stage]), or None for a model that learns every layer."""
    return model.fixed_stage() if isinstance(model, LeNet) else None


class VGG(_ConvNet):
    """Two VGG-style stages, each [3×3 conv → BatchNorm → ReLU] × 2 → 2×2 max-pool, then a dense head.

    (B, 1, 28, 28) → stage → (B, c1, 14, 14) → stage → (B, c2, 7, 7) → flatten → dense head with
    BatchNorm. Stacking two 3×3 convolutions sees the same 5×5 window as LeNet's single 5×5 one but
    with a ReLU in between and fewer weights; the extra depth is what takes a CNN past 99.4% on MNIST
    without augmentation, where the LeNet above stops near 99.4%. The padding keeps every digit's
    border in view, and the layout is channels-last for the reasons given in [LeNet][digitnet.models.LeNet].
    """

    def __init__(
        self,
        channels: tuple[int, int] = (16, 32),
        hidden_sizes: tuple[int, ...] = DEFAULT_CNN_HIDDEN,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()

        def conv(in_channels: int, out_channels: int) -> list[nn.Module]:
            conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False)
            return [conv, nn.BatchNorm2d(out_channels), nn.ReLU()]

        c1, c2 = channels
        self.features = nn.Sequential(
            *conv(1, c1), *conv(c1, c1), nn.MaxPool2d(2),
            *conv(c1, c2), *conv(c2, c2), nn.MaxPool2d(2),
            nn.Flatten(),
        )  # fmt: skip
        self.classifier = nn.Sequential(*_dense_stack(c2 * 7 * 7, hidden_sizes, dropout, nn.BatchNorm1d))
        self.features.to(memory_format=torch.channels_last)


def build_model(config: ModelConfig) -> nn.Module:
    """A freshly initialised model for ``config`` (seed first, for reproducible weights)."""
    hidden = config.hidden_sizes
    dropout = config.dropout
    assert hidden is not None and dropout is not None  # filled in by ModelConfig.__post_init__
    if config.name == "mlp":
        return MLP(hidden, dropout, "none")
    if config.name == "nmlp":
        return MLP(hidden, dropout, "layer")
    if config.name == "bn":
        return MLP(hidden, dropout, "batch")
    if config.name == "vgg":
        return VGG(config.channels, hidden, dropout)
    return LeNet(
        config.channels,
        hidden,
        dropout,
        batch_norm=config.name == "cnn-bn",
        fixed_first=config.first_layer == "pca",
    )


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters (BatchNorm's running statistics are buffers, not parameters)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def planned_parameters(config: ModelConfig) -> int:
    """The parameter count of ``config``'s model, found on PyTorch's "meta" device: shapes without
    storage, so even a model far too large for this machine is counted without allocating it."""
    with torch.device("meta"):
        return count_parameters(build_model(config))


def describe_model(config: ModelConfig) -> str:
    """A short human name such as ``mlp 784-100-50-10`` or ``cnn c16-32 fc120-84``."""
    assert config.hidden_sizes is not None
    if config.name in CNN_MODELS:
        dense = widths_text(config.hidden_sizes).replace(",", "-")
        text = f"{config.name} c{config.channels[0]}-{config.channels[1]} fc{dense}"
    else:
        text = f"{config.name} 784-{widths_text(config.hidden_sizes).replace(',', '-')}-10"
    if config.dropout:
        text += f" dropout {config.dropout:g}"
    if config.first_layer == "pca":
        text += " (PCA first layer)"
    return text


__all__ = [
    "MLP",
    "VGG",
    "LeNet",
    "build_model",
    "count_parameters",
    "describe_model",
    "fixed_stage",
    "pca_filters",
    "planned_parameters",
    "use_pca_filters",
]
