"""The dock widget's *Display* section: a low-pass filter and automatic contrast.

The filtered micrographs are a layer of their own, ``"<name> (low-pass)"``,
inserted just above the micrograph layer, which is hidden while the filter is on
(napari does not slice a hidden layer, so the slider costs the same). Its data are
the lazy levels of an :class:`activepick.display.DisplayPyramid`: a slice is
filtered when it is shown, on the pyramid level that samples the cut-off four times,
and the layer is scaled (and shifted half a block) onto the micrographs' pixels.
The micrograph layer's data, the workbench's micrographs, training and prediction
never change: only what is drawn does.

Automatic contrast sets the shown layer's ``contrast_limits`` to the 0.5-99.5
percentiles of the micrograph on screen (filtered, at its coarsest level) whenever
the slider moves to another micrograph or the filter changes.

:class:`MicrographDisplay` does the work without Qt (``perf/bench_open.py`` drives
it on a headless viewer); :class:`DisplayPanel` is its controls.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QWidget,
)

from ..display import (
    ANGSTROM,
    CONTRAST_PERCENTILES,
    PIXEL,
    DisplayPyramid,
    array_levels,
    cutoff_px,
    lowpass_presets,
)
from ._layers import LAZY_STACK_KEY

#: Metadata key of a display layer: the name of the micrograph layer it shows.
DISPLAY_OF_KEY = "activepick_display_of"
#: Appended to the micrograph layer's name to name its filtered display layer.
DISPLAY_SUFFIX = " (low-pass)"
#: The low-pass choices that are not presets.
OFF, CUSTOM = "off", "custom"


def is_display_layer(layer: Any) -> bool:
    """Whether ``layer`` is a filtered display layer made here (not micrographs)."""
    return DISPLAY_OF_KEY in (getattr(layer, "metadata", None) or {})


def _layer_source(layer) -> tuple[Any, tuple[int, int, int], int] | None:
    """``(source, (N, H, W), n_levels)`` of a micrograph Image layer for a
    :class:`DisplayPyramid`, or None when the layer is not 2-D or a 3-D stack."""
    stack = (layer.metadata or {}).get(LAZY_STACK_KEY)
    n_levels = len(layer.data) if layer.multiscale else 1
    if stack is not None:
        return stack.padded, tuple(stack.shape), n_levels
    data = layer.data[0] if layer.multiscale else layer.data
    if data.ndim == 2:
        data = data[None]
    if data.ndim != 3 or getattr(layer, "rgb", False):
        return None
    return array_levels(data), tuple(int(s) for s in data.shape), n_levels


class MicrographDisplay:
    """Shows the micrograph layer through a low-pass filter and / or automatic
    contrast (no Qt): :meth:`attach` a layer, then :meth:`set_cutoff` and
    :attr:`auto_contrast`. :attr:`shown_layer` is the layer on screen."""

    def __init__(self, viewer, *, on_off=None) -> None:
        self.viewer = viewer
        self._on_off = on_off  # called when the filter goes off by a removed layer
        self.source_layer = None
        self.pixel_size: float | None = None
        self.cutoff_px: float | None = None
        self.pyramid: DisplayPyramid | None = None
        self._auto = False
        self._raw: DisplayPyramid | None = None
        self._source: tuple | None = None
        self._shown_index: int | None = None
        self._changing = False
        viewer.dims.events.current_step.connect(self._on_step)
        viewer.layers.events.removed.connect(self._on_removed)

    # ------------------------------------------------------------------ layers
    @property
    def display_layer(self):
        """The filtered layer, or None while the filter is off."""
        if self.source_layer is None:
            return None
        name = self.source_layer.name + DISPLAY_SUFFIX
        return self.viewer.layers[name] if name in self.viewer.layers else None

    @property
    def shown_layer(self):
        """The layer on screen: the filtered one, else the micrograph layer."""
        layer = self.display_layer
        return self.source_layer if layer is None else layer

    def attach(self, layer, pixel_size: float | None) -> None:
        """Show micrograph ``layer`` (pixel size in Å/px or None) with the current
        cut-off and contrast; the layer shown before gets its own display back."""
        if self.source_layer is not None and self.source_layer.name != layer.name:
            self._remove_display()
        self.source_layer, self.pixel_size = layer, pixel_size
        self._source = _layer_source(layer)
        self._raw = None
        if self._source is not None:
            source, shape, n_levels = self._source
            self._raw = DisplayPyramid(source, shape, n_levels=n_levels)
        self.set_cutoff(self.cutoff_px)

    def set_cutoff(self, cutoff: float | None) -> None:
        """Low-pass the display at ``cutoff`` px of the micrographs (None: off)."""
        self.cutoff_px = None if cutoff is None else float(cutoff)
        if self.source_layer is None:
            return
        self._remove_display()
        if self.cutoff_px is not None and self._source is not None:
            self._add_display()
        self._shown_index = None
        self._update_contrast()

    def _add_display(self) -> None:
        from napari.layers import Image

        source, shape, n_levels = self._source
        src = self.source_layer
        self.pyramid = DisplayPyramid(source, shape, n_levels=n_levels, cutoff_px=self.cutoff_px)
        levels = self.pyramid.to_dask()
        if src.ndim == 2:
            levels = [level[0] for level in levels]
        f = self.pyramid.factor
        scale, translate = np.array(src.scale, float), np.array(src.translate, float)
        translate[-2:] += scale[-2:] * (f - 1) / 2  # a block's centre
        scale[-2:] *= f
        layer = Image(
            levels if len(levels) > 1 else levels[0],
            multiscale=len(levels) > 1,
            name=src.name + DISPLAY_SUFFIX,
            scale=scale,
            translate=translate,
            colormap="gray",
            contrast_limits=self.pyramid.contrast_limits(self._index()),
            interpolation2d="linear",
            cache=False,
            metadata={DISPLAY_OF_KEY: src.name, "cutoff_px": self.cutoff_px},
        )
        active = self.viewer.layers.selection.active
        active_name = active.name if active is not None else None
        self._changing = True
        try:
            self.viewer.layers.insert(self.viewer.layers.index(src.name) + 1, layer)
            src.visible = False
        finally:
            self._changing = False
        if active_name in self.viewer.layers:  # clicks keep going where they went
            self.viewer.layers.selection.active = self.viewer.layers[active_name]

    def _remove_display(self) -> None:
        layer = self.display_layer
        self.pyramid = None
        if layer is not None:
            self._changing = True
            try:
                self.viewer.layers.remove(layer.name)
            finally:
                self._changing = False
        if self.source_layer is not None and self.source_layer.name in self.viewer.layers:
            self.source_layer.visible = True

    def _on_removed(self, event) -> None:
        if self._changing or self.source_layer is None:
            return
        name = getattr(getattr(event, "value", None), "name", None)
        if name == self.source_layer.name:  # the micrographs went: so does their display
            self._remove_display()
            self.source_layer = self._source = self._raw = None
        elif name == self.source_layer.name + DISPLAY_SUFFIX:  # removed by hand: filter off
            self.pyramid = None
            self.cutoff_px = None
            self.source_layer.visible = True
            self._shown_index = None
            self._update_contrast()
            if self._on_off is not None:
                self._on_off()

    # ------------------------------------------------------------------ contrast
    @property
    def auto_contrast(self) -> bool:
        """Contrast limits from the percentiles of each micrograph shown."""
        return self._auto

    @auto_contrast.setter
    def auto_contrast(self, on: bool) -> None:
        self._auto = bool(on)
        self._shown_index = None
        self._update_contrast()

    def _index(self) -> int:
        """The stack index on screen (0 for one micrograph)."""
        if self.source_layer is None or self.source_layer.ndim < 3:
            return 0
        return int(self.viewer.dims.current_step[0])

    def _on_step(self, event=None) -> None:
        if self._auto and self._index() != self._shown_index:
            self._update_contrast()

    def _update_contrast(self) -> None:
        pyramid = self.pyramid or self._raw
        layer = self.shown_layer
        if not self._auto or pyramid is None or layer is None:
            return
        index = self._index()
        if not 0 <= index < pyramid.shape[0]:
            return
        self._shown_index = index
        lo, hi = pyramid.contrast_limits(index, CONTRAST_PERCENTILES)
        coarse = pyramid.slice(index, pyramid.n_levels - 1)
        low, high = float(np.nanmin(coarse)), float(np.nanmax(coarse))
        layer.contrast_limits_range = (min(lo, low), max(hi, high))
        layer.contrast_limits = (lo, hi)


class DisplayPanel(QWidget):
    """The *Display* controls over a :class:`MicrographDisplay` (``display``):
    low-pass off / presets / custom (Å when the pixel size is known, else px) and
    automatic contrast. Scripts and tests call :meth:`set_lowpass`."""

    def __init__(self, viewer, parent=None) -> None:
        super().__init__(parent)
        self.display = MicrographDisplay(viewer, on_off=self._show_off)
        self._chosen: float | None = None  # the cut-off chosen, in :attr:`unit`
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        self.lowpass_combo = QComboBox()
        self.lowpass_combo.setToolTip(
            "Low-pass filter of the display only (Gaussian: half amplitude at the cut-off). "
            "Training and prediction always read the unfiltered micrographs."
        )
        self.lowpass_value = QDoubleSpinBox()
        self.lowpass_value.setRange(1.0, 10000.0)
        self.lowpass_value.setDecimals(1)
        self.lowpass_value.setToolTip("Cut-off: finer detail than this is smoothed away")
        self.auto_contrast = QCheckBox(
            f"auto ({CONTRAST_PERCENTILES[0]:g}-{CONTRAST_PERCENTILES[1]:g} % per micrograph)"
        )
        self.auto_contrast.setToolTip(
            "Contrast limits from the percentiles of the micrograph shown (after the filter)"
        )
        row = QHBoxLayout()
        row.addWidget(self.lowpass_combo)
        row.addWidget(self.lowpass_value)
        form.addRow("Low-pass", row)
        form.addRow("Contrast", self.auto_contrast)
        self._fill_presets(None)
        self.lowpass_combo.currentIndexChanged.connect(self._on_choice)
        self.lowpass_value.editingFinished.connect(self._on_value)
        self.auto_contrast.toggled.connect(self._on_auto)
        self.auto_contrast.setChecked(True)

    @property
    def unit(self) -> str:
        """The unit of the cut-off shown: Å when the pixel size is known, else px."""
        return ANGSTROM if self.display.pixel_size else PIXEL

    def attach(self, layer, pixel_size: float | None) -> None:
        """Show micrograph ``layer``; ``pixel_size`` (Å/px or None) picks the unit. A
        cut-off in Å is kept (in px of the new pixel size); a change of unit turns the
        filter off."""
        if bool(pixel_size) != bool(self.display.pixel_size):
            self._chosen = None
            self._fill_presets(pixel_size)
        unit = ANGSTROM if pixel_size else PIXEL
        self.display.cutoff_px = (
            None if self._chosen is None else cutoff_px(self._chosen, unit, pixel_size)
        )
        self.display.attach(layer, pixel_size)

    def _fill_presets(self, pixel_size: float | None) -> None:
        combo = self.lowpass_combo
        combo.blockSignals(True)
        combo.clear()
        combo.addItem(OFF, None)
        for value, unit in lowpass_presets(pixel_size):
            combo.addItem(f"{value:g} {unit}", value)
        combo.addItem(CUSTOM, None)
        combo.setCurrentIndex(0)
        combo.blockSignals(False)
        self.lowpass_value.setSuffix(f" {ANGSTROM if pixel_size else PIXEL}")
        self.lowpass_value.setEnabled(False)

    def set_lowpass(self, value: float | None, unit: str | None = None) -> None:
        """Low-pass at ``value`` ``unit`` (default :attr:`unit`), or off with None."""
        unit = unit or self.unit
        if value is not None and unit != self.unit:  # shown in the panel's own unit
            px = cutoff_px(value, unit, self.display.pixel_size)
            value = px * self.display.pixel_size if self.unit == ANGSTROM else px
        combo = self.lowpass_combo
        index = 0 if value is None else combo.findData(float(value))
        combo.blockSignals(True)
        combo.setCurrentIndex(index if index >= 0 else combo.count() - 1)
        combo.blockSignals(False)
        self._apply(value)

    def _on_choice(self, index: int) -> None:
        text, value = self.lowpass_combo.itemText(index), self.lowpass_combo.itemData(index)
        if text == CUSTOM:
            self._apply(self.lowpass_value.value())
        else:
            self._apply(value)

    def _on_value(self) -> None:
        value = self.lowpass_value.value()
        if self.lowpass_combo.currentText() != OFF and value != self._chosen:
            self.set_lowpass(value)

    def _apply(self, value: float | None) -> None:
        self._chosen = None if value is None else float(value)
        self.lowpass_value.setEnabled(value is not None)
        if value is None:
            self.display.set_cutoff(None)
            return
        self.lowpass_value.blockSignals(True)
        self.lowpass_value.setValue(float(value))
        self.lowpass_value.blockSignals(False)
        self.display.set_cutoff(cutoff_px(float(value), self.unit, self.display.pixel_size))

    def _show_off(self) -> None:
        self._chosen = None
        self.lowpass_combo.blockSignals(True)
        self.lowpass_combo.setCurrentIndex(0)
        self.lowpass_combo.blockSignals(False)
        self.lowpass_value.setEnabled(False)

    def _on_auto(self, on: bool) -> None:
        self.display.auto_contrast = on
