"""Opening a large folder of micrographs in napari lazily: time, peak memory, slider moves.

    .venv/bin/python perf/bench_open.py [--files 2000] [--real 3] [--size 4096] [--moves 20]
                                        [--filter 20 [10 ...]]

``--real`` float32 noise MRCs of ``--size`` px (pixel size 1 Å) are written to a
temporary folder and ``--files`` symlinks point at them in turn (disk use: ``--real``
files only). Each case runs in a fresh Python process so its peak RSS is its own:

- ``open folder (napari)``: a headless ``napari.components.ViewerModel`` opens the
  folder through this plugin's reader (``viewer.open(folder, plugin=...)``), which
  lists the folder, reads every header, builds the lazy (multiscale) stack and
  loads the slice shown; time and peak RSS of the process.
- ``slider move``: ``viewer.dims.set_current_step(0, k)`` to ``--moves`` random
  micrographs, then reading that micrograph's full-size slice of the layer shown
  (what zooming in shows); mean, median and worst time per move. ``at the default
  zoom`` is the ``set_current_step`` part alone (napari loads the coarsest level).

``--filter`` (cut-offs in Å) adds, after the plain case, one with automatic contrast
only and one per cut-off with the display low-pass and automatic contrast, as the
dock widget's *Display* section sets them (``plugin._display.MicrographDisplay``): a
move then also filters the micrograph's coarsest level and sets the contrast limits,
and the full-size slice read is the filtered layer's finest level.

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
from _common import machine_info, write_results

RESULTS = Path(__file__).resolve().parent / "results" / "open.json"

CHILD = r"""
import json, resource, sys, time
import numpy as np
folder, moves, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
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
shown = layer
if mode != "plain":  # the dock widget's Display section, without its Qt controls
    from activepick.plugin._display import MicrographDisplay
    display = MicrographDisplay(viewer)
    display.auto_contrast = True
    display.attach(layer, layer.metadata["lazy_stack"].pixel_size)
    if mode != "contrast":
        display.set_cutoff(float(mode) / display.pixel_size)
    shown = display.shown_layer
rng = np.random.default_rng(0)
times = []
full = shown.data[0] if shown.multiscale else shown.data
view_times = []
for k in rng.integers(0, n, moves):
    t0 = time.perf_counter()
    viewer.dims.set_current_step(0, int(k))
    view_times.append(time.perf_counter() - t0)
    np.asarray(full[int(k)])
    times.append(time.perf_counter() - t0)
stack = layer.metadata["lazy_stack"]
print(json.dumps({
    "import_s": t_import, "open_s": t_open, "n": n, "levels": len(layer.data) if layer.multiscale else 1,
    "move_mean_s": float(np.mean(times)), "move_max_s": float(np.max(times)),
    "move_median_s": float(np.median(times)), "move_times_s": times,
    "view_median_s": float(np.median(view_times)), "view_max_s": float(np.max(view_times)),
    "shown_shape": list(full.shape), "shown_levels": len(shown.data) if shown.multiscale else 1,
    "reads": stack.reads, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
"""


def _case(folder: Path, moves: int, mode: str) -> dict | None:
    """One child process: ``mode`` is ``plain``, ``contrast`` or a cut-off in Å."""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(folder), str(moves), mode],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        print(proc.stderr, file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    from activepick.io.micrograph import write_micrograph

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--real", type=int, default=3)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--moves", type=int, default=20)
    ap.add_argument(
        "--filter",
        type=float,
        nargs="*",
        default=[],
        metavar="A",
        help="display low-pass cut-offs (Å, at 1 Å/px) to measure besides the plain slider",
    )
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    modes = ["plain"] + (["contrast"] + [f"{a:g}" for a in args.filter] if args.filter else [])
    results: dict[str, dict] = {}
    loads = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        real = [tmp / "real" / f"real_{i}.mrc" for i in range(args.real)]
        for p in real:
            write_micrograph(p, rng.standard_normal((args.size, args.size), np.float32), 1.0)
        folder = tmp / "mics"
        folder.mkdir()
        for i in range(args.files):
            (folder / f"mic_{i:05d}.mrc").symlink_to(real[i % len(real)])
        for mode in modes:
            load_before = os.getloadavg()[0]
            r = _case(folder, args.moves, mode)
            if r is None:
                return 1
            loads.append((load_before + os.getloadavg()[0]) / 2)
            results[mode] = r
    load = float(np.mean(loads))
    r = results["plain"]
    rows = [
        ("open folder (napari)", f"{r['open_s']:.2f} s", "< 10 s"),
        ("peak RSS of the process", f"{r['peak_rss_mib'] / 1024:.2f} GiB", "< 1.5 GiB"),
        ("slider move, mean", f"{r['move_mean_s']:.3f} s", "< 0.5 s"),
        ("slider move, median", f"{r['move_median_s']:.3f} s", "< 0.5 s"),
        ("slider move, worst", f"{r['move_max_s']:.3f} s", "< 0.5 s"),
        ("  at the default zoom: median", f"{r['view_median_s']:.3f} s", ""),
        ("  at the default zoom: worst", f"{r['view_max_s']:.3f} s", ""),
        ("micrographs decoded", f"{r['reads']}", f"<= {args.moves + 2} (moves + contrast + first)"),
    ]
    for mode in modes[1:]:
        f = results[mode]
        what = "auto contrast" if mode == "contrast" else f"low-pass {mode} Å + contrast"
        rows += [
            (f"{what}: median", f"{f['move_median_s']:.3f} s", "< 0.5 s"),
            (f"{what}: worst", f"{f['move_max_s']:.3f} s", "< 0.5 s"),
            ("  at the default zoom: median", f"{f['view_median_s']:.3f} s", ""),
            ("  at the default zoom: worst", f"{f['view_max_s']:.3f} s", ""),
            (f"{what}: peak RSS", f"{f['peak_rss_mib'] / 1024:.2f} GiB", "< 1.5 GiB"),
        ]
    print(
        f"{args.files} micrographs of {args.size} px (symlinks to {args.real} files), "
        f"{r['levels']} level(s); load average {load:.1f} on {os.cpu_count()} CPUs"
    )
    print(f"{'measure':36s} {'value':>12s}  target")
    for name, value, target in rows:
        print(f"{name:36s} {value:>12s}  {target}")
    write_results(
        RESULTS,
        {
            **machine_info(),
            "load_average": load,
            "args": vars(args),
            "result": r,
            "display": {mode: results[mode] for mode in modes[1:]},
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
