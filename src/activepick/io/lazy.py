"""Lazy micrograph stacks: thousands of micrographs opened from their headers only.

A :class:`LazyStack` holds file paths and header-only shapes
(:func:`activepick.io.micrograph.read_shape`); a micrograph is decoded only when
asked for, and the last few decoded micrographs are kept in a small LRU cache.
It exposes the stack as a dask array ``(N, H, W)`` with one chunk per micrograph,
padded top-left (bottom / right filled with the micrograph's median), so a pixel ``(y, x)`` of
every micrograph keeps its coordinates. For micrographs much larger than a screen
it also gives downscaled levels (each a 2x2 block mean of the one above, as
:func:`~activepick.io.micrograph.downscale` computes) for a multiscale display.

``.mrcs`` stacks contribute one entry per image, named ``<stem>_<index:04d>``.
``reads`` counts decodes from disk (tests check that only the slice shown is read).
Nothing here imports Qt or napari.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import MicrographError
from .micrograph import Micrograph, micrograph_name, read_micrograph, read_shape

#: Decoded micrographs kept in memory (a 4096 px float32 micrograph is 64 MiB).
DEFAULT_CACHE_SIZE = 4
#: A stack whose long side exceeds this (px) gets downscaled levels.
MULTISCALE_MIN_SIZE = 3000
#: Each level is this factor smaller than the one before.
MULTISCALE_FACTOR = 2
#: Levels stop once the long side is at most this (px): about a screen.
MULTISCALE_TARGET = 1536


def _mrcs_count(path: Path) -> int:
    """Number of images in an MRC stack, from its header."""
    import mrcfile

    try:
        with mrcfile.open(path, mode="r", header_only=True, permissive=False) as mrc:
            return max(1, int(mrc.header.nz))
    except Exception as exc:  # mrcfile raises ValueError / OSError ...
        raise MicrographError(f"{path}: not a readable MRC file ({exc})") from None


def halve(image: np.ndarray) -> np.ndarray:
    """2x2 block mean in float32 (a trailing odd row / column is dropped), as
    :func:`activepick.io.micrograph.downscale` with factor 2 but without its float64 pass."""
    h, w = (image.shape[0] // 2) * 2, (image.shape[1] // 2) * 2
    a = image[:h, :w]
    out = a[0::2, 0::2] + a[1::2, 0::2]
    out += a[0::2, 1::2]
    out += a[1::2, 1::2]
    out *= np.float32(0.25)
    return out


class LazyStack:
    """Micrographs on disk, decoded on demand (see module docs).

    ``paths`` are micrograph files (``.mrcs`` expanded to one entry per image).
    Attributes: ``names``, ``paths`` (per entry), ``indices`` (image index in a
    ``.mrcs``, else None), ``shapes`` (``(h, w)`` per entry, from headers),
    ``shape`` ``(N, H, W)`` of the padded stack, ``reads`` (decodes so far).
    """

    def __init__(self, paths: Sequence[str | os.PathLike], *, cache_size: int = DEFAULT_CACHE_SIZE):
        self.paths: list[Path] = []
        self.indices: list[int | None] = []
        self.names: list[str] = []
        self.shapes: list[tuple[int, int]] = []
        for p in map(Path, paths):
            shape = read_shape(p)
            if p.suffix.lower() == ".mrcs":
                for i in range(_mrcs_count(p)):
                    self.paths.append(p)
                    self.indices.append(i)
                    self.names.append(f"{p.stem}_{i:04d}")
                    self.shapes.append(shape)
            else:
                self.paths.append(p)
                self.indices.append(None)
                self.names.append(micrograph_name(p))
                self.shapes.append(shape)
        if not self.paths:
            raise MicrographError("no micrographs to open")
        h = max(s[0] for s in self.shapes)
        w = max(s[1] for s in self.shapes)
        self.shape: tuple[int, int, int] = (len(self.paths), h, w)
        self.cache_size = max(1, int(cache_size))
        self.reads = 0
        self._cache: OrderedDict = OrderedDict()
        self._lock = threading.RLock()
        self._pixel_size: float | None = None
        self._pixel_size_known = False

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def pixel_size(self) -> float | None:
        """Å/px of the first MRC file whose header gives one (header only), else None."""
        if not self._pixel_size_known:
            from .micrograph import read_pixel_size

            for p in dict.fromkeys(self.paths):
                size = read_pixel_size(p)
                if size:
                    self._pixel_size = size
                    break
            self._pixel_size_known = True
        return self._pixel_size

    def _cached(self, key, make):
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        value = make()
        with self._lock:
            self._cache[key] = value
            self._cache.move_to_end(key)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return value

    def micrograph(self, i: int) -> Micrograph:
        """Entry ``i`` decoded (unpadded, float32), through the LRU cache."""
        i = int(i)

        def read() -> Micrograph:
            mic = read_micrograph(self.paths[i], index=self.indices[i])
            if mic.shape != self.shapes[i]:
                raise MicrographError(
                    f"{self.paths[i]}: image is {mic.shape} px but its header said {self.shapes[i]}"
                )
            with self._lock:
                self.reads += 1
            return Micrograph(self.names[i], mic.data, mic.pixel_size, self.paths[i])

        return self._cached(("mic", i), read)

    def padded(self, i: int, level: int = 0) -> np.ndarray:
        """Entry ``i`` as a ``(H, W)`` array of the padded stack at ``level``
        (level ``k`` is downscaled by ``MULTISCALE_FACTOR ** k``)."""
        i, level = int(i), int(level)
        _, h, w = self.level_shape(level)

        def make() -> np.ndarray:
            if level:  # from the level above (cached), so each level costs one 2x2 mean
                data = halve(self.padded(i, level - 1))
            else:
                data = self.micrograph(i).data
            if data.shape == (h, w):
                return data
            out = np.full((h, w), np.median(data), dtype=np.float32)
            ch, cw = min(h, data.shape[0]), min(w, data.shape[1])
            out[:ch, :cw] = data[:ch, :cw]
            return out

        if level == 0 and self.shapes[i] == self.shape[1:]:
            return self.micrograph(i).data
        return self._cached(("pad", i, level), make)

    def level_shape(self, level: int) -> tuple[int, int, int]:
        """``(N, H, W)`` of level ``level`` (0 = full size)."""
        f = MULTISCALE_FACTOR**level
        return (self.shape[0], max(1, self.shape[1] // f), max(1, self.shape[2] // f))

    def n_levels(self, *, min_size: int | None = None) -> int:
        """1 for stacks of small micrographs (long side <= ``min_size``, default
        :data:`MULTISCALE_MIN_SIZE`), else enough levels to fit about a screen."""
        n = 1
        if max(self.shape[1:]) <= (MULTISCALE_MIN_SIZE if min_size is None else min_size):
            return n
        while max(self.level_shape(n - 1)[1:]) > MULTISCALE_TARGET:
            n += 1
        return n

    def to_dask(self, level: int = 0):
        """The padded stack at ``level`` as a dask array ``(N, H, W)`` float32, one
        chunk per micrograph; computing a chunk reads that micrograph only."""
        import dask.array as da

        n, h, w = self.level_shape(level)

        def block(block_id=None):
            return self.padded(block_id[0], level)[None]

        return da.map_blocks(
            block,
            chunks=((1,) * n, (h,), (w,)),
            dtype=np.float32,
            meta=np.empty((0, 0, 0), dtype=np.float32),
            name=f"activepick-lazy-{id(self):x}-{level}",
        )

    def multiscale(self, *, min_size: int | None = None) -> list:
        """Dask arrays of every level, largest first (a single one for small micrographs)."""
        return [self.to_dask(k) for k in range(self.n_levels(min_size=min_size))]

    def clear_cache(self) -> None:
        """Forget every decoded micrograph."""
        with self._lock:
            self._cache.clear()


class LazyMicrograph(Micrograph):
    """Entry ``index`` of a :class:`LazyStack` as a :class:`Micrograph` whose pixels are
    decoded only when ``data`` is read (through the stack's LRU cache); ``name``,
    ``path``, ``shape`` and ``pixel_size`` come from the headers. The engine and the
    widget hold these instead of arrays, so a pool of thousands of 4k micrographs
    costs memory only for what a round trains or predicts on."""

    def __init__(self, stack: LazyStack, index: int) -> None:  # not the dataclass __init__
        self._stack, self._index = stack, int(index)
        self.name = stack.names[self._index]
        self.path = stack.paths[self._index]

    @property
    def data(self) -> np.ndarray:
        return self._stack.micrograph(self._index).data

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(int(s) for s in self._stack.shapes[self._index])

    @property
    def pixel_size(self) -> float | None:
        return self._stack.pixel_size

    def __repr__(self) -> str:
        return f"LazyMicrograph({self.name!r}, {self.shape[1]} x {self.shape[0]} px, {self.path})"


def lazy_micrographs(stack: LazyStack) -> list[LazyMicrograph]:
    """Every entry of ``stack`` as a :class:`LazyMicrograph` (stack order)."""
    return [LazyMicrograph(stack, i) for i in range(len(stack))]
