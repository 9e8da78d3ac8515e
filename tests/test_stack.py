"""Particle extraction: box placement, skipped edges, .mrcs and RELION 3.1 STAR output."""

import mrcfile
import numpy as np
import pytest
import starfile

from activepick.errors import CoordinateError
from activepick.io.micrograph import Micrograph, read_micrograph_stack, write_micrograph
from activepick.io.picks import make_picks
from activepick.io.stack import box_corners, extract_particles

#: Non-square micrograph (H=40, W=70) whose pixel value encodes its position: 1000 * row + col.
ROWS, COLS = np.mgrid[0:40, 0:70]
IMAGE = (1000 * ROWS + COLS).astype(np.float32)


def test_box_is_centred_on_the_pick(tmp_path):
    mic = write_micrograph(tmp_path / "mic_a.mrc", IMAGE, pixel_size=1.5)
    picks = make_picks("mic_a", [30.0, 50.4], [12.0, 27.6], 8, confidence=[0.8, np.nan])
    table = extract_particles(
        [mic], picks, 8, tmp_path / "particles.mrcs", tmp_path / "particles.star", normalise=False
    )
    stack = mrcfile.open(tmp_path / "particles.mrcs").data
    assert stack.shape == (2, 8, 8) and stack.dtype == np.float32
    np.testing.assert_array_equal(stack[0], IMAGE[8:16, 26:34])  # centre pixel at box index 4
    assert stack[0][4, 4] == 1000 * 12 + 30
    assert stack[1][4, 4] == 1000 * 28 + 50  # (50.4, 27.6) rounds to column 50, row 28
    assert list(table["rlnImageName"]) == ["000001@particles.mrcs", "000002@particles.mrcs"]
    assert table.attrs["skipped"] == []


def test_star_has_optics_and_particles_blocks(tmp_path):
    mic = write_micrograph(tmp_path / "mic_a.mrc", IMAGE, pixel_size=1.5)
    picks = make_picks("mic_a", [30.0, 50.0], [12.0, 20.0], 8, confidence=[0.8, np.nan])
    extract_particles([mic], picks, 8, tmp_path / "p.mrcs", tmp_path / "p.star")
    blocks = starfile.read(tmp_path / "p.star", always_dict=True)
    assert list(blocks) == ["optics", "particles"]
    optics = blocks["optics"].iloc[0]
    assert optics["rlnOpticsGroup"] == 1 and optics["rlnImageSize"] == 8
    assert optics["rlnImagePixelSize"] == 1.5 and optics["rlnMicrographPixelSize"] == 1.5
    assert (
        optics["rlnVoltage"],
        optics["rlnSphericalAberration"],
        optics["rlnAmplitudeContrast"],
    ) == (
        300.0,
        2.7,
        0.1,
    )
    particles = blocks["particles"]
    for col in (
        "rlnImageName",
        "rlnMicrographName",
        "rlnCoordinateX",
        "rlnCoordinateY",
        "rlnOpticsGroup",
    ):
        assert col in particles.columns
    assert particles["rlnMicrographName"].iloc[0] == str(mic)
    assert particles["rlnCoordinateX"].tolist() == [30.0, 50.0]
    assert particles["rlnAutopickFigureOfMerit"].tolist() == [0.8, -999.0]
    assert mrcfile.open(tmp_path / "p.mrcs").voxel_size.x == pytest.approx(1.5)


def test_edge_boxes_and_unknown_micrographs_are_skipped_and_reported(tmp_path):
    mic = Micrograph("mic_a", IMAGE)  # no pixel size: falls back to 1.0, noted
    picks = make_picks(
        ["mic_a", "mic_a", "mic_a", "mic_z"], [3.0, 66.0, 35.0, 5.0], [20.0, 20.0, 20.0, 5.0], 10
    )
    table = extract_particles([mic], picks, 10, tmp_path / "s.mrcs", tmp_path / "s.star")
    assert table["rlnCoordinateX"].tolist() == [35.0]  # x=3 and x=66 cross the edges (W=70)
    assert read_micrograph_stack(tmp_path / "s.mrcs").shape == (1, 10, 10)
    assert any("cross the edge" in s and "2 box" in s for s in table.attrs["skipped"])
    assert any("mic_z" in s for s in table.attrs["skipped"])
    assert table.attrs["notes"] and "1.0" in table.attrs["notes"][0]


def test_normalise_and_invert(tmp_path):
    mic = Micrograph("mic_a", IMAGE)
    picks = make_picks("mic_a", [35.0], [20.0], 16)
    extract_particles(
        {"mic_a": mic}, picks, 16, tmp_path / "n.mrcs", tmp_path / "n.star", invert=True
    )
    box = read_micrograph_stack(tmp_path / "n.mrcs")[0]  # mrcfile reads a 1-image stack as 2-D
    raw = IMAGE[12:28, 27:43]
    np.testing.assert_allclose(box, -(raw - raw.mean()) / raw.std(), rtol=1e-4, atol=1e-5)


def test_nothing_fits_is_an_error(tmp_path):
    picks = make_picks("mic_a", [1.0], [1.0], 8)
    with pytest.raises(CoordinateError, match=r"e\.mrcs.*no particle box"):
        extract_particles(
            [Micrograph("mic_a", IMAGE)], picks, 8, tmp_path / "e.mrcs", tmp_path / "e.star"
        )
    assert not (tmp_path / "e.mrcs").exists()


def test_box_corners_even_and_odd_sizes():
    x0, y0 = box_corners(np.array([10.0, 10.5]), np.array([4.49, 4.5]), 8)
    assert x0.tolist() == [6, 7] and y0.tolist() == [0, 1]
    x0, _ = box_corners(np.array([10.0]), np.array([0.0]), 7)
    assert x0.tolist() == [7]  # odd box: centre at index 3
