"""Sizing of the hitl benchmark preset: cost per training pass and per prediction, and a budget.

Simulates the preset's mixed-difficulty data (44 micrographs of 256 px), trains the
light detector on every training particle for the preset's epochs (the "label
everything" baseline: the largest training of the benchmark), scores it on the test
micrographs (T_opt on validation), and times predictions. Costs are CPU seconds
(``time.process_time``: what the job itself used, whatever else runs on the machine)
and wall seconds. The budget bounds the full run by the CPU time as if it had ONE
core (no speed-up from the second): every round trains on all 32 pool micrographs
(an upper bound: round 1 trains on the ~9 that hold an initial label).

    .venv/bin/python perf/bench_hitl.py             # preset epochs
    .venv/bin/python perf/bench_hitl.py --epochs 4  # another epoch count
    .venv/bin/python perf/bench_hitl.py --threads 2 # torch threads (default 1)

Prints a table and writes ``perf/results/hitl_sizing.json``.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

from _common import add_smoke_flag, results_path, write_results

RESULTS = Path(__file__).resolve().parent / "results" / "hitl_sizing.json"


def _timed(fn):
    t0, c0 = time.perf_counter(), time.process_time()
    value = fn()
    return value, time.perf_counter() - t0, time.process_time() - c0


def budget_seconds(settings: dict, train_pass_s: float, predict_s: float) -> dict:
    """Bounds of the full hitl run in seconds of one core, by part.

    ``epochs``: training from scratch for ``epochs`` on all ``n_train`` pool
    micrographs every round (an upper bound: early rounds hold fewer labelled
    micrographs). ``steps``: ``train_steps`` x ``batch_size`` image passes per round
    (fine-tuning from the general model, the preset as shipped).
    """
    n_train, n_eval = int(settings["n_train"]), int(settings["n_val"]) + int(settings["n_test"])
    rounds, epochs = int(settings["iterations"]), int(settings["epochs"])
    runs = len(settings["strategies"]) * len(settings["seeds"])
    seeds = len(settings["seeds"])
    predict = runs * (rounds * n_eval + (rounds - 1) * n_train) * predict_s
    out = {"runs": runs, "predict_s": predict}
    for name, passes in (
        ("epochs", n_train * epochs),
        ("steps", int(settings["train_steps"]) * int(settings["batch_size"])),
    ):
        train = runs * rounds * passes * train_pass_s
        baseline = seeds * (passes * train_pass_s + n_eval * predict_s)
        out[name] = {
            "train_s": train,
            "baseline_s": baseline,
            "total_s": train + predict + baseline,
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: CPU time without OpenMP spin-waits on a busy machine)",
    )
    add_smoke_flag(parser)  # 2 + 1 + 1 micrographs of 128 px, one epoch
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)

    from activepick import metrics
    from activepick.active.benchmark import benchmark_settings, prepare_data
    from activepick.active.benchmark.run import detector_config, drain
    from activepick.detector import iter_predict_picks, train_detector

    small = dict(n_train=2, n_val=1, n_test=1, size=128, particles=3, decoys_max=2, epochs=1)
    settings = benchmark_settings("hitl", **(small if args.smoke else {"epochs": args.epochs}))
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        data, sim_wall, sim_cpu = _timed(lambda: prepare_data(settings, Path(tmp)))
        config = detector_config(settings, 0)
        det, tr_wall, tr_cpu = _timed(lambda: train_detector(data.train, data.train_truth, config))
        val, pr_wall, pr_cpu = _timed(
            lambda: drain(iter_predict_picks(det, data.val + data.test, threshold=0.0), None)
        )
    t_opt = float(
        metrics.find_t_opt(val[val["micrograph"].isin(data.split["val"])], data.val_truth)
    )
    test = val[val["micrograph"].isin(data.split["test"])]
    quality = metrics.summary(test, data.test_truth, t_opt=t_opt)
    passes = len(data.train) * int(settings["epochs"])
    n_pred = len(data.val) + len(data.test)
    per_pass_cpu, per_pred_cpu = tr_cpu / passes, pr_cpu / n_pred
    bound = budget_seconds(settings, per_pass_cpu, per_pred_cpu)
    result = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads",
        "load_average_at_start": load,
        "load_average_at_end": os.getloadavg()[0],
        "settings": {
            k: settings[k]
            for k in (
                "n_train",
                "n_val",
                "n_test",
                "size",
                "particles",
                "diameters",
                "epochs",
                "iterations",
                "review_k",
                "strategies",
                "seeds",
                "input_size",
            )
        },  # fmt: skip
        "pool_particles": len(data.train_truth),
        "simulate": {"wall_s": sim_wall, "cpu_s": sim_cpu},
        "train_all_labels": {"passes": passes, "wall_s": tr_wall, "cpu_s": tr_cpu},
        "predict": {"micrographs": n_pred, "wall_s": pr_wall, "cpu_s": pr_cpu},
        "per_train_pass_cpu_s": per_pass_cpu,
        "per_prediction_cpu_s": per_pred_cpu,
        "all_labels_test": {
            k: quality[k] for k in ("f1_topt", "pr_auc", "recall_topt", "precision_topt", "t_opt")
        },  # fmt: skip
        "budget_one_core_s": bound,
    }
    print(f"load average {load:.1f} -> {result['load_average_at_end']:.1f}")
    print("| part | count | wall s | CPU s | CPU s each |")
    print("|---|---|---|---|---|")
    print(f"| simulate | {len(data.paths)} mics | {sim_wall:.1f} | {sim_cpu:.1f} | - |")
    print(f"| train all labels | {passes} passes | {tr_wall:.1f} | {tr_cpu:.1f} | "
          f"{per_pass_cpu:.3f} |")  # fmt: skip
    print(f"| predict | {n_pred} mics | {pr_wall:.1f} | {pr_cpu:.1f} | {per_pred_cpu:.3f} |")
    print(f"all-labels test: F1 at T_opt {quality['f1_topt']:.3f}, PR-AUC {quality['pr_auc']:.3f}")
    for name in ("epochs", "steps"):
        b = bound[name]
        print(
            f"bound, {name} rule (one core, {bound['runs']} runs): train "
            f"{b['train_s'] / 60:.1f} min + predict {bound['predict_s'] / 60:.1f} min + "
            f"baselines {b['baseline_s'] / 60:.1f} min = {b['total_s'] / 60:.1f} min"
        )

    write_results(results_path(RESULTS, args.smoke), result, indent=1, default=float)


if __name__ == "__main__":
    main()
