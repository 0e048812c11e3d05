"""Models: parameter counts computed by hand, shapes, family defaults, config validation."""

from __future__ import annotations

from itertools import pairwise

import pytest
import torch
from torch import nn

from digitnet.configs import MODELS, ModelConfig, parse_hidden
from digitnet.errors import ConfigError
from digitnet.models import build_model, count_parameters, describe_model


def dense(sizes: list[int]) -> int:
    """Weights + biases of a chain of Linear layers, by hand."""
    return sum(a * b + b for a, b in pairwise(sizes))


def test_mlp_parameter_count_by_hand() -> None:
    assert count_parameters(build_model(ModelConfig("mlp", (128, 64)))) == 109_386
    assert count_parameters(build_model(ModelConfig("mlp", (100, 50)))) == dense([784, 100, 50, 10]) == 84_060


def test_norm_layers_add_a_scale_and_shift_per_unit() -> None:
    base = dense([784, 100, 50, 10])
    assert count_parameters(build_model(ModelConfig("nmlp", (100, 50)))) == base + 2 * (100 + 50)
    assert count_parameters(build_model(ModelConfig("bn", (100, 50)))) == base + 2 * (100 + 50)


def test_lenet_parameter_count_by_hand() -> None:
    conv1 = 1 * 16 * 5 * 5 + 16
    conv2 = 16 * 32 * 5 * 5 + 32
    assert count_parameters(build_model(ModelConfig("cnn"))) == conv1 + conv2 + dense(
        [32 * 5 * 5, 120, 84, 10]
    )


def test_batchnorm_lenet_drops_conv_biases_and_adds_a_scale_and_shift_per_channel_and_unit() -> None:
    conv1 = 1 * 16 * 5 * 5
    conv2 = 16 * 32 * 5 * 5
    norms = 2 * (16 + 32) + 2 * (120 + 84)
    assert count_parameters(build_model(ModelConfig("cnn-bn"))) == conv1 + conv2 + norms + dense(
        [32 * 5 * 5, 120, 84, 10]
    )
    layers = [type(m) for m in build_model(ModelConfig("cnn-bn", dropout=0.3)).modules()]
    assert layers.count(nn.BatchNorm2d) == 2 and layers.count(nn.BatchNorm1d) == 2
    assert layers.count(nn.Dropout) == 2
    assert describe_model(ModelConfig("cnn-bn", channels=(32, 64), hidden_sizes=(256,))) == (
        "cnn-bn c32-64 fc256"
    )


def test_vgg_parameter_count_by_hand() -> None:
    """Four bias-free 3×3 convolutions, a BatchNorm per conv channel and dense unit, a 7×7 feature map."""
    convs = 1 * 16 * 9 + 16 * 16 * 9 + 16 * 32 * 9 + 32 * 32 * 9
    norms = 2 * (16 + 16 + 32 + 32) + 2 * (120 + 84)
    head = dense([32 * 7 * 7, 120, 84, 10])
    assert count_parameters(build_model(ModelConfig("vgg"))) == convs + norms + head
    layers = [type(m) for m in build_model(ModelConfig("vgg", dropout=0.5)).modules()]
    assert layers.count(nn.Conv2d) == 4 and layers.count(nn.BatchNorm2d) == 4
    assert layers.count(nn.MaxPool2d) == 2 and layers.count(nn.Dropout) == 2
    assert describe_model(ModelConfig("vgg", channels=(32, 64), hidden_sizes=(256,))) == "vgg c32-64 fc256"


def test_plain_lenet_keeps_its_layer_indices_so_saved_checkpoints_still_load() -> None:
    names = list(build_model(ModelConfig("cnn")).state_dict())
    assert names[:4] == ["features.0.weight", "features.0.bias", "features.3.weight", "features.3.bias"]


@pytest.mark.parametrize("name", MODELS)
def test_every_model_maps_digits_to_ten_logits(name: str) -> None:
    model = build_model(ModelConfig(name))  # type: ignore[arg-type]
    assert model(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


def test_family_defaults() -> None:
    assert ModelConfig("nmlp").dropout == 0.2
    assert ModelConfig("mlp").dropout == 0.0
    assert ModelConfig("cnn").hidden_sizes == (120, 84)
    assert ModelConfig("cnn-bn").hidden_sizes == (120, 84)
    assert ModelConfig("vgg").hidden_sizes == (120, 84)
    layers = [type(m) for m in build_model(ModelConfig("nmlp"))]
    assert layers.count(nn.LayerNorm) == 2 and layers.count(nn.Dropout) == 2
    bn_dropout = [type(m) for m in build_model(ModelConfig("bn", dropout=0.3))]
    assert bn_dropout.count(nn.BatchNorm1d) == 2 and bn_dropout.count(nn.Dropout) == 2
    assert nn.Dropout not in [type(m) for m in build_model(ModelConfig("bn"))]


def test_same_seed_same_weights() -> None:
    torch.manual_seed(0)
    a = build_model(ModelConfig("cnn")).state_dict()
    torch.manual_seed(0)
    b = build_model(ModelConfig("cnn")).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(
    ("kwargs", "flag"),
    [
        ({"name": "resnet"}, "--model"),
        ({"hidden_sizes": (100, 0)}, "--hidden"),
        ({"dropout": 1.0}, "--dropout"),
        ({"dropout": -0.1}, "--dropout"),
    ],
)
def test_bad_model_settings_name_their_flag(kwargs: dict[str, object], flag: str) -> None:
    with pytest.raises(ConfigError, match=flag):
        ModelConfig(**kwargs)  # type: ignore[arg-type]


def test_parse_hidden() -> None:
    assert parse_hidden("100, 50") == (100, 50)
    for bad in ("", "a,b", "100,-1", "0", "100,,50", "100,", ",50"):
        with pytest.raises(ConfigError, match="--hidden"):
            parse_hidden(bad)


def test_describe_model() -> None:
    assert describe_model(ModelConfig("mlp")) == "mlp 784-100-50-10"
    assert describe_model(ModelConfig("nmlp")) == "nmlp 784-100-50-10 dropout 0.2"


def test_lenet_pooling_before_relu_computes_the_textbook_order() -> None:
    """ReLU and max-pool commute, so the faster order gives the same outputs and gradients."""
    torch.manual_seed(0)
    model = build_model(ModelConfig("cnn"))
    assert isinstance(model, torch.nn.Module)
    conv1, conv2 = model.features[0], model.features[3]  # type: ignore[index]

    def textbook(x: torch.Tensor) -> torch.Tensor:
        pool = torch.nn.functional.max_pool2d
        x = pool(torch.relu(conv1(x)), 2)
        x = pool(torch.relu(conv2(x)), 2)
        return model.classifier(x.flatten(1))  # type: ignore[no-any-return,operator]

    x = torch.randn(8, 1, 28, 28)
    torch.testing.assert_close(model(x), textbook(x))
    model(x).sum().backward()
    fast_grad = conv1.weight.grad.clone()
    model.zero_grad()
    textbook(x).sum().backward()
    torch.testing.assert_close(fast_grad, conv1.weight.grad)
