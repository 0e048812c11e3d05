"""Measured recipes: named sets of settings that ``--preset`` applies before the options given beside it.

Each was measured by ``scripts/presets.py`` (whole ``digitnet train --preset NAME`` processes, several
seeds); the docs' speed and results pages quote those measurements. Presets use the setting names a
student types, so an unknown name in one is the same error as an unknown option.

```pycon
>>> preset_settings("fast")["model"]
'cnn'

```
"""

from __future__ import annotations

from typing import Any

from digitnet.errors import ConfigError

# Recipes measured by scripts/ and documented in the README; explicit options given beside one win.
PRESETS: dict[str, dict[str, Any]] = {
    # The assignments' baseline: MLP 784-100-50-10, SGD lr 0.01, batch 32, 10 epochs (the defaults).
    "baseline": {},
    # About 99% test accuracy in seconds on 2 CPU cores, start-up included: a LeNet with half the
    # channels (4× fewer conv-2 FLOPs) whose first convolution is fixed to the digits' principal 5×5
    # patterns (computed once per digit, so each step trains only from the second convolution on: about
    # half a step's time), Adam with a one-cycle schedule, 4 epochs of batch 256 (3 sat right at 99% on
    # validation; convolutions use the cores better at 256 than 128), evaluated in batches of 512 (LeNet's
    # inference is ~1.4× faster there than at 2048). float32: bfloat16 did not measurably shorten its
    # training (scripts/benchmark.py --compare-precision). Measured by scripts/presets.py.
    "fast": {
        "model": "cnn",
        "channels": (8, 16),
        "first-layer": "pca",
        "optimizer": "adam",
        "lr": 0.01,
        "schedule": "onecycle",
        "batch-size": 256,
        "epochs": 4,
        "eval-batch-size": 512,
    },
    # 99.5% within two minutes a process on 2 CPU cores (the budget it was found for; about 40 s on a
    # processor whose AMX runs bfloat16, the Speed page): the BatchNorm LeNet at 16/32 channels (a
    # quarter of best-cnn's network's cost per digit) with a dense layer of 256 and dropout 0.3, augmentation,
    # AdamW one-cycle lr 0.01, batch 256, 14 epochs, bfloat16. Chosen on validation accuracy among a few
    # recipes of about the same cost (docs/notes/speed-log.md); trained on the 48,000-digit split.
    "best-fast": {
        "model": "cnn-bn",
        "channels": (16, 32),
        "hidden": (256,),
        "dropout": 0.3,
        "optimizer": "adamw",
        "lr": 0.01,
        "weight-decay": 0.01,
        "schedule": "onecycle",
        "batch-size": 256,
        "epochs": 14,
        "augment": True,
        "eval-batch-size": 512,
        "precision": "bfloat16",
    },
    # The best MLP measured here: wider (1024-512) with BatchNorm and dropout 0.3, AdamW with weight decay
    # and a one-cycle schedule, and augmentation, which an MLP (no built-in translation invariance)
    # needs more than a CNN does. 15 epochs.
    "best-mlp": {
        "model": "bn",
        "hidden": (1024, 512),
        "dropout": 0.3,
        "optimizer": "adamw",
        "lr": 0.003,
        "weight-decay": 0.01,
        "schedule": "onecycle",
        "batch-size": 128,
        "epochs": 15,
        "augment": True,
    },
    # The best CNN without augmentation: the VGG-style network (two 3×3 convolutions per stage, 32 and 64
    # channels, BatchNorm, one dense layer of 256), AdamW one-cycle lr 0.003, batch 128, 12 epochs. It
    # fits the training split almost exactly by the end, hence the heavy dropout (0.5) and weight decay
    # (0.05). The BatchNorm LeNet with these settings (15 epochs) averaged just under 99.4% over three
    # seeds; the extra depth is what moved it (docs/results/presets).
    "best-cnn": {
        "model": "vgg",
        "channels": (32, 64),
        "hidden": (256,),
        "dropout": 0.5,
        "optimizer": "adamw",
        "lr": 0.003,
        "weight-decay": 0.05,
        "schedule": "onecycle",
        "batch-size": 128,
        "epochs": 12,
    },
    # best-cnn's network with augmentation (±10°, ≤2 px): the augmented digits keep it from fitting the
    # training split exactly, so it takes the lighter regularisation (dropout 0.3, weight decay 0.01)
    # and, BatchNorm permitting, a peak lr of 0.01; 15 epochs. The same settings on the BatchNorm LeNet
    # (20 epochs) averaged 99.53% over three seeds, short of 99.6; the deeper network is what moved it.
    "best-cnn-aug": {
        "model": "vgg",
        "channels": (32, 64),
        "hidden": (256,),
        "dropout": 0.3,
        "optimizer": "adamw",
        "lr": 0.01,
        "weight-decay": 0.01,
        "schedule": "onecycle",
        "batch-size": 128,
        "epochs": 15,
        "augment": True,
    },
}


def preset_settings(name: str | None) -> dict[str, Any]:
    """The settings of preset ``name`` (``None``: no preset)."""
    if name is None:
        return {}
    if name not in PRESETS:
        raise ConfigError(f"--preset: expected one of {', '.join(PRESETS)}, got {name!r}")
    return dict(PRESETS[name])


PRESET_NAMES = tuple(PRESETS)

__all__ = ["PRESETS", "PRESET_NAMES", "preset_settings"]
