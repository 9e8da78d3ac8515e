"""The widget's settings form (the collapsible *Model* section) and its sync with the
workbench: every change is sent to ``Workbench.update_settings`` (saved in the
session); a resumed session's settings are shown without signals, then sent back
once, so derived values (minimum distance, box size) match the session.
"""

from __future__ import annotations

from qtpy.QtWidgets import QCheckBox, QComboBox, QLabel

from ..constants import DEFAULT_DIAMETER
from ..errors import ActivePickError
from ._layout import DEFAULTS, PREVIEW, _box_for, _device_text, _row, _section, _spin, _strategies
from .review import camera


class SettingsForm:
    """Mixin of :class:`~activepick.plugin._widget.ActivePickWidget`."""

    def _build_model_section(self, root) -> None:
        form = _section(root, "Model", expanded=False)
        self.diameter = _spin(4, 4096, DEFAULTS["diameter"], " px", "Particle diameter = box size")
        self.preview_check = QCheckBox("preview")
        self.preview_check.setChecked(True)
        self.diameter.valueChanged.connect(self._on_diameter)
        self.preview_check.toggled.connect(lambda _: self._update_preview())
        form.addRow("Diameter", _row(self.diameter, self.preview_check))
        self.min_distance = _spin(
            0,
            4096,
            DEFAULTS["diameter"] // 2,
            " px",
            "Minimum distance between picks: the detector's NMS radius; added points closer "
            "than this to a label are refused (no duplicate picks)",
        )
        self.min_distance.valueChanged.connect(lambda _: self._push_settings())
        form.addRow("Min. distance", self.min_distance)
        self.arch = QComboBox()
        self.arch.addItems(["light", "full"])
        self.arch.setToolTip("light: ~3 M parameters (CPU); full: PhosaurusNet ~50 M (GPU)")
        self.arch.currentTextChanged.connect(lambda _: self._push_settings())
        form.addRow("Network", _row(self.arch, "on", QLabel(_device_text())))
        self.strategy = QComboBox()
        self.strategy.addItems(_strategies())
        self.strategy.setCurrentText("boundary_distance")
        self.strategy.setToolTip("Uncertainty measure that picks which predictions you review")
        self.strategy.currentTextChanged.connect(lambda _: self._push_settings())
        form.addRow("Strategy", self.strategy)
        self.review_k = _spin(1, 10000, DEFAULTS["review_k"], "", "K: predictions per round")
        self.steps = _spin(
            1, 100000, DEFAULTS["steps"], "", "Optimiser steps per round: the training budget"
        )
        self.epochs = _spin(
            1,
            1000,
            DEFAULTS["epochs"],
            "",
            "Passes over the labelled micrographs when a round "
            "trains from scratch without a step budget (thesis protocol)",
        )
        for box in (self.review_k, self.steps, self.epochs):
            box.valueChanged.connect(lambda _: self._push_settings())
        form.addRow("Review K", _row(self.review_k, "Steps", self.steps))
        form.addRow("Epochs", self.epochs)
        self.partial_check = QCheckBox("learn only near reviewed picks")
        self.partial_check.setChecked(DEFAULTS["partial"])
        self.partial_check.setToolTip(
            "On: only the regions around your labels and rejections (and micrographs marked "
            "fully picked) teach the detector. Off: the thesis protocol (unlabelled = background)."
        )
        self.partial_check.toggled.connect(lambda _: self._push_settings())
        form.addRow("Labels", self.partial_check)

    # ------------------------------------------------------------------ settings
    def _form_settings(self):
        from ..active.settings import LearnerSettings
        from ..active.workbench import nms_iou_for
        from ..detector.config import DetectorConfig

        d = float(self.diameter.value())
        det = DetectorConfig(
            arch=self.arch.currentText(),
            diameter=d,
            epochs=int(self.epochs.value()),
            **(
                {"nms_iou": nms_iou_for(self.min_distance.value(), d)}
                if self.min_distance.value()
                else {}
            ),
            **self.detector_options,
        )
        return LearnerSettings(
            detector=det,
            strategy=self.strategy.currentText(),
            review_k=int(self.review_k.value()),
            train_steps=int(self.steps.value()),
            partial=self.partial_check.isChecked(),
        )

    def _push_settings(self) -> None:
        """Send the form's settings to the workbench (saved in its session)."""
        if self.workbench is None or self._worker is not None:
            return
        try:
            self.workbench.update_settings(
                min_distance=float(self.min_distance.value()),
                diameter=float(self.diameter.value()),
                arch=self.arch.currentText(),
                epochs=int(self.epochs.value()),
                strategy=self.strategy.currentText(),
                review_k=int(self.review_k.value()),
                # a session trained for epochs (no step budget) keeps training for epochs
                train_steps=None
                if self.workbench.settings.train_steps is None
                else int(self.steps.value()),
                partial=self.partial_check.isChecked(),
                **self.detector_options,
            )
        except ActivePickError as exc:
            self._error(exc)
        self.review.set_diameter(float(self.diameter.value()))

    def _show_settings(self) -> None:
        """Show the workbench's (resumed) settings in the form, then push them back."""
        s, wb = self.workbench.settings, self.workbench
        for box, value in (
            (self.diameter, int(round(s.diameter))),
            (self.min_distance, int(round(wb.min_distance))),
            (self.box_size, _box_for(s.diameter)),
            (self.epochs, int(s.detector.epochs)),
            (self.review_k, s.review_k),
            (self.steps, s.train_steps or DEFAULTS["steps"]),
        ):
            box.blockSignals(True)
            box.setValue(value)
            box.blockSignals(False)
        for combo, value in ((self.arch, s.detector.arch), (self.strategy, s.strategy)):
            combo.blockSignals(True)
            combo.setCurrentText(value)
            combo.blockSignals(False)
        self.partial_check.blockSignals(True)
        self.partial_check.setChecked(s.partial)
        self.partial_check.blockSignals(False)
        defaults = type(s.detector)()
        self.detector_options = {
            k: getattr(s.detector, k)
            for k in ("width", "input_size", "batch_size", "lr", "seed", "augment", "device")
            if getattr(s.detector, k) != getattr(defaults, k)
        }

    def _on_diameter(self, value: int) -> None:
        old = float(self.learner.config.diameter) if self.learner else DEFAULT_DIAMETER
        if self.min_distance.value() == int(old // 2):
            self.min_distance.blockSignals(True)
            self.min_distance.setValue(int(value) // 2)
            self.min_distance.blockSignals(False)
        self.box_size.setValue(_box_for(value))
        self._push_settings()
        self._update_preview()

    def _update_preview(self) -> None:
        """A circle of the particle diameter at the centre of the view."""
        layers = self._layer_names("Points")
        if not (self.preview_check.isChecked() and self.image_layer is not None):
            if PREVIEW in layers:
                self.viewer.layers[PREVIEW].visible = False
            return
        ndim = self.image_layer.ndim
        centre = list(camera(self.viewer).center[-2:])
        point = [[*self.viewer.dims.current_step[: ndim - 2], *centre]]
        if PREVIEW in layers and self.viewer.layers[PREVIEW].ndim != ndim:
            self.viewer.layers.remove(PREVIEW)
            layers.remove(PREVIEW)
        if PREVIEW not in layers:
            self.viewer.add_points(
                point,
                name=PREVIEW,
                size=self.diameter.value(),
                face_color="transparent",
                border_color="orange",
                border_width=0.06,
                border_width_is_relative=True,
            )
            if "labels" in self._layer_names("Points"):  # clicks add particles, not previews
                self.viewer.layers.selection.active = self.viewer.layers["labels"]
        preview = self.viewer.layers[PREVIEW]
        preview.data = point
        preview.size = [float(self.diameter.value())]
        preview.visible = True
