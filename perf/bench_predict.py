"""``activepick predict`` at scale: peak memory and throughput, in process and on Dask workers.

    .venv/bin/python perf/bench_predict.py [--files 100] [--worker-files 24] [--real 3]
        [--size 4096] [--cases new,old,w1,w2] [--baseline-src /path/to/other/src]

``--real`` float32 noise MRCs of ``--size`` px are written to a temporary folder
and ``--files`` symlinks point at them in turn. The model is an untrained light
detector (default width, input 1024 px, diameter 200 px, seed 0): speed and memory
do not depend on training, and a threshold of 0.3 keeps many candidates, so NMS
and the writing of picks are exercised too. Each case is a fresh process
(``activepick.cli.main``) so its peak RSS is its own:

- ``new``: this tree, in process (the streaming path, parts + combined output);
- ``old``: the same command with ``--baseline-src`` first on ``PYTHONPATH``
  (e.g. the main checkout, for "throughput within 10% of today");
- ``w1`` / ``w2``: ``--workers 1`` / ``--workers 2`` on ``--worker-files`` symlinks
  (one torch thread per worker); peak RSS of the client and of the largest worker.

Throughput is micrographs per second of wall time of the whole command (start-up
and model loading included). Prints a table with the load average (the machine
may be shared) and writes ``perf/results/predict.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "predict.json"
SRC = Path(__file__).resolve().parents[1] / "src"

CHILD = r"""
import json, resource, sys
from activepick.cli import main
rc = main(sys.argv[1:])
print(json.dumps({
    "rc": rc,
    "self_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "children_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
}))
"""


def run_case(src: Path, argv: list[str]) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src)}
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, *argv], capture_output=True, text=True, env=env, check=False
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{argv}: exit {proc.returncode}\n{proc.stderr[-2000:]}")
    lines = proc.stdout.strip().splitlines()
    out = json.loads(lines[-1])
    out["wall_s"] = wall
    out["summary"] = lines[-2] if len(lines) > 1 else ""
    return out


def main(argv: list[str] | None = None) -> int:
    import torch

    from activepick.detector import Detector, DetectorConfig, build_network, save_checkpoint
    from activepick.io.micrograph import write_micrograph

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=100)
    ap.add_argument("--worker-files", type=int, default=24)
    ap.add_argument("--real", type=int, default=3)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--input-size", type=int, default=1024)
    ap.add_argument("--cases", default="new,old,w1,w2")
    ap.add_argument("--baseline-src", type=Path, default=None)
    args = ap.parse_args(argv)
    cases = [c for c in args.cases.split(",") if c]
    if "old" in cases and args.baseline_src is None:
        cases.remove("old")
    rng = np.random.default_rng(0)
    rows = []
    load = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        real = [tmp / "real" / f"real_{i}.mrc" for i in range(args.real)]
        for p in real:
            write_micrograph(p, rng.standard_normal((args.size, args.size), np.float32), 1.0)
        for name, n in (("mics", args.files), ("few", args.worker_files)):
            (tmp / name).mkdir()
            for i in range(n):
                (tmp / name / f"mic_{i:05d}.mrc").symlink_to(real[i % len(real)])
        torch.manual_seed(0)
        cfg = DetectorConfig(arch="light", input_size=args.input_size, diameter=200.0)
        save_checkpoint(Detector(build_network("light"), cfg), tmp / "model.pt")
        base = ["predict", "--model", str(tmp / "model.pt"), "--device", "cpu"]
        for case in cases:
            folder = "mics" if case in ("new", "old") else "few"
            n = args.files if folder == "mics" else args.worker_files
            extra = {"w1": ["--workers", "1"], "w2": ["--workers", "2"]}.get(case, [])
            src = args.baseline_src if case == "old" else SRC
            out = tmp / f"{case}.star"
            r = run_case(
                src, base + ["--micrographs", str(tmp / folder), "--out", str(out), *extra]
            )
            load.append(os.getloadavg()[0])
            r.update(case=case, n=n, rate=n / r["wall_s"])
            rows.append(r)
            print(f"  {case}: {r['summary']}", flush=True)
    load_avg = float(np.mean(load))
    print(
        f"{args.size} px micrographs (symlinks to {args.real} files), input {args.input_size} px, "
        f"light model; load average {load_avg:.1f} on {os.cpu_count()} CPUs"
    )
    print(f"{'case':6s} {'n':>5s} {'wall s':>8s} {'mic/s':>7s} {'RSS GiB':>8s} {'worker GiB':>11s}")
    for r in rows:
        worker = r["children_mib"] / 1024 if r["case"] in ("w1", "w2") else float("nan")
        print(
            f"{r['case']:6s} {r['n']:5d} {r['wall_s']:8.1f} {r['rate']:7.3f} "
            f"{r['self_mib'] / 1024:8.2f} {worker:11.2f}"
        )
    by = {r["case"]: r for r in rows}
    if "w1" in by and "w2" in by:
        print(f"--workers 2 / --workers 1 throughput: {by['w2']['rate'] / by['w1']['rate']:.2f}x")
    if "new" in by and "old" in by:
        print(f"new / old throughput: {by['new']['rate'] / by['old']['rate']:.2f}x")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "machine": platform.platform(),
                "cpus": os.cpu_count(),
                "load_average": load_avg,
                "python": sys.version.split()[0],
                "args": {k: str(v) for k, v in vars(args).items()},
                "rows": rows,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
