"""The simulated oracle: thesis 'first' rule vs optimal assignment, tau boundaries."""

import numpy as np
import pandas as pd
import pytest

from activepick.active.oracle import DECISION_COLUMNS, Oracle, SimulatedOracle
from activepick.io.picks import make_picks

# Circles of diameter 40 (r = 20). Hand-computed circle IoU for r = 20:
# d = 2 -> 0.8806, d = 4 -> 0.7744, d = 6 -> 0.6803, d = 10 -> 0.520956 (SPEC).
D = 40.0


def batch(mic, xs, ys, ids=None):
    df = make_picks(mic, xs, ys, D, confidence=0.5, status="predicted")
    df["pick_id"] = np.arange(len(df)) + 100 if ids is None else ids
    return df


def truth(mic, xs, ys):
    return make_picks(mic, xs, ys, D)


def test_first_takes_earlier_truth_optimal_takes_better_one():
    # one prediction; G0 at d = 4 (IoU 0.774) comes first, G1 at d = 2 (IoU 0.881)
    t = truth("m", [104.0, 98.0], [100.0, 100.0])
    b = batch("m", [100.0], [100.0])
    first = SimulatedOracle(t, tau=0.7, mode="first").review(b)
    optimal = SimulatedOracle(t, tau=0.7, mode="optimal").review(b)
    assert first.loc[0, "truth_index"] == 0 and first.loc[0, "x"] == 104.0
    assert optimal.loc[0, "truth_index"] == 1 and optimal.loc[0, "x"] == 98.0
    assert first.loc[0, "action"] == optimal.loc[0, "action"] == "move"


def test_first_rule_loses_a_particle_the_optimal_assignment_keeps():
    # G0 (100, 100), G1 (108, 100). P0 (104, 100) is d = 4 from both; P1 (98, 100)
    # is d = 2 from G0 and d = 10 from G1 (IoU 0.52 < tau).
    t = truth("m", [100.0, 108.0], [100.0, 100.0])
    b = batch("m", [104.0, 98.0], [100.0, 100.0])
    first = SimulatedOracle(t, tau=0.7, mode="first").review(b)
    assert list(first["truth_index"]) == [0, -1]
    # P1 overlaps G0, which P0 just took: a duplicate, not a negative
    assert list(first["action"]) == ["move", "skip"]
    optimal = SimulatedOracle(t, tau=0.7, mode="optimal").review(b)
    assert list(optimal["truth_index"]) == [1, 0]
    assert list(optimal["action"]) == ["move", "move"]
    assert list(optimal["x"]) == [108.0, 100.0]
    assert list(optimal["y"]) == [100.0, 100.0]


def test_tau_is_strict_at_the_boundary():
    from activepick.matching import circle_iou

    iou10 = float(circle_iou(10.0, 20.0))
    assert iou10 == pytest.approx(0.520956, abs=1e-6)
    t = truth("m", [110.0], [50.0])
    b = batch("m", [100.0], [50.0])
    for mode in ("first", "optimal"):
        at = SimulatedOracle(t, tau=iou10, mode=mode).review(b)
        assert at.loc[0, "action"] == "reject" and at.loc[0, "truth_index"] == -1
        below = SimulatedOracle(t, tau=iou10 - 1e-6, mode=mode).review(b)
        assert below.loc[0, "action"] == "move" and below.loc[0, "truth_index"] == 0
        # IoU 0.68 at d = 6 does not pass the synthetic tau 0.7; the real-data tau 0.3 does
        b6 = batch("m", [104.0], [50.0])
        assert SimulatedOracle(t, tau=0.7, mode=mode).review(b6).loc[0, "action"] == "reject"
        assert SimulatedOracle(t, tau=0.3, mode=mode).review(b6).loc[0, "action"] == "move"


def test_exact_hit_is_accept_and_rejects_keep_predicted_centre():
    t = truth("m", [50.0, 300.0], [60.0, 300.0])
    b = batch("m", [50.0, 150.0], [60.0, 150.0], ids=[7, 9])
    dec = SimulatedOracle(t).review(b)
    assert tuple(dec.columns) == DECISION_COLUMNS
    assert list(dec["pick_id"]) == [7, 9]
    assert list(dec["action"]) == ["accept", "reject"]
    assert list(dec["x"]) == [50.0, 150.0]
    assert list(dec["truth_index"]) == [0, -1]


def test_matching_is_per_micrograph_and_truth_index_is_global():
    t = pd.concat([truth("a", [10.0], [10.0]), truth("b", [10.0], [10.0])], ignore_index=True)
    b = batch("b", [11.0], [10.0])
    dec = SimulatedOracle(t).review(b)
    assert dec.loc[0, "truth_index"] == 1 and dec.loc[0, "action"] == "move"
    assert SimulatedOracle(t).review(batch("c", [10.0], [10.0])).loc[0, "action"] == "reject"


def test_labelled_particles_are_never_assigned_again():
    t = truth("m", [100.0, 200.0], [100.0, 100.0])
    oracle = SimulatedOracle(t, mode="optimal", labelled=[0])
    dec = oracle.review(batch("m", [101.0, 199.0], [100.0, 100.0]))
    assert list(dec["action"]) == ["skip", "move"]
    assert oracle.labelled == {0}  # no memory between calls: labels say what is labelled
    second = batch("m", [100.0, 201.0], [100.0, 100.0])
    assert list(oracle.review(second)["action"]) == ["skip", "move"]
    labels = make_picks("m", [dec.loc[1, "x"]], [dec.loc[1, "y"]], D, status="moved")
    assert list(oracle.review(second, labels=labels)["action"]) == ["skip", "skip"]


def test_labels_argument_marks_labelled_particles():
    t = truth("m", [100.0, 200.0], [100.0, 100.0])
    labels = make_picks("m", [200.0], [100.0], D, status="accepted")
    dec = SimulatedOracle(t, mode="first").review(batch("m", [199.0], [100.0]), labels=labels)
    assert dec.loc[0, "action"] == "skip"
    rejected = make_picks("m", [200.0], [100.0], D, status="rejected")
    dec = SimulatedOracle(t).review(batch("m", [199.0], [100.0]), labels=rejected)
    assert dec.loc[0, "action"] == "move"  # a rejection is not a particle label


def test_empty_batch_and_protocol():
    oracle = SimulatedOracle(truth("m", [1.0], [1.0]))
    assert isinstance(oracle, Oracle)
    dec = oracle.review(batch("m", [], []))
    assert len(dec) == 0 and tuple(dec.columns) == DECISION_COLUMNS


def test_bad_mode_and_tau():
    with pytest.raises(ValueError, match="mode"):
        SimulatedOracle(truth("m", [1.0], [1.0]), mode="best")
    with pytest.raises(ValueError, match="tau"):
        SimulatedOracle(truth("m", [1.0], [1.0]), tau=1.0)


# ---------------------------------------------------------------------- HumanOracle


def _human_truth():
    # r = 20: d = 10 -> IoU 0.521 (on the particle: move), d = 2 -> IoU 0.936 (accept)
    return make_picks("m", [100.0, 300.0, 130.0, 900.0], [100.0, 100.0, 100.0, 900.0], 40.0)


def _batch(xs, ys, ids):
    b = make_picks("m", xs, ys, 40.0, confidence=0.5, status="predicted")
    b["pick_id"] = ids
    return b


def test_human_oracle_moves_near_miss_and_rejects_only_background():
    from activepick.active.oracle import HumanOracle

    oracle = HumanOracle(_human_truth(), add_missed=False)
    # pick 1: 2 px off truth 0 -> accept at the predicted centre; pick 2: 10 px off
    # truth 1 (thesis oracle at tau 0.7 would reject it) -> move onto (300, 100);
    # pick 3: on empty background -> reject
    out = oracle.review(_batch([102.0, 310.0, 600.0], [100.0, 100.0, 600.0], [1, 2, 3]))
    assert out["action"].tolist() == ["accept", "move", "reject"]
    assert out[["x", "y"]].to_numpy().tolist() == [[102.0, 100.0], [300.0, 100.0], [600.0, 600.0]]
    thesis = SimulatedOracle(_human_truth(), tau=0.7, mode="first")
    assert thesis.review(_batch([310.0], [100.0], [2]))["action"].tolist() == ["reject"]


def test_human_oracle_adds_missed_particles_of_the_reviewed_region_only():
    from activepick.active.oracle import HumanOracle

    oracle = HumanOracle(_human_truth())  # region: 2 diameters = 80 px around each pick
    out = oracle.review(_batch([102.0], [100.0], [1]))
    # truth 2 at (130, 100) is 28 px away and unlabelled -> added; truth 1 (198 px) and
    # truth 3 (far) lie outside the reviewed region
    assert out["action"].tolist() == ["accept", "add"]
    add = out.iloc[1]
    assert (add["pick_id"], add["x"], add["y"], add["micrograph"]) == (-1, 130.0, 100.0, "m")
    # a particle already labelled is not added again
    labels = make_picks("m", [130.0], [100.0], 40.0, status="accepted")
    assert oracle.review(_batch([102.0], [100.0], [1]), labels=labels)["action"].tolist() == [
        "accept"
    ]
