"""Compare two hitl benchmark folders run on the same pool and paired seeds, e.g. the
person who reviews pick by pick against one who also uses the cheaper actions
(``--review-actions complete,bulk``; issue 20).

    .venv/bin/python perf/compare_hitl.py bench_picks bench_cheap --name hitl_review_actions

For every strategy both folders ran, over the seeds both finished (same rounds): the
reviews of the first round whose F1 at T_opt reaches 0.9 (and 0.93); F1 and PR-AUC
after a budget of reviews, read two ways (``step``: the last round finished within the
budget, what a person has at that point; ``interpolated``: linear between round ends);
and the area under F1 / PR-AUC against reviews over the range both reach. Paired
Wilcoxon signed-rank tests (two-sided) on the per-seed differences (B - A). Prints a
table and writes ``perf/results/<name>.json``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from _common import add_smoke_flag, machine_info, results_path, write_results

RESULTS = Path(__file__).resolve().parent / "results"
GOALS = (0.9, 0.93)
BUDGETS = (100, 150, 200, 250, 300)


def _p(d: np.ndarray) -> float | None:
    from scipy.stats import wilcoxon

    d = d[~np.isnan(d)]
    if len(d) == 0:
        return None
    return 1.0 if not np.any(d != 0) else float(wilcoxon(d).pvalue)


def _curve(rounds: pd.DataFrame, strategy: str, seed: int, col: str):
    d = rounds[(rounds["strategy"] == strategy) & (rounds["seed"] == seed)].sort_values("round")
    return d["reviews"].to_numpy(float), d[col].to_numpy(float)


def _first(x: np.ndarray, y: np.ndarray, goal: float) -> float:
    hit = np.flatnonzero(y >= goal)
    return float(x[hit[0]]) if len(hit) else np.nan


def _step(x: np.ndarray, y: np.ndarray, budget: float) -> float:
    return float(y[np.flatnonzero(x <= budget)[-1]])


def _paired(a: np.ndarray, b: np.ndarray) -> dict:
    d = b - a
    return {
        "a": a.tolist(),
        "b": b.tolist(),
        "mean_a": float(np.nanmean(a)),
        "mean_b": float(np.nanmean(b)),
        "b_higher": int(np.sum(d > 0)),
        "b_lower": int(np.sum(d < 0)),
        "seeds": int(np.sum(~np.isnan(d))),
        "p": _p(d),
    }


def compare(ra: pd.DataFrame, rb: pd.DataFrame, strategy: str) -> dict:
    """The comparison of one strategy's runs (see the module docs)."""
    n_rounds = max(ra["round"].max(), rb["round"].max())
    seeds = [
        int(s)
        for s in sorted(set(ra["seed"]) & set(rb["seed"]))
        if all(len(_curve(r, strategy, s, "f1_topt")[0]) == n_rounds for r in (ra, rb))
    ]
    out: dict = {"strategy": strategy, "seeds": seeds}
    for goal in GOALS:
        a = np.array([_first(*_curve(ra, strategy, s, "f1_topt"), goal) for s in seeds])
        b = np.array([_first(*_curve(rb, strategy, s, "f1_topt"), goal) for s in seeds])
        out[f"reviews_to_f1_{goal}"] = _paired(a, b)
    for col in ("f1_topt", "pr_auc"):
        for budget in BUDGETS:
            for how in ("step", "interpolated"):
                read = _step if how == "step" else lambda x, y, v: float(np.interp(v, x, y))
                a = np.array([read(*_curve(ra, strategy, s, col), budget) for s in seeds])
                b = np.array([read(*_curve(rb, strategy, s, col), budget) for s in seeds])
                out[f"{col}_at_{budget}_{how}"] = _paired(a, b)
        areas_a, areas_b = [], []
        for s in seeds:
            (xa, ya), (xb, yb) = _curve(ra, strategy, s, col), _curve(rb, strategy, s, col)
            grid = np.linspace(0.0, min(xa[-1], xb[-1]), 200)
            areas_a.append(np.interp(grid, xa, ya).mean())
            areas_b.append(np.interp(grid, xb, yb).mean())
        out[f"area_{col}_reviews"] = _paired(np.array(areas_a), np.array(areas_b))
    return out


def _smoke_rounds(gain: float) -> pd.DataFrame:
    """A made-up rounds table (random, 3 seeds, 4 rounds of 80 reviews; F1 rising from 0.8
    by 0.05 a round, plus ``gain``) for the ``--smoke`` run."""
    rows = [
        {
            "strategy": "random",
            "seed": seed,
            "round": r,
            "reviews": 80 * r,
            "f1_topt": min(0.8 + 0.05 * r + gain - 0.01 * seed, 1.0),
            "pr_auc": 0.8 + 0.04 * r,
        }
        for seed in range(3)
        for r in range(1, 5)
    ]
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", type=Path, nargs="?", help="benchmark --out folder A (the reference)")
    ap.add_argument("b", type=Path, nargs="?", help="benchmark --out folder B")
    ap.add_argument("--name", default="hitl_compare")
    add_smoke_flag(ap)  # two made-up round tables of 3 seeds
    args = ap.parse_args(argv)
    if args.smoke:
        args.a, args.b = Path("smoke_a"), Path("smoke_b")
        ra, rb = _smoke_rounds(0.0), _smoke_rounds(0.05)
    elif args.a is None or args.b is None:
        ap.error("two benchmark folders are required")
    else:
        ra, rb = (pd.read_csv(p / "rounds.csv") for p in (args.a, args.b))
    fixed = {"all-labels", "general-0"}
    strategies = sorted((set(ra["strategy"]) & set(rb["strategy"])) - fixed)
    results = [compare(ra, rb, s) for s in strategies]
    for r in results:
        print(f"{r['strategy']} over seeds {r['seeds']} (A = {args.a.name}, B = {args.b.name}):")
        for key, v in r.items():
            if isinstance(v, dict):
                p = "n/a" if v["p"] is None else f"{v['p']:.3f}"
                print(
                    f"  {key:<32} A {v['mean_a']:8.3f}  B {v['mean_b']:8.3f}  "
                    f"B higher on {v['b_higher']}/{v['seeds']}  p = {p}"
                )
    write_results(
        results_path(RESULTS / f"{args.name}.json", args.smoke),
        {"a": str(args.a), "b": str(args.b), "results": results, **machine_info()},
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
