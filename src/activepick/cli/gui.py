"""``activepick gui``: open napari with the active-picking dock widget.

    activepick gui                       # empty viewer + widget
    activepick gui --sample              # the shipped synthetic micrographs + ground truth
    activepick gui mics/                 # a folder (or files) of micrographs
    activepick gui --session run1 mics/  # create run1 for these micrographs (or reopen it)

napari and Qt are imported only when the command runs (the CLI stays GUI-free).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ActivePickError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "gui",
        help="open napari with the active-picking widget",
        description="Open napari with the ActivePick dock widget (needs a display).",
    )
    p.add_argument("micrographs", nargs="*", type=Path, help="micrograph files or a folder")
    p.add_argument(
        "--sample",
        action="store_true",
        help="open the synthetic sample micrographs and their ground truth",
    )
    p.add_argument(
        "--session",
        type=Path,
        metavar="DIR",
        help="session folder: reopened when it holds a session, else created",
    )
    p.set_defaults(func=run)


def open_gui(args: argparse.Namespace, *, show: bool = True):
    """Build the viewer and widget for ``args``; returns ``(viewer, widget)``."""
    import napari

    from ..plugin._reader import get_micrograph_reader
    from ..plugin._widget import ActivePickWidget
    from ..session import Session

    viewer = napari.Viewer(title="ActivePick", show=show)
    try:
        _, widget = viewer.window.add_plugin_dock_widget("napari-activepick", "Active picking")
    except Exception:  # plugin not registered (e.g. running from a bare source tree)
        widget = ActivePickWidget(viewer)
        viewer.window.add_dock_widget(widget, name="Active picking", area="right")
    session = args.session
    if session is not None and Session.exists(session):
        if not widget.open_session(session):
            raise ActivePickError(f"{session}: {widget.status.text()}")
        return viewer, widget
    if args.sample:
        widget.load_sample()
    elif args.micrographs:
        reader = get_micrograph_reader([str(p) for p in args.micrographs])
        if reader is None:
            raise ActivePickError(
                f"no MRC / TIFF micrographs in {', '.join(str(p) for p in args.micrographs)}"
            )
        data, kwargs, _ = reader()[0]
        widget.use_layer(viewer.add_image(data, **kwargs))
    if session is not None:
        if widget.learner is None:
            raise ActivePickError(f"{session}: give micrographs (or --sample) to start a session")
        widget.new_session(session)
    return viewer, widget


def run(args: argparse.Namespace) -> int:
    import napari

    open_gui(args)
    napari.run()
    return 0
