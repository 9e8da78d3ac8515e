"""``activepick benchmark``: compare active-learning strategies (SPEC section 6)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..errors import ActivePickError


def _int_list(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of ints: {text!r}") from None


def _actions(text: str | None) -> list[str] | None:
    if text is None or text.strip() in ("", "none"):
        return None
    return [a.strip() for a in text.split(",") if a.strip()]


def _split_sizes(counts: list[int] | None) -> dict[str, int]:
    if counts is None:
        return {}
    if len(counts) != 3 or min(counts) < 1:
        raise ActivePickError(
            f"--micrographs needs three positive counts TRAIN,VAL,TEST, not {counts}"
        )
    return dict(zip(("n_train", "n_val", "n_test"), counts, strict=True))


def register(subparsers) -> None:
    """Add the ``benchmark`` subcommand."""
    p = subparsers.add_parser(
        "benchmark",
        help="compare active-learning strategies on simulated or labelled data",
        description=(
            "Active-learning benchmark: initial labels = a seeded random fraction of the "
            "training particles (the same for every strategy at a seed), then per round "
            "train -> T_opt on validation -> test metrics -> the strategy queues predictions "
            "and an oracle reviews them: until K = add x N new particle labels (quick, "
            "thesis) or one batch of --review-k queries (hitl). Writes rounds.csv/json, "
            "runs.csv, paired_tests.csv, learning curves against labels and reviews, the "
            "distinct-particle matrix, summary.json and report.md to --out; each run is a "
            "session under --out/runs, so a stopped benchmark resumes."
        ),
    )
    p.add_argument(
        "--preset",
        choices=("quick", "thesis", "hitl"),
        default="quick",
        help="quick: CPU-sized synthetic protocol; thesis: the full thesis protocol (GPU); "
        "hitl: reviews-budget product benchmark, mixed-difficulty pool, 6 paired seeds",
    )
    p.add_argument(
        "--strategies",
        default="all",
        help="'all' (the preset's strategies; every strategy for quick / thesis) or "
        "comma-separated strategy names",
    )
    p.add_argument(
        "--seeds",
        type=_int_list,
        default=None,
        help="comma-separated seeds (default 0,1,2; hitl 0-5)",
    )
    p.add_argument(
        "--data",
        type=Path,
        default=None,
        help="folder: micrographs (with --truth) or train/val/test simulated folders",
    )
    p.add_argument(
        "--truth",
        type=Path,
        default=None,
        help="ground-truth coordinates of --data (file or folder; CryoPPP CSV, STAR, ...)",
    )
    p.add_argument("--diameter", type=float, default=None, help="particle diameter in px")
    p.add_argument(
        "--setting",
        choices=("i5-a8.75", "i15-a7.5", "i25-a6.25"),
        default=None,
        help="thesis real-data setting (initial / added fractions, tau 0.3)",
    )
    p.add_argument("--out", type=Path, default=Path("benchmark_out"), help="output folder")
    p.add_argument("--initial", type=float, default=None, help="initial label fraction")
    p.add_argument("--add", type=float, default=None, help="fraction of labels added per round")
    p.add_argument("--iterations", type=int, default=None, help="trained rounds")
    p.add_argument("--epochs", type=int, default=None, help="epochs per round")
    p.add_argument(
        "--review-k", type=int, default=None, help="queries per round (hitl's review budget)"
    )
    p.add_argument(
        "--train-steps",
        type=int,
        default=None,
        help="fine-tuning steps per round from the general model (hitl)",
    )
    p.add_argument("--tau", type=float, default=None, help="oracle IoU threshold")
    p.add_argument("--oracle", choices=("optimal", "first"), default=None)
    p.add_argument(
        "--partial",
        choices=("off", "on", "both"),
        default=None,
        help="partial-label training (supervise reviewed regions only)",
    )
    p.add_argument(
        "--warm-start",
        action="store_true",
        default=None,
        help="initialise each round from the previous model",
    )
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None)
    p.add_argument(
        "--review-actions",
        default=None,
        metavar="ACTIONS",
        help="hitl: cheaper actions of the simulated person, comma-separated: complete "
        "(mark a micrograph's reviewed neighbourhoods complete), bulk (confirm its "
        "confident picks at once); 'none' (default) reviews pick by pick",
    )
    p.add_argument(
        "--split",
        type=Path,
        default=None,
        help='real data: JSON {"train": [...], "test": [...]} of micrograph names '
        "(optional val; else 15%% of train validate)",
    )
    p.add_argument(
        "--tile",
        type=int,
        default=None,
        metavar="PX",
        help="real data: cut each micrograph into PX x PX tiles (each keeps its "
        "micrograph's split); a training step then costs a tile, not a micrograph",
    )
    sim = p.add_argument_group("overrides of the preset (synthetic data and detector)")
    sim.add_argument(
        "--micrographs",
        type=_int_list,
        default=None,
        metavar="TRAIN,VAL,TEST",
        help="simulated micrographs per split",
    )
    sim.add_argument("--size", type=int, default=None, help="simulated micrograph size (px)")
    sim.add_argument("--particles", type=int, default=None, help="particles per micrograph")
    sim.add_argument("--snr", type=float, default=None, help="simulated SNR")
    sim.add_argument(
        "--decoys",
        type=int,
        default=None,
        metavar="MAX",
        help="hitl: decoy particles (not to be picked) per micrograph, uniform 0..MAX",
    )
    sim.add_argument("--arch", choices=("light", "full"), default=None, help="network")
    sim.add_argument("--input-size", type=int, default=None, help="network input long side (px)")
    p.add_argument(
        "--resume",
        dest="resume",
        action="store_true",
        default=True,
        help="skip rounds already in --out/state.json (default)",
    )
    p.add_argument(
        "--no-resume",
        dest="resume",
        action="store_false",
        help="start again, discarding --out/state.json",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the benchmark and print the final-round table."""
    from ..active.benchmark import benchmark_settings, run_benchmark

    strategies = (
        None
        if args.strategies == "all"
        else [s.strip() for s in args.strategies.split(",") if s.strip()]
    )
    settings = benchmark_settings(
        args.preset,
        strategies=strategies,
        seeds=args.seeds,
        data=args.data,
        truth=args.truth,
        diameter=args.diameter,
        setting=args.setting,
        initial=args.initial,
        add=args.add,
        iterations=args.iterations,
        epochs=args.epochs,
        review_k=args.review_k,
        train_steps=args.train_steps,
        tau=args.tau,
        oracle=args.oracle,
        partial=args.partial,
        warm_start=args.warm_start,
        device=args.device,
        size=args.size,
        particles=args.particles,
        snr=args.snr,
        decoys_max=args.decoys,
        arch=args.arch,
        input_size=args.input_size,
        review_actions=_actions(args.review_actions),
        split=args.split,
        tile=args.tile,
        **_split_sizes(args.micrographs),
    )
    if args.truth is not None and settings.get("diameter") is None:
        raise ActivePickError("--truth needs --diameter (px) unless the coordinates carry one")
    t0 = time.perf_counter()

    def progress(info: dict) -> None:
        stage = info.get("stage", "")
        if stage in ("train", "review", "simulate"):
            where = " ".join(
                f"{k}={info[k]}"
                for k in ("strategy", "seed", "round", "split", "added", "reviews")
                if k in info
            )
            print(f"[{time.perf_counter() - t0:7.1f} s] {stage:8s} {where}", file=sys.stderr)

    if args.truth is not None:
        from ..active.benchmark import prepare_data

        prepare_data(settings, args.out)  # checks the data; sets the automatic input size
        keys = ("arch", "diameter", "input_size", "epochs", "batch_size", "lr", "tau")
        used = " ".join(f"{k}={settings[k]}" for k in keys)
        print(f"benchmark settings ({args.out / 'benchmark.json'}): {used}")
    summary = run_benchmark(settings, args.out, progress=progress, resume=args.resume)
    print(f"benchmark: {summary['rows']} rows in {args.out} ({summary['wall_s']:.0f} s)")
    for rec in summary["final_round_mean"]:
        print(
            f"  {rec['strategy']:20s} partial={str(bool(rec['partial'])):5s} "
            f"labels={rec['labels']:.0f} reviews={rec['reviews']:.0f} "
            f"F1@Topt={rec['f1_topt']:.3f} PR-AUC={rec['pr_auc']:.3f}"
        )
    for t in summary["paired_tests"]:
        if t["area"] == "area_pr_auc_reviews" and t["p"] is not None:
            print(
                f"  {t['a']} vs {t['b']}: area of PR-AUC vs reviews {t['mean_diff']:+.4f}, "
                f"p = {t['p']:.3f} (Wilcoxon, {t['seeds']} paired seeds)"
            )
    print(f"  report: {args.out / 'report.md'}")
    return 0
