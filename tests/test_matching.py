"""Tests of activepick.matching: circle IoU, pruned pairwise IoU, matching, NMS."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate
from scipy.optimize import linear_sum_assignment

from activepick.matching import circle_iou, match_first, match_optimal, nms, pairwise_iou


def lens_area_by_integration(d: float, r1: float, r2: float) -> float:
    """Intersection area of circles at (0, 0) radius r1 and (d, 0) radius r2, by
    integrating the overlap of the vertical chords over x (independent of the formula)."""

    def overlap(x: float) -> float:
        h1 = np.sqrt(max(r1 * r1 - x * x, 0.0))
        h2 = np.sqrt(max(r2 * r2 - (x - d) ** 2, 0.0))
        return 2 * min(h1, h2)

    lo, hi = max(-r1, d - r2), min(r1, d + r2)
    if hi <= lo:
        return 0.0
    area, _ = integrate.quad(overlap, lo, hi, limit=200, epsabs=1e-10, epsrel=1e-10)
    return area


@pytest.mark.parametrize(
    ("d", "expected"),
    [(0, 1.0), (10, 0.520956), (20, 0.243010), (30, 0.077757), (40, 0.0), (55, 0.0)],
)
def test_circle_iou_spec_reference_values(d, expected):
    assert circle_iou(d, 20) == pytest.approx(expected, abs=1e-6)


def test_circle_iou_vectorised_and_scalar():
    out = circle_iou(np.array([0.0, 10.0, 40.0]), 20)
    assert isinstance(out, np.ndarray)
    np.testing.assert_allclose(out, [1.0, 0.520956, 0.0], atol=1e-6)
    assert isinstance(circle_iou(10.0, 20.0), float)
    # per-pair radii broadcast: equal radii 10 and 20 at the same relative distance d = r / 2
    np.testing.assert_allclose(
        circle_iou(np.array([5.0, 10.0]), np.array([10.0, 20.0])), 0.520956, atol=1e-6
    )


def test_circle_iou_unequal_radii_hand_cases():
    # one circle inside the other: area ratio (r_small / r_big)^2, both argument orders
    assert circle_iou(0, 10, 20) == pytest.approx(0.25)
    assert circle_iou(5, 20, 10) == pytest.approx(0.25)
    assert circle_iou(10, 10, 20) == pytest.approx(0.25)  # internally tangent: still inside
    # externally tangent and apart: 0
    assert circle_iou(30, 10, 20) == 0.0
    assert circle_iou(31, 10, 20) == 0.0


@pytest.mark.parametrize(
    ("d", "r1", "r2"), [(8.0, 10.0, 6.0), (25.0, 20.0, 12.0), (3.0, 30.0, 29.0)]
)
def test_circle_iou_unequal_radii_matches_numeric_integration(d, r1, r2):
    inter = lens_area_by_integration(d, r1, r2)
    expected = inter / (np.pi * (r1 * r1 + r2 * r2) - inter)
    assert 0 < expected < 1
    assert circle_iou(d, r1, r2) == pytest.approx(expected, abs=1e-7)
    assert circle_iou(d, r2, r1) == pytest.approx(expected, abs=1e-7)


def test_pairwise_iou_keeps_only_overlapping_pairs():
    xy_a = np.array([[0.0, 0.0], [100.0, 0.0], [500.0, 500.0]])
    xy_b = np.array([[10.0, 0.0], [0.0, 30.0], [100.0, 39.0], [100.0, 41.0]])
    m = pairwise_iou(xy_a, 20.0, xy_b, 20.0)
    assert m.shape == (3, 4)
    assert m.nnz == 3  # (0,0) d=10, (0,1) d=30, (1,2) d=39; (1,3) d=41 > 40 excluded
    dense = m.toarray()
    assert dense[0, 0] == pytest.approx(0.520956, abs=1e-6)
    assert dense[0, 1] == pytest.approx(0.077757, abs=1e-6)
    assert dense[1, 2] == pytest.approx(circle_iou(39.0, 20.0))
    assert dense[2].sum() == 0


def test_pairwise_iou_matches_dense_on_random_points_with_unequal_radii():
    rng = np.random.default_rng(3)
    xy_a, xy_b = rng.uniform(0, 300, (40, 2)), rng.uniform(0, 300, (30, 2))
    r_a, r_b = rng.uniform(5, 40, 40), rng.uniform(5, 40, 30)
    d = np.linalg.norm(xy_a[:, None] - xy_b[None], axis=2)
    dense = circle_iou(d, r_a[:, None], r_b[None, :])
    m = pairwise_iou(xy_a, r_a, xy_b, r_b)
    np.testing.assert_allclose(m.toarray(), dense, atol=1e-12)
    assert m.nnz == np.count_nonzero(dense)


def test_pairwise_iou_coincident_centres_and_empty_inputs():
    m = pairwise_iou([[5.0, 5.0]], 10.0, [[5.0, 5.0]], 10.0)
    assert m.toarray().tolist() == [[1.0]]
    assert pairwise_iou(np.empty((0, 2)), 10.0, [[1.0, 1.0]], 10.0).shape == (0, 1)
    assert pairwise_iou([[1.0, 1.0]], 10.0, np.empty((0, 2)), 10.0).shape == (1, 0)


# Two truths 10 px apart (r = 20); prediction 0 sits 1 px from truth 1 (9 px from truth 0),
# prediction 1 sits 5 px from truth 0 (15 px from truth 1). IoU (r = 20): d=1 0.938308,
# d=5 0.726013, d=9 0.557580, d=15 0.364233.
TRUTH = np.array([[0.0, 0.0], [10.0, 0.0]])
PRED = np.array([[9.0, 0.0], [-5.0, 0.0]])


def test_match_first_takes_the_first_truth_over_threshold_and_misses_a_match():
    ia, ib, iou = match_first(PRED, 20.0, TRUTH, 20.0, 0.5)
    # prediction 0 takes truth 0 (first over 0.5, IoU 0.5576) although truth 1 is better;
    # prediction 1 then only has truth 1 at IoU 0.364 < 0.5: unmatched.
    assert ia.tolist() == [0]
    assert ib.tolist() == [0]
    np.testing.assert_allclose(iou, [0.557580], atol=1e-6)


def test_match_optimal_fixes_the_first_rule_flaw():
    ia, ib, iou = match_optimal(PRED, 20.0, TRUTH, 20.0, 0.5)
    assert ia.tolist() == [0, 1]
    assert ib.tolist() == [1, 0]
    np.testing.assert_allclose(iou, [0.938308, 0.726013], atol=1e-6)


def test_match_optimal_maximises_total_iou_not_greedy_best_pair():
    # On a line, r = 20: b0 at 0, b1 at 4, a0 at 1, a1 at -2. IoU a0-b0 (d=1) 0.938 is the
    # best pair, but taking it leaves a1-b1 (d=6, 0.6803): total 1.619. The optimum is
    # a0-b1 (d=3, 0.8258) + a1-b0 (d=2, 0.8803) = 1.706.
    a = np.array([[1.0, 0.0], [-2.0, 0.0]])
    b = np.array([[0.0, 0.0], [4.0, 0.0]])
    assert circle_iou(1.0, 20.0) + circle_iou(6.0, 20.0) < circle_iou(3.0, 20.0) + circle_iou(
        2.0, 20.0
    )
    ia, ib, iou = match_optimal(a, 20.0, b, 20.0, 0.0)
    assert list(zip(ia.tolist(), ib.tolist(), strict=True)) == [(0, 1), (1, 0)]
    np.testing.assert_allclose(iou, [0.825811, 0.880344], atol=1e-6)


def test_match_optimal_equals_dense_assignment_on_random_cases():
    for seed in range(10):
        rng = np.random.default_rng(seed)
        na, nb = rng.integers(1, 25, 2)
        a, b = rng.uniform(0, 150, (na, 2)), rng.uniform(0, 150, (nb, 2))
        ra, rb = rng.uniform(8, 25, na), rng.uniform(8, 25, nb)
        dense = pairwise_iou(a, ra, b, rb).toarray()
        weights = np.where(dense > 0.2, dense, 0.0)
        rows, cols = linear_sum_assignment(weights, maximize=True)
        best = weights[rows, cols].sum()
        ia, ib, iou = match_optimal(a, ra, b, rb, 0.2)
        assert iou.sum() == pytest.approx(best, abs=1e-9)
        assert len(set(ib.tolist())) == len(ib) and np.all(np.diff(ia) > 0)
        np.testing.assert_allclose(dense[ia, ib], iou)
        assert np.all(iou > 0.2)


def test_matching_with_nothing_to_match():
    for match in (match_optimal, match_first):
        ia, ib, iou = match([[0.0, 0.0]], 10.0, [[100.0, 0.0]], 10.0)
        assert len(ia) == len(ib) == len(iou) == 0
        ia, ib, iou = match(np.empty((0, 2)), 10.0, [[0.0, 0.0]], 10.0)
        assert len(ia) == 0


def test_nms_keeps_most_confident_and_ignores_suppressed_picks():
    # r = 20 on a line. Order by score: 1 (x=10) kept; 0 (x=0, IoU 0.521 with 1) dropped;
    # 2 (x=30, IoU 0.243 with 1) kept; 3 far away kept.
    xy = np.array([[0.0, 0.0], [10.0, 0.0], [30.0, 0.0], [100.0, 0.0]])
    assert nms(xy, 20.0, [0.8, 0.9, 0.7, 0.6]).tolist() == [1, 2, 3]
    # chain: 1 (x=15) is dropped by 0 (IoU 0.364 > 0.3); 2 (x=30) overlaps only the dropped
    # pick above the threshold (0.364) and 0 at 0.078, so it is kept.
    xy = np.array([[0.0, 0.0], [15.0, 0.0], [30.0, 0.0]])
    assert nms(xy, 20.0, [0.9, 0.8, 0.7]).tolist() == [0, 2]
    # a higher threshold keeps the pick at IoU 0.364
    assert nms(xy, 20.0, [0.9, 0.8, 0.7], iou_threshold=0.4).tolist() == [0, 1, 2]


def test_nms_ties_keep_input_order_and_empty_input():
    xy = np.array([[0.0, 0.0], [5.0, 0.0]])
    assert nms(xy, 20.0, [0.5, 0.5]).tolist() == [0]
    assert nms(np.empty((0, 2)), 20.0, np.empty(0)).tolist() == []
    with pytest.raises(ValueError, match="scores"):
        nms(xy, 20.0, [0.5])
