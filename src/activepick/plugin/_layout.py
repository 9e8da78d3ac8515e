"""The dock widget's layout: collapsible sections of Qt controls, and small helpers.

:func:`build_ui` creates the controls as attributes of the widget (``diameter``,
``epochs``, ``threshold``, ...; scripts and tests drive them) and connects them to
the widget's methods. The *Model* section is a magicgui form (:mod:`._settings_form`);
the other sections are Qt controls.
"""

from __future__ import annotations

from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)
from superqt import QCollapsible

from ..active.settings import DEFAULT_REVIEW_K, DEFAULT_TRAIN_STEPS
from ..constants import DEFAULT_DIAMETER
from ._browser import MicrographBrowser, follow_viewer, show_micrograph_names
from ._display import DisplayPanel
from .review import KEY_BINDINGS

#: Export formats (``io.formats`` names) and their file-dialog filters.
EXPORT_FORMATS: dict[str, str] = {
    "star": "RELION STAR, one file (*.star)",
    "relion": "RELION pick files + index (folder)",
    "cbox": "crYOLO CBOX (*.cbox or folder)",
    "box": "EMAN BOX (*.box or folder)",
    "cs": "cryoSPARC (*.cs)",
    "topaz": "Topaz (*.txt)",
    "csv": "pick table CSV (*.csv)",
    "cryoppp": "CryoPPP CSVs (folder)",
}
FOLDER_FORMATS = ("relion", "cryoppp")
#: Widget defaults: 30 epochs (the light net needs ~20-30 on a few micrographs,
#: docs/benchmarks/detector.md); partial labels (a few clicks are not a full labelling).
DEFAULTS = {
    "diameter": int(DEFAULT_DIAMETER),
    "review_k": DEFAULT_REVIEW_K,
    "steps": DEFAULT_TRAIN_STEPS,
    "epochs": 30,
    "partial": True,
}
PREVIEW = "diameter preview"
GROUND_TRUTH = "ground truth"


def _button(text: str, slot, tip: str = "") -> QPushButton:
    b = QPushButton(text)
    b.setToolTip(tip)
    b.clicked.connect(lambda *_: slot())
    return b


def _spin(low: int, high: int, value: int, suffix: str = "", tip: str = "") -> QSpinBox:
    box = QSpinBox()
    box.setRange(low, high)
    box.setValue(value)
    box.setSuffix(suffix)
    box.setToolTip(tip)
    return box


def _row(*widgets) -> QHBoxLayout:
    row = QHBoxLayout()
    for w in widgets:
        row.addWidget(QLabel(w) if isinstance(w, str) else w)
    return row


class _SectionBody(QWidget):
    """The body of a collapsible section. superqt's ``QCollapsible`` caps its content's
    height at the content's size hint, and Qt's form layout reports a minimum height
    that ignores wrapped rows and labels. Both hints here are the height the rows need
    at the body's current width (they grow as the dock narrows), and a width change
    re-applies the cap: no row is squashed below its minimum size, the dock's scroll
    area scrolls instead."""

    def __init__(self, box: QCollapsible) -> None:
        super().__init__()
        self._box = box

    def _rows_height(self, hint):
        """``hint`` at least as tall as the rows need at the current width."""
        layout = self.layout()
        if layout is not None and layout.hasHeightForWidth() and self.width() > 0:
            hint.setHeight(max(hint.height(), layout.totalHeightForWidth(self.width())))
        return hint

    def sizeHint(self):  # noqa: N802 (Qt)
        return self._rows_height(super().sizeHint())

    def minimumSizeHint(self):  # noqa: N802 (Qt)
        return self._rows_height(super().minimumSizeHint())

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt)
        super().resizeEvent(event)
        if event.size().width() != event.oldSize().width():
            self.updateGeometry()  # the hints above changed with the width
            if self._box.isExpanded():
                self._box.expand(animate=False)  # the cap for the new width


def _section(root: QVBoxLayout, title: str, expanded: bool = True) -> QFormLayout:
    """A collapsible section (``QCollapsible`` with a :class:`_SectionBody`) added to
    ``root``; returns its form layout (labels above the fields when the dock is narrow)."""
    box = QCollapsible(title)
    default = box.content()
    box.layout().removeWidget(default)
    default.deleteLater()
    body = _SectionBody(box)
    form = QFormLayout(body)
    form.setContentsMargins(5, 0, 0, 0)
    form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
    box.setContent(body)
    if expanded:
        box.expand(animate=False)
    else:
        box.collapse(animate=False)
    root.addWidget(box)
    return form


def _combo(tip: str = "") -> QComboBox:
    """A combo box that elides long entries instead of widening the dock."""
    combo = QComboBox()
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(10)
    combo.setToolTip(tip)
    return combo


def wrappable_path(path) -> str:
    """``path`` as label text that may wrap after each folder separator."""
    return str(path).replace("/", "/\u200b").replace("\\", "\\\u200b")


def _scrolling(w) -> QVBoxLayout:
    """The widget's sections go into a scroll area filling ``w``: when the dock is smaller
    than their minimum size they scroll instead of squashing buttons. Returns the layout
    of the scrolled content."""
    outer = QVBoxLayout(w)
    outer.setContentsMargins(0, 0, 0, 0)
    w.scroll_area = QScrollArea()
    w.scroll_area.setWidgetResizable(True)
    w.scroll_area.setFrameShape(QFrame.Shape.NoFrame)
    content = QWidget()
    w.scroll_area.setWidget(content)
    outer.addWidget(w.scroll_area)
    root = QVBoxLayout(content)
    root.setContentsMargins(4, 4, 4, 4)
    return root


def _box_for(diameter: float) -> int:
    from ..active.workbench import default_box_size

    return default_box_size(diameter)


def _key_help() -> str:
    keys = [(k, d) for k, (_, d) in KEY_BINDINGS.items() if k != "Control-z"]
    text = "; ".join(f"{k}: {d}" for k, d in keys) + " (also Ctrl+Z)."
    return text + (
        " Drag a queue point (select mode, 3) to move it; add missed particles in the "
        "'labels' layer (add mode, 2). Select several queue points, then x / z decides all."
    )


def _strategies() -> list[str]:
    from ..active.strategies import STRATEGIES

    return list(STRATEGIES)


def _device_text() -> str:
    from ..detector import resolve_device

    device = resolve_device("auto")
    if device.type == "cuda":
        import torch

        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type


def build_ui(w) -> None:
    """Lay out the widget's sections (collapsible) and connect their controls."""
    root = _scrolling(w)
    form = _section(root, "Data")
    w.layer_combo = _combo("Image layer holding the micrographs (a stack: one per slice)")
    w.layer_combo.activated.connect(w._on_layer_chosen)
    form.addRow("Micrographs", w.layer_combo)
    w.session_label = QLabel("none (decisions are not saved)")
    w.session_label.setWordWrap(True)
    form.addRow("Session", w.session_label)
    w.pixel_size = QDoubleSpinBox()
    w.pixel_size.setRange(0.0, 100.0)
    w.pixel_size.setDecimals(3)
    w.pixel_size.setSingleStep(0.01)
    w.pixel_size.setSuffix(" Å/px")
    w.pixel_size.setSpecialValueText("unknown")
    w.pixel_size.setToolTip(
        "Pixel size of the micrographs: from the MRC header when it gives one; else enter it "
        "once per session (saved with the session). Sizes then show Å next to px, and exports "
        "write it (RELION optics block, .mrcs header)."
    )
    w.pixel_size.editingFinished.connect(w._on_pixel_size)
    form.addRow("Pixel size", w.pixel_size)
    buttons = QGridLayout()
    for i, (text, slot, tip) in enumerate(
        [
            ("Open folder…", w._ask_folder, "Open a folder of micrographs"),
            ("Import labels…", w._ask_import, "Add the particles of a coordinate file"),
            ("New session…", w._ask_new_session, "Save every decision in a session folder"),
            ("Open session…", w._ask_open_session, "Resume a session"),
        ]
    ):
        buttons.addWidget(_button(text, slot, tip), i // 2, i % 2)
    form.addRow(buttons)

    form = _section(root, "Display", expanded=False)
    w.display = DisplayPanel(w.viewer)
    form.addRow(w.display)

    w._build_model_section(root)

    run = QVBoxLayout()
    w.train_btn = _button("Train", w.train, "Train the detector on the labels")
    w.predict_btn = _button("Predict", w.predict, "Predict and queue K picks")
    w.round_btn = _button("Next round", w.next_round, "Train, predict, queue")
    w.cancel_btn = _button("Cancel", w.cancel)
    w.cancel_btn.setEnabled(False)
    run.addLayout(_row(w.train_btn, w.predict_btn, w.round_btn, w.cancel_btn))
    w.progress = QProgressBar()
    w.progress.setRange(0, 1000)
    w.progress.setTextVisible(False)
    run.addWidget(w.progress)
    w.status = QLabel("Open micrographs, set the diameter, add a few particles, Next round.")
    w.status.setWordWrap(True)
    run.addWidget(w.status)
    root.addLayout(run)

    form = _section(root, "Review")
    grid = QGridLayout()
    w.review_buttons: dict[str, QPushButton] = {}
    for i, (text, func) in enumerate(
        [
            ("◀ Prev (s)", w.review.previous),
            ("Accept (x)", w.review.accept),
            ("Reject (z)", w.review.reject),
            ("Next (d) ▶", w.review.next),
            ("Remove (c)", w.review.remove_nearest),
            ("Undo (u)", w.review.undo),
            ("Complete (f)", w.review.complete_reviewed),
            ("Confirm sure (b)", w.review.confirm_confident),
        ]
    ):
        b = _button(text, lambda _=False, f=func: f())
        grid.addWidget(b, i // 3, i % 3)
        w.review_buttons[text] = b
    form.addRow(grid)
    w.complete_btn = QPushButton("Micrograph fully picked (F)")
    w.complete_btn.setCheckable(True)
    w.complete_btn.setToolTip(
        "The micrograph on screen is completely picked: its unlabelled area is background "
        "for training and its predictions are not queued"
    )
    w.complete_btn.clicked.connect(w.toggle_complete)
    help_btn = QToolButton()
    help_btn.setText("?")
    help_btn.setToolTip(_key_help())
    help_btn.clicked.connect(lambda: w.set_status(_key_help()))
    form.addRow(_row(w.complete_btn, help_btn))
    w.position_label = QLabel("no review queue yet")
    w.position_label.setWordWrap(True)
    w.counts_label = QLabel("")
    w.counts_label.setWordWrap(True)
    form.addRow(w.position_label)
    form.addRow(w.counts_label)

    from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
    from matplotlib.figure import Figure

    form = _section(root, "Progress plot", expanded=False)
    w.figure = Figure(figsize=(3.0, 1.8), facecolor="#262930", layout="constrained")
    w.canvas = FigureCanvasQTAgg(w.figure)
    w.canvas.setMinimumHeight(140)
    w.axes = w.figure.add_subplot(111)
    form.addRow(w.canvas)
    w._update_plot()

    form = _section(root, "Micrographs", expanded=False)
    w.browser = MicrographBrowser()
    w.browser.setMinimumHeight(160)
    w.browser.setToolTip("Click a row to show that micrograph; click a header to sort.")
    form.addRow(w.browser)
    follow_viewer(w.browser, w.viewer)

    w._build_export_section(root)
    root.addStretch(1)


def refresh_browser(w) -> None:
    """Fill the micrograph table from the workbench and name the slider's micrographs
    (the name follows the slider from the first call on)."""
    from ..active.browser import micrograph_table

    lr = w.learner
    if lr is None:
        return
    names = [m.name for m in lr.micrographs]
    w.browser.set_table(
        micrograph_table(
            names,
            predictions=lr.predictions,
            labels=lr.labels,
            t_opt=lr.t_opt,
            complete=lr.complete,
        )
    )
    if getattr(w, "_names_shown", None) != names:
        if getattr(w, "_stop_names", None) is not None:
            w._stop_names()
        w._stop_names, w._names_shown = show_micrograph_names(w.viewer, names), names
