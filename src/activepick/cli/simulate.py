"""``activepick simulate``: synthetic micrographs with ground-truth coordinates."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._args import at_least, non_negative, positive


def register(subparsers) -> None:
    """Add the ``simulate`` subcommand."""
    p = subparsers.add_parser(
        "simulate",
        help="simulate micrographs with ground-truth particles",
        description="Simulate cryo-EM micrographs (random projections of a 3-D density, CTF, "
        "white noise at a given SNR) and write them as MRC with ground-truth coordinates "
        "(ground_truth.csv, ground_truth.star) and simulation.json.",
    )
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--n", type=at_least(1), default=10, help="micrographs (default: %(default)s)")
    p.add_argument(
        "--particles",
        type=at_least(0),
        default=40,
        help="particles per micrograph (default: %(default)s)",
    )
    p.add_argument(
        "--snr",
        type=positive,
        default=0.05,
        help="signal variance inside the particles / noise variance (default: %(default)s)",
    )
    p.add_argument(
        "--size",
        type=at_least(1),
        nargs="+",
        default=[1024],
        metavar="PX",
        help="micrograph size: one value (square) or HEIGHT WIDTH (default: 1024)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    p.add_argument(
        "--diameter",
        type=positive,
        default=64,
        help="particle diameter in px (default: %(default)s)",
    )
    p.add_argument(
        "--distractors",
        type=at_least(0),
        default=0,
        help="ice / aggregate blobs per micrograph, not in the ground truth (default: 0)",
    )
    p.add_argument(
        "--gradient",
        type=non_negative,
        default=0.0,
        help="background ramp height in noise standard deviations (default: 0)",
    )
    p.add_argument(
        "--pixel-size", type=positive, default=1.5, help="Å per pixel (default: %(default)s)"
    )
    p.add_argument("--backend", choices=("numpy", "aspire"), default="numpy")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..simulate import SimulationError, simulate_dataset

    if len(args.size) not in (1, 2):
        raise SimulationError(f"--size takes one value or HEIGHT WIDTH, got {args.size}")
    size = args.size[0] if len(args.size) == 1 else (args.size[0], args.size[1])
    with tqdm(total=args.n, unit="micrograph", desc="simulate", disable=None) as bar:
        result = simulate_dataset(
            args.out,
            n=args.n,
            particles=args.particles,
            snr=args.snr,
            size=size,
            diameter=args.diameter,
            seed=args.seed,
            distractors=args.distractors,
            gradient=args.gradient,
            pixel_size=args.pixel_size,
            backend=args.backend,
            progress=lambda _info: bar.update(1),
        )
    snrs = [m["snr_measured"] for m in result["settings"]["micrographs"]]
    print(f"wrote {len(result['micrographs'])} micrograph(s) to {args.out / 'micrographs'}")
    print(
        f"wrote {len(result['truth'])} ground-truth particle(s) to "
        f"{args.out / 'ground_truth.csv'} and {args.out / 'ground_truth.star'}"
    )
    if snrs:
        print(f"measured SNR {min(snrs):.4f} - {max(snrs):.4f} (requested {args.snr:g})")
    print(f"wrote settings to {args.out / 'simulation.json'}")
    return 0
