"""Review-key speed of the workbench with a large label table (issue 10 target: the
accept key end to end < 20 ms with 100,000 labels).

    .venv/bin/python perf/bench_review.py [--labels 100000] [--micrographs 100] [--repeat 20]
    xvfb-run -a .venv/bin/python perf/bench_review.py --layers   # + the napari layers

Builds a workbench on ``--micrographs`` 4096 x 4096 micrographs (zero-size image
data) holding ``--labels`` labels and twice as many predictions, queues ``--repeat``
picks, then times each review action (median and worst of ``--repeat`` calls):
in memory, and with a session attached (the label journal and the queue position;
their fsync runs in a background thread). Also times the whole-table rewrite of
``labels.csv`` (what every key press cost before the journal). With ``--layers``
(needs a display), also each review key end to end on a shown napari viewer with the
review layers and a session: from napari's key dispatch to the handler's return, and
to the canvas having painted (a placeholder image stack gives the slider); next pick
on the same micrograph (accept, reject, next) and on another one (accept), plus the
paint of a bare camera move (the renderer's own cost) and of a slider step with the
image layer alone (napari's floor for a move to another micrograph), and whole batches
of 40 accepts in a row (``WALKS``: the order decides how many keys move the slider; the
90th percentile of "painted" is the issue-20 target). Prints tables and writes
``perf/results/review.json`` with the 1-min load average.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import add_smoke_flag, machine_info, results_path, write_results

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


def _session(wb, names, folder: Path):
    """A session in ``folder`` attached to ``wb`` (its micrograph files are stubs)."""
    from activepick.session import Session

    files = []
    for n in names:  # Session.create checks that the files exist
        (folder / f"{n}.mrc").write_bytes(b"x")
        files.append(folder / f"{n}.mrc")
    session = Session.create(folder / "s", files, wb.settings_dict())
    session.save_queue(wb.learner.queue, wb.learner.position)  # as after a round
    wb.session = wb.learner.session = session
    return session


def _press(viewer, key: str) -> None:
    """A key press as napari dispatches it (its key-map handler: private, bench only)."""
    viewer.window._qt_viewer._key_map_handler.press_key(key)


def _draw_counter(viewer) -> list[float]:
    """Times of the canvas's paints (the vispy canvas's draw event: private, bench only)."""
    times: list[float] = []
    canvas = viewer.window._qt_viewer.canvas._scene_canvas
    canvas.events.draw.connect(lambda event: times.append(time.perf_counter()))
    return times


def _until_painted(app, draws: list[float], t0: float, timeout: float = 2.0) -> float:
    """Seconds from ``t0`` until the canvas painted after ``t0`` (events processed)."""
    while time.perf_counter() - t0 < timeout:
        app.processEvents()
        if draws and draws[-1] > t0:
            return draws[-1] - t0
    return float("nan")


#: Batches walked key by key (issue 20): (label, picks, micrographs, grouped). 22 of 32
#: micrographs is what a 40-pick batch spans on the hitl pool (perf/bench_queue_order.py).
WALKS = [
    ("batch 40 picks / 22 mics, uncertainty order", 40, 22, False),
    ("batch 40 picks / 22 mics, by micrograph", 40, 22, True),
    ("batch 40 picks / 3 mics, by micrograph", 40, 3, True),
]


def walk_queue(pred, picks: int, mics: int, grouped: bool, seed: int = 1):
    """A batch of ``picks`` predictions on ``mics`` micrographs (at least one each), in a
    random uncertainty order, grouped by micrograph (``strategies.group_by_micrograph``)
    when ``grouped``."""
    import pandas as pd

    from activepick.active.strategies import group_by_micrograph

    rng = np.random.default_rng(seed)
    chosen = rng.choice(pred["micrograph"].unique(), mics, replace=False)
    counts = 1 + rng.multinomial(picks - mics, np.full(mics, 1.0 / mics))
    parts = [
        pred[pred["micrograph"] == m].head(int(c)) for m, c in zip(chosen, counts, strict=True)
    ]
    queue = pd.concat(parts, ignore_index=True)
    queue["uncertainty"], queue["rank"] = 0.0, rng.permutation(len(queue))
    queue = queue.sort_values("rank")
    return (group_by_micrograph(queue) if grouped else queue).reset_index(drop=True)


def time_layers(wb, names, repeat: int) -> dict[str, dict[str, list[float]]]:
    """Seconds per review key pressed on a shown napari viewer with the review layers
    and a session attached (the journal append, the queue position), end to end: from
    napari's key dispatch to the handler's return ("handler", and its CPU time), and
    to the canvas having painted the new state ("painted": Qt's events processed until
    the vispy canvas drew). Cases by where the next pick lies: on the same micrograph
    (a queue on one micrograph: accept, reject, next) or on another one (the random
    queue of :func:`build`: the slider moves, the labels / predictions layers are
    refilled). Each key starts, as in use, with the slider and camera on the pick
    under review and the canvas painted; it is undone untimed."""
    import napari
    from qtpy.QtWidgets import QApplication

    from activepick.plugin.review import ReviewLayers

    learner = wb.learner
    queue = learner.queue
    one = learner.predictions[learner.predictions["micrograph"] == queue["micrograph"].iloc[0]]
    same = one.head(len(queue)).reset_index(drop=True)
    same["uncertainty"], same["rank"] = 0.0, np.arange(len(same))
    viewer = napari.Viewer(show=True)
    app = QApplication.instance()
    # the micrograph stack's extent (the slider) without its pixels: 16 x 16 per micrograph
    n = len(learner.micrographs)
    viewer.add_image(np.zeros((n, 16, 16), np.float32), scale=(1, SIZE / 16, SIZE / 16))
    draws = _draw_counter(viewer)
    out: dict[str, dict[str, list[float]]] = {}
    cases = [
        ("accept", "x", same, "same micrograph"),
        ("reject", "z", same, "same micrograph"),
        ("next", "d", same, "same micrograph"),
        ("accept", "x", queue, "other micrograph"),
    ]
    try:
        # napari's own floor for a move to another micrograph: the slider step with the
        # image layer alone (no review layers yet), until painted
        floor = out["slider step, image layer only"] = {"handler": [], "cpu": [], "painted": []}
        for i in range(repeat):
            _until_painted(app, draws, time.perf_counter(), timeout=0.2)
            t0, c0 = time.perf_counter(), time.process_time()
            viewer.dims.set_current_step(0, 1 + i % (n - 1))
            floor["handler"].append(time.perf_counter() - t0)
            floor["cpu"].append(time.process_time() - c0)
            floor["painted"].append(_until_painted(app, draws, t0))
        with tempfile.TemporaryDirectory() as tmp:
            session = _session(wb, names, Path(tmp))
            layers = ReviewLayers(viewer)
            for action, key, table, where in cases:
                learner.queue, learner.position = table, 0
                session.save_queue(table, 0)
                learner._predicted()  # the per-queue pick-id index (built once after a round)
                layers.attach(wb)
                res = out[f"{action} (next on {where})"] = {"handler": [], "cpu": [], "painted": []}
                for _ in range(repeat):
                    _until_painted(app, draws, time.perf_counter(), timeout=0.2)  # settle
                    t0, c0 = time.perf_counter(), time.process_time()
                    _press(viewer, key)
                    res["handler"].append(time.perf_counter() - t0)
                    res["cpu"].append(time.process_time() - c0)
                    res["painted"].append(_until_painted(app, draws, t0))
                    if action != "next":
                        wb.undo()
                    wb.previous()
                    layers.refresh_queue()
                    layers.refresh_labels()
            # whole batches, key after key (no undo in between): the share of keys that move
            # the slider follows the review order
            for label, picks, mics, grouped in WALKS:
                table = walk_queue(learner.predictions, picks, mics, grouped)
                learner.queue, learner.position = table, 0
                session.save_queue(table, 0)
                learner._predicted()
                layers.attach(wb)
                res = out[f"accept x{picks} ({label})"] = {
                    "handler": [], "cpu": [], "painted": [], "moved": []
                }  # fmt: skip
                for _ in range(picks):
                    _until_painted(app, draws, time.perf_counter(), timeout=0.2)
                    step = viewer.dims.current_step[0]
                    t0, c0 = time.perf_counter(), time.process_time()
                    _press(viewer, "x")
                    res["handler"].append(time.perf_counter() - t0)
                    res["cpu"].append(time.process_time() - c0)
                    res["painted"].append(_until_painted(app, draws, t0))
                    res["moved"].append(float(viewer.dims.current_step[0] != step))
                for _ in range(picks):
                    wb.undo()
            # the renderer's own cost: a paint after a camera nudge and nothing else
            floor = out["paint only (camera nudge)"] = {"handler": [], "cpu": [], "painted": []}
            cam = viewer.camera
            for i in range(repeat):
                _until_painted(app, draws, time.perf_counter(), timeout=0.2)
                t0, c0 = time.perf_counter(), time.process_time()
                cam.center = (cam.center[-2] + (1 if i % 2 else -1), cam.center[-1])
                floor["handler"].append(time.perf_counter() - t0)
                floor["cpu"].append(time.process_time() - c0)
                floor["painted"].append(_until_painted(app, draws, t0))
            wb.session = learner.session = None
            session.close()
        learner.queue, learner.position = queue, 0
        return out
    finally:
        viewer.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--labels", type=int, default=100_000)
    ap.add_argument("--micrographs", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--layers", action="store_true", help="also time the napari layers")
    add_smoke_flag(ap)  # 200 labels on 4 micrographs, 3 presses (no --layers: no display)
    args = ap.parse_args(argv)
    if args.smoke:
        args.labels, args.micrographs, args.repeat = 200, 4, 3
    rng = np.random.default_rng(0)
    rows = []
    layer_rows: list[tuple[str, dict]] = []
    results: dict = {}
    t0 = time.perf_counter()
    wb, names = build(args.labels, args.micrographs, args.repeat, rng)
    build_s = time.perf_counter() - t0
    for mode in ("memory", "session"):
        with tempfile.TemporaryDirectory() as tmp:
            if mode == "session":
                session = _session(wb, names, Path(tmp))
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
            if mode != "memory":
                wb.session = wb.learner.session = None
                session.close()
    if args.layers:
        for case, res in time_layers(wb, names, args.repeat).items():
            entry = {}
            for col in ("handler", "cpu", "painted"):
                ts = np.asarray(res[col])
                med, worst = float(np.nanmedian(ts)), float(np.nanmax(ts))
                entry[f"{col}_median_s"], entry[f"{col}_max_s"] = med, worst
                entry[f"{col}_min_s"] = float(np.nanmin(ts))
            painted = np.asarray(res["painted"])
            entry["painted_p90_s"] = float(np.nanpercentile(painted, 90))
            entry["keys_under_20ms"] = float(np.mean(painted < 0.020))
            if "moved" in res:
                entry["keys_moving_slider"] = float(np.mean(res["moved"]))
            results[f"session+layers/{case}"] = entry
            layer_rows.append((case, entry))
    labels_n = len(wb.learner.labels)
    print(f"review actions with {labels_n} labels on {args.micrographs} micrographs ", end="")
    print(f"(build {build_s:.1f} s; load avg {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs)")
    print(f"{'action':<34}{'mode':<32}{'median ms':>10}{'max ms':>10}")
    for action, mode, med, worst in rows:
        print(f"{action:<34}{mode:<32}{1e3 * med:>10.2f}{1e3 * worst:>10.2f}")
    if layer_rows:
        print("\nkey press end to end (napari viewer, review layers, session journal), ms:")
        head = ["handler med", "max", "CPU med", "painted min", "med", "p90", "max", "<20ms"]
        print(f"{'key':<40}" + "".join(f"{h:>12}" for h in head))
        for case, e in layer_rows:
            cols = ["handler_median_s", "handler_max_s", "cpu_median_s"]
            cols += ["painted_min_s", "painted_median_s", "painted_p90_s", "painted_max_s"]
            line = f"{case:<40}" + "".join(f"{1e3 * e[c]:>12.2f}" for c in cols)
            line += f"{e['keys_under_20ms']:>12.0%}"
            if "keys_moving_slider" in e:
                line += f"  ({e['keys_moving_slider']:.0%} of keys move the slider)"
            print(line)
    write_results(
        results_path(RESULTS, args.smoke),
        {
            "labels": labels_n,
            "micrographs": args.micrographs,
            "repeat": args.repeat,
            "load_avg_1min": os.getloadavg()[0],
            **machine_info(),
            "results": results,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
