"""Pretraining of the general model: simulated and real samples at the network's scale,
validation scores, and the selection of the best step with its threshold."""

from __future__ import annotations

import numpy as np
import pytest

from activepick.detector import pretrain as P
from activepick.detector.general import load_general_detector
from activepick.io.picks import make_picks
from activepick.progress import drive
from activepick.simulate import simulate_micrograph


@pytest.fixture(scope="module")
def real():
    """A 'real' source: two labelled 512 px micrographs with 40 px particles."""
    rng = np.random.default_rng(0)
    mics, tables = [], []
    for k in range(2):
        image, centres = simulate_micrograph(rng, size=512, n_particles=30, diameter=40, snr=0.5)
        mics.append(type("M", (), {"name": f"r{k}", "data": image})())
        tables.append(make_picks(f"r{k}", centres[:, 0], centres[:, 1], 40.0))
    import pandas as pd

    return P.real_source(mics, pd.concat(tables, ignore_index=True), 40.0)


def test_real_crops_put_the_labels_at_the_network_scale(real):
    rng = np.random.default_rng(1)
    for _ in range(10):
        image, pos, sizes = P.real_sample(rng, real)
        assert tuple(image.shape) == (1, P.CROP, P.CROP)
        # the particle lands at 22-46 input px, labels inside the crop
        assert len(sizes) and P.INPUT_DIAMETER[0] - 1e-6 <= sizes[0] <= P.INPUT_DIAMETER[1] + 1e-6
        assert (pos >= 0).all() and (pos <= P.CROP).all()
        assert abs(float(image.mean())) < 1.0  # normalised


def test_simulated_samples_are_at_the_network_scale():
    rng = np.random.default_rng(2)
    image, pos, sizes = P.training_sample(rng)
    assert tuple(image.shape) == (1, P.CROP, P.CROP)
    if len(sizes):
        assert P.INPUT_DIAMETER[0] - 1 <= sizes[0] <= P.INPUT_DIAMETER[1] + 1


def test_validation_scores_cover_each_group_with_its_threshold(real):
    val = P.validation_set(seed=3, n_sim=2, real=real)
    assert val.groups() == ["plain", "real", "sim"] and len(val.items) == 2 + 1 + 2
    scores = P.validation_scores(load_general_detector(32.0, device="cpu"), val)
    groups = ("plain", "real", "sim")
    assert set(scores) == {*groups, *(f"{g}_t_opt" for g in groups), "score", "t_opt"}
    assert scores["real"] > 0.7  # the shipped model finds these easy particles
    assert scores["score"] == pytest.approx(np.mean([scores[g] for g in groups]), abs=1e-4)
    t_opts = [scores[f"{g}_t_opt"] for g in groups]
    assert scores["t_opt"] == pytest.approx(np.mean(t_opts), abs=1e-3)


def test_pretraining_keeps_the_best_validated_step_and_its_threshold(monkeypatch, tmp_path, real):
    monkeypatch.setattr(P, "POOL", 8)
    monkeypatch.setattr(P, "BATCH", 2)
    seen = iter(
        [{"score": 0.2, "t_opt": 0.3}, {"score": 0.6, "t_opt": 0.55}, {"score": 0.4, "t_opt": 0.7}]
    )
    states = []

    def evaluate(detector, validation):  # records the weights each check saw
        states.append({k: v.clone() for k, v in detector.network.state_dict().items()})
        return next(seen)

    out = tmp_path / "general.pt"
    det = drive(
        P.iter_pretrain(
            max_steps=3,
            real=real,
            real_fraction=0.5,
            validation=P.ValidationSet([]),
            eval_every=1,
            evaluate=evaluate,
            checkpoint=str(out),
        )
    )
    assert det.meta["best_step"] == 2 and det.meta["threshold"] == 0.55
    assert [h["step"] for h in det.meta["validation"]] == [1, 2, 3]
    assert det.meta["distribution"]["real_micrographs"] == ["r0", "r1"]
    final = det.network.state_dict()
    assert all((final[k] == v).all() for k, v in states[1].items())  # step 2's weights
    loaded = load_general_detector(40.0, path=out, device="cpu")
    assert loaded.meta["threshold"] == 0.55 and loaded.meta["general"] is True
