"""The widget's settings form (the collapsible *Model* section) and its sync with the
workbench.

The form is a magicgui ``FunctionGui`` (napari's widget library) over
:func:`model_settings`, built with ``persist=True``: magicgui saves its values on every
change into its cache folder (``~/.cache/magicgui/activepick.plugin._settings_form.
model_settings`` on Linux: ``$XDG_CACHE_HOME``, ``%LOCALAPPDATA%`` on Windows,
``~/Library/Caches`` on macOS) and loads them when the form is built, so the last
settings survive a restart. The controls are attributes of the widget (``diameter``,
``min_distance``, ``arch``, ``strategy``, ``review_k``, ``steps``, ``epochs``,
``partial_check``, ``preview_check``: magicgui widgets, ``.value`` / ``.changed``).

Sync: every change is sent to ``Workbench.update_settings`` (saved in the session). A
resumed session's settings win over the persisted ones: :meth:`SettingsForm._show_settings`
writes them into the form after it was built (which persists them as the last
settings), then sends them back once, so derived values (minimum distance, box size)
match the session. Sizes show Å next to px when the session's pixel size is known
(``Workbench.pixel_size``: the MRC header's, or the one entered in the *Data* section).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ..active.pixel_size import angstrom_text
from ..active.settings import DEFAULT_STRATEGY
from ..errors import ActivePickError
from ._layout import DEFAULTS, PREVIEW, _box_for, _device_text, _section, _strategies
from .review import camera


def model_settings(
    diameter: int = DEFAULTS["diameter"],
    preview_check: bool = True,
    min_distance: int = DEFAULTS["diameter"] // 2,
    arch: str = "light",
    strategy: str = DEFAULT_STRATEGY,
    review_k: int = DEFAULTS["review_k"],
    steps: int = DEFAULTS["steps"],
    epochs: int = DEFAULTS["epochs"],
    partial_check: bool = DEFAULTS["partial"],
) -> None:
    """The *Model* section's settings (the form shows and persists them; the widget
    reads them: :meth:`SettingsForm._form_settings`). Sizes in px of the original
    micrographs."""


def build_model_form():
    """The magicgui form of :func:`model_settings` (``persist=True``), plus a gui-only
    ``diameter_angstrom`` label under the diameter."""
    from magicgui import magicgui
    from magicgui.widgets import Label

    form = magicgui(
        model_settings,
        persist=True,
        call_button=False,
        auto_call=False,
        diameter={
            "label": "Diameter (px)",
            "min": 4,
            "max": 4096,
            "tooltip": "Particle diameter in px of the micrographs (= box size)",
        },
        preview_check={"text": "preview the diameter", "tooltip": "A circle at the view's centre"},
        min_distance={
            "label": "Min. distance (px)",
            "min": 0,
            "max": 4096,
            "tooltip": "Minimum distance between picks: the detector's NMS radius; added "
            "points closer than this to a label are refused (no duplicate picks)",
        },
        arch={
            "label": "Network",
            "choices": ["light", "full"],
            "tooltip": "light: ~3 M parameters (CPU); full: PhosaurusNet ~50 M (GPU). "
            f"Runs on {_device_text()}",
        },
        strategy={
            "label": "Strategy",
            "choices": _strategies(),
            "tooltip": "Uncertainty measure that picks which predictions you review",
        },
        review_k={"label": "Review K", "min": 1, "max": 10000, "tooltip": "Predictions per round"},
        steps={
            "label": "Steps",
            "min": 1,
            "max": 100000,
            "tooltip": "Optimiser steps per round: the training budget",
        },
        epochs={
            "label": "Epochs",
            "min": 1,
            "max": 1000,
            "tooltip": "Passes over the labelled micrographs when a round trains from "
            "scratch without a step budget (thesis protocol)",
        },
        partial_check={
            "text": "learn only near reviewed picks",
            "tooltip": "On: only the regions around your labels and rejections (and "
            "micrographs marked fully picked) teach the detector. Off: the thesis protocol "
            "(unlabelled = background).",
        },
    )
    # label " ": magicgui shows the name when the label is empty
    form.insert(1, Label(name="diameter_angstrom", label=" ", gui_only=True, visible=False))
    form.margins = (0, 0, 0, 0)
    return form


class SettingsForm:
    """Mixin of :class:`~activepick.plugin._widget.ActivePickWidget`."""

    _form_quiet = False

    def _build_model_section(self, root) -> None:
        self.settings_form = form = build_model_form()
        for w in form:  # the controls as the widget's attributes (scripts and tests)
            setattr(self, w.name, w)
        self._last_diameter = int(form.diameter.value)  # persisted: maybe not the default
        form.diameter.changed.connect(self._on_diameter)
        form.preview_check.changed.connect(lambda _: self._update_preview())
        for name in (
            "min_distance",
            "arch",
            "strategy",
            "review_k",
            "steps",
            "epochs",
            "partial_check",
        ):
            getattr(form, name).changed.connect(lambda _: self._push_settings())
        _section(root, "Model", expanded=False).addRow(form.native)

    @contextmanager
    def _quiet_form(self) -> Iterator[None]:
        """Set form values without sending each to the workbench (magicgui still
        persists them)."""
        self._form_quiet = True
        try:
            yield
        finally:
            self._form_quiet = False

    # ------------------------------------------------------------------ settings
    def _form_settings(self):
        from ..active.settings import LearnerSettings
        from ..active.workbench import nms_iou_for
        from ..detector.config import DetectorConfig

        d = float(self.diameter.value)
        det = DetectorConfig(
            arch=self.arch.value,
            diameter=d,
            epochs=int(self.epochs.value),
            **(
                {"nms_iou": nms_iou_for(self.min_distance.value, d)}
                if self.min_distance.value
                else {}
            ),
            **self.detector_options,
        )
        return LearnerSettings(
            detector=det,
            strategy=self.strategy.value,
            review_k=int(self.review_k.value),
            train_steps=int(self.steps.value),
            partial=bool(self.partial_check.value),
        )

    def _push_settings(self) -> None:
        """Send the form's settings to the workbench (saved in its session)."""
        if self.workbench is None or self._worker is not None or self._form_quiet:
            return
        try:
            self.workbench.update_settings(
                min_distance=float(self.min_distance.value),
                diameter=float(self.diameter.value),
                arch=self.arch.value,
                epochs=int(self.epochs.value),
                strategy=self.strategy.value,
                review_k=int(self.review_k.value),
                # a session trained for epochs (no step budget) keeps training for epochs
                train_steps=None
                if self.workbench.settings.train_steps is None
                else int(self.steps.value),
                partial=bool(self.partial_check.value),
                **self.detector_options,
            )
        except ActivePickError as exc:
            self._error(exc)
        self.review.set_diameter(float(self.diameter.value))

    def _show_settings(self) -> None:
        """Show the workbench's (resumed) settings in the form: they win over the
        persisted ones, and become the last settings magicgui persists."""
        s, wb = self.workbench.settings, self.workbench
        with self._quiet_form():
            self.diameter.value = int(round(s.diameter))
            self.min_distance.value = int(round(wb.min_distance))
            self.epochs.value = int(s.detector.epochs)
            self.review_k.value = s.review_k
            self.steps.value = s.train_steps or DEFAULTS["steps"]
            self.arch.value = s.detector.arch
            self.strategy.value = s.strategy
            self.partial_check.value = s.partial
        self.box_size.blockSignals(True)
        self.box_size.setValue(_box_for(s.diameter))
        self.box_size.blockSignals(False)
        defaults = type(s.detector)()
        self.detector_options = {
            k: getattr(s.detector, k)
            for k in ("width", "input_size", "batch_size", "lr", "seed", "augment", "device")
            if getattr(s.detector, k) != getattr(defaults, k)
        }

    def _on_diameter(self, value: int) -> None:
        """A new diameter: the minimum distance follows it while it is half the old one."""
        old, self._last_diameter = self._last_diameter, int(value)
        if self._form_quiet:
            return
        if self.min_distance.value == int(old // 2):
            with self._quiet_form():
                self.min_distance.value = int(value) // 2
        self.box_size.setValue(_box_for(value))
        self._push_settings()
        self.show_angstrom()
        self._update_preview()

    def show_angstrom(self) -> None:
        """Show the diameter and the box size in Å next to px when the session's pixel
        size is known (``Workbench.pixel_size``), and the pixel size itself."""
        size = self.workbench.pixel_size if self.workbench is not None else None
        diameter = angstrom_text(self.diameter.value, size)
        self.diameter_angstrom.value = f"= {diameter}" if diameter else ""
        self.diameter_angstrom.visible = bool(diameter)
        box = angstrom_text(self.box_size.value(), size)
        self.box_angstrom.setText(f"= {box}" if box else "")
        self.box_angstrom.setVisible(bool(box))
        self.pixel_size.blockSignals(True)
        self.pixel_size.setValue(size or 0.0)
        self.pixel_size.blockSignals(False)

    def _on_pixel_size(self) -> None:
        """The user entered the pixel size (0: unknown / the header's): saved with the
        session's settings."""
        if self.workbench is None:
            return
        try:
            self.workbench.set_pixel_size(self.pixel_size.value() or None)
        except ActivePickError as exc:
            self._error(exc)
        self.show_angstrom()
        if self.image_layer is not None:  # the display filter's unit and cut-off in Å
            self.display.attach(self.image_layer, self.workbench.pixel_size)

    def _update_preview(self) -> None:
        """A circle of the particle diameter at the centre of the view."""
        layers = self._layer_names("Points")
        if not (self.preview_check.value and self.image_layer is not None):
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
                size=self.diameter.value,
                face_color="transparent",
                border_color="orange",
                border_width=0.06,
                border_width_is_relative=True,
            )
            if "labels" in self._layer_names("Points"):  # clicks add particles, not previews
                self.viewer.layers.selection.active = self.viewer.layers["labels"]
        preview = self.viewer.layers[PREVIEW]
        preview.data = point
        preview.size = [float(self.diameter.value)]
        preview.visible = True
