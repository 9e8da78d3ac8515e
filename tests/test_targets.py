"""Grid targets, decoding, the loss, and the coordinate helpers of the network input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from activepick.detector.data import (
    VIEWS,
    from_input_points,
    inverse_transform_image,
    padded_shape,
    prepare_image,
    resized_shape,
    to_input_points,
    transform_image,
    transform_points,
)
from activepick.detector.targets import (
    decode_grid,
    detector_loss,
    encode_targets,
    grid_shape,
    supervised_cells,
)


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p / (1 - p))


def _output_from_targets(target: np.ndarray) -> torch.Tensor:
    """The raw network output that decodes exactly to ``target`` (objectness +-8 logits)."""
    out = np.zeros((6, *target.shape[1:]), dtype=np.float64)
    out[0] = _logit(np.clip(target[0], 1e-6, 1 - 1e-6))
    out[1] = _logit(np.clip(target[1], 1e-6, 1 - 1e-6))
    out[2:4] = target[2:4]
    out[4] = np.where(target[4] > 0, 8.0, -8.0)
    return torch.as_tensor(out, dtype=torch.float32)


def test_encode_hand_checked_cell_and_offsets():
    enc = encode_targets(np.array([[40.0, 20.0]]), 48.0, (4, 6), anchor=32.0, pos_weight=7.0)
    assert enc.target.shape == (5, 4, 6)
    # u = 40 -> col 2, offset 40/16 - 2 = 0.5; v = 20 -> row 1, offset 0.25
    assert enc.target[4].sum() == 1 and enc.target[4, 1, 2] == 1
    assert enc.target[0, 1, 2] == pytest.approx(0.5)
    assert enc.target[1, 1, 2] == pytest.approx(0.25)
    assert enc.target[2, 1, 2] == pytest.approx(math.log(1.5))
    assert enc.weight[1, 2] == 7.0 and enc.weight.sum() == 7.0 + 23


def test_round_trip_original_pixels_non_square_within_one_pixel():
    rng = np.random.default_rng(3)
    h, w = 750, 1000  # original micrograph, not square
    xy = np.column_stack([rng.uniform(0, w - 1, 30), rng.uniform(0, h - 1, 30)])
    nh, nw = resized_shape((h, w), 512)
    assert (nh, nw) == (384, 512)
    scale = (nw / w, nh / h)
    grid = grid_shape(padded_shape((nh, nw)))
    assert grid == (24, 32)
    uv = to_input_points(xy, scale)
    anchor = 64 * scale[0]
    enc = encode_targets(uv, anchor, grid, anchor)
    dec = decode_grid(_output_from_targets(enc.target), anchor)
    pos = dec["confidence"] > 0.5
    back = from_input_points(np.column_stack([dec["u"][pos], dec["v"][pos]]), scale)
    # pair each decoded centre with the nearest original (cells are unique here)
    assert pos.sum() == len(np.unique(np.floor(uv / 16), axis=0))
    d = np.hypot(*(back[:, None, :] - xy[None, :, :]).transpose(2, 0, 1)).min(axis=1)
    assert d.max() < 1.0
    assert np.allclose(dec["size"][pos], anchor, rtol=1e-5)


def test_negatives_and_partial_supervision_weights():
    grid = (4, 4)
    sup = supervised_cells(np.array([[8.0, 8.0]]), 16.0, grid)
    # cell centres (8, 8), (24, 8), (8, 24) are within 16 px of (8, 8); (24, 24) is 22.6 px away
    assert sup.sum() == 3 and sup[0, 0] and sup[0, 1] and sup[1, 0] and not sup[1, 1]
    enc = encode_targets(
        np.array([[8.0, 8.0]]),
        32.0,
        grid,
        32.0,
        negatives=np.array([[56.0, 56.0]]),
        supervised=sup,
        pos_weight=5.0,
        neg_weight=3.0,
    )
    assert enc.weight[0, 0] == 5.0 and enc.weight[3, 3] == 3.0
    assert enc.weight[0, 1] == 1.0 and enc.weight[2, 2] == 0.0
    assert enc.target[4, 3, 3] == 0.0
    assert supervised_cells(np.empty((0, 2)), 16.0, grid).sum() == 0


def test_loss_hand_checked_on_zero_output():
    target = np.zeros((1, 5, 2, 2), dtype=np.float32)
    target[0, :, 0, 0] = [0.25, 0.75, 0.5, -0.5, 1.0]
    weight = np.array([[[4.0, 1.0], [1.0, 0.0]]], dtype=np.float32)
    out = torch.zeros(1, 6, 2, 2)
    loss, parts = detector_loss(
        out, torch.as_tensor(target), torch.as_tensor(weight), coord_weight=2.0
    )
    # BCE(0 logit) = log 2 per cell; weights 4 + 1 + 1 over 3 supervised cells
    obj = math.log(2) * 6 / 3
    # sigmoid(0) = 0.5 vs 0.25, 0.75; 0 vs 0.5, -0.5 -> 4 * 0.0625 + 2 * 0.25
    coord = 0.0625 * 2 + 0.25 * 2
    assert parts["objectness"] == pytest.approx(obj, rel=1e-6)
    assert parts["coordinates"] == pytest.approx(coord, rel=1e-6)
    assert float(loss) == pytest.approx(obj + 2.0 * coord, rel=1e-6)


def test_loss_without_positives_is_objectness_only_and_differentiable():
    out = torch.zeros(1, 6, 2, 2, requires_grad=True)
    loss, parts = detector_loss(out, torch.zeros(1, 5, 2, 2), torch.ones(1, 2, 2))
    loss.backward()
    assert parts["coordinates"] == 0.0
    assert float(loss.detach()) == pytest.approx(math.log(2))
    assert out.grad is not None


@pytest.mark.parametrize("view", VIEWS)
def test_transform_points_follows_transform_image(view):
    h, w = 6, 10
    image = torch.zeros(1, h, w)
    row, col = 1, 7
    image[0, row, col] = 1.0
    moved = transform_image(image, view)
    r, c = np.argwhere(moved[0].numpy() == 1.0)[0]
    uv = transform_points(np.array([[col + 0.5, row + 0.5]]), (h, w), view)
    assert uv[0] == pytest.approx([c + 0.5, r + 0.5])
    assert torch.equal(inverse_transform_image(moved, view), image)


def test_prepare_image_resizes_normalises_and_pads():
    rng = np.random.default_rng(0)
    image = rng.normal(5.0, 3.0, (300, 500)).astype(np.float32)
    t, (sx, sy) = prepare_image(image, 256)
    assert t.shape == (1, 160, 256)  # 154 x 256 resized, padded to 160
    valid = t[0, :154, :]
    # robust normalisation: the sigma-clipped (3.5 SD) estimate of a Gaussian's SD is
    # 0.3 % low, so the result's SD is 1.003; values are clipped at +-5
    assert float(valid.mean()) == pytest.approx(0.0, abs=1e-2)
    assert float(valid.std()) == pytest.approx(1.0, abs=1e-2)
    assert float(valid.abs().max()) <= 5.0
    assert float(t[0, 154:].abs().max()) == 0.0
    assert sx == pytest.approx(256 / 500) and sy == pytest.approx(154 / 300)
