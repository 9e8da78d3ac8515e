"""The dock widget's fit on the screen, built as napari builds it (through the plugin
manager, on pytest-xvfb's virtual 1920 x 1080 screen: ``xvfb_width`` / ``xvfb_height`` in
``pyproject.toml``): the window size at start, no button squashed below its minimum
size, the confidence text beside the current-pick square, and no FutureWarning from
our code at start (napari's private API through the plugin proxy)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from activepick.io.micrograph import write_micrograph

pytestmark = pytest.mark.gui

PLUGIN = Path(__file__).resolve().parents[1] / "src" / "activepick"


def _folder(tmp_path: Path, n: int = 2, size: int = 160) -> Path:
    folder = tmp_path / "mics"
    rng = np.random.default_rng(0)
    for i in range(n):
        image = rng.normal(0, 1, (size, size)).astype(np.float32)
        write_micrograph(folder / f"mic_{i:02d}.mrc", image, pixel_size=1.5)
    return folder


def _widget(make_napari_viewer, **kwargs):
    viewer = make_napari_viewer(**kwargs)
    _, widget = viewer.window.add_plugin_dock_widget("napari-activepick", "Active picking")
    return viewer, widget


def test_starting_the_widget_prints_no_future_warning_from_our_code(make_napari_viewer, tmp_path):
    folder = _folder(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        viewer, widget = _widget(make_napari_viewer)
        widget.open_folder(folder)
        widget.review.refresh()
    assert widget.learner is not None and len(widget.review.layers) == 4
    ours = [
        f"{Path(w.filename).name}:{w.lineno}: {w.message}"
        for w in caught
        if issubclass(w.category, FutureWarning) and str(PLUGIN) in str(Path(w.filename).resolve())
    ]
    assert ours == []
