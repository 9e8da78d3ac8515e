"""npe2 writer: a Points layer of picks -> any coordinate format (``io.formats``).

The format comes from the file extension (``.star``, ``.cbox``, ``.box``, ``.cs``,
``.csv``, ``.txt`` for Topaz); a path without extension writes RELION
per-micrograph pick files plus an index into that folder. Micrograph names come
from the layer's ``micrograph`` feature or its ``micrographs`` metadata (the stack
order); the point size is the diameter when no ``diameter`` feature exists.
``.box`` / ``.cbox`` hold one micrograph each: picks on several micrographs are
written as ``<stem>/<micrograph>.box`` into a folder named after the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ._layers import MICROGRAPHS_KEY, PIXEL_SIZE_KEY, SHAPES_KEY, points_to_picks

#: Formats that hold one micrograph per file: several micrographs go into a folder
#: named after the file (``picks.box`` -> ``picks/<micrograph>.box``).
PER_MICROGRAPH_SUFFIXES = (".box", ".cbox")


def points_layer_picks(data: Any, attributes: dict) -> pd.DataFrame:
    """The pick table of a Points layer given as napari's ``(data, attributes)``."""
    meta = attributes.get("metadata") or {}
    features = attributes.get("features")
    if features is None and attributes.get("properties"):
        features = pd.DataFrame(attributes["properties"])
    size = np.asarray(attributes.get("size", 64.0), dtype=np.float64)
    if size.ndim == 2:  # older napari: one size per dimension
        size = size[:, -1]
    picks = points_to_picks(
        np.asarray(data), features, meta.get(MICROGRAPHS_KEY), diameter=size if size.size else None
    )
    return picks


def write_points(path: str, data: Any, attributes: dict) -> list[str]:
    """npe2 single-layer writer: write the picks of a Points layer; returns the files."""
    from ..io.formats import write_coordinates

    meta = attributes.get("metadata") or {}
    picks = points_layer_picks(data, attributes)
    shapes = meta.get(SHAPES_KEY) or None
    if shapes is not None:
        names = set(picks["micrograph"])
        shapes = {k: tuple(v) for k, v in shapes.items()} if names <= set(shapes) else None
    path = Path(path)
    fmt = None
    if path.suffix.lower() in PER_MICROGRAPH_SUFFIXES and picks["micrograph"].nunique() > 1:
        fmt = path.suffix.lower().lstrip(".")
        path = path.with_suffix("")  # one file per micrograph, in a folder
    written = write_coordinates(
        picks, path, fmt, shapes=shapes, pixel_size=meta.get(PIXEL_SIZE_KEY)
    )
    return [os.fspath(p) for p in written]
