"""Cheaper reviews (active/regions.py, detector/regions.py): complete regions and bulk
confirmation on hand-made predictions with hand-checked outcomes, their journal, what
training makes of a region, and what the simulated person does and costs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from activepick.active.regions import (
    BULK_STRATEGY,
    REGION_DIAMETERS,
    bulk_threshold,
    inside_regions,
)
from activepick.active.settings import LearnerSettings
from activepick.active.workbench import Workbench
from activepick.detector import DetectorConfig
from activepick.detector.regions import region_cells, sample_regions, transform_regions
from activepick.errors import CoordinateError
from activepick.io.micrograph import Micrograph
from activepick.io.picks import make_picks

D = 20.0  # particle diameter, px: a reviewed neighbourhood has radius 1.5 D = 30 px

PREDS = [  # (micrograph, x, y, confidence): pick ids 100, 101, ...
    ("m0", 50.0, 50.0, 0.30),  # 100: queued
    ("m0", 150.0, 50.0, 0.40),  # 101: queued
    ("m0", 60.0, 100.0, 0.97),  # 102: confident, 51 px from 100 (outside its region)
    ("m0", 200.0, 200.0, 0.95),  # 103: confident
    ("m0", 165.0, 60.0, 0.96),  # 104: confident, 18 px from 101 (inside its region)
    ("m1", 50.0, 50.0, 0.45),  # 105: queued
    ("m0", 53.0, 54.0, 0.99),  # 106: confident, 5 px from 100 (a duplicate once 100 is a label)
]


def bench(**kw) -> Workbench:
    mics = [Micrograph(f"m{i}", np.zeros((256, 256), np.float32)) for i in range(2)]
    det = DetectorConfig(diameter=D, input_size=128, epochs=1, batch_size=2, device="cpu")
    settings = LearnerSettings(
        detector=det, strategy="low_confidence", protocol="thesis", review_k=3, **kw
    )
    wb = Workbench.for_micrographs(mics, settings)
    mic, x, y, c = zip(*PREDS, strict=True)
    pred = make_picks(list(mic), x, y, D, confidence=list(c), status="predicted")
    pred["pick_id"] = np.arange(100, 100 + len(pred))
    wb.learner.predictions = pred
    wb.learner.select()  # low confidence first: 100, 101, 105
    return wb


def ids(df: pd.DataFrame) -> list[int]:
    return sorted(df["pick_id"].astype(int).tolist())


def test_bulk_threshold_is_far_above_t_opt():
    assert bulk_threshold(0.5) == pytest.approx(0.9)
    # sigmoid(logit(0.2) + logit(0.9)) = sigmoid(-1.3863 + 2.1972) = 0.69231
    assert bulk_threshold(0.2) == pytest.approx(0.692308, abs=1e-6)
    assert bulk_threshold(0.5, 0.99) == pytest.approx(0.99)


def test_complete_marks_the_reviewed_neighbourhoods_and_retires_their_candidates():
    wb = bench()
    lr = wb.learner
    assert wb.queue["pick_id"].tolist() == [100, 101, 105]
    assert ids(lr.candidates()) == list(range(100, 107))
    wb.accept()  # 100
    wb.reject()  # 101
    assert ids(lr.candidates()) == [102, 103, 104, 105]  # 106 is a duplicate of label 100
    regions = wb.complete_reviewed("m0")
    assert len(regions) == 2
    rows = lr.labels[lr.labels["status"] == "complete"].sort_values("x")
    assert rows[["micrograph", "x", "y", "diameter"]].to_numpy().tolist() == [
        ["m0", 50.0, 50.0, 2 * REGION_DIAMETERS * D],
        ["m0", 150.0, 50.0, 2 * REGION_DIAMETERS * D],
    ]
    assert set(rows["source"]) == {"human"} and set(rows["round"]) == {0}
    assert rows["confidence"].isna().all() and set(rows["strategy"]) == {""}
    # 104 lies inside 101's region: the person added what was there, so it is background
    assert ids(lr.candidates()) == [102, 103, 105]
    assert inside_regions(lr.predictions, lr.complete_regions()).tolist() == [
        True, True, False, False, True, False, True,
    ]  # fmt: skip
    # regions are no picks: counts, positives and the nearest label ignore them
    assert lr.counts()["positive"] == 1 and len(lr.positive_labels()) == 1
    assert lr.label_store.nearest("m0", 150.0, 50.0)[0] == 100
    # nothing new to mark on m0; on m1, the pick under review (the user added its missed
    # particles, marks its neighbourhood, then decides it)
    with pytest.raises(Exception, match="no pick reviewed on m0 since"):
        wb.complete_reviewed("m0")
    assert wb.current_pick()["pick_id"] == 105
    assert len(wb.complete_reviewed("m1")) == 1
    with pytest.raises(Exception, match="no pick reviewed on m1"):
        wb.complete_reviewed("m1")
    wb.undo()
    with pytest.raises(CoordinateError, match="not in the pool"):
        lr.complete_reviewed("m9")
    wb.undo()  # one step: both regions
    assert (lr.labels["status"] == "complete").sum() == 0
    assert ids(lr.candidates()) == [102, 103, 104, 105]


def test_confirm_accepts_the_confident_picks_of_one_micrograph_at_once():
    wb = bench()
    lr = wb.learner
    assert ids(lr.confident_picks("m0")) == [102, 103, 104, 106]  # >= 0.9 at T_opt 0.5
    wb.accept()  # 100: 106 becomes its duplicate
    wb.reject()  # 101
    wb.complete_reviewed("m0")  # 104 inside a region
    assert ids(lr.confident_picks("m0")) == [102, 103]
    assert ids(lr.confident_picks("m0", threshold=0.96)) == [102]
    assert wb.confirm_confident("m0") == [102, 103]
    made = lr.labels.set_index("pick_id").loc[[102, 103]]
    assert set(made["status"]) == {"accepted"} and set(made["strategy"]) == {BULK_STRATEGY}
    assert made[["x", "y"]].to_numpy().tolist() == [[60.0, 100.0], [200.0, 200.0]]
    with pytest.raises(Exception, match="no confident pick"):
        wb.confirm_confident("m0")
    wb.undo()  # one step
    assert ids(lr.confident_picks("m0")) == [102, 103]
    lr.t_opt = 0.99  # the bar follows T_opt: sigmoid(logit(0.99) + logit(0.9)) = 0.9989
    assert ids(lr.confident_picks("m0")) == []
    lr.mark_complete("m0")  # a fully picked micrograph has nothing left to confirm
    lr.t_opt = 0.5
    assert ids(lr.confident_picks("m0")) == []


def test_regions_and_bulk_labels_go_through_the_journal_and_reopen(tmp_path):
    wb = bench()
    wb.create_session(tmp_path / "s")
    wb.accept()
    wb.reject()
    wb.complete_reviewed("m0")
    wb.confirm_confident("m0")
    before = wb.learner.labels.copy()
    journal = (tmp_path / "s" / "labels.journal.csv").read_text()
    assert journal.count(",complete,") == 2 and journal.count(f",{BULK_STRATEGY},") == 2
    wb.session.close()  # as a crash would leave it: labels.csv not compacted since
    wb.session = wb.learner.session = None
    again = Workbench.open(tmp_path / "s", check_files=False, break_lock=True)
    pd.testing.assert_frame_equal(
        again.learner.labels.sort_values("pick_id").reset_index(drop=True),
        before.sort_values("pick_id").reset_index(drop=True),
        check_dtype=False,
    )
    again.close()


def test_region_cells_are_the_cells_wholly_inside():
    # grid 4 x 4 of 16 px cells; region centre (32, 32), r 30: reach 30 - 16 / sqrt(2) =
    # 18.69 px; the four cells around the centre (centres 11.3 px away) are inside, the
    # next ring (25.3 px) is not
    mask = region_cells(np.array([[32.0, 32.0, 30.0]]), (4, 4))
    assert np.argwhere(mask).tolist() == [[1, 1], [1, 2], [2, 1], [2, 2]]
    assert not region_cells(np.array([[32.0, 32.0, 11.0]]), (4, 4)).any()  # smaller than a cell
    # a column flip of a 64 px wide image sends u to 64 - u; a zoom scales centre and radius
    moved = transform_regions(np.array([[10.0, 20.0, 5.0]]), (64, 64), (0, True), 2.0)
    assert moved.tolist() == [[108.0, 40.0, 10.0]]
    table = pd.DataFrame(
        {"micrograph": ["a", "b"], "x": [9.5, 0.0], "y": [19.5, 0.0], "diameter": [40.0, 8.0]}
    )
    # original px -> input edge coordinates at scale 0.5: ((x + 0.5) / 2, (y + 0.5) / 2), r / 2
    assert sample_regions(table, "a", (0.5, 0.5)).tolist() == [[5.0, 10.0, 10.0]]
    assert sample_regions(None, "a", (0.5, 0.5)).shape == (0, 3)


def test_a_fine_tuning_crop_keeps_its_regions():
    import torch

    from activepick.detector.regions import shift_regions
    from activepick.detector.train import _Sample, crop_sample

    assert shift_regions(np.array([[100.0, 50.0, 30.0]]), np.array([64.0, 32.0])).tolist() == [
        [36.0, 18.0, 30.0]
    ]
    sample = _Sample(
        name="m",
        image=torch.zeros(1, 256, 256),
        positives=np.zeros((0, 2)),
        sizes=np.zeros(0),
        negatives=np.zeros((0, 2)),
        complete=False,
        anchor=20.0,
        regions=np.array([[200.0, 180.0, 30.0]]),
    )
    # the only point a partial crop can centre on is the region's centre: the 128 px
    # window lies within 32 px of it, and the region moves with the window
    crop = crop_sample(sample, 128, np.random.default_rng(0), True)
    assert crop.shape == (128, 128) and len(crop.regions) == 1
    u, v, r = crop.regions[0]
    assert r == 30.0 and 32.0 <= u <= 96.0 and 32.0 <= v <= 96.0


@pytest.mark.slow
def test_training_supervises_a_complete_region_even_without_labels():
    from activepick.detector.train import train_detector

    mics = [Micrograph(f"m{i}", np.random.default_rng(i).normal(size=(128, 128))) for i in (0, 1)]
    labels = make_picks("m0", [40.0], [40.0], D, status="accepted")
    cfg = DetectorConfig(
        diameter=D, input_size=128, steps=2, batch_size=2, device="cpu", holdout=0, width=0.125
    )
    # m1 holds no label: with partial labels it is left out ...
    det = train_detector(mics, labels, cfg, partial=True)
    assert det.meta["micrographs"] == ["m0"] and det.meta["n_complete_regions"] == 0
    # ... unless a region of it was marked complete (all background there)
    region = make_picks("m1", [64.0], [64.0], 60.0, status="complete")
    det = train_detector(mics, labels, cfg, partial=True, complete_regions=region)
    assert sorted(det.meta["micrographs"]) == ["m0", "m1"]
    assert det.meta["n_complete_regions"] == 1


def _truth() -> pd.DataFrame:
    # T0 on pick 100; T1 = confident pick 102; T2 25 px from 100 (inside its neighbourhood:
    # added); T3 far from every reviewed pick (not added)
    return make_picks("m0", [50.0, 60.0, 75.0, 120.0], [50.0, 100.0, 50.0, 150.0], D)


def test_simulated_person_completes_and_confirms_and_what_it_costs():
    from activepick.active.benchmark.run import REVIEW_COST, review_cost
    from activepick.active.oracle import HumanOracle

    wb = bench()
    lr = wb.learner
    oracle = HumanOracle(_truth(), region=REGION_DIAMETERS)
    mics = lr.queue["micrograph"].tolist()
    first = lr.review_with(oracle)
    assert first["action"].tolist() == ["accept", "reject", "reject", "add"]
    assert first.iloc[3][["x", "y"]].tolist() == [75.0, 50.0]
    more = lr.review_regions_with(oracle, mics)
    # m0: one action marks the neighbourhoods of 100 and 101; of the confident picks 102
    # is T1 (confirmed), 103 is background (rejected first), 104 lies in a region and 106
    # on label 100 (not offered); m1: 105's neighbourhood; no confident pick there
    assert more[["micrograph", "action", "pick_id"]].values.tolist() == [
        ["m0", "complete", -1],
        ["m0", "reject", 103],
        ["m0", "confirm", -1],
        ["m0", "confirmed", 102],
        ["m1", "complete", -1],
    ]
    status = lr.labels.set_index("pick_id")["status"]
    assert status[102] == "accepted" and status[103] == "rejected"
    assert (lr.labels["status"] == "complete").sum() == 3
    assert set(lr.labels.loc[lr.labels["status"] == "complete", "source"]) == {"oracle"}
    counts = pd.concat([first, more])["action"].value_counts().to_dict()
    # 4 per-pick reviews + 2 region actions + 1 bulk rejection + 1 confirmation; the
    # confirmed pick itself costs nothing
    assert review_cost(counts) == 4 + 2 + 1 + 1
    assert REVIEW_COST["confirmed"] == 0 and REVIEW_COST["complete"] == 1
    # a pick on an already labelled particle is deselected (skip), not rejected
    labels = make_picks("m0", [60.0], [100.0], D, status="accepted")
    dup = oracle.review_confident(lr.predictions.iloc[[2]], labels=labels)
    assert dup["action"].tolist() == ["skip"]
