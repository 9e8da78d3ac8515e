"""Seconds per active-learning round (train + predict), fine-tuning vs training from scratch.

A GUI round as a new user meets it, on the repository's sample data (6 micrographs of
512 px, 48 px particles): about 20 particles labelled (``--labels``, spread over the
micrographs), then round 1 (train, predict on the pool, select); a simulated person
(:class:`activepick.active.oracle.HumanOracle`) reviews the queue, then round 2.

Modes:

- ``finetune``: product protocol, ``init="general"`` (the shipped model), the
  engine's default step budget;
- ``scratch``: product protocol, ``init="scratch"``, ``DetectorConfig``'s default
  40 epochs (the pre-issue-9 budget).

For each round: train and predict seconds, and F1 at the best threshold of the
round's predictions on every sample micrograph against the ground truth.

    .venv/bin/python perf/bench_round.py [--threads 2] [--modes finetune scratch]

Prints a table and writes ``perf/results/round.json`` (with the load average, as
the 2 CPU cores may be shared).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from _common import add_smoke_flag, results_path, write_results

RESULTS = Path(__file__).resolve().parent / "results" / "round.json"
ROOT = Path(__file__).resolve().parents[1]


def _sample(n_mics: int | None = None):
    from activepick.io.formats import read_coordinates
    from activepick.io.micrograph import list_micrographs, read_micrograph

    folder = ROOT / "sample_data"
    mics = [read_micrograph(p) for p in list_micrographs(folder / "micrographs")[:n_mics]]
    truth = read_coordinates(folder / "ground_truth.csv", "csv")
    return mics, truth[truth["micrograph"].isin([m.name for m in mics])]


def _initial(truth, n: int, seed: int):
    import numpy as np

    rng = np.random.default_rng(seed)
    groups = list(truth.groupby("micrograph").indices.values())
    per = -(-n // len(groups))
    idx = np.concatenate([rng.choice(g, min(per, len(g)), replace=False) for g in groups])
    return truth.iloc[np.sort(idx[:n])]


def run_mode(
    mode: str, n_labels: int, seed: int, rounds: int, steps: int | None = None, n_mics=None
) -> list[dict]:
    from activepick import metrics
    from activepick.active.engine import ActiveLearner
    from activepick.active.oracle import HumanOracle
    from activepick.detector import DetectorConfig

    mics, truth = _sample(n_mics)
    diameter = float(truth["diameter"].iloc[0])
    config = DetectorConfig(diameter=diameter, device="cpu", seed=seed)
    kwargs = {"init": "general"} if mode == "finetune" else {"init": "scratch", "train_steps": None}
    if steps is not None:
        kwargs["train_steps"] = steps
    learner = ActiveLearner(mics, config, strategy="entropy", review_k=20, seed=seed, **kwargs)
    learner.add_labels(_initial(truth, n_labels, seed), source="initial")
    oracle = HumanOracle(truth)
    rows = []
    for r in range(1, rounds + 1):
        c0, t0 = time.process_time(), time.perf_counter()
        for _ in learner.iter_train():
            pass
        t1 = time.perf_counter()
        for _ in learner.iter_predict():
            pass
        c2, t2 = time.process_time(), time.perf_counter()
        learner.select()
        s = metrics.summary(learner.predictions, truth)
        rows.append(
            {
                "mode": mode,
                "round": r,
                "labels": int(len(learner.positive_labels())),
                "negatives": int(len(learner.negative_labels())),
                "steps": learner.detector.meta.get("steps"),
                "input_size": learner.detector.config.input_size,
                "train_s": round(t1 - t0, 2),
                "predict_s": round(t2 - t1, 2),
                "round_s": round(t2 - t0, 2),
                # CPU seconds of this process: on a shared machine, cpu_s / threads is
                # what the round would take with the cores to itself
                "round_cpu_s": round(c2 - c0, 2),
                "f1": round(s["f1_topt"], 3),
                "t_opt_truth": s["t_opt"],
                "t_opt_engine": round(learner.t_opt, 3),
                "load_avg_1m": round(os.getloadavg()[0], 2),
            }
        )
        print(_line(rows[-1]), flush=True)
        if r < rounds:
            learner.review_with(oracle)
    return rows


COLUMNS = (
    "mode",
    "round",
    "labels",
    "steps",
    "train_s",
    "predict_s",
    "round_s",
    "round_cpu_s",
    "f1",
)


def _line(row: dict) -> str:
    return "  ".join(f"{str(row[c]):>9}" for c in COLUMNS) + f"   (load {row['load_avg_1m']})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--labels", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--modes", nargs="+", default=["finetune", "scratch"])
    add_smoke_flag(parser)  # fine-tuning on 1 sample micrograph, 1 step per round
    args = parser.parse_args()
    steps, n_mics = (1, 1) if args.smoke else (None, None)
    if args.smoke:
        args.modes, args.labels, args.threads = ["finetune"], 2, 1
    import torch

    torch.set_num_threads(args.threads)
    print("  ".join(f"{c:>9}" for c in COLUMNS))
    rows = []
    for mode in args.modes:
        rows += run_mode(mode, args.labels, args.seed, args.rounds, steps, n_mics)
    keep = RESULTS.is_file() and not args.smoke
    old = json.loads(RESULTS.read_text()).get("rows", []) if keep else []
    rows = [r for r in old if r["mode"] not in args.modes] + rows  # other modes' rows are kept
    record = {
        "what": "seconds per GUI round (train + predict) on sample_data, fine-tune vs scratch",
        "threads": args.threads,
        "cpu_count": os.cpu_count(),
        "machine": platform.platform(),
        "torch": torch.__version__,
        "rows": rows,
    }
    write_results(results_path(RESULTS, args.smoke), record)


if __name__ == "__main__":
    main()
