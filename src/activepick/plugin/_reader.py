"""npe2 readers: micrographs (MRC / MRCS / TIFF, a file, many files or a folder) and
coordinate files (STAR / CBOX / BOX / CS / CSV / Topaz) as napari layers.

The readers only translate: ``io.micrograph`` and ``io.formats`` do the reading.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from ..constants import DEFAULT_DIAMETER  # picks from formats that store no diameter
from ..errors import ActivePickError, CoordinateError
from ._layers import (
    LAZY_STACK_KEY,
    MICROGRAPHS_KEY,
    PATHS_KEY,
    PIXEL_SIZE_KEY,
    SHAPES_KEY,
    contrast_limits,
    coordinate_layer_data,
)

#: Extensions the micrograph reader claims (lower case).
MICROGRAPH_SUFFIXES = (".mrc", ".mrcs", ".tif", ".tiff")
#: Extensions the coordinate reader claims (lower case).
COORDINATE_SUFFIXES = (".star", ".cbox", ".box", ".cs", ".csv", ".txt", ".tsv")

PathLike = str | os.PathLike
LayerData = tuple


def _as_paths(path: PathLike | Sequence[PathLike]) -> list[Path]:
    if isinstance(path, (str, os.PathLike)):
        return [Path(path)]
    return [Path(p) for p in path]


def _micrograph_files(paths: list[Path]) -> list[Path] | None:
    """The micrograph files that ``paths`` name (folders expanded), or None if not ours."""
    from ..io.micrograph import list_micrographs

    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            try:
                found = list_micrographs(p)
            except ActivePickError:
                return None
            found = [f for f in found if f.suffix.lower() in MICROGRAPH_SUFFIXES]
            if not found:
                return None
            files.extend(found)
        elif p.suffix.lower() in MICROGRAPH_SUFFIXES:
            files.append(p)
        else:
            return None
    return files or None


def lazy_micrograph_layer_data(files: Sequence[Path], name: str = "micrographs") -> tuple:
    """A LayerData tuple ``(data, kwargs, "image")`` that reads micrographs on demand.

    ``data`` is a dask array (``(N, H, W)``, one chunk per micrograph, padded
    top-left; ``(H, W)`` for one micrograph) from :class:`activepick.io.lazy.LazyStack`,
    or a list of them, largest first, with ``multiscale=True`` when the micrographs
    are much larger than a screen. Opening reads headers only, plus the first
    micrograph for the contrast limits. The metadata holds the names, paths, pixel
    size and true shapes (see :mod:`~activepick.plugin._layers`) plus the stack itself
    under :data:`LAZY_STACK_KEY`.
    """
    from ..io.lazy import LazyStack

    stack = LazyStack(files)
    names = stack.names
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ActivePickError(f"micrograph names are not unique: {dup[:5]}")
    levels = stack.multiscale()
    if len(stack) == 1:
        levels = [level[0] for level in levels]
    metadata = {
        MICROGRAPHS_KEY: list(names),
        PATHS_KEY: [str(p) for p in stack.paths],
        PIXEL_SIZE_KEY: stack.pixel_size,
        SHAPES_KEY: dict(zip(names, stack.shapes, strict=True)),
        LAZY_STACK_KEY: stack,
    }
    kwargs = {
        "name": name,
        "metadata": metadata,
        "contrast_limits": contrast_limits(stack.micrograph(0).data),
        "colormap": "gray",
        "multiscale": len(levels) > 1,
        # napari's own dask cache would keep up to 25% of RAM of decoded chunks;
        # the stack's small LRU cache bounds the memory instead
        "cache": False,
    }
    return (levels if len(levels) > 1 else levels[0], kwargs, "image")


def get_micrograph_reader(path: PathLike | Sequence[PathLike]) -> Callable | None:
    """npe2 reader contribution: a reader function when ``path`` names micrographs
    (MRC / MRCS / TIFF files or folders holding them), else None.

    The layer is lazy (:func:`lazy_micrograph_layer_data`): only the micrograph
    shown is read.
    """
    files = _micrograph_files(_as_paths(path))
    if files is None:
        return None

    def reader(_path=None) -> list[LayerData]:
        name = files[0].parent.name if len(files) > 1 else files[0].stem
        return [lazy_micrograph_layer_data(files, name=name or "micrographs")]

    return reader


def read_coordinate_layers(
    path: PathLike, *, diameter: float | None = None, names: Sequence[str] | None = None
) -> list[LayerData]:
    """Read one coordinate file into a Points LayerData tuple.

    ``names`` is the micrograph order of the image stack the points belong to
    (default: the file's micrographs sorted by name, the order of a folder of
    micrographs). Formats without a diameter get ``diameter`` or
    :data:`DEFAULT_DIAMETER`.
    """
    from ..io.formats import read_coordinates

    path = Path(path)
    guessed = False
    try:
        picks = read_coordinates(path, diameter=diameter)
    except CoordinateError as exc:
        if diameter is not None or "diameter" not in str(exc):
            raise
        picks = read_coordinates(path, diameter=DEFAULT_DIAMETER)
        guessed = True
    if names is None:
        names = sorted(set(picks["micrograph"].astype(str)))
    return [
        coordinate_layer_data(
            picks,
            names,
            name=path.stem,
            source=str(path),
            format=picks.attrs.get("format", ""),
            diameter_guessed=guessed,
        )
    ]


def get_coordinate_reader(path: PathLike | Sequence[PathLike]) -> Callable | None:
    """npe2 reader contribution: a reader function for coordinate files, else None.

    Several files give one Points layer each.
    """
    paths = _as_paths(path)
    if not paths or any(
        p.is_dir() or p.suffix.lower() not in COORDINATE_SUFFIXES or not p.exists() for p in paths
    ):
        return None

    def reader(_path=None) -> list[LayerData]:
        layers = []
        for p in paths:
            layers.extend(read_coordinate_layers(p))
        return layers

    return reader
