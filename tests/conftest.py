"""Shared test set-up: a guard for tests that need a display (``@pytest.mark.gui``).

Qt aborts the whole pytest process (not just one test) when it cannot open its
platform plugin, e.g. without an X server or with missing xcb libraries. So before
any GUI test runs we check, once and in a subprocess, that a QApplication can
start; if it cannot, every ``gui`` test is skipped with the reason (and under
``CI=true`` the run stops with that reason instead: CI must run them). pytest-xvfb
starts a virtual X server and sets ``DISPLAY`` before collection; do not set
``QT_QPA_PLATFORM=offscreen`` (napari cannot draw layers without OpenGL).
"""

from __future__ import annotations

import errno
import functools
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

_PROBE = (
    "from qtpy.QtWidgets import QApplication; app = QApplication([]); print(app.platformName())"
)


@functools.lru_cache(maxsize=1)
def display_problem() -> str | None:
    """None when Qt can start here, else a one-line reason."""
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return (
            "no display: GUI tests need an X server - install Xvfb and pytest-xvfb "
            "(pip install pytest-xvfb) or run under `xvfb-run -a pytest`"
        )
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=60
        )
    except subprocess.TimeoutExpired:
        return "Qt did not start within 60 s on DISPLAY=" + os.environ.get("DISPLAY", "")
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        hint = next(
            (ln for ln in lines if "cannot open shared object" in ln), lines[-1] if lines else ""
        )
        return f"Qt cannot start on DISPLAY={os.environ.get('DISPLAY', '')}: {hint.strip()[:300]}"
    return None


def pytest_collection_modifyitems(config, items):
    gui = [item for item in items if "gui" in item.keywords]
    if not gui:
        return
    reason = display_problem()
    if reason is None:
        return
    if os.environ.get("CI"):
        # In CI the GUI tests are part of what must pass: never skip them silently.
        raise pytest.UsageError(f"GUI tests cannot run in CI: {reason}")
    mark = pytest.mark.skip(reason=reason)
    for item in gui:
        item.add_marker(mark)


def pytest_configure(config):
    """User cache folders (magicgui's persisted settings of the widget's *Model* form,
    napari's themed icons) in a temporary folder for the whole run, never the user's
    home: magicgui and napari follow ``XDG_CACHE_HOME`` (Linux), ``LOCALAPPDATA``
    (Windows) and the home folder (macOS). Set once, before napari starts: napari
    registers its icon folder once per process."""
    folder = tempfile.mkdtemp(prefix="activepick-tests-cache-")
    config._activepick_cache = folder
    os.environ["XDG_CACHE_HOME"] = folder
    os.environ["LOCALAPPDATA"] = folder
    if sys.platform == "darwin":
        os.environ["HOME"] = folder


def pytest_unconfigure(config):
    folder = getattr(config, "_activepick_cache", None)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(autouse=True)
def persisted_settings_folder() -> Path:
    """magicgui's persistence folder (in the run's temporary cache, see
    :func:`pytest_configure`), emptied before each test: each test starts with the
    form's defaults."""
    from magicgui._util import user_cache_dir

    folder = Path(user_cache_dir())
    shutil.rmtree(folder, ignore_errors=True)
    return folder


@pytest.fixture
def plugin_widget(make_napari_viewer):
    """``plugin_widget(**viewer_kwargs) -> (viewer, widget)``: the dock widget as napari
    builds it, through the plugin manager (it gets a ``PublicOnlyProxy`` of the viewer,
    as from the Plugins menu)."""

    def build(**kwargs):
        viewer = make_napari_viewer(**kwargs)
        _, widget = viewer.window.add_plugin_dock_widget("napari-activepick", "Active picking")
        return viewer, widget

    return build


@pytest.fixture
def mics(tmp_path):
    """Three micrograph files a session lists but never reads (odd names included)."""
    folder = tmp_path / "micrographs"
    folder.mkdir()
    paths = []
    for name in ("0001.mrc", "mic,b.mrc", "a.tif"):
        (folder / name).write_bytes(b"not read by the session")
        paths.append(folder / name)
    return paths


@pytest.fixture
def disk_full(monkeypatch):
    """``disk_full(*names)``: from now on, renaming a temporary file onto a file of one of
    ``names`` fails as on a full disk (ENOSPC); every other rename works."""
    real_replace = os.replace

    def fill(*names: str) -> None:
        def replace(src, dst):
            if Path(dst).name in names:
                raise OSError(errno.ENOSPC, "No space left on device")
            return real_replace(src, dst)

        monkeypatch.setattr(os, "replace", replace)

    return fill


@pytest.fixture
def mouse_drag(qtbot):
    """``mouse_drag(widget, viewer, start, end)``: drag with the left mouse button on the
    viewer's canvas from world point ``start`` to ``end`` (``(y, x)`` of the shown
    slice), as a user does: Qt mouse events on the canvas widget (found through the
    dock ``widget``'s main window: no private napari API), which vispy and napari turn
    into the active layer's drag callbacks (select mode moves the selected points).
    The window must be shown. Returns the canvas pixels pressed and released."""
    from qtpy.QtCore import QEvent, QPointF, Qt
    from qtpy.QtGui import QMouseEvent
    from qtpy.QtOpenGLWidgets import QOpenGLWidget
    from qtpy.QtWidgets import QApplication

    def drag(widget, viewer, start, end, steps: int = 4):
        qtbot.wait(50)  # pending resizes reach the canvas first
        canvas = widget.window().findChild(QOpenGLWidget)
        camera = viewer.camera if not hasattr(viewer, "scene") else viewer.scene.camera
        cy, cx = camera.center[-2:]

        def pixel(yx):
            y, x = (float(v) for v in yx)
            return QPointF(
                (x - cx) * camera.zoom + canvas.width() / 2,
                (y - cy) * camera.zoom + canvas.height() / 2,
            )

        def send(kind, point, button, buttons):
            qtbot.wait(20)  # vispy drops moves < 10 ms apart; napari throttles them
            event = QMouseEvent(
                kind, point, canvas.mapToGlobal(point), button, buttons,
                Qt.KeyboardModifier.NoModifier,
            )  # fmt: skip
            QApplication.sendEvent(canvas, event)

        left, none = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton
        start, end = np.asarray(start, float), np.asarray(end, float)
        send(QEvent.Type.MouseMove, pixel(start), none, none)
        send(QEvent.Type.MouseButtonPress, pixel(start), left, left)
        for t in np.linspace(0, 1, steps + 1)[1:]:
            send(QEvent.Type.MouseMove, pixel(start + t * (end - start)), none, left)
        send(QEvent.Type.MouseButtonRelease, pixel(end), left, none)
        qtbot.wait(20)
        return pixel(start), pixel(end)

    return drag
