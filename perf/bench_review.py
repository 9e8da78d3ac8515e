"""Review-key speed of the workbench with a large label table (issue 10 target: the
accept key end to end < 20 ms with 100,000 labels).

    .venv/bin/python perf/bench_review.py [--labels 100000] [--micrographs 100] [--repeat 20]
    xvfb-run -a .venv/bin/python perf/bench_review.py --layers   # + the napari layers

Builds a workbench on ``--micrographs`` 4096 x 4096 micrographs (zero-size image
data) holding ``--labels`` labels and twice as many predictions, queues ``--repeat``
picks, then times each review action (median and worst of ``--repeat`` calls):
in memory, and with a session attached (the label journal when the session has
one, else the whole-table rewrite of ``labels.csv``). Also times the whole-table
rewrite itself (what every key press cost before). With ``--layers`` (needs a
display), also the accept key through the napari review layers (the decision plus
the layers' update; a placeholder image stack gives the slider), with the next pick
on another micrograph and on the same one. Prints a table and writes
``perf/results/review.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "review.json"
SIZE = 4096


def build(n_labels: int, n_mics: int, repeat: int, rng):
    from activepick.active.settings import LearnerSettings
    from activepick.active.workbench import Workbench
    from activepick.detector import DetectorConfig
    from activepick.io.micrograph import Micrograph
    from activepick.io.picks import make_picks

    image = np.broadcast_to(np.float32(0), (SIZE, SIZE))  # the shape without the memory
    mics = [Micrograph(f"mic_{i:04d}", image) for i in range(n_mics)]
    names = np.array([m.name for m in mics])
    settings = LearnerSettings(detector=DetectorConfig(diameter=64.0), review_k=repeat)
    wb = Workbench.for_micrographs(mics, settings)
    labels = make_picks(
        names[rng.integers(0, n_mics, n_labels)],
        rng.uniform(100, SIZE - 100, n_labels),
        rng.uniform(100, SIZE - 100, n_labels),
        64.0,
        status="accepted",
    )
    wb.learner.add_labels(labels, source="import")
    n_pred = 2 * n_labels
    pred = make_picks(
        names[rng.integers(0, n_mics, n_pred)],
        rng.uniform(100, SIZE - 100, n_pred),
        rng.uniform(100, SIZE - 100, n_pred),
        64.0,
        confidence=rng.uniform(0.01, 1, n_pred),
        status="predicted",
    )
    pred["pick_id"] = np.arange(n_labels, n_labels + n_pred)
    wb.learner.predictions = pred
    queue = pred.sample(4 * repeat, random_state=0).reset_index(drop=True)
    queue["uncertainty"], queue["rank"] = 0.0, np.arange(len(queue))
    wb.learner.queue = queue
    wb.learner.position = 0
    return wb, names


def time_actions(wb, names, repeat: int, rng) -> dict[str, list[float]]:
    """Seconds per call of each review action."""
    out: dict[str, list[float]] = {k: [] for k in ("accept", "reject", "next", "add", "undo")}
    wb.learner._predicted()  # the per-round pick-id index (built once after predict)
    for _ in range(repeat):
        for key, fn in (("accept", wb.accept), ("reject", wb.reject), ("next", wb.next)):
            t0 = time.perf_counter()
            fn()
            out[key].append(time.perf_counter() - t0)
        name = str(names[rng.integers(0, len(names))])
        x, y = rng.uniform(100, SIZE - 100, 2)
        t0 = time.perf_counter()
        try:
            wb.add(name, float(x), float(y))
        except Exception as exc:  # a refusal is a review action too
            if type(exc).__name__ != "ReviewRefused":
                raise
        out["add"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        wb.undo()
        out["undo"].append(time.perf_counter() - t0)
        wb.previous()
    return out


def time_layers(wb, repeat: int) -> dict[str, tuple[list[float], list[float]]]:
    """Seconds per accept key through ``plugin.review.ReviewLayers`` on a napari viewer,
    by where the next pick lies: on another micrograph (the slider moves and the
    labels / predictions layers are refilled: the random queue of :func:`build`) or on
    the same one (a queue on one micrograph). Each accept starts, as in use, with the
    slider and camera on the pick under review; it is undone untimed. Returns
    ``{case: (wall seconds, CPU seconds of this process)}``: on a shared machine the
    CPU time is the steadier estimate of the wall time on an idle one."""
    import napari

    from activepick.plugin.review import ReviewLayers

    learner = wb.learner
    queue = learner.queue
    one = learner.predictions[learner.predictions["micrograph"] == queue["micrograph"].iloc[0]]
    same = one.head(len(queue)).reset_index(drop=True)
    same["uncertainty"], same["rank"] = 0.0, np.arange(len(same))
    viewer = napari.Viewer(show=False)
    # the micrograph stack's extent (the slider) without its pixels: 16 x 16 per micrograph
    n = len(learner.micrographs)
    viewer.add_image(np.zeros((n, 16, 16), np.float32), scale=(1, SIZE / 16, SIZE / 16))
    out: dict[str, tuple[list[float], list[float]]] = {}
    try:
        layers = ReviewLayers(viewer)
        for case, table in (("other micrograph", queue), ("same micrograph", same)):
            learner.queue, learner.position = table, 0
            learner._predicted()  # the per-queue pick-id index (built once after a round)
            layers.attach(wb)
            out[case] = wall, cpu = [], []
            for _ in range(repeat):
                t0, c0 = time.perf_counter(), time.process_time()
                layers.accept()
                wall.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
                wb.undo()
                wb.previous()
                layers.refresh_queue()
                layers.refresh_labels()
        learner.queue, learner.position = queue, 0
        return out
    finally:
        viewer.close()


def main(argv: list[str] | None = None) -> int:
    from activepick.session import Session

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--labels", type=int, default=100_000)
    ap.add_argument("--micrographs", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--layers", action="store_true", help="also time the napari layers")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    rows = []
    results: dict = {}
    t0 = time.perf_counter()
    wb, names = build(args.labels, args.micrographs, args.repeat, rng)
    build_s = time.perf_counter() - t0
    for mode in ("memory", "session"):
        with tempfile.TemporaryDirectory() as tmp:
            if mode == "session":
                folder = Path(tmp)
                files = []
                for n in names:  # Session.create checks that the files exist
                    (folder / f"{n}.mrc").write_bytes(b"x")
                    files.append(folder / f"{n}.mrc")
                session = Session.create(folder / "s", files, wb.settings_dict())
                session.save_queue(wb.learner.queue, wb.learner.position)  # as after a round
                wb.session = wb.learner.session = session
                t0 = time.perf_counter()
                session.save_labels(wb.learner.labels)
                full = time.perf_counter() - t0
                rows.append(("whole-table rewrite (labels.csv)", "session", full, full))
                results["full_rewrite_s"] = full
                journal = hasattr(type(session), "append_labels")
                mode = "session+journal" if journal else "session (no journal: rewrite)"
            timings = time_actions(wb, names, args.repeat, rng)
            for key, ts in timings.items():
                rows.append((key, mode, float(np.median(ts)), float(np.max(ts))))
                results[f"{mode}/{key}"] = {"median_s": float(np.median(ts)), "max_s": max(ts)}
            wb.session = wb.learner.session = None
    if args.layers:
        for case, (ts, cpu) in time_layers(wb, args.repeat).items():
            med, worst = float(np.median(ts)), float(np.max(ts))
            rows.append(("accept + napari layers", f"memory, next on {case}", med, worst))
            cmed, cworst = float(np.median(cpu)), float(np.max(cpu))
            rows.append(("  the same, CPU time", f"memory, next on {case}", cmed, cworst))
            results[f"memory/accept+layers ({case})"] = {
                "median_s": med,
                "max_s": worst,
                "cpu_median_s": cmed,
                "cpu_max_s": cworst,
            }
    labels_n = len(wb.learner.labels)
    print(f"review actions with {labels_n} labels on {args.micrographs} micrographs ", end="")
    print(f"(build {build_s:.1f} s; load avg {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs)")
    print(f"{'action':<34}{'mode':<32}{'median ms':>10}{'max ms':>10}")
    for action, mode, med, worst in rows:
        print(f"{action:<34}{mode:<32}{1e3 * med:>10.2f}{1e3 * worst:>10.2f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "labels": labels_n,
                "micrographs": args.micrographs,
                "repeat": args.repeat,
                "load_avg_1min": os.getloadavg()[0],
                "cpus": os.cpu_count(),
                "python": sys.version.split()[0],
                "machine": platform.machine(),
                "results": results,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
