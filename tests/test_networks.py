"""PhosaurusNet against the thesis table (shapes of every layer, parameter count) and the light variant."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from activepick.detector import DetectorConfig, build_network, count_parameters
from activepick.detector.networks import network_for_config

# The thesis table 2-1 for a 1024 x 1024 input: layer -> (filters, kernel, output H = W).
# A layer's listed shape is before its max-pool (layer 1: 1024 x 1024 x 32).
TABLE = {
    1: (32, 3, 1024),
    2: (64, 3, 512),
    3: (128, 3, 256),
    4: (64, 1, 256),
    5: (128, 3, 256),
    6: (256, 3, 128),
    7: (128, 1, 128),
    8: (256, 3, 128),
    9: (512, 3, 64),
    10: (256, 1, 64),
    11: (512, 3, 64),
    12: (256, 1, 64),
    13: (512, 3, 64),
    14: (1024, 3, 32),
    15: (512, 1, 32),
    16: (1024, 3, 32),
    17: (512, 1, 32),
    18: (1024, 3, 32),
    19: (1024, 3, 32),
    20: (1024, 3, 32),
    21: (256, 1, 64),
    22: (1024, 3, 64),
}


def _input_channels(layer: int, width: float = 1.0) -> int:
    if layer == 1:
        return 1
    if layer == 21:
        return int(TABLE[13][0] * width)
    if layer == 22:
        return int((TABLE[20][0] + TABLE[21][0]) * width)
    return int(TABLE[layer - 1][0] * width)


def _expected_parameters(width: float = 1.0) -> int:
    """By hand from the table: conv k*k*cin*cout (no bias) + BN 2*cout, + head C22*6 + 6."""
    total = 0
    for layer, (filters, kernel, _) in TABLE.items():
        cout = int(filters * width)
        total += kernel * kernel * _input_channels(layer, width) * cout + 2 * cout
    return total + int(1024 * width) * 6 + 6


def _shapes_with_hooks(net: nn.Module, x: torch.Tensor) -> tuple[dict, torch.Size, torch.Size]:
    shapes: dict[int, torch.Size] = {}
    concat: list[torch.Size] = []
    handles = [
        getattr(net, f"layer{i}").register_forward_hook(
            lambda _m, _i, out, i=i: shapes.__setitem__(i, out.shape)
        )
        for i in TABLE
    ]
    handles.append(
        net.layer22.register_forward_pre_hook(lambda _m, inp: concat.append(inp[0].shape))
    )
    with torch.no_grad():
        out = net(x)
    for h in handles:
        h.remove()
    return shapes, concat[0], out.shape


def test_full_network_matches_the_thesis_table_at_1024():
    with torch.device("meta"):
        net = build_network("full")
        shapes, concat, out = _shapes_with_hooks(net, torch.empty(1, 1, 1024, 1024))
    for layer, (filters, _, size) in TABLE.items():
        assert shapes[layer] == (1, filters, size, size), f"layer {layer}"
    assert concat == (1, 1280, 64, 64)
    assert shapes[22] == (1, 1024, 64, 64)
    assert out == (1, 6, 64, 64)


def test_full_network_parameter_count_from_the_table():
    with torch.device("meta"):
        net = build_network("full")
    assert _expected_parameters() == 50_631_526  # the hand sum, written out once
    assert count_parameters(net) == _expected_parameters()


def test_light_network_same_topology_quarter_width_real_forward():
    torch.manual_seed(0)
    net = build_network("light").eval()
    assert count_parameters(net) == _expected_parameters(0.25)
    assert 2.5e6 < count_parameters(net) < 3.5e6
    shapes, concat, out = _shapes_with_hooks(net, torch.randn(1, 1, 1024, 1024))
    for layer, (filters, _, size) in TABLE.items():
        assert shapes[layer] == (1, filters // 4, size, size), f"layer {layer}"
    assert concat == (1, 320, 64, 64)
    assert out == (1, 6, 64, 64)


def test_non_square_input_gives_stride_16_grid():
    net = build_network("light", width=0.125).eval()
    with torch.no_grad():
        out = net(torch.randn(2, 1, 64, 160))
    assert out.shape == (2, 6, 4, 10)
    assert torch.isfinite(out).all()


def test_every_conv_has_batchnorm_and_leaky_relu_and_head_has_dropout():
    net = build_network("light")
    for layer in TABLE:
        conv, bn, act = getattr(net, f"layer{layer}")
        assert isinstance(conv, nn.Conv2d) and conv.bias is None
        assert conv.kernel_size == (TABLE[layer][1],) * 2
        assert isinstance(bn, nn.BatchNorm2d)
        assert isinstance(act, nn.LeakyReLU) and act.negative_slope == pytest.approx(0.1)
    dropout, conv = net.head
    assert isinstance(dropout, nn.Dropout) and dropout.p == pytest.approx(0.2)
    assert conv.kernel_size == (1, 1) and conv.out_channels == 6 and conv.bias is not None


def test_architecture_selection_by_name():
    assert build_network("light", width=0.5).layer1[0].out_channels == 16
    cfg = DetectorConfig(arch="light", width=0.125)
    assert network_for_config(cfg).layer22[0].out_channels == 128
    with pytest.raises(ValueError, match="unknown architecture"):
        build_network("medium")
    with pytest.raises(ValueError, match="width"):
        build_network("full", width=0.5)
    with pytest.raises(ValueError, match="arch"):
        DetectorConfig(arch="tiny")
