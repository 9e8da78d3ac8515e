"""Matching and metrics speed: pairwise IoU, optimal / first matching, NMS, PR curve.

    .venv/bin/python perf/bench_matching.py [--n 1000 5000 20000] [--field 4096] [--repeat 3]

For each n: n ground-truth centres uniform on one ``field`` x ``field`` image with
diameters uniform in [64, 200] px, and n predictions = the truth jittered by
N(0, 10 px) with diameters x U(0.9, 1.1) (10 % of them replaced by uniform
false positives). Times are the best of ``--repeat`` runs. Then ``metrics.pr_curve``
(1001 thresholds) on the same picks split over 1 and over 100 micrographs,
against one ``metrics.evaluate`` call (the naive method would make 1001 of them).
Prints a table and writes ``perf/results/matching.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from _common import add_smoke_flag, machine_info, results_path, write_results

RESULTS = Path(__file__).resolve().parent / "results" / "matching.json"


def timed(fn, repeat: int) -> float:
    """Best wall time in seconds of ``repeat`` calls."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def make_case(rng: np.random.Generator, n: int, field: float):
    """(xy_truth, r_truth, xy_pred, r_pred, scores) as described in the module docstring."""
    xy_t = rng.uniform(0, field, (n, 2))
    r_t = rng.uniform(64, 200, n) / 2
    xy_p = xy_t + rng.normal(0, 10, (n, 2))
    r_p = r_t * rng.uniform(0.9, 1.1, n)
    fp = rng.random(n) < 0.1
    xy_p[fp] = rng.uniform(0, field, (int(fp.sum()), 2))
    scores = np.where(fp, rng.uniform(0, 0.6, n), rng.uniform(0.3, 1.0, n))
    order = rng.permutation(n)
    return xy_t, r_t, xy_p[order], r_p[order], np.round(scores[order], 3)


def tables(xy_t, r_t, xy_p, r_p, scores, n_mics: int):
    """Pick tables with the picks dealt round-robin to ``n_mics`` micrographs."""
    from activepick.io.picks import make_picks

    names_t = np.array([f"mic_{i % n_mics:03d}" for i in range(len(xy_t))])
    names_p = np.array([f"mic_{i % n_mics:03d}" for i in range(len(xy_p))])
    truth = make_picks(names_t, xy_t[:, 0], xy_t[:, 1], 2 * r_t)
    pred = make_picks(
        names_p, xy_p[:, 0], xy_p[:, 1], 2 * r_p, confidence=scores, status="predicted"
    )
    return pred, truth


def bench_one(rng: np.random.Generator, n: int, field: float, repeat: int) -> dict:
    """One row of the table: n truths and n predictions on one field."""
    from activepick import metrics
    from activepick.matching import match_first, match_optimal, nms, pairwise_iou

    xy_t, r_t, xy_p, r_p, scores = make_case(rng, n, field)
    row = {
        "n": n,
        "pairs": int(pairwise_iou(xy_p, r_p, xy_t, r_t).nnz),
        "pairwise_s": timed(lambda: pairwise_iou(xy_p, r_p, xy_t, r_t), repeat),
        "optimal_s": timed(lambda: match_optimal(xy_p, r_p, xy_t, r_t, 0.5), repeat),
        "optimal_all_pairs_s": timed(lambda: match_optimal(xy_p, r_p, xy_t, r_t, 0.0), repeat),
        "first_s": timed(lambda: match_first(xy_p, r_p, xy_t, r_t, 0.5), repeat),
        "nms_s": timed(lambda: nms(xy_p, r_p, scores, 0.3), repeat),
        "matched_optimal": int(len(match_optimal(xy_p, r_p, xy_t, r_t, 0.5)[0])),
        "matched_first": int(len(match_first(xy_p, r_p, xy_t, r_t, 0.5)[0])),
    }
    for n_mics in (1, 100):
        pred, truth = tables(xy_t, r_t, xy_p, r_p, scores, n_mics)
        row[f"pr_curve_{n_mics}mic_s"] = timed(
            lambda p=pred, t=truth: metrics.pr_curve(p, t), repeat
        )
        row[f"evaluate_{n_mics}mic_s"] = timed(
            lambda p=pred, t=truth: metrics.evaluate(p, t, 0.5), repeat
        )
    return row


def main(argv: list[str] | None = None) -> int:

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[1000, 5000, 20000])
    ap.add_argument("--field", type=float, default=4096.0)
    ap.add_argument("--repeat", type=int, default=3)
    add_smoke_flag(ap)  # 200 picks, once
    args = ap.parse_args(argv)
    if args.smoke:
        args.n, args.repeat = [200], 1
    rng = np.random.default_rng(0)

    rows = [bench_one(rng, n, args.field, args.repeat) for n in args.n]

    cols = [
        ("n", "{:>6}"),
        ("pairs", "{:>8}"),
        ("pairwise_s", "{:>10.3f}"),
        ("optimal_s", "{:>10.3f}"),
        ("optimal_all_pairs_s", "{:>10.3f}"),
        ("first_s", "{:>10.3f}"),
        ("nms_s", "{:>10.3f}"),
        ("pr_curve_1mic_s", "{:>10.3f}"),
        ("pr_curve_100mic_s", "{:>10.3f}"),
        ("evaluate_1mic_s", "{:>10.3f}"),
        ("evaluate_100mic_s", "{:>10.3f}"),
    ]
    heads = [
        "n",
        "pairs",
        "pairwise",
        "optimal",
        "opt(all)",
        "first",
        "nms",
        "pr 1mic",
        "pr 100mic",
        "eval 1mic",
        "eval 100",
    ]
    print(
        "".join(f"{h:>{10 if i > 1 else (6 if i == 0 else 8)}}" for i, h in enumerate(heads))
        + "   (seconds)"
    )
    for row in rows:
        print("".join(fmt.format(row[c]) for c, fmt in cols))
    out = {
        "benchmark": "matching",
        "field_px": args.field,
        "diameter_px": [64, 200],
        "repeat": args.repeat,
        **machine_info(),
        "rows": rows,
    }
    write_results(results_path(RESULTS, args.smoke), out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
