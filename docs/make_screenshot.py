"""Make docs/images/screenshot.png: the whole napari window with the ActivePick
widget after one round on the sample data, a few picks already reviewed.

    xvfb-run -a .venv/bin/python docs/make_screenshot.py

Needs a display (a virtual X server is fine); takes under a minute on a CPU (one round
fine-tunes the shipped general model).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "images" / "screenshot.png"


def _process(app, seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.01)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels-per-micrograph", type=int, default=10)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    import napari
    import numpy as np
    from qtpy.QtWidgets import QApplication

    viewer = napari.Viewer(title="ActivePick")
    _, widget = viewer.window.add_plugin_dock_widget("napari-activepick", "Active picking")
    viewer.window._qt_window.resize(1680, 1050)
    app = QApplication.instance()

    widget.load_sample()
    truth = widget.truth
    widget.review_k.value = 12
    widget.preview_check.value = False

    # the user's first labels: a few particles on half of the micrographs
    names = [m.name for m in widget.learner.micrographs]
    labels = widget.review.layers["labels"]
    for name in names[: max(1, len(names) // 2)]:
        rows = truth[truth["micrograph"] == name].head(args.labels_per_micrograph)
        for x, y in rows[["x", "y"]].to_numpy():
            labels.add([[names.index(name), y, x]] if len(names) > 1 else [[y, x]])

    t0 = time.perf_counter()
    widget.next_round()
    while widget.worker is not None:
        _process(app, 0.1)
    print(
        f"round 1: {time.perf_counter() - t0:.1f} s, {len(widget.learner.predictions)} predictions"
    )
    if widget.last_error is not None:
        raise SystemExit(f"round failed: {widget.last_error}")

    # review a few picks: accept / reject by the ground truth
    wb, review = widget.workbench, widget.review
    for _ in range(4):
        row = wb.current_pick()
        if row is None:
            break
        on = truth[truth["micrograph"] == row["micrograph"]]
        dist = np.hypot(on["x"] - row["x"], on["y"] - row["y"]).min() if len(on) else np.inf
        (review.accept if dist < 0.3 * widget.diameter.value else review.reject)()
    review.next()
    review.refresh_current(move_camera=True)
    viewer.layers["predictions"].visible = True
    _process(app, 1.0)
    # show the whole micrograph of the current pick rather than the review zoom
    viewer.reset_view()
    _process(app, 1.0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(str(args.out), canvas_only=False)
    print(f"wrote {args.out}")
    viewer.close()


if __name__ == "__main__":
    main()
