"""Complete regions in training (issue 20): grid cells inside a region the user marked
complete are fully supervised, so every unlabelled cell there is background.

A region is a circle: centre and radius in pixels of the original micrograph (the
label table's rows of status ``complete``: ``diameter`` = 2 x radius). For training
it becomes ``(u, v, r)`` in edge coordinates of the network input (see
:mod:`activepick.detector.data`), follows the sample's crop, flips / quarter turns and
zoom like any point, and supervises the cells that lie wholly inside it (cell centre within
``r - stride / sqrt(2)``): a particle whose centre lies just outside the region is
never taught as background through a cell the region only grazes.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .config import GRID_STRIDE
from .data import to_input_points, transform_points
from .targets import cell_centres

#: An empty ``(K, 3)`` array of regions ``(u, v, r)``.
NO_REGIONS = np.zeros((0, 3), dtype=np.float64)


def sample_regions(regions: pd.DataFrame | None, name: str, scale) -> np.ndarray:
    """``(K, 3)`` regions ``(u, v, r)`` of micrograph ``name`` in input edge coordinates:
    ``regions`` is a table with ``micrograph``, ``x``, ``y``, ``diameter`` (px of the
    original micrograph); ``scale`` the input's ``(sx, sy)`` (radii use their mean)."""
    if regions is None or len(regions) == 0:
        return NO_REGIONS
    rows = regions[regions["micrograph"].astype(str) == str(name)]
    if len(rows) == 0:
        return NO_REGIONS
    uv = to_input_points(rows[["x", "y"]].to_numpy(float), scale)
    r = rows["diameter"].to_numpy(float) / 2 * 0.5 * (float(scale[0]) + float(scale[1]))
    return np.column_stack([uv, r])


def transform_regions(
    regions: np.ndarray, shape: tuple[int, int], view, zoom: float = 1.0
) -> np.ndarray:
    """Regions under a sample's augmentation: centres as points
    (:func:`~activepick.detector.data.transform_points`), centres and radii times ``zoom``."""
    if len(regions) == 0:
        return regions
    uv = transform_points(regions[:, :2], shape, view) * zoom
    return np.column_stack([uv, regions[:, 2] * zoom])


def shift_regions(regions: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Regions of a crop whose origin lies at ``shift`` (u, v) of the sample: centres
    minus ``shift``, radii unchanged (a region reaching outside the crop still marks
    the crop's cells inside it)."""
    if len(regions) == 0:
        return regions
    return np.column_stack([regions[:, :2] - np.asarray(shift, dtype=np.float64), regions[:, 2]])


def region_cells(
    regions: np.ndarray, grid: tuple[int, int], stride: int = GRID_STRIDE
) -> np.ndarray:
    """Boolean ``(Gh, Gw)``: cells lying wholly inside one of ``regions`` ``(K, 3)``
    (``u, v, r`` input px): cell centre within ``r - stride / sqrt(2)`` of its centre."""
    mask = np.zeros(grid, dtype=bool)
    if len(regions) == 0:
        return mask
    centres = cell_centres(grid, stride).reshape(-1, 2)
    reach = regions[:, 2] - stride / math.sqrt(2.0)
    for (u, v), r in zip(regions[:, :2], reach, strict=True):
        if r > 0:
            mask.reshape(-1)[np.hypot(centres[:, 0] - u, centres[:, 1] - v) <= r] = True
    return mask


__all__ = ["NO_REGIONS", "region_cells", "sample_regions", "shift_regions", "transform_regions"]
