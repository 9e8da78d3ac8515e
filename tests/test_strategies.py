"""Tests of activepick.active.strategies: orderings on hand-made candidate sets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from activepick.active.strategies import (
    STRATEGIES,
    binary_entropy,
    rank_candidates,
    register_strategy,
    strategy_needs,
)
from activepick.errors import ActivePickError
from activepick.io.picks import make_picks


def cands(conf, *, micrograph="m", x=None, y=None, diameter=10.0, **extra) -> pd.DataFrame:
    """Candidates far apart on one micrograph unless positions are given."""
    n = len(conf)
    x = np.arange(n) * 1000.0 if x is None else x
    y = np.zeros(n) if y is None else y
    df = make_picks(micrograph, x, y, diameter, confidence=conf, status="predicted")
    for name, values in extra.items():
        df[name] = values
    return df


def order(df: pd.DataFrame, name: str, k: int | None = None, **kwargs) -> list[int]:
    rng = np.random.default_rng(kwargs.pop("seed", 0))
    k = len(df) if k is None else k
    return STRATEGIES[name](df, k, rng=rng, t_opt=kwargs.pop("t_opt", 0.5)).tolist()


MIXED = [0.9, 0.2, 0.55, 0.45, 0.05]


def test_registry_names_and_needs():
    expected = {
        "random",
        "low_confidence",
        "entropy",
        "norm_conf_entropy",
        "boundary_distance",
        "diverse_boundary",
        "mc_dropout",
        "tta",
    }
    assert expected <= set(STRATEGIES)
    assert strategy_needs("mc_dropout") == "mc_dropout"
    assert strategy_needs("tta") == "tta"
    assert strategy_needs("entropy") is None
    with pytest.raises(ActivePickError, match="unknown strategy 'nope'.*boundary_distance"):
        strategy_needs("nope")


def test_boundary_distance_order():
    # |c - 0.4| = [0.5, 0.2, 0.15, 0.05, 0.35]
    assert order(cands(MIXED), "boundary_distance", t_opt=0.4) == [3, 2, 1, 4, 0]
    # |c - 0.1| = [0.8, 0.1, 0.45, 0.35, 0.05]
    assert order(cands(MIXED), "boundary_distance", t_opt=0.1) == [4, 1, 3, 2, 0]


def test_low_confidence_order_and_k():
    assert order(cands(MIXED), "low_confidence") == [4, 1, 3, 2, 0]
    assert order(cands(MIXED), "low_confidence", k=2) == [4, 1]
    assert order(cands(MIXED), "low_confidence", k=10) == [4, 1, 3, 2, 0]


def test_entropy_order_with_exact_tie_kept_in_input_order():
    # H highest at 0.5, then 0.75 and 0.25 (exactly equal: kept in input order), 0.125, 0.0625
    assert order(cands([0.75, 0.125, 0.25, 0.5, 0.0625]), "entropy") == [3, 0, 2, 1, 4]


def test_binary_entropy_values_and_symmetry():
    assert binary_entropy(0.5) == pytest.approx(1.0)
    assert binary_entropy(0.25) == pytest.approx(-(0.25 * np.log2(0.25) + 0.75 * np.log2(0.75)))
    c = np.random.default_rng(0).random(50)
    np.testing.assert_allclose(binary_entropy(c), binary_entropy(1 - c), rtol=1e-12)
    # clipped to [1e-6, 1 - 1e-6]: finite and > 0 at the ends
    assert binary_entropy(0.0) == pytest.approx(binary_entropy(1e-6)) and binary_entropy(0.0) > 0


def test_norm_conf_entropy_differs_from_entropy_on_a_skewed_set():
    conf = [0.02, 0.05, 0.10, 0.20, 0.14]
    # raw entropy: closest to 0.5 first = largest confidence first
    assert order(cands(conf), "entropy") == [3, 4, 2, 1, 0]
    # c' = 0.01 + 0.98 (c - 0.02) / 0.18 = [0.01, 0.1733, 0.4456, 0.99, 0.6633]:
    # |c' - 0.5| = [0.49, 0.327, 0.054, 0.49, 0.163]
    got = order(cands(conf), "norm_conf_entropy")
    assert got[:3] == [2, 4, 1]
    assert set(got[3:]) == {0, 3}


def test_norm_conf_entropy_all_equal_keeps_input_order():
    assert order(cands([0.3, 0.3, 0.3]), "norm_conf_entropy") == [0, 1, 2]
    out = rank_candidates(cands([0.3, 0.3, 0.3]), "norm_conf_entropy", 3)
    np.testing.assert_allclose(out["uncertainty"], 1.0)  # c' = 0.5 for all


def test_random_is_reproducible_per_seed_and_a_subset():
    df = cands(np.linspace(0.01, 0.99, 30))
    a = rank_candidates(df, "random", 10, seed=7)
    b = rank_candidates(df, "random", 10, seed=7)
    c = rank_candidates(df, "random", 10, seed=8)
    assert a.index.tolist() == b.index.tolist()
    assert a.index.tolist() != c.index.tolist()
    assert len(set(a.index)) == 10
    assert a["uncertainty"].isna().all()
    assert sorted(order(df, "random", k=50)) == list(range(30))


def test_diverse_boundary_skips_neighbours_and_caps_per_micrograph():
    # diameter 10, t_opt 0.5; boundary order would be [0, 1, 2, 3, 4, 5]
    df = cands(
        [0.50, 0.51, 0.52, 0.53, 0.60, 0.90],
        micrograph=["A", "A", "A", "A", "B", "C"],
        x=[0.0, 15.0, 100.0, 200.0, 0.0, 0.0],
    )
    assert order(df, "boundary_distance", k=3) == [0, 1, 2]
    # k = 3 over 3 micrographs: cap ceil(3 / 3) * 2 = 2 per micrograph.
    # 0 taken; 1 is 15 px < 2 diameters from 0: skipped; 2 taken; 3: A is full; 4 taken.
    assert order(df, "diverse_boundary", k=3) == [0, 2, 4]


def test_diverse_boundary_fills_up_when_short():
    df = cands([0.5, 0.6, 0.7], x=[0.0, 5.0, 10.0])  # all within 2 diameters
    assert order(df, "diverse_boundary", k=2) == [0, 1]
    assert order(df, "diverse_boundary", k=3) == [0, 1, 2]


@pytest.mark.parametrize("name", ["mc_dropout", "tta"])
def test_disagreement_strategies(name):
    df = cands(MIXED, disagreement=[0.1, 0.5, np.nan, 0.5, 0.3])
    assert order(df, name) == [1, 3, 4, 0, 2]  # highest first, tie in input order, NaN last
    with pytest.raises(ActivePickError, match="disagreement"):
        rank_candidates(cands(MIXED), name, 2)


def test_rank_candidates_columns_and_index():
    df = cands(MIXED)
    df.index = [10, 11, 12, 13, 14]
    out = rank_candidates(df, "boundary_distance", 3, t_opt=0.4, protocol="thesis")
    assert out.index.tolist() == [13, 12, 11]
    assert out["rank"].tolist() == [0, 1, 2]
    np.testing.assert_allclose(out["uncertainty"], [0.95, 0.85, 0.8])
    assert list(out.columns[: len(df.columns)]) == list(df.columns)
    assert len(rank_candidates(df, "entropy", 0)) == 0
    with pytest.raises(ActivePickError, match="choose from"):
        rank_candidates(df, "most_fun", 3)


def test_register_strategy_adds_one_function():
    @register_strategy("_test_highest_x")
    def highest_x(candidates, k, *, rng, t_opt):
        return np.argsort(-candidates["x"].to_numpy(), kind="stable")[:k]

    try:
        out = rank_candidates(cands(MIXED), "_test_highest_x", 2)
        assert out.index.tolist() == [4, 3]
        with pytest.raises(ValueError, match="twice"):
            register_strategy("_test_highest_x")(highest_x)
    finally:
        STRATEGIES.pop("_test_highest_x")


# ---------------------------------------------------------------------- product protocol


def test_recentred_confidence_maps_t_opt_to_one_half():
    from activepick.active.strategies import recentred_confidence

    got = recentred_confidence([0.2, 0.5, 0.05], 0.2)
    # sigmoid(logit(c) - logit(0.2)): 0.2 -> 0.5; 0.5 -> 0.8; 0.05 -> 0.1739...
    np.testing.assert_allclose(got, [0.5, 0.8, 0.17391304], rtol=1e-6)
    np.testing.assert_allclose(recentred_confidence([0.3, 0.7], 0.5), [0.3, 0.7])


def test_recentred_entropy_ranks_picks_at_t_opt_first():
    conf = [0.9, 0.45, 0.2, 0.05, 0.6]
    product = rank_candidates(cands(conf), "entropy", 3, t_opt=0.2)
    # order by |logit(c) - logit(0.2)|: 0.2 (0), 0.45 (1.19), 0.05 (1.56), 0.6 (1.79)
    assert product["confidence"].tolist() == [0.2, 0.45, 0.05]
    np.testing.assert_allclose(product["uncertainty"].iloc[0], 1.0)
    thesis = rank_candidates(cands(conf), "entropy", 3, t_opt=0.2, protocol="thesis")
    assert thesis["confidence"].tolist() == [0.45, 0.6, 0.2]
    with pytest.raises(ActivePickError, match="protocol"):
        rank_candidates(cands(conf), "entropy", 3, protocol="mine")


def test_plausible_candidates_follow_t_opt():
    from activepick.active.strategies import plausible_candidates

    df = cands([0.9, 0.2, 0.02, 0.001])
    # T_opt 0.2: keep recentred >= 0.1, i.e. c >= 1 / (1 + 9 * 4) = 0.027
    assert plausible_candidates(df, 0.2)["confidence"].tolist() == [0.9, 0.2]
    # T_opt 0.01: c >= 0.00112, so 0.001 still goes
    assert plausible_candidates(df, 0.01)["confidence"].tolist() == [0.9, 0.2, 0.02]


def test_product_batch_is_reviewed_micrograph_by_micrograph():
    # boundary distance at T_opt 0.5 (thesis: raw confidences), ranks by |c - 0.5|:
    # a 0.50 (0), c 0.48 (1), b 0.45 (2), a 0.40 (3), c 0.30 (4), b 0.20 (5)
    conf = [0.50, 0.45, 0.48, 0.40, 0.20, 0.30]
    mics = ["a", "b", "c", "a", "b", "c"]
    df = cands(conf, micrograph=mics, x=np.arange(6) * 100.0)
    flat = rank_candidates(df, "boundary_distance", 6, protocol="thesis")
    assert flat["micrograph"].tolist() == ["a", "c", "b", "a", "c", "b"]
    grouped = rank_candidates(df, "boundary_distance", 6, protocol="thesis", by_micrograph=True)
    # micrographs by their most uncertain pick (a: rank 0, c: 1, b: 2), ranks inside
    assert grouped["micrograph"].tolist() == ["a", "a", "c", "c", "b", "b"]
    assert grouped["rank"].tolist() == [0, 3, 1, 4, 2, 5]
    assert sorted(grouped.index) == sorted(flat.index)  # the same batch
    # the product protocol groups by default (re-centred at T_opt 0.5: the same ranks)
    product = rank_candidates(df, "boundary_distance", 6, t_opt=0.5)
    assert product.index.tolist() == grouped.index.tolist()
    # a batch of 3 of the 6: the strategy's top 3 (ranks 0-2), grouped
    top = rank_candidates(df, "boundary_distance", 3, t_opt=0.5)
    assert top["confidence"].tolist() == [0.50, 0.48, 0.45]


def test_micrograph_entropy_takes_whole_micrographs_least_sure_first():
    # H(0.5) = 1, H(0.9) = H(0.1) = 0.469, H(0.6) = 0.971, H(0.99) = 0.081 bits
    # means: a (0.9, 0.1, 0.99) 0.340; b (0.5, 0.6) 0.985; c (0.6, 0.5, 0.9) 0.813
    conf = [0.9, 0.5, 0.6, 0.1, 0.6, 0.99, 0.5, 0.9]
    mics = ["a", "b", "c", "a", "b", "a", "c", "c"]
    df = cands(conf, micrograph=mics, x=np.arange(8) * 100.0)
    # b first (0.5 then 0.6 by |c - 0.5|), then c (0.5, 0.6, 0.9), then a
    assert order(df, "micrograph_entropy") == [1, 4, 6, 2, 7, 0, 3, 5]
    assert order(df, "micrograph_entropy", 3) == [1, 4, 6]
    out = rank_candidates(df, "micrograph_entropy", 4, t_opt=0.5)
    assert out["micrograph"].tolist() == ["b", "b", "c", "c"]
    np.testing.assert_allclose(out["uncertainty"], [1.0, 0.970951, 1.0, 0.970951], rtol=1e-5)


def test_confident_first_takes_the_surest_picks_first():
    # MIXED = [0.9, 0.2, 0.55, 0.45, 0.05]: highest confidence first, the reverse of
    # low_confidence on distinct values
    assert order(cands(MIXED), "confident_first") == [0, 2, 3, 1, 4]
    assert order(cands(MIXED), "confident_first", 2) == [0, 2]
    assert order(cands(MIXED), "low_confidence") == [4, 1, 3, 2, 0]
