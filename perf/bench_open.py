"""Opening a large folder of micrographs in napari lazily: time, peak memory, slider moves.

    .venv/bin/python perf/bench_open.py [--files 2000] [--real 3] [--size 4096] [--moves 20]

``--real`` float32 noise MRCs of ``--size`` px are written to a temporary folder
and ``--files`` symlinks point at them in turn (disk use: ``--real`` files only).
Each case runs in a fresh Python process so its peak RSS is its own:

- ``open folder (napari)``: a headless ``napari.components.ViewerModel`` opens the
  folder through this plugin's reader (``viewer.open(folder, plugin=...)``), which
  lists the folder, reads every header, builds the lazy (multiscale) stack and
  loads the slice shown; time and peak RSS of the process.
- ``slider move``: ``viewer.dims.set_current_step(0, k)`` to ``--moves`` random
  micrographs, then reading that micrograph's full-size slice (what zooming in
  shows); mean and worst time per move.

Prints a table (with the load average, since the machine may be shared) and
writes ``perf/results/open.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from _common import add_smoke_flag, machine_info, results_path, write_results

RESULTS = Path(__file__).resolve().parent / "results" / "open.json"

CHILD = r"""
import json, resource, sys, time
import numpy as np
folder, moves = sys.argv[1], int(sys.argv[2])
t0 = time.perf_counter()
from napari.components import ViewerModel
from napari.plugins import _initialize_plugins
_initialize_plugins()
t_import = time.perf_counter() - t0
viewer = ViewerModel()
t0 = time.perf_counter()
(layer,) = viewer.open(folder, plugin="napari-activepick")
t_open = time.perf_counter() - t0
n = int(layer.data[0].shape[0] if layer.multiscale else layer.data.shape[0])
rng = np.random.default_rng(0)
times = []
full = layer.data[0] if layer.multiscale else layer.data
for k in rng.integers(0, n, moves):
    t0 = time.perf_counter()
    viewer.dims.set_current_step(0, int(k))
    np.asarray(full[int(k)])
    times.append(time.perf_counter() - t0)
stack = layer.metadata["lazy_stack"]
print(json.dumps({
    "import_s": t_import, "open_s": t_open, "n": n, "levels": len(layer.data) if layer.multiscale else 1,
    "move_mean_s": float(np.mean(times)), "move_max_s": float(np.max(times)),
    "move_median_s": float(np.median(times)), "move_times_s": times,
    "reads": stack.reads, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
"""


def main(argv: list[str] | None = None) -> int:
    from activepick.io.micrograph import write_micrograph

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--real", type=int, default=3)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--moves", type=int, default=20)
    add_smoke_flag(ap)  # 10 micrographs of 256 px, 2 moves
    args = ap.parse_args(argv)
    if args.smoke:
        args.files, args.real, args.size, args.moves = 10, 1, 256, 2
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        real = [tmp / "real" / f"real_{i}.mrc" for i in range(args.real)]
        for p in real:
            write_micrograph(p, rng.standard_normal((args.size, args.size), np.float32), 1.0)
        folder = tmp / "mics"
        folder.mkdir()
        for i in range(args.files):
            (folder / f"mic_{i:05d}.mrc").symlink_to(real[i % len(real)])
        load_before = os.getloadavg()[0]
        env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, str(folder), str(args.moves)],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            return 1
        r = json.loads(proc.stdout.strip().splitlines()[-1])
    load = (load_before + os.getloadavg()[0]) / 2
    rows = [
        ("open folder (napari)", f"{r['open_s']:.2f} s", "< 10 s"),
        ("peak RSS of the process", f"{r['peak_rss_mib'] / 1024:.2f} GiB", "< 1.5 GiB"),
        ("slider move, mean", f"{r['move_mean_s']:.3f} s", "< 0.5 s"),
        ("slider move, median", f"{r['move_median_s']:.3f} s", "< 0.5 s"),
        ("slider move, worst", f"{r['move_max_s']:.3f} s", "< 0.5 s"),
        ("micrographs decoded", f"{r['reads']}", f"<= {args.moves + 2} (moves + contrast + first)"),
    ]
    print(
        f"{args.files} micrographs of {args.size} px (symlinks to {args.real} files), "
        f"{r['levels']} level(s); load average {load:.1f} on {os.cpu_count()} CPUs"
    )
    print(f"{'measure':28s} {'value':>12s}  target")
    for name, value, target in rows:
        print(f"{name:28s} {value:>12s}  {target}")
    write_results(
        results_path(RESULTS, args.smoke),
        {
            **machine_info(),
            "load_average": load,
            "args": vars(args),
            "result": r,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
