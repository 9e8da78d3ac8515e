"""Micrograph input that used to get through (issue 12, items 2 and 11)."""

import struct

import mrcfile
import numpy as np
import pytest

from activepick.errors import MicrographError
from activepick.io.micrograph import (
    NonFinitePixelsWarning,
    normalise,
    read_micrograph,
    read_shape,
    write_micrograph,
)


def test_a_nan_and_an_inf_pixel_are_replaced_with_a_warning_naming_the_file(tmp_path):
    image = np.arange(12, dtype=np.float32).reshape(3, 4)
    image[0, 0], image[2, 3] = np.nan, np.inf
    path = write_micrograph(tmp_path / "m.mrc", image)
    with pytest.warns(NonFinitePixelsWarning, match=r"m\.mrc: 2 NaN or infinite pixel"):
        mic = read_micrograph(path)
    finite_mean = np.mean([v for v in range(1, 11)])  # 1..10 are the finite pixels
    assert mic.data[0, 0] == pytest.approx(finite_mean)
    assert mic.data[2, 3] == pytest.approx(finite_mean)
    assert mic.data[1, 1] == 5.0
    norm = normalise(mic.data)
    assert np.isfinite(norm).all() and norm.std() == pytest.approx(1.0, rel=1e-5)


def test_normalise_does_not_blank_an_image_with_one_nan():
    image = np.array([[1.0, 2.0], [3.0, np.nan]], dtype=np.float32)
    with pytest.warns(NonFinitePixelsWarning):
        out = normalise(image)
    # the NaN becomes the mean 2 -> values 1, 2, 3, 2: mean 2, std sqrt(0.5)
    np.testing.assert_allclose(out, np.array([[-1, 0], [1, 0]]) / np.sqrt(0.5), rtol=1e-6)


def test_an_all_nan_micrograph_is_an_error(tmp_path):
    path = write_micrograph(tmp_path / "n.mrc", np.full((4, 4), np.nan, np.float32))
    with pytest.raises(MicrographError, match="every pixel"):
        read_micrograph(path)


def _patch_header(path, offset, value):
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(struct.pack("<i", value))


def _small_mrc(tmp_path):
    path = tmp_path / "s.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(np.zeros((16, 16), np.float32))
    return path


@pytest.mark.parametrize("reader", [read_micrograph, read_shape])
def test_huge_dimensions_in_a_small_file_are_refused_from_the_header(tmp_path, reader):
    path = _small_mrc(tmp_path)
    _patch_header(path, 0, 2147483647)  # nx
    _patch_header(path, 4, 2147483647)  # ny
    with pytest.raises(MicrographError, match="truncated or corrupt") as info:
        reader(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_a_huge_extended_header_is_refused_before_reading(tmp_path):
    path = _small_mrc(tmp_path)
    _patch_header(path, 92, 1_000_000_000)  # nsymbt
    # refused from the header alone (it used to allocate 1 GB and read for 10 s first)
    with pytest.raises(MicrographError, match="extended header of 1000000000 bytes"):
        read_micrograph(path)


def test_a_truncated_mrc_is_refused(tmp_path):
    path = _small_mrc(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[:-100])
    with pytest.raises(MicrographError, match="truncated"):
        read_micrograph(path)


def test_a_file_shorter_than_the_header_is_refused(tmp_path):
    path = tmp_path / "h.mrc"
    path.write_bytes(b"\0" * 100)
    with pytest.raises(MicrographError, match="shorter than the 1024-byte header"):
        read_micrograph(path)


# ------------------------------------------------------------------ issue 21, items 5 and 8


def _mrc(data: np.ndarray, header_order: str, data_order: str) -> bytes:
    """An MRC file written by hand: header (machine stamp) and pixels in given byte orders."""
    head = bytearray(1024)
    ny, nx = data.shape
    struct.pack_into(f"{header_order}4i", head, 0, nx, ny, 1, 2)
    struct.pack_into(f"{header_order}3i", head, 64, 1, 2, 3)
    head[208:212] = b"MAP "
    head[212:214] = b"\x11\x11" if header_order == ">" else b"\x44\x44"
    return bytes(head) + data.astype(f"{data_order}f4").tobytes()


def test_a_byte_swapped_mrc_is_refused_not_read_as_3e38(tmp_path):
    """The header said big-endian, the pixels were little-endian: they came out at
    +-3e38 and the only message was '14 NaN or infinite pixel(s) replaced'."""
    image = np.random.default_rng(0).normal(size=(64, 64)).astype(np.float32)
    path = tmp_path / "swapped.mrc"
    path.write_bytes(_mrc(image, ">", "<"))
    with pytest.raises(MicrographError) as info:
        read_micrograph(path)
    assert str(info.value) == (
        f"{path}: the pixels look byte-swapped: the header's machine stamp says big-endian, "
        "but the data read as little-endian are plausible (fix the machine stamp)"
    )


@pytest.mark.parametrize("order", [">", "<"])
def test_an_mrc_whose_stamp_matches_its_pixels_reads_exactly(tmp_path, order):
    image = np.arange(64 * 64, dtype=np.float32).reshape(64, 64) / 7.0 - 100.0
    image[3, 4] = 0.0
    path = tmp_path / "ok.mrc"
    path.write_bytes(_mrc(image, order, order))
    np.testing.assert_array_equal(read_micrograph(path).data, image)


def test_a_file_given_as_the_micrograph_folder_is_named_a_file(tmp_path):
    from activepick.io.micrograph import list_micrographs

    path = write_micrograph(tmp_path / "a.mrc", np.zeros((8, 8), np.float32))
    with pytest.raises(MicrographError, match=r"a\.mrc: is a file, not a folder$"):
        list_micrographs(path)


@pytest.mark.parametrize("mode, message", [(4, "complex-valued data (MRC mode 4)"),
                                           (77, "MRC header gives an unknown mode 77")])  # fmt: skip
def test_a_header_of_a_complex_or_unknown_mode_is_refused_by_read_shape(tmp_path, mode, message):
    """``session create`` reads headers only: it took such files into a session."""
    path = tmp_path / "x.mrc"
    image = np.zeros((8, 8), np.complex64 if mode == 4 else np.float32)
    head = bytearray(_mrc(np.zeros((8, 8), np.float32), "<", "<")[:1024])
    struct.pack_into("<i", head, 12, mode)
    path.write_bytes(bytes(head) + image.tobytes())
    with pytest.raises(MicrographError) as info:
        read_shape(path)
    assert str(info.value) == f"{path}: {message}" + (" is not a micrograph" if mode == 4 else "")
