"""The widget's progress plot: metrics against ground truth per round, else label counts.

Only drawing on a matplotlib ``Axes`` (dark theme to match napari); the numbers come
from the workbench (``Workbench.round_metrics()`` and the learner's history).
"""

from __future__ import annotations

import numpy as np

BACKGROUND = "#262930"
TEXT = "#cccccc"
#: Metric key -> (legend label, colour).
CURVES = {
    "f1_topt": ("F1", "#ffcc00"),
    "pr_auc": ("PR-AUC", "#ffffff"),
    "recall_topt": ("recall", "#00ccff"),
    "precision_topt": ("precision", "#ff66cc"),
}


def _style(ax) -> None:
    ax.clear()
    ax.set_facecolor(BACKGROUND)
    for spine in ax.spines.values():
        spine.set_color("#888888")
    ax.tick_params(colors=TEXT, labelsize=7)


def _x_range(ax, xs: list[float]) -> None:
    """Axes from 0 to a little past the last point, so one round is not a lone dot."""
    hi = max(xs) if xs else 1.0
    ax.set_xlim(0, hi * 1.15 + 1)


def draw_metrics(ax, round_metrics: list[dict], history: list[dict]) -> None:
    """Draw F1 / PR-AUC / recall / precision vs particle labels when ground-truth
    metrics exist, else particles and rejections per round, else a hint."""
    _style(ax)
    rows = [m for m in round_metrics if m and "f1_topt" in m]
    if rows:
        xs = [float(m.get("labels", i + 1)) for i, m in enumerate(rows)]
        for key, (label, colour) in CURVES.items():
            ys = [m.get(key, np.nan) for m in rows]
            ax.plot(xs, ys, "o-", color=colour, label=label, ms=4, lw=1.2)
        ax.set_ylim(0, 1.02)
        _x_range(ax, xs)
        ax.set_xlabel("particle labels", color=TEXT, fontsize=7)
        ax.set_title("vs ground truth (at T_opt)", color=TEXT, fontsize=8)
    elif history:
        xs = [float(h.get("round", i + 1)) for i, h in enumerate(history)]
        ax.plot(xs, [h.get("labels", 0) for h in history], "o-", color="#00ff00", label="particles")
        ax.plot(
            xs, [h.get("negatives", 0) for h in history], "o-", color="#ff4444", label="rejected"
        )
        _x_range(ax, xs)
        ax.set_ylim(bottom=0)
        ax.set_xlabel("round", color=TEXT, fontsize=7)
        ax.set_title("labels per round", color=TEXT, fontsize=8)
    else:
        ax.text(
            0.5, 0.5, "metrics appear after the first round", ha="center", va="center",
            color="#888888", fontsize=8, transform=ax.transAxes,
        )  # fmt: skip
        ax.set_xticks([])
        ax.set_yticks([])
        return
    ax.legend(fontsize=6, facecolor=BACKGROUND, labelcolor=TEXT, edgecolor="#555555")
