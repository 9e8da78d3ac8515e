"""Micrograph I/O: MRC modes, stacks, TIFF / PNG / JPEG, errors, shapes, downscale, normalise."""

from pathlib import Path

import mrcfile
import numpy as np
import pytest
import tifffile
from PIL import Image

from activepick.errors import MicrographError
from activepick.io.micrograph import (
    Micrograph,
    _as_image,
    downscale,
    list_micrographs,
    micrograph_name,
    micrograph_shapes,
    normalise,
    read_micrograph,
    read_micrograph_stack,
    read_pixel_size,
    read_shape,
    write_micrograph,
)

#: Non-square (H=6, W=10) test image with distinct values, rows = y.
IMAGE = np.arange(60, dtype=np.float32).reshape(6, 10)


def write_mrc(path, data, voxel=0.0):
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(data)
        mrc.voxel_size = voxel
    return path


@pytest.mark.parametrize(
    ("dtype", "mode"),
    [(np.int8, 0), (np.int16, 1), (np.float32, 2), (np.uint16, 6), (np.float16, 12)],
)
def test_mrc_modes_read_as_float32(tmp_path, dtype, mode):
    path = write_mrc(tmp_path / "m.mrc", IMAGE.astype(dtype), voxel=1.06)
    assert int(mrcfile.open(path, header_only=True).header.mode) == mode
    mic = read_micrograph(path)
    assert mic.data.dtype == np.float32
    assert mic.shape == (6, 10)
    np.testing.assert_array_equal(mic.data, IMAGE)  # rows = y: no flip, no transpose
    assert mic.pixel_size == pytest.approx(1.06, rel=1e-6)
    assert mic.name == "m" and mic.path == path


def test_zero_voxel_size_means_unknown_pixel_size(tmp_path):
    path = write_mrc(tmp_path / "m.mrc", IMAGE)
    assert read_micrograph(path).pixel_size is None
    assert read_pixel_size(path) is None


def test_complex_mrc_is_refused(tmp_path):
    path = write_mrc(tmp_path / "c.mrc", IMAGE.astype(np.complex64))
    with pytest.raises(MicrographError, match=r"c\.mrc.*complex"):
        read_micrograph(path)


def test_stack_needs_an_index_and_single_frame_is_squeezed(tmp_path):
    stack = np.stack([IMAGE, IMAGE + 100, IMAGE + 200])
    path = write_micrograph(tmp_path / "s.mrcs", stack)
    with pytest.raises(MicrographError, match=r"s\.mrcs.*stack of 3"):
        read_micrograph(path)
    np.testing.assert_array_equal(read_micrograph(path, index=2).data, IMAGE + 200)
    with pytest.raises(MicrographError, match="out of range"):
        read_micrograph(path, index=3)
    assert read_micrograph_stack(path).shape == (3, 6, 10)
    assert read_shape(path) == (6, 10)
    one = write_mrc(tmp_path / "one.mrc", IMAGE[None])
    assert read_micrograph(one).shape == (6, 10)


def test_truncated_mrc_names_the_file(tmp_path):
    path = write_mrc(tmp_path / "t.mrc", np.zeros((64, 64), np.float32))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # header intact, data cut in half
    with pytest.raises(MicrographError, match=r"t\.mrc"):
        read_micrograph(path)
    path.write_bytes(data[:500])  # header cut
    with pytest.raises(MicrographError, match=r"t\.mrc"):
        read_shape(path)


def test_wrong_dimensions_are_refused(tmp_path):
    path = write_mrc(tmp_path / "v.mrc", np.zeros((2, 3, 4, 5), np.float32))
    with pytest.raises(MicrographError, match=r"v\.mrc.*not a 2-D image"):
        read_micrograph(path)
    with pytest.raises(MicrographError, match="not a 2-D image"):
        _as_image(np.zeros(5, np.float32), Path("line.mrc"), None)


def test_unknown_extension_missing_file_and_garbage(tmp_path):
    with pytest.raises(MicrographError, match=r"x\.bmp.*unknown micrograph extension"):
        read_micrograph(tmp_path / "x.bmp")
    with pytest.raises(MicrographError, match=r"gone\.mrc.*no such file"):
        read_micrograph(tmp_path / "gone.mrc")
    for name in ("junk.mrc", "junk.tif", "junk.png"):
        (tmp_path / name).write_bytes(b"not an image at all" * 10)
        with pytest.raises(MicrographError, match=name.replace(".", r"\.")):
            read_micrograph(tmp_path / name)


def test_tiff_single_multi_page_and_rgb(tmp_path):
    tifffile.imwrite(tmp_path / "g.tif", IMAGE)
    np.testing.assert_array_equal(read_micrograph(tmp_path / "g.tif").data, IMAGE)
    assert read_shape(tmp_path / "g.tif") == (6, 10)
    with tifffile.TiffWriter(tmp_path / "p.tiff") as tw:
        tw.write(IMAGE)
        tw.write(IMAGE + 1)
    with pytest.raises(MicrographError, match=r"p\.tiff.*2 TIFF pages"):
        read_micrograph(tmp_path / "p.tiff")
    np.testing.assert_array_equal(read_micrograph(tmp_path / "p.tiff", index=1).data, IMAGE + 1)
    assert read_micrograph_stack(tmp_path / "p.tiff").shape == (2, 6, 10)
    rgb = np.zeros((6, 10, 3), np.uint8)
    rgb[..., 0] = 100  # pure red: grey = 0.299 * 100
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    np.testing.assert_allclose(read_micrograph(tmp_path / "rgb.tif").data, 29.9, rtol=1e-6)


def test_png_grey_rgba_and_jpeg(tmp_path):
    grey = IMAGE.astype(np.uint8)
    Image.fromarray(grey).save(tmp_path / "g.png")
    np.testing.assert_array_equal(read_micrograph(tmp_path / "g.png").data, IMAGE)
    assert read_shape(tmp_path / "g.png") == (6, 10)
    rgba = np.zeros((6, 10, 4), np.uint8)
    rgba[..., 1] = 200  # green, alpha ignored
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "c.png")
    np.testing.assert_allclose(read_micrograph(tmp_path / "c.png").data, 0.587 * 200, rtol=1e-6)
    flat = np.full((8, 16), 77, np.uint8)
    Image.fromarray(flat).save(tmp_path / "j.jpeg", quality=95)
    mic = read_micrograph(tmp_path / "j.jpeg")
    assert mic.shape == (8, 16) and np.abs(mic.data - 77).max() <= 1


def test_write_micrograph_round_trip_is_atomic(tmp_path):
    path = write_micrograph(tmp_path / "w.mrc", IMAGE, pixel_size=2.5)
    mic = read_micrograph(path)
    np.testing.assert_array_equal(mic.data, IMAGE)
    assert mic.pixel_size == 2.5
    assert read_pixel_size(path) == 2.5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.mrc"]  # no temp file left


def test_list_micrographs_sorted_filtered_and_errors(tmp_path):
    for name in ("b.mrc", "a.tif", "c.PNG", "notes.txt", ".hidden.mrc", "d.jpeg"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in list_micrographs(tmp_path)] == ["a.tif", "b.mrc", "c.PNG", "d.jpeg"]
    with pytest.raises(MicrographError, match="no such folder"):
        list_micrographs(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MicrographError, match="no micrographs found"):
        list_micrographs(tmp_path / "empty")


def test_micrograph_name_drops_only_the_final_extension():
    assert micrograph_name("/data/Movies/FoilHole_1.2_Data.mrc") == "FoilHole_1.2_Data"
    assert micrograph_name("MIC_001.TIFF") == "MIC_001"


def test_shapes_from_headers_are_height_width(tmp_path):
    write_micrograph(tmp_path / "a.mrc", np.zeros((30, 50), np.float32))
    Image.fromarray(np.zeros((7, 9), np.uint8)).save(tmp_path / "b.png")
    shapes = micrograph_shapes(list_micrographs(tmp_path))
    assert shapes == {"a": (30, 50), "b": (7, 9)}
    assert Micrograph("x", np.zeros((30, 50), np.float32)).shape == (30, 50)


def test_downscale_integer_factor_is_block_mean():
    image = np.array([[0, 2, 4, 6, 9], [2, 4, 6, 8, 9], [9, 9, 9, 9, 9]], np.float32)
    out = downscale(image, 2)
    np.testing.assert_array_equal(out, [[2.0, 6.0]])  # trailing row / column dropped
    assert out.dtype == np.float32
    np.testing.assert_array_equal(downscale(IMAGE, 1), IMAGE)


def test_downscale_fractional_factor_keeps_area_average():
    image = np.full((100, 60), 3.5, np.float32)
    out = downscale(image, 2.5)
    assert out.shape == (40, 24)
    np.testing.assert_allclose(out, 3.5, rtol=1e-6)
    ramp = np.tile(np.arange(60, dtype=np.float32), (100, 1))
    assert downscale(ramp, 2.5).mean() == pytest.approx(ramp.mean(), abs=0.5)
    with pytest.raises(ValueError):
        downscale(image, 0.5)


def test_normalise_zero_mean_unit_variance_and_constant():
    out = normalise(IMAGE)
    assert out.dtype == np.float32
    assert abs(float(out.mean())) < 1e-6 and float(out.std()) == pytest.approx(1.0, rel=1e-5)
    np.testing.assert_array_equal(normalise(np.full((4, 5), 7.0)), np.zeros((4, 5)))
