"""The *Display* section of the dock widget, built as napari builds it: the low-pass
changes what is drawn and nothing else (the micrograph layer's pixels, the
workbench's micrographs and the detector's input stay as read)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from activepick.detector.data import default_prepare
from activepick.display import lowpass, percentile_limits
from activepick.io.micrograph import write_micrograph

pytestmark = pytest.mark.gui

SIZE = 192


def _images(n: int = 3) -> list[np.ndarray]:
    """Noisy micrographs with a few bright discs (radius about 5 px)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    out = []
    for i in range(n):
        image = rng.normal(10.0 * i, 0.6, (SIZE, SIZE)).astype(np.float32)
        for x, y in rng.uniform(20, SIZE - 20, (8, 2)):
            image += np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 5.0**2)).astype(np.float32)
        out.append(image)
    return out


def _folder(tmp_path: Path, pixel_size: float | None) -> Path:
    folder = tmp_path / "mics"
    for i, image in enumerate(_images()):
        write_micrograph(folder / f"mic_{i:02d}.mrc", image, pixel_size=pixel_size)
    return folder


def _widget(make_napari_viewer):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-activepick", "Active picking")
    return viewer, widget


def _halve(image: np.ndarray) -> np.ndarray:
    return (image[0::2, 0::2] + image[1::2, 0::2] + image[0::2, 1::2] + image[1::2, 1::2]) / 4


def test_lowpass_changes_the_display_only(make_napari_viewer, tmp_path):
    images = _images()
    viewer, widget = _widget(make_napari_viewer)
    widget.open_folder(_folder(tmp_path, pixel_size=2.0))
    source = viewer.layers["mics"]
    source_data = source.data
    mics = widget.learner.micrographs
    inputs = [default_prepare(m, 96)[0] for m in mics]
    panel = widget.display
    # the pixel size is known (2 Å/px): the presets are in Å, the filter starts off
    items = [panel.lowpass_combo.itemText(i) for i in range(panel.lowpass_combo.count())]
    assert items == ["off", "10 Å", "20 Å", "30 Å", "custom"]
    assert panel.display.display_layer is None and source.visible

    panel.set_lowpass(20.0)  # 20 Å = 10 px: shown on the 2x2-mean level, filtered at 5 px
    assert panel.lowpass_combo.currentText() == "20 Å"
    shown = viewer.layers["mics (low-pass)"]
    names = [ly.name for ly in viewer.layers]
    assert names.index("mics (low-pass)") == names.index("mics") + 1
    assert names.index("mics (low-pass)") < names.index("labels")  # picks drawn on top
    assert shown.visible and not source.visible
    assert viewer.layers.selection.active.name == "labels"  # clicks still add particles
    np.testing.assert_allclose(shown.scale, [1, 2, 2])
    np.testing.assert_allclose(shown.translate, [0, 0.5, 0.5])  # 2x2 block centres
    viewer.dims.set_current_step(0, 1)
    drawn = np.asarray(shown.data[1])
    assert drawn.shape == (SIZE // 2, SIZE // 2)
    np.testing.assert_allclose(drawn, lowpass(_halve(images[1]), 5.0), rtol=1e-5, atol=1e-5)
    # the filter smooths the noise away: far less spread than the raw 2x2 means
    assert drawn.std() < 0.5 * _halve(images[1]).std()

    # only the display changed: the layer's pixels, the workbench's micrographs and
    # the detector's input are those read from the files
    assert source.data is source_data
    for i, image in enumerate(images):
        np.testing.assert_array_equal(np.asarray(source.data[i]), image)
        np.testing.assert_array_equal(mics[i].data, image)
        assert torch.equal(default_prepare(mics[i], 96)[0], inputs[i])
    assert widget.layer_combo.count() == 1  # the filtered layer is not a micrograph layer

    # automatic contrast: the percentiles of the filtered micrograph on screen
    assert shown.contrast_limits == pytest.approx(percentile_limits(drawn), rel=1e-5)
    viewer.dims.set_current_step(0, 2)
    assert shown.contrast_limits == pytest.approx(
        percentile_limits(lowpass(_halve(images[2]), 5.0)), rel=1e-5
    )
    assert shown.contrast_limits[0] > 15  # micrograph 2 sits around 20

    # a custom value in Å; then off: the micrographs are shown again, with auto contrast
    panel.lowpass_value.setValue(60.0)
    panel.lowpass_value.editingFinished.emit()
    assert panel.lowpass_combo.currentText() == "custom"
    shown = viewer.layers["mics (low-pass)"]
    assert shown.metadata["cutoff_px"] == 30.0
    np.testing.assert_allclose(shown.scale, [1, 4, 4])  # 30 px: the 4x4-mean level
    panel.set_lowpass(None)
    assert "mics (low-pass)" not in viewer.layers and source.visible
    assert source.contrast_limits == pytest.approx(percentile_limits(images[2]), rel=1e-5)
    assert source.data is source_data


def test_units_follow_the_pixel_size_and_removing_the_layer_turns_the_filter_off(
    make_napari_viewer, tmp_path
):
    viewer, widget = _widget(make_napari_viewer)
    widget.open_folder(_folder(tmp_path, pixel_size=None))  # no pixel size: px
    panel = widget.display
    items = [panel.lowpass_combo.itemText(i) for i in range(panel.lowpass_combo.count())]
    assert items == ["off", "5 px", "10 px", "20 px", "custom"]
    assert panel.lowpass_value.suffix() == " px"
    panel.lowpass_combo.setCurrentIndex(2)  # the user picks "10 px"
    shown = viewer.layers["mics (low-pass)"]
    assert shown.metadata["cutoff_px"] == 10.0
    viewer.layers.remove("mics (low-pass)")  # removed by hand: the filter is off
    assert viewer.layers["mics"].visible and panel.display.cutoff_px is None
    assert panel.lowpass_combo.currentText() == "off"
    panel.auto_contrast.setChecked(False)
    viewer.layers["mics"].contrast_limits = (1.0, 2.0)
    viewer.dims.set_current_step(0, 1)
    assert viewer.layers["mics"].contrast_limits == [1.0, 2.0]  # the user's contrast is kept
    panel.set_lowpass(10.0)
    assert "mics (low-pass)" in viewer.layers
    viewer.layers.remove("mics")  # the micrographs go: their filtered layer goes too
    assert not any(ly.name.startswith("mics") for ly in viewer.layers)


def test_an_in_memory_single_micrograph_is_filtered_too(make_napari_viewer):
    image = _images(1)[0]
    viewer, widget = _widget(make_napari_viewer)
    layer = viewer.add_image(image.copy(), name="one")
    widget.use_layer(layer)
    assert widget.learner.micrographs[0].name == "one"
    widget.display.set_lowpass(12.0)  # no pixel size: px; 12 px -> the 2x2-mean level
    shown = viewer.layers["one (low-pass)"]
    assert shown.ndim == 2 and not layer.visible
    np.testing.assert_allclose(shown.translate, [0.5, 0.5])
    np.testing.assert_allclose(
        np.asarray(shown.data), lowpass(_halve(image), 6.0), rtol=1e-5, atol=1e-5
    )
    np.testing.assert_array_equal(layer.data, image)
    np.testing.assert_array_equal(widget.learner.micrographs[0].data, image)
