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
BASELINE = "all-labels"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")


def plot_learning_curves(rounds: pd.DataFrame, out_dir: Path) -> list[str]:
    """One ``learning_<metric>.png`` per metric: metric vs labels used, one line per
    strategy (seed mean; band = min-max over seeds; dashed = partial labels on), the
    all-labels baseline as a horizontal line. Returns the file names written."""
    plt = _pyplot()
    written = []
    runs = rounds[rounds["strategy"] != BASELINE]
    base = rounds[rounds["strategy"] == BASELINE]
    strategies = list(dict.fromkeys(runs["strategy"]))
    colours = {s: plt.get_cmap("tab10")(i % 10) for i, s in enumerate(strategies)}
    if "random" in colours:  # the reference strategy: grey, drawn thicker
        colours["random"] = (0.35, 0.35, 0.35, 1.0)
    for metric, label in CURVE_METRICS.items():
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        for (partial, strategy), g in runs.groupby(["partial", "strategy"], sort=False):
            stats = g.groupby("round").agg(
                labels=("labels", "mean"),
                mean=(metric, "mean"),
                lo=(metric, "min"),
                hi=(metric, "max"),
            )
            style = "--" if partial else "-"
            name = f"{strategy}{' (partial)' if partial else ''}"
            ax.plot(
                stats["labels"],
                stats["mean"],
                style,
                marker="o",
                ms=3,
                color=colours[strategy],
                label=name,
            )
            ax.fill_between(
                stats["labels"], stats["lo"], stats["hi"], color=colours[strategy], alpha=0.12
            )
        for partial, g in base.groupby("partial"):
            value = float(np.nanmean(g[metric].astype(float))) if len(g) else np.nan
            if np.isfinite(value):
                ax.axhline(
                    value,
                    color="black",
                    ls="--" if partial else ":",
                    lw=1,
                    label=f"all labels{' (partial)' if partial else ''}",
                )
        ax.set_xlabel("particle labels used for training")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
        path = Path(out_dir) / f"learning_{metric}.png"
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
