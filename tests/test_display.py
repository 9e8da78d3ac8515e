"""display: the Gaussian low-pass, its pyramid per slice, and percentile contrast.

Expected values are worked by hand from the filter's definition: a sinusoid of
wavelength λ keeps 2 ** -(c / λ) ** 2 of its amplitude under a cut-off c.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from activepick.display import (
    DisplayPyramid,
    array_levels,
    cutoff_px,
    display_level,
    gaussian_sigma,
    lowpass,
    lowpass_presets,
    lowpass_transfer,
    micrograph_pixel_size,
    percentile_limits,
)
from activepick.io.lazy import LazyStack
from activepick.io.micrograph import Micrograph, write_micrograph


def _wave(wavelength: float, size: int = 256, amplitude: float = 1.0) -> np.ndarray:
    """A sinusoid along x (columns) on a ``size`` x ``size`` image, offset 5."""
    x = np.arange(size)
    row = 5.0 + amplitude * np.sin(2 * np.pi * x / wavelength + 0.3)
    return np.tile(row, (size, 1)).astype(np.float32)


def _amplitude(image: np.ndarray, wavelength: float, x0: float = 0.0, step: float = 1.0):
    """Least-squares amplitude of the sinusoid of ``wavelength`` (px of the full image)
    along the columns of ``image``, whose column j lies at ``x0 + j * step``."""
    x = x0 + step * np.arange(image.shape[1])
    design = np.stack(
        [np.sin(2 * np.pi * x / wavelength), np.cos(2 * np.pi * x / wavelength), np.ones_like(x)],
        axis=1,
    )
    coef, *_ = np.linalg.lstsq(design, image.mean(axis=0), rcond=None)
    return float(np.hypot(coef[0], coef[1]))


def test_sigma_and_transfer_by_hand():
    # sigma = c * sqrt(ln 2 / 2) / pi = 0.18739 c
    assert gaussian_sigma(20.0) == pytest.approx(3.7478, abs=1e-4)
    assert lowpass_transfer(20.0, 20.0) == pytest.approx(0.5)
    assert lowpass_transfer(40.0, 20.0) == pytest.approx(2**-0.25)  # 0.8409
    assert lowpass_transfer(10.0, 20.0) == pytest.approx(1 / 16)
    # the Gaussian of that sigma has that transfer: exp(-2 pi^2 sigma^2 / lambda^2)
    s = gaussian_sigma(20.0)
    assert math.exp(-2 * math.pi**2 * s**2 / 40.0**2) == pytest.approx(2**-0.25)
    with pytest.raises(ValueError, match="> 0"):
        gaussian_sigma(0.0)


@pytest.mark.parametrize(
    ("cutoff", "expected"),
    [(32.0, 0.5), (16.0, 0.8409), (64.0, 0.0625), (8.0, 0.9576)],
)
def test_lowpass_attenuates_a_sinusoid_as_computed_by_hand(cutoff, expected):
    """A wave of 32 px: 2 ** -(c / 32) ** 2 is 0.5 at c = 32, 2 ** -0.25 = 0.8409 at 16,
    2 ** -4 = 0.0625 at 64 and 2 ** -(1/16) = 0.9576 at 8."""
    image = _wave(32.0)
    out = lowpass(image, cutoff)
    assert out.dtype == np.float32 and out.shape == image.shape
    inner = out[:, 64:192]  # farther than the kernel's reach (4 sigma = 48 px) from the edges
    assert _amplitude(inner, 32.0, x0=64) == pytest.approx(expected, abs=2e-3)
    assert float(inner.mean()) == pytest.approx(5.0, abs=2e-3)  # the mean passes unchanged
    np.testing.assert_array_equal(image, _wave(32.0))  # the input is not changed


def test_lowpass_removes_noise_it_should():
    """White noise of variance 1 keeps 1 / (4 pi sigma^2) of its variance (sum of the
    squared 2-D Gaussian kernel): 0.0226 for c = 10 px (sigma 1.874)."""
    noise = np.random.default_rng(0).standard_normal((512, 512)).astype(np.float32)
    out = lowpass(noise, 10.0)
    assert float(out[20:-20, 20:-20].var()) == pytest.approx(
        1 / (4 * math.pi * gaussian_sigma(10.0) ** 2), rel=0.05
    )


def test_display_level_keeps_four_samples_per_cutoff():
    assert [display_level(c) for c in (2.0, 4.0, 7.9, 8.0, 10.0, 20.0, 31.9, 32.0, 64.0)] == [
        0,
        0,
        0,
        1,
        1,
        2,
        2,
        3,
        4,
    ]


def test_pixel_size_units_and_presets():
    mics = [
        Micrograph("a", np.zeros((2, 2), np.float32), None),
        Micrograph("b", np.zeros((2, 2), np.float32), 1.77),
    ]
    assert micrograph_pixel_size(mics) == pytest.approx(1.77)
    assert micrograph_pixel_size(mics[:1]) is None
    assert micrograph_pixel_size([Micrograph("c", np.zeros((2, 2)), 0.0)]) is None
    assert cutoff_px(20.0, "Å", 1.25) == pytest.approx(16.0)
    assert cutoff_px(12.0, "px", None) == 12.0
    with pytest.raises(ValueError, match="pixel size"):
        cutoff_px(20.0, "Å", None)
    with pytest.raises(ValueError, match="> 0"):
        cutoff_px(0.0, "px", None)
    assert lowpass_presets(1.0) == [(10.0, "Å"), (20.0, "Å"), (30.0, "Å")]
    assert lowpass_presets(None) == [(5.0, "px"), (10.0, "px"), (20.0, "px")]


def test_percentile_limits_by_hand():
    values = np.arange(1001, dtype=np.float32).reshape(7, 143)  # 0 .. 1000
    # 0.5 % and 99.5 % of 0..1000 with linear interpolation: 5 and 995
    assert percentile_limits(values, sample=None) == pytest.approx((5.0, 995.0))
    assert percentile_limits(values, (10, 90), sample=None) == pytest.approx((100.0, 900.0))
    values[0, :3] = np.nan
    assert percentile_limits(values, (0, 100), sample=None) == (3.0, 1000.0)
    assert percentile_limits(np.full((4, 4), 2.0)) == (2.0, 3.0)
    assert percentile_limits(np.full((4, 4), np.nan)) == (0.0, 1.0)
    # the strided sample of 4 x 4 = 16 of 0..255 still spans it
    big = np.arange(256, dtype=np.float32).reshape(16, 16)
    lo, hi = percentile_limits(big, (0, 100), sample=16)
    assert (lo, hi) == (0.0, 240.0)


def test_pyramid_filters_on_a_coarse_level_close_to_the_exact_filter():
    """Cut-off 32 px: the pyramid starts at level 3 (8 px per pixel) and filters there
    with sigma 0.75 px. A 64 px wave keeps 2 ** -0.25 = 0.8409 under the exact filter;
    the three 2x2 means (a box of 8) keep sin(pi/8) / (8 sin(pi/64)) = 0.9749 more:
    0.8198 in all."""
    image = _wave(64.0, size=512)
    calls = []

    def source(i, level):
        calls.append((i, level))
        return array_levels(image[None])(i, level)

    pyramid = DisplayPyramid(source, (1, 512, 512), n_levels=1, cutoff_px=32.0)
    assert (pyramid.first, pyramid.factor, pyramid.n_levels) == (3, 8, 1)
    assert pyramid.level_shape(0) == (1, 64, 64)
    level = pyramid.slice(0)
    assert level.shape == (64, 64) and calls == [(0, 3)]
    # column j of level 3 averages columns 8j .. 8j + 7: its centre is 8j + 3.5
    amp = _amplitude(level[:, 16:48], 64.0, x0=8 * 16 + 3.5, step=8.0)
    assert amp == pytest.approx(2**-0.25 * 0.97487, abs=3e-3)
    exact = _amplitude(lowpass(image, 32.0)[:, 128:384], 64.0, x0=128)
    assert exact == pytest.approx(2**-0.25, abs=2e-3)


def test_array_levels_hold_one_slice():
    image = np.arange(3 * 8 * 8, dtype=np.float64).reshape(3, 8, 8)
    reads = []

    class Counted:  # an array that counts the slices read from it
        def __getitem__(self, i):
            reads.append(i)
            return image[i]

    source = array_levels(Counted())
    first = source(0, 0)
    assert first.dtype == np.float32
    np.testing.assert_array_equal(source(0, 1), _halve_by_hand(image[0]))
    assert source(0, 2).shape == (2, 2) and reads == [0]  # levels from the slice held
    source(1, 2)
    source(0, 1)
    assert reads == [0, 1, 0]  # slice 0 was let go when slice 1 was asked for


def test_pyramid_levels_follow_the_source_and_no_filter_is_the_source():
    image = np.random.default_rng(1).standard_normal((3, 64, 48)).astype(np.float32)
    raw = DisplayPyramid(array_levels(image), image.shape, n_levels=3)
    assert raw.first == 0 and raw.n_levels == 3
    np.testing.assert_array_equal(raw.slice(2, 0), image[2])
    np.testing.assert_allclose(raw.slice(2, 1)[0, 0], image[2, :2, :2].mean(), rtol=1e-6)
    assert raw.slice(1, 2).shape == (16, 12)
    assert raw.contrast_limits(2) == percentile_limits(raw.slice(2, 2))
    # cut-off 8 px on a 3-level source: display levels = source levels 1 and 2,
    # filtered at 4 px and 2 px of those levels
    low = DisplayPyramid(array_levels(image), image.shape, n_levels=3, cutoff_px=8.0)
    assert (low.first, low.n_levels) == (1, 2)
    assert [low.level_shape(k) for k in range(2)] == [(3, 32, 24), (3, 16, 12)]
    np.testing.assert_allclose(low.slice(0, 1), lowpass(raw.slice(0, 2), 2.0), rtol=1e-6)
    with pytest.raises(ValueError, match="> 0"):
        DisplayPyramid(array_levels(image), image.shape, cutoff_px=-1.0)
    # the finest filtered level is at most max_side px long: 64 -> 32 -> 16
    capped = DisplayPyramid(array_levels(image), image.shape, cutoff_px=4.0, max_side=20)
    assert (capped.first, capped.level_shape(0)) == (2, (3, 16, 12))
    np.testing.assert_allclose(capped.slice(1), lowpass(raw.slice(1, 2), 1.0), rtol=1e-6)


def _halve_by_hand(image: np.ndarray) -> np.ndarray:
    """2x2 means of ``image`` (the first pyramid level), written out."""
    return (image[0::2, 0::2] + image[1::2, 0::2] + image[0::2, 1::2] + image[1::2, 1::2]) / 4


def test_pyramid_filters_only_the_slice_asked_for_and_keeps_few(tmp_path):
    """Over a lazy stack: computing one slice of the dask levels decodes that
    micrograph only, and the pyramid holds the levels of the last two slices only."""
    images = []
    for i in range(6):
        image = np.random.default_rng(i).normal(i, 1.0, (64, 64)).astype(np.float32)
        write_micrograph(tmp_path / f"m{i}.mrc", image, pixel_size=2.0)
        images.append(image)
    stack = LazyStack(sorted(tmp_path.glob("*.mrc")), cache_size=2)
    pyramid = DisplayPyramid(stack.padded, stack.shape, n_levels=3, cutoff_px=9.0)
    levels = pyramid.to_dask()
    assert [lv.shape for lv in levels] == [(6, 32, 32), (6, 16, 16)]
    assert stack.reads == 0  # building the dask arrays reads nothing
    shown = np.asarray(levels[0][4])
    assert stack.reads == 1
    np.testing.assert_allclose(shown, lowpass(_halve_by_hand(images[4]), 4.5), rtol=1e-5, atol=1e-5)
    for i in range(6):
        np.asarray(levels[1][i])
        np.asarray(levels[0][i])
    assert stack.reads == 7  # one decode per slice (4 again: the stack's LRU holds 2)
    np.asarray(levels[0][5])
    np.asarray(levels[1][4])
    assert stack.reads == 7  # the last two slices' levels come from the pyramid's cache
    assert pyramid.cached_slices() == 2 * pyramid.n_levels
