"""How micrographs are shown: a low-pass filter and contrast limits from percentiles.

Display only: nothing here feeds training or prediction, which read the source
pixels and normalise them their own way (``detector.data.prepare_image``). The
napari plugin (``plugin/_display.py``) shows a :class:`DisplayPyramid` as its own
image layer; the micrograph layer's data is never replaced.

**Filter.** A Gaussian low-pass (``scipy.ndimage.gaussian_filter``), chosen over a
Butterworth or a raised-cosine edge in Fourier space because its kernel is
positive: it cannot ring, so it draws no dark / bright halos around particles,
ice edges or carbon, which a person picking would read as structure. It is
separable, so a 1024 px level filters in about 20 ms with no FFT and no
wrap-around at the micrograph's edges (``mode="reflect"``), and its transfer has
a closed form, so the cut-off is exact. Its edge is softer than a Butterworth's;
for seeing particles many times larger than the cut-off that costs nothing.

**Cut-off.** A cut-off of ``c`` (Å or px) is the wavelength that the filter passes
at half amplitude, as RELION's "lowpass filter (A)" and crYOLO's absolute cut-off
frequency (0.1 = a 10 px wavelength) are read: a sinusoid of wavelength ``λ`` keeps
:func:`lowpass_transfer` ``= 2 ** -(c / λ) ** 2`` of its amplitude (0.5 at
``λ = c``, 0.84 at ``2c``, 0.0625 at ``c / 2``), i.e. a Gaussian of standard
deviation :func:`gaussian_sigma` ``= c * sqrt(ln 2 / 2) / π ≈ 0.187 c``.

**Per slice, on a pyramid.** A filtered 4096 px micrograph holds nothing finer
than its cut-off, so it is computed on the 2x2-mean pyramid level whose pixel is
at most a quarter of the cut-off (:func:`display_level`) and shown scaled up:
filtering one 4096 px micrograph at full size takes 0.3-0.7 s, its 1024 px level
(a 20 px cut-off) 20 ms. The finest filtered level is at most
:data:`FILTER_MAX_SIDE` px long, so a cut-off under 8 px of a 4096 px micrograph
is shown on the 2048 px level, drawn from 2x2 blocks when zoomed in to single
pixels; it still keeps 0.45-0.56 of the amplitude at the cut-off instead of 0.5
(measured for cut-offs of 5-7 px). Each slice is filtered when it is shown, and the
:class:`DisplayPyramid` keeps the levels of the last few slices only, so the
filtered image costs no memory per micrograph of the stack.
"""

from __future__ import annotations

import functools
import math
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

#: Contrast limits of micrographs: these percentiles of a pixel sample.
CONTRAST_PERCENTILES = (0.5, 99.5)
#: Pixels sampled (strided) for per-slice contrast limits.
CONTRAST_SAMPLE = 1 << 16
#: Low-pass presets in Å (when the pixel size is known): RELION's tutorial views
#: micrographs for manual picking at 20 Å; 10 and 30 Å bracket it.
LOWPASS_PRESETS_A = (10.0, 20.0, 30.0)
#: Low-pass presets in px (pixel size unknown): 10 px is crYOLO's default filter,
#: an absolute cut-off frequency of 0.1; 5 and 20 px bracket it.
LOWPASS_PRESETS_PX = (5.0, 10.0, 20.0)
#: The display grid samples the cut-off wavelength at least this often.
SAMPLES_PER_CUTOFF = 4
#: The filtered display's finest level has at most this many px on its long side
#: (a 4096 px micrograph is filtered at 2048 px at the finest, about 0.1 s; at
#: full size 0.3-0.7 s). Only cut-offs under 8 px of such micrographs are affected.
FILTER_MAX_SIDE = 2048
#: Units of a low-pass cut-off.
ANGSTROM, PIXEL = "Å", "px"

Source = Callable[[int, int], np.ndarray]


def gaussian_sigma(cutoff: float) -> float:
    """Standard deviation (same unit as ``cutoff``) of the Gaussian that passes a
    sinusoid of wavelength ``cutoff`` at half amplitude: ``cutoff * sqrt(ln 2 / 2) / π``."""
    if not cutoff > 0:
        raise ValueError(f"low-pass cut-off must be > 0, got {cutoff}")
    return float(cutoff) * math.sqrt(math.log(2.0) / 2.0) / math.pi


def lowpass_transfer(wavelength: float, cutoff: float) -> float:
    """The amplitude kept of a sinusoid of ``wavelength`` by the low-pass of
    ``cutoff`` (same unit): ``2 ** -(cutoff / wavelength) ** 2``."""
    return float(2.0 ** (-((cutoff / wavelength) ** 2)))


def lowpass(image: np.ndarray, cutoff_px: float) -> np.ndarray:
    """``image`` (2-D) low-pass filtered at ``cutoff_px`` (px of this image), float32.

    A Gaussian of :func:`gaussian_sigma` ``(cutoff_px)`` with reflected edges; the
    input is not changed.
    """
    from scipy import ndimage

    sigma = gaussian_sigma(cutoff_px)
    return ndimage.gaussian_filter(
        np.asarray(image, dtype=np.float32), sigma, mode="reflect", output=np.float32
    )


def display_level(cutoff_px: float) -> int:
    """The pyramid level (downscaled by ``2 ** level`` with 2x2 means) on which a
    low-pass of ``cutoff_px`` (px of the full-size micrograph) is computed and
    shown: the coarsest whose pixel is at most ``cutoff_px / SAMPLES_PER_CUTOFF``
    (the filter then leaves 1 / 16 or less of the amplitude at that level's
    Nyquist wavelength). 20 px -> 2, 10 px -> 1, under 8 px -> 0."""
    ratio = float(cutoff_px) / SAMPLES_PER_CUTOFF
    return max(0, int(math.floor(math.log2(ratio)))) if ratio >= 1 else 0


def micrograph_pixel_size(micrographs: Iterable[Any]) -> float | None:
    """The pixel size (Å/px) the display uses: the first positive ``pixel_size`` of
    ``micrographs`` (``Micrograph`` objects: MRC headers), else None.

    The single place the display learns the pixel size (``plugin/_display.py``
    calls it once per attached stack): point it at a session-level pixel size once
    there is one.
    """
    for m in micrographs:
        size = getattr(m, "pixel_size", None)
        if size is not None and math.isfinite(size) and size > 0:
            return float(size)
    return None


def cutoff_px(value: float, unit: str, pixel_size: float | None) -> float:
    """A cut-off of ``value`` in ``unit`` (:data:`ANGSTROM` or :data:`PIXEL`) in
    pixels of the micrograph (``pixel_size`` in Å/px)."""
    if not value > 0:
        raise ValueError(f"low-pass cut-off must be > 0, got {value} {unit}")
    if unit == PIXEL:
        return float(value)
    if unit != ANGSTROM:
        raise ValueError(f"low-pass unit must be {ANGSTROM!r} or {PIXEL!r}, got {unit!r}")
    if not pixel_size:
        raise ValueError("a low-pass cut-off in Å needs the pixel size (Å/px)")
    return float(value) / float(pixel_size)


def lowpass_presets(pixel_size: float | None) -> list[tuple[float, str]]:
    """The preset cut-offs ``(value, unit)`` offered: in Å when the pixel size is
    known (:data:`LOWPASS_PRESETS_A`), else in px (:data:`LOWPASS_PRESETS_PX`)."""
    if pixel_size:
        return [(v, ANGSTROM) for v in LOWPASS_PRESETS_A]
    return [(v, PIXEL) for v in LOWPASS_PRESETS_PX]


def percentile_limits(
    image: np.ndarray,
    percentiles: tuple[float, float] = CONTRAST_PERCENTILES,
    *,
    sample: int | None = CONTRAST_SAMPLE,
) -> tuple[float, float]:
    """``(low, high)`` display limits: the ``percentiles`` of the finite pixels of
    ``image`` (a strided sample of about ``sample`` pixels; all with None). A
    constant image gives ``(v, v + 1)``; one with no finite pixel ``(0, 1)``."""
    flat = np.asarray(image, dtype=np.float32).ravel()
    if sample:
        flat = flat[:: max(1, flat.size // sample)]
    values = flat[np.isfinite(flat)]
    if values.size == 0:
        return (0.0, 1.0)
    lo, hi = np.percentile(values, percentiles)
    if not hi > lo:
        hi = lo + 1.0
    return (float(lo), float(hi))


def array_levels(data: Any) -> Source:
    """``source(i, level)`` over an in-memory (or dask) stack ``(N, H, W)``: slice
    ``i`` as float32, halved ``level`` times with 2x2 means (as
    :meth:`activepick.io.lazy.LazyStack.padded`). Holds the levels of the last slice
    asked for only."""
    from .io.lazy import halve

    held: dict[str, Any] = {"index": None, "levels": {}}

    def source(i: int, level: int) -> np.ndarray:
        i, level = int(i), int(level)
        if held["index"] != i:
            held["index"], held["levels"] = i, {}
        levels = held["levels"]
        if level not in levels:
            if level == 0:
                levels[0] = np.asarray(data[i], dtype=np.float32)
            else:
                levels[level] = halve(source(i, level - 1))
        return levels[level]

    return source


class DisplayPyramid:
    """What the display shows of a stack: levels of the source pyramid, each
    low-pass filtered (or not, with ``cutoff_px=None``), computed per slice on demand.

    ``source(i, level)`` gives slice ``i`` of the stack ``shape = (N, H, W)`` downscaled
    ``2 ** level`` times by 2x2 means (:meth:`~activepick.io.lazy.LazyStack.padded`
    or :func:`array_levels`); ``n_levels`` is how many levels napari shows of the
    source (1 for small micrographs). With a cut-off the pyramid starts at source
    level :attr:`first` = :func:`display_level` ``(cutoff_px)``, or the first level
    whose long side is at most ``max_side`` if that is coarser (a layer showing it is
    scaled by :attr:`factor`), and its level ``k`` is source level ``first + k``
    filtered at ``cutoff_px / 2 ** (first + k)`` px of that level. The last
    ``cache_slices`` slices' levels are kept; nothing else.
    """

    def __init__(
        self,
        source: Source,
        shape: tuple[int, int, int],
        *,
        n_levels: int = 1,
        cutoff_px: float | None = None,
        max_side: int | None = FILTER_MAX_SIDE,
        cache_slices: int = 2,
    ) -> None:
        self.source = source
        self.shape = tuple(int(s) for s in shape)
        self.cutoff_px = None if cutoff_px is None else float(cutoff_px)
        self.first = 0
        if cutoff_px is not None:
            gaussian_sigma(cutoff_px)  # refuses a cut-off <= 0
            self.first = display_level(cutoff_px)
            while max_side and max(self.shape[1:]) // 2**self.first > max_side:
                self.first += 1
        self.n_levels = max(1, int(n_levels) - self.first)
        self._slice = functools.lru_cache(maxsize=max(1, cache_slices) * self.n_levels)(
            self._compute
        )

    @property
    def factor(self) -> int:
        """Source pixels per pixel of level 0 of this pyramid, along y and x."""
        return 2**self.first

    def level_shape(self, level: int) -> tuple[int, int, int]:
        """``(N, H, W)`` of this pyramid's ``level`` (source level ``first + level``)."""
        f = 2 ** (self.first + int(level))
        n, h, w = self.shape
        return (n, max(1, h // f), max(1, w // f))

    def _compute(self, i: int, level: int) -> np.ndarray:
        absolute = self.first + level
        image = self.source(i, absolute)
        if self.cutoff_px is None:
            return np.asarray(image, dtype=np.float32)
        return lowpass(image, self.cutoff_px / 2**absolute)

    def slice(self, i: int, level: int = 0) -> np.ndarray:
        """Slice ``i`` at this pyramid's ``level`` (2-D float32; cached)."""
        return self._slice(int(i), int(level))

    def cached_slices(self) -> int:
        """How many slice levels are held now (at most ``cache_slices * n_levels``)."""
        return self._slice.cache_info().currsize

    def contrast_limits(
        self, i: int, percentiles: tuple[float, float] = CONTRAST_PERCENTILES
    ) -> tuple[float, float]:
        """:func:`percentile_limits` of slice ``i`` at the coarsest level (what a
        screen shows of a whole micrograph: filtered and downscaled)."""
        return percentile_limits(self.slice(i, self.n_levels - 1), percentiles)

    def to_dask(self) -> list:
        """Every level as a dask array ``(N, H, W)`` float32, largest first, one chunk
        per slice: computing a chunk computes that slice's level only."""
        import dask.array as da

        token = uuid.uuid4().hex
        levels = []
        for k in range(self.n_levels):
            n, h, w = self.level_shape(k)

            def block(block_id=None, k=k):
                return self.slice(block_id[0], k)[None]

            levels.append(
                da.map_blocks(
                    block,
                    chunks=((1,) * n, (h,), (w,)),
                    dtype=np.float32,
                    meta=np.empty((0, 0, 0), dtype=np.float32),
                    name=f"activepick-display-{token}-{k}",
                )
            )
        return levels
