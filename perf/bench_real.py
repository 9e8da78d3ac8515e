"""Picking quality on real micrographs, from zero labels up (issue 19).

A labelled set (a folder of micrographs, one coordinate file of every label and a
JSON split, see :mod:`activepick.io.labelled`; default: the shared EMPIAR-10017
beta-galactosidase set in ``../shared/realdata`` when it exists) is scored on its
test part after:

- ``general``: the shipped general model alone (0 labels), then fine-tuned as
  ``activepick train --init general`` does on ``n`` labels of the training part
  (partial labels: drawn at random, spread over the micrographs, ``--draws``
  seeds; the rest of each micrograph is not taught as background), and on every
  label (complete micrographs);
- ``scratch``: trained from scratch on every label (``activepick train --init
  scratch``, the thesis budget of 40 epochs).

Scores: F1, precision and recall at the best threshold, PR-AUC (SPEC section 5,
one-to-one matching at circle IoU > 0.5), with picks and labels within
``--margin`` px of the border left out (default half a diameter), and the offset
of matched picks from their labels (median and 90th percentile, px).

    .venv/bin/python perf/bench_real.py [--micrographs DIR --labels FILE --split FILE
        --diameter D] [--counts 0 10 20 50 all] [--draws 3] [--inits general scratch]
        [--model PATH] [--set key=value ...] [--smoke]

Prints a table (mean and spread over the draws) and writes
``perf/results/real.json`` (``--out``); rows are keyed by set, model, init,
labels and settings, so runs accumulate. ``--smoke`` runs a few steps on a tiny
simulated set (the test suite's check that this script still runs).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from _common import machine_info, smoke_labelled_set, smoke_results, write_results

RESULTS = Path(__file__).resolve().parent / "results" / "real.json"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "realdata" / "empiar10017_betagal"


def _scores(det, mics, truth, diameter: float, margin: float) -> dict:
    import numpy as np

    from activepick import metrics
    from activepick.detector import predict_picks

    shapes = {m.name: tuple(m.data.shape) for m in mics}
    pred = metrics.inside_margin(predict_picks(det, mics, threshold=0.0), shapes, margin)
    truth = metrics.inside_margin(truth, shapes, margin)
    s = metrics.summary(pred, truth)
    dxy = metrics.centre_offsets(pred, truth, s["t_opt"])
    off = np.linalg.norm(dxy, axis=1)
    found = len(off) > 0
    return {
        "f1": round(s["f1_topt"], 3),
        "precision": round(s["precision_topt"], 3),
        "recall": round(s["recall_topt"], 3),
        "pr_auc": round(s["pr_auc"], 3),
        "t_opt": s["t_opt"],
        "offset_median_px": round(float(np.median(off)), 2) if found else None,
        "offset_p90_px": round(float(np.percentile(off, 90)), 2) if found else None,
        "offset_mean_dx_px": round(float(dxy[:, 0].mean()), 2) if found else None,
        "offset_mean_dy_px": round(float(dxy[:, 1].mean()), 2) if found else None,
        "n_test_labels": int(len(truth)),
    }


def run_case(data, init: str, n: int | None, draw: int, args, overrides: dict) -> dict:
    """Train (or not) and score one case; ``n`` None = every training label."""
    from activepick.detector import DetectorConfig, train_detector
    from activepick.detector.budget import finetune_config
    from activepick.detector.general import load_general_detector
    from activepick.io.labelled import spread_labels

    train_mics, train_truth = data.part(args.train_part)
    test_mics, test_truth = data.part(args.test_part)
    d = data.diameter
    partial = n is not None
    labels = spread_labels(train_truth, n, seed=draw)
    t0 = time.perf_counter()
    general = load_general_detector(d, device=args.device, path=args.model)
    if init == "general" and n == 0:
        det, steps = general, 0
    elif init == "general":
        cfg = finetune_config(
            d, len(labels), partial=partial, seed=draw, device=args.device, **overrides
        )
        det = train_detector(train_mics, labels, cfg, init=general, partial=partial)
        steps = det.meta["steps"]
    else:
        cfg = DetectorConfig(diameter=d, seed=draw, device=args.device, **overrides)
        det = train_detector(train_mics, labels, cfg, partial=partial)
        steps = det.meta["steps"]
    train_s = time.perf_counter() - t0
    return {
        "set": args.name,
        "model": str(args.model) if args.model else "shipped",
        "init": init,
        "labels": 0 if n == 0 else int(len(labels)),
        "label_draw": draw,
        "settings": overrides,
        "steps": int(steps),
        "train_s": round(train_s, 1),
        **_scores(det, test_mics, test_truth, d, args.margin),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def picture(data, args, path: Path, size: int = 512) -> None:
    """The general model's picks (0 labels) at the test part's T_opt on a
    ``size`` px corner of its first micrograph, low-pass filtered at 1/2 diameter for
    display: matched picks green, false picks red, labels it missed yellow (dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.patches import Circle

    from activepick import metrics
    from activepick.detector import predict_picks
    from activepick.detector.general import load_general_detector
    from activepick.display import lowpass, percentile_limits

    mics, truth = data.part(args.test_part)
    det = load_general_detector(data.diameter, device=args.device, path=args.model)
    shapes = {m.name: tuple(m.data.shape) for m in mics}
    pred = metrics.inside_margin(predict_picks(det, mics, threshold=0.0), shapes, args.margin)
    truth = metrics.inside_margin(truth, shapes, args.margin)
    t_opt = metrics.summary(pred, truth)["t_opt"]
    mic = mics[0]
    pred = pred[(pred["micrograph"] == mic.name) & (pred["confidence"] >= t_opt)]
    truth = truth[truth["micrograph"] == mic.name]
    p, t = metrics.matched_pairs(pred.reset_index(drop=True), truth.reset_index(drop=True), 0.0)
    hit_p = np.zeros(len(pred), bool)
    hit_p[p] = True
    hit_t = np.zeros(len(truth), bool)
    hit_t[t] = True
    image = lowpass(mic.data, data.diameter / 2)
    crop = image[:size, :size]
    lo, hi = percentile_limits(crop)
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.imshow(crop, cmap="gray", vmin=lo, vmax=hi)
    r = data.diameter / 2
    groups = (
        (pred[hit_p], "#3c3", "-", "picked, labelled"),
        (pred[~hit_p], "#e33", "-", "picked, not labelled"),
        (truth[~hit_t], "#fd0", "--", "labelled, missed"),
    )
    for table, colour, style, label in groups:
        table = table[(table["x"] < size) & (table["y"] < size)]
        for x, y in table[["x", "y"]].to_numpy():
            ax.add_patch(Circle((x, y), r, fill=False, ec=colour, ls=style, lw=1.2))
        ax.plot([], [], color=colour, ls=style, label=f"{label} ({len(table)})")
    ax.set_axis_off()
    ax.legend(loc="lower right", fontsize=8, framealpha=0.8)
    ax.set_title(f"{mic.name}: general model, 0 labels, threshold {t_opt:.2f}", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"wrote {path}")


def _cases(args) -> list[tuple[str, int | None, int]]:
    cases = []
    for init in args.inits:
        for c in args.counts:
            n = None if c == "all" else int(c)
            if init == "scratch" and n is not None:
                continue  # scratch needs complete labels
            draws = range(args.draws) if n not in (0, None) else range(1)
            cases.extend((init, n, k) for k in draws)
    return cases


def _table(rows: list[dict]) -> str:
    import pandas as pd

    df = pd.DataFrame(rows)
    keys = ["set", "model", "init", "labels"]
    agg = df.groupby(keys, sort=False).agg(
        draws=("f1", "size"),
        f1=("f1", "mean"),
        f1_sd=("f1", "std"),
        precision=("precision", "mean"),
        recall=("recall", "mean"),
        pr_auc=("pr_auc", "mean"),
        offset_median=("offset_median_px", "mean"),
        offset_p90=("offset_p90_px", "mean"),
        steps=("steps", "mean"),
        train_s=("train_s", "mean"),
    )
    return agg.round(3).to_string()


def plot(rows: list[dict], path: Path, title: str) -> None:
    """F1 at T_opt against labels (log axis; 0 labels drawn at 1), mean and spread over
    the label draws, one line per init; "all" labels at the set's training count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    df = pd.DataFrame(rows)
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for (init, model), g in df.groupby(["init", "model"], sort=False):
        agg = g.groupby("labels")["f1"].agg(["mean", "min", "max"]).sort_index()
        x = [max(n, 1) for n in agg.index]
        label = init if model == "shipped" else f"{init} ({Path(model).stem})"
        ax.errorbar(
            x,
            agg["mean"],
            yerr=[agg["mean"] - agg["min"], agg["max"] - agg["mean"]],
            marker="o",
            capsize=3,
            label=label,
            linestyle="-" if len(x) > 1 else "none",
        )
    ax.set_xscale("log")
    ax.set_xlabel("training labels (0 drawn at 1)")
    ax.set_ylabel("F1 at the best threshold (test)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--micrographs", type=Path, default=SHARED / "micrographs")
    parser.add_argument("--labels", type=Path, default=SHARED / "labels.star")
    parser.add_argument("--split", type=Path, default=SHARED / "split.json")
    parser.add_argument("--diameter", type=float, default=28.0, help="particle px")
    parser.add_argument("--name", default=None, help="set name in the results (default: folder)")
    parser.add_argument("--train-part", default="train")
    parser.add_argument("--test-part", default="test")
    parser.add_argument("--counts", nargs="*", default=["0", "10", "20", "50", "all"])
    parser.add_argument("--draws", type=int, default=3, help="label draws per partial count")
    parser.add_argument("--inits", nargs="+", default=["general", "scratch"])
    parser.add_argument("--model", type=Path, default=None, help="general model (default shipped)")
    parser.add_argument("--margin", type=float, default=None, help="px (default: diameter / 2)")
    parser.add_argument("--set", nargs="*", default=[], help="DetectorConfig overrides k=v")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--plot", type=Path, default=None, help="PNG of F1 against labels")
    parser.add_argument(
        "--picture", type=Path, default=None, help="PNG of the 0-label picks on a test micrograph"
    )
    parser.add_argument("--smoke", action="store_true", help="tiny simulated set, few steps")
    args = parser.parse_args()
    import torch

    from activepick.io.labelled import load_labelled_set

    torch.set_num_threads(args.threads)
    overrides = {k: json.loads(v) for k, v in (kv.split("=", 1) for kv in args.set)}
    tmp = None
    if args.smoke:
        tmp = tempfile.TemporaryDirectory()
        args.micrographs, args.labels, args.split, args.diameter = smoke_labelled_set(
            Path(tmp.name), "labels.csv"
        )
        args.counts, args.draws, args.name = ["0", "2", "all"], 1, "smoke"
        overrides = {"steps": 2, "epochs": 1, "batch_size": 2, "crop": 128, **overrides}
        args.out = smoke_results(args.out)  # never over a measurement (tests read it)
        args.plot = Path(tmp.name) / "real.png"
        args.picture = Path(tmp.name) / "picks.png"
    elif not args.micrographs.is_dir():
        parser.error(
            f"{args.micrographs}: no such folder (the shared real set is absent); "
            "give --micrographs, --labels, --split and --diameter"
        )
    args.name = args.name or args.micrographs.parent.name
    args.margin = args.diameter / 2 if args.margin is None else args.margin
    data = load_labelled_set(args.micrographs, args.labels, args.diameter, args.split)
    if args.picture is not None:
        picture(data, args, args.picture)
    rows = []
    for init, n, draw in _cases(args):
        case = {k: v for k, v in overrides.items() if init == "general" or k != "steps"}
        row = run_case(data, init, n, draw, args, case)
        rows.append(row)
        print(json.dumps(row), flush=True)
    if not rows:
        return
    print(_table(rows))
    old = json.loads(args.out.read_text())["rows"] if args.out.is_file() else []
    key = lambda r: json.dumps(  # noqa: E731
        [r["set"], r["model"], r["init"], r["labels"], r["label_draw"], r.get("settings")],
        sort_keys=True,
    )
    merged = {key(r): r for r in old}
    merged.update({key(r): r for r in rows})
    write_results(args.out, {"machine": machine_info(), "rows": list(merged.values())})
    if args.plot is not None:
        mine = [r for r in merged.values() if r["set"] == args.name]
        plot(mine, args.plot, f"{args.name}: {args.test_part} part, margin {args.margin:g} px")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
