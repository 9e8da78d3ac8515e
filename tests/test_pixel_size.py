"""The session's pixel size (``active/pixel_size.py``): from the headers or entered once
per session, saved with the session, written by the exports that carry one."""

from __future__ import annotations

import json

import mrcfile
import numpy as np
import pytest
import starfile

from activepick.active.pixel_size import angstrom_text, check_pixel_size
from activepick.active.settings import LearnerSettings, SettingsError
from activepick.active.workbench import Workbench
from activepick.detector import DetectorConfig
from activepick.io.micrograph import Micrograph

D = 20.0


def _bench(pixel_sizes=(None, None), size=128) -> Workbench:
    mics = [
        Micrograph(
            f"m{i}", np.random.default_rng(i).normal(size=(size, size)).astype(np.float32), ps
        )
        for i, ps in enumerate(pixel_sizes)
    ]
    settings = LearnerSettings(detector=DetectorConfig(diameter=D, device="cpu"))
    wb = Workbench.for_micrographs(mics, settings)
    wb.add("m0", 40.0, 50.0)
    wb.add("m1", 70.0, 60.0)
    return wb


def test_the_header_gives_the_pixel_size_and_an_entered_one_wins():
    assert _bench((None, None)).pixel_size is None
    wb = _bench((None, 1.5))  # the first header that gives one
    assert wb.pixel_size == 1.5
    wb.set_pixel_size(1.06)
    assert wb.pixel_size == 1.06 and wb.entered_pixel_size == 1.06
    wb.set_pixel_size(0)  # 0 / None: back to the header's
    assert wb.pixel_size == 1.5 and wb.entered_pixel_size is None


@pytest.mark.parametrize("value", [-1.0, float("nan"), float("inf"), "abc"])
def test_a_pixel_size_that_is_not_a_positive_number_is_refused(value):
    wb = _bench()
    with pytest.raises(SettingsError, match="pixel size must be a"):
        wb.set_pixel_size(value)
    assert wb.pixel_size is None


def test_angstrom_text():
    assert angstrom_text(28, 1.5) == "42.0 Å"
    assert angstrom_text(180, 1.06) == "191 Å"
    assert angstrom_text(28, None) == ""
    assert check_pixel_size(None) is None and check_pixel_size("1.25") == 1.25


def test_an_entered_pixel_size_is_saved_with_the_session_and_resumed(tmp_path):
    wb = _bench()
    wb.create_session(tmp_path / "s")
    wb.set_pixel_size(1.06)
    settings = json.loads((tmp_path / "s" / "session.json").read_text())["settings"]
    assert settings["pixel_size"] == 1.06
    wb.close()
    with Workbench.open(tmp_path / "s") as again:
        assert again.pixel_size == 1.06
        assert again.learner.config.diameter == D  # the learner's settings are untouched


def test_a_session_with_a_bad_pixel_size_is_refused_naming_its_file(tmp_path):
    wb = _bench()
    wb.create_session(tmp_path / "s")
    wb.set_pixel_size(1.06)
    wb.close()
    path = tmp_path / "s" / "session.json"
    info = json.loads(path.read_text())
    info["settings"]["pixel_size"] = -3
    path.write_text(json.dumps(info))
    with pytest.raises(SettingsError, match=r"session\.json: pixel size must be a positive"):
        Workbench.open(tmp_path / "s")
    # the refused session was released (its lock too): fixed, it opens
    info["settings"]["pixel_size"] = 1.06
    path.write_text(json.dumps(info))
    with Workbench.open(tmp_path / "s") as again:
        assert again.pixel_size == 1.06


def test_exports_write_the_session_pixel_size(tmp_path):
    wb = _bench((2.0, 2.0))
    wb.export(tmp_path / "header.star", "star")  # the headers' pixel size
    optics = starfile.read(tmp_path / "header.star")["optics"]
    assert optics["rlnMicrographPixelSize"].tolist() == [2.0]
    wb.set_pixel_size(1.25)  # entered: wins over the headers
    wb.export(tmp_path / "picks.star", "star")
    optics = starfile.read(tmp_path / "picks.star")["optics"]
    assert optics["rlnMicrographPixelSize"].tolist() == [1.25]
    from activepick.progress import drive

    table = drive(wb.iter_extract(tmp_path / "particles.mrcs", 30))
    assert len(table) == 2
    star = starfile.read(tmp_path / "particles.star")
    assert star["optics"]["rlnImagePixelSize"].tolist() == [1.25]
    assert star["optics"]["rlnMicrographPixelSize"].tolist() == [1.25]
    with mrcfile.open(tmp_path / "particles.mrcs") as mrc:
        assert float(mrc.voxel_size.x) == pytest.approx(1.25)
