"""Simulator speed: micrographs per second by size and setting, and SNR accuracy.

    .venv/bin/python perf/bench_simulate.py [--repeat 10] [--aspire]

Times ``simulate_micrograph`` (in memory) at 512 px (10 particles), 1024 and 2048 px
(40 particles), diameter 64 (1024 px: also with 10 distractors and a gradient) and
``simulate_dataset`` at 1024 px (including the MRC, CSV and STAR writes).
Reports the median time per micrograph, micrographs/s, the peak of the traced
Python/numpy memory of one micrograph, and the measured SNR (requested 0.05:
var(signal in the particle circles) / var(noise), from the known parts).
``--aspire`` adds the ASPIRE backend (needs the optional ``aspire`` package).
Prints a table and writes ``perf/results/simulate.json`` (or ``--output``).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
from _common import add_smoke_flag, results_path, write_results

RESULTS = Path(__file__).resolve().parent / "results" / "simulate.json"


def time_micrograph(size: int, repeat: int, **kw) -> dict:
    """Median seconds per in-memory micrograph, peak traced memory, measured SNR."""
    from activepick.simulate import render_micrograph

    rng = np.random.default_rng(0)
    render_micrograph(rng, size=size, **kw)  # warm-up (imports, FFT plans, caches)
    times, snrs = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        sim = render_micrograph(rng, size=size, **kw)
        times.append(time.perf_counter() - t0)
        snrs.append(sim.snr)
    tracemalloc.start()
    render_micrograph(rng, size=size, **kw)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {
        "median_s": statistics.median(times),
        "min_s": min(times),
        "peak_mb": peak / 2**20,
        "snr_min": min(snrs),
        "snr_max": max(snrs),
    }


def time_dataset(size: int, n: int, backend: str = "numpy", **kw) -> dict:
    """Seconds per micrograph of ``simulate_dataset`` (files included)."""
    from activepick.simulate import simulate_dataset

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        res = simulate_dataset(Path(tmp) / "d", n=n, size=size, backend=backend, **kw)
        total = time.perf_counter() - t0
    snrs = [m["snr_measured"] for m in res["settings"]["micrographs"]]
    return {
        "median_s": total / n,
        "min_s": total / n,
        "peak_mb": float("nan"),
        "snr_min": min(snrs),
        "snr_max": max(snrs),
    }


def snr_from_image(count: int, snr: float = 0.05) -> dict:
    """Estimate the SNR from the noisy image alone: (var inside - var far) / var far.

    "Inside" is the particle circles (radius = diameter / 2), "far" the pixels more
    than 1.25 diameters from every centre (clear of the CTF fringes). Independent
    of the simulator's own bookkeeping; 1024 px, 40 particles of diameter 64.
    """
    from activepick.simulate import particle_mask, render_micrograph

    rng = np.random.default_rng(123)
    estimates = []
    for _ in range(count):
        sim = render_micrograph(rng, size=1024, n_particles=40, diameter=64, snr=snr)
        img = sim.image.astype(np.float64)
        inside = particle_mask(img.shape, sim.centres, 64)
        far = ~particle_mask(img.shape, sim.centres, 160)
        estimates.append((np.var(img[inside]) - np.var(img[far])) / np.var(img[far]))
    return {
        "requested": snr,
        "count": count,
        "mean": float(np.mean(estimates)),
        "std": float(np.std(estimates)),
        "max_relative_error": float(np.max(np.abs(np.array(estimates) / snr - 1))),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--aspire", action="store_true", help="also time the ASPIRE backend")
    ap.add_argument("--output", type=Path, default=RESULTS, help="JSON file (default: %(default)s)")
    add_smoke_flag(ap)  # the first case, once
    args = ap.parse_args(argv)
    if args.smoke:
        args.repeat = 1
    base = {"n_particles": 40, "diameter": 64, "snr": 0.05}
    cases = [
        (
            "micrograph 512 px, 10 particles",
            lambda: time_micrograph(512, args.repeat, **{**base, "n_particles": 10}),
        ),
        ("micrograph 1024 px, 40 particles", lambda: time_micrograph(1024, args.repeat, **base)),
        (
            "micrograph 1024 px, + 10 distractors, gradient",
            lambda: time_micrograph(1024, args.repeat, distractors=10, gradient=2, **base),
        ),
        ("micrograph 2048 px, 40 particles", lambda: time_micrograph(2048, args.repeat, **base)),
        (
            "simulate_dataset 1024 px (with files)",
            lambda: time_dataset(1024, args.repeat, particles=40, diameter=64, snr=0.05),
        ),
    ]
    if args.smoke:
        cases = cases[:1]
    if args.aspire:
        cases.append(
            (
                "simulate_dataset 1024 px, ASPIRE backend",
                lambda: time_dataset(
                    1024, 2, backend="aspire", particles=40, diameter=64, snr=0.05
                ),
            )
        )
    load0 = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    rows = []
    for name, fn in cases:
        r = fn()
        r["case"] = name
        r["per_s"] = 1.0 / r["median_s"]
        rows.append(r)
        print(
            f"{name:48s} {r['median_s'] * 1e3:8.1f} ms  {r['per_s']:6.2f}/s  "
            f"peak {r['peak_mb']:6.1f} MB  SNR {r['snr_min']:.4f}-{r['snr_max']:.4f}",
            flush=True,
        )
    check = snr_from_image(args.repeat * 2)
    print(
        f"SNR from the image alone (requested {check['requested']}): mean {check['mean']:.4f}, "
        f"sd {check['std']:.4f} over {check['count']} micrographs, "
        f"max relative error {check['max_relative_error']:.1%}"
    )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    record = {
        "snr_from_image": check,
        "benchmark": "simulate",
        "repeat": args.repeat,
        "cpu_count": os.cpu_count(),
        "load_average_1min_at_end": load,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "load_average_1min_at_start": load0,
        "rows": rows,
    }

    write_results(results_path(args.output, args.smoke), record)
    print(f"load average (1 min) {load:.2f} on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
