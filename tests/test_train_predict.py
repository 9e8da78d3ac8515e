"""Training (seeded, cancellable, partial labels, warm start) and prediction (placement, NMS, threshold,
MC dropout, TTA). The quality floor on simulated micrographs is in test_detector_quality.py."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from activepick.constants import STATUS_PREDICTED, STATUS_REJECTED
from activepick.detector import (
    DISAGREEMENT_COLUMN,
    Detector,
    DetectorConfig,
    iter_train_detector,
    predict_picks,
    train_detector,
)
from activepick.errors import Cancelled, CheckpointError
from activepick.io.picks import make_picks


class _Image:
    def __init__(self, name: str, data: np.ndarray) -> None:
        self.name, self.data = name, data


def _disc_image(shape, centres, rng, diameter=16.0, noise=0.3) -> np.ndarray:
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    image = rng.normal(0, noise, shape).astype(np.float32)
    for x, y in centres:
        image[(xx - x) ** 2 + (yy - y) ** 2 < (diameter / 2) ** 2] += 1.0
    return image


def _tiny_data(n=2, shape=(128, 128), seed=0):
    rng = np.random.default_rng(seed)
    mics, labels = [], []
    for i in range(n):
        xy = np.column_stack([rng.uniform(12, shape[1] - 12, 4), rng.uniform(12, shape[0] - 12, 4)])
        mics.append(_Image(f"m{i}", _disc_image(shape, xy, rng)))
        labels.append(make_picks(f"m{i}", xy[:, 0], xy[:, 1], 16.0))
    return mics, pd.concat(labels, ignore_index=True)


def _tiny_config(**kw) -> DetectorConfig:
    base = dict(
        arch="light",
        width=0.125,
        diameter=16.0,
        input_size=128,
        epochs=1,
        batch_size=2,
        device="cpu",
    )
    base.update(kw)
    return DetectorConfig(**base)


def test_training_is_seeded_and_repeatable_on_cpu():
    mics, labels = _tiny_data(3)
    runs = []
    for _ in range(2):
        losses = []
        det = train_detector(
            mics, labels, _tiny_config(), progress=lambda p, out=losses: out.append(p["loss"])
        )
        runs.append((det, losses))
    (a, la), (b, lb) = runs
    assert la == lb and len(la) == 2  # 3 micrographs, batch 2 -> 2 steps
    for k, v in a.network.state_dict().items():
        assert torch.equal(v, b.network.state_dict()[k]), k
    c = train_detector(mics, labels, _tiny_config(seed=1))
    assert not torch.equal(a.network.layer1[0].weight, c.network.layer1[0].weight)


def test_progress_dicts_and_returned_detector():
    mics, labels = _tiny_data(3)
    gen = iter_train_detector(mics, labels, _tiny_config(epochs=2))
    seen = []
    with pytest.raises(StopIteration) as stop:
        while True:
            seen.append(next(gen))
    det = stop.value.value
    assert [(p["epoch"], p["step"]) for p in seen] == [(1, 1), (1, 2), (2, 3), (2, 4)]
    assert all(p["stage"] == "train" and p["steps"] == 4 and p["epochs"] == 2 for p in seen)
    assert all(np.isfinite(p["loss"]) for p in seen)
    assert isinstance(det, Detector) and not det.network.training
    assert det.meta["n_labels"] == 12 and det.meta["steps"] == 4
    assert det.device == torch.device("cpu")


def test_cancel_is_prompt():
    mics, labels = _tiny_data(4)
    steps = []
    with pytest.raises(Cancelled):
        train_detector(
            mics,
            labels,
            _tiny_config(epochs=5, batch_size=1),
            progress=lambda p: steps.append(p["step"]),
            should_stop=lambda: len(steps) >= 2,
        )
    assert len(steps) <= 3


def test_auto_input_size_and_non_square_training():
    rng = np.random.default_rng(1)
    xy = np.array([[30.0, 40.0], [200.0, 100.0]])
    mics = [_Image("wide", _disc_image((150, 300), xy, rng, diameter=32))]
    labels = make_picks("wide", xy[:, 0], xy[:, 1], 32.0)
    det = train_detector(
        mics, labels, _tiny_config(input_size=None, diameter=32.0, epochs=2, batch_size=1)
    )
    assert det.config.input_size == 288  # 300 * 32 / 32 = 300 -> nearest multiple of 32
    picks = det.predict(mics)
    assert (picks["x"] < 300).all() and (picks["y"] < 150).all()


def test_partial_labels_skip_unreviewed_micrographs_and_count_negatives():
    mics, labels = _tiny_data(3)
    labels = labels[labels["micrograph"] == "m0"]
    negatives = make_picks("m1", [20.0], [30.0], 16.0, status=STATUS_REJECTED)
    det = train_detector(mics, labels, _tiny_config(), negatives=negatives, partial=True)
    assert det.meta["micrographs"] == ["m0", "m1"] and det.meta["n_negatives"] == 1
    det = train_detector(mics, labels, _tiny_config(), partial=True, complete={"m2"})
    assert sorted(det.meta["micrographs"]) == ["m0", "m2"] and det.meta["n_complete"] == 1
    det = train_detector(mics, labels, _tiny_config(), partial=False)
    assert det.meta["n_micrographs"] == 3


def test_warm_start_uses_init_weights_and_rejects_other_arch():
    mics, labels = _tiny_data(2)
    first = train_detector(mics, labels, _tiny_config())
    second = train_detector(mics, labels, _tiny_config(epochs=0, seed=5), init=first)
    for k, v in first.network.state_dict().items():
        assert torch.equal(v, second.network.state_dict()[k]), k
    with pytest.raises(CheckpointError, match="warm start"):
        train_detector(mics, labels, _tiny_config(width=0.25), init=first)


class _BrightCellNet(nn.Module):
    """Stand-in network: objectness = max intensity of the cell, offsets at the cell centre."""

    def __init__(self) -> None:
        super().__init__()
        conv = nn.Conv2d(1, 6, 1)
        with torch.no_grad():
            conv.weight.zero_()
            conv.bias.zero_()
            conv.weight[4, 0] = 2.0
            conv.bias[4] = -6.0
        self.head = nn.Sequential(nn.Dropout(0.2), conv)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.max_pool2d(x, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _bright_detector(diameter=20.0, input_size=320) -> Detector:
    return Detector(_BrightCellNet().eval(), _tiny_config(diameter=diameter, input_size=input_size))


def _spots(shape, centres) -> np.ndarray:
    image = np.zeros(shape, dtype=np.float32)
    for x, y in centres:
        image[int(y) - 1 : int(y) + 2, int(x) - 1 : int(x) + 2] = 100.0
    return image


def test_prediction_lands_on_the_right_place_non_square():
    # 400 x 640 (H x W) micrograph, input 320 -> scale 0.5, one cell = 32 original px
    centres = np.array([[600.0, 50.0], [100.0, 370.0]])
    picks = predict_picks(
        _bright_detector(), [_Image("rect", _spots((400, 640), centres))], threshold=0.5
    )
    assert len(picks) == 2
    assert (picks["status"] == STATUS_PREDICTED).all() and (picks["diameter"] == 20.0).all()
    got = picks.sort_values("x")[["x", "y"]].to_numpy()
    # the decoded centre is the centre of the cell holding the spot: within half a cell (16 px)
    assert np.abs(got - centres[::-1]).max() <= 16.0
    assert got[0] == pytest.approx(
        [111.5, 367.5]
    )  # cell (row 11, col 3): ((3 + .5) * 32 - .5, (11 + .5) * 32 - .5)


def test_threshold_and_circle_nms():
    image = _spots((320, 320), [[40.0, 40.0], [56.0, 40.0], [200.0, 200.0]])
    det = _bright_detector(diameter=40.0, input_size=320)
    picks = det.predict([_Image("a", image)], threshold=0.5)
    # the first two spots lie in neighbouring cells 16 px apart: IoU(d=16, r=20) = 0.35 > 0.3 -> one kept
    assert len(picks) == 2
    assert (picks["confidence"] >= 0.5).all()
    picks = det.predict([_Image("a", image)], threshold=0.5, nms_iou=1.0)
    assert len(picks) == 3
    all_cells = det.predict([_Image("a", image)], threshold=0.0, nms_iou=1.0)
    assert len(all_cells) == 20 * 20
    assert np.all(np.diff(all_cells["confidence"].to_numpy()) <= 0)  # most confident first


def test_mc_dropout_and_tta_disagreement():
    image = _spots((400, 640), [[600.0, 50.0]])
    det = _bright_detector()
    mics = [_Image("rect", image), _Image("square", _spots((320, 320), [[100.0, 60.0]]))]
    mc1 = det.predict(mics, threshold=0.5, mc_dropout=20, seed=3)
    mc2 = det.predict(mics, threshold=0.5, mc_dropout=20, seed=3)
    assert DISAGREEMENT_COLUMN in mc1 and len(mc1) == 2
    assert mc1[DISAGREEMENT_COLUMN].equals(mc2[DISAGREEMENT_COLUMN])
    # with p = 0.2 the single feature of the bright cell is dropped in some of 20 passes
    assert (mc1[DISAGREEMENT_COLUMN] > 0.05).all()
    tta = det.predict(mics, threshold=0.5, tta=True)
    # the stand-in is equivariant: every view finds the spot in the same cell once mapped back
    assert len(tta) == 2 and (tta[DISAGREEMENT_COLUMN] < 1e-6).all()
    plain = det.predict(mics, threshold=0.5)
    assert DISAGREEMENT_COLUMN not in plain
    assert np.allclose(plain["confidence"], tta["confidence"])


def test_prediction_progress_and_cancel():
    mics = [_Image(f"m{i}", _spots((320, 320), [[100.0, 100.0]])) for i in range(5)]
    seen = []
    predict_picks(_bright_detector(), mics, batch_size=2, progress=seen.append)
    assert [p["step"] for p in seen] == [1, 2, 3, 4, 5] and seen[-1]["total"] == 5
    with pytest.raises(Cancelled):
        predict_picks(_bright_detector(), mics, batch_size=2, should_stop=lambda: True)


# ---------------------------------------------------------------------- issue 9 rules


def test_partial_supervision_leaves_unlabelled_cells_out_of_the_loss():
    from activepick.detector.targets import detector_loss
    from activepick.detector.train import _encode_sample, _Sample

    # input 256 px, grid 16 x 16 of 16 px cells, anchor (diameter) 32 input px
    sample = _Sample(
        name="m",
        image=torch.zeros(1, 256, 256),
        positives=np.array([[40.0, 40.0]]),  # cell (2, 2)
        sizes=np.array([32.0]),
        negatives=np.array([[200.0, 200.0]]),  # cell (12, 12)
        complete=False,
        anchor=32.0,
    )
    cfg = DetectorConfig(pos_weight=10.0, neg_weight=5.0)
    _, target, weight = _encode_sample(sample, (0, False), cfg, partial=True)
    assert weight[2, 2] == 10.0 and weight[12, 12] == 5.0
    # cells whose centre lies within ring = 0.5 diameters = 16 px of (40, 40): its own
    # cell (2, 2) and (1, 2), (3, 2), (2, 1), (2, 3) (centres 24 / 56 on one axis, 40 on
    # the other: 16 px away, on the circle) -> 5 cells; the rejection opens no neighbourhood
    assert int((weight > 0).sum()) == 5 + 1
    assert weight[1, 1] == 0  # centre (24, 24): 22.6 px away, outside the ring
    assert weight[11, 12] == 0 and weight[8, 8] == 0
    # a prediction in an unsupervised cell does not change the loss
    out = torch.zeros(1, 6, 16, 16)
    base, _ = detector_loss(out, torch.as_tensor(target[None]), torch.as_tensor(weight[None]))
    out[0, 4, 8, 8] = 7.0
    moved, _ = detector_loss(out, torch.as_tensor(target[None]), torch.as_tensor(weight[None]))
    assert float(moved) == float(base)
    _, _, full = _encode_sample(sample, (0, False), cfg, partial=False)
    assert full[8, 8] == 1.0  # the thesis: unlabelled = background


def test_steps_budget_replaces_epochs():
    mics, labels = _tiny_data(5)
    det = train_detector(mics, labels, _tiny_config(epochs=40, steps=3, batch_size=2))
    assert det.meta["steps"] == 3
    assert DetectorConfig.from_dict({"diameter": 20.0}).steps is None  # old sidecars load
    with pytest.raises(ValueError, match="steps"):
        DetectorConfig(steps=-1)
