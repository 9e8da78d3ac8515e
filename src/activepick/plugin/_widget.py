"""The dock widget: a thin Qt front end over ``active.engine.ActiveLearner`` and
``session.Session``.

Long work (training, prediction, particle extraction) runs in a
``napari.qt.threading.thread_worker`` around the core's generators: yielded
progress dicts drive the progress bar, the returned value updates the layers,
errors become napari notifications, Cancel stops the worker. The review layers
and key bindings are in :mod:`activepick.plugin.review`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)
from superqt import QLabeledDoubleSlider

from ..errors import ActivePickError, Cancelled
from ._layers import (
    MICROGRAPHS_KEY,
    PIXEL_SIZE_KEY,
    coordinate_layer_data,
    micrograph_layer_data,
    micrographs_from_layer,
)
from .review import KEY_BINDINGS, ReviewLayers, camera

#: Coordinate formats offered for export (``io.formats`` names) and their file filters.
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
#: Export formats that write a folder.
FOLDER_FORMATS = ("relion", "cryoppp")
#: Default widget settings.
#: Widget defaults. 30 epochs: the light net needs ~20-30 epochs on a few micrographs
#: (docs/benchmarks/detector.md); partial labels: a user labels a few particles per
#: micrograph, and the rest of a micrograph is not background (SPEC section 4).
DEFAULTS = {"diameter": 64, "batch_size": 20, "epochs": 30, "arch": "light", "partial": True}
PREVIEW = "diameter preview"
GROUND_TRUTH = "ground truth"


def _strategies() -> list[str]:
    try:
        from ..active.strategies import STRATEGIES
    except ImportError:  # pragma: no cover - strategies not installed
        return ["boundary_distance"]
    return list(STRATEGIES)


def _device_text() -> str:
    from ..detector import resolve_device

    device = resolve_device("auto")
    if device.type == "cuda":
        import torch

        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type


class ActivePickWidget(QWidget):
    """Active picking dock widget (``napari-activepick.widget``).

    Public methods mirror the buttons so scripts and tests can drive it:
    :meth:`use_layer`, :meth:`open_folder`, :meth:`load_sample`,
    :meth:`new_session`, :meth:`open_session`, :meth:`import_labels`,
    :meth:`train`, :meth:`predict`, :meth:`next_round`, :meth:`cancel`,
    :meth:`export_picks`, :meth:`extract_particles`. ``detector_options`` holds
    extra ``DetectorConfig`` fields (e.g. ``width``, ``input_size``) not shown in
    the UI.
    """

    def __init__(self, napari_viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.learner = None
        self.session = None
        self.truth: pd.DataFrame | None = None
        self.image_layer = None
        self.detector_options: dict[str, Any] = {}
        self.round_metrics: list[dict] = []
        self.last_result: Any = None
        self.last_error: BaseException | None = None
        self._worker = None
        self._stop = False
        self._started = 0.0
        self._preview = None
        self.review = ReviewLayers(
            napari_viewer, on_message=self.set_status, on_change=self._update_counts
        )
        self._build_ui()
        self.viewer.layers.events.inserted.connect(self._refresh_layer_combo)
        self.viewer.layers.events.removed.connect(self._refresh_layer_combo)
        self.viewer.dims.events.current_step.connect(self._sync_complete_button)
        self._refresh_layer_combo()
        if self.image_layer is None:
            layer = self._candidate_layer()
            if layer is not None:
                self.use_layer(layer)

    # ================================================================== UI
    def _build_ui(self) -> None:
        root = QVBoxLayout(self)
        root.setContentsMargins(4, 4, 4, 4)

        data = QGroupBox("Data")
        form = QFormLayout(data)
        self.layer_combo = QComboBox()
        self.layer_combo.setToolTip("Image layer holding the micrographs (a stack: one per slice)")
        self.layer_combo.activated.connect(self._on_layer_chosen)
        folder_btn = QPushButton("Folder…")
        folder_btn.setToolTip("Open a folder of micrographs (MRC / TIFF) as a stack")
        folder_btn.clicked.connect(self._ask_folder)
        row = QHBoxLayout()
        row.addWidget(self.layer_combo, 1)
        row.addWidget(folder_btn)
        form.addRow("Micrographs", row)
        self.session_label = QLabel("none (decisions are not saved)")
        self.session_label.setWordWrap(True)
        new_btn = QPushButton("New…")
        new_btn.clicked.connect(self._ask_new_session)
        open_btn = QPushButton("Open…")
        open_btn.clicked.connect(self._ask_open_session)
        row = QHBoxLayout()
        row.addWidget(self.session_label, 1)
        row.addWidget(new_btn)
        row.addWidget(open_btn)
        form.addRow("Session", row)
        import_btn = QPushButton("Import labels…")
        import_btn.setToolTip(
            "Add particle labels from a coordinate file (STAR, BOX, CBOX, CS, CSV, Topaz)"
        )
        import_btn.clicked.connect(self._ask_import)
        form.addRow("", import_btn)
        root.addWidget(data)

        settings = QGroupBox("Model")
        form = QFormLayout(settings)
        self.diameter = QSpinBox()
        self.diameter.setRange(4, 4096)
        self.diameter.setValue(DEFAULTS["diameter"])
        self.diameter.setSuffix(" px")
        self.diameter.setToolTip("Particle diameter = box size, in pixels of the micrographs")
        self.preview_check = QCheckBox("preview")
        self.preview_check.setChecked(True)
        self.diameter.valueChanged.connect(self._on_diameter)
        self.preview_check.toggled.connect(lambda _: self._update_preview())
        row = QHBoxLayout()
        row.addWidget(self.diameter, 1)
        row.addWidget(self.preview_check)
        form.addRow("Diameter", row)
        self.min_distance = QSpinBox()
        self.min_distance.setRange(0, 4096)
        self.min_distance.setValue(DEFAULTS["diameter"] // 2)
        self.min_distance.setSuffix(" px")
        self.min_distance.setToolTip(
            "Minimum distance between picks: NMS radius of the detector, and added points "
            "closer than this to a label are refused (no duplicate picks)"
        )
        self.min_distance.valueChanged.connect(self._on_min_distance)
        form.addRow("Min. distance", self.min_distance)
        self.arch = QComboBox()
        self.arch.addItems(["light", "full"])
        self.arch.setToolTip("light: ~3 M parameters (CPU); full: PhosaurusNet ~50 M (GPU)")
        self.device_label = QLabel(_device_text())
        row = QHBoxLayout()
        row.addWidget(self.arch, 1)
        row.addWidget(QLabel("on"))
        row.addWidget(self.device_label)
        form.addRow("Network", row)
        self.strategy = QComboBox()
        self.strategy.addItems(_strategies())
        if "boundary_distance" in _strategies():
            self.strategy.setCurrentText("boundary_distance")
        self.strategy.setToolTip("Uncertainty measure that picks which predictions you review")
        form.addRow("Strategy", self.strategy)
        self.batch_size = QSpinBox()
        self.batch_size.setRange(1, 10000)
        self.batch_size.setValue(DEFAULTS["batch_size"])
        self.batch_size.setToolTip("K: predictions to review per round")
        self.epochs = QSpinBox()
        self.epochs.setRange(1, 1000)
        self.epochs.setValue(DEFAULTS["epochs"])
        row = QHBoxLayout()
        row.addWidget(self.batch_size)
        row.addWidget(QLabel("Epochs"))
        row.addWidget(self.epochs)
        form.addRow("Batch K", row)
        self.partial_check = QCheckBox("learn only near reviewed picks")
        self.partial_check.setChecked(DEFAULTS["partial"])
        self.partial_check.setToolTip(
            "On: only the regions around your labels and rejections (and micrographs marked "
            "fully picked) teach the detector; unlabelled particles elsewhere are not taught "
            "as background. Off: the thesis protocol (everything unlabelled is background)."
        )
        self.partial_check.toggled.connect(lambda _on: self._sync_learner_settings())
        self.complete_btn = QPushButton("Micrograph fully picked")
        self.complete_btn.setCheckable(True)
        self.complete_btn.setToolTip(
            "Mark the micrograph on screen as completely picked: its unlabelled area is "
            "background for training and its predictions are not queued"
        )
        self.complete_btn.clicked.connect(self.toggle_complete)
        row = QHBoxLayout()
        row.addWidget(self.partial_check)
        row.addWidget(self.complete_btn)
        form.addRow("Labels", row)
        root.addWidget(settings)

        run = QGroupBox("Rounds")
        lay = QVBoxLayout(run)
        row = QHBoxLayout()
        self.train_btn = QPushButton("Train")
        self.train_btn.setToolTip("Train the detector on the current labels")
        self.train_btn.clicked.connect(self.train)
        self.predict_btn = QPushButton("Predict")
        self.predict_btn.setToolTip("Predict on every micrograph and queue the K most uncertain")
        self.predict_btn.clicked.connect(self.predict)
        self.round_btn = QPushButton("Next round")
        self.round_btn.setToolTip("Train -> predict -> queue the next K picks to review")
        self.round_btn.clicked.connect(self.next_round)
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.clicked.connect(self.cancel)
        self.cancel_btn.setEnabled(False)
        for b in (self.train_btn, self.predict_btn, self.round_btn, self.cancel_btn):
            row.addWidget(b)
        lay.addLayout(row)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setTextVisible(False)
        lay.addWidget(self.progress)
        self.status = QLabel(
            "Open micrographs, set the diameter, add a few particles, then Next round."
        )
        self.status.setWordWrap(True)
        lay.addWidget(self.status)
        root.addWidget(run)

        review = QGroupBox("Review")
        grid = QGridLayout(review)
        buttons = [
            ("◀ Prev (s)", self.review.previous),
            ("Accept (x)", self.review.accept),
            ("Reject (z)", self.review.reject),
            ("Next (d) ▶", self.review.next),
            ("Remove nearest (c)", self.review.remove_nearest),
            ("Undo (u)", self.review.undo),
        ]
        self.review_buttons: dict[str, QPushButton] = {}
        for i, (text, func) in enumerate(buttons):
            b = QPushButton(text)
            b.clicked.connect(lambda _=False, f=func: f())
            grid.addWidget(b, i // 3, i % 3)
            self.review_buttons[text] = b
        self.position_label = QLabel("no review queue yet")
        grid.addWidget(self.position_label, 2, 0, 1, 3)
        self.counts_label = QLabel("")
        self.counts_label.setWordWrap(True)
        grid.addWidget(self.counts_label, 3, 0, 1, 3)
        keys = ", ".join(
            f"<b>{k}</b> {d.split(' the')[0]}"
            for k, (_, d) in KEY_BINDINGS.items()
            if k != "Control-z"
        )
        help_label = QLabel(
            f"Keys: {keys} (also Ctrl+Z). Drag a queue point (select mode, 3) to move it; "
            "add missed particles in the <i>labels</i> layer (add mode, 2)."
        )
        help_label.setWordWrap(True)
        help_label.setStyleSheet("color: #aaaaaa")
        grid.addWidget(help_label, 4, 0, 1, 3)
        root.addWidget(review)

        self._build_plot(root)

        export = QGroupBox("Export")
        form = QFormLayout(export)
        self.threshold = QLabeledDoubleSlider(Qt.Orientation.Horizontal)
        self.threshold.setRange(0.0, 1.0)
        self.threshold.setDecimals(2)
        self.threshold.setValue(0.5)
        self.threshold.valueChanged.connect(self._on_threshold)
        form.addRow("Threshold", self.threshold)
        self.export_count = QLabel("")
        form.addRow("", self.export_count)
        self.include_predictions = QCheckBox("include predictions ≥ threshold")
        self.include_predictions.toggled.connect(
            lambda _: self._on_threshold(self.threshold.value())
        )
        form.addRow("", self.include_predictions)
        self.format_combo = QComboBox()
        for fmt, text in EXPORT_FORMATS.items():
            self.format_combo.addItem(text, fmt)
        export_btn = QPushButton("Export picks…")
        export_btn.clicked.connect(self._ask_export)
        row = QHBoxLayout()
        row.addWidget(self.format_combo, 1)
        row.addWidget(export_btn)
        form.addRow("Format", row)
        self.box_size = QSpinBox()
        self.box_size.setRange(2, 8192)
        self.box_size.setValue(int(DEFAULTS["diameter"] * 1.5) // 2 * 2)
        self.box_size.setSuffix(" px")
        extract_btn = QPushButton("Extract particles…")
        extract_btn.setToolTip(
            "Cut boxes around the exported picks into a .mrcs stack + RELION STAR"
        )
        extract_btn.clicked.connect(self._ask_extract)
        row = QHBoxLayout()
        row.addWidget(self.box_size, 1)
        row.addWidget(extract_btn)
        form.addRow("Box size", row)
        root.addWidget(export)
        root.addStretch(1)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)

    def _build_plot(self, root) -> None:
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        self.figure = Figure(figsize=(3.2, 1.9), facecolor="#262930", layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(150)
        self.axes = self.figure.add_subplot(111)
        root.addWidget(self.canvas)
        self._update_plot()

    # ================================================================== status
    def set_status(self, text: str) -> None:
        """Show ``text`` on the status line."""
        self.status.setText(text)

    def _error(self, exc: BaseException) -> None:
        from napari.utils.notifications import show_error, show_info

        self.last_error = exc
        if isinstance(exc, Cancelled):
            self.set_status(f"cancelled: {exc}")
            show_info(f"ActivePick: cancelled ({exc})")
            return
        message = str(exc) if isinstance(exc, ActivePickError) else f"{type(exc).__name__}: {exc}"
        self.set_status(f"error: {message}")
        show_error(message)

    def _confirm(self, question: str) -> bool:
        """Ask a yes / no question (tests replace this)."""
        answer = QMessageBox.question(self, "ActivePick", question)
        return answer == QMessageBox.StandardButton.Yes

    # ================================================================== data
    def _candidate_layer(self):
        from napari.layers import Image

        images = [lay for lay in self.viewer.layers if isinstance(lay, Image)]
        with_meta = [lay for lay in images if MICROGRAPHS_KEY in (lay.metadata or {})]
        return (with_meta or images or [None])[-1]

    def _refresh_layer_combo(self, event=None) -> None:
        from napari.layers import Image

        current = self.layer_combo.currentText()
        self.layer_combo.blockSignals(True)
        self.layer_combo.clear()
        for layer in self.viewer.layers:
            if isinstance(layer, Image):
                self.layer_combo.addItem(layer.name)
        if self.image_layer is not None and self.image_layer in self.viewer.layers:
            self.layer_combo.setCurrentText(self.image_layer.name)
        elif current:
            self.layer_combo.setCurrentText(current)
        self.layer_combo.blockSignals(False)
        if self.image_layer is not None and self.image_layer not in self.viewer.layers:
            self.image_layer = None
        if (
            event is not None
            and self.learner is None
            and self._worker is None
            and isinstance(getattr(event, "value", None), Image)
            and MICROGRAPHS_KEY in (event.value.metadata or {})
        ):
            self.use_layer(event.value)

    def _on_layer_chosen(self, index: int) -> None:
        name = self.layer_combo.itemText(index)
        if name in self.viewer.layers and self.viewer.layers[name] is not self.image_layer:
            self.use_layer(self.viewer.layers[name])

    def _config(self):
        from ..detector import DetectorConfig

        diameter = float(self.diameter.value())
        nms = None
        if self.min_distance.value() > 0:
            try:
                from ..matching import circle_iou

                nms = float(circle_iou(float(self.min_distance.value()), diameter / 2))
            except ImportError:  # pragma: no cover - matching not installed
                nms = None
        fields = {
            "arch": self.arch.currentText(),
            "diameter": diameter,
            "epochs": int(self.epochs.value()),
            "device": "auto",
            **({"nms_iou": min(max(nms, 0.01), 0.99)} if nms is not None else {}),
            **self.detector_options,
        }
        return DetectorConfig(**fields)

    def _new_learner(self, micrographs, session=None):
        from ..active.engine import ActiveLearner

        return ActiveLearner(
            micrographs,
            self._config(),
            strategy=self.strategy.currentText(),
            batch_size=int(self.batch_size.value()),
            partial=self.partial_check.isChecked(),
            session=session,
        )

    def current_micrograph(self) -> str | None:
        """Name of the micrograph the viewer shows (the stack slider's position)."""
        names = self.review.names if self.review is not None else []
        if not names:
            return None
        index = int(self.viewer.dims.current_step[0]) if len(names) > 1 else 0
        return names[index] if 0 <= index < len(names) else None

    def toggle_complete(self, checked: bool | None = None) -> None:
        """Mark (or unmark) the micrograph on screen as fully picked."""
        name = self.current_micrograph()
        if self.learner is None or name is None:
            self.set_status("open micrographs first")
            return
        complete = name not in self.learner.complete if checked is None else bool(checked)
        self.learner.mark_complete(name, complete)
        self._sync_complete_button()
        self.set_status(f"{name}: {'fully picked' if complete else 'not marked fully picked'}")

    def _sync_complete_button(self, event=None) -> None:
        name = self.current_micrograph()
        on = self.learner is not None and name is not None and name in self.learner.complete
        self.complete_btn.blockSignals(True)
        self.complete_btn.setChecked(on)
        self.complete_btn.blockSignals(False)

    def use_layer(self, layer) -> None:
        """Use the micrographs of an Image layer (one per slice of a stack) as the pool.

        Starts a new in-memory learner (no labels); open or create a session to
        save decisions.
        """
        if self._busy():
            return
        try:
            micrographs = micrographs_from_layer(layer)
            learner = self._new_learner(micrographs)
        except (ActivePickError, ValueError) as exc:
            self._error(exc)
            return
        self.image_layer = layer
        self.session = None
        self.session_label.setText("none (decisions are not saved)")
        self._attach(learner)
        self._refresh_layer_combo()
        self.set_status(
            f"{len(micrographs)} micrograph(s) from layer {layer.name!r}. Set the diameter, add "
            "particles in the 'labels' layer (add mode) or import labels, then Next round."
        )

    def _add_micrograph_layer(self, micrographs, name: str):
        data, kwargs, _ = micrograph_layer_data(micrographs, name=name)
        layer = self.viewer.add_image(data, **kwargs)
        self.viewer.layers.move(self.viewer.layers.index(layer), 0)
        return layer

    def open_folder(self, folder: str | Path) -> None:
        """Read every micrograph in ``folder`` into a stack layer and use it."""
        from ..io.micrograph import list_micrographs
        from ._reader import read_micrographs

        try:
            mics = read_micrographs(list_micrographs(folder))
        except ActivePickError as exc:
            self._error(exc)
            return
        self.use_layer(self._add_micrograph_layer(mics, Path(folder).name or "micrographs"))

    def load_sample(self, *, truth: bool = True) -> None:
        """Open the sample micrographs (and their ground truth) and use them."""
        from ._sample_data import sample_micrographs, sample_truth

        mics = sample_micrographs()
        self.use_layer(self._add_micrograph_layer(mics, "synthetic micrographs"))
        if truth:
            self.set_ground_truth(sample_truth())

    def set_ground_truth(self, truth: pd.DataFrame, *, show: bool = False) -> None:
        """Known particles for per-round metrics (``metrics.summary``), shown as a hidden layer."""
        names = [m.name for m in self.learner.micrographs] if self.learner else None
        if names is not None:
            truth = truth[truth["micrograph"].isin(names)].reset_index(drop=True)
        self.truth = truth
        if GROUND_TRUTH in self.viewer.layers:
            self.viewer.layers.remove(GROUND_TRUTH)
        data, kwargs, _ = coordinate_layer_data(truth, names, name=GROUND_TRUTH, ground_truth=True)
        kwargs.update(border_color="white", opacity=0.5, visible=show)
        kwargs.pop("border_color_cycle", None)
        kwargs.pop("text", None)
        self.viewer.add_points(data, **kwargs)
        self._update_plot()

    def _attach(self, learner) -> None:
        self.learner = learner
        meta = dict(self.image_layer.metadata) if self.image_layer is not None else {}
        self.review.min_distance = float(self.min_distance.value())
        self.review.attach(learner, meta)
        self.threshold.setValue(float(learner.t_opt))
        self.round_metrics = [h.get("metrics") or {} for h in learner.history]
        self._update_preview()
        self._update_counts()
        self._update_plot()

    def _sync_learner_settings(self) -> None:
        """Apply the widget's settings to the learner (and the session's settings)."""
        if self.learner is None:
            return
        config = self._config()
        if self.learner.config.input_size is not None and "input_size" not in self.detector_options:
            config = dataclasses.replace(config, input_size=None)
        self.learner.config = config
        self.learner.strategy = self.strategy.currentText()
        self.learner.batch_size = int(self.batch_size.value())
        self.learner.partial = self.partial_check.isChecked()
        if self.session is not None:
            settings = {**self.session.settings, **self.learner.settings}
            settings["complete"] = sorted(self.learner.complete)
            try:
                self.session.save_settings(settings)
            except ActivePickError as exc:
                self._error(exc)

    # ================================================================== session
    def _session_paths(self, folder: Path) -> list[Path]:
        """Micrograph files for a session; in-memory micrographs are written into it."""
        from ..io.micrograph import write_micrograph

        paths = []
        for m in self.learner.micrographs:
            if m.path is not None and Path(m.path).is_file() and Path(m.path).stem == m.name:
                paths.append(Path(m.path))
            else:
                out = folder / "micrographs" / f"{m.name}.mrc"
                write_micrograph(out, m.data, pixel_size=m.pixel_size)
                m.path = out
                paths.append(out)
        return paths

    def new_session(self, folder: str | Path, *, overwrite: bool = False) -> bool:
        """Create a session in ``folder`` for the current micrographs; the labels and
        queue made so far are saved into it, and every later decision too."""
        from ..session import Session

        if self.learner is None:
            self.set_status("open micrographs first")
            return False
        if self._busy():
            return False
        folder = Path(folder)
        if Session.exists(folder) and not overwrite:
            if not self._confirm(f"{folder} already holds a session. Overwrite it?"):
                return False
            overwrite = True
        try:
            self._sync_learner_settings()
            settings = {**self.learner.settings, "diameter": float(self.diameter.value())}
            session = Session.create(
                folder, self._session_paths(folder), settings, overwrite=overwrite
            )
            session.save_labels(self.learner.labels)
            session.save_queue(self.learner.queue, self.learner.position)
        except (ActivePickError, OSError) as exc:
            self._error(exc)
            return False
        self.session = session
        self.learner.session = session
        self.session_label.setText(str(session.folder))
        self.set_status(f"session {session.folder}: every decision is saved")
        return True

    def open_session(self, folder: str | Path) -> bool:
        """Open a session: its micrographs, labels, queue position, model and predictions."""
        from ..active.engine import ActiveLearner
        from ..session import Session
        from ._reader import read_micrographs

        if self._busy():
            return False
        try:
            session = Session.open(folder)
            mics = read_micrographs(session.micrograph_paths)
            learner = ActiveLearner.from_session(session, mics)
        except (ActivePickError, OSError, ValueError) as exc:
            self._error(exc)
            return False
        self._set_controls(learner)
        self.image_layer = self._add_micrograph_layer(mics, Path(session.folder).name)
        self.session = session
        self.session_label.setText(str(session.folder))
        self._attach(learner)
        self._refresh_layer_combo()
        self.set_status(
            f"session {session.folder}: round {learner.round}, {learner.counts()['positive']} "
            f"particle labels, pick {min(learner.position + 1, len(learner.queue))} of {len(learner.queue)}"
        )
        return True

    def _set_controls(self, learner) -> None:
        """Show a resumed learner's settings in the widget."""
        cfg = learner.config
        for widget, value in (
            (self.diameter, int(round(cfg.diameter))),
            (self.epochs, int(cfg.epochs)),
            (self.batch_size, int(learner.batch_size)),
        ):
            widget.blockSignals(True)
            widget.setValue(value)
            widget.blockSignals(False)
        self.arch.setCurrentText(cfg.arch)
        self.partial_check.blockSignals(True)
        self.partial_check.setChecked(bool(learner.partial))
        self.partial_check.blockSignals(False)
        if learner.strategy in _strategies():
            self.strategy.setCurrentText(learner.strategy)
        defaults = type(cfg)()
        self.detector_options = {
            k: getattr(cfg, k)
            for k in ("width", "input_size", "batch_size", "lr", "seed", "augment")
            if getattr(cfg, k) != getattr(defaults, k)
        }

    def import_labels(self, path: str | Path) -> int:
        """Add the particles of a coordinate file as labels; returns how many."""
        from ..io.formats import read_coordinates

        if self.learner is None or self._busy():
            return 0
        try:
            picks = read_coordinates(
                path,
                diameter=float(self.diameter.value()),
                shapes=self.learner.shapes,
                on_error="skip",
            )
            picks = picks[picks["micrograph"].isin(set(self.learner.shapes))]
            self.learner.add_labels(picks, source="import")
        except ActivePickError as exc:
            self._error(exc)
            return 0
        self.review.refresh()
        self._update_counts()
        skipped = picks.attrs.get("skipped", [])
        self.set_status(
            f"imported {len(picks)} label(s) from {path}"
            + (f"; skipped: {'; '.join(skipped)}" if skipped else "")
        )
        return len(picks)

    # ================================================================== background work
    def _busy(self) -> bool:
        if self._worker is not None:
            self.set_status("busy: wait for the running job to finish (or Cancel it)")
            return True
        return False

    def _start(
        self, title: str, make_gen: Callable[[Callable[[], bool]], Generator], on_done
    ) -> Any:
        """Run ``make_gen(should_stop)`` in a thread worker; returns the worker."""
        from napari.qt.threading import thread_worker

        if self._busy():
            return None
        if self.learner is None:
            self.set_status("open micrographs first")
            return None
        self._sync_learner_settings()
        self._stop = False
        self.last_error = None

        def should_stop() -> bool:
            return self._stop

        @thread_worker(start_thread=False, ignore_errors=True)  # errors -> self._error
        def work():
            return (yield from make_gen(should_stop))

        worker = work()
        worker.yielded.connect(self._on_progress)
        worker.returned.connect(on_done)
        worker.errored.connect(self._error)
        worker.finished.connect(self._on_finished)
        self._worker = worker
        self._started = time.perf_counter()
        self.review.busy = True
        self._set_running(True)
        self.progress.setValue(0)
        self.set_status(f"{title}…")
        worker.start()
        return worker

    def _set_running(self, running: bool) -> None:
        for b in (self.train_btn, self.predict_btn, self.round_btn):
            b.setEnabled(not running)
        for b in self.review_buttons.values():
            b.setEnabled(not running)
        self.cancel_btn.setEnabled(running)

    def _on_progress(self, info: dict) -> None:
        if not isinstance(info, dict):
            return
        stage = str(info.get("stage", ""))
        step, total = info.get("step", 0), info.get("total") or info.get("steps") or 0
        if stage == "train" and info.get("epochs"):
            steps = info.get("steps") or 1
            done = (int(info.get("epoch", 1)) - 1) * steps + int(step)
            total = int(info["epochs"]) * steps
            loss = info.get("loss")
            loss_text = (
                f", loss {loss:.3f}" if isinstance(loss, float) and np.isfinite(loss) else ""
            )
            text = f"training: epoch {info.get('epoch', 0)}/{info['epochs']}{loss_text}"
        else:
            done = int(step or 0)
            text = f"{stage}: {done}/{total}" if total else stage
        if total:
            self.progress.setValue(int(1000 * min(1.0, done / max(1, int(total)))))
        self.set_status(f"{text} ({time.perf_counter() - self._started:.0f} s)")

    def _on_finished(self) -> None:
        self._worker = None
        self.review.busy = False
        self._set_running(False)

    def cancel(self) -> None:
        """Stop the running job at its next step (the learner is left as before it)."""
        if self._worker is None:
            return
        self._stop = True
        self._worker.quit()
        self.set_status("cancelling…")

    @property
    def worker(self):
        """The running thread worker, or None."""
        return self._worker

    def _round_gen(self, what: str):
        learner, truth = self.learner, self.truth

        def gen(should_stop):
            result: Any = None
            if what in ("train", "round"):
                result = yield from learner.iter_train(should_stop)
            if what in ("predict", "round"):
                yield from learner.iter_predict(should_stop)
                learner.select()
                if learner.history:
                    learner.history[-1]["queued"] = int(len(learner.queue))
                result = learner.history[-1] if learner.history else None
            metrics = None
            if truth is not None and len(truth) and learner.predictions is not None:
                yield {"stage": "evaluate", "step": 0, "total": 1}
                from ..metrics import summary

                metrics = summary(learner.predictions, truth, t_opt=learner.t_opt)
            return {"result": result, "metrics": metrics, "what": what}

        return gen

    def train(self):
        """Train the detector on the current labels (background)."""
        return self._start("training", self._round_gen("train"), self._on_round_done)

    def predict(self):
        """Predict on all micrographs and queue the K most uncertain picks (background)."""
        return self._start("predicting", self._round_gen("predict"), self._on_round_done)

    def next_round(self):
        """Retrain with every label so far, predict, and queue the next K picks (background)."""
        return self._start("next round", self._round_gen("round"), self._on_round_done)

    def _on_round_done(self, out: dict) -> None:
        self.last_result = out
        learner = self.learner
        self.progress.setValue(1000)
        if out.get("metrics") is not None:
            while len(self.round_metrics) < learner.round:
                self.round_metrics.append({})
            self.round_metrics[learner.round - 1] = {
                **out["metrics"],
                "labels": learner.counts()["positive"],
            }
        self.review.refresh()
        self.threshold.setValue(float(learner.t_opt))
        self._on_threshold(self.threshold.value())
        self._update_counts()
        self._update_plot()
        entry = learner.history[-1] if learner.history else {}
        parts = [f"round {learner.round}"]
        if entry.get("train_s") is not None and out["what"] != "predict":
            parts.append(f"trained on {entry.get('labels', 0)} labels in {entry['train_s']:.1f} s")
        if learner.predictions is not None and out["what"] != "train":
            predict_s = entry.get("predict_s")
            timing = f" in {predict_s:.1f} s" if predict_s is not None else ""
            parts.append(f"{len(learner.predictions)} predictions{timing}")
            parts.append(f"{len(learner.queue)} to review (T_opt {learner.t_opt:.2f})")
        self.set_status("; ".join(parts) + ". Review with x / z, then Next round.")

    # ================================================================== review display
    def _update_counts(self) -> None:
        learner = self.learner
        if learner is None:
            return
        queue = learner.queue
        if len(queue) == 0:
            self.position_label.setText("no review queue yet: press Next round")
        elif learner.position >= len(queue):
            self.position_label.setText(f"batch of {len(queue)} reviewed: press Next round")
        else:
            row = queue.iloc[learner.position]
            self.position_label.setText(
                f"pick {learner.position + 1} of {len(queue)} · {row['micrograph']} · "
                f"confidence {row['confidence']:.2f}"
            )
        now = learner.counts(round=learner.round)
        total = learner.counts()
        self.counts_label.setText(
            f"round {learner.round}: accepted {now['accepted']} · moved {now['moved']} · "
            f"added {now['added']} · rejected {now['rejected']}<br>"
            f"all rounds: {total['positive']} particles, {total['rejected']} rejected"
        )
        self._on_threshold(self.threshold.value())

    def _update_plot(self) -> None:
        ax = self.axes
        ax.clear()
        ax.set_facecolor("#262930")
        for spine in ax.spines.values():
            spine.set_color("#888888")
        ax.tick_params(colors="#cccccc", labelsize=7)
        learner = self.learner
        rounds = learner.history if learner is not None else []
        has_metrics = any(m and "f1_topt" in m for m in self.round_metrics)
        if has_metrics:
            xs = [m.get("labels", i + 1) for i, m in enumerate(self.round_metrics) if m]
            for key, label, colour in (
                ("f1_topt", "F1", "#ffcc00"),
                ("pr_auc", "PR-AUC", "#ffffff"),
                ("recall_topt", "recall", "#00ccff"),
                ("precision_topt", "precision", "#ff66cc"),
            ):
                ys = [m.get(key, np.nan) for m in self.round_metrics if m]
                ax.plot(xs, ys, "o-", color=colour, label=label, ms=3, lw=1.2)
            ax.set_ylim(0, 1.02)
            ax.set_xlabel("particle labels", color="#cccccc", fontsize=7)
            ax.set_title("vs ground truth (at T_opt)", color="#cccccc", fontsize=8)
        elif rounds:
            xs = [h.get("round", i + 1) for i, h in enumerate(rounds)]
            pos = [h.get("labels", 0) for h in rounds]
            neg = [h.get("negatives", 0) for h in rounds]
            ax.plot(xs, pos, "o-", color="#00ff00", label="particles", ms=3, lw=1.2)
            ax.plot(xs, neg, "o-", color="#ff4444", label="rejected", ms=3, lw=1.2)
            ax.set_xlabel("round", color="#cccccc", fontsize=7)
            ax.set_title("labels per round", color="#cccccc", fontsize=8)
        else:
            ax.text(
                0.5,
                0.5,
                "metrics appear after the first round",
                ha="center",
                va="center",
                color="#888888",
                fontsize=8,
                transform=ax.transAxes,
            )
            ax.set_xticks([])
            ax.set_yticks([])
        if has_metrics or rounds:
            ax.legend(fontsize=6, facecolor="#262930", labelcolor="#cccccc", edgecolor="#555555")
        self.canvas.draw_idle()

    def _on_threshold(self, value: float) -> None:
        self.review.set_threshold(float(value))
        if self.learner is None or self._worker is not None:
            return
        try:
            picks = self.export_table(threshold=float(value))
        except (ActivePickError, ImportError) as exc:
            self.export_count.setText(f"({exc})")
            return
        n_pred = int((picks["status"] == "predicted").sum())
        self.export_count.setText(
            f"{len(picks)} picks would be exported ({len(picks) - n_pred} labels + {n_pred} predictions)"
        )

    def _on_diameter(self, value: int) -> None:
        old = self.review.diameter
        if self.min_distance.value() == int(old // 2):
            self.min_distance.setValue(int(value) // 2)
        self.box_size.setValue(int(value * 1.5) // 2 * 2)
        if self.learner is not None and self._worker is None:
            self.learner.config = dataclasses.replace(self.learner.config, diameter=float(value))
            self.review.set_diameter(float(value))
        self._update_preview()

    def _on_min_distance(self, value: int) -> None:
        self.review.min_distance = float(value)

    def _update_preview(self) -> None:
        """A circle of the particle diameter at the centre of the view."""
        show = self.preview_check.isChecked() and self.image_layer is not None
        if not show:
            if self._preview is not None and self._preview in self.viewer.layers:
                self._preview.visible = False
            return
        ndim = self.image_layer.ndim
        centre = list(camera(self.viewer).center[-2:])
        point = np.array([[*self.viewer.dims.current_step[: ndim - 2], *centre]], dtype=float)
        if (
            self._preview is None
            or self._preview not in self.viewer.layers
            or self._preview.ndim != ndim
        ):
            if self._preview is not None and self._preview in self.viewer.layers:
                self.viewer.layers.remove(self._preview)
            self._preview = self.viewer.add_points(
                point,
                name=PREVIEW,
                size=self.diameter.value(),
                face_color="transparent",
                border_color="orange",
                border_width=0.06,
                border_width_is_relative=True,
            )
            self.viewer.layers.selection.active = self.review.layers.get("labels", self._preview)
        else:
            self._preview.data = point
            self._preview.size = np.full(1, float(self.diameter.value()))
        self._preview.visible = True

    # ================================================================== export
    def export_table(
        self, *, include_predictions: bool | None = None, threshold: float | None = None
    ) -> pd.DataFrame:
        """The pick table an export writes (labels, optionally predictions >= threshold)."""
        if include_predictions is None:
            include_predictions = self.include_predictions.isChecked()
        if threshold is None:
            threshold = float(self.threshold.value())
        return self.learner.export_picks(
            include_predictions=include_predictions, threshold=threshold
        )

    def _exists(self, path: Path) -> bool:
        return path.exists() and (not path.is_dir() or any(path.iterdir()))

    def export_picks(
        self,
        path: str | Path,
        fmt: str | None = None,
        *,
        include_predictions: bool | None = None,
        threshold: float | None = None,
        overwrite: bool = False,
    ) -> list[Path]:
        """Write the curated picks to ``path`` in ``fmt`` (default: the format box);
        asks before overwriting. Returns the files written."""
        from ..io.formats import write_coordinates

        if self.learner is None:
            return []
        path = Path(path)
        fmt = fmt or self.format_combo.currentData()
        if self._exists(path) and not overwrite and not self._confirm(f"{path} exists. Overwrite?"):
            return []
        try:
            picks = self.export_table(include_predictions=include_predictions, threshold=threshold)
            files = write_coordinates(
                picks,
                path,
                fmt,
                shapes=self.learner.shapes,
                pixel_size=(
                    self.image_layer.metadata.get(PIXEL_SIZE_KEY) if self.image_layer else None
                ),
            )
        except (ActivePickError, OSError) as exc:
            self._error(exc)
            return []
        self.set_status(
            f"exported {len(picks)} picks to {len(files)} file(s) in {fmt} format: {path}"
        )
        return files

    def extract_particles(
        self, out_mrcs: str | Path, *, box_size: int | None = None, overwrite: bool = False
    ):
        """Cut the exported picks into ``out_mrcs`` + a RELION STAR next to it (background);
        returns the worker."""
        from ..io.stack import extract_particles

        out_mrcs = Path(out_mrcs)
        if out_mrcs.suffix.lower() != ".mrcs":
            out_mrcs = out_mrcs.with_suffix(".mrcs")
        out_star = out_mrcs.with_suffix(".star")
        if (out_mrcs.exists() or out_star.exists()) and not overwrite:
            if not self._confirm(f"{out_mrcs} / {out_star.name} exist. Overwrite?"):
                return None
        box = int(box_size or self.box_size.value())
        if self.learner is None:
            return None
        picks = self.export_table()
        mics = list(self.learner.micrographs)
        pixel_size = self.image_layer.metadata.get(PIXEL_SIZE_KEY) if self.image_layer else None

        def gen(should_stop):
            progress: list[dict] = []
            table = extract_particles(
                mics,
                picks,
                box,
                out_mrcs,
                out_star,
                pixel_size=pixel_size,
                progress=progress.append,
                should_stop=should_stop,
            )
            yield {"stage": "extract", "step": 1, "total": 1}
            return table

        def done(table) -> None:
            self.last_result = table
            self.progress.setValue(1000)
            skipped = table.attrs.get("skipped", [])
            self.set_status(
                f"extracted {len(table)} particles of {box} px to {out_mrcs} + {out_star.name}"
                + (f"; skipped: {'; '.join(skipped)}" if skipped else "")
            )

        return self._start("extracting particles", gen, done)

    # ================================================================== dialogs
    def _ask_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder of micrographs")
        if folder:
            self.open_folder(folder)

    def _ask_new_session(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "New session folder")
        if folder:
            self.new_session(folder)

    def _ask_open_session(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open session folder")
        if folder:
            self.open_session(folder)

    def _ask_import(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Import labels", "", "Coordinates (*.star *.cbox *.box *.cs *.csv *.txt *.tsv)"
        )
        if path:
            self.import_labels(path)

    def _ask_export(self) -> None:
        fmt = self.format_combo.currentData()
        if fmt in FOLDER_FORMATS:
            path = QFileDialog.getExistingDirectory(self, "Export folder")
        else:
            path, _ = QFileDialog.getSaveFileName(
                self,
                "Export picks",
                "",
                EXPORT_FORMATS[fmt],
                options=QFileDialog.Option.DontConfirmOverwrite,
            )
        if path:
            self.export_picks(path, fmt)

    def _ask_extract(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self,
            "Particle stack",
            "particles.mrcs",
            "MRC stack (*.mrcs)",
            options=QFileDialog.Option.DontConfirmOverwrite,
        )
        if path:
            self.extract_particles(path)
