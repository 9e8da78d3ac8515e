"""Picking metrics (SPEC section 5): recall, precision, F1, PR curve and AUC, mean IoU,
the F-beta-optimal threshold T_opt and the distinct-particle matrix.

Inputs are pick tables (:mod:`activepick.io.picks`): ``micrograph``, ``x``, ``y``
(centres in pixels of the original micrograph), ``diameter`` (px) and, for
predictions, ``confidence``. Predictions and ground truth are matched per
micrograph (same name) by circle IoU with radius ``diameter / 2`` of each pick
(the prediction's own diameter, the truth's own diameter).

Conventions (where SPEC section 5 is silent):

- A prediction is kept at threshold t when ``confidence >= t``. A prediction
  without a confidence (NaN, e.g. picks read from a ``.box`` file) counts as
  confidence 1: it is kept at every threshold.
- Matching: kept predictions and truth are matched one-to-one maximising the
  total IoU over the pairs with IoU > ``tp_iou`` (:func:`matching.match_pairs`);
  every matched pair is a TP, FP = kept predictions left unmatched, FN = truth
  left unmatched.
- precision = 1 when there is no prediction, recall = 1 when there is no truth
  (nothing was missed), F-beta = 0 when P = R = 0, mean IoU = NaN without TPs.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from .constants import DEFAULT_TP_IOU, MAX_COORDINATE, PR_STEPS, T_OPT_STEPS
from .errors import CoordinateError
from .matching import match_pairs, pairwise_iou

__all__ = [
    "evaluate",
    "pr_curve",
    "pr_auc",
    "f_beta",
    "find_t_opt",
    "t_opt_from_decisions",
    "summary",
    "distinct_particle_matrix",
    "jsonable",
    "inside_margin",
    "matched_pairs",
    "centre_offsets",
]

#: Columns of :func:`pr_curve`.
CURVE_COLUMNS: tuple[str, ...] = ("threshold", "tp", "fp", "fn", "recall", "precision", "f1")
#: The second fixed threshold SPEC section 5 reports metrics at (besides T_opt).
FIXED_THRESHOLD = 0.3


def f_beta(precision, recall, beta: float = 1.0):
    """F-beta score ``(1 + b^2) P R / (b^2 P + R)``, 0 where ``P + R = 0``; vectorised."""
    p = np.asarray(precision, dtype=np.float64)
    r = np.asarray(recall, dtype=np.float64)
    b2 = float(beta) ** 2
    den = b2 * p + r
    out = np.divide((1 + b2) * p * r, den, out=np.zeros(np.broadcast(p, r).shape), where=den > 0)
    return float(out) if out.ndim == 0 else out


def _confidence(pred: pd.DataFrame) -> np.ndarray:
    """Confidences of the predictions, NaN (no score) read as 1."""
    if "confidence" not in pred.columns:
        return np.ones(len(pred))
    conf = pred["confidence"].to_numpy(dtype=np.float64, na_value=np.nan)
    return np.where(np.isnan(conf), 1.0, conf)


def _pairs(pred: pd.DataFrame, truth: pd.DataFrame, tp_iou: float):
    """All (prediction row, truth row, IoU) with IoU > ``tp_iou`` on the same micrograph.

    Row numbers are positions in ``pred`` / ``truth``. One KD-tree query for all
    micrographs: each micrograph's picks are shifted along x by its own offset, far
    enough apart that picks of different micrographs can never be neighbours.
    """
    empty = np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0)
    if len(pred) == 0 or len(truth) == 0:
        return empty
    names_p = pred["micrograph"].astype(str).to_numpy()
    names_t = truth["micrograph"].astype(str).to_numpy()
    codes, _ = pd.factorize(np.concatenate([names_p, names_t]))
    p_xy, p_r = pred[["x", "y"]].to_numpy(np.float64), pred["diameter"].to_numpy(np.float64) / 2
    t_xy, t_r = truth[["x", "y"]].to_numpy(np.float64), truth["diameter"].to_numpy(np.float64) / 2
    xs = np.concatenate([p_xy[:, 0], t_xy[:, 0]])
    step = (xs.max() - xs.min()) + 4 * max(p_r.max(), t_r.max()) + 1.0
    shift = (codes * step).astype(np.float64)
    p_xy = p_xy.copy()
    t_xy = t_xy.copy()
    p_xy[:, 0] += shift[: len(pred)]
    t_xy[:, 0] += shift[len(pred) :]
    coo = pairwise_iou(p_xy, p_r, t_xy, t_r).tocoo()
    keep = coo.data > tp_iou
    return coo.row[keep].astype(np.int64), coo.col[keep].astype(np.int64), coo.data[keep]


def _rates(tp, n_pred, n_truth) -> tuple[np.ndarray, np.ndarray]:
    """(recall, precision) with the module's conventions for empty sets."""
    tp, n_pred = np.asarray(tp, np.float64), np.asarray(n_pred, np.float64)
    precision = np.divide(tp, n_pred, out=np.ones_like(tp), where=n_pred > 0)
    recall = tp / n_truth if n_truth > 0 else np.ones_like(tp)
    return recall, precision


def _components(ip: np.ndarray, it: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Connected component of each pair of the prediction-truth graph, and whether the
    component is *simple* (one prediction, or one truth).

    A simple component is a star: any one of its pairs is a largest matching of it,
    and its best pair the maximum-IoU one. Only the other (crowded) components need
    an assignment solver.
    """
    from scipy.sparse.csgraph import connected_components

    preds, pi = np.unique(ip, return_inverse=True)
    truths, ti = np.unique(it, return_inverse=True)
    n_p, n = len(preds), len(preds) + len(truths)
    graph = sparse.csr_matrix((np.ones(len(ip)), (pi, ti + n_p)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    comp = labels[pi]
    n_pred = np.bincount(labels[:n_p], minlength=labels.max() + 1)
    n_truth = np.bincount(labels[n_p:], minlength=labels.max() + 1)
    simple = (n_pred == 1) | (n_truth == 1)
    return comp, simple[comp]


def _match(ip: np.ndarray, it: np.ndarray, iou: np.ndarray):
    """:func:`matching.match_pairs` on the pairs, solving only the crowded components.

    Same result as ``match_pairs(ip, it, iou)`` up to ties: in a simple component
    the maximum-IoU pair is the maximum-total-IoU matching; the rest go to the
    solver in one call. Returns ``(ip, it, iou)`` of the matched pairs.
    """
    if len(ip) == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0)
    comp, simple = _components(ip, it)
    s = np.flatnonzero(simple)
    order = s[np.lexsort((-iou[s], comp[s]))]
    first = order[np.r_[True, comp[order][1:] != comp[order][:-1]]] if len(order) else order
    c = np.flatnonzero(~simple)
    c = c[np.argsort(comp[c], kind="stable")]
    parts = [(ip[first], it[first], iou[first])]
    for chunk in _component_chunks(comp[c]):
        e = c[chunk]
        parts.append(match_pairs(ip[e], it[e], iou[e]))
    return tuple(np.concatenate(p) for p in zip(*parts, strict=True))


#: Pairs per solver call when matching many crowded components: the sparse solver
#: slows down on one huge disconnected graph (1e6 picks: 5 s per call), while a call
#: costs ~1 ms of overhead.
SOLVER_CHUNK = 4096


def _component_chunks(comp_sorted: np.ndarray) -> list[slice]:
    """Slices of ``comp_sorted`` (component labels, sorted) of about
    :data:`SOLVER_CHUNK` pairs each that never split a component."""
    n = len(comp_sorted)
    if n == 0:
        return []
    starts = np.flatnonzero(np.r_[True, comp_sorted[1:] != comp_sorted[:-1]])
    cuts = [0]
    while cuts[-1] < n:
        k = np.searchsorted(starts, cuts[-1] + SOLVER_CHUNK, side="right") - 1
        nxt = int(starts[k]) if k >= 0 and starts[k] > cuts[-1] else None
        if nxt is None:  # one component larger than a chunk: take it whole
            later = starts[starts > cuts[-1]]
            nxt = int(later[0]) if len(later) else n
        cuts.append(nxt if cuts[-1] + SOLVER_CHUNK < n else n)
    return [slice(a, b) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]


def evaluate(
    pred: pd.DataFrame,
    truth: pd.DataFrame,
    threshold: float = 0.0,
    *,
    tp_iou: float = DEFAULT_TP_IOU,
) -> dict:
    """Metrics of the predictions with ``confidence >= threshold`` against the truth.

    Returns ``{tp, fp, fn, recall, precision, f1, mean_iou}`` (counts are ints;
    ``mean_iou`` is the mean IoU of the TP pairs, NaN without TPs). See the module
    docstring for the matching rule and conventions.
    """
    _check_coordinates(pred, "predictions")
    _check_coordinates(truth, "ground truth")
    conf = _confidence(pred)
    return _evaluate_pairs(conf, *_pairs(pred, truth, tp_iou), len(truth), threshold)


def _evaluate_pairs(conf, ip, it, iou, n_truth: int, threshold: float) -> dict:
    """:func:`evaluate` from the confidences and the pairs of all predictions."""
    keep = conf >= threshold
    on = keep[ip]
    _, _, matched = _match(ip[on], it[on], iou[on])
    tp = len(matched)
    fp, fn = int(keep.sum()) - tp, n_truth - tp
    recall, precision = _rates(tp, tp + fp, n_truth)
    return {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "recall": float(recall),
        "precision": float(precision),
        "f1": f_beta(precision, recall),
        "mean_iou": float(matched.mean()) if tp else float("nan"),
    }


def _grid(steps: int) -> np.ndarray:
    """Thresholds ``i / (steps - 1)``, i = 0..steps-1 (exact decimal fractions)."""
    return np.arange(steps) / (steps - 1)


def _tp_steps(conf: np.ndarray, ip: np.ndarray, it: np.ndarray, iou: np.ndarray):
    """TP count as a step function of the threshold: ``(cut, delta)`` such that
    ``TP(t) = sum(delta[cut >= t])``.

    ``conf`` holds each prediction's confidence (snapped down to the thresholds of
    interest by the caller, so there are few distinct values). Simple components
    of the pair graph (:func:`_components`) count 1 TP from the highest confidence
    among their predictions. Crowded ones: predictions are added from the most to
    the least confident (all of one value at once); each addition merges groups
    (union-find) and the merged groups of that value are re-matched in one solver
    call. So the cost is one small matching per distinct confidence value, not one
    matching of everything per threshold.
    """
    if len(ip) == 0:
        return np.empty(0), np.empty(0, np.int64)
    comp, simple = _components(ip, it)
    s = np.flatnonzero(simple)
    best = np.full(comp.max() + 1, -np.inf)
    np.maximum.at(best, comp[s], conf[ip[s]])
    simple_cuts = best[np.isfinite(best)]
    c = np.flatnonzero(~simple)
    cuts, deltas = _crowded_tp_steps(conf, ip[c], it[c], iou[c])
    return (
        np.concatenate([simple_cuts, cuts]),
        np.concatenate([np.ones(len(simple_cuts), np.int64), deltas]),
    )


def _crowded_tp_steps(conf: np.ndarray, ip: np.ndarray, it: np.ndarray, iou: np.ndarray):
    """:func:`_tp_steps` for pairs whose components all need the solver."""
    if len(ip) == 0:
        return np.empty(0), np.empty(0, np.int64)
    order = np.argsort(ip, kind="stable")
    ip, it, iou = ip[order], it[order], iou[order]
    preds, starts = np.unique(ip, return_index=True)
    ends = np.append(starts[1:], len(ip))
    truths, t_node = np.unique(it, return_inverse=True)
    n_p = len(preds)
    t_node = t_node + n_p  # graph nodes: predictions 0..n_p-1, then truths
    parent = list(range(n_p + len(truths)))
    members: dict[int, list[int]] = {}
    tp_of: dict[int, int] = {}

    def find(x: int) -> int:
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    def union(a: int, b: int) -> None:
        ra, rb = find(a), find(b)
        if ra == rb:
            return
        if len(members.get(ra, ())) < len(members.get(rb, ())):
            ra, rb = rb, ra
        parent[rb] = ra
        members.setdefault(ra, []).extend(members.pop(rb, []))

    pc = conf[preds]
    by_conf = np.argsort(-pc, kind="stable")
    values, first = np.unique(-pc[by_conf], return_index=True)
    bounds = np.append(first, n_p)
    cuts, deltas = [], []
    for g, value in enumerate(-values):
        group = by_conf[bounds[g] : bounds[g + 1]].tolist()
        touched = {find(k) for k in group} | {
            find(int(t)) for k in group for t in t_node[starts[k] : ends[k]]
        }
        old = sum(tp_of.pop(r, 0) for r in touched)
        for k in group:
            members[k] = [k]
            for t in t_node[starts[k] : ends[k]].tolist():
                union(k, t)
        roots = {find(k) for k in group}
        e = np.concatenate([np.arange(starts[k], ends[k]) for root in roots for k in members[root]])
        matched = match_pairs(ip[e], it[e], iou[e])[0]
        for root in roots:
            tp_of[root] = 0
        for a in np.searchsorted(preds, matched).tolist():
            tp_of[find(a)] += 1
        cuts.append(value)
        deltas.append(len(matched) - old)
    return np.asarray(cuts, dtype=np.float64), np.asarray(deltas, dtype=np.int64)


def _snap(conf: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Each confidence lowered to the largest threshold <= it (-inf below them all).

    ``conf >= t`` and ``snapped >= t`` agree for every threshold t, and the
    snapped values have at most ``len(thresholds)`` distinct values, which bounds
    the solver calls of :func:`_tp_steps`.
    """
    levels = np.unique(thresholds)
    if len(levels) == 0:
        return conf
    pos = np.searchsorted(levels, conf, side="right") - 1
    return np.where(pos >= 0, levels[np.maximum(pos, 0)], -np.inf)


def _check_coordinates(picks: pd.DataFrame, what: str) -> None:
    """Refuse centres / diameters beyond :data:`MAX_COORDINATE` (one clear error)."""
    for col in ("x", "y", "diameter"):
        values = np.abs(picks[col].to_numpy(np.float64))
        if len(values) and not values.max() <= MAX_COORDINATE:
            row = int(np.argmax(~(values <= MAX_COORDINATE)))
            raise CoordinateError(
                f"{what}: {col} = {float(picks[col].iloc[row]):g} (row {row}) is beyond any micrograph "
                f"(|{col}| <= {MAX_COORDINATE:g} px)"
            )


def _count_at_least(values: np.ndarray, weights: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """``sum(weights[values >= t])`` for each t, by sorting once."""
    order = np.argsort(values, kind="stable")
    v, w = values[order], weights[order]
    suffix = np.concatenate([np.cumsum(w[::-1])[::-1], [0]])
    return suffix[np.searchsorted(v, thresholds, side="left")]


def pr_curve(
    pred: pd.DataFrame,
    truth: pd.DataFrame,
    *,
    tp_iou: float = DEFAULT_TP_IOU,
    thresholds=None,
    steps: int = PR_STEPS,
) -> pd.DataFrame:
    """Recall / precision / F1 at many thresholds: ``DataFrame(threshold, tp, fp, fn,
    recall, precision, f1)``, one row per threshold in the given order.

    ``thresholds`` defaults to ``i / (steps - 1)``, i = 0..steps-1 (0, 0.001, ..., 1
    for the default ``constants.PR_STEPS``). Each row equals
    ``evaluate(pred, truth, t, tp_iou=tp_iou)``, computed without re-matching
    everything per threshold: the candidate pairs are found once and only the
    connected groups of overlapping picks are re-matched, at their own
    confidences (see ``_tp_steps``).
    """
    t = _grid(steps) if thresholds is None else np.asarray(thresholds, dtype=np.float64).reshape(-1)
    _check_coordinates(pred, "predictions")
    _check_coordinates(truth, "ground truth")
    conf = _confidence(pred)
    return _curve_pairs(conf, *_pairs(pred, truth, tp_iou), len(truth), t)


def _curve_pairs(conf, ip, it, iou, n_truth: int, t: np.ndarray) -> pd.DataFrame:
    """:func:`pr_curve` from the confidences and the pairs of all predictions."""
    cut, delta = _tp_steps(_snap(conf, t), ip, it, iou)
    tp = _count_at_least(cut, delta, t).astype(np.int64)
    n_pred = _count_at_least(conf, np.ones(len(conf), np.int64), t).astype(np.int64)
    recall, precision = _rates(tp, n_pred, n_truth)
    return pd.DataFrame(
        {
            "threshold": t,
            "tp": tp,
            "fp": n_pred - tp,
            "fn": n_truth - tp,
            "recall": recall,
            "precision": precision,
            "f1": f_beta(precision, recall),
        },
        columns=list(CURVE_COLUMNS),
    )


def pr_auc(curve: pd.DataFrame) -> float:
    """Area under the PR curve exactly as SPEC section 5 defines it.

    The points (``recall``, ``precision`` columns) are ordered by increasing
    recall (among equal recalls, the highest precision first) and
    ``AUC = sum_i (R_i - R_{i-1}) P_i`` (rectangular rule) starting from
    ``R_0 = 0``: the first point contributes ``R_1 P_1``. Points at equal recall
    add nothing after the first, so a recall level is credited with its best
    precision.
    """
    r = curve["recall"].to_numpy(np.float64)
    p = curve["precision"].to_numpy(np.float64)
    order = np.lexsort((-p, r))
    r, p = r[order], p[order]
    return float(np.sum(np.diff(r, prepend=0.0) * p))


def _best_threshold(grid: np.ndarray, scores: np.ndarray) -> float:
    """The grid value with the highest score; ties go to the lowest threshold."""
    return float(grid[int(np.argmax(scores))])


def find_t_opt(
    pred: pd.DataFrame,
    truth: pd.DataFrame,
    *,
    beta: float = 1.0,
    tp_iou: float = DEFAULT_TP_IOU,
    steps: int = T_OPT_STEPS,
) -> float:
    """T_opt: the threshold of the grid 0, 0.01, ..., 1 maximising F-beta on
    (pred, truth); ties go to the lowest t. ``beta=2`` gives the F2 threshold."""
    curve = pr_curve(pred, truth, tp_iou=tp_iou, steps=steps)
    scores = f_beta(curve["precision"], curve["recall"], beta)
    return _best_threshold(curve["threshold"].to_numpy(), scores)


def t_opt_from_decisions(
    confidence, is_particle, *, beta: float = 1.0, steps: int = T_OPT_STEPS
) -> float:
    """T_opt estimated from a user's review decisions (SPEC section 5, beyond).

    ``confidence`` (N,) are the detector confidences of reviewed predictions and
    ``is_particle`` (N,) the user's verdict: accepted or moved = True, rejected =
    False. ``confidence >= t`` is scored as a classifier of the verdicts and the
    grid threshold (0, 0.01, ..., 1) with the highest F-beta wins (ties: lowest t).
    Particles the user added by hand (missed by the detector) may be passed with
    confidence 0: they are then false negatives at every t > 0, which pulls the
    estimate down as it should. With no positive verdict every F is 0 and the
    result is 0; the caller decides whether that is enough evidence.

    The decisions are a biased sample (the strategy chose them), so this is an
    estimate for when no fully labelled validation micrographs exist.
    """
    conf = np.asarray(confidence, dtype=np.float64).reshape(-1)
    pos = np.asarray(is_particle, dtype=bool).reshape(-1)
    if len(conf) != len(pos):
        raise ValueError(f"{len(conf)} confidences but {len(pos)} decisions")
    conf = np.where(np.isnan(conf), 0.0, conf)
    grid = _grid(steps)
    called = conf[None, :] >= grid[:, None]
    tp = (called & pos).sum(axis=1)
    n_called = called.sum(axis=1)
    n_pos = int(pos.sum())
    precision = np.divide(tp, n_called, out=np.ones(len(grid)), where=n_called > 0)
    recall = tp / n_pos if n_pos else np.zeros(len(grid))
    return _best_threshold(grid, f_beta(precision, recall, beta))


def summary(
    pred: pd.DataFrame,
    truth: pd.DataFrame,
    *,
    t_opt: float | None = None,
    tp_iou: float = DEFAULT_TP_IOU,
    beta: float = 1.0,
    curve: bool = False,
) -> dict:
    """Everything SPEC section 5 reports for a set of predictions.

    Keys: ``t_opt`` (:func:`find_t_opt` on (pred, truth) with ``beta`` when None),
    ``recall_topt``, ``precision_topt``, ``f1_topt``, ``tp``, ``fp``, ``fn`` (at
    T_opt), ``recall_03``, ``precision_03``, ``f1_03``, ``tp_03``, ``fp_03``,
    ``fn_03`` (at 0.3), ``pr_auc`` (the 1001-threshold curve), ``mean_iou`` (mean
    IoU of the TPs at T_opt), ``n_pred``, ``n_truth``, ``tp_iou``; with ``curve``
    also ``curve``, that :func:`pr_curve` DataFrame. The candidate pairs are found
    once and shared by every number.
    """
    _check_coordinates(pred, "predictions")
    _check_coordinates(truth, "ground truth")
    conf = _confidence(pred)
    pairs = _pairs(pred, truth, tp_iou)
    n_truth = len(truth)
    if t_opt is None:
        coarse = _curve_pairs(conf, *pairs, n_truth, _grid(T_OPT_STEPS))
        scores = f_beta(coarse["precision"], coarse["recall"], beta)
        t_opt = _best_threshold(coarse["threshold"].to_numpy(), scores)
    at_opt = _evaluate_pairs(conf, *pairs, n_truth, t_opt)
    at_03 = _evaluate_pairs(conf, *pairs, n_truth, FIXED_THRESHOLD)
    full = _curve_pairs(conf, *pairs, n_truth, _grid(PR_STEPS))
    out = {
        "t_opt": float(t_opt),
        "recall_topt": at_opt["recall"],
        "precision_topt": at_opt["precision"],
        "f1_topt": at_opt["f1"],
        "recall_03": at_03["recall"],
        "precision_03": at_03["precision"],
        "f1_03": at_03["f1"],
        "tp_03": at_03["tp"],
        "fp_03": at_03["fp"],
        "fn_03": at_03["fn"],
        "pr_auc": pr_auc(full),
        "mean_iou": at_opt["mean_iou"],
        "tp": at_opt["tp"],
        "fp": at_opt["fp"],
        "fn": at_opt["fn"],
        "n_pred": len(pred),
        "n_truth": n_truth,
        "tp_iou": float(tp_iou),
    }
    if curve:
        out["curve"] = full
    return out


def inside_margin(
    picks: pd.DataFrame, shapes: dict[str, tuple[int, int]], margin: float
) -> pd.DataFrame:
    """The picks whose centre lies at least ``margin`` px inside its micrograph
    (``margin <= x <= W - 1 - margin``, same for y; ``shapes`` = {name: (H, W)}).

    Score predictions and truth through the same filter to leave out a border
    where neither can be judged (filter stripes, particles cut by the edge).
    Picks of micrographs missing from ``shapes`` are dropped.
    """
    names = picks["micrograph"].astype(str)
    h = names.map(lambda n: shapes.get(n, (0, 0))[0]).to_numpy(np.float64)
    w = names.map(lambda n: shapes.get(n, (0, 0))[1]).to_numpy(np.float64)
    x, y = picks["x"].to_numpy(np.float64), picks["y"].to_numpy(np.float64)
    keep = (x >= margin) & (y >= margin) & (x <= w - 1 - margin) & (y <= h - 1 - margin)
    return picks[keep].reset_index(drop=True)


def matched_pairs(
    pred: pd.DataFrame, truth: pd.DataFrame, threshold: float, *, tp_iou: float = DEFAULT_TP_IOU
) -> tuple[np.ndarray, np.ndarray]:
    """Row positions ``(in pred, in truth)`` of the TP pairs at ``threshold`` (the
    one-to-one matching of :func:`evaluate`)."""
    keep = np.flatnonzero(_confidence(pred) >= threshold)
    kept = pred.iloc[keep].reset_index(drop=True)
    ip, it, iou = _pairs(kept, truth, tp_iou)
    mp, mt, _ = _match(ip, it, iou)
    return keep[mp], np.asarray(mt, dtype=np.int64)


def centre_offsets(
    pred: pd.DataFrame, truth: pd.DataFrame, threshold: float, *, tp_iou: float = DEFAULT_TP_IOU
) -> np.ndarray:
    """``(N, 2)`` offsets (dx, dy) in px, prediction minus truth, of the TP pairs at
    ``threshold`` (:func:`matched_pairs`)."""
    mp, mt = matched_pairs(pred, truth, threshold, tp_iou=tp_iou)
    return pred[["x", "y"]].to_numpy(np.float64)[mp] - truth[["x", "y"]].to_numpy(np.float64)[mt]


def distinct_particle_matrix(selected: dict[str, set]) -> pd.DataFrame:
    """The distinct-particle matrix of SPEC section 5.

    ``selected`` maps a strategy name to the set of particle ids it selected after
    the initial set. Entry (row A, column B) is ``|L_A minus L_B|``: the particles A
    chose that B did not. With equal label budgets (``|L_A| = |L_B|``) the matrix
    is symmetric (``|A minus B| = |B minus A|``); with unequal sizes it is not, and
    row A / column B is the count from A's side. The diagonal is 0. Rows and
    columns follow the dict's order; integer entries.
    """
    names = list(selected)
    sets = {k: set(v) for k, v in selected.items()}
    data = [[len(sets[a] - sets[b]) for b in names] for a in names]
    return pd.DataFrame(data, index=names, columns=names, dtype=np.int64)


def jsonable(value: Any) -> Any:
    """Convert numpy scalars / NaN in nested dicts and lists to plain JSON values (NaN -> None)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return None if math.isnan(v) or math.isinf(v) else v
    if isinstance(value, np.bool_):
        return bool(value)
    return value
