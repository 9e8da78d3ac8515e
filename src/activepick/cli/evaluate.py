"""``activepick evaluate``: score picks against ground truth (SPEC section 5)."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from ..constants import DEFAULT_TP_IOU
from ..errors import CoordinateError
from ._args import fraction, positive


def register(subparsers) -> None:
    """Add the ``evaluate`` subcommand."""
    p = subparsers.add_parser(
        "evaluate",
        help="score picks against ground-truth coordinates",
        description="Match predicted picks to ground truth per micrograph (one-to-one, highest "
        "circle IoU) and report T_opt, recall / precision / F1 at T_opt and at 0.3, PR-AUC and "
        "mean IoU. Any coordinate format 'activepick convert' reads is accepted.",
    )
    p.add_argument("--pred", required=True, type=Path, help="predicted picks (file or folder)")
    p.add_argument("--truth", required=True, type=Path, help="ground-truth picks (file or folder)")
    p.add_argument("--pred-format", default=None, help="format of --pred (default: guessed)")
    p.add_argument("--truth-format", default=None, help="format of --truth (default: guessed)")
    p.add_argument(
        "--diameter",
        type=positive,
        default=None,
        help="particle diameter in px, for formats without one (and overriding stored ones)",
    )
    p.add_argument(
        "--threshold",
        type=fraction,
        default=None,
        help="report at this confidence threshold instead of the F-beta-optimal T_opt",
    )
    p.add_argument(
        "--iou",
        type=fraction,
        default=DEFAULT_TP_IOU,
        help="a match is a TP when its circle IoU exceeds this (default: %(default)s)",
    )
    p.add_argument(
        "--beta", type=positive, default=1.0, help="T_opt maximises F-beta (default: %(default)s)"
    )
    p.add_argument("--curve", type=Path, default=None, help="also write the PR curve as CSV here")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--force", action="store_true", help="overwrite --curve when it exists")
    p.set_defaults(func=run)


def _read(path: Path, fmt: str | None, diameter: float | None, option: str):
    from ..io.formats import read_coordinates

    if not path.exists():
        raise CoordinateError(f"{path}: no such file or folder")
    return read_coordinates(path, fmt, diameter=diameter, format_option=option)


def _check_names(pred, truth, pred_path: Path, truth_path: Path) -> None:
    """Refuse to score when the two tables share no micrograph name (a naming mismatch
    would otherwise read as zero recall)."""
    p_names, t_names = set(pred["micrograph"]), set(truth["micrograph"])
    if p_names and t_names and not p_names & t_names:
        raise CoordinateError(
            f"{pred_path} and {truth_path} have no micrograph name in common "
            f"(e.g. {sorted(p_names)[0]!r} vs {sorted(t_names)[0]!r}); names must match exactly"
        )


def _fmt(value: float, digits: int = 3) -> str:
    return (
        "n/a"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else f"{value:.{digits}f}"
    )


def format_table(result: dict) -> str:
    """The SPEC section 5 report as aligned text."""
    label = "threshold" if result["threshold_given"] else "T_opt"
    s = result
    counts_opt = f"{s['tp']}/{s['fp']}/{s['fn']}"
    counts_03 = f"{s['tp_03']}/{s['fp_03']}/{s['fn_03']}"
    lines = [
        f"predictions: {s['pred']} ({s['n_pred']} picks on {s['pred_micrographs']} micrographs)",
        f"ground truth: {s['truth']} ({s['n_truth']} particles on {s['truth_micrographs']} "
        f"micrographs)",
        f"TP: one-to-one match with circle IoU > {s['tp_iou']:g}",
        "",
        f"{'':<12}{label + ' = ' + _fmt(s['t_opt'], 2):>18}{'t = 0.30':>14}",
        f"{'recall':<12}{_fmt(s['recall_topt']):>18}{_fmt(s['recall_03']):>14}",
        f"{'precision':<12}{_fmt(s['precision_topt']):>18}{_fmt(s['precision_03']):>14}",
        f"{'F1':<12}{_fmt(s['f1_topt']):>18}{_fmt(s['f1_03']):>14}",
        f"{'TP/FP/FN':<12}{counts_opt:>18}{counts_03:>14}",
        "",
        f"PR-AUC: {_fmt(s['pr_auc'])}",
        f"mean IoU of the TPs at {label}: {_fmt(s['mean_iou'])}",
    ]
    if s["unscored"]:
        lines.append(
            f"note: {s['unscored']} prediction(s) without a confidence count at every threshold"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from .. import metrics
    from ..io.atomic import atomic_open, refuse_existing

    if args.curve is not None:
        refuse_existing(args.curve, force=args.force, what="PR curve file")
    pred = _read(args.pred, args.pred_format, args.diameter, "--pred-format")
    truth = _read(args.truth, args.truth_format, args.diameter, "--truth-format")
    _check_names(pred, truth, args.pred, args.truth)
    result = metrics.summary(
        pred,
        truth,
        t_opt=args.threshold,
        tp_iou=args.iou,
        beta=args.beta,
        curve=args.curve is not None,
    )
    curve = result.pop("curve", None)
    result.update(
        {
            "beta": args.beta,
            "threshold_given": args.threshold is not None,
            "pred": str(args.pred),
            "truth": str(args.truth),
            "pred_micrographs": int(pred["micrograph"].nunique()),
            "truth_micrographs": int(truth["micrograph"].nunique()),
            "unscored": int(pred["confidence"].isna().sum()),
        }
    )
    if curve is not None:
        with atomic_open(args.curve, "w", newline="") as fh:
            curve.to_csv(fh, index=False)
    if args.json:
        clean = {
            k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in result.items()
        }
        print(json.dumps(clean, indent=2))
    else:
        print(format_table(result))
    return 0
