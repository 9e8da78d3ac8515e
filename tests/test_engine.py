"""The active-learning engine: bookkeeping on hand-made predictions, and a real 2-round loop."""

import numpy as np
import pandas as pd
import pytest

from activepick.active.engine import ActiveLearner, ReviewError
from activepick.active.oracle import SimulatedOracle
from activepick.constants import LABEL_COLUMNS, PICK_COLUMNS
from activepick.detector import DetectorConfig
from activepick.errors import CoordinateError
from activepick.io.labels import empty_labels
from activepick.io.micrograph import Micrograph
from activepick.io.picks import make_picks
from activepick.progress import drive

D = 20.0  # particle diameter, px


def pool(n=2, size=128):
    return [Micrograph(f"m{i}", np.zeros((size, size), np.float32)) for i in range(n)]


def learner(**kw):
    cfg = DetectorConfig(diameter=D, input_size=128, epochs=1, batch_size=2, device="cpu")
    kw.setdefault("strategy", "low_confidence")
    # these tests check the thesis rules (SPEC 3-4); the product protocol has its own below
    kw.setdefault("protocol", "thesis")
    kw.setdefault("init", "scratch")
    kw.setdefault("train_steps", None)
    return ActiveLearner(pool(), cfg, **kw)


def set_predictions(al, rows):
    """rows: (micrograph, x, y, confidence); pick ids 100, 101, ..."""
    mic, x, y, c = zip(*rows, strict=True)
    pred = make_picks(list(mic), x, y, D, confidence=list(c), status="predicted", round=al.round)
    pred["pick_id"] = np.arange(100, 100 + len(pred))
    al.predictions = pred
    return pred


PREDS = [
    ("m0", 20.0, 20.0, 0.9),  # 100
    ("m0", 60.0, 20.0, 0.2),  # 101
    ("m0", 100.0, 20.0, 0.05),  # 102
    ("m1", 20.0, 60.0, 0.4),  # 103
    ("m1", 60.0, 60.0, 0.005),  # 104: below min_confidence 0.01
]


def test_select_orders_by_strategy_and_skips_low_confidence():
    al = learner(review_k=3)
    set_predictions(al, PREDS)
    queue = al.select()
    # low confidence first, 104 is not a candidate
    assert list(queue["pick_id"]) == [102, 101, 103]
    assert al.position == 0
    assert {"uncertainty", "rank"} <= set(queue.columns)
    assert len(al.select(k=10)) == 4


def test_decide_accept_move_reject_and_position():
    al = learner(review_k=3)
    set_predictions(al, PREDS)
    al.select()  # 102, 101, 103
    al.decide(102, "reject")
    assert al.position == 1
    al.decide(101, "move", 63.0, 22.0)
    al.decide(103, "accept")
    assert al.position == 3
    lab = al.labels.set_index("pick_id")
    assert tuple(al.labels.columns) == LABEL_COLUMNS
    assert lab.loc[102, "status"] == "rejected" and lab.loc[102, "x"] == 100.0
    assert (lab.loc[101, "x"], lab.loc[101, "y"]) == (63.0, 22.0)
    assert (lab.loc[101, "pred_x"], lab.loc[101, "pred_y"]) == (60.0, 20.0)
    assert lab.loc[101, "status"] == "moved" and lab.loc[103, "status"] == "accepted"
    assert lab.loc[103, "confidence"] == pytest.approx(0.4)
    assert set(lab["source"]) == {"human"} and set(lab["strategy"]) == {"low_confidence"}
    assert al.counts() == {
        "accepted": 1,
        "moved": 1,
        "added": 0,
        "rejected": 1,
        "imported": 0,
        "positive": 2,
    }


def test_decide_errors():
    al = learner()
    set_predictions(al, PREDS)
    with pytest.raises(ReviewError, match="no predicted pick"):
        al.decide(999, "accept")
    with pytest.raises(ReviewError, match="unknown action"):
        al.decide(100, "maybe")
    with pytest.raises(ReviewError, match="needs the new x and y"):
        al.decide(100, "move")
    with pytest.raises(CoordinateError, match="outside"):
        al.decide(100, "move", 500.0, 10.0)
    assert len(al.labels) == 0


def test_undo_add_remove_and_redecide():
    al = learner(review_k=2)
    set_predictions(al, PREDS)
    al.select()  # 102, 101
    al.decide(102, "accept")
    al.decide(102, "reject")  # a second decision replaces the first
    assert len(al.labels) == 1 and al.labels.loc[0, "status"] == "rejected"
    assert al.undo() and al.labels.loc[0, "status"] == "accepted"
    pid = al.add_particle("m1", 90.0, 90.0)
    assert pid not in set(al.predictions["pick_id"])
    added = al.labels.set_index("pick_id").loc[pid]
    assert added["status"] == "added" and added["diameter"] == D and np.isnan(added["pred_x"])
    al.remove_label(pid)
    assert pid not in set(al.labels["pick_id"])
    assert al.undo() and pid in set(al.labels["pick_id"])  # removal undone
    assert al.undo() and pid not in set(al.labels["pick_id"])  # addition undone
    assert al.undo() and len(al.labels) == 0 and al.position == 0  # first decision undone
    assert al.undo() is False
    with pytest.raises(ReviewError):
        al.remove_label(12345)
    with pytest.raises(CoordinateError, match="not in the pool"):
        al.add_particle("nope", 1.0, 1.0)
    with pytest.raises(CoordinateError, match="outside"):
        al.add_particle("m0", -1.0, 1.0)


def test_candidates_exclude_regions_of_labels_and_complete_micrographs():
    al = learner()
    set_predictions(al, PREDS)
    al.add_particle("m0", 65.0, 20.0)  # within D/2 of pick 101 (d = 5)
    al.add_particle("m0", 100.0, 31.0)  # d = 11 > D/2 from pick 102: still a candidate
    al.mark_complete("m1")
    assert list(al.candidates()["pick_id"]) == [100, 102]
    al.mark_complete("m1", False)
    assert list(al.candidates()["pick_id"]) == [100, 102, 103]


def test_counts_by_round_and_export():
    al = learner()
    set_predictions(al, PREDS)
    al.add_labels(make_picks("m1", [100.0], [100.0], D), source="import")
    al.decide(100, "accept")
    al.round = 1
    al.decide(101, "reject")
    al.add_particle("m0", 30.0, 100.0)
    assert al.counts(round=0) == {
        "accepted": 1,
        "moved": 0,
        "added": 0,
        "rejected": 0,
        "imported": 1,
        "positive": 2,
    }
    assert al.counts(round=1)["rejected"] == 1 and al.counts(round=1)["added"] == 1
    picks = al.export_picks()
    assert tuple(picks.columns) == PICK_COLUMNS
    assert sorted(zip(picks["micrograph"], picks["x"], strict=True)) == [
        ("m0", 20.0),
        ("m0", 30.0),
        ("m1", 100.0),
    ]
    # with predictions >= 0.3: 100 is decided, 101 (0.2) below; 103 (0.4) joins
    more = al.export_picks(include_predictions=True, threshold=0.3)
    assert len(more) == 4 and more.iloc[-1]["status"] == "predicted"
    assert (more.iloc[-1]["micrograph"], more.iloc[-1]["x"]) == ("m1", 20.0)
    # a prediction overlapping a label (IoU > 0.3) is left out; T_opt default 0.5
    al.add_particle("m1", 22.0, 60.0)
    assert len(al.export_picks(include_predictions=True, threshold=0.3)) == 4
    assert len(al.export_picks(include_predictions=True)) == 4  # only labels reach 0.5


def test_t_opt_from_decisions_without_validation():
    al = learner(review_k=5)
    set_predictions(al, PREDS)
    assert al.t_opt == 0.5
    al.decide(100, "accept")  # 0.9
    al.decide(103, "accept")  # 0.4
    al.decide(101, "reject")  # 0.2
    al.decide(102, "reject")  # 0.05
    al.select()
    assert al.t_opt_source == "decisions"
    assert 0.2 < al.t_opt <= 0.4  # any threshold in (0.2, 0.4] separates them


def test_review_with_oracle_stops_at_max_positives():
    al = learner(review_k=4)
    set_predictions(al, PREDS)
    truth = make_picks(["m0", "m0", "m1"], [61.0, 101.0, 20.0], [20.0, 20.0, 60.0], D)
    al.select()  # 102, 101, 103, 100
    dec = al.review_with(SimulatedOracle(truth, tau=0.7), max_positives=2)
    assert list(dec["pick_id"]) == [102, 101]
    assert list(dec["action"]) == ["move", "move"]
    assert al.position == 2
    dec = al.review_with(SimulatedOracle(truth, tau=0.7))
    assert list(dec["action"]) == ["accept", "reject"]  # 103 exact, 100 on nothing
    assert set(al.labels["source"]) == {"oracle"}
    assert al.counts()["positive"] == 3 and al.counts()["rejected"] == 1


def test_empty_labels_columns():
    assert tuple(empty_labels().columns) == LABEL_COLUMNS


@pytest.mark.slow
def test_two_round_loop_on_simulated_data(tmp_path):
    from activepick.simulate import simulate_micrograph

    rng = np.random.default_rng(3)
    mics, truths = [], []
    for i in range(3):
        img, xy = simulate_micrograph(rng, size=192, n_particles=8, diameter=D, snr=1.0)
        mics.append(Micrograph(f"s{i}", img))
        truths.append(make_picks(f"s{i}", xy[:, 0], xy[:, 1], D))
    truth = pd.concat(truths, ignore_index=True)
    val = Micrograph("v0", mics[0].data.copy())
    val_truth = truths[0].assign(micrograph="v0")
    cfg = DetectorConfig(diameter=D, input_size=192, epochs=1, batch_size=3, device="cpu", seed=0)
    al = ActiveLearner(
        mics,
        cfg,
        strategy="random",
        review_k=4,
        seed=1,
        partial=True,  # the benchmark's tiny run covers partial=False
        protocol="thesis",
        init="scratch",
        train_steps=None,
        validation=([val], val_truth),
        test=([val], val_truth),
    )
    from activepick.session import Session

    files = [tmp_path / f"{m.name}.mrc" for m in mics]
    for f in files:
        f.write_bytes(b"x")  # Session.create only checks that the files exist
    al.session = Session.create(tmp_path / "session", files, al.settings)
    al.add_labels(truth.iloc[[0, 9, 17]], source="initial")
    al.mark_complete("s2")  # its unlabelled area is background; its predictions are not queued
    oracle = SimulatedOracle(truth, tau=0.3, labelled=[0, 9, 17])
    progress = []
    for _ in range(2):
        summary = drive(al.iter_round(), progress.append)
        assert len(al.queue) <= 4 and "s2" not in set(al.queue["micrograph"])
        before = al.counts()["positive"]
        dec = al.review_with(oracle)
        assert len(dec) == len(al.queue)
        gained = int(dec["action"].isin(["accept", "move"]).sum())
        assert al.counts()["positive"] == before + gained
    assert al.round == 2 and len(al.history) == 2
    assert [h["labels"] for h in al.history][0] == 3
    assert al.history[1]["labels"] == 3 + al.counts(round=1)["positive"]
    assert summary is al.history[-1] and summary["train_s"] > 0
    for h in al.history:
        assert h["t_opt_source"] == "validation" and 0 <= h["t_opt"] <= 1
        assert set(h["metrics"]) >= {"f1_topt", "pr_auc", "recall_03", "mean_iou"}
        assert h["predict_s"] > 0
    stages = {p["stage"] for p in progress}
    assert {"train", "validate", "test", "predict", "select"} <= stages
    # the session's history holds every round's record, the queue size included
    saved = Session.open(tmp_path / "session").history()
    assert [h["queued"] for h in saved] == [h["queued"] for h in al.history]
    assert saved[-1]["queued"] == len(al.queue)


def test_every_change_is_saved_and_resumes_from_the_session(tmp_path):
    from activepick.session import Session

    files = []
    for i in range(2):
        f = tmp_path / f"m{i}.mrc"
        f.write_bytes(b"x")  # Session.create only checks that the files exist
        files.append(f)
    al = learner(review_k=3, seed=4)
    session = Session.create(tmp_path / "session", files, al.settings)
    al.session = session
    set_predictions(al, PREDS)
    al.select()  # 102, 101, 103
    al.decide(102, "reject")
    al.decide(101, "move", 62.0, 21.0)
    pid = al.add_particle("m1", 100.0, 100.0)
    al.mark_complete("m0")
    # nothing else is flushed: a crash here loses nothing
    again = ActiveLearner.from_session(Session.open(tmp_path / "session"), pool())
    assert again.strategy == "low_confidence" and again.review_k == 3 and again.seed == 4
    assert again.config.diameter == D
    assert sorted(again.labels["pick_id"]) == sorted([101, 102, pid])
    moved = again.labels.set_index("pick_id").loc[101]
    assert (moved["x"], moved["y"], moved["pred_x"]) == (62.0, 21.0, 60.0)
    assert list(again.queue["pick_id"]) == [102, 101, 103] and again.position == 2
    assert again.complete == {"m0"}
    # the undo history is not part of a session; an undo is saved like any change
    assert again.undo() is False
    assert al.undo() and al.undo()  # mark_complete is not undoable: add_particle, then the move
    assert pid not in set(Session.open(tmp_path / "session").load_labels()["pick_id"])
    assert 101 not in set(Session.open(tmp_path / "session").load_labels()["pick_id"])
    # new ids never collide with resumed ones
    assert again.add_particle("m1", 50.0, 50.0) > max(103, pid)


# ---------------------------------------------------------------------- product protocol


def test_product_protocol_keeps_plausible_candidates_and_applies_human_adds():
    from activepick.active.oracle import HumanOracle

    al = ActiveLearner(
        pool(), DetectorConfig(diameter=D, input_size=128, device="cpu"), strategy="entropy"
    )
    assert (al.protocol, al.init, al.train_steps) == ("product", "general", 60)
    set_predictions(al, PREDS)
    al.t_opt = 0.2
    # plausible at T_opt 0.2: re-centred >= 0.1, i.e. c >= 0.027 -> 104 (0.005) goes
    assert sorted(al.candidates()["pick_id"]) == [100, 101, 102, 103]
    queue = al.select(k=2)
    # re-centred entropy: 101 sits at T_opt, 103 (0.4) is 0.98 logits away, 102 1.56
    assert list(queue["pick_id"]) == [101, 103]
    # truth: 101's particle 6 px off (IoU 0.45 for d = 20 -> move), and a missed one
    # 15 px away from 101, inside the reviewed region (2 diameters = 40 px)
    truth = make_picks(["m0", "m0"], [66.0, 60.0], [20.0, 35.0], D)
    al.review_with(HumanOracle(truth))
    got = al.labels.sort_values("pick_id")[["pick_id", "status", "x", "y", "source"]]
    rows = [tuple(r) for r in got.itertuples(index=False)]
    assert rows[0] == (101, "moved", 66.0, 20.0, "oracle")
    assert rows[1] == (103, "rejected", 20.0, 60.0, "oracle")
    assert rows[2][1:] == ("added", 60.0, 35.0, "oracle")
