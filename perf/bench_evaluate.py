"""``activepick evaluate`` at scale: metrics.summary and the whole command on many picks.

    .venv/bin/python perf/bench_evaluate.py [--n 100000 300000 1000000] [--micrographs 1000]

For each n: n ground-truth centres spread evenly over ``--micrographs`` micrographs
of 4096 x 4096 px (uniform positions, so neighbours overlap and some matches
compete), diameter 64 px, and n predictions = the truth jittered by N(0, 8 px),
10 % of them replaced by uniform false positives, confidences uniform in [0, 1]
(continuous: no two equal). Times, in seconds, single runs:

- ``summary``: ``metrics.summary`` (T_opt on 101 thresholds, evaluate at T_opt and
  0.3, the 1001-threshold PR curve), what the command computes;
- ``cli``: ``activepick evaluate --pred P.csv --truth T.csv --curve C.csv --json``
  in-process, reading both CSV files (our pick table format) and writing the curve.

Target (issue 12): 1e6 picks over 1,000 micrographs in < 30 s. The issue's
baseline: 1e5 picks 3.6 s, 3e5 24 s, 1e6 > 300 s or MemoryError. Prints a table
and writes ``perf/results/evaluate.json`` (with the load average, since the
machine may be shared).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import add_smoke_flag, machine_info, results_path, write_results

RESULTS = Path(__file__).resolve().parent / "results" / "evaluate.json"
FIELD = 4096.0
DIAMETER = 64.0


def make_tables(rng: np.random.Generator, n: int, n_mics: int):
    """(pred, truth) pick tables as described in the module docstring."""
    from activepick.io.picks import make_picks

    names = np.array([f"mic_{i:05d}" for i in range(n_mics)], dtype=object)[np.arange(n) % n_mics]
    xy = rng.uniform(DIAMETER, FIELD - DIAMETER, (n, 2))
    truth = make_picks(names, xy[:, 0], xy[:, 1], DIAMETER)
    p = xy + rng.normal(0, 8, (n, 2))
    fp = rng.random(n) < 0.1
    p[fp] = rng.uniform(DIAMETER, FIELD - DIAMETER, (int(fp.sum()), 2))
    pred = make_picks(
        names, p[:, 0], p[:, 1], DIAMETER, confidence=rng.random(n), status="predicted"
    )
    return pred, truth


def bench_one(rng: np.random.Generator, n: int, n_mics: int) -> dict:
    from activepick import metrics
    from activepick.cli import main
    from activepick.io.formats import write_coordinates

    pred, truth = make_tables(rng, n, n_mics)
    t0 = time.perf_counter()
    result = metrics.summary(pred, truth)
    summary_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        write_coordinates(pred, Path(tmp) / "pred.csv")
        write_coordinates(truth, Path(tmp) / "truth.csv")
        argv = ["evaluate", "--pred", f"{tmp}/pred.csv", "--truth", f"{tmp}/truth.csv"]
        argv += ["--curve", f"{tmp}/curve.csv", "--json"]
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            rc = main(argv)
        cli_s = time.perf_counter() - t0
    if rc != 0:
        raise SystemExit(f"activepick evaluate failed with exit code {rc}")
    return {
        "n": n,
        "micrographs": n_mics,
        "summary_s": summary_s,
        "cli_s": cli_s,
        "f1_topt": result["f1_topt"],
        "t_opt": result["t_opt"],
        "load_avg_1min": os.getloadavg()[0],
    }


def main(argv: list[str] | None = None) -> int:

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    ap.add_argument("--micrographs", type=int, default=1000)
    add_smoke_flag(ap)  # 2,000 picks on 10 micrographs
    args = ap.parse_args(argv)
    if args.smoke:
        args.n, args.micrographs = [2000], 10
    rng = np.random.default_rng(0)
    print(f"{'picks':>9}{'mics':>7}{'summary':>10}{'cli':>9}{'F1':>7}{'load':>7}   (seconds)")
    rows = []
    for n in args.n:
        row = bench_one(rng, n, args.micrographs)
        rows.append(row)
        print(
            f"{row['n']:>9}{row['micrographs']:>7}{row['summary_s']:>10.2f}{row['cli_s']:>9.2f}"
            f"{row['f1_topt']:>7.3f}{row['load_avg_1min']:>7.2f}"
        )
    out = {
        "benchmark": "evaluate",
        "field_px": FIELD,
        "diameter_px": DIAMETER,
        "target": "1e6 picks over 1000 micrographs < 30 s",
        **machine_info(),
        "rows": rows,
    }
    write_results(results_path(RESULTS, args.smoke), out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
