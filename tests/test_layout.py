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


def test_starting_the_widget_prints_no_future_warning_from_our_code(plugin_widget, tmp_path):
    folder = _folder(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        viewer, widget = plugin_widget()
        widget.open_folder(folder)
        widget.review.refresh()
    assert widget.learner is not None and len(widget.review.layers) == 4
    ours = [
        f"{Path(w.filename).name}:{w.lineno}: {w.message}"
        for w in caught
        if issubclass(w.category, FutureWarning) and str(PLUGIN) in str(Path(w.filename).resolve())
    ]
    assert ours == []


def _controls_below_minimum(widget) -> list[str]:
    """Buttons, combo boxes and spin boxes of ``widget`` that are on screen (not in a
    collapsed section: an empty visible region) and smaller than their minimum size."""
    from qtpy.QtWidgets import QAbstractButton, QAbstractSpinBox, QComboBox

    out = []
    for kind in (QAbstractButton, QComboBox, QAbstractSpinBox):
        for c in widget.findChildren(kind):
            if not c.isVisible() or c.visibleRegion().isEmpty():
                continue
            hint = c.minimumSizeHint()
            if c.width() < hint.width() or c.height() < hint.height():
                name = c.text() if isinstance(c, QAbstractButton) else type(c).__name__
                out.append(f"{name!r} {c.width()}x{c.height()} < {hint.width()}x{hint.height()}")
    return out


def _settle(qtbot, ms: int = 100) -> None:
    qtbot.wait(ms)  # resizes and layouts are applied by the event loop


def _canvas(widget):
    from qtpy.QtOpenGLWidgets import QOpenGLWidget

    return widget.window().findChild(QOpenGLWidget)


def _expand_all(widget) -> None:
    from superqt import QCollapsible

    for box in widget.findChildren(QCollapsible):
        box.expand(animate=False)


def test_the_window_opens_at_a_usable_size_with_most_of_the_width_for_the_canvas(
    plugin_widget, qtbot
):
    from qtpy.QtWidgets import QApplication

    free = QApplication.primaryScreen().availableGeometry()
    assert (free.width(), free.height()) == (1920, 1080)  # pyproject: xvfb_width / height
    viewer, widget = plugin_widget(show=True)
    _settle(qtbot)
    window = widget.window()
    assert window.width() >= 1400 and window.height() >= 850  # napari alone: 1089 x 737
    assert window.width() <= free.width() and window.height() <= free.height()
    canvas = _canvas(widget)
    assert canvas.width() > window.width() / 2 and canvas.width() > 2 * widget.width()


_GUI_SIZE = """
from qtpy.QtWidgets import QApplication
from activepick.cli import build_parser
from activepick.cli.gui import open_gui
viewer, widget = open_gui(build_parser().parse_args(["gui"]), show=True)
app = QApplication.instance()
for _ in range(50):
    app.processEvents()
print(widget.window().width(), widget.window().height())
"""


def test_activepick_gui_opens_the_window_at_a_usable_size():
    # in its own process, as from the shell: a napari.Viewer made outside the test
    # fixture registers the plugin again in this process's later viewers
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-c", _GUI_SIZE], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    width, height = (int(v) for v in proc.stdout.split()[-2:])
    assert width >= 1400 and height >= 850


def test_no_control_is_squashed_at_the_default_size_or_1280_x_800(plugin_widget, qtbot):
    viewer, widget = plugin_widget(show=True)
    widget.load_sample()
    widget.set_status("a long status line " * 12)  # wraps, never widens the dock
    _settle(qtbot)
    assert _controls_below_minimum(widget) == []
    _expand_all(widget)
    _settle(qtbot, 500)
    assert _controls_below_minimum(widget) == []
    window = widget.window()
    for size in ((1280, 800), (900, 600)):  # smaller than the sections: they scroll
        window.resize(*size)
        _settle(qtbot, 300)
        assert (window.width(), window.height()) == size
        assert _controls_below_minimum(widget) == [], size
    assert widget.scroll_area.verticalScrollBar().maximum() > 0  # scrolls instead


def _queue_on_edges(widget, diameter: float, height: int, width: int):
    """A review queue (hand-made, no training) of picks at the edge limit of a
    micrograph (half a diameter from its edges: nearer ones are never queued) and one in
    the middle, the first under review."""
    from activepick.io.picks import make_picks

    r = diameter / 2
    xs = [r, width - r, r, width - r, width / 2]
    ys = [r, r, height - r, height - r, height / 2]
    pred = make_picks(["mic_0"] * 5, xs, ys, diameter, confidence=[0.53] * 5, status="predicted")
    pred["pick_id"] = np.arange(5)
    learner = widget.learner
    learner.predictions = pred
    queue = pred.copy()
    queue["uncertainty"], queue["rank"] = 0.0, np.arange(5)
    learner.queue, learner.position = queue, 0
    widget.review.refresh()  # the camera moves to the pick under review, at review zoom
    return pred


#: The confidence text's box on screen: 9-pt digits are at most this tall and wide.
TEXT_H, TEXT_W = 16, 32


@pytest.mark.parametrize(
    ("height", "width", "d"),
    [(2048, 2048, 40.0), (1023, 1440, 10.0)],  # a square micrograph; a K3's 4092 x 5760 / 4
)
def test_confidence_text_clears_the_current_square_and_stays_inside_the_canvas(
    plugin_widget, qtbot, height, width, d
):
    from activepick.plugin.review import camera

    viewer, widget = plugin_widget(show=True)
    _settle(qtbot)  # the window at its size
    image = np.zeros((2, height, width), np.float32)
    layer = viewer.add_image(image, name="mics", metadata={"micrographs": ["mic_0", "mic_1"]})
    widget.use_layer(layer)
    widget.diameter.value = int(d)
    picks = _queue_on_edges(widget, d, height, width)
    _settle(qtbot)
    queue, square = widget.review.layers["review queue"], widget.review.layers["current pick"]
    centres = np.asarray(queue.data)[:, -2:]
    coords, anchor_x, anchor_y = queue.text.compute_text_coords(centres, 2)
    assert (anchor_x, anchor_y) == ("center", "center")
    np.testing.assert_allclose(coords - centres, np.tile([-0.72 * d, 0.0], (5, 1)))

    # at the review zoom (10 diameters across the canvas) the text of the pick under
    # review lies in the band between its circle (and border) and the square's border
    cam = camera(viewer)
    px = d * cam.zoom  # one diameter on screen
    assert px == pytest.approx(min(viewer.canvas.size) / 10)
    (cy, cx), side = np.asarray(square.data)[0], float(square.size[0])
    assert (cy, cx) == (picks["y"][0], picks["x"][0])
    circle = 0.5 * d + float(queue.border_width[0]) * d  # radius plus a whole border
    inner = side / 2 - float(square.border_width[0]) * side  # the square's inner edge
    top, bottom = (coords[0, 0] - cy) * cam.zoom + np.array([-TEXT_H / 2, TEXT_H / 2])
    assert -inner * cam.zoom < top and bottom < -circle * cam.zoom
    assert TEXT_W / 2 < inner * cam.zoom  # nor does it reach the square's sides

    # the whole micrograph in view (napari's home view of the image: 5 % margin): every
    # label, those at the edges too, is inside the canvas
    h, w = viewer.canvas.size
    cam.center = (height / 2, width / 2)
    cam.zoom = 0.95 * min(h / height, w / width)
    screen = (coords - [height / 2, width / 2]) * cam.zoom + [h / 2, w / 2]
    assert np.all(screen[:, 0] - TEXT_H / 2 >= 0) and np.all(screen[:, 0] + TEXT_H / 2 <= h)
    assert np.all(screen[:, 1] - TEXT_W / 2 >= 0) and np.all(screen[:, 1] + TEXT_W / 2 <= w)
