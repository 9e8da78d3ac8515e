"""Tests of activepick.metrics against hand-checked values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from activepick.io.picks import make_picks
from activepick.metrics import (
    distinct_particle_matrix,
    evaluate,
    f_beta,
    find_t_opt,
    pr_auc,
    pr_curve,
    summary,
    t_opt_from_decisions,
)

IOU_D10 = 0.520956  # circle IoU at d = 10, r = 20 (SPEC section 4)
IOU_D2 = 0.880344  # d = 2, r = 20


def hand_case() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Truth: four particles on micrograph "a" (diameter 40 => r = 20) and one on "c".

    Predictions (diameter 40):
      p0 (100, 100) conf 0.9  on truth 0 (IoU 1)
      p1 (210, 100) conf 0.8  10 px from truth 1 (IoU 0.521 > 0.5: TP)
      p2 (315, 100) conf 0.6  15 px from truth 2 (IoU 0.364: FP at tp_iou 0.5)
      p3 (600, 100) conf 0.4  nothing near: FP
      p4 on micrograph "b" (no truth there) conf 0.2: FP
      p5 (102, 100) conf 0.95 2 px from truth 0 (IoU 0.880), a duplicate of p0
    """
    truth = make_picks(["a"] * 4 + ["c"], [100, 200, 300, 400, 50], [100] * 4 + [50], 40.0)
    pred = make_picks(
        ["a", "a", "a", "a", "b", "a"],
        [100, 210, 315, 600, 100, 102],
        [100] * 6,
        40.0,
        confidence=[0.9, 0.8, 0.6, 0.4, 0.2, 0.95],
        status="predicted",
    )
    return pred, truth


def test_f_beta():
    assert f_beta(0.5, 0.5) == pytest.approx(0.5)
    assert f_beta(1.0, 0.5, beta=2.0) == pytest.approx(5 * 0.5 / (4 + 0.5))
    assert f_beta(0.0, 0.0) == 0.0
    np.testing.assert_allclose(f_beta(np.array([1.0, 0.0]), np.array([1.0, 0.0])), [1.0, 0.0])


def test_evaluate_hand_case_at_zero():
    pred, truth = hand_case()
    m = evaluate(pred, truth, 0.0)
    # p0 takes truth 0 (IoU 1 beats p5's 0.880), p1 truth 1; everything else is FP / FN.
    assert (m["tp"], m["fp"], m["fn"]) == (2, 4, 3)
    assert m["recall"] == pytest.approx(0.4)
    assert m["precision"] == pytest.approx(2 / 6)
    assert m["f1"] == pytest.approx(2 * 0.4 * (1 / 3) / (0.4 + 1 / 3))
    assert m["mean_iou"] == pytest.approx((1 + IOU_D10) / 2, abs=1e-6)


def test_evaluate_rematches_among_kept_predictions():
    pred, truth = hand_case()
    m = evaluate(pred, truth, 0.92)  # only p5 kept: it now matches truth 0
    assert (m["tp"], m["fp"], m["fn"]) == (1, 0, 4)
    assert m["precision"] == 1.0 and m["recall"] == pytest.approx(0.2)
    assert m["mean_iou"] == pytest.approx(IOU_D2, abs=1e-6)
    m = evaluate(pred, truth, 0.85)  # p5 and p0: p0 wins truth 0, p5 is FP
    assert (m["tp"], m["fp"], m["fn"]) == (1, 1, 4)
    assert m["mean_iou"] == pytest.approx(1.0)


def test_evaluate_threshold_is_inclusive_and_tp_iou_configurable():
    pred, truth = hand_case()
    assert evaluate(pred, truth, 0.8)["tp"] == 2  # p1 has confidence exactly 0.8
    m = evaluate(pred, truth, 0.0, tp_iou=0.3)  # p2 at IoU 0.364 now counts
    assert (m["tp"], m["fp"], m["fn"]) == (3, 3, 2)


def test_evaluate_no_predictions_and_missing_confidence():
    pred, truth = hand_case()
    m = evaluate(pred, truth, 0.96)
    assert (m["tp"], m["fp"], m["fn"]) == (0, 0, 5)
    assert m["precision"] == 1.0 and m["recall"] == 0.0 and m["f1"] == 0.0
    assert np.isnan(m["mean_iou"])
    # picks without a score (NaN) are kept at every threshold
    unscored = pred.assign(confidence=np.nan)
    assert evaluate(unscored, truth, 1.0)["tp"] == 2


def test_pr_curve_hand_case_rows():
    pred, truth = hand_case()
    curve = pr_curve(pred, truth, thresholds=[0.0, 0.3, 0.5, 0.7, 0.85, 0.92, 0.96])
    assert curve.columns.tolist() == ["threshold", "tp", "fp", "fn", "recall", "precision", "f1"]
    assert curve["tp"].tolist() == [2, 2, 2, 2, 1, 1, 0]
    assert curve["fp"].tolist() == [4, 3, 2, 1, 1, 0, 0]
    assert curve["fn"].tolist() == [3, 3, 3, 3, 4, 4, 5]
    np.testing.assert_allclose(curve["precision"], [1 / 3, 0.4, 0.5, 2 / 3, 0.5, 1.0, 1.0])
    np.testing.assert_allclose(curve["f1"].iloc[3], 0.5)


def test_pr_curve_default_grid():
    pred, truth = hand_case()
    curve = pr_curve(pred, truth)
    assert len(curve) == 1001
    assert curve["threshold"].iloc[0] == 0.0 and curve["threshold"].iloc[-1] == 1.0
    assert curve["threshold"].iloc[300] == 0.3


def random_case(seed: int, field: float = 400.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Three micrographs with duplicate-rich predictions (so that groups of
    overlapping predictions compete for the same truth); a small ``field`` crowds
    the truth too, so that groups chain and merge as the threshold falls."""
    rng = np.random.default_rng(seed)
    preds, truths = [], []
    for m in range(3):
        t = rng.uniform(0, field, (15, 2))
        truths.append(make_picks(f"m{m}", t[:, 0], t[:, 1], rng.uniform(30, 50, 15)))
        k = int(rng.integers(5, 35))
        p = t[rng.integers(0, 15, k)] + rng.normal(0, 8, (k, 2))
        conf = np.round(rng.random(k), 2)  # repeated values on purpose
        preds.append(
            make_picks(
                f"m{m}",
                p[:, 0],
                p[:, 1],
                rng.uniform(30, 50, k),
                confidence=conf,
                status="predicted",
            )
        )
    return pd.concat(preds, ignore_index=True), pd.concat(truths, ignore_index=True)


@pytest.mark.parametrize(("seed", "field"), [(0, 400.0), (1, 400.0), (2, 120.0)])
def test_pr_curve_equals_naive_per_threshold_evaluate(seed, field):
    pred, truth = random_case(seed, field)
    grid = np.concatenate([np.arange(21) / 20, np.unique(pred["confidence"])])
    curve = pr_curve(pred, truth, thresholds=grid, tp_iou=0.4)
    for row in curve.itertuples():
        naive = evaluate(pred, truth, row.threshold, tp_iou=0.4)
        assert (row.tp, row.fp, row.fn) == (naive["tp"], naive["fp"], naive["fn"]), row.threshold
        assert row.f1 == pytest.approx(naive["f1"])


def test_pr_auc_hand_curves():
    # sorted by recall (ties: best precision first): (0, 1), (0.5, 0.8), (0.5, 0.6), (1, 0.4)
    # -> 0 * 1 + 0.5 * 0.8 + 0 * 0.6 + 0.5 * 0.4 = 0.6
    curve = pd.DataFrame({"recall": [0.5, 0.0, 1.0, 0.5], "precision": [0.6, 1.0, 0.4, 0.8]})
    assert pr_auc(curve) == pytest.approx(0.6)
    # the rectangle from R_0 = 0 to the first recall uses the first point's precision
    curve = pd.DataFrame({"recall": [0.25, 0.75], "precision": [1.0, 0.5]})
    assert pr_auc(curve) == pytest.approx(0.25 * 1.0 + 0.5 * 0.5)


def test_pr_auc_hand_case():
    pred, truth = hand_case()
    # recall 0.2 first reached at t in (0.9, 0.95] with precision 1; recall 0.4 at
    # t in (0.6, 0.8] with precision 2/3 (best at that recall): 0.2 * 1 + 0.2 * 2/3
    assert pr_auc(pr_curve(pred, truth)) == pytest.approx(0.2 + 0.2 * 2 / 3)


def test_find_t_opt_hand_case_lowest_of_ties():
    pred, truth = hand_case()
    # F1 is 0.5 for every t in (0.6, 0.8] and lower elsewhere: lowest grid point 0.61
    assert find_t_opt(pred, truth) == pytest.approx(0.61)


def f1_vs_f2_case() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Three truths; predictions on them with conf 0.9, 0.8, 0.3 and two far-off FPs
    with conf 0.5 and 0.4. t in (0.5, 0.8]: P = 1, R = 2/3 (F1 0.8, F2 0.714);
    t <= 0.3: P = 0.6, R = 1 (F1 0.75, F2 0.882)."""
    truth = make_picks("m", [100, 300, 500], [100, 100, 100], 40.0)
    pred = make_picks(
        "m",
        [100, 300, 500, 900, 700],
        [100, 100, 100, 900, 700],
        40.0,
        confidence=[0.9, 0.8, 0.3, 0.5, 0.4],
        status="predicted",
    )
    return pred, truth


def test_find_t_opt_f1_and_f2():
    pred, truth = f1_vs_f2_case()
    assert find_t_opt(pred, truth) == pytest.approx(0.51)
    assert find_t_opt(pred, truth, beta=2.0) == pytest.approx(0.0)


def test_t_opt_from_decisions():
    conf = [0.9, 0.8, 0.3, 0.5, 0.4]
    verdict = [True, True, True, False, False]
    # same numbers as f1_vs_f2_case: decisions act as the labels
    assert t_opt_from_decisions(conf, verdict) == pytest.approx(0.51)
    assert t_opt_from_decisions(conf, verdict, beta=2.0) == pytest.approx(0.0)
    # 0.9 T, 0.8 T, 0.6 F, 0.4 T, 0.3 F: F1 0.857 at t in (0.3, 0.4] (P 0.75, R 1)
    assert t_opt_from_decisions([0.9, 0.8, 0.6, 0.4, 0.3], [1, 1, 0, 1, 0]) == pytest.approx(0.31)
    # one added particle (confidence 0) is a false negative at every t > 0:
    # t = 0 gives P 4/6, R 1, F1 0.8 > 0.75 at t = 0.31
    assert t_opt_from_decisions([0.9, 0.8, 0.6, 0.4, 0.3, 0.0], [1, 1, 0, 1, 0, 1]) == 0.0
    with pytest.raises(ValueError, match="decisions"):
        t_opt_from_decisions([0.5], [True, False])


def test_summary_keys_and_values():
    pred, truth = hand_case()
    s = summary(pred, truth)
    assert s["t_opt"] == pytest.approx(0.61)
    assert s["recall_topt"] == pytest.approx(0.4)
    assert s["precision_topt"] == pytest.approx(2 / 3)
    assert s["f1_topt"] == pytest.approx(0.5)
    assert (s["recall_03"], s["precision_03"], s["f1_03"]) == pytest.approx((0.4, 0.4, 0.4))
    assert s["pr_auc"] == pytest.approx(0.2 + 0.2 * 2 / 3)
    assert s["mean_iou"] == pytest.approx((1 + IOU_D10) / 2, abs=1e-6)
    assert (s["tp"], s["fp"], s["fn"], s["n_pred"], s["n_truth"]) == (2, 1, 3, 6, 5)
    # a given T_opt is used as is
    assert summary(pred, truth, t_opt=0.92)["precision_topt"] == 1.0


def test_distinct_particle_matrix():
    mat = distinct_particle_matrix({"a": {1, 2, 3}, "b": {2, 3, 4}, "c": {1}})
    assert mat.index.tolist() == mat.columns.tolist() == ["a", "b", "c"]
    assert mat.to_numpy().tolist() == [[0, 1, 2], [1, 0, 3], [0, 1, 0]]


@pytest.mark.parametrize(("seed", "field"), [(3, 400.0), (4, 120.0), (5, 60.0)])
def test_evaluate_equals_one_solver_call_on_all_pairs(seed, field):
    """Solving only crowded components (stars take their best pair) changes nothing."""
    from activepick.matching import match_pairs
    from activepick.metrics import _pairs

    pred, truth = random_case(seed, field)
    for t in (0.0, 0.3, 0.7):
        kept = pred[pred["confidence"] >= t]
        ip, it, iou = _pairs(kept, truth, 0.4)
        _, _, ref = match_pairs(ip, it, iou)
        got = evaluate(pred, truth, t, tp_iou=0.4)
        assert got["tp"] == len(ref)
        assert got["mean_iou"] == pytest.approx(ref.mean())


def test_pr_curve_with_continuous_confidences_off_the_grid():
    pred, truth = random_case(6, 120.0)
    rng = np.random.default_rng(6)
    pred["confidence"] = rng.random(len(pred))  # no two equal, none on the grid
    curve = pr_curve(pred, truth, steps=11, tp_iou=0.4)
    for row in curve.itertuples():
        naive = evaluate(pred, truth, row.threshold, tp_iou=0.4)
        assert (row.tp, row.fp) == (naive["tp"], naive["fp"]), row.threshold


def test_absurd_coordinates_are_one_coordinate_error():
    from activepick.errors import CoordinateError

    pred = make_picks(["a", "a"], [1e300, 5.0], [5.0, 5.0], 10.0, confidence=[0.5, 0.5])
    with pytest.raises(CoordinateError, match=r"x = 1e\+300 \(row 0\) is beyond any micrograph"):
        summary(pred, pred)
    with pytest.raises(CoordinateError, match="beyond any micrograph"):
        evaluate(pred, pred)
