"""Start-up cost of the command line: ``activepick --help`` wall time and peak memory.

    .venv/bin/python perf/bench_cli_startup.py [--repeat 7]

Runs ``python -m activepick --help`` (a fresh interpreter each time, as a user's
shell does) ``--repeat`` times and reports the fastest and the median wall time
and the peak resident memory of the children; ``python -c pass`` is measured the
same way as the floor. Target (issue 12): < 0.5 s (it was 3.3 s and 330 MB when
the parser imported torch, napari and pandas). Prints a table and writes
``perf/results/cli_startup.json`` with the load average.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import add_smoke_flag, machine_info, results_path, write_results

RESULTS = Path(__file__).resolve().parent / "results" / "cli_startup.json"


def measure(argv: list[str], repeat: int) -> dict:
    """Wall times of ``repeat`` runs of ``argv`` and the children's peak RSS (MB)."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True)
        times.append(time.perf_counter() - t0)
    return {"min_s": min(times), "median_s": statistics.median(times), "runs": times}


def main(argv: list[str] | None = None) -> int:

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    add_smoke_flag(ap)  # one run of each
    args = ap.parse_args(argv)
    if args.smoke:
        args.repeat = 1
    floor = measure([sys.executable, "-c", "pass"], args.repeat)
    rss_floor = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    help_ = measure([sys.executable, "-m", "activepick", "--help"], args.repeat)
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    load = os.getloadavg()[0]
    print(f"{'command':<26}{'min s':>8}{'median s':>10}{'peak MB':>9}")
    print(
        f"{'python -c pass':<26}{floor['min_s']:>8.3f}{floor['median_s']:>10.3f}{rss_floor:>9.0f}"
    )
    print(f"{'activepick --help':<26}{help_['min_s']:>8.3f}{help_['median_s']:>10.3f}{rss:>9.0f}")
    print(f"load average (1 min): {load:.2f} on {os.cpu_count()} CPUs")
    out = {
        "benchmark": "cli_startup",
        "target": "activepick --help < 0.5 s",
        "python_pass": floor,
        "help": help_,
        "help_peak_rss_mb": rss,
        "load_avg_1min": load,
        **machine_info(),
    }
    write_results(results_path(RESULTS, args.smoke), out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
