"""F1 of the general model on unseen simulated data after 0, 10, 20, 50 and all labels.

The numbers of docs/model_card.md. A training set (``--train``, a folder written by
``activepick simulate``: ``micrographs/`` + ``ground_truth.csv``) gives the labels:
``n`` particles drawn at random (seeded), spread evenly over the micrographs, or
all of them; the detector is the shipped general model fine-tuned as
``activepick train --partial --init general`` does (the fine-tuning settings of
:mod:`activepick.detector.budget`), with 0 labels the general model itself; the F1 is
at the best threshold (SPEC section 5) on a separate test set (``--test``).

    .venv/bin/python perf/bench_general.py --train DIR --test DIR [--labels 0 10 20 50 all]
        [--scratch]   # also train from scratch (thesis setting: 40 epochs, all labels)

Prints a table and writes ``perf/results/general.json`` (rows are keyed by data set,
labels and init, so runs on several data sets accumulate).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from _common import write_results

RESULTS = Path(__file__).resolve().parent / "results" / "general.json"


def _load(folder: Path):
    from activepick.io.formats import read_coordinates
    from activepick.io.micrograph import list_micrographs, read_micrograph

    mics = [read_micrograph(p) for p in list_micrographs(folder / "micrographs")]
    return mics, read_coordinates(folder / "ground_truth.csv", "csv")


def pick_labels(truth, n: int | None, seed: int):
    """``n`` truth rows spread evenly over the micrographs (all rows when ``n`` is None)."""
    import numpy as np

    if n is None:
        return truth
    rng = np.random.default_rng(seed)
    groups = [rng.permutation(g) for g in truth.groupby("micrograph").indices.values()]
    order = [g[i] for i in range(max(len(g) for g in groups)) for g in groups if i < len(g)]
    return truth.iloc[np.sort(np.asarray(order[:n], dtype=int))]


def run(
    train: Path,
    test: Path,
    n: int | None,
    init: str,
    seed: int,
    lr: float | None = None,
    steps: int | None = None,
    freeze_norm: bool = True,
) -> dict:
    from activepick import metrics
    from activepick.detector import DetectorConfig, train_detector
    from activepick.detector.budget import finetune_config
    from activepick.detector.general import load_general_detector

    mics, truth = _load(train)
    tmics, ttruth = _load(test)
    diameter = float(truth["diameter"].iloc[0])
    labels = pick_labels(truth, n, seed)
    t0 = time.perf_counter()
    if init == "general" and n == 0:
        det, steps = load_general_detector(diameter, device="cpu"), 0
    elif init == "general":
        cfg = finetune_config(
            diameter,
            len(labels),
            partial=n is not None,
            steps=steps,
            lr=lr,
            seed=seed,
            freeze_norm=freeze_norm,
        )
        start = load_general_detector(diameter, device="cpu")
        det = train_detector(mics, labels, cfg, init=start, partial=n is not None)
        steps = det.meta["steps"]
    else:
        det = train_detector(mics, labels, DetectorConfig(diameter=diameter, seed=seed))
        steps = det.meta["steps"]
    train_s = time.perf_counter() - t0
    s = metrics.summary(det.predict(tmics, threshold=0.0), ttruth)
    return {
        "train": train.name,
        "test": test.name,
        "init": init,
        "labels": 0 if n == 0 else len(labels),
        "steps": steps,
        "lr": None if init == "general" and n == 0 else det.config.lr,
        "freeze_norm": bool(det.config.freeze_norm) if init == "general" and n != 0 else None,
        "f1": round(s["f1_topt"], 3),
        "t_opt": s["t_opt"],
        "pr_auc": round(s["pr_auc"], 3),
        "train_s": round(train_s, 1),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--test", type=Path, required=True)
    parser.add_argument("--labels", nargs="+", default=["0", "10", "20", "50", "all"])
    parser.add_argument("--scratch", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=None, help="fine-tuning lr (default: CLI's)")
    parser.add_argument("--steps", type=int, default=None, help="fine-tuning steps (CLI's)")
    parser.add_argument(
        "--no-freeze", action="store_true", help="fine-tune BatchNorm statistics too"
    )
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    old = json.loads(RESULTS.read_text())["rows"] if RESULTS.is_file() else []
    cases = [("general", None if n == "all" else int(n)) for n in args.labels]
    if args.scratch:
        cases.append(("scratch", None))
    rows = []
    for init, n in cases:
        row = run(
            args.train, args.test, n, init, args.seed, args.lr, args.steps, not args.no_freeze
        )
        rows.append(row)
        print(json.dumps(row), flush=True)
    key = lambda r: (  # noqa: E731
        r["train"],
        r["test"],
        r["init"],
        r["labels"],
        r.get("lr"),
        r.get("steps"),
        r.get("freeze_norm", True),
    )
    fresh = {key(r) for r in rows}
    record = {"rows": [r for r in old if key(r) not in fresh] + rows}
    write_results(RESULTS, record)


if __name__ == "__main__":
    main()
