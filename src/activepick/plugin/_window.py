"""napari's main window at a usable size for picking (Qt only, no napari API).

napari opens its window at the size of its contents (1089 x 737 px measured on a
1920 x 1080 screen), which leaves the canvas about 300 px wide once the dock widget is
in. :func:`fit_window` enlarges it once, when the dock widget is first shown (from the
Plugins menu or ``activepick gui``).
"""

from __future__ import annotations

#: The smallest window that leaves a usable canvas beside the layer list and the dock.
MIN_WINDOW = (1400, 850)
#: Share of the screen's free area the window takes when it is enlarged.
SCREEN_SHARE = 0.85


def fit_window(window) -> tuple[int, int]:
    """Enlarge ``window`` (a ``QMainWindow``) to at least :data:`MIN_WINDOW`, and to
    :data:`SCREEN_SHARE` of the screen's free area, centred on that screen; maximise it
    where the screen is smaller than :data:`MIN_WINDOW`. A maximised, full-screen or
    larger window is left as it is (never shrunk). Returns the window's size."""
    from qtpy.QtWidgets import QApplication

    if window.isMaximized() or window.isFullScreen():
        return window.width(), window.height()
    screen = window.screen() or QApplication.primaryScreen()
    free = screen.availableGeometry()
    frame_w = window.frameGeometry().width() - window.width()
    frame_h = window.frameGeometry().height() - window.height()
    room_w, room_h = free.width() - frame_w, free.height() - frame_h
    min_w, min_h = MIN_WINDOW
    if room_w < min_w or room_h < min_h:
        window.setGeometry(free.x(), free.y(), room_w, room_h)  # without a window manager
        window.showMaximized()
        return window.width(), window.height()
    want_w = max(window.width(), min_w, int(SCREEN_SHARE * room_w))
    want_h = max(window.height(), min_h, int(SCREEN_SHARE * room_h))
    want_w, want_h = min(want_w, room_w), min(want_h, room_h)
    if (want_w, want_h) != (window.width(), window.height()):
        window.resize(want_w, want_h)
        frame = window.frameGeometry()
        frame.moveCenter(free.center())
        window.move(frame.topLeft())
    return window.width(), window.height()
