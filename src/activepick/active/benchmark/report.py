"""Benchmark outputs: tables, learning-curve statistics, paired tests, figures, report.md.

Two cost axes: ``labels`` (particle labels trained on) and ``reviews`` (oracle
decisions behind a round's labels: every accept, move, reject, add and skip
counts one; the "label everything" baseline costs one click per pool particle).

Per run (strategy, seed) and axis, the **area** under the learning curve of a
metric is its mean over the axis range, trapezoid rule over the rounds: from the
first round to the end of the range every strategy of that seed covers (the
smallest final value of the axis), so paired areas span the same range.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ...io.atomic import atomic_open, atomic_write_text
from .presets import BASELINE, GENERAL, METRICS, REFERENCE, ROUND_COLUMNS, partial_modes

#: F1 at T_opt a picker must reach for "reviews to F1 0.9".
F1_GOAL = 0.9
#: (metric, axis) pairs whose learning-curve areas are compared.
AREAS: tuple[tuple[str, str], ...] = (
    ("pr_auc", "reviews"),
    ("f1_topt", "reviews"),
    ("pr_auc", "labels"),
    ("f1_topt", "labels"),
)
#: Columns of runs.csv (one row per strategy, seed and partial mode).
RUN_COLUMNS: tuple[str, ...] = (
    "strategy",
    "seed",
    "partial",
    *(f"area_{m}_{a}" for m, a in AREAS),
    "reviews_to_f1",
    "labels_to_ref",
    "reviews_to_ref",
    "final_labels",
    "final_reviews",
    "final_pr_auc",
    "final_f1_topt",
)


def rounds_table(rows: Sequence[dict]) -> pd.DataFrame:
    """All finished rows as a DataFrame with ``ROUND_COLUMNS``."""
    df = pd.DataFrame(list(rows), columns=list(ROUND_COLUMNS))
    for col in ROUND_COLUMNS[4:]:  # None (e.g. no TP for a mean IoU) -> NaN
        df[col] = pd.to_numeric(df[col], errors="coerce").astype(float)
    return df.sort_values(["partial", "strategy", "seed", "round"], kind="stable").reset_index(
        drop=True
    )


def labels_to_95(rounds: pd.DataFrame, fraction: float = 0.95) -> pd.DataFrame:
    """Labels each strategy needs for its seed-mean F1 at T_opt to reach ``fraction`` of
    the all-labels baseline's seed-mean F1 (per partial mode). NaN when never reached."""
    rows = []
    for partial, df in rounds.groupby("partial"):
        base = df[df["strategy"] == BASELINE]["f1_topt"].astype(float)
        target = fraction * float(base.mean()) if len(base) else math.nan
        for strategy, g in df[~df["strategy"].isin((BASELINE, GENERAL))].groupby("strategy"):
            mean = g.groupby("round")[["labels", "f1_topt"]].mean().sort_index()
            hit = mean[mean["f1_topt"] >= target]
            rows.append(
                {
                    "strategy": strategy,
                    "partial": bool(partial),
                    "baseline_f1": target / fraction if len(base) else math.nan,
                    "target_f1": target,
                    "labels": float(hit["labels"].iloc[0]) if len(hit) else math.nan,
                    "round": int(hit.index[0]) if len(hit) else None,
                    "reached": bool(len(hit)),
                    "final_f1": float(mean["f1_topt"].iloc[-1]),
                }
            )
    columns = ["strategy", "partial", "baseline_f1", "target_f1", "labels", "round"]
    return pd.DataFrame(rows, columns=[*columns, "reached", "final_f1"])


def curve_area(x: Sequence[float], y: Sequence[float], x_end: float) -> float:
    """Mean of the piecewise-linear curve (x, y) over [x[0], x_end] (trapezoid rule).

    ``x`` ascending; the curve is cut at ``x_end`` (interpolated). NaN for fewer than
    two points inside the range or a range of zero width; with one round it is
    that round's value.
    """
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    if len(x) == 0 or not np.isfinite(y).all():
        return math.nan
    if len(x) == 1 or x_end <= x[0]:
        return float(y[0]) if x_end == x[0] else math.nan
    keep = x < x_end
    xs = np.append(x[keep], x_end)
    ys = np.append(y[keep], np.interp(x_end, x, y))
    return float(np.trapezoid(ys, xs) / (x_end - xs[0]))


def _first_reaching(g: pd.DataFrame, metric: str, target: float, axis: str) -> float:
    hit = g[g[metric].astype(float) >= target]
    return float(hit[axis].iloc[0]) if len(hit) and np.isfinite(target) else math.nan


def run_statistics(rounds: pd.DataFrame, reference: str = REFERENCE) -> pd.DataFrame:
    """Per strategy, seed and partial mode: the areas (:data:`AREAS`, paired ranges),
    reviews to F1 >= :data:`F1_GOAL`, labels and reviews to the reference strategy's
    final PR-AUC at the same seed, and the final round's values (``RUN_COLUMNS``)."""
    runs = rounds[~rounds["strategy"].isin((BASELINE, GENERAL))]
    out = []
    for (partial, seed), df in runs.groupby(["partial", "seed"]):
        curves = {s: g.sort_values("round") for s, g in df.groupby("strategy", sort=False)}
        ends = {a: min(float(g[a].iloc[-1]) for g in curves.values()) for _, a in AREAS}
        ref = curves.get(reference)
        target = float(ref["pr_auc"].iloc[-1]) if ref is not None else math.nan
        for strategy, g in curves.items():
            row: dict[str, Any] = {"strategy": strategy, "seed": seed, "partial": bool(partial)}
            for metric, axis in AREAS:
                row[f"area_{metric}_{axis}"] = curve_area(g[axis], g[metric], ends[axis])
            row["reviews_to_f1"] = _first_reaching(g, "f1_topt", F1_GOAL, "reviews")
            row["labels_to_ref"] = _first_reaching(g, "pr_auc", target, "labels")
            row["reviews_to_ref"] = _first_reaching(g, "pr_auc", target, "reviews")
            last = g.iloc[-1]
            row.update(
                final_labels=float(last["labels"]),
                final_reviews=float(last["reviews"]),
                final_pr_auc=float(last["pr_auc"]),
                final_f1_topt=float(last["f1_topt"]),
            )
            out.append(row)
    return pd.DataFrame(out, columns=list(RUN_COLUMNS))


def wilcoxon_p(diffs: Sequence[float]) -> float:
    """Two-sided p of the Wilcoxon signed-rank test on paired differences.

    NaN with no finite difference; 1.0 when every difference is 0 (no evidence).
    """
    from scipy.stats import wilcoxon

    d = np.asarray([v for v in diffs if np.isfinite(v)], float)
    if len(d) == 0:
        return math.nan
    if not np.any(d != 0):
        return 1.0
    return float(wilcoxon(d).pvalue)


def paired_tests(stats: pd.DataFrame) -> pd.DataFrame:
    """Per pair of strategies (a, b) and area: the seeds both finished, the mean
    per-seed difference a - b and the Wilcoxon signed-rank p-value."""
    rows = []
    for partial, df in stats.groupby("partial"):
        names = list(dict.fromkeys(df["strategy"]))
        for a, b in itertools.combinations(names, 2):
            pa = df[df["strategy"] == a].set_index("seed")
            pb = df[df["strategy"] == b].set_index("seed")
            seeds = sorted(set(pa.index) & set(pb.index))
            for metric, axis in AREAS:
                col = f"area_{metric}_{axis}"
                diffs = (pa.loc[seeds, col] - pb.loc[seeds, col]).astype(float)
                rows.append(
                    {
                        "partial": bool(partial),
                        "a": a,
                        "b": b,
                        "area": col,
                        "seeds": len(seeds),
                        "mean_diff": float(diffs.mean()) if len(seeds) else math.nan,
                        "a_better": int((diffs > 0).sum()),
                        "p": wilcoxon_p(diffs.to_numpy()),
                    }
                )
    cols = ["partial", "a", "b", "area", "seeds", "mean_diff", "a_better", "p"]
    return pd.DataFrame(rows, columns=cols)


def distinct_particles(selected: dict, strategies: Sequence[str]) -> pd.DataFrame:
    """Seed-averaged distinct-particle matrix |L_A minus L_B| of the particles each
    strategy labelled after the initial set (``selected``: seed -> strategy -> set)."""
    from ...metrics import distinct_particle_matrix

    mats = [
        distinct_particle_matrix(sets).astype(float) for sets in selected.values() if len(sets) >= 2
    ]
    if not mats:
        return pd.DataFrame()
    order = [s for s in strategies if any(s in m.index for m in mats)]
    mean = pd.concat(mats).groupby(level=0).mean()
    return mean.reindex(index=order, columns=order)


def _pm(values: pd.Series, digits: int = 3) -> str:
    """``mean ± std`` over seeds (std omitted for one seed)."""
    v = values.astype(float).dropna()
    if len(v) == 0:
        return "-"
    if len(v) == 1:
        return f"{v.iloc[0]:.{digits}f}"
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}"


def _reached(values: pd.Series) -> str:
    """Mean over the seeds that reached a target, and how many did."""
    v = values.astype(float)
    hit = v.dropna()
    return f"{hit.mean():.0f} ({len(hit)}/{len(v)})" if len(hit) else f"not reached (0/{len(v)})"


def _p(p: float) -> str:
    return "-" if not np.isfinite(p) else f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def _round_tables(rounds: pd.DataFrame, tag: str) -> list[str]:
    runs = rounds[~rounds["strategy"].isin((BASELINE, GENERAL))]
    base = rounds[rounds["strategy"] == BASELINE]
    rounds_idx = sorted(runs["round"].unique())
    labels = runs.groupby("round")["labels"].mean()
    reviews = runs.groupby("round")["reviews"].mean()
    lines = [
        f"F1 at T_opt on the test micrographs{tag}, mean ± std over {runs['seed'].nunique()} "
        "seed(s); columns: round (mean labels / reviews behind it)",
        "",
        "| strategy | "
        + " | ".join(f"{r} ({labels[r]:.0f} / {reviews[r]:.0f})" for r in rounds_idx)
        + " |",
        "|---|" + "---|" * len(rounds_idx),
    ]
    for strategy, g in runs.groupby("strategy", sort=False):
        cells = [_pm(g[g["round"] == r]["f1_topt"]) for r in rounds_idx]
        lines.append(f"| {strategy} | " + " | ".join(cells) + " |")
    cols = ["labels", "reviews", "recall_topt", "precision_topt", "f1_topt", "f1_03"]
    cols += ["pr_auc", "mean_iou", "t_opt"]
    lines += ["", f"Final round{tag}:", ""]
    lines += ["| strategy | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    last = runs[runs["round"] == runs.groupby("strategy")["round"].transform("max")]
    named = [(s, g) for s, g in last.groupby("strategy", sort=False)]
    named += [(f"{BASELINE} (label everything)", g) for _, g in base.groupby("strategy")]
    named += [
        ("general model, 0 labels", g)
        for _, g in rounds[rounds["strategy"] == GENERAL].groupby("strategy")
    ]
    for name, g in named:
        cells = [_pm(g[c], 0 if c in ("labels", "reviews") else 3) for c in cols]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _statistics_tables(stats: pd.DataFrame, tests: pd.DataFrame, tag: str) -> list[str]:
    n = stats["seed"].nunique()
    heads = [f"area {m} vs {a}" for m, a in AREAS]
    heads += [f"reviews to F1 {F1_GOAL}", f"labels to {REFERENCE}'s final PR-AUC"]
    heads += [f"reviews to {REFERENCE}'s final PR-AUC"]
    lines = [
        f"Learning-curve statistics{tag} over {n} paired seed(s): areas are the mean metric "
        "over the axis range every strategy of a seed covers (mean ± std); 'to' columns are "
        "the mean over the seeds that reached the target (seeds reached / all)",
        "",
        "| strategy | " + " | ".join(heads) + " |",
        "|---|" + "---|" * len(heads),
    ]
    for strategy, g in stats.groupby("strategy", sort=False):
        cells = [_pm(g[f"area_{m}_{a}"]) for m, a in AREAS]
        cells += [_reached(g[c]) for c in ("reviews_to_f1", "labels_to_ref", "reviews_to_ref")]
        lines.append(f"| {strategy} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Paired tests{tag}: Wilcoxon signed-rank on the per-seed area differences a - b "
        "(scipy.stats.wilcoxon, two-sided)",
        "",
        "| a | b | area | seeds | mean a - b | seeds a > b | p |",
        "|---|---|---|---|---|---|---|",
    ]
    for t in tests.itertuples():
        lines.append(
            f"| {t.a} | {t.b} | {t.area} | {t.seeds} | {t.mean_diff:+.4f} | {t.a_better} | "
            f"{_p(t.p)} |"
        )
    lines.append("")
    ref = stats[stats["strategy"] == REFERENCE].set_index("seed")
    for strategy, g in stats.groupby("strategy", sort=False):
        if strategy == REFERENCE or not len(ref):
            continue
        g = g.set_index("seed")
        both = g.index.intersection(ref.index)
        mine, theirs = g.loc[both, "reviews_to_ref"], ref.loc[both, "reviews_to_ref"]
        ok = mine.notna() & theirs.notna()
        if not ok.any():
            ratio = "never (within the budget)"
        elif theirs[ok].mean() > 0:
            ratio = (
                f"with {mine[ok].mean() / theirs[ok].mean():.2f}x its reviews "
                f"({mine[ok].mean():.0f} vs {theirs[ok].mean():.0f})"
            )
        else:
            ratio = f"with {mine[ok].mean():.0f} reviews ({REFERENCE}: at its first round)"
        t = tests[(tests["a"] == strategy) & (tests["b"] == REFERENCE)]
        t = t if len(t) else tests[(tests["b"] == strategy) & (tests["a"] == REFERENCE)]
        t = t[t["area"] == "area_pr_auc_reviews"]
        p = float(t["p"].iloc[0]) if len(t) else math.nan
        diff = g.loc[both, "area_pr_auc_reviews"] - ref.loc[both, "area_pr_auc_reviews"]
        lines.append(
            f"- {strategy} reaches {REFERENCE}'s final PR-AUC {ratio} ({int(ok.sum())} of "
            f"{len(both)} seeds); area of PR-AUC vs reviews {diff.mean():+.4f} against "
            f"{REFERENCE}, p = {_p(p)} over {len(both)} paired seeds{tag}"
        )
    return [*lines, ""]


def report_markdown(
    rounds: pd.DataFrame,
    l95: pd.DataFrame,
    distinct: pd.DataFrame,
    order: Sequence[str] = (),
    stats: pd.DataFrame | None = None,
    tests: pd.DataFrame | None = None,
) -> str:
    """Markdown of a benchmark (report.md): F1 per round, the final round with the
    baselines, labels to 95% of the all-labels F1, the learning-curve statistics with
    the paired tests and a verdict line per strategy, and the distinct-particle
    matrix. Strategies appear in ``order`` (then any others alphabetically)."""
    names = list(order) + sorted(set(rounds["strategy"]) - set(order))
    rank = {n: i for i, n in enumerate(names)}
    rounds = rounds.sort_values(
        ["partial", "strategy"], key=lambda c: c.map(rank) if c.name == "strategy" else c
    )
    lines: list[str] = []
    for partial, df in rounds.groupby("partial"):
        tag = " (partial labels)" if partial else ""
        lines += _round_tables(df, tag)
        if stats is not None and len(stats):
            s = stats[stats["partial"] == bool(partial)]
            s = s.sort_values("strategy", key=lambda c: c.map(rank), kind="stable")
            t = tests[tests["partial"] == bool(partial)] if tests is not None else pd.DataFrame()
            lines += _statistics_tables(s, t, tag)
    if len(l95):
        lines += [
            "Labels to reach 95% of the all-labels F1 (seed means):",
            "",
            "| strategy | partial | target F1 | labels | round |",
            "|---|---|---|---|---|",
        ]
        for rec in l95.itertuples():
            labels = f"{rec.labels:.0f}" if rec.reached else "not reached"
            rnd = rec.round if rec.reached else "-"
            lines.append(
                f"| {rec.strategy} | {rec.partial} | {rec.target_f1:.3f} | {labels} | {rnd} |"
            )
        lines.append("")
    if len(distinct):
        lines += [
            "Distinct particles |L_row minus L_col| labelled after the initial set, final "
            "round, seed mean:",
            "",
            "| | " + " | ".join(distinct.columns) + " |",
            "|---|" + "---|" * len(distinct.columns),
        ]
        for name, row in distinct.iterrows():
            lines.append(f"| {name} | " + " | ".join(f"{v:.1f}" for v in row) + " |")
        lines.append("")
    return "\n".join(lines)


def plain_json(value: Any) -> Any:
    """``value`` with numpy scalars as Python ones, NaN as None and dict keys as strings."""
    if isinstance(value, dict):
        return {str(k): plain_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_json(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return None if math.isnan(v) else v
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def _write_csv(df: pd.DataFrame, path: Path, *, index: bool = False) -> None:
    with atomic_open(path, "w", encoding="utf-8", newline="") as fh:
        df.to_csv(fh, index=index)


def write_report(
    out_dir: Path,
    settings: dict[str, Any],
    data,
    rows: list[dict],
    selected: dict[bool, dict],
    *,
    plots: bool = True,
) -> dict:
    """Write rounds.csv/json, runs.csv, paired_tests.csv, labels_to_95.csv, the
    distinct-particle matrices, summary.json and report.md (the PNGs only with
    ``plots``); returns the summary. ``rows`` are the round rows of the run sessions
    and ``selected`` {partial: {seed: {strategy: truth rows labelled}}} (both read by
    :mod:`.run`, which calls this)."""
    from ..plots import plot_distinct, plot_learning_curves

    out_dir = Path(out_dir)
    rounds = rounds_table(rows)
    _write_csv(rounds, out_dir / "rounds.csv")
    records = plain_json(rounds.to_dict("records"))
    atomic_write_text(out_dir / "rounds.json", json.dumps(records, indent=1))
    stats = run_statistics(rounds)
    tests = paired_tests(stats)
    _write_csv(stats, out_dir / "runs.csv")
    _write_csv(tests, out_dir / "paired_tests.csv")
    figures = plot_learning_curves(rounds, out_dir) if plots and len(rounds) else []
    l95 = labels_to_95(rounds)
    _write_csv(l95, out_dir / "labels_to_95.csv")
    distinct_files, first_matrix = [], pd.DataFrame()
    for partial in partial_modes(settings):
        suffix = "_partial" if partial and settings["partial"] == "both" else ""
        mat = distinct_particles(selected[partial], settings["strategies"])
        _write_csv(mat, out_dir / f"distinct_particles{suffix}.csv", index=True)
        if plots and len(mat):
            plot_distinct(mat, out_dir / f"distinct_particles{suffix}.png")
        if not distinct_files:
            first_matrix = mat
        distinct_files.append(f"distinct_particles{suffix}.csv")
    runs = rounds[~rounds["strategy"].isin((BASELINE, GENERAL))]
    last = runs[
        runs["round"] == runs.groupby(["partial", "strategy", "seed"])["round"].transform("max")
    ]
    cols = [*METRICS, "labels", "reviews"]
    final = last.groupby(["partial", "strategy"], sort=False)[cols].mean().reset_index()
    summary = {
        "settings": settings,
        "rows": len(rounds),
        "final_round_mean": final.to_dict("records"),
        "baseline": rounds[rounds["strategy"] == BASELINE][list(METRICS)]
        .mean(numeric_only=True)
        .to_dict(),
        "label_everything_clicks": len(data.train_truth),
        "labels_to_95": l95.to_dict("records"),
        "paired_tests": tests.to_dict("records"),
        "plots": figures,
        "distinct": distinct_files,
    }
    atomic_write_text(out_dir / "summary.json", json.dumps(plain_json(summary), indent=1))
    text = report_markdown(rounds, l95, first_matrix, settings["strategies"], stats, tests)
    atomic_write_text(out_dir / "report.md", text)
    return summary
