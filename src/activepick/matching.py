"""Circle IoU, spatially pruned pairwise IoU, one-to-one matching and NMS (SPEC section 4).

Conventions for every function here:

- Coordinates ``xy`` are ``(N, 2)`` arrays of ``(x, y)`` centres in pixels of ONE
  image (the original micrograph; x = column, y = row, origin top-left). Mixing
  images (e.g. a downscaled network input with the original) is the caller's bug.
- Radii are in the same pixels; a pick's radius is its ``diameter / 2``. A radius
  may be a scalar (broadcast) or one value per point.
- A pick is a circle; the overlap of two picks is the circle IoU
  ``area(A & B) / area(A | B)``.

Pairs are found with a KD-tree (``scipy.spatial.cKDTree``): only pairs whose
centres are closer than ``r_a + r_b`` can overlap, so no dense N x M matrix is
ever built.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import min_weight_full_bipartite_matching
from scipy.spatial import cKDTree

__all__ = ["circle_iou", "pairwise_iou", "match_optimal", "match_pairs", "match_first", "nms"]


def circle_iou(d, r1, r2=None) -> np.ndarray | float:
    """IoU of two circles of radii ``r1`` and ``r2`` whose centres are ``d`` apart.

    ``d``, ``r1`` and ``r2`` broadcast against each other (pixels, any image, as
    long as all three use the same one); ``r2=None`` means equal radii. Returns a
    float when every input is a scalar, an array otherwise.

    - Equal radii r (SPEC section 4): 0 if d >= 2r, else
      ``inter = 2 r^2 arccos(d / 2r) - (d / 2) sqrt(4 r^2 - d^2)`` and
      ``IoU = inter / (2 pi r^2 - inter)``.
    - Unequal radii: the general lens area
      ``r1^2 arccos(a1) + r2^2 arccos(a2) - sqrt(K) / 2`` with
      ``a1 = (d^2 + r1^2 - r2^2) / (2 d r1)``, ``a2 = (d^2 + r2^2 - r1^2) / (2 d r2)``,
      ``K = (-d + r1 + r2)(d + r1 - r2)(d - r1 + r2)(d + r1 + r2)``;
      0 when ``d >= r1 + r2`` (apart or tangent); when one circle lies inside the
      other (``d <= |r1 - r2|``) the IoU is the area ratio ``(r_small / r_big)^2``.
    """
    scalar = np.ndim(d) == 0 and np.ndim(r1) == 0 and (r2 is None or np.ndim(r2) == 0)
    d = np.abs(np.asarray(d, dtype=np.float64))
    r1 = np.asarray(r1, dtype=np.float64)
    r2 = r1 if r2 is None else np.asarray(r2, dtype=np.float64)
    d, r1, r2 = np.broadcast_arrays(d, r1, r2)
    iou = np.zeros(d.shape, dtype=np.float64)

    inside = d <= np.abs(r1 - r2)
    small, big = np.minimum(r1, r2), np.maximum(r1, r2)
    iou[inside] = (small[inside] / big[inside]) ** 2

    lens = ~inside & (d < r1 + r2)
    if np.any(lens):
        dl, a, b = d[lens], r1[lens], r2[lens]
        cos_a = np.clip((dl * dl + a * a - b * b) / (2 * dl * a), -1.0, 1.0)
        cos_b = np.clip((dl * dl + b * b - a * a) / (2 * dl * b), -1.0, 1.0)
        k = (-dl + a + b) * (dl + a - b) * (dl - a + b) * (dl + a + b)
        inter = (
            a * a * np.arccos(cos_a) + b * b * np.arccos(cos_b) - 0.5 * np.sqrt(np.maximum(k, 0))
        )
        union = np.pi * (a * a + b * b) - inter
        iou[lens] = np.clip(inter / union, 0.0, 1.0)
    return float(iou) if scalar else iou


def _as_points(xy, r, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Validate ``xy`` as an (N, 2) float array and broadcast ``r`` to (N,)."""
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    r = np.broadcast_to(np.asarray(r, dtype=np.float64), (len(xy),)).copy()
    if np.any(~np.isfinite(xy)) or np.any(~np.isfinite(r)) or np.any(r <= 0):
        raise ValueError(f"{name}: centres must be finite and radii finite and positive")
    return xy, r


def pairwise_iou(xy_a, r_a, xy_b, r_b) -> sparse.csr_matrix:
    """Sparse circle IoU between every a and b that overlap.

    ``xy_a`` (Na, 2) and ``xy_b`` (Nb, 2) are centres in pixels of the same image,
    ``r_a`` / ``r_b`` their radii (scalar or per point). Returns a CSR matrix of
    shape ``(Na, Nb)`` whose stored entries are exactly the pairs with IoU > 0
    (centres closer than ``r_a + r_b``), with sorted column indices per row.
    Candidate pairs come from a KD-tree query within ``max(r_a) + max(r_b)``; the
    cost is O((Na + Nb) log + pairs), never Na x Nb.
    """
    xy_a, r_a = _as_points(xy_a, r_a, "xy_a")
    xy_b, r_b = _as_points(xy_b, r_b, "xy_b")
    shape = (len(xy_a), len(xy_b))
    if len(xy_a) == 0 or len(xy_b) == 0:
        return sparse.csr_matrix(shape, dtype=np.float64)
    reach = float(r_a.max() + r_b.max())
    pairs = cKDTree(xy_a).sparse_distance_matrix(cKDTree(xy_b), reach, output_type="ndarray")
    i, j, d = pairs["i"].astype(np.int64), pairs["j"].astype(np.int64), pairs["v"]
    close = d < r_a[i] + r_b[j]
    i, j, d = i[close], j[close], d[close]
    iou = circle_iou(d, r_a[i], r_b[j])
    pos = iou > 0
    out = sparse.csr_matrix((iou[pos], (i[pos], j[pos])), shape=shape)
    out.sort_indices()
    return out


def _edges(
    xy_a, r_a, xy_b, r_b, min_iou: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple]:
    """The (a, b, iou) pairs with IoU > ``min_iou``, row-major and sorted by b within a row."""
    iou = pairwise_iou(xy_a, r_a, xy_b, r_b)
    coo = iou.tocoo()
    keep = coo.data > min_iou
    return coo.row[keep].astype(np.int64), coo.col[keep].astype(np.int64), coo.data[keep], iou.shape


def _empty_match() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float64)


def match_optimal(
    xy_a, r_a, xy_b, r_b, min_iou: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One-to-one matching of a to b that maximises the total IoU (SPEC section 4, "optimal").

    Only pairs with IoU > ``min_iou`` (strict) may be matched; a point may stay
    unmatched. Returns ``(ia, ib, iou)``: matched indices into a and b and their
    IoU, sorted by ``ia``. See :func:`match_pairs` for the method.
    """
    ia, ib, iou, _ = _edges(xy_a, r_a, xy_b, r_b, min_iou)
    return match_pairs(ia, ib, iou)


def match_pairs(ia, ib, iou) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Maximum-total-IoU one-to-one matching on given candidate pairs.

    ``ia``, ``ib`` (int) and ``iou`` (float > 0) list the allowed pairs (each pair
    at most once). Returns the chosen subset ``(ia, ib, iou)`` sorted by ``ia``.

    Method: the pairs form a sparse bipartite graph; every a gets a private dummy
    partner, real edges cost ``2 - IoU`` and dummy edges cost 2, and
    ``scipy.sparse.csgraph.min_weight_full_bipartite_matching`` (LAPJVsp) finds
    the full minimum-cost matching. Its cost is ``2 Na - total IoU``, so its real
    edges are the maximum-total-IoU partial matching, computed on the pairs only.
    """
    ia = np.asarray(ia, dtype=np.int64).reshape(-1)
    ib = np.asarray(ib, dtype=np.int64).reshape(-1)
    iou = np.asarray(iou, dtype=np.float64).reshape(-1)
    if len(ia) == 0:
        return _empty_match()
    rows, ia_c = np.unique(ia, return_inverse=True)
    cols, ib_c = np.unique(ib, return_inverse=True)
    n_rows, n_cols = len(rows), len(cols)
    dummy = np.arange(n_rows)
    graph = sparse.csr_matrix(
        (
            np.concatenate([2.0 - iou, np.full(n_rows, 2.0)]),
            (np.concatenate([ia_c, dummy]), np.concatenate([ib_c, n_cols + dummy])),
        ),
        shape=(n_rows, n_cols + n_rows),
    )
    row_ind, col_ind = min_weight_full_bipartite_matching(graph)
    real = col_ind < n_cols
    row_ind, col_ind = row_ind[real], col_ind[real]
    values = sparse.csr_matrix((iou, (ia_c, ib_c)), shape=(n_rows, n_cols))[row_ind, col_ind]
    a_sel, b_sel = rows[row_ind], cols[col_ind]
    order = np.argsort(a_sel, kind="stable")
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    return a_sel[order], b_sel[order], values[order]


def match_first(
    xy_a, r_a, xy_b, r_b, min_iou: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The thesis's greedy matching (SPEC section 4, mode "first").

    For each a in input order, the FIRST b in b's input order that is not taken
    yet and has IoU > ``min_iou`` is its match, even when a later b overlaps it
    more (the thesis's stated flaw). Returns ``(ia, ib, iou)`` sorted by ``ia``.
    """
    ia, ib, iou, _ = _edges(xy_a, r_a, xy_b, r_b, min_iou)
    taken: set[int] = set()
    out_a, out_b, out_iou = [], [], []
    done_a = -1
    for a, b, v in zip(ia.tolist(), ib.tolist(), iou.tolist(), strict=True):
        if a == done_a or b in taken:
            continue
        taken.add(b)
        done_a = a
        out_a.append(a)
        out_b.append(b)
        out_iou.append(v)
    if not out_a:
        return _empty_match()
    return np.array(out_a, np.int64), np.array(out_b, np.int64), np.array(out_iou, np.float64)


def nms(xy, r, scores, iou_threshold: float = 0.3) -> np.ndarray:
    """Non-maximum suppression by circle IoU (SPEC section 2).

    ``xy`` (N, 2) centres and ``r`` radii in pixels of one image, ``scores`` (N,)
    confidences. Visits picks from the most to the least confident (ties: input
    order) and drops every pick whose IoU with an already kept one is
    > ``iou_threshold``. Returns the kept indices, most confident first.
    """
    xy, r = _as_points(xy, r, "xy")
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(scores) != len(xy):
        raise ValueError(f"nms: {len(xy)} centres but {len(scores)} scores")
    order = np.argsort(-scores, kind="stable")
    if len(order) == 0:
        return np.empty(0, np.int64)
    iou = pairwise_iou(xy, r, xy, r)
    indptr, indices, data = iou.indptr, iou.indices, iou.data
    suppressed = np.zeros(len(xy), dtype=bool)
    keep = []
    for i in order.tolist():
        if suppressed[i]:
            continue
        keep.append(i)
        lo, hi = indptr[i], indptr[i + 1]
        suppressed[indices[lo:hi][data[lo:hi] > iou_threshold]] = True
    return np.array(keep, dtype=np.int64)
