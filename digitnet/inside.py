"""Look inside a trained network: what its first layer learned, how it arranges the digits, where it fails.

Every function here takes a model (and digits) and returns arrays; the figures are drawn by
[digitnet.plotting][] and written by [inspect_run][digitnet.inside.inspect_run], which ``digitnet inspect``
calls. The views:

* the first layer's weights (an MLP unit's 784 weights as a 28×28 image; a CNN's first filters);
* the activations of each convolution stage for one digit per class (CNNs);
* the last hidden layer's activations, projected to 2-D with PCA and t-SNE (scikit-learn);
* input × gradient attributions: which pixels pushed the predicted class's logit up or down;
* each confident mistake beside its nearest training digits in the same hidden space.

```python
paths = inspect_run(Path("runs/mlp-sgd-1a2b3c4d5e6f"))   # weights.png, embedding.png, ... in runs/.../inside
```
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from digitnet.checkpoint import load_checkpoint
from digitnet.data import NUM_CLASSES, NormStats, Split, load_split, saved_run_data, to_tensors
from digitnet.errors import ConfigError, DataError
from digitnet.settings import RunConfig

if TYPE_CHECKING:
    from digitnet.sweep import SweepSpec


@dataclass(frozen=True)
class FirstLayer:
    """A sample of the first layer's units as images: ``images[i]`` is unit ``units[i]``'s weights."""

    kind: str
    """``"unit"`` (an MLP's hidden unit, 28×28) or ``"filter"`` (a CNN's first convolution, k×k)"""
    units: np.ndarray
    images: np.ndarray


def first_layer(model: nn.Module, count: int = 36) -> FirstLayer:
    """The first layer's weights as images, for ``count`` units spread evenly over the layer.

    An MLP's first ``Linear`` multiplies each of its 784 weights with one pixel, so a unit's weight row,
    laid out 28×28, is the pattern it responds to most. A CNN's first convolution slides one small
    filter over the digit; with one input channel each filter is a k×k image.
    """
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            weights = module.weight.detach().float().cpu()[:, 0]  # (C, 1, k, k) -> (C, k, k)
            kind = "filter"
            break
        if isinstance(module, nn.Linear):
            side = round(module.in_features**0.5)
            weights = module.weight.detach().float().cpu().reshape(-1, side, side)  # (H, 784) -> (H, 28, 28)
            kind = "unit"
            break
    else:
        raise DataError("this model has no Linear or Conv2d layer to show")
    total = weights.shape[0]
    units = np.unique(np.linspace(0, total - 1, min(count, total)).round().astype(int))
    return FirstLayer(kind, units, weights[units].numpy())


def _last_linear(model: nn.Module) -> nn.Linear:
    layers = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not layers:
        raise DataError("this model has no Linear layer")
    return layers[-1]


def hidden_activations(model: nn.Module, images: Tensor, batch_size: int = 2048) -> tuple[Tensor, Tensor]:
    """(N, D) activations of the last hidden layer (what the final ``Linear`` reads) and (N, 10) logits.

    The last hidden layer is where the classes must be separable by a straight cut: the final layer is
    linear. Captured with a forward pre-hook, so it works for every model family without knowing its
    layout; eval mode, no gradients.
    """
    captured: list[Tensor] = []

    def keep(_module: nn.Module, inputs: tuple[Tensor, ...]) -> None:
        captured.append(inputs[0].detach().float().cpu())

    handle = _last_linear(model).register_forward_pre_hook(keep)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            logits = [model(batch).float().cpu() for batch in torch.split(images, batch_size)]
    finally:
        handle.remove()
        model.train(was_training)
    return torch.cat(captured), torch.cat(logits)


def stage_activations(model: nn.Module, images: Tensor) -> list[Tensor]:
    """The output of every ReLU in a CNN's ``features`` (one per convolution stage for LeNet), each
    (N, C, H, W); an empty list for a model without convolutions."""
    features = getattr(model, "features", None)
    if not isinstance(features, nn.Sequential):
        return []
    captured: list[Tensor] = []
    handles = [
        m.register_forward_hook(lambda _m, _i, out: captured.append(out.detach().float().cpu()))
        for m in features
        if isinstance(m, nn.ReLU)
    ]
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            model(images)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return captured


def input_x_gradient(model: nn.Module, pixels: Tensor, stats: NormStats, classes: Tensor) -> Tensor:
    """Attribution of class ``classes[i]``'s logit to each pixel of digit ``i``: pixel × ∂logit/∂pixel.

    Taken in pixel space (0–255), before normalisation, so a blank pixel (0) gets no credit: taken on the
    normalised input, the background (about -0.42 under ``standard``) would be credited too. For a linear
    model this is exactly each pixel's term of the logit, weight × input; for a ReLU network it is
    integrated gradients from a black image with a one-step path, one backward pass. That is why this is
    plain autograd rather than captum: the same three lines, no extra dependency, and exact where a test
    can check it.
    """
    was_training = model.training
    model.eval()
    try:
        x = pixels.detach().float().clone().requires_grad_(True)  # (N, 28, 28)
        logits = model(stats.apply(x).unsqueeze(1))  # (N, 1, 28, 28) -> (N, 10)
        chosen = logits.gather(1, classes.view(-1, 1)).sum()
        (gradient,) = torch.autograd.grad(chosen, x)
    finally:
        model.train(was_training)
    return (x * gradient).detach()


def stratified_sample(labels: Tensor, total: int, seed: int = 0) -> np.ndarray:
    """About ``total`` indices, the same share of every class (all of them if there are fewer)."""
    if total >= len(labels):
        return np.arange(len(labels))
    from sklearn.model_selection import train_test_split

    indices = np.arange(len(labels))
    picked, _ = train_test_split(indices, train_size=total, stratify=labels.numpy(), random_state=seed)
    return np.sort(picked)


@dataclass(frozen=True)
class Projection:
    """The same activations seen two ways: PCA keeps global distances, t-SNE keeps neighbourhoods."""

    pca: np.ndarray
    tsne: np.ndarray
    pca_explained: tuple[float, float]
    """Share of the activations' variance along each of the two principal axes"""


def project(activations: np.ndarray, seed: int = 0) -> Projection:
    """(N, D) activations → two (N, 2) maps: PCA (linear) and t-SNE (non-linear, seeded)."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    pca = PCA(n_components=2, random_state=seed).fit(activations)
    perplexity = min(30.0, max(2.0, (len(activations) - 1) / 3))
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(
        activations
    )
    ratio = pca.explained_variance_ratio_
    return Projection(pca.transform(activations), tsne, (float(ratio[0]), float(ratio[1])))


def confident_mistakes(probabilities: Tensor, labels: Tensor, count: int) -> Tensor:
    """Indices of the ``count`` mistakes the model was surest of, most confident first."""
    confidence, predicted = probabilities.max(dim=1)
    wrong = torch.nonzero(predicted != labels).flatten()
    return wrong[confidence[wrong].argsort(descending=True)][:count]


def nearest(queries: np.ndarray, references: np.ndarray, k: int) -> np.ndarray:
    """(Q, k) indices of each query's ``k`` nearest references (Euclidean), nearest first."""
    from sklearn.neighbors import NearestNeighbors

    return np.asarray(NearestNeighbors(n_neighbors=k).fit(references).kneighbors(queries)[1])


def one_per_class(labels: Tensor, correct: Tensor) -> np.ndarray:
    """The first correctly classified digit of each class (the first of the class if none is)."""
    picked = []
    for digit in range(NUM_CLASSES):
        members = torch.nonzero(labels == digit).flatten()
        right = members[correct[members]]
        if len(members):
            picked.append(int((right if len(right) else members)[0]))
    return np.array(picked, dtype=int)


# ------------------------------------------------------------------------------------------- a run


@dataclass(frozen=True)
class InspectConfig:
    """How much of the test set the views use."""

    sample: int = 2000
    """Test digits in the embedding (stratified): t-SNE's time grows faster than linearly"""
    mistakes: int = 6
    """Most confident mistakes in the saliency and neighbour views"""
    correct: int = 3
    """Correct digits beside them in the saliency view"""
    neighbours: int = 5
    seed: int = 0


def inspect_run(
    run_dir: Path, out_dir: Path | None = None, config: InspectConfig | None = None
) -> list[Path]:
    """Write the inside views of a trained run into ``out_dir`` (default ``RUN_DIR/inside``): weights,
    feature maps (CNNs), embedding, saliency and neighbours as PNG (the embedding also as SVG; an SVG of
    a grid of bitmaps is larger and no sharper), and ``summary.json`` (the numbers behind them).
    Returns the files written."""
    from digitnet.plotting import (
        IMAGE_FORMATS,
        plot_embedding,
        plot_feature_maps,
        plot_first_layer,
        plot_neighbours,
        plot_saliency,
        save_figure,
    )
    from digitnet.runtime import atomic_directory, atomic_write_json, claim_output

    config = config or InspectConfig()
    out_dir = out_dir or run_dir / "inside"
    claim_output(out_dir, "figures")  # before any work: never replace what digitnet did not write
    checkpoint = load_checkpoint(run_dir)
    run: RunConfig = checkpoint.config
    model, stats = checkpoint.model, checkpoint.normalization
    split = load_split(saved_run_data(run.data))
    tensors = to_tensors(split, run.data, torch.device("cpu"))
    held_out = split.test if len(split.test) else split.val
    test_x, test_y = (tensors.test_x, tensors.test_y) if len(split.test) else (tensors.val_x, tensors.val_y)
    pixels = held_out.images.float()
    title = run.title()

    hidden, logits = hidden_activations(model, test_x)
    probabilities = torch.softmax(logits, dim=1)
    predicted = probabilities.argmax(dim=1)
    sample = stratified_sample(test_y, config.sample, config.seed)
    projection = project(hidden[sample].numpy(), config.seed)

    mistakes = confident_mistakes(probabilities, test_y, config.mistakes)
    right = torch.nonzero(predicted == test_y).flatten()[: config.correct]
    shown = torch.cat([mistakes, right])
    attributions = input_x_gradient(model, pixels[shown], stats, predicted[shown])
    top3 = probabilities[shown].topk(3, dim=1)

    train_hidden, _ = hidden_activations(model, tensors.train_x)
    neighbour_ids = nearest(hidden[mistakes].numpy(), train_hidden.numpy(), config.neighbours)

    neighbour_labels = tensors.train_y[torch.from_numpy(neighbour_ids)]
    summary = {
        "run": str(run_dir),
        "key": run.key(),
        "inspect": asdict(config),
        "title": title,
        "embedding_digits": len(sample),
        "embedding_misclassified": int((predicted[sample] != test_y[sample]).sum()),
        "pca_explained": list(projection.pca_explained),
        "mistakes": [
            {
                "true": int(test_y[i]),
                "predicted": int(predicted[i]),
                "confidence": float(probabilities[i].max()),
                "neighbours_with_predicted_label": int((row == predicted[i]).sum()),
                "neighbours_with_true_label": int((row == test_y[i]).sum()),
            }
            for i, row in zip(mistakes.tolist(), neighbour_labels, strict=True)
        ],
    }
    written: list[Path] = []
    with atomic_directory(out_dir, "figures") as staging:
        atomic_write_json(staging / "summary.json", summary)
        written.append(staging / "summary.json")
        layer = first_layer(model)
        written += save_figure(plot_first_layer(layer, title), staging / "weights", IMAGE_FORMATS)
        stages = stage_activations(model, test_x[one_per_class(test_y, predicted == test_y)])
        if stages:
            examples = pixels[one_per_class(test_y, predicted == test_y)].numpy()
            written += save_figure(
                plot_feature_maps(examples, [s.numpy() for s in stages], title),
                staging / "feature_maps",
                IMAGE_FORMATS,
            )
        written += save_figure(
            plot_embedding(projection, test_y[sample].numpy(), predicted[sample].numpy(), title),
            staging / "embedding",
        )
        written += save_figure(
            plot_saliency(
                pixels[shown].numpy(),
                attributions.numpy(),
                test_y[shown].numpy(),
                top3.indices.numpy(),
                top3.values.numpy(),
                title,
            ),
            staging / "saliency",
            IMAGE_FORMATS,
        )
        written += save_figure(
            plot_neighbours(
                pixels[mistakes].numpy(),
                test_y[mistakes].numpy(),
                predicted[mistakes].numpy(),
                split.train.images.float()[torch.from_numpy(neighbour_ids)].numpy(),
                tensors.train_y[torch.from_numpy(neighbour_ids)].numpy(),
                title,
            ),
            staging / "neighbours",
            IMAGE_FORMATS,
        )
    return [out_dir / path.name for path in written]


# --------------------------------------------------------------------------- the learning-rate range test


def smooth_losses(losses: Sequence[float], beta: float = 0.98) -> list[float]:
    """Exponential moving average with bias correction (the range test's usual smoothing): step ``i``
    averages the losses so far with weights ``beta**age``, divided by ``1 - beta**(i+1)`` so the first
    steps are not pulled towards zero."""
    smoothed, average = [], 0.0
    for step, loss in enumerate(losses, start=1):
        average = beta * average + (1 - beta) * loss
        smoothed.append(average / (1 - beta**step))
    return smoothed


SMOOTHING_DECADES = 0.2  # the smoothing's window spans at most this share of a decade of rate
LEAST_WINDOW = 5.0  # steps: a shorter window leaves the step-to-step noise in the curve


def smoothing_for(steps: int, decades: float, beta: float = 0.98) -> float:
    """The smoothing of a range test of ``steps`` over ``decades`` of rate: ``beta``, unless its window
    (about ``1 / (1 - beta)`` steps) would span more than a fifth of a decade of rate. An average over 50
    steps trails the loss by that many steps: on MNIST at batch 32 (250 steps a decade) a fifth of a
    decade; at batch 256 (31 steps a decade) more than a decade and a half, so the curve fell, and its
    steepest point was read, where the loss itself had already fallen. The window shrinks with the
    steps, to no fewer than ``LEAST_WINDOW``."""
    window = max(LEAST_WINDOW, SMOOTHING_DECADES * steps / decades)
    return min(beta, 1 - 1 / window)


@dataclass(frozen=True)
class RangeTestConfig:
    """The rates a range test sweeps and when it stops."""

    start_lr: float = 1e-5
    end_lr: float = 10.0
    """Reached at the last step of one pass, if the loss has not blown up first"""
    beta: float = 0.98
    """Smoothing of the per-step loss (see smooth_losses), for a pass of at least
    ``1 / ((1 - beta) · SMOOTHING_DECADES)`` steps per decade of rate (250 at 0.98); a shorter pass is
    smoothed less (see smoothing_for)"""
    stop_factor: float = 4.0
    """The curve ends where the smoothed loss first exceeds this multiple of its lowest so far: divergence"""
    region: float = 0.5
    """The steep region: where the smoothed loss falls at least this share as fast as at its steepest"""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.start_lr) and math.isfinite(self.end_lr)):
            raise ConfigError(
                f"--start-lr/--end-lr: expected finite rates, got {self.start_lr:g} and {self.end_lr:g}"
            )
        if not 0 < self.start_lr < self.end_lr:
            raise ConfigError(
                f"--start-lr/--end-lr: expected 0 < start < end, got {self.start_lr:g} and {self.end_lr:g}"
            )


@dataclass(frozen=True)
class RangeTest:
    """One pass of training with the rate rising exponentially, and what it suggests."""

    rates: list[float]
    """One per step, ``start_lr · q**step``"""
    losses: list[float]
    smoothed: list[float]
    used: int
    """Steps before the loss blew up: the curve the suggestion is read from"""
    suggested_lr: float
    """Where the smoothed loss falls fastest per decade of rate"""
    suggested_range: tuple[float, float]
    """The contiguous region around it where the loss falls at least ``region`` as fast"""
    min_loss_lr: float
    """Where the smoothed loss is lowest: rates beyond it are already too large"""
    smoothing: float = 0.98
    """The β the losses were smoothed with (see smoothing_for): less than the config's for a short pass"""


def suggest_rates(
    rates: Sequence[float], smoothed: Sequence[float], stop_factor: float = 4.0, region: float = 0.5
) -> tuple[int, int, tuple[int, int], int]:
    """Read a range test: (steps used, steepest step, (first, last) step of the steep region, lowest
    step). The slope is taken per decade of rate (``np.gradient`` over log10 of the rates) and only up to
    the lowest point, past which the loss rises. The suggestion and its region stop a third of the lowest
    point's rate short of it: a curve that plunges just before it blows up is steepest at its lowest
    point, and that rate is already too large (the CNN on the sample suggested 0.032, its lowest point,
    where one epoch stayed at chance)."""
    losses = np.asarray(smoothed, dtype=np.float64)
    finite = np.isfinite(losses)
    best_so_far = np.minimum.accumulate(np.where(finite, losses, np.inf))
    blown = np.nonzero(~finite | (losses > stop_factor * best_so_far))[0]
    used = int(blown[0]) if len(blown) else len(losses)
    lowest = int(np.argmin(losses[:used]))
    if lowest < 2:
        raise DataError("the loss never fell: start the range test at a smaller --start-lr")
    slope = np.gradient(losses[: lowest + 1], np.log10(np.asarray(rates[: lowest + 1], dtype=np.float64)))
    below = np.nonzero(np.asarray(rates[: lowest + 1]) <= rates[lowest] / 3)[0]
    cap = int(below[-1]) if len(below) >= 2 else lowest  # too few steps that far below: the whole curve
    steepest = int(np.argmin(slope[: cap + 1]))
    steep = slope <= region * slope[steepest]
    first = steepest
    while first > 0 and steep[first - 1]:
        first -= 1
    last = steepest
    while last < cap and steep[last + 1]:
        last += 1
    return used, steepest, (first, last), lowest


def spans_a_decade(test: RangeTest) -> bool:
    """Whether the steep region is wide enough (about a decade) for a compare of its ends to tell them
    apart; a narrower one is compared from a third to three times the suggestion instead."""
    low, high = test.suggested_range
    return high >= 9 * low


def rates_to_compare(test: RangeTest, centre: float | None = None) -> str:
    """The rates of the ``digitnet compare lr`` to run next, as typed: the steep region's ends and the
    suggestion when they span a decade, else a third of ``centre`` (the suggestion, unless the caller
    distrusts it) to three times it. A compare tells rates apart only if they are far enough apart: a
    steep region of 0.00014 – 0.00017 gave three rates within 1.2× of each other."""
    low, high = test.suggested_range
    centre = test.suggested_lr if centre is None else centre
    wide = centre == test.suggested_lr and spans_a_decade(test)
    rates = (low, centre, high) if wide else (centre / 3, centre, centre * 3)
    return " ".join(dict.fromkeys(f"{rate:.2g}" for rate in rates))  # each once: 0.049 0.049 trains it twice


MIN_RANGE_STEPS = 10  # fewer steps than this cannot show the loss falling, then rising, over the range


def check_range_steps(digits: int, batch_size: int) -> int:
    """The steps of a range test's pass over ``digits`` at ``batch_size``, one per batch; fewer than
    ``MIN_RANGE_STEPS`` is refused in words (it reached the reading as "the loss never fell")."""
    steps = math.ceil(digits / batch_size)
    if steps < MIN_RANGE_STEPS:
        most = (digits - 1) // (MIN_RANGE_STEPS - 1)  # the largest batch leaving MIN_RANGE_STEPS batches
        raise ConfigError(
            f"--batch-size {batch_size}: over the {digits:,} training digits the range test would take "
            f"{steps} step{'s' if steps > 1 else ''} (one per batch), too few to draw a curve; a batch of at "
            f"most {most:,} gives at least {MIN_RANGE_STEPS}, and a few hundred give a usable curve"
        )
    return steps


def lr_range_test(
    config: RunConfig, test: RangeTestConfig | None = None, split: Split | None = None
) -> RangeTest:
    """Train ``config``'s model for one pass over its training split with the rate rising exponentially
    from ``start_lr`` to ``end_lr`` (Smith, 2017), recording the loss at every step.

    Uses the project's own loop ([train_one_epoch][digitnet.trainer.train_one_epoch]) with an
    ``ExponentialLR`` schedule stepped once per batch. The suggestion is a starting point: the rate where
    the loss fell fastest learns quickly at the start of training, not necessarily best over a full run.
    ``split``, if the caller loaded it already, must come from ``config.data``. A batch so large that the
    pass has fewer than ``MIN_RANGE_STEPS`` steps is refused: there is no curve to read.
    """
    from digitnet.data import batch_loader
    from digitnet.models import build_model, use_pca_filters
    from digitnet.optim import build_optimizer
    from digitnet.runtime import (
        choose_threads,
        flushing_denormals,
        resolve_device,
        seed_everything,
        using_threads,
    )
    from digitnet.settings import resolve_run_config
    from digitnet.trainer import train_one_epoch

    test = test or RangeTestConfig()
    config = resolve_run_config(config)
    device = resolve_device(config.train.device)
    threads = config.train.threads or choose_threads()[0]
    split = split if split is not None else load_split(config.data)
    steps = check_range_steps(len(split.train), config.train.batch_size)
    with using_threads(threads), flushing_denormals():
        tensors = to_tensors(split, config.data, device)
        generator = seed_everything(config.train.seed)
        model = build_model(config.model).to(device)
        if config.model.first_layer == "pca":  # as a run sets it, or the test would see random fixed filters
            use_pca_filters(model, tensors.train_x)
        optimizer = build_optimizer(
            model.parameters(), replace(config.optim, lr=test.start_lr, schedule="none")
        )
        growth = (test.end_lr / test.start_lr) ** (1 / max(1, steps - 1))
        scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=growth)
        batches = batch_loader(
            tensors.train_x,
            tensors.train_y,
            config.train.batch_size,
            shuffle=True,
            generator=generator,
            augment=tensors.augment,
            background=tensors.background,
        )
        stats = train_one_epoch(model, batches, optimizer, scheduler, config.train.precision)
    losses = stats.step_losses
    rates = [test.start_lr * growth**step for step in range(len(losses))]
    beta = smoothing_for(steps, math.log10(test.end_lr / test.start_lr), test.beta)
    smoothed = smooth_losses(losses, beta)
    used, steepest, (first, last), lowest = suggest_rates(rates, smoothed, test.stop_factor, test.region)
    return RangeTest(
        rates=rates,
        losses=losses,
        smoothed=smoothed,
        used=used,
        suggested_lr=rates[steepest],
        suggested_range=(rates[first], rates[last]),
        min_loss_lr=rates[lowest],
        smoothing=beta,
    )


# ----------------------------------------------------------------------------------------- the report


def range_test_markdown(test: RangeTest, command: str) -> str:
    """The range test's reading as the docs include it: the command, then suggestion, range and lowest."""
    low, high = test.suggested_range
    return (
        f"```bash\n{command}\n```\n\n"
        "| suggested lr (steepest descent) | steep region | lowest smoothed loss at | steps |\n"
        "|---|---|---|---|\n"
        f"| {test.suggested_lr:.2g} | {low:.2g} – {high:.2g} | {test.min_loss_lr:.2g} "
        f"| {len(test.losses):,} |\n"
    )


def inside_row(summary: dict[str, Any]) -> str:
    """One table row from an inspection's ``summary.json``."""
    first, second = summary["pca_explained"]
    mistakes = summary["mistakes"]
    agree = ", ".join(str(m["neighbours_with_predicted_label"]) for m in mistakes)
    shown = ", ".join(f"{m['true']}→{m['predicted']} ({m['confidence']:.3f})" for m in mistakes)
    return (
        f"| {summary['title']} | {summary['embedding_digits']:,} | {summary['embedding_misclassified']} "
        f"| {100 * first:.1f}% + {100 * second:.1f}% | {shown} | {agree} |\n"
    )


def _inspected_already(run_dir: Path, inspected: Path, inspect: InspectConfig) -> bool:
    """Whether ``inspected`` holds the views of this very run (same config key, same InspectConfig)."""
    try:
        summary = json.loads((inspected / "summary.json").read_text())
        key = json.loads((run_dir / "config.json").read_text())["key"]
    except (OSError, ValueError, KeyError):
        return False
    return bool(summary.get("key") == key and summary.get("inspect") == asdict(inspect))


def _cached_range_test(config: RunConfig, path: Path) -> RangeTest:
    """The range test of ``config``, reused from ``path`` when it was run with the same config and test."""
    from digitnet.runtime import atomic_write_json
    from digitnet.settings import resolve_run_config

    config = resolve_run_config(config)
    stamp = {"key": config.key(), "test": asdict(RangeTestConfig())}
    try:
        saved = json.loads(path.read_text())
        if saved.get("cache") == stamp:
            values = {f.name: saved[f.name] for f in fields(RangeTest)}
            for name in ("losses", "smoothed"):  # null in JSON is a loss that was not finite
                values[name] = [math.nan if v is None else float(v) for v in values[name]]
            return RangeTest(**(values | {"suggested_range": tuple(values["suggested_range"])}))
    except (OSError, ValueError, KeyError, TypeError):
        pass
    test = lr_range_test(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, {"cache": stamp} | asdict(test))
    return test


def draw_inside_figures(
    docs_dir: Path,
    cache_dir: Path,
    runs: dict[str, Path],
    data: dict[str, str],
    inspect: InspectConfig | None = None,
    epochs: int = 10,
) -> list[Path]:
    """The site's "Inside the network" figures and the learning-rate page's range test.

    ``runs`` maps a name (``mlp``, ``cnn``) to a trained run; its views go to
    ``<docs>/figures/inside/<name>/``. The range test runs the baseline (MLP, SGD) on ``data`` and
    writes ``<docs>/figures/lr/lr_find.png`` and ``<docs>/results/lr/lr_find.md``. The baseline is also
    trained with ``--diagnostics`` at three rates (cached like every sweep run), for the training-health
    figures ``<docs>/figures/inside/diagnostics_lr<rate>.png`` and ``<docs>/results/inside/health.md``.
    """
    import shlex
    import shutil

    from digitnet.plotting import IMAGE_FORMATS, plot_lr_find, save_figure
    from digitnet.runtime import atomic_write_text
    from digitnet.settings import make_run_config

    written: list[Path] = []
    rows = []
    for name, run_dir in runs.items():
        target = docs_dir / "figures" / "inside" / name
        target.mkdir(parents=True, exist_ok=True)
        inspected = cache_dir / "inside" / name
        inspect = inspect or InspectConfig()
        if not _inspected_already(run_dir, inspected, inspect):  # t-SNE takes a while: reuse what is current
            inspect_run(run_dir, inspected, inspect)
        for path in sorted(inspected.glob("*.png")):
            shutil.copyfile(path, target / path.name)
            written.append(target / path.name)
        rows.append(inside_row(json.loads((inspected / "summary.json").read_text())))
    table = (
        "| run | test digits shown | misclassified | PCA: variance on the two axes | confident mistakes | "
        "nearest 5 training digits with the predicted label |\n|---|---|---|---|---|---|\n" + "".join(rows)
    )
    atomic_write_text(docs_dir / "results" / "inside" / "table.md", table)
    written.append(docs_dir / "results" / "inside" / "table.md")
    # one thread, as the report's sweeps: the same bits on every rerun, whatever else the machine runs
    settings = {"model": "mlp", "optimizer": "sgd", "threads": 1, **data}
    test = _cached_range_test(make_run_config(settings), cache_dir / "lr-find" / "lr_find.json")
    figure = plot_lr_find(test, "mlp 784-100-50-10 · sgd · batch 32")
    written += save_figure(figure, docs_dir / "figures" / "lr" / "lr_find", IMAGE_FORMATS)
    words = ["digitnet", "lr-find", "--model", "mlp", "--optimizer", "sgd", "--threads", "1"]
    words += ["--dataset", data["dataset"]] if "dataset" in data else []  # the data dir: $DIGITNET_DATA
    table = range_test_markdown(test, shlex.join(words))
    atomic_write_text(docs_dir / "results" / "lr" / "lr_find.md", table)
    written.append(docs_dir / "results" / "lr" / "lr_find.md")
    written += _health_figures(docs_dir, cache_dir, data, epochs)
    return written


HEALTH_RATES = ("0.001", "0.01", "0.1")


def health_spec(data: dict[str, str], epochs: int) -> SweepSpec:
    """The training-health sweep: the baseline MLP with ``--diagnostics`` at each of ``HEALTH_RATES``,
    one seed. ``digitnet report`` trains its runs in one pool with every experiment's."""
    from digitnet.sweep import SweepSpec

    base = {**data, "epochs": epochs, "diagnostics": True}
    return SweepSpec("lr", HEALTH_RATES, tuple(sorted(base.items())), seeds=1)


def _health_figures(docs_dir: Path, cache_dir: Path, data: dict[str, str], epochs: int) -> list[Path]:
    """The baseline MLP with ``--diagnostics`` at a slow, the usual and a large rate: each run's
    ``diagnostics.png`` and a table of the last epoch's numbers per layer."""
    from digitnet.checkpoint import read_json
    from digitnet.history import History
    from digitnet.plotting import IMAGE_FORMATS, plot_diagnostics, save_figure
    from digitnet.runtime import atomic_write_text
    from digitnet.settings import run_config_from_dict
    from digitnet.sweep import run_sweep

    spec = health_spec(data, epochs)
    result = run_sweep(spec, cache_dir / "health", jobs=1, runs_dir=cache_dir / "runs")
    target = docs_dir / "figures" / "inside"
    written: list[Path] = []
    rows = []
    for cell in result.cells:
        run_dir = cell.runs[0].run_dir
        history = History.from_dict(read_json(run_dir / "history.json"))
        # drawn again from the run's history, not copied: the site's figure is the current code's
        title = run_config_from_dict(read_json(run_dir / "config.json")["config"]).title()
        # the full name as the stem: save_figure swaps the suffix, and "0.001" has a dot of its own
        name = target / f"diagnostics_lr{cell.cell.value}.png"
        written += save_figure(plot_diagnostics(history, title), name, IMAGE_FORMATS)
        last = (history.diagnostics or [])[-1]
        for layer in last.layers:
            dead = "—" if layer.dead_fraction is None else f"{100 * layer.dead_fraction:.1f}%"
            rows.append(
                f"| {cell.cell.value} | {layer.layer} | {layer.grad_norm:.3g} | {layer.update_ratio:.2e} "
                f"| {dead} |\n"
            )
    words = ["digitnet", "compare", "lr", *HEALTH_RATES, "--dataset", data["dataset"]]
    command = " ".join([*words, "--epochs", str(epochs), "--diagnostics", "--seeds", "1"])
    table = (
        f"```bash\n{command}\n```\n\n"
        f"Last epoch ({epochs}) of each run, seed 0: the mean over the epoch's steps.\n\n"
        "| lr | layer | gradient norm | update / weight | dead ReLUs |\n|---|---|---|---|---|\n"
        + "".join(rows)
    )
    atomic_write_text(docs_dir / "results" / "inside" / "health.md", table)
    written.append(docs_dir / "results" / "inside" / "health.md")
    return written


__all__ = [
    "FirstLayer",
    "InspectConfig",
    "Projection",
    "RangeTest",
    "RangeTestConfig",
    "check_range_steps",
    "confident_mistakes",
    "draw_inside_figures",
    "first_layer",
    "hidden_activations",
    "input_x_gradient",
    "inside_row",
    "inspect_run",
    "lr_range_test",
    "nearest",
    "one_per_class",
    "project",
    "range_test_markdown",
    "rates_to_compare",
    "smooth_losses",
    "smoothing_for",
    "spans_a_decade",
    "stage_activations",
    "stratified_sample",
    "suggest_rates",
]
