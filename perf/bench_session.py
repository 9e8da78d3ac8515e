"""Session store speed: one decision (journal append) vs compaction, with large label tables.

    .venv/bin/python perf/bench_session.py [--labels 1000,10000,100000] [--appends 200]

For each size a session is created in a temporary folder (on the same disk as
``$TMPDIR``) holding that many labels; then it times one ``append_labels`` of one
row (what a key press costs: the write; its fsync and the queue position are left to
the session's background thread), ``append_removals`` of one id, ``save_position``
(queue position only: recorded for that thread), ``load_labels`` with the appended
journal replayed, ``Session.open`` (reads session.json, checks labels.csv
against its checksum) and ``save_labels`` (the compaction at a round boundary or
on close: full atomic rewrite of labels.csv + session.json). Prints a table and
writes ``perf/results/session.json`` with the machine and its load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _common import add_smoke_flag, machine_info, results_path, write_results

RESULTS = Path(__file__).resolve().parent / "results" / "session.json"


def label_table(n: int, seed: int = 0) -> pd.DataFrame:
    """``n`` labels over 100 micrographs, with the mix of statuses of a real session."""
    from activepick.io.labels import validate_labels

    rng = np.random.default_rng(seed)
    status = np.array(["accepted", "moved", "added", "rejected"])[rng.integers(0, 4, n)]
    conf = rng.random(n)
    conf[status == "added"] = np.nan
    moved = status == "moved"
    df = pd.DataFrame(
        {
            "micrograph": [f"mic_{i % 100:04d}" for i in range(n)],
            "x": rng.uniform(0, 4096, n),
            "y": rng.uniform(0, 4096, n),
            "diameter": np.full(n, 64.0),
            "confidence": conf,
            "status": status,
            "round": rng.integers(1, 20, n),
            "time": ["2026-12-02T12:00:00.123456+00:00"] * n,
            "pick_id": np.arange(n, dtype=np.int64),
            "strategy": np.where(status == "added", "", "boundary_distance"),
            "source": ["human"] * n,
            "pred_x": np.where(moved, rng.uniform(0, 4096, n), np.nan),
            "pred_y": np.where(moved, rng.uniform(0, 4096, n), np.nan),
        }
    )
    return validate_labels(df)


def stats_ms(times: list[float]) -> dict:
    ms = sorted(t * 1e3 for t in times)
    return {
        "median_ms": statistics.median(ms),
        "p95_ms": ms[min(len(ms) - 1, int(0.95 * len(ms)))],
        "max_ms": ms[-1],
        "n": len(ms),
    }


def bench(n: int, appends: int, tmp: Path) -> list[dict]:
    from activepick.session import Session

    mic = tmp / "mic_0000.mrc"
    mic.write_bytes(b"x")
    labels = label_table(n)
    extra = label_table(appends, seed=1).assign(pick_id=np.arange(n, n + appends))
    rows = []

    def row(case: str, times: list[float]) -> None:
        rows.append({"labels": n, "case": case, **stats_ms(times)})

    s = Session.create(tmp / f"s{n}", [mic], {"diameter": 64.0})
    t0 = time.perf_counter()
    s.save_labels(labels)
    first = time.perf_counter() - t0
    queue = labels.iloc[:200][["micrograph", "x", "y", "diameter", "confidence", "status"]]
    s.save_queue(queue.assign(round=1, time="", pick_id=np.arange(200)), 0)
    times = []
    for i in range(appends):
        one = extra.iloc[i : i + 1]
        t0 = time.perf_counter()
        s.append_labels(one)
        times.append(time.perf_counter() - t0)
    row("append_labels (1 row)", times)
    times = []
    for i in range(min(appends, 50)):
        t0 = time.perf_counter()
        s.append_removals([i])
        times.append(time.perf_counter() - t0)
    row("append_removals (1 id)", times)
    times = []
    for i in range(min(appends, 50)):
        t0 = time.perf_counter()
        s.save_position(i % 200)
        times.append(time.perf_counter() - t0)
    row("save_position", times)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        current = s.load_labels()
        times.append(time.perf_counter() - t0)
    row(f"load_labels (+{appends + min(appends, 50)} journal lines)", times)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        s.save_labels(current)
        times.append(time.perf_counter() - t0)
    times.append(first)
    row("save_labels (compaction)", times)
    s.close()
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        reopened = Session.open(tmp / f"s{n}")
        times.append(time.perf_counter() - t0)
        reopened.close()
    row("Session.open (checksum of labels.csv)", times)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--labels", default="1000,10000,100000")
    ap.add_argument("--appends", type=int, default=200)
    add_smoke_flag(ap)  # 300 labels (the queue takes 200), 5 appends
    args = ap.parse_args(argv)
    if args.smoke:
        args.labels, args.appends = "300", 5
    sizes = [int(v) for v in args.labels.split(",")]
    load_before = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            rows.extend(bench(n, args.appends, Path(tmp)))
    load_after = os.getloadavg()
    print(f"{'labels':>8s}  {'case':44s} {'median ms':>10s} {'p95 ms':>9s} {'max ms':>9s}")
    for r in rows:
        print(
            f"{r['labels']:8d}  {r['case']:44s} {r['median_ms']:10.2f} {r['p95_ms']:9.2f} {r['max_ms']:9.2f}"
        )
    print(
        f"load average before / after (1 min): {load_before[0]:.2f} / {load_after[0]:.2f}, "
        f"{os.cpu_count()} CPUs"
    )
    write_results(
        results_path(RESULTS, args.smoke),
        {
            **machine_info(),
            "load_average_before": load_before,
            "load_average_after": load_after,
            "tmpdir": tempfile.gettempdir(),
            "args": vars(args),
            "rows": rows,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
