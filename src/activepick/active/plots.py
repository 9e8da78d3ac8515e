"""Benchmark figures (matplotlib, Agg backend): learning curves and the distinct-particle matrix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..io.atomic import atomic_path

#: Metrics that get a learning-curve figure, with axis labels.
CURVE_METRICS: dict[str, str] = {
    "f1_topt": "F1 at T_opt",
    "recall_topt": "Recall at T_opt",
    "precision_topt": "Precision at T_opt",
    "f1_03": "F1 at 0.3",
    "recall_03": "Recall at 0.3",
    "pr_auc": "PR-AUC",
    "mean_iou": "Mean IoU (TPs at T_opt)",
    "t_opt": "T_opt (validation)",
}
#: Metrics that also get a curve against reviews (``learning_<metric>_reviews.png``).
REVIEW_METRICS: tuple[str, ...] = ("f1_topt", "pr_auc")
#: Axis labels of the two cost axes.
AXES: dict[str, str] = {
    "labels": "particle labels used for training",
    "reviews": "reviews (accept, move, reject, add, skip decisions)",
}
BASELINE = "all-labels"
GENERAL = "general-0"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")


def plot_learning_curves(rounds: pd.DataFrame, out_dir: Path) -> list[str]:
    """One ``learning_<metric>.png`` per metric: metric vs labels used, and
    ``learning_<metric>_reviews.png`` for :data:`REVIEW_METRICS`: metric vs reviews.
    One line per strategy (seed mean of both axes; band = min-max over seeds; dashed =
    partial labels on), the all-labels baseline as a horizontal line, the general
    model with 0 labels (when present) as a marker at 0. Returns the file names."""
    plt = _pyplot()
    written = []
    runs = rounds[~rounds["strategy"].isin((BASELINE, GENERAL))]
    base = rounds[rounds["strategy"] == BASELINE]
    general = rounds[rounds["strategy"] == GENERAL]
    strategies = list(dict.fromkeys(runs["strategy"]))
    colours = {s: plt.get_cmap("tab10")(i % 10) for i, s in enumerate(strategies)}
    if "random" in colours:  # the reference strategy: grey, drawn thicker
        colours["random"] = (0.35, 0.35, 0.35, 1.0)
    jobs = [(m, "labels") for m in CURVE_METRICS] + [(m, "reviews") for m in REVIEW_METRICS]
    for metric, axis in jobs:
        label = CURVE_METRICS[metric]
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        for (partial, strategy), g in runs.groupby(["partial", "strategy"], sort=False):
            stats = g.groupby("round").agg(
                x=(axis, "mean"),
                mean=(metric, "mean"),
                lo=(metric, "min"),
                hi=(metric, "max"),
            )
            style = "--" if partial else "-"
            name = f"{strategy}{' (partial)' if partial else ''}"
            ax.plot(
                stats["x"],
                stats["mean"],
                style,
                marker="o",
                ms=3,
                color=colours[strategy],
                label=name,
            )
            ax.fill_between(
                stats["x"], stats["lo"], stats["hi"], color=colours[strategy], alpha=0.12
            )
        for partial, g in base.groupby("partial"):
            values = g[metric].astype(float).dropna()
            value = float(values.mean()) if len(values) else np.nan
            if np.isfinite(value):
                ax.axhline(
                    value,
                    color="black",
                    ls="--" if partial else ":",
                    lw=1,
                    label=f"all labels{' (partial)' if partial else ''}",
                )
        if len(general) and np.isfinite(general[metric].astype(float)).any():
            value = float(np.nanmean(general[metric].astype(float)))
            ax.plot([0], [value], "k*", ms=9, label="general model, 0 labels")
        ax.set_xlabel(AXES[axis])
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
        suffix = "" if axis == "labels" else f"_{axis}"
        path = Path(out_dir) / f"learning_{metric}{suffix}.png"
        _save(fig, path)
        plt.close(fig)
        written.append(path.name)
    return written


def plot_distinct(matrix: pd.DataFrame, path: Path) -> None:
    """Heat map of a distinct-particle matrix (counts |L_row minus L_col|, seed mean)."""
    plt = _pyplot()
    n = len(matrix)
    fig, ax = plt.subplots(figsize=(1.0 + 0.9 * n, 0.8 + 0.8 * n))
    im = ax.imshow(matrix.to_numpy(float), cmap="viridis")
    ax.set_xticks(range(n), matrix.columns, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), matrix.index, fontsize=8)
    for i in range(n):
        for j in range(n):
            v = matrix.iat[i, j]
            if np.isfinite(v):
                ax.text(j, i, f"{v:.0f}", ha="center", va="center", color="w", fontsize=7)
    fig.colorbar(im, ax=ax, label="distinct particles")
    _save(fig, path)
    plt.close(fig)
