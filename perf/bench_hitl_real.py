"""The hitl benchmark on the shared real set (issue 20): one command, re-runnable as the
general model improves.

    .venv/bin/python perf/bench_hitl_real.py                       # the settings below
    .venv/bin/python perf/bench_hitl_real.py --seeds 0,1,2,3,4,5 --out /tmp/hitl_real

Runs ``activepick benchmark --preset hitl`` on EMPIAR-10017 (``--root``: micrographs/,
labels.star, split.json): the split's 10 test micrographs score, 2 of its 10 train
micrographs (seeded) give T_opt, the other 8 are the pool. Product rounds fine-tune on
256 px crops (``detector.budget``), so a training step costs the same on these 1024 px
micrographs as on small ones; ``--tile PX`` cuts every micrograph into tiles instead
(each keeps its micrograph's split; the run measured before the crops landed used 512).
The simulated person reviews the queued picks,
adds the missed particles within 1.5 diameters of each, marks those neighbourhoods
complete and bulk-confirms the confident picks of every micrograph it visits
(``--review-actions complete,bulk``; the cost model is ``benchmark.run.REVIEW_COST``).
A stopped run resumes from ``--out``. The benchmark's tables go to ``--out``; this
script copies them to ``perf/results/hitl_real/`` and writes ``perf/results/hitl_real.json``
with the settings and, per strategy, reviews to F1 0.8 / 0.85 / 0.9 (seed means of the
first round reaching it, seeds that never do counted apart) and the comparison of each
strategy with random (reviews to random's final PR-AUC, Wilcoxon over paired seeds).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _common import add_smoke_flag, machine_info, results_path, smoke_labelled_set, write_results

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parents[2] / "shared" / "realdata" / "empiar10017_betagal"
GOALS = (0.8, 0.85, 0.9)
COPIED = ("report.md", "summary.json", "runs.csv", "rounds.csv", "paired_tests.csv")


def reviews_to(rounds: pd.DataFrame, goal: float) -> dict:
    """Per strategy: the reviews of the first round whose F1 at T_opt reaches ``goal``,
    per seed (None: never), and their mean over the seeds that reach it."""
    out = {}
    for strategy, g in rounds.groupby("strategy"):
        per_seed = {}
        for seed, s in g.sort_values("round").groupby("seed"):
            hit = s[s["f1_topt"] >= goal]
            per_seed[int(seed)] = None if hit.empty else int(hit["reviews"].iloc[0])
        reached = [v for v in per_seed.values() if v is not None]
        out[str(strategy)] = {
            "per_seed": per_seed,
            "mean_of_reached": float(np.mean(reached)) if reached else None,
            "seeds_reached": len(reached),
            "seeds": len(per_seed),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    from activepick.active.benchmark import benchmark_settings, prepare_data, run_benchmark
    from activepick.active.benchmark.run import write_outputs

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=ROOT)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--strategies", default="random,boundary_distance,micrograph_entropy")
    ap.add_argument("--iterations", type=int, default=5)
    ap.add_argument("--tile", type=int, default=None)
    ap.add_argument("--review-actions", default="complete,bulk")
    ap.add_argument("--out", type=Path, default=Path("/tmp/activepick_hitl_real"))
    ap.add_argument("--results", default="hitl_real", help="name under perf/results/")
    ap.add_argument(
        "--report-only",
        action="store_true",
        help="write the tables from the run sessions in --out (e.g. runs of several "
        "processes copied together) without running what is missing",
    )
    ap.add_argument("--diameter", type=float, default=28.0, help="particle px")
    add_smoke_flag(ap)  # the tiny simulated set: one seed, random, one round of 2 steps
    args = ap.parse_args(argv)
    smoke = {}
    if args.smoke:
        tmp = tempfile.TemporaryDirectory()
        args.root = Path(tmp.name) / "set"
        *_, args.diameter = smoke_labelled_set(args.root, n_train=4)
        args.out, args.results = Path(tmp.name) / "run", "hitl_real_smoke"
        args.seeds, args.strategies, args.iterations = "0", "random", 1
        smoke = {"train_steps": 2, "review_k": 4}
    elif not (args.root / "micrographs").is_dir():
        ap.error(f"{args.root}: no micrographs/ folder (the shared real set is absent?)")
    actions = [a for a in args.review_actions.split(",") if a and a != "none"] or None
    settings = benchmark_settings(
        "hitl",
        data=args.root / "micrographs",
        truth=args.root / "labels.star",
        split=args.root / "split.json",
        diameter=args.diameter,
        tile=args.tile,
        iterations=args.iterations,
        seeds=[int(s) for s in args.seeds.split(",")],
        strategies=args.strategies.split(","),
        review_actions=actions,
        **smoke,
    )
    t0 = time.perf_counter()

    def progress(info: dict) -> None:
        if info.get("stage") in ("train", "review"):
            keys = ("strategy", "seed", "round", "added", "reviews")
            where = " ".join(f"{k}={info[k]}" for k in keys if k in info)
            print(f"[{time.perf_counter() - t0:7.0f} s] {info['stage']:6s} {where}", flush=True)

    if args.report_only:
        summary = write_outputs(args.out, settings, prepare_data(settings, args.out))
    else:
        summary = run_benchmark(settings, args.out, progress=progress)
    folder = results_path(RESULTS / args.results, args.smoke)
    folder.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        shutil.copyfile(args.out / name, folder / name)
    rounds = pd.read_csv(args.out / "rounds.csv")
    tests = pd.read_csv(args.out / "paired_tests.csv")
    stats = pd.read_csv(args.out / "runs.csv")
    versus = []
    for strategy in settings["strategies"]:
        if strategy == "random":
            continue
        t = tests[tests["area"] == "area_pr_auc_reviews"]
        sign = 1.0 if ((t["a"] == strategy) & (t["b"] == "random")).any() else -1.0
        t = t[t[["a", "b"]].isin([strategy, "random"]).all(axis=1)]
        mine = stats[stats["strategy"] == strategy].set_index("seed")["reviews_to_ref"]
        ref = stats[stats["strategy"] == "random"].set_index("seed")["reviews_to_ref"]
        both = mine.dropna().index.intersection(ref.dropna().index)
        ratio = float(mine[both].sum() / ref[both].sum()) if len(both) else None
        versus.append(
            {
                "strategy": strategy,
                "reviews_to_random_final_pr_auc_ratio": ratio,
                "seeds_reaching": int(len(both)),
                # strategy minus random, per seed, mean
                "area_pr_auc_reviews_diff": None
                if t.empty
                else sign * float(t["mean_diff"].iloc[0]),
                "wilcoxon_p": None if t.empty else t["p"].iloc[0],
            }
        )
    final = rounds[rounds["round"] == rounds.groupby("strategy")["round"].transform("max")]
    record = {
        "command": "python perf/bench_hitl_real.py " + " ".join(argv or []),
        "settings": json.loads((args.out / "benchmark.json").read_text()),
        "split": json.loads((args.out / "split.json").read_text()),
        "wall_s": summary.get("wall_s"),
        "reviews_to_f1": {str(g): reviews_to(rounds, g) for g in GOALS},
        "versus_random": versus,
        "final_round_mean": final.groupby("strategy")[
            ["labels", "reviews", "f1_topt", "pr_auc", "precision_topt", "recall_topt"]
        ]
        .mean()
        .reset_index()
        .to_dict("records"),
        **machine_info(),
    }
    write_results(results_path(RESULTS / f"{args.results}.json", args.smoke), record, default=str)
    for goal in GOALS:
        for strategy, r in record["reviews_to_f1"][str(goal)].items():
            print(
                f"F1 {goal}: {strategy:<20} {r['mean_of_reached']} reviews "
                f"({r['seeds_reached']} of {r['seeds']} seeds)"
            )
    for v in versus:
        print(v)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
