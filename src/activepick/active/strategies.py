"""Uncertainty strategies: which predictions the human reviews next (SPEC section 3).

Candidates are a pick table (:mod:`activepick.io.picks`) of predictions after NMS
with ``confidence >= c_min`` on unlabelled regions, optionally with a
``disagreement`` column (MC-dropout / test-time-augmentation spread, from the
detector). A strategy orders them; the first ``k`` form the review batch.

A strategy is a function ``fn(candidates, k, *, rng, t_opt) -> np.ndarray`` of
positional indices (into ``candidates``) of the chosen batch in review order,
most uncertain first, ``min(k, len(candidates))`` long. Ties keep input order
(stable sorts). Adding a strategy is one decorated function::

    @register_strategy("my_measure", uncertainty=my_score)
    def my_measure(candidates, k, *, rng, t_opt):
        return _top_k(-my_score(candidates, t_opt), k)

``uncertainty`` (optional) gives the per-candidate score shown to the user
(higher = more uncertain); ``needs`` names what the detector must add to the
candidates (``"mc_dropout"`` / ``"tta"``: the ``disagreement`` column).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..constants import CONFIDENCE_EPS
from ..errors import ActivePickError
from .settings import PROTOCOLS  # product re-centres confidences on T_opt, thesis: raw

__all__ = [
    "STRATEGIES",
    "Strategy",
    "register_strategy",
    "rank_candidates",
    "strategy_needs",
    "binary_entropy",
    "group_by_micrograph",
    "plausible_candidates",
    "recentred_confidence",
]

#: Column with the per-candidate disagreement (MC dropout / TTA), written by the detector.
DISAGREEMENT_COLUMN = "disagreement"
#: Columns :func:`rank_candidates` adds.
UNCERTAINTY_COLUMN = "uncertainty"
RANK_COLUMN = "rank"
#: diverse_boundary: minimum centre distance between picks of a batch on one
#: micrograph, in diameters of the candidate being considered.
DIVERSE_MIN_DISTANCE = 2.0
#: diverse_boundary: per-micrograph cap = ceil(k / n_micrographs) * this.
DIVERSE_CAP_FACTOR = 2


#: Plausible candidates (product protocol): re-centred confidence >= this, i.e.
#: logit(c) >= logit(T_opt) - logit(1 - PLAUSIBLE_MIN) (0.1 -> 2.2 logits below T_opt).
PLAUSIBLE_MIN = 0.1

OrderFn = Callable[..., np.ndarray]
ScoreFn = Callable[[pd.DataFrame, float], np.ndarray]


class StrategyError(ActivePickError):
    """An unknown strategy, or candidates without what the strategy needs."""


@dataclass(frozen=True)
class Strategy:
    """A registered strategy: ``order`` picks the batch, ``uncertainty`` scores it."""

    name: str
    order: OrderFn
    needs: str | None = None
    uncertainty: ScoreFn | None = None

    def __call__(
        self, candidates: pd.DataFrame, k: int, *, rng: np.random.Generator, t_opt: float
    ) -> np.ndarray:
        return self.order(candidates, k, rng=rng, t_opt=t_opt)


#: Every strategy by name, filled by :func:`register_strategy`.
STRATEGIES: dict[str, Strategy] = {}


def register_strategy(
    name: str, needs: str | None = None, *, uncertainty: ScoreFn | None = None
) -> Callable[[OrderFn], OrderFn]:
    """Decorator registering ``fn`` in :data:`STRATEGIES` under ``name``."""

    def decorate(fn: OrderFn) -> OrderFn:
        if name in STRATEGIES:
            raise ValueError(f"strategy {name!r} is registered twice")
        STRATEGIES[name] = Strategy(name=name, order=fn, needs=needs, uncertainty=uncertainty)
        return fn

    return decorate


# ---------------------------------------------------------------------- scores


def binary_entropy(c) -> np.ndarray:
    """Binary entropy in bits, ``H(c) = -c log2 c - (1 - c) log2 (1 - c)``, of confidences
    clipped to ``[CONFIDENCE_EPS, 1 - CONFIDENCE_EPS]``; 1 at c = 0.5, symmetric
    (computed on ``min(c, 1 - c)`` so H(c) and H(1 - c) are bit-identical when
    ``1 - c`` is exact)."""
    c = np.clip(np.asarray(c, dtype=np.float64), CONFIDENCE_EPS, 1 - CONFIDENCE_EPS)
    p = np.minimum(c, 1 - c)
    return -(p * np.log2(p) + (1 - p) * np.log2(1 - p))


def recentred_confidence(c, t_opt: float) -> np.ndarray:
    """Confidences re-centred so that ``t_opt`` maps to 0.5 (product protocol):
    ``sigmoid(logit(c) - logit(t_opt))``, both clipped to
    ``[CONFIDENCE_EPS, 1 - CONFIDENCE_EPS]``. Monotonic in ``c``; ``t_opt = 0.5``
    leaves ``c`` unchanged."""
    c = np.clip(np.asarray(c, dtype=np.float64), CONFIDENCE_EPS, 1 - CONFIDENCE_EPS)
    t = min(max(float(t_opt), CONFIDENCE_EPS), 1 - CONFIDENCE_EPS)
    z = np.log(c / (1 - c)) - math.log(t / (1 - t))
    return 1.0 / (1.0 + np.exp(-z))


def plausible_candidates(
    candidates: pd.DataFrame, t_opt: float, *, min_recentred: float = PLAUSIBLE_MIN
) -> pd.DataFrame:
    """The candidates where a particle is plausible (product protocol): re-centred
    confidence ``>= min_recentred`` (default :data:`PLAUSIBLE_MIN`), so the pool
    follows T_opt instead of a fixed floor such as 0.01. The index is kept."""
    if len(candidates) == 0:
        return candidates
    keep = recentred_confidence(_confidence(candidates), t_opt) >= float(min_recentred)
    return candidates[keep]


def _confidence(candidates: pd.DataFrame) -> np.ndarray:
    return candidates["confidence"].to_numpy(dtype=np.float64, na_value=np.nan)


def normalised_confidence(c) -> np.ndarray:
    """``c' = 0.01 + 0.98 (c - min c) / (max c - min c)`` over the given set (SPEC 3.4);
    0.5 for every candidate when ``max c = min c``."""
    c = np.asarray(c, dtype=np.float64)
    if len(c) == 0:
        return c
    lo, hi = np.nanmin(c), np.nanmax(c)
    if not hi > lo:
        return np.full(len(c), 0.5)
    return 0.01 + 0.98 * (c - lo) / (hi - lo)


def low_confidence_score(candidates: pd.DataFrame, t_opt: float) -> np.ndarray:
    """``1 - c``."""
    return 1.0 - _confidence(candidates)


def entropy_score(candidates: pd.DataFrame, t_opt: float) -> np.ndarray:
    """``H(c)`` in bits."""
    return binary_entropy(_confidence(candidates))


def norm_conf_entropy_score(candidates: pd.DataFrame, t_opt: float) -> np.ndarray:
    """``H(c')`` in bits of the min-max normalised confidence."""
    return binary_entropy(normalised_confidence(_confidence(candidates)))


def boundary_score(candidates: pd.DataFrame, t_opt: float) -> np.ndarray:
    """``1 - |c - T_opt|`` (the order uses ``|c - T_opt|`` itself, smallest first)."""
    return 1.0 - np.abs(_confidence(candidates) - float(t_opt))


def disagreement_score(candidates: pd.DataFrame, t_opt: float) -> np.ndarray:
    """The detector's ``disagreement`` column."""
    return _disagreement(candidates)


# ---------------------------------------------------------------------- helpers


def _top_k(key: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` smallest ``key`` values, smallest first; ties and NaN:
    input order (NaN last)."""
    key = np.where(np.isnan(key), np.inf, key)
    return np.argsort(key, kind="stable")[: max(int(k), 0)].astype(np.int64)


def _disagreement(candidates: pd.DataFrame) -> np.ndarray:
    if DISAGREEMENT_COLUMN not in candidates.columns:
        raise StrategyError(
            f"candidates have no {DISAGREEMENT_COLUMN!r} column: predict with MC dropout or "
            "test-time augmentation for this strategy"
        )
    return candidates[DISAGREEMENT_COLUMN].to_numpy(dtype=np.float64, na_value=np.nan)


# ---------------------------------------------------------------------- strategies


@register_strategy("random")
def random_order(
    candidates: pd.DataFrame, k: int, *, rng: np.random.Generator, t_opt: float
) -> np.ndarray:
    """Uniformly random batch (seeded by ``rng``); no uncertainty score."""
    n = len(candidates)
    return rng.permutation(n)[: min(max(int(k), 0), n)].astype(np.int64)


@register_strategy("low_confidence", uncertainty=low_confidence_score)
def low_confidence(
    candidates: pd.DataFrame, k: int, *, rng: np.random.Generator, t_opt: float
) -> np.ndarray:
    """Lowest confidence first."""
    return _top_k(_confidence(candidates), k)


@register_strategy("entropy", uncertainty=entropy_score)
def entropy(
    candidates: pd.DataFrame, k: int, *, rng: np.random.Generator, t_opt: float
) -> np.ndarray:
    """Highest binary entropy of the (clipped) confidence first (Kiewisz & Bepler 2023)."""
    return _top_k(-entropy_score(candidates, t_opt), k)


@register_strategy("norm_conf_entropy", uncertainty=norm_conf_entropy_score)
def norm_conf_entropy(
    candidates: pd.DataFrame, k: int, *, rng: np.random.Generator, t_opt: float
) -> np.ndarray:
    """Highest entropy of the confidence min-max normalised to [0.01, 0.99] over the
    candidate set first; input order when all confidences are equal."""
    return _top_k(-norm_conf_entropy_score(candidates, t_opt), k)


@register_strategy("boundary_distance", uncertainty=boundary_score)
def boundary_distance(
    candidates: pd.DataFrame, k: int, *, rng: np.random.Generator, t_opt: float
) -> np.ndarray:
    """Smallest ``|c - T_opt|`` first."""
    return _top_k(np.abs(_confidence(candidates) - float(t_opt)), k)


@register_strategy("diverse_boundary", uncertainty=boundary_score)
def diverse_boundary(
    candidates: pd.DataFrame, k: int, *, rng: np.random.Generator, t_opt: float
) -> np.ndarray:
    """Boundary distance with a spread-out batch (SPEC section 3, beyond).

    Walks the candidates in boundary-distance order and takes one unless (a) its
    centre is closer than ``DIVERSE_MIN_DISTANCE`` (2) of its own diameters to an
    already chosen pick on the same micrograph, or (b) its micrograph already holds
    ``ceil(k / n_micrographs) * DIVERSE_CAP_FACTOR`` chosen picks (n_micrographs:
    micrographs among the candidates). If fewer than ``min(k, n)`` are taken, the
    batch is filled up with the skipped candidates in boundary order (so the batch
    size never shrinks, it only spreads when it can).
    """
    n = len(candidates)
    k = min(max(int(k), 0), n)
    if k == 0:
        return np.empty(0, np.int64)
    order = _top_k(np.abs(_confidence(candidates) - float(t_opt)), n)
    names = candidates["micrograph"].astype(str).to_numpy()
    xy = candidates[["x", "y"]].to_numpy(np.float64)
    diameter = candidates["diameter"].to_numpy(np.float64)
    cap = math.ceil(k / len(set(names))) * DIVERSE_CAP_FACTOR
    chosen: list[int] = []
    per_mic: dict[str, list[int]] = {}
    for i in order.tolist():
        taken = per_mic.setdefault(names[i], [])
        if len(taken) >= cap:
            continue
        if taken:
            d = np.hypot(*(xy[taken] - xy[i]).T)
            if np.any(d < DIVERSE_MIN_DISTANCE * diameter[i]):
                continue
        taken.append(i)
        chosen.append(i)
        if len(chosen) == k:
            break
    if len(chosen) < k:
        picked = set(chosen)
        chosen += [i for i in order.tolist() if i not in picked][: k - len(chosen)]
    return np.asarray(chosen, dtype=np.int64)


@register_strategy("confident_first", uncertainty=low_confidence_score)
def confident_first(
    candidates: pd.DataFrame, k: int, *, rng: np.random.Generator, t_opt: float
) -> np.ndarray:
    """Highest confidence first (issue 20): the picks the model is surest of, which a
    person accepts at a glance; the opposite of ``low_confidence``, a control for
    whether uncertainty helps at all."""
    return _top_k(-_confidence(candidates), k)


@register_strategy("micrograph_entropy", uncertainty=entropy_score)
def micrograph_entropy(
    candidates: pd.DataFrame, k: int, *, rng: np.random.Generator, t_opt: float
) -> np.ndarray:
    """Whole micrographs, least sure first (issue 20): micrographs ordered by the mean
    binary entropy of their candidates, highest first (ties: name), and each one's
    candidates in boundary-distance order, until ``k``. A batch then spans few
    micrographs: the person reviews (and completes) a micrograph at a time."""
    n = len(candidates)
    k = min(max(int(k), 0), n)
    if k == 0:
        return np.empty(0, np.int64)
    h = entropy_score(candidates, t_opt)
    codes, _ = pd.factorize(candidates["micrograph"].astype(str), sort=True)
    mean = pd.Series(h).groupby(codes).transform("mean").to_numpy()
    boundary = np.abs(_confidence(candidates) - float(t_opt))
    return np.lexsort((boundary, codes, -mean))[:k].astype(np.int64)


@register_strategy("mc_dropout", needs="mc_dropout", uncertainty=disagreement_score)
def mc_dropout(
    candidates: pd.DataFrame, k: int, *, rng: np.random.Generator, t_opt: float
) -> np.ndarray:
    """Highest MC-dropout disagreement first (NaN last)."""
    return _top_k(-_disagreement(candidates), k)


@register_strategy("tta", needs="tta", uncertainty=disagreement_score)
def tta(candidates: pd.DataFrame, k: int, *, rng: np.random.Generator, t_opt: float) -> np.ndarray:
    """Highest test-time-augmentation disagreement first (NaN last)."""
    return _top_k(-_disagreement(candidates), k)


# ---------------------------------------------------------------------- public entry


def _strategy(name: str) -> Strategy:
    try:
        return STRATEGIES[name]
    except KeyError:
        raise StrategyError(
            f"unknown strategy {name!r}; choose from {', '.join(sorted(STRATEGIES))}"
        ) from None


def strategy_needs(name: str) -> str | None:
    """What the strategy needs from the detector: ``"mc_dropout"``, ``"tta"`` or None."""
    return _strategy(name).needs


def group_by_micrograph(batch: pd.DataFrame, rank: str = RANK_COLUMN) -> pd.DataFrame:
    """The rows of ``batch`` in review order by micrograph: micrographs ordered by their
    most uncertain pick (smallest ``rank``), and within a micrograph by ``rank``.

    Same rows, same index, only the order changes: every pick of a micrograph is
    reviewed before the next micrograph, so the viewer's slider moves once per
    micrograph of the batch instead of at almost every key.
    """
    if len(batch) < 2:
        return batch
    ranks = batch[rank].to_numpy(dtype=np.float64)
    first = batch.groupby("micrograph", sort=False)[rank].transform("min")
    order = np.lexsort((ranks, first.to_numpy(dtype=np.float64)))
    return batch.iloc[order]


def rank_candidates(
    candidates: pd.DataFrame,
    strategy: str,
    k: int,
    *,
    seed: int = 0,
    t_opt: float = 0.5,
    protocol: str = "product",
    by_micrograph: bool | None = None,
) -> pd.DataFrame:
    """The review batch: the ``min(k, n)`` candidate rows the strategy chooses, in
    review order, with two added columns: ``uncertainty`` (the strategy's score,
    higher = more uncertain; NaN for ``random``) and ``rank`` (the strategy's order,
    0 = most uncertain). The original index is kept.

    Review order: with ``by_micrograph`` (default: the product protocol) the batch
    is grouped by micrograph (:func:`group_by_micrograph`: micrographs ordered by
    their most uncertain pick, picks by ``rank`` inside); the batch's content is the
    strategy's either way. Without it (the thesis protocol, whose label budget applies
    decisions in queue order up to the K-th label) the order is ``rank``.

    ``seed`` seeds the random generator (the ``random`` strategy); ``t_opt`` is the
    current confidence threshold (boundary strategies). ``protocol="product"``
    (default) computes every measure on :func:`recentred_confidence` (T_opt maps to
    0.5, so entropy peaks at the decision threshold); ``"thesis"`` uses the raw
    confidences and formulas of SPEC section 3. The returned rows keep their raw
    confidence. Raises :class:`StrategyError` (an :class:`ActivePickError`) for an
    unknown name or protocol, or when the candidates lack a column the strategy needs.
    """
    entry = _strategy(strategy)
    if protocol not in PROTOCOLS:
        raise StrategyError(f"unknown protocol {protocol!r}; choose from {', '.join(PROTOCOLS)}")
    view, t_eff = candidates, float(t_opt)
    if protocol == "product" and len(candidates):
        view = candidates.copy()
        view["confidence"] = recentred_confidence(_confidence(candidates), t_opt)
        t_eff = 0.5
    rng = np.random.default_rng(seed)
    idx = np.asarray(entry(view, int(k), rng=rng, t_opt=t_eff), dtype=np.int64)
    if entry.uncertainty is None:
        score = np.full(len(candidates), np.nan)
    else:
        score = np.asarray(entry.uncertainty(view, t_eff), dtype=np.float64)
    out = candidates.iloc[idx].copy()
    out[UNCERTAINTY_COLUMN] = score[idx]
    out[RANK_COLUMN] = np.arange(len(idx), dtype=np.int64)
    if by_micrograph is None:
        by_micrograph = protocol == "product"
    if by_micrograph:
        out = group_by_micrograph(out)
    return out
