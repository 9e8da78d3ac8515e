"""The *Model* settings form (``plugin/_settings_form.py``): a magicgui form whose last
settings survive a restart, a resumed session's settings winning over them, and sizes
in Å next to px. Built through the plugin manager, as napari builds the widget; the
persisted settings go to this test's folder (conftest ``persisted_settings_folder``)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from activepick.io.micrograph import write_micrograph

pytestmark = pytest.mark.gui


def _folder(tmp_path: Path, pixel_size: float | None, n: int = 2) -> Path:
    folder = tmp_path / "mics"
    for i in range(n):
        image = np.random.default_rng(i).normal(size=(128, 128)).astype(np.float32)
        write_micrograph(folder / f"mic_{i:02d}.mrc", image, pixel_size=pixel_size)
    return folder


def _persisted() -> dict:
    """The settings magicgui has written (empty before the first write)."""
    import pickle

    from magicgui._util import user_cache_dir

    path = Path(user_cache_dir()) / "activepick.plugin._settings_form.model_settings"
    try:
        return {k: pickle.loads(v) for k, v in pickle.loads(path.read_bytes()).items()}
    except (OSError, EOFError, pickle.UnpicklingError):
        return {}


def _restart(plugin_widget, viewer, widget=None):
    """Close napari and start it again (a new viewer and widget). magicgui writes the
    settings 0.2 s after the last change, from a timer thread (its ``debounce``): with
    ``widget``, wait until the form's values are on disk first, as a person's restart
    a moment later would find them."""
    if widget is not None:
        names = ("diameter", "min_distance", "epochs", "strategy", "review_k")
        current = {n: getattr(widget, n).value for n in names}
        deadline = time.monotonic() + 10.0
        while {n: _persisted().get(n) for n in names} != current:
            assert time.monotonic() < deadline, f"not persisted: {current} vs {_persisted()}"
            time.sleep(0.05)
    viewer.close()
    return plugin_widget()


def test_the_last_settings_survive_a_restart(plugin_widget, persisted_settings_folder):
    from magicgui._util import user_cache_dir

    viewer, widget = plugin_widget()
    assert widget.diameter.value == 64 and widget.epochs.value == 30  # the defaults
    widget.diameter.value = 50
    widget.epochs.value = 7
    widget.strategy.value = "random"
    widget.partial_check.value = False
    assert widget.min_distance.value == 25  # follows the diameter
    # magicgui writes into this test's folder, not the user's home
    assert Path(user_cache_dir()).is_relative_to(persisted_settings_folder)
    saved = list(persisted_settings_folder.rglob("*model_settings"))
    assert [p.name for p in saved] == ["activepick.plugin._settings_form.model_settings"]

    viewer, widget = _restart(plugin_widget, viewer, widget)
    assert (widget.diameter.value, widget.min_distance.value, widget.epochs.value) == (50, 25, 7)
    assert widget.strategy.value == "random" and widget.partial_check.value is False
    widget.diameter.value = 60  # the minimum distance still follows the diameter
    assert widget.min_distance.value == 30


def test_a_resumed_session_wins_over_the_persisted_settings(plugin_widget, tmp_path):
    viewer, widget = plugin_widget()
    widget.open_folder(_folder(tmp_path, 1.5))
    widget.diameter.value = 48
    widget.epochs.value = 3
    assert widget.new_session(tmp_path / "s")
    widget.diameter.value = 40  # saved in the session too, then changed back
    widget.diameter.value = 48
    widget.workbench.close()

    viewer, widget = _restart(plugin_widget, viewer, widget)
    widget.diameter.value = 30  # the last settings: persisted
    widget.epochs.value = 9
    viewer, widget = _restart(plugin_widget, viewer, widget)
    assert (widget.diameter.value, widget.epochs.value) == (30, 9)
    assert widget.open_session(tmp_path / "s")
    assert (widget.diameter.value, widget.min_distance.value, widget.epochs.value) == (48, 24, 3)
    assert widget.learner.config.diameter == 48 and widget.learner.config.epochs == 3
    assert widget.box_size.value() == 72
    widget.workbench.close()
    # the session's settings were shown last: they are what the next start shows
    viewer, widget = _restart(plugin_widget, viewer, widget)
    assert (widget.diameter.value, widget.epochs.value) == (48, 3)


def test_the_diameter_shows_angstrom_when_the_sample_pixel_size_is_set(plugin_widget):
    from activepick.plugin._sample_data import sample_diameter

    viewer, widget = plugin_widget()
    assert widget.diameter_angstrom.native.isHidden()  # no micrographs: no pixel size
    widget.load_sample()  # the sample's MRC headers: 1.5 Å/px
    assert widget.workbench.pixel_size == 1.5
    assert widget.diameter.value == round(sample_diameter()) == 48
    assert not widget.diameter_angstrom.native.isHidden()
    assert widget.diameter_angstrom.value == "= 72.0 Å"  # 48 px x 1.5 Å/px
    assert widget.box_size.value() == 72
    assert widget.box_angstrom.text() == "= 108 Å"
    assert widget.pixel_size.value() == 1.5
    widget.diameter.value = 100
    assert widget.diameter_angstrom.value == "= 150 Å"


def test_a_pixel_size_entered_once_is_saved_with_the_session(plugin_widget, tmp_path):
    viewer, widget = plugin_widget()
    widget.open_folder(_folder(tmp_path, None))  # headers without a pixel size
    widget.diameter.value = 40
    assert widget.workbench.pixel_size is None and widget.display.unit == "px"
    assert widget.diameter_angstrom.native.isHidden() and widget.pixel_size.text() == "unknown"
    assert widget.new_session(tmp_path / "s")
    widget.pixel_size.setValue(1.25)
    widget.pixel_size.editingFinished.emit()  # the user typed it and left the box
    assert widget.workbench.pixel_size == 1.25
    assert widget.diameter_angstrom.value == "= 50.0 Å"
    # the display filter gets it too: its cut-off is now in Å
    assert widget.display.display.pixel_size == 1.25 and widget.display.unit == "Å"
    settings = json.loads((tmp_path / "s" / "session.json").read_text())["settings"]
    assert settings["pixel_size"] == 1.25
    widget.workbench.close()

    viewer, widget = _restart(plugin_widget, viewer, widget)
    assert widget.open_session(tmp_path / "s")
    assert widget.pixel_size.value() == 1.25 and widget.diameter_angstrom.value == "= 50.0 Å"
    assert widget.display.unit == "Å"  # the resumed session's entered pixel size
    # exports carry it: the RELION optics block
    out = tmp_path / "picks.star"
    widget.review.add_particle("mic_00", 60.0, 60.0)
    assert widget.export_picks(out, "star")
    assert "_rlnMicrographPixelSize" in out.read_text()
    assert "1.25" in out.read_text().split("data_particles")[0]
