"""Optimizer factory: the right torch.optim class and settings, and fused steps equal plain ones."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from digitnet.errors import ConfigError
from digitnet.optim import OptimConfig, build_optimizer, build_scheduler, eager


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))


def _step_both(steps: int, *pairs: tuple[torch.nn.Module, torch.optim.Optimizer]) -> None:
    """``steps`` full-batch steps of each (model, optimizer) pair on the same fixed batch."""
    x, y = torch.randn(32, 8, generator=torch.Generator().manual_seed(1)), torch.arange(32) % 3
    for _ in range(steps):
        for model, opt in pairs:
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()


@pytest.mark.parametrize(
    ("config", "cls", "reference"),
    [
        (OptimConfig("sgd", lr=0.05), torch.optim.SGD, {"lr": 0.05}),
        (OptimConfig("momentum", lr=0.05, momentum=0.8), torch.optim.SGD, {"lr": 0.05, "momentum": 0.8}),
        (OptimConfig("rmsprop", lr=0.001), torch.optim.RMSprop, {"lr": 0.001}),
        (
            OptimConfig("adam", lr=0.001, weight_decay=1e-4),
            torch.optim.Adam,
            {"lr": 0.001, "weight_decay": 1e-4},
        ),
        (
            OptimConfig("adamw", lr=0.001, weight_decay=0.01),
            torch.optim.AdamW,
            {"lr": 0.001, "weight_decay": 0.01},
        ),
    ],
)
def test_factory_steps_match_plain_torch_optim(
    config: OptimConfig, cls: type, reference: dict[str, float]
) -> None:
    """Five steps of the factory's optimizer (fused where available) equal torch.optim's default path."""
    ours, theirs = _model(), _model()
    opt_ours = build_optimizer(ours.parameters(), config)
    opt_theirs = cls(theirs.parameters(), **reference)
    assert isinstance(opt_ours, cls) and type(opt_ours).__name__ == cls.__name__
    _step_both(5, (ours, opt_ours), (theirs, opt_theirs))
    for a, b in zip(ours.parameters(), theirs.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cls", [torch.optim.SGD, torch.optim.RMSprop, torch.optim.Adam, torch.optim.AdamW])
def test_eager_class_steps_bit_for_bit_as_torch_optim(cls: type[torch.optim.Optimizer]) -> None:
    """Without torch.compile's wrappers the update is the same, bit for bit, and so is the state dict, which
    loads into the plain class (a checkpoint made by one resumes in the other)."""
    ours, theirs = _model(), _model()
    options = {"lr": 0.01, "weight_decay": 1e-3}
    opt_ours, opt_theirs = eager(cls)(ours.parameters(), **options), cls(theirs.parameters(), **options)
    assert type(opt_ours) is not cls, "this torch has the wrappers: eager() must strip them"
    _step_both(3, (ours, opt_ours), (theirs, opt_theirs))
    for a, b in zip(ours.parameters(), theirs.parameters(), strict=True):
        assert torch.equal(a, b)
    reloaded = cls(_model().parameters(), **options)
    reloaded.load_state_dict(opt_ours.state_dict())
    assert str(reloaded.state_dict()) == str(opt_theirs.state_dict())


def test_eager_step_keeps_hooks_and_profiler_ranges() -> None:
    """The lean step still runs every step hook (the diagnostics rely on them; global ones too), lets a
    pre-hook swap the arguments as torch.optim allows, and names itself in a profile while one records;
    zero_grad(set_to_none=False) still zeroes."""
    model = _model()
    optimizer = eager(torch.optim.SGD)(model.parameters(), lr=0.1)
    calls: list[str] = []
    optimizer.register_step_pre_hook(lambda *_: calls.append("pre"))
    optimizer.register_step_post_hook(lambda *_: calls.append("post"))
    handle = register_optimizer_step_post_hook(lambda *_: calls.append("global post"))
    try:
        model(torch.ones(1, 8)).sum().backward()
        optimizer.step()
    finally:
        handle.remove()
    assert calls == ["pre", "post", "global post"]

    closure_calls: list[int] = []

    def closure() -> float:
        closure_calls.append(1)
        return 0.0

    optimizer.register_step_pre_hook(lambda opt, args, kwargs: ((opt,), {"closure": closure}))
    optimizer.step()
    assert closure_calls == [1]

    with torch.profiler.profile() as profile:
        optimizer.step()
        optimizer.zero_grad()
    names = {event.name for event in profile.events()}
    assert {"Optimizer.step#SGD.step", "Optimizer.zero_grad#SGD.zero_grad"} <= names

    model(torch.ones(1, 8)).sum().backward()
    optimizer.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.any() for p in model.parameters())
    optimizer.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_training_never_imports_the_compiler() -> None:
    """Building, stepping, scheduling and checkpointing each optimizer leaves torch._dynamo unimported (the
    1.5 s it costs is start-up every run would pay)."""
    script = """
import sys, torch
from digitnet.configs import OptimConfig
from digitnet.optim import build_optimizer, build_scheduler
for name in ("sgd", "momentum", "rmsprop", "adam", "adamw"):
    model, config = torch.nn.Linear(3, 2), OptimConfig(name, lr=0.01, schedule="onecycle")
    optimizer = build_optimizer(model.parameters(), config)
    scheduler = build_scheduler(optimizer, config, 1, 5)
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step(); scheduler.step(); optimizer.zero_grad()
    optimizer.load_state_dict(optimizer.state_dict())
print("torch._dynamo" in sys.modules)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_defaults_are_the_assignment_baseline() -> None:
    config = OptimConfig()
    assert (config.name, config.lr, config.schedule) == ("sgd", 0.01, "none")


def test_onecycle_warms_up_then_anneals() -> None:
    model = _model()
    optimizer = build_optimizer(model.parameters(), OptimConfig("adam", lr=0.01, schedule="onecycle"))
    scheduler = build_scheduler(optimizer, OptimConfig("adam", lr=0.01, schedule="onecycle"), 2, 50)
    assert scheduler is not None
    lrs = []
    for _ in range(100):
        optimizer.step()
        scheduler.step()
        lrs.append(optimizer.param_groups[0]["lr"])
    peak = max(lrs)
    assert peak == pytest.approx(0.01, rel=0.05)
    assert lrs[0] < peak / 10 and lrs[-1] < peak / 100


def test_step_schedule_divides_by_ten_each_third() -> None:
    model = _model()
    config = OptimConfig("sgd", lr=0.1, schedule="step")
    optimizer = build_optimizer(model.parameters(), config)
    scheduler = build_scheduler(optimizer, config, epochs=3, steps_per_epoch=4)
    assert scheduler is not None
    lrs = []
    for _ in range(12):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert (
        lrs[:4] == [0.1] * 4
        and lrs[4:8] == pytest.approx([0.01] * 4)
        and lrs[8:] == pytest.approx([0.001] * 4)
    )
    assert build_scheduler(optimizer, OptimConfig(), 3, 4) is None


@pytest.mark.parametrize(
    ("kwargs", "flag"),
    [
        ({"lr": 0.0}, "--lr"),
        ({"lr": -1.0}, "--lr"),
        ({"name": "lbfgs"}, "--optimizer"),
        ({"name": "momentum", "momentum": 1.0}, "--momentum"),
        ({"weight_decay": -1.0}, "--weight-decay"),
        ({"schedule": "cosine"}, "--schedule"),
    ],
)
def test_bad_optimizer_settings_name_their_flag(kwargs: dict[str, object], flag: str) -> None:
    with pytest.raises(ConfigError, match=flag):
        OptimConfig(**kwargs)  # type: ignore[arg-type]
