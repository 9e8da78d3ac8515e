"""The Qt-free workbench: review rules, settings, session lifecycle, export, a round.

No display: every rule the widget's keys and mouse edits trigger is tested here on
hand-made predictions with hand-checked outcomes.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from activepick.active.settings import LearnerSettings, SettingsError
from activepick.active.workbench import ReviewRefused, Workbench
from activepick.constants import LABEL_COLUMNS
from activepick.detector import DetectorConfig
from activepick.errors import ActivePickError
from activepick.io.micrograph import Micrograph, write_micrograph
from activepick.io.picks import make_picks

D = 20.0  # particle diameter, px
DATA = Path(__file__).parent / "data"


def pool(n=2, size=128):
    return [Micrograph(f"m{i}", np.zeros((size, size), np.float32)) for i in range(n)]


def settings(**kw):
    det = DetectorConfig(diameter=D, input_size=128, epochs=1, batch_size=2, device="cpu")
    kw.setdefault("strategy", "low_confidence")
    # the review rules are tested on a hand-made queue in raw low-confidence order (the
    # product protocol's plausibility filter and re-centring are tested in test_engine)
    kw.setdefault("protocol", "thesis")
    return LearnerSettings(detector=det, **kw)


PREDS = [  # (micrograph, x, y, confidence): pick ids 100, 101, ...
    ("m0", 20.0, 20.0, 0.9),  # 100
    ("m0", 60.0, 20.0, 0.2),  # 101
    ("m0", 100.0, 20.0, 0.05),  # 102
    ("m1", 20.0, 60.0, 0.4),  # 103
]


def bench(k=4, preds=PREDS, **kw):
    wb = Workbench.for_micrographs(pool(), settings(review_k=k, **kw))
    mic, x, y, c = zip(*preds, strict=True)
    pred = make_picks(list(mic), x, y, D, confidence=list(c), status="predicted")
    pred["pick_id"] = np.arange(100, 100 + len(pred))
    wb.learner.predictions = pred
    wb.learner.select()  # low confidence first: 102, 101, 103, 100
    return wb


def test_accept_reject_advance_and_navigate():
    wb = bench()
    assert wb.queue["pick_id"].tolist() == [102, 101, 103, 100]
    assert wb.accept() == [102] and wb.position == 1
    assert wb.reject() == [101] and wb.position == 2
    assert wb.learner.counts() == {
        "accepted": 1,
        "moved": 0,
        "added": 0,
        "rejected": 1,
        "imported": 0,
        "positive": 1,
    }
    assert wb.next() == 3 and wb.next() == 3  # clamped at the last pick
    assert wb.previous() == 2 and wb.goto(-5) == 0
    table = wb.queue_table()
    assert table["status"].tolist() == ["accepted", "rejected", "predicted", "predicted"]
    wb.goto(3)
    wb.accept()
    assert wb.batch_done() and wb.current_pick() is None
    with pytest.raises(ReviewRefused, match="batch is done"):
        wb.accept()


def test_several_selected_picks_are_decided_at_once_and_undone_as_one():
    wb = bench()
    wb.reject([103, 100])
    assert wb.learner.label_store.status(103) == "rejected"
    assert wb.learner.label_store.status(100) == "rejected"
    assert wb.position == 0  # 102 under review is still undecided
    wb.undo()
    assert len(wb.learner.labels) == 0
    with pytest.raises(ReviewRefused, match="nothing to undo"):
        wb.undo()
    # deleting queue points rejects them, but a rejected one is not decided twice
    wb.reject([101])
    assert wb.reject_removed([101, 102]) == [102]


def test_add_refuses_duplicates_within_the_minimum_distance():
    wb = bench()
    first = wb.add("m1", 90.0, 90.0)
    assert wb.min_distance == D / 2
    with pytest.raises(
        ReviewRefused, match=r"refused: a label lies 6 px away \(minimum distance 10 px\)"
    ):
        wb.add("m1", 96.0, 90.0)
    second = wb.add("m1", 101.0, 90.0)  # 11 px away: allowed
    assert second > first and wb.learner.counts()["added"] == 2
    # a rejection is no particle: adding next to it is allowed
    wb.reject([103])
    wb.add("m1", 22.0, 60.0)
    assert wb.learner.counts()["added"] == 3


def test_remove_nearest_and_move():
    wb = bench()
    wb.accept()  # 102 at (100, 20) on m0
    pid = wb.add("m0", 30.0, 100.0)
    with pytest.raises(ReviewRefused, match="no label within one diameter"):
        wb.remove_nearest("m0", 30.0, 121.0)  # 21 px > D
    assert wb.remove_nearest("m0", 32.0, 110.0) == pid
    assert wb.remove_nearest("m0", 99.0, 22.0) == 102  # an accepted pick becomes undecided
    assert 102 not in wb.learner.label_store
    # dragging a prediction: a move keeping the predicted centre
    assert wb.move(101, "m0", 63.0, 24.0) == 101
    row = wb.learner.label_store.get(101)
    assert (row["status"], row["x"], row["y"], row["pred_x"]) == ("moved", 63.0, 24.0, 60.0)
    assert wb.queue_table().set_index("pick_id").loc[101, "x"] == 63.0
    # dragging an added particle re-adds it where it was dropped
    pid = wb.add("m1", 50.0, 50.0)
    new = wb.move(pid, "m1", 55.0, 52.0)
    assert new != pid and pid not in wb.learner.label_store
    assert wb.learner.label_store.get(new)["x"] == 55.0
    # many rows at once as tuples (the labels layer's refill), unknown ids skipped
    store = wb.learner.label_store
    rows = store.rows([101, 999, new])
    assert [r[LABEL_COLUMNS.index("pick_id")] for r in rows] == [101, new]
    assert rows[0] == tuple(store.get(101)[c] for c in LABEL_COLUMNS)


def test_edge_predictions_are_not_queued():
    preds = PREDS + [("m1", 5.0, 60.0, 0.01), ("m1", 60.0, 124.0, 0.02)]  # 104, 105
    wb = bench(k=10, preds=preds)
    assert {104, 105} <= set(wb.queue["pick_id"])
    wb._skip_edge_predictions()
    wb.learner.select()
    assert wb.queue["pick_id"].tolist() == [102, 101, 103, 100]


def test_settings_round_trip_and_old_batch_size():
    s = settings(review_k=7, protocol="thesis", init="scratch", train_steps=50)
    again = LearnerSettings.from_dict(s.to_dict())
    assert again == s and again.detector.diameter == D
    old = {**s.to_dict(), "batch_size": 9}
    del old["review_k"]
    assert LearnerSettings.from_dict(old).review_k == 9
    with pytest.raises(SettingsError, match="protocol"):
        LearnerSettings(protocol="fast")
    with pytest.raises(SettingsError, match="session x: settings hold no detector"):
        LearnerSettings.from_dict({"strategy": "random"}, source="session x")
    assert s.replace(diameter=48.0).detector.diameter == 48.0
    assert LearnerSettings().review_k == 20 and LearnerSettings().protocol == "product"


def test_session_lifecycle_journal_and_reopen(tmp_path):
    wb = bench(k=3)
    wb.accept()
    wb.create_session(tmp_path / "s")
    wb.reject()
    pid = wb.add("m1", 100.0, 100.0)
    wb.next()
    # every change is on disk before close
    again = Workbench.open(tmp_path / "s", pool())
    assert sorted(again.learner.labels["pick_id"]) == sorted([102, 101, pid])
    assert again.position == 2 and again.settings.review_k == 3
    assert again.settings == wb.settings
    again.close()
    wb.close()
    assert wb.session is None
    with pytest.raises(ActivePickError, match="already holds a session"):
        bench().create_session(tmp_path / "s")


def test_a_session_written_by_the_previous_version_opens(tmp_path):
    """tests/data/session_v1: session.json with ``batch_size``, labels, queue, position."""
    shutil.copytree(DATA / "session_v1", tmp_path / "session")
    for name in ("m0", "m1"):
        write_micrograph(tmp_path / f"{name}.mrc", np.zeros((64, 64), np.float32))
    wb = Workbench.open(tmp_path / "session")
    learner = wb.learner
    assert [m.name for m in learner.micrographs] == ["m0", "m1"]
    assert learner.review_k == 3 and learner.seed == 4 and learner.strategy == "low_confidence"
    assert learner.config.diameter == 16.0 and learner.complete == {"m1"}
    assert learner.labels["pick_id"].tolist() == [101, 103]
    assert learner.labels["status"].tolist() == ["accepted", "added"]
    assert (learner.labels["x"].iloc[1], learner.labels["y"].iloc[1]) == (10.5, 50.25)
    assert learner.queue["pick_id"].tolist() == [101, 102, 100] and wb.position == 1
    assert wb.current_pick()["pick_id"] == 102
    wb.reject()
    assert wb.position == 2
    new = wb.add("m0", 50.0, 50.0)
    assert new == 104  # above every id in the session
    wb.close()


def test_export_refuses_an_existing_file(tmp_path):
    wb = bench()
    wb.accept()
    wb.add("m1", 90.0, 90.0)
    out = tmp_path / "picks.star"
    picks, files = wb.export(out, "star")
    assert files and len(picks) == 2 and wb.export_count() == (2, 0)
    with pytest.raises(ActivePickError, match="already exists"):
        wb.export(out, "star")
    picks, _ = wb.export(out, "star", include_predictions=True, threshold=0.0, force=True)
    # 100 and 103 overlap no label; 101 lies 40 px from the accepted 102: exported too
    assert len(picks) == 5
    assert wb.export_count(include_predictions=True, threshold=0.3) == (2, 2)


def test_round_command_runs_one_round_on_a_session(tmp_path, capsys):
    """``activepick round --session DIR``: the workbench's round, headless; reopens."""
    from activepick.cli import main

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:128, 0:128]
    files, rows = [], []
    for i in range(2):
        image = rng.normal(0, 0.5, (128, 128)).astype(np.float32)
        for x, y in ((30.0, 30.0), (90.0, 40.0), (50.0, 95.0)):
            image += np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / 50.0).astype(np.float32)
            rows.append((f"m{i}", x, y))
        files.append(write_micrograph(tmp_path / f"m{i}.mrc", image))
    det = DetectorConfig(diameter=D, input_size=128, epochs=1, batch_size=2, width=0.125)
    wb = Workbench.for_micrographs(
        [Micrograph(f"m{i}", np.zeros((128, 128), np.float32), path=files[i]) for i in range(2)],
        LearnerSettings(detector=det, review_k=3, partial=True),
    )
    name, x, y = zip(*rows, strict=True)
    wb.learner.add_labels(make_picks(list(name), x, y, D))
    wb.create_session(tmp_path / "s")
    wb.close()
    assert main(["round", "--session", str(tmp_path / "s"), "--device", "cpu"]) == 0
    assert "round 1: 6 particle labels" in capsys.readouterr().out
    again = Workbench.open(tmp_path / "s")
    assert again.learner.round == 1 and again.learner.detector is not None
    assert again.learner.predictions is not None and len(again.queue) <= 3
    assert again.settings.detector.device == "auto"  # --device is for that run only
    again.close()
