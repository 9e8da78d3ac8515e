"""How often does a review key move the slider to another micrograph? (issue 20, item 4)

One round of the hitl benchmark's pool per seed: the round's detector (the general model
fine-tuned on the seed's initial labels, exactly as ``activepick benchmark --preset hitl``
trains round 1), its predictions on the pool, and the review batch (``review_k`` picks)
of each hitl strategy. For each batch, the share of decision keys after which the next
pick lies on another micrograph (the slider moves), in the strategy's uncertainty order
(the queue before issue 20) and grouped by micrograph (the queue now,
``strategies.group_by_micrograph``). The batch is the same in both orders.

    .venv/bin/python perf/bench_queue_order.py                   # hitl pool, seeds 0-2
    .venv/bin/python perf/bench_queue_order.py --seeds 0 --data mics/ --truth labels.star \\
        --diameter 28                                            # a labelled real set

Prints a table and writes ``perf/results/queue_order.json`` (``--name`` for another file).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import add_smoke_flag, machine_info, results_path, smoke_labelled_set, write_results

RESULTS = Path(__file__).resolve().parent / "results"


def slider_moves(micrographs: list[str]) -> int:
    """Decision keys after which the next pick lies on another micrograph."""
    return int(sum(a != b for a, b in zip(micrographs[:-1], micrographs[1:], strict=True)))


def batches(settings: dict, data, seed: int) -> tuple[dict, tuple[float, float]]:
    """``{strategy: queue}`` of round 1 at ``seed`` (one training for every strategy) and
    the round's train + evaluate + predict time (wall s, CPU s of this process)."""
    from activepick.active.benchmark.run import initial_indices, round_budget, stored_settings
    from activepick.active.engine import ActiveLearner
    from activepick.active.settings import LearnerSettings
    from activepick.progress import drive

    k = round_budget(settings, len(data.train_truth))
    stored = stored_settings(settings, settings["strategies"][0], seed, True, k)
    learner = ActiveLearner.from_settings(
        data.train, LearnerSettings.from_dict(stored), validation=(data.val, data.val_truth)
    )
    initial = initial_indices(len(data.train_truth), float(settings["initial"]), seed)
    learner.add_labels(data.train_truth.iloc[initial], source="initial")
    t0, c0 = time.perf_counter(), time.process_time()
    drive(learner.iter_train())
    drive(learner.iter_predict())
    round_s = (time.perf_counter() - t0, time.process_time() - c0)
    out = {}
    for strategy in settings["strategies"]:
        learner.strategy, learner._selects_this_round = strategy, 0
        out[strategy] = learner.select().copy()
    return out, round_s


def main(argv: list[str] | None = None) -> int:
    from activepick.active.benchmark import benchmark_settings, prepare_data

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument(
        "--strategies",
        default="random,low_confidence,boundary_distance,diverse_boundary,micrograph_entropy",
    )
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--truth", type=Path, default=None)
    ap.add_argument("--diameter", type=float, default=None)
    ap.add_argument("--name", default="queue_order.json")
    ap.add_argument("--split", type=Path, default=None, help="real data: split.json")
    ap.add_argument("--tile", type=int, default=None, help="real data: tiles of PX")
    ap.add_argument("--train-steps", type=int, default=None)
    ap.add_argument("--review-k", type=int, default=None)
    add_smoke_flag(ap)  # the tiny simulated set, one seed, 2 steps, batches of 4
    args = ap.parse_args(argv)
    if args.smoke:
        smoke_tmp = tempfile.TemporaryDirectory()
        args.data, args.truth, args.split, args.diameter = smoke_labelled_set(
            Path(smoke_tmp.name), n_train=4
        )
        args.seeds, args.strategies, args.train_steps, args.review_k = "0", "random", 2, 4
    seeds = [int(s) for s in args.seeds.split(",")]
    settings = benchmark_settings(
        "hitl",
        seeds=seeds,
        data=args.data,
        truth=args.truth,
        diameter=args.diameter,
        strategies=args.strategies.split(","),
        split=args.split,
        tile=args.tile,
        train_steps=args.train_steps,
        review_k=args.review_k,
    )
    rows, records = [], []
    with tempfile.TemporaryDirectory() as tmp:
        # torch's threads: the benchmark's (OMP_NUM_THREADS); the CPU time counts them all
        data = prepare_data(settings, Path(tmp))
        for seed in seeds:
            queues, round_s = batches(settings, data, seed)
            for strategy, queue in queues.items():
                grouped = queue["micrograph"].astype(str).tolist()
                flat = queue.sort_values("rank")["micrograph"].astype(str).tolist()
                n = len(queue)
                rec = {
                    "seed": seed,
                    "strategy": strategy,
                    "picks": n,
                    "micrographs": len(set(grouped)),
                    "moves_uncertainty_order": slider_moves(flat),
                    "moves_by_micrograph": slider_moves(grouped),
                    "round_s": round_s[0],
                    "round_cpu_s": round_s[1],
                }
                records.append(rec)
                rows.append(rec)
    print(f"slider moves per decision key, one round ({'real' if args.truth else 'hitl'} pool)")
    for seed in seeds:
        r = next(r for r in records if r["seed"] == seed)
        print(
            f"seed {seed}: train + evaluate + predict {r['round_s']:.0f} s wall, "
            f"{r['round_cpu_s']:.0f} s CPU (input {settings['input_size']}, tile {args.tile})"
        )
    print(f"{'strategy':<20}{'seed':>5}{'picks':>7}{'mics':>6}{'before':>10}{'after':>10}")
    for r in rows:
        before = r["moves_uncertainty_order"] / max(r["picks"], 1)
        after = r["moves_by_micrograph"] / max(r["picks"], 1)
        print(
            f"{r['strategy']:<20}{r['seed']:>5}{r['picks']:>7}{r['micrographs']:>6}"
            f"{before:>10.0%}{after:>10.0%}"
        )
    totals = {}
    for key in ("picks", "moves_uncertainty_order", "moves_by_micrograph"):
        totals[key] = int(np.sum([r[key] for r in records]))
    share_before = totals["moves_uncertainty_order"] / max(totals["picks"], 1)
    share_after = totals["moves_by_micrograph"] / max(totals["picks"], 1)
    print(
        f"all batches: {share_before:.0%} of keys move the slider before, {share_after:.0%} after"
    )
    write_results(
        results_path(RESULTS / args.name, args.smoke),
        {
            "pool": str(args.data) if args.truth else "hitl preset (simulated, data seed 11)",
            "review_k": settings["review_k"],
            "train_steps": settings["train_steps"],
            "tile": settings.get("tile"),
            "input_size": settings.get("input_size"),
            "torch_threads": __import__("torch").get_num_threads(),
            "seeds": seeds,
            "share_before": share_before,
            "share_after": share_after,
            "load_avg_1min": os.getloadavg()[0],
            **machine_info(),
            "batches": records,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
