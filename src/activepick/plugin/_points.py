"""In-place edits of the review Points layers: the key path of ``plugin/review.py``.

Each napari call on a Points layer costs milliseconds whatever its size, and most of
them redraw the layer: napari re-slices it, recomputes its thumbnail and re-uploads
every point to the canvas after each property it sets (data, size, symbol, border
width, colours). A key press therefore makes as few calls as it can:

- points change in place (centres, features, the live colour array) and the layer
  is redrawn once (:func:`redraw_points`);
- a change of the number of points (a label appended, a micrograph's points
  replaced) runs inside :func:`one_redraw`, which holds back napari's per-property
  redraw events (and the data event: on each one the viewer recomputes every dims
  range, and review points always lie inside the micrograph stack's extent) and
  redraws once at the end. Only public napari API is used: through the proxy
  napari hands plugins, private names print FutureWarnings to the user.

``tests/test_review_layers.py`` checks that what these edits leave on screen equals
a full redraw by napari, and fails if the napari behaviour they rely on changes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache

import numpy as np
import pandas as pd

from ..constants import LABEL_COLUMNS, STATUS_ADDED
from ._layers import STATUS_COLORS, review_frame


def feature_defaults_of(layer) -> dict:
    """A Points layer's feature defaults as ``{column: value}``."""
    fd = layer.feature_defaults
    return {c: fd[c].iloc[0] for c in fd.columns} if len(fd) else {}


def reset_drawn_defaults(layer) -> None:
    """napari copies a selected point's features into the defaults; a point the user
    draws has no pick id (-1) and is an added particle. Only set when they differ."""
    if "pick_id" not in layer.features:
        return
    defaults = feature_defaults_of(layer)
    if defaults.get("pick_id") != -1 or defaults.get("status") != STATUS_ADDED:
        layer.feature_defaults = {**defaults, "pick_id": -1, "status": STATUS_ADDED}


def label_points(rows: Sequence[Sequence], index: int | None) -> tuple[np.ndarray, pd.DataFrame]:
    """Coordinates and review features (``_layers.review_frame``) of label rows
    (tuples in ``LABEL_COLUMNS`` order, as ``LabelStore.rows`` gives) of one
    micrograph: ``(index, y, x)`` on a stack, ``(y, x)`` when ``index`` is None.
    O(len(rows)), column by column, without a pick-table round trip."""
    n = len(rows)
    cols = list(zip(*rows, strict=True)) if n else [()] * len(LABEL_COLUMNS)
    col = dict(zip(LABEL_COLUMNS, cols, strict=True))
    y = np.asarray(col["y"], np.float64)
    x = np.asarray(col["x"], np.float64)
    coords = (
        np.column_stack([y, x]) if index is None else np.column_stack([np.full(n, index), y, x])
    )
    features = review_frame(
        col["pick_id"], col["micrograph"], col["confidence"], col["status"], col["diameter"]
    )
    return coords.reshape(n, 2 if index is None else 3), features


def redraw_points(layer) -> None:
    """Show in-place changes of ``layer`` (napari's public ``refresh``, without the
    thumbnail and the extent: the points stay inside the micrograph stack)."""
    layer.refresh(thumbnail=False, extent=False, highlight=False)


@contextmanager
def one_redraw(layer) -> Iterator[None]:
    """Batch changes of ``layer`` into one redraw at the end.

    napari redraws a Points layer after every property it sets: it re-slices the
    layer, then emits the events the canvas redraws on (``set_data``, ``highlight``,
    ``thumbnail``, ``extent``, ``data``, ...). Inside this block every event of the
    layer is held back (napari's public ``layer.events.blocker_all()``), so the canvas
    uploads nothing until :func:`redraw_points` follows; napari's own slicing still runs
    per property (microseconds for the few hundred points of one micrograph). The data
    event is held back too: on each one the viewer recomputes every dims range, and
    review points always lie inside the micrograph stack's extent. Nothing in the
    block may emit an event of another emitter group the canvas redraws on
    (``text.refresh``): the canvas would read a stale slice. Colours are written in
    place."""
    with layer.events.blocker_all():
        yield
    redraw_points(layer)


def writable_data(layer) -> np.ndarray:
    """``layer.data``, made writable first (once) when napari holds a read-only array (as
    pandas hands out), so that points can be moved in place."""
    if not layer.data.flags.writeable:
        with one_redraw(layer):
            layer.data = np.array(layer.data, dtype=np.float64)
    return layer.data


def place_points(layer, coords: np.ndarray) -> None:
    """Put ``layer``'s points (no features: the current-pick square) at ``coords``:
    moved in place when their number stays (one redraw), else replaced; nothing when
    they are there already."""
    coords = np.asarray(coords, dtype=np.float64)
    if layer.data.shape == coords.shape:
        if len(coords) and not np.array_equal(layer.data, coords):
            writable_data(layer)[:] = coords
            redraw_points(layer)
        return
    with one_redraw(layer):
        layer.data = coords


@lru_cache(maxsize=8)
def _colour_table(colors: tuple[tuple[str, str], ...]) -> np.ndarray:
    from napari.utils.colormaps.standardize_color import transform_color

    return np.array([transform_color(c)[0] for _, c in colors], dtype=np.float32).reshape(-1, 4)


def status_rgba(status: Sequence[str], colors: dict[str, str]) -> np.ndarray:
    """RGBA (N, 4) of ``status`` values in the colour map ``colors`` (status -> colour)."""
    names = list(colors)
    codes = pd.Index(names).get_indexer(np.asarray(status, dtype=object))
    if (codes < 0).any():
        unknown = sorted({str(s) for s, c in zip(status, codes, strict=True) if c < 0})
        raise ValueError(f"no colour for status {unknown}; known: {names}")
    return _colour_table(tuple(colors.items()))[codes]


def set_points(
    layer,
    coords: np.ndarray,
    features: pd.DataFrame,
    colors: dict[str, str] = STATUS_COLORS,
    *,
    text: bool = False,
) -> None:
    """Replace every point of ``layer`` (a review layer: features as
    ``_layers.review_features``, direct border colours by ``status`` in ``colors``)
    with one redraw. Features and colours are written in place into the arrays the new
    data sized, which keeps the feature defaults of drawn points. ``text``: the layer
    shows text from its features (refreshed after the redraw)."""
    if layer.selected_data:
        layer.selected_data = set()
    with one_redraw(layer):
        layer.data = coords
        table = layer.features
        for column in features.columns:
            table[column] = features[column].array
        if len(coords):
            layer.border_color[:] = status_rgba(features["status"], colors)
            sizes = features["diameter"].to_numpy(np.float64)
            if not np.array_equal(np.ravel(layer.size), sizes):
                layer.size = sizes
    if text and len(coords):
        layer.text.refresh(layer.features)
    reset_drawn_defaults(layer)


def _write_row(table: pd.DataFrame, row: int, values: dict) -> None:
    """Write ``values`` into row ``row`` of ``table`` in place (``iat``: microseconds)."""
    for column, value in values.items():
        table.iat[row, table.columns.get_loc(column)] = value


def append_points(
    layer, coords: np.ndarray, features: pd.DataFrame, colors: dict[str, str] = STATUS_COLORS
) -> None:
    """Add points at the end of ``layer`` (features as ``_layers.review_features``,
    direct border colours by ``status`` in ``colors``) with one data change and one
    redraw; their features and colours are written in place after it."""
    start, n = len(layer.data), len(coords)
    rows = np.arange(start, start + n)
    with one_redraw(layer):
        layer.data = np.concatenate([np.asarray(layer.data), coords])
        table = layer.features
        for column in features.columns:
            values = features[column].to_numpy()
            for i, row in enumerate(rows.tolist()):
                _write_row(table, row, {column: values[i]})
        layer.border_color[rows] = status_rgba(features["status"], colors)
        sizes = features["diameter"].to_numpy(np.float64)
        if not np.array_equal(np.ravel(layer.size)[rows], sizes):
            size = np.array(np.broadcast_to(layer.size, len(layer.data)), dtype=np.float64)
            size[rows] = sizes
            layer.size = size


def edit_points(
    layer,
    rows: Sequence[int],
    *,
    yx: np.ndarray | None = None,
    status: Sequence[str] | None = None,
    colors: dict[str, str] = STATUS_COLORS,
    redraw: bool = True,
) -> None:
    """Move points ``rows`` of ``layer`` to ``yx`` (N, 2) and / or set their ``status``
    feature and the colour it maps to in ``colors``, in place, then one redraw (none
    with ``redraw=False``: for a 3-D layer when the slider moves next, as napari then
    re-slices and redraws it; the number of points is unchanged, so its slice stays
    valid meanwhile).

    The review layers use direct border colours (not a colour cycle over ``status``,
    which napari recomputes for every point from its own copy of the values whenever a
    point is added) and the colours are written into the array ``layer.border_color``
    returns: napari's public property hands out its live colour array, which is what
    the canvas draws and what napari keeps through adds and removes
    (``tests/test_review_layers.py`` fails if this stops holding)."""
    rows = np.asarray(rows, dtype=np.intp)
    if len(rows) == 0:
        return
    if status is not None:
        table = layer.features
        for row, value in zip(rows.tolist(), status, strict=True):
            _write_row(table, row, {"status": value})
        layer.border_color[rows] = status_rgba(status, colors)
    if yx is not None:
        writable_data(layer)[rows, -2:] = yx
    if redraw:
        redraw_points(layer)


def sync_points(
    layer,
    rows: Sequence[int],
    status: Sequence[str],
    yx: np.ndarray,
    colors: dict[str, str] = STATUS_COLORS,
    redraw: bool = True,
) -> None:
    """Bring points ``rows`` of ``layer`` to ``status`` and centres ``yx`` (N, 2): only
    those that differ are recoloured / moved, in place, in one redraw (:func:`edit_points`)."""
    rows = np.asarray(rows, dtype=np.intp)
    if len(rows) == 0:
        return
    status = np.asarray(status, dtype=object)
    yx = np.asarray(yx, dtype=np.float64).reshape(len(rows), 2)
    recolour = layer.features["status"].to_numpy(object)[rows] != status
    moved = np.any(np.asarray(layer.data)[rows, -2:] != yx, axis=1)
    if recolour.any() or moved.any():
        change = recolour | moved
        edit_points(
            layer, rows[change], yx=yx[change], status=status[change], colors=colors, redraw=redraw
        )
