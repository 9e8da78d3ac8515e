"""Micrograph and coordinate I/O speed: header shapes vs full reads, format read / write, extraction.

    .venv/bin/python perf/bench_io.py [--files 20] [--size 1024] [--picks 100000]

Micrographs are float32 noise MRCs written to a temporary folder; picks are
uniform random centres spread over ``--picks / 100`` micrographs. Prints a table
and writes ``perf/results/io.json``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import add_smoke_flag, machine_info, results_path, write_results

RESULTS = Path(__file__).resolve().parent / "results" / "io.json"


def timed(fn, repeat: int = 1) -> float:
    """Best wall time in seconds of ``repeat`` calls."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv: list[str] | None = None) -> int:
    from activepick.io.formats import read_coordinates, write_coordinates
    from activepick.io.micrograph import (
        list_micrographs,
        micrograph_shapes,
        read_micrograph,
        write_micrograph,
    )
    from activepick.io.picks import make_picks
    from activepick.io.stack import extract_particles

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=20)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--picks", type=int, default=100_000)
    add_smoke_flag(ap)  # 2 files of 256 px, 1,000 picks
    args = ap.parse_args(argv)
    if args.smoke:
        args.files, args.size, args.picks = 2, 256, 1000
    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        mics = tmp / "mics"
        for i in range(args.files):
            write_micrograph(
                mics / f"mic_{i:04d}.mrc", rng.standard_normal((args.size, args.size), np.float32)
            )
        paths = list_micrographs(mics)
        t = timed(lambda: micrograph_shapes(paths), 3)
        rows.append(("read_shape (header only)", args.files, t, 1e3 * t / args.files, "ms/file"))
        t = timed(lambda: [read_micrograph(p) for p in paths], 1)
        rows.append(
            (
                f"read_micrograph {args.size}^2 float32",
                args.files,
                t,
                1e3 * t / args.files,
                "ms/file",
            )
        )

        n_mics = max(1, args.picks // 100)
        names = np.array([f"mic_{i:04d}" for i in range(n_mics)])
        picks = make_picks(
            names[rng.integers(0, n_mics, args.picks)],
            rng.uniform(100, 3900, args.picks),
            rng.uniform(100, 3900, args.picks),
            128.0,
            confidence=rng.uniform(0, 1, args.picks),
        )
        shapes = {n: (4096, 4096) for n in names}
        for fmt, target in [
            ("csv", "p.csv"),
            ("star", "p.star"),
            ("topaz", "p.txt"),
            ("cs", "p.cs"),
            ("relion", "relion"),
            ("cbox", "cbox"),
            ("box", "box"),
        ]:
            out = tmp / target
            tw = timed(
                lambda fmt=fmt, out=out: write_coordinates(picks, out, fmt, shapes=shapes), 1
            )
            tr = timed(
                lambda fmt=fmt, out=out: read_coordinates(
                    out, fmt if fmt == "relion" else None, diameter=128.0
                ),
                1,
            )
            rows.append((f"write {fmt}", args.picks, tw, 1e6 * tw / args.picks, "us/pick"))
            rows.append((f"read {fmt}", args.picks, tr, 1e6 * tr / args.picks, "us/pick"))

        per_mic = 200
        stack_picks = make_picks(
            np.repeat([p.stem for p in paths], per_mic),
            rng.uniform(70, args.size - 70, per_mic * len(paths)),
            rng.uniform(70, args.size - 70, per_mic * len(paths)),
            128.0,
        )
        t = timed(
            lambda: extract_particles(paths, stack_picks, 128, tmp / "p.mrcs", tmp / "p.star"), 1
        )
        rows.append(
            (
                "extract_particles box 128",
                len(stack_picks),
                t,
                1e3 * t / len(stack_picks),
                "ms/particle",
            )
        )

    print(f"{'case':38s} {'n':>8s} {'total s':>9s} {'per item':>10s}")
    for name, n, total, per, unit in rows:
        print(f"{name:38s} {n:8d} {total:9.3f} {per:10.3f} {unit}")
    write_results(
        results_path(RESULTS, args.smoke),
        {
            **machine_info(),
            "args": vars(args),
            "rows": [
                dict(zip(("case", "n", "total_s", "per_item", "unit"), r, strict=True))
                for r in rows
            ],
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
