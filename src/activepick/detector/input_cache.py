"""A session cache of preprocessed network inputs: float16 at network resolution.

Reading a 4096 px micrograph and resizing it to the network's input costs more
than a light network's forward pass on CPU, and an active-learning session does it
for the same micrographs every round. :func:`prepared_input` returns exactly what
:func:`activepick.detector.data.prepare_image` returns (up to float16 rounding: a
relative error below 2**-11 of each normalised value), but keeps the resized,
normalised image:

- on disk, one ``<key>.npz`` per micrograph and input size inside the session's
  ``cache/`` folder (:func:`session_input_cache`), written atomically
  (:mod:`activepick.io.atomic`); the unpadded float16 image plus the original
  ``(height, width)``. A 1024 px input is 2 MiB, a 640 px one 0.8 MiB;
- in memory, an LRU of the most recently used entries bounded in bytes.

The key is a hash of the micrograph's absolute path (symlinks are not resolved:
two links are two micrographs), its name (one ``.mrcs`` holds several), the file's
modification time (ns) and size, the input size and :data:`CACHE_VERSION`. A
changed file therefore misses and is prepared again; the stale entry stays on disk
until the cache folder is removed (it is derived data, safe to delete at any time).
A cache entry that cannot be read (truncated by a crash elsewhere) is prepared and
written again; an entry that cannot be written (full disk) is counted in
``write_errors`` and the round goes on from memory. Micrographs without a file (bare arrays) are prepared, not cached.

Nothing here imports Qt or napari.
"""

from __future__ import annotations

import hashlib
import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Generator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..io.atomic import atomic_open
from ..io.micrograph import micrograph_name, read_micrograph, read_shape
from ..progress import StopFn
from .config import DetectorConfig, auto_input_size
from .data import padded_shape, prepare_image

#: Bumped when :func:`prepare_image` changes what it computes: old entries then miss.
CACHE_VERSION = 2
#: Name of the cache folder inside a session folder.
CACHE_FOLDER = "cache"
#: Bytes of float16 inputs kept in memory (128 inputs of 1024 x 1024).
DEFAULT_MEMORY_BYTES = 256 * 2**20


class InputCache:
    """Prepared network inputs on disk (``folder``, or memory only when None) and in
    a memory LRU of at most ``memory_bytes``.

    Counters (for tests and benchmarks): ``memory_hits``, ``disk_hits``,
    ``misses`` (prepared from the micrograph), ``writes`` (files written),
    ``write_errors`` (files that could not be written, e.g. a full disk: the input
    is still returned and kept in memory; ``last_error`` names the file).
    """

    def __init__(
        self, folder: str | os.PathLike | None, *, memory_bytes: int = DEFAULT_MEMORY_BYTES
    ):
        self.folder = None if folder is None else Path(folder)
        self.memory_bytes = max(0, int(memory_bytes))
        self.memory_hits = 0
        self.disk_hits = 0
        self.misses = 0
        self.writes = 0
        self.write_errors = 0
        self.last_error: str | None = None
        self._memory: OrderedDict[str, tuple[np.ndarray, tuple[int, int]]] = OrderedDict()
        self._used = 0
        self._lock = threading.RLock()

    def __len__(self) -> int:
        """Entries held in memory."""
        return len(self._memory)

    def path_of(self, key: str) -> Path | None:
        """The file of entry ``key`` (None for a memory-only cache)."""
        return None if self.folder is None else self.folder / f"{key}.npz"

    def get(self, key: str) -> tuple[np.ndarray, tuple[int, int]] | None:
        """``(float16 image (h', w'), original (h, w))`` of ``key``, or None."""
        with self._lock:
            if key in self._memory:
                self._memory.move_to_end(key)
                self.memory_hits += 1
                return self._memory[key]
        path = self.path_of(key)
        if path is None or not path.is_file():
            return None
        try:
            with np.load(path) as npz:
                entry = (np.asarray(npz["image"], dtype=np.float16), tuple(map(int, npz["shape"])))
        except Exception:  # a damaged entry is derived data: prepare it again
            return None
        if entry[0].ndim != 2 or len(entry[1]) != 2:
            return None
        with self._lock:
            self.disk_hits += 1
        self._remember(key, entry)
        return entry

    def put(self, key: str, image: np.ndarray, shape: tuple[int, int]) -> None:
        """Store a prepared (unpadded) image as float16, on disk and in memory."""
        entry = (np.ascontiguousarray(image, dtype=np.float16), (int(shape[0]), int(shape[1])))
        path = self.path_of(key)
        if path is not None:
            try:
                with atomic_open(path, "wb") as fh:
                    np.savez(fh, image=entry[0], shape=np.asarray(entry[1], dtype=np.int64))
            except OSError as exc:  # full disk, read-only session: the round goes on
                with self._lock:
                    self.write_errors += 1
                    self.last_error = f"{path}: {exc.strerror or exc}"
            else:
                with self._lock:
                    self.writes += 1
        self._remember(key, entry)

    def _remember(self, key: str, entry: tuple[np.ndarray, tuple[int, int]]) -> None:
        size = entry[0].nbytes
        if size > self.memory_bytes:
            return
        with self._lock:
            if key in self._memory:
                self._used -= self._memory.pop(key)[0].nbytes
            self._memory[key] = entry
            self._used += size
            while self._used > self.memory_bytes:
                _, (old, _) = self._memory.popitem(last=False)
                self._used -= old.nbytes


def session_input_cache(session_folder: str | os.PathLike, **kwargs: Any) -> InputCache:
    """The input cache of a session: ``<session_folder>/cache/`` (made on first write)."""
    return InputCache(Path(session_folder) / CACHE_FOLDER, **kwargs)


_SESSION_CACHES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def session_prepare(session: Any) -> Callable[[Any, int], Any] | None:
    """The ``prepare`` hook of training and prediction for an open session (anything
    with a ``folder``): :func:`prepared_input` through :func:`session_input_cache`,
    one cache per session object so its memory LRU lasts across rounds. None without
    a session (then training and prediction use the pixels, unrounded)."""
    if session is None:
        return None
    cache = _SESSION_CACHES.get(session)
    if cache is None:
        cache = _SESSION_CACHES[session] = session_input_cache(session.folder)

    def prepare(micrograph: Any, input_size: int):
        return prepared_input(micrograph, int(input_size), cache)

    prepare.cache = cache  # type: ignore[attr-defined]  # counters for tests and benchmarks
    return prepare


def _source_of(item: Any) -> tuple[Path | None, str | None]:
    """``(file, name)`` of a path or of a micrograph with a ``path``; (None, None) else."""
    if isinstance(item, (str, os.PathLike)):
        path = Path(item)
        return path, micrograph_name(path)
    path = getattr(item, "path", None)
    if path is None:
        return None, None
    return Path(path), str(getattr(item, "name", micrograph_name(path)))


def input_key(path: str | os.PathLike, name: str, input_size: int) -> str:
    """Cache key of micrograph ``name`` stored in ``path`` at ``input_size`` (see module docs)."""
    path = Path(path).absolute()
    st = path.stat()
    text = f"{CACHE_VERSION}|{path}|{name}|{st.st_mtime_ns}|{st.st_size}|{int(input_size)}"
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def resolve_input_size(config: DetectorConfig | int, shape: tuple[int, int]) -> int:
    """The input long side for a micrograph of ``shape``: an int as given, else the
    config's ``input_size`` or, when None, :func:`auto_input_size` for its diameter."""
    if isinstance(config, DetectorConfig):
        if config.input_size:
            return int(config.input_size)
        return auto_input_size(max(shape), config.diameter)
    return int(config)


def _padded_tensor(image: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(np.asarray(image, dtype=np.float32))[None]
    nh, nw = image.shape
    ph, pw = padded_shape((nh, nw))
    return F.pad(t, (0, pw - nw, 0, ph - nh)).contiguous()


def prepared_input(
    micrograph: Any, config: DetectorConfig | int, cache: InputCache | None = None
) -> tuple[torch.Tensor, tuple[float, float]]:
    """The network input of one micrograph and its scale, through ``cache``.

    ``micrograph`` is a file path, a :class:`~activepick.io.micrograph.Micrograph`
    (or anything with ``name``, ``data`` and ``path``) or a bare 2-D array.
    ``config`` is a :class:`DetectorConfig` (its ``input_size``, or the automatic
    size when None) or an input size in px. Returns ``(tensor (1, Hp, Wp) float32,
    (sx, sy))`` as :func:`~activepick.detector.data.prepare_image`, the tensor
    rounded through float16 whether it came from the cache or not (so a round gives
    the same result before and after the cache is filled). On a hit nothing is read
    from the micrograph file but its ``stat``. Unreadable micrographs raise
    :class:`~activepick.errors.MicrographError` naming the file.
    """
    path, name = _source_of(micrograph)
    key = None
    if cache is not None and path is not None:
        if isinstance(config, DetectorConfig) and not config.input_size:
            shape = getattr(micrograph, "shape", None) or read_shape(path)
        else:
            shape = (1, 1)  # not needed: the size is fixed
        try:
            key = input_key(path, name, resolve_input_size(config, shape))
        except OSError:  # missing file: read_micrograph below names it
            key = None
        entry = None if key is None else cache.get(key)
        if entry is not None:
            image, (h, w) = entry
            return _padded_tensor(image), (image.shape[1] / w, image.shape[0] / h)
    if isinstance(micrograph, (str, os.PathLike)):
        data = read_micrograph(micrograph).data
    else:
        data = getattr(micrograph, "data", micrograph)
    data = np.asarray(data, dtype=np.float32)
    tensor, scale = prepare_image(data, resolve_input_size(config, data.shape))
    h, w = data.shape
    nh, nw = int(round(scale[1] * h)), int(round(scale[0] * w))
    image = tensor[0, :nh, :nw].numpy().astype(np.float16)
    if cache is not None:
        with cache._lock:
            cache.misses += 1
        if key is not None:
            cache.put(key, image, (h, w))
    return _padded_tensor(image), scale


def iter_fill_cache(
    micrographs: Sequence[Any],
    config: DetectorConfig | int,
    cache: InputCache,
    *,
    should_stop: StopFn | None = None,
) -> Generator[dict, None, int]:
    """Prepare the inputs of ``micrographs`` (paths or micrographs with a ``path``)
    into ``cache`` ahead of use, e.g. the next round's prediction window while the
    user reviews. Yields ``{"stage": "cache", "step", "total", "micrograph"}`` after
    each micrograph; returns how many were prepared (the rest were cached already).
    ``should_stop`` ends it early at the next micrograph (no exception: a partly
    filled cache is still valid).
    """
    micrographs = list(micrographs)
    before = cache.misses
    for i, m in enumerate(micrographs):
        if should_stop is not None and should_stop():
            break
        prepared_input(m, config, cache)
        _, name = _source_of(m)
        yield {"stage": "cache", "step": i + 1, "total": len(micrographs), "micrograph": name}
    return cache.misses - before
