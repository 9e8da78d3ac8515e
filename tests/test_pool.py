"""Bounded, rotating prediction subsets of a large pool (activepick.active.pool)."""

from __future__ import annotations

import math

import pytest

from activepick.active.pool import DEFAULT_MAX_SIZE, prediction_subset, rotation_order

POOL = [f"mic_{i:04d}" for i in range(103)]


def test_rotation_covers_the_pool_in_ceil_n_over_size_rounds():
    size = 10
    rounds = math.ceil(len(POOL) / size)
    assert rounds == 11
    seen: list[str] = []
    for r in range(rounds):
        subset = prediction_subset(POOL, round=r, max_size=size, seed=3)
        assert len(subset) == (3 if r == rounds - 1 else size)  # 103 = 10 x 10 + 3
        assert subset == [n for n in POOL if n in subset]  # pool order
        seen += subset
    assert sorted(seen) == POOL  # every micrograph exactly once per cycle
    # the next cycle repeats the first: round 11 == round 0
    assert prediction_subset(POOL, round=11, max_size=size, seed=3) == prediction_subset(
        POOL, round=0, max_size=size, seed=3
    )
    # any ceil(N/size) consecutive rounds cover everything, from any starting round
    later = set().union(
        *(prediction_subset(POOL, round=r, max_size=size, seed=3) for r in range(5, 16))
    )
    assert later == set(POOL)


def test_labelled_and_complete_always_included_and_size_bound():
    labelled = {"mic_0000", "mic_0050", "mic_0102", "not_in_pool"}
    complete = {"mic_0007"}
    for r in range(12):
        subset = prediction_subset(
            POOL, labelled=labelled, complete=complete, round=r, max_size=10, seed=1
        )
        assert {"mic_0000", "mic_0050", "mic_0102", "mic_0007"} <= set(subset)
        assert "not_in_pool" not in subset
        assert len(subset) <= 10 + 4
        assert len(set(subset)) == len(subset)


def test_deterministic_per_seed_and_round():
    a = prediction_subset(POOL, round=4, max_size=10, seed=7)
    assert a == prediction_subset(list(POOL), round=4, max_size=10, seed=7)
    assert a != prediction_subset(POOL, round=4, max_size=10, seed=8)
    assert a != prediction_subset(POOL, round=5, max_size=10, seed=7)
    # round r is window r of the seeded order, hand-checked on a small pool
    order = rotation_order(["a", "b", "c", "d", "e"], seed=0)
    assert sorted(order) == ["a", "b", "c", "d", "e"]
    assert set(prediction_subset(["a", "b", "c", "d", "e"], round=1, max_size=2)) == set(order[2:4])
    assert set(prediction_subset(["a", "b", "c", "d", "e"], round=2, max_size=2)) == {order[4]}


def test_small_pool_is_predicted_whole():
    names = POOL[:DEFAULT_MAX_SIZE]
    assert prediction_subset(names, round=9) == names
    assert prediction_subset(["x"], max_size=1) == ["x"]


def test_bad_arguments():
    with pytest.raises(ValueError, match="unique"):
        prediction_subset(["a", "a", "b"], max_size=1)
    with pytest.raises(ValueError, match="max_size"):
        prediction_subset(POOL, max_size=0)
