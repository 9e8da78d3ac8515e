"""``activepick predict`` at scale: peak memory, throughput and CPU, in process and on Dask.

    .venv/bin/python perf/bench_predict.py [--files 100] [--real 3] [--size 4096]
        [--cases new,old,w1,w2] [--repeat 1] [--baseline-src /path/to/other/src]

``--real`` float32 noise MRCs of ``--size`` px are written to a temporary folder
and ``--files`` symlinks point at them in turn. The model is an untrained light
detector (default width, input 1024 px, diameter 200 px, seed 0): speed and memory
do not depend on training, and a threshold of 0.3 keeps many candidates, so NMS
and the writing of picks are exercised too. Each case is a fresh process
(``activepick.cli.main``) so its peak RSS is its own:

- ``new``: this tree, in process (the streaming path, parts + combined output);
- ``old``: the same command with ``--baseline-src`` first on ``PYTHONPATH``
  (e.g. the main checkout, for "as fast as today");
- ``w1`` / ``w2``: ``--workers 1`` / ``--workers 2`` (one torch thread per worker);
  peak RSS of the client and of the largest worker.

While a case runs, the part files and the CPU seconds of the command and of its
child processes (the Dask workers) are sampled from ``/proc`` every 0.1 s, which
splits the command into three phases: *start* (until the first part file: imports,
model, workers starting and loading the model), *steady* (first to last part:
throughput = parts / seconds, and CPU ms per micrograph of the client and of the
workers) and *end* (combined output written). ``whole`` is micrographs per second
of wall time of the whole command. Every case runs with ``--keep-parts``; its parts
(the ``time`` column left out) and its combined STAR file (the header's timestamp
left out) are compared with those of the first case: ``same`` says whether they
are byte for byte identical. ``--repeat`` runs the cases that many times, in turn;
the table shows the median and the worst of each figure. Prints the load average
next to each run (the machine may be shared) and writes ``perf/results/predict.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import add_smoke_flag, machine_info, results_path, write_results

RESULTS = Path(__file__).resolve().parent / "results" / "predict.json"
SRC = Path(__file__).resolve().parents[1] / "src"
POLL_S = 0.1
TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

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


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds user + system) of ``pid`` from /proc, None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK


def _tree(root: int) -> set[int]:
    """``root`` and every process descending from it."""
    parent = {}
    for d in os.listdir("/proc"):
        if d.isdigit() and (st := _stat(int(d))) is not None:
            parent[int(d)] = st[0]
    tree, grew = {root}, True
    while grew:
        new = {p for p, pp in parent.items() if pp in tree and p not in tree}
        tree |= new
        grew = bool(new)
    return tree


def _n_parts(parts: Path) -> int:
    try:
        return sum(1 for n in os.listdir(parts) if n.endswith(".csv") and not n.startswith("."))
    except OSError:
        return 0


def run_case(src: Path, argv: list[str], parts: Path, n: int, log: Path) -> dict:
    """Run the command; its result line, peak RSS and the phases from /proc samples."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    t0 = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, *argv], stdout=out, stderr=subprocess.STDOUT, env=env
        )
        cpu: dict[int, float] = {}
        samples = []  # (seconds, parts, client CPU s, children CPU s)
        tree, scanned = {proc.pid}, 0.0
        while proc.poll() is None:
            now = time.perf_counter() - t0
            if now - scanned > 1.0:
                tree, scanned = tree | _tree(proc.pid), now
            for pid in tree:
                if (st := _stat(pid)) is not None:
                    cpu[pid] = st[1]
            client = cpu.get(proc.pid, 0.0)
            samples.append((now, _n_parts(parts), client, sum(cpu.values()) - client))
            time.sleep(POLL_S)
    wall = time.perf_counter() - t0
    lines = log.read_text().strip().splitlines()
    if proc.returncode != 0:
        raise RuntimeError(f"{argv}: exit {proc.returncode}\n" + "\n".join(lines[-30:]))
    out = json.loads(lines[-1])
    out.update(wall_s=wall, summary=lines[-2] if len(lines) > 1 else "", n=n, whole=n / wall)
    first = next(s for s in samples if s[1] >= 1)
    last = next((s for s in samples if s[1] >= n), samples[-1])
    steady_n, steady_s = last[1] - first[1], last[0] - first[0]
    out.update(
        start_s=first[0],
        steady=steady_n / steady_s if steady_s > 0 else float("nan"),
        end_s=wall - last[0],
        start_cpu_client_s=first[2],
        start_cpu_workers_s=first[3],
        steady_cpu_client_ms=1000 * (last[2] - first[2]) / max(steady_n, 1),
        steady_cpu_workers_ms=1000 * (last[3] - first[3]) / max(steady_n, 1),
    )
    return out


def fingerprint(out: Path, parts: Path) -> str:
    """Digest of the parts (without the wall-clock ``time`` column) and of the combined
    STAR file (without its timestamped first line)."""
    import pandas as pd

    h = hashlib.sha256()
    for p in sorted(parts.glob("*.csv")):
        table = pd.read_csv(p, dtype=str, keep_default_na=False)
        h.update(p.name.encode())
        h.update(table.drop(columns=["time"]).to_csv(index=False).encode())
    text = out.read_text().splitlines(keepends=True)
    h.update("".join(line for line in text if not line.startswith("# Created")).encode())
    return h.hexdigest()


FIELDS = ("start_s", "steady", "end_s", "wall_s", "whole")


def main(argv: list[str] | None = None) -> int:
    import torch

    from activepick.detector import Detector, DetectorConfig, build_network, save_checkpoint
    from activepick.io.micrograph import write_micrograph

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=100)
    ap.add_argument("--real", type=int, default=3)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--input-size", type=int, default=1024)
    ap.add_argument("--cases", default="new,old,w1,w2")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--baseline-src", type=Path, default=None)
    add_smoke_flag(ap)  # in process only: 2 micrographs of 256 px, input 64
    args = ap.parse_args(argv)
    if args.smoke:
        args.files, args.real, args.size, args.input_size, args.cases = 2, 1, 256, 64, "new"
    cases = [c for c in args.cases.split(",") if c]
    if "old" in cases and args.baseline_src is None:
        cases.remove("old")
    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        real = [tmp / "real" / f"real_{i}.mrc" for i in range(args.real)]
        for p in real:
            write_micrograph(p, rng.standard_normal((args.size, args.size), np.float32), 1.0)
        (tmp / "mics").mkdir()
        for i in range(args.files):
            (tmp / "mics" / f"mic_{i:05d}.mrc").symlink_to(real[i % len(real)])
        torch.manual_seed(0)
        cfg = DetectorConfig(arch="light", input_size=args.input_size, diameter=200.0)
        save_checkpoint(Detector(build_network("light"), cfg), tmp / "model.pt")
        base = ["predict", "--model", str(tmp / "model.pt"), "--device", "cpu", "--keep-parts"]
        reference = None
        for rep in range(args.repeat):
            for case in cases:
                extra = {"w1": ["--workers", "1"], "w2": ["--workers", "2"]}.get(case, [])
                src = args.baseline_src if case == "old" else SRC
                out = tmp / f"{case}_{rep}.star"
                parts = out.with_name(out.name + ".parts")
                load_before = os.getloadavg()[0]
                argv_ = base + ["--micrographs", str(tmp / "mics"), "--out", str(out), *extra]
                r = run_case(src, argv_, parts, args.files, tmp / "log.txt")
                r.update(case=case, repeat=rep, load_average=(load_before + os.getloadavg()[0]) / 2)
                digest = fingerprint(out, parts)
                reference = reference or digest
                r["same"] = digest == reference
                rows.append(r)
                print(
                    f"  {case} #{rep}: steady {r['steady']:.2f} mic/s, whole {r['whole']:.2f} "
                    f"mic/s, same {r['same']}, load {r['load_average']:.1f}: {r['summary']}",
                    flush=True,
                )
    print(
        f"{args.files} micrographs of {args.size} px (symlinks to {args.real} files), input "
        f"{args.input_size} px, light model, {args.repeat} run(s) per case, median (worst); "
        f"{os.cpu_count()} CPUs"
    )
    print(
        f"{'case':5s} {'start s':>12s} {'steady mic/s':>13s} {'end s':>10s} {'wall s':>12s} "
        f"{'whole mic/s':>12s} {'CPU ms/mic client+workers':>26s} {'RSS GiB':>8s} "
        f"{'worker':>7s} {'same':>5s} {'load':>9s}"
    )
    summary = {}
    for case in cases:
        rs = [r for r in rows if r["case"] == case]
        med = {f: statistics.median(r[f] for r in rs) for f in FIELDS}
        worst = {f: (min if f in ("steady", "whole") else max)(r[f] for r in rs) for f in FIELDS}
        summary[case] = {"median": med, "worst": worst}
        cpu_c = statistics.median(r["steady_cpu_client_ms"] for r in rs)
        cpu_w = statistics.median(r["steady_cpu_workers_ms"] for r in rs)
        worker = max(r["children_mib"] for r in rs) / 1024 if case.startswith("w") else np.nan
        loads = [r["load_average"] for r in rs]
        print(
            f"{case:5s} {med['start_s']:5.1f} ({worst['start_s']:4.1f}) "
            f"{med['steady']:6.2f} ({worst['steady']:4.2f}) "
            f"{med['end_s']:4.1f} ({worst['end_s']:3.1f}) "
            f"{med['wall_s']:5.1f} ({worst['wall_s']:4.1f}) {med['whole']:5.2f} ({worst['whole']:4.2f}) "
            f"{cpu_c:12.0f} + {cpu_w:5.0f}   {max(r['self_mib'] for r in rs) / 1024:8.2f} "
            f"{worker:7.2f} {str(all(r['same'] for r in rs)):>5s} {min(loads):4.1f}-{max(loads):3.1f}"
        )
    if "w1" in summary and "w2" in summary:
        for f in ("steady", "whole"):
            ratio = summary["w2"]["median"][f] / summary["w1"]["median"][f]
            summary[f"w2/w1 {f}"] = ratio
            print(f"--workers 2 / --workers 1, {f} throughput (medians): {ratio:.2f}x")
    if "new" in summary and "old" in summary:
        for f in ("steady", "whole"):
            ratio = summary["new"]["median"][f] / summary["old"]["median"][f]
            summary[f"new/old {f}"] = ratio
            print(f"new / old, {f} throughput (medians): {ratio:.2f}x")
    write_results(
        results_path(RESULTS, args.smoke),
        {
            **machine_info(),
            "load_average": "per row",
            "args": {k: str(v) for k, v in vars(args).items()},
            "summary": summary,
            "rows": rows,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
