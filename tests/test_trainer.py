"""The training loop: determinism, learning, evaluation against a hand computation, divergence."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from digitnet.data import DataConfig, load_split, to_tensors
from digitnet.models import ModelConfig, build_model
from digitnet.optim import OptimConfig, build_optimizer, build_scheduler
from digitnet.plotting import moving_average
from digitnet.runtime import seed_everything
from digitnet.trainer import History, TrainConfig, evaluate, fit

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def tensors():  # type: ignore[no-untyped-def]
    return to_tensors(load_split(DataConfig(dataset="sample")), DataConfig(), CPU)


def _run(tensors, model="mlp", optimizer="sgd", lr=0.01, epochs=2, seed=0, schedule="none", batch=64):  # type: ignore[no-untyped-def]
    config = TrainConfig(epochs=epochs, batch_size=batch, seed=seed)
    generator = seed_everything(seed)
    net = build_model(ModelConfig(model))
    optim_config = OptimConfig(optimizer, lr=lr, schedule=schedule)
    opt = build_optimizer(net.parameters(), optim_config)
    steps = math.ceil(int(tensors.train_y.shape[0]) / batch)
    history = fit(net, opt, tensors, config, generator, build_scheduler(opt, optim_config, epochs, steps))
    test = evaluate(net, tensors.test_x, tensors.test_y)  # the run layer's job; done here for the checks
    history.test_loss, history.test_accuracy = test.loss, test.accuracy
    return history, net


def test_same_seed_gives_bit_identical_history(tensors) -> None:  # type: ignore[no-untyped-def]
    first, _ = _run(tensors, "bn", "adam", 0.001, seed=5)
    second, _ = _run(tensors, "bn", "adam", 0.001, seed=5)
    assert first.iteration_loss == second.iteration_loss
    assert [r.val_loss for r in first.epochs] == [r.val_loss for r in second.epochs]
    assert first.test_accuracy == second.test_accuracy
    other, _ = _run(tensors, "bn", "adam", 0.001, seed=6)
    assert other.iteration_loss != first.iteration_loss


def test_training_learns_the_sample(tensors) -> None:  # type: ignore[no-untyped-def]
    history, _ = _run(tensors, "mlp", "adam", 0.001, epochs=3)
    assert history.status == "completed" and len(history.epochs) == 3
    steps_per_epoch = math.ceil(int(tensors.train_y.shape[0]) / 64)
    assert len(history.iteration_loss) == 3 * steps_per_epoch
    assert history.epochs[-1].train_loss < history.epochs[0].train_loss
    assert history.test_accuracy is not None and history.test_accuracy > 0.85
    assert all(r.samples_per_second > 0 and r.train_seconds > 0 for r in history.epochs)


def test_cpu_time_is_recorded_only_where_one_thread_trained(tensors) -> None:  # type: ignore[no-untyped-def]
    """One thread on the CPU: each epoch's CPU time is recorded beside its clock time, and the history's
    is their sum. With two threads, their spinning would count as cost, so none is recorded."""
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        single, _ = _run(tensors, epochs=2)
        torch.set_num_threads(2)
        double, _ = _run(tensors, epochs=1)
    finally:
        torch.set_num_threads(before)
    cpu = [r.train_cpu_seconds for r in single.epochs]
    assert all(s is not None and s > 0 for s in cpu)
    assert single.train_cpu_seconds == pytest.approx(sum(s for s in cpu if s is not None))
    assert [r.train_cpu_seconds for r in double.epochs] == [None] and double.train_cpu_seconds is None


def test_epoch_train_loss_is_the_sample_weighted_mean_of_batch_losses(tensors) -> None:  # type: ignore[no-untyped-def]
    history, _ = _run(tensors, epochs=1, batch=1000)
    n = int(tensors.train_y.shape[0])
    sizes = [1000] * (n // 1000) + [n % 1000]
    expected = sum(loss * size for loss, size in zip(history.iteration_loss, sizes, strict=True)) / n
    assert history.epochs[0].train_loss == pytest.approx(expected, rel=1e-9)


def test_evaluate_matches_a_hand_computation(tensors) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = build_model(ModelConfig("bn"))
    model.train()  # evaluate must switch to eval mode itself, and restore the mode afterwards
    result = evaluate(model, tensors.val_x, tensors.val_y, batch_size=100)
    assert model.training
    model.eval()
    with torch.no_grad():
        logits = model(tensors.val_x)
    assert result.loss == pytest.approx(float(F.cross_entropy(logits, tensors.val_y)), rel=1e-5)
    hits = logits.argmax(1) == tensors.val_y
    assert result.correct == int(hits.sum()) and result.total == len(tensors.val_y)
    assert result.per_class_total == torch.bincount(tensors.val_y, minlength=10).tolist()
    assert sum(result.per_class_correct) == result.correct


def test_huge_learning_rate_diverges_cleanly(tensors) -> None:  # type: ignore[no-untyped-def]
    history, _ = _run(tensors, "mlp", "sgd", lr=1e4, epochs=3)
    assert history.status == "diverged"
    assert history.diverged_at is not None and history.diverged_at["epoch"] == 1
    step = history.diverged_at["step"]
    assert all(math.isfinite(loss) for loss in history.iteration_loss[: step - 1])  # the first bad step
    assert not math.isfinite(history.iteration_loss[step - 1])
    assert len(history.iteration_loss) == step  # nothing recorded after it


def test_history_round_trips_through_dict(tensors) -> None:  # type: ignore[no-untyped-def]
    history, _ = _run(tensors, epochs=1)
    assert History.from_dict(history.to_dict()) == history


def test_moving_average_matches_numpy() -> None:
    import numpy as np

    values = np.random.default_rng(0).normal(size=57)
    window = 10
    ours = moving_average(values.tolist(), window)
    full = np.convolve(values, np.ones(window) / window, mode="valid")  # complete windows only
    np.testing.assert_allclose(ours[window - 1 :], full, rtol=1e-12)
    np.testing.assert_allclose(ours[:3], [values[0], values[:2].mean(), values[:3].mean()])
    assert moving_average([], 5) == []


@pytest.mark.parametrize("model_name", ["mlp", "cnn", "cnn-bn", "vgg"])
def test_fast_loop_matches_a_plain_reference_loop(tensors, model_name: str) -> None:  # type: ignore[no-untyped-def]
    """digitnet's loop (index_select batches from a sampler of index tensors, fused Adam, losses read once
    per epoch) against the textbook loop on the same seed and batch order: fancy indexing,
    torch.optim.Adam without fusing, loss.item() every step. Fused and plain Adam round differently, so
    equal to float tolerance. The four-convolution vgg amplifies that rounding past any useful tolerance
    within 64 steps, so its reference takes the same fused Adam and must match exactly: the loop itself
    is what is under test."""
    n = 2048
    subset = tensors.head(n, 256)
    config = TrainConfig(epochs=2, batch_size=64, seed=3)

    generator = seed_everything(3)
    fast_model = build_model(ModelConfig(model_name))
    fast_optimizer = build_optimizer(fast_model.parameters(), OptimConfig("adam", lr=1e-3))
    fast = fit(fast_model, fast_optimizer, subset, config, generator)

    order_generator = seed_everything(3)  # same weights, same shuffling stream
    reference_model = build_model(ModelConfig(model_name))
    fused = True if model_name == "vgg" else None
    reference_optimizer = torch.optim.Adam(reference_model.parameters(), lr=1e-3, fused=fused)
    reference_losses = []
    for _ in range(config.epochs):
        reference_model.train()
        for index in torch.randperm(n, generator=order_generator).split(config.batch_size):
            loss = F.cross_entropy(reference_model(subset.train_x[index]), subset.train_y[index])
            reference_optimizer.zero_grad()
            loss.backward()
            reference_optimizer.step()
            reference_losses.append(loss.item())
    assert len(fast.iteration_loss) == len(reference_losses) == 2 * n // 64
    tolerance = {"rtol": 0.0, "atol": 0.0} if fused else {"rtol": 1e-4, "atol": 1e-5}
    torch.testing.assert_close(torch.tensor(fast.iteration_loss), torch.tensor(reference_losses), **tolerance)
