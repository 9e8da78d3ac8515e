"""Predict all (issue 13): the whole pool through the streaming batch path, no display."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from activepick.active.decisions import ReviewError
from activepick.active.predict_all import PREDICT_ALL_STAMP
from activepick.active.settings import LearnerSettings
from activepick.active.workbench import Workbench
from activepick.detector import Detector, DetectorConfig, build_network
from activepick.errors import Cancelled
from activepick.io.micrograph import Micrograph, read_micrograph, write_micrograph
from activepick.progress import drive

D = 16.0


def _workbench(tmp_path, n=3):
    rng = np.random.default_rng(0)
    mics = []
    for i in range(n):
        path = tmp_path / "mics" / f"m{i}.mrc"
        write_micrograph(path, rng.normal(size=(128, 160)).astype(np.float32))
        mics.append(read_micrograph(path))
    cfg = DetectorConfig(arch="light", width=0.125, input_size=128, diameter=D, device="cpu")
    wb = Workbench.for_micrographs(mics, LearnerSettings(detector=cfg, protocol="thesis"))
    wb.create_session(tmp_path / "session")
    torch.manual_seed(0)
    wb.learner.detector = Detector(build_network("light", width=0.125), cfg)
    wb.learner.round = 1
    return wb


def _key(picks: pd.DataFrame) -> pd.DataFrame:
    cols = ["micrograph", "x", "y", "confidence"]
    return picks[cols].sort_values(cols[:3]).reset_index(drop=True)


def _same_picks(a: pd.DataFrame, b: pd.DataFrame) -> None:
    a, b = _key(a), _key(b)
    assert a["micrograph"].tolist() == b["micrograph"].tolist()
    np.testing.assert_allclose(a[["x", "y", "confidence"]], b[["x", "y", "confidence"]], atol=1e-5)


def test_predict_all_gives_the_picks_of_iter_predict_on_the_whole_pool(tmp_path):
    wb = _workbench(tmp_path)
    learner = wb.learner
    learner.predict_subset = None
    expected = drive(learner.iter_predict())
    assert len(expected) > 0 and set(expected["micrograph"]) == {"m0", "m1", "m2"}
    queue = learner.queue.copy()
    steps = []
    picks = drive(wb.iter_predict_all(), steps.append)
    _same_picks(picks, expected)
    assert (picks["round"] == 1).all()
    assert [s["micrograph"] for s in steps] == ["m0", "m1", "m2"]
    assert steps[-1]["step"] == steps[-1]["total"] == 3
    parts = tmp_path / "session" / "predict_all"
    assert sorted(p.name for p in parts.glob("m*.csv")) == ["m0.csv", "m1.csv", "m2.csv"]
    assert json.loads((parts / PREDICT_ALL_STAMP).read_text())["round"] == 1
    # the review queue is untouched; the predictions of the round are the same object
    pd.testing.assert_frame_equal(learner.queue, queue)
    assert wb.predict_all is picks


def test_cancel_then_resume_finishes_without_duplicates(tmp_path):
    wb = _workbench(tmp_path)
    reference = drive(wb.iter_predict_all(tmp_path / "ref"))
    seen = []
    with pytest.raises(Cancelled):
        for item in wb.iter_predict_all(should_stop=lambda: len(seen) >= 1, batch_size=1):
            seen.append(item)
    parts = tmp_path / "session" / "predict_all"
    assert sorted(p.name for p in parts.glob("m*.csv")) == ["m0.csv"]
    assert wb.predict_all is not None  # from the reference run, not the cancelled one
    steps = []
    picks = drive(wb.iter_predict_all(batch_size=1), steps.append)
    assert steps[0]["skipped"] == 1 and picks.attrs["summary"]["predicted"] == 2
    assert not picks.duplicated(["micrograph", "x", "y"]).any()
    _same_picks(picks, reference)


def test_a_retrained_detector_starts_over(tmp_path):
    wb = _workbench(tmp_path)
    drive(wb.iter_predict_all())
    with torch.no_grad():
        next(wb.learner.detector.network.parameters()).add_(0.5)
    steps = []
    drive(wb.iter_predict_all(), steps.append)
    assert all(s["skipped"] == 0 for s in steps)
    assert sum(s["micrograph"] is not None for s in steps) == 3


def test_export_uses_predict_all_where_no_round_predicted_since(tmp_path):
    wb = _workbench(tmp_path)
    learner = wb.learner
    learner.predict_subset = None
    full = drive(learner.iter_predict())
    # as after a round on a rotating subset: only m0 was predicted (with pick ids)
    learner.predictions = full[full["micrograph"] == "m0"].reset_index(drop=True)
    t = 0.4
    before = wb.export_table(include_predictions=True, threshold=t)
    assert set(before["micrograph"]) == {"m0"}
    drive(wb.iter_predict_all())
    after = wb.export_table(include_predictions=True, threshold=t)
    _same_picks(after, full[full["confidence"] >= t])
    assert wb.export_count(include_predictions=True, threshold=t) == (0, len(after))
    # a pick accepted on m1 replaces the predictions it overlaps there
    m1 = after[after["micrograph"] == "m1"].iloc[0]
    wb.add("m1", float(m1["x"]) + 1.0, float(m1["y"]))
    again = wb.export_table(include_predictions=True, threshold=t)
    assert (again["status"] == "added").sum() == 1
    assert (again["status"] == "predicted").sum() == len(after) - 1
    # a later round predicting m1 again wins over the older Predict all
    newer = full[full["micrograph"] == "m1"].iloc[1:2].assign(round=2)
    learner.predictions = pd.concat([learner.predictions, newer], ignore_index=True)
    last = wb.export_table(include_predictions=True, threshold=0.0)
    on_m1 = last[(last["status"] == "predicted") & (last["micrograph"] == "m1")]
    assert on_m1[["x", "y"]].to_numpy().tolist() == newer[["x", "y"]].to_numpy().tolist()


def test_predict_all_needs_a_detector_files_and_a_folder(tmp_path):
    write_micrograph(tmp_path / "b.mrc", np.zeros((64, 64), np.float32))
    narrow = LearnerSettings(detector=DetectorConfig(width=0.125, diameter=D))  # no general model
    on_disk = Workbench.for_micrographs([read_micrograph(tmp_path / "b.mrc")], narrow)
    with pytest.raises(ReviewError, match="train a round first"):
        next(on_disk.iter_predict_all(tmp_path / "out"))
    net = Detector(build_network("light", width=0.125), DetectorConfig(input_size=64, diameter=D))
    on_disk.learner.detector = net
    with pytest.raises(ReviewError, match="needs a session"):
        next(on_disk.iter_predict_all())
    in_memory = Workbench.for_micrographs([Micrograph("a", np.zeros((64, 64), np.float32))])
    in_memory.learner.detector = net
    with pytest.raises(ReviewError, match="a has no file of its own"):
        next(in_memory.iter_predict_all(tmp_path / "out"))


def test_a_reopened_session_shows_its_finished_predict_all_only(tmp_path):
    wb = _workbench(tmp_path)
    wb.session.save_round(1, detector=wb.learner.detector, metrics={"round": 1})
    picks = drive(wb.iter_predict_all())
    wb.close()
    again = Workbench.open(tmp_path / "session")
    assert again.predict_all is not None and again.predict_all.attrs["round"] == 1
    _same_picks(again.predict_all, picks)
    again.close()
    # a cancelled run (a part missing) is not taken for a finished one
    (tmp_path / "session" / "predict_all" / "m2.csv").unlink()
    partial = Workbench.open(tmp_path / "session")
    assert partial.predict_all is None
    partial.close()
    # nor are the parts of another detector
    resumed = Workbench.open(tmp_path / "session")
    drive(resumed.iter_predict_all())  # finishes m2 only
    resumed.close()
    done = Workbench.open(tmp_path / "session")
    assert done.predict_all is not None
    done.close()
    stamp = tmp_path / "session" / "predict_all" / PREDICT_ALL_STAMP
    stamp.write_text(json.dumps({**json.loads(stamp.read_text()), "detector": "0" * 40}))
    other = Workbench.open(tmp_path / "session")
    assert other.predict_all is None
    other.close()


def test_before_any_label_predict_all_picks_with_the_general_model(tmp_path):
    from activepick.simulate import simulate_micrograph

    rng = np.random.default_rng(3)
    truth = {}
    for i in range(2):
        image, centres = simulate_micrograph(rng, size=256, n_particles=10, diameter=32, snr=0.5)
        write_micrograph(tmp_path / "mics" / f"g{i}.mrc", image)
        truth[f"g{i}"] = centres
    mics = [read_micrograph(tmp_path / "mics" / f"g{i}.mrc") for i in range(2)]
    settings = LearnerSettings(detector=DetectorConfig(diameter=32.0, device="cpu"))
    wb = Workbench.for_micrographs(mics, settings)
    wb.create_session(tmp_path / "session")
    assert wb.learner.detector is None and wb.learner.round == 0
    picks = drive(wb.iter_predict_all())
    stamp = json.loads((tmp_path / "session" / "predict_all" / PREDICT_ALL_STAMP).read_text())
    assert stamp["round"] == 0
    confident = picks[picks["confidence"] >= 0.5]
    for name, centres in truth.items():  # most particles are found, next to their centres
        found = confident.loc[confident["micrograph"] == name, ["x", "y"]].to_numpy()
        dist = np.linalg.norm(found[:, None] - centres[None], axis=2).min(axis=0)
        assert (dist < 8).mean() >= 0.7
    wb.close()
    again = Workbench.open(tmp_path / "session")  # a reopened session shows it
    assert again.predict_all is not None and len(again.predict_all) == len(picks)
    again.close()
