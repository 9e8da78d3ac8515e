"""Translation between pick tables / micrographs and napari layer data.

napari shows a micrograph stack as an Image layer of shape ``(N, H, W)`` (a
single micrograph as ``(H, W)``) and picks as a Points layer whose coordinates
are ``(row, col) = (y, x)`` in pixels of the ORIGINAL micrograph, with the stack
index as a leading coordinate when there are several micrographs:
``(index, y, x)``. Micrographs of different shapes are stacked top-left aligned
(padded at the bottom / right), so pixel coordinates never change.

Layer metadata of a micrograph stack (``MICROGRAPHS_KEY`` etc.):
``{"micrographs": [names], "paths": [str | None], "pixel_size": float | None,
"shapes": {name: (h, w)}}``. Points layers carry the pick columns as features
(``micrograph``, ``confidence``, ``status``, ...) and the same ``micrographs``
list in their metadata.

Only conversions live here: no file formats (``io``), no training (``active``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from ..constants import (
    DEFAULT_DIAMETER,
    PICK_COLUMNS,
    POSITIVE_STATUSES,
    STATUS_ACCEPTED,
    STATUS_ADDED,
    STATUS_IMPORTED,
    STATUS_MOVED,
    STATUS_PREDICTED,
    STATUS_REJECTED,
)
from ..display import CONTRAST_PERCENTILES, CONTRAST_SAMPLE, percentile_limits
from ..io.picks import empty_picks, validate_picks

#: Names of the review layers (plugin/review.py).
PREDICTIONS = "predictions"
LABELS = "labels"
QUEUE = "review queue"
CURRENT = "current pick"

#: Layer metadata keys.
MICROGRAPHS_KEY = "micrographs"
#: Metadata key of the :class:`activepick.io.lazy.LazyStack` behind a lazy layer.
LAZY_STACK_KEY = "lazy_stack"
PATHS_KEY = "paths"
PIXEL_SIZE_KEY = "pixel_size"
SHAPES_KEY = "shapes"

#: Border colour of a pick by status (hollow circles).
STATUS_COLORS: dict[str, str] = {
    STATUS_PREDICTED: "yellow",
    STATUS_ACCEPTED: "lime",
    STATUS_MOVED: "cyan",
    STATUS_REJECTED: "red",
    STATUS_ADDED: "magenta",
    STATUS_IMPORTED: "dodgerblue",
}
#: The review queue's own colour for undecided picks (predictions are yellow).
QUEUE_COLORS: dict[str, str] = {**STATUS_COLORS, STATUS_PREDICTED: "darkorange"}
#: Colour of ground-truth particles (distinct from every status and the current pick).
GROUND_TRUTH_COLOR = "#b48cff"
#: Border width of picks, as a fraction of the point size.
BORDER_WIDTH = 0.08


def contrast_limits(images: Sequence[np.ndarray] | np.ndarray) -> tuple[float, float]:
    """Display range from the ``CONTRAST_PERCENTILES`` (:mod:`activepick.display`) of a
    strided pixel sample of up to 8 of ``images``."""
    arrays = [images] if isinstance(images, np.ndarray) and images.ndim == 2 else list(images)
    arrays = arrays[:: max(1, len(arrays) // 8)][:8]
    per = max(1, CONTRAST_SAMPLE // max(1, len(arrays)))
    sample = []
    for a in arrays:
        flat = np.asarray(a, dtype=np.float32).ravel()
        sample.append(flat[:: max(1, flat.size // per)])
    values = np.concatenate(sample) if sample else np.zeros(1, np.float32)
    return percentile_limits(values, CONTRAST_PERCENTILES, sample=None)


def micrographs_from_layer(layer) -> list:
    """``io.micrograph.Micrograph`` objects for the slices of an Image layer.

    A layer opened lazily (:data:`LAZY_STACK_KEY` in its metadata) gives
    :class:`~activepick.io.lazy.LazyMicrograph` objects that read no pixels yet.

    Names, paths, pixel size and the true (unpadded) shapes come from the layer's
    metadata when the plugin made it; otherwise the layer name (``name_0003`` for
    a stack) and the full slices are used.
    """
    from pathlib import Path

    from ..io.micrograph import Micrograph

    stack = (layer.metadata or {}).get(LAZY_STACK_KEY)
    if stack is not None:  # a lazy layer: micrographs decoded when a round needs them
        from ..io.lazy import lazy_micrographs

        return lazy_micrographs(stack)
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data  # full size
    meta = layer.metadata or {}
    stacked = data.ndim == 3
    n = int(data.shape[0]) if stacked else 1
    names = list(meta.get(MICROGRAPHS_KEY) or [])
    if len(names) != n:
        names = [f"{layer.name}_{i:04d}" for i in range(n)] if stacked else [layer.name]
    paths = list(meta.get(PATHS_KEY) or [None] * n)
    shapes = meta.get(SHAPES_KEY) or {}
    pixel_size = meta.get(PIXEL_SIZE_KEY)
    out = []
    for i, name in enumerate(names):
        image = np.asarray(data[i] if stacked else data, dtype=np.float32)
        if name in shapes:
            h, w = shapes[name]
            image = image[:h, :w]
        path = paths[i] if i < len(paths) else None
        out.append(
            Micrograph(
                name=str(name),
                data=np.ascontiguousarray(image),
                pixel_size=pixel_size,
                path=None if path is None else Path(path),
            )
        )
    return out


def picks_to_points(
    picks: pd.DataFrame, names: Sequence[str] | None = None, *, stacked: bool | None = None
) -> tuple[np.ndarray, pd.DataFrame]:
    """Points-layer coordinates and features for a pick table.

    ``names`` is the micrograph order of the image stack (default: the table's
    micrographs in order of first appearance). ``stacked`` (default: more than
    one name) adds the stack index as the leading coordinate: ``(index, y, x)``,
    else ``(y, x)``. Picks on micrographs not in ``names`` are left out. The
    features are the table's rows (index reset) that were kept.
    """
    if names is None:
        names = list(dict.fromkeys(picks["micrograph"].astype(str)))
    names = [str(n) for n in names]
    if stacked is None:
        stacked = len(names) > 1
    index = {n: i for i, n in enumerate(names)}
    mic_index = picks["micrograph"].astype(str).map(index)
    keep = mic_index.notna().to_numpy()
    rows = picks[keep].reset_index(drop=True)
    yx = rows[["y", "x"]].to_numpy(dtype=np.float64).reshape(-1, 2)
    if stacked:
        idx = mic_index[keep].to_numpy(dtype=np.float64).reshape(-1, 1)
        coords = np.hstack([idx, yx])
    else:
        coords = yx
    return coords, rows


def points_to_picks(
    data: np.ndarray,
    features: pd.DataFrame | None = None,
    names: Sequence[str] | None = None,
    *,
    diameter: float | np.ndarray | None = None,
) -> pd.DataFrame:
    """A pick table from Points-layer coordinates and features.

    Coordinates are ``(y, x)`` or ``(..., index, y, x)`` (original pixels). The
    micrograph of each point is its ``micrograph`` feature when set, else
    ``names[index]`` (the layer's ``micrographs`` metadata), else ``names[0]``.
    The diameter is the ``diameter`` feature, else ``diameter`` (e.g. the layer's
    point size). Other pick columns come from the features when present.
    """
    data = np.asarray(data, dtype=np.float64)
    n = len(data)
    if n == 0:
        return empty_picks()
    features = pd.DataFrame(index=range(n)) if features is None else features.reset_index(drop=True)
    names = [str(x) for x in (names or [])]
    if data.shape[1] >= 3:
        idx = np.rint(data[:, -3]).astype(int)
    else:
        idx = np.zeros(n, dtype=int)
    fallback = np.array(
        [names[i] if 0 <= i < len(names) else (names[0] if names else "micrograph") for i in idx],
        dtype=object,
    )
    if "micrograph" in features.columns:
        mic = features["micrograph"].astype(object).to_numpy()
        empty = pd.isna(mic) | (pd.Series(mic).astype(str).str.len() == 0).to_numpy()
        mic = np.where(empty, fallback, mic)
    else:
        mic = fallback
    table = pd.DataFrame({"micrograph": mic, "x": data[:, -1], "y": data[:, -2]})
    if "diameter" in features.columns and features["diameter"].notna().all():
        table["diameter"] = features["diameter"].to_numpy(dtype=np.float64)
    else:
        table["diameter"] = diameter if diameter is not None else np.nan
    for col in PICK_COLUMNS:
        if col not in table.columns and col in features.columns:
            table[col] = features[col].to_numpy()
    if "status" in table.columns:
        table["status"] = table["status"].fillna(STATUS_IMPORTED).replace("", STATUS_IMPORTED)
    return validate_picks(table, "points layer")


def review_frame(pick_id, micrograph, confidence, status, diameter) -> pd.DataFrame:
    """The review layers' point features from their columns (any sequences of equal
    length): ``pick_id``, ``micrograph``, ``confidence``, ``status`` (strings, or a
    categorical over ``STATUS_COLORS`` as it is) and ``diameter``, in those dtypes.
    The one place that defines these features."""
    if not (isinstance(status, pd.Categorical) and list(status.categories) == list(STATUS_COLORS)):
        status = pd.Categorical([str(v) for v in status], categories=list(STATUS_COLORS))
    return pd.DataFrame(
        {
            "pick_id": np.asarray(pick_id, np.int64),
            "micrograph": np.asarray([str(m) for m in micrograph], dtype=object),
            "confidence": np.asarray(confidence, np.float64),
            "status": status,
            "diameter": np.asarray(diameter, np.float64),
        }
    )


def review_features(rows: pd.DataFrame) -> pd.DataFrame:
    """The features of the review layers' points for pick-table rows
    (:func:`review_frame`; ``pick_id`` -1 when absent)."""
    ids = rows["pick_id"] if "pick_id" in rows else np.full(len(rows), -1, np.int64)
    return review_frame(
        ids, rows["micrograph"], rows["confidence"], rows["status"], rows["diameter"]
    )


class PointsByMicrograph:
    """A pick table's review-layer points as column arrays grouped by micrograph.

    Built once per table (a round's predictions); one micrograph's points then cost
    numpy indexing of its rows, without pandas row work (the predictions layer is
    refilled on every slider move and on a key press that moves to another
    micrograph). :meth:`points` gives what :func:`picks_to_points` (unstacked) and
    :func:`review_features` give for those rows."""

    def __init__(self, picks: pd.DataFrame | None) -> None:
        picks = empty_review_table() if picks is None else picks
        n = len(picks)
        self._yx = picks[["y", "x"]].to_numpy(np.float64).reshape(n, 2)
        ids = picks["pick_id"] if "pick_id" in picks else pd.Series(np.full(n, -1))
        self._pick_id = ids.to_numpy(np.int64)
        self._micrograph = picks["micrograph"].astype(str).to_numpy(dtype=object)
        self._confidence = picks["confidence"].to_numpy(np.float64)
        self._status = pd.Categorical(
            picks["status"].astype(str), categories=list(STATUS_COLORS)
        ).codes
        self._diameter = picks["diameter"].to_numpy(np.float64)
        groups = pd.Series(self._micrograph).groupby(self._micrograph, sort=False).indices
        self._rows = {str(k): np.asarray(v) for k, v in groups.items()}

    def points(
        self, name: str | None, min_confidence: float | None = None
    ) -> tuple[np.ndarray, pd.DataFrame]:
        """``(y, x)`` coordinates and review features of micrograph ``name``'s picks (in
        table order), those with confidence >= ``min_confidence`` (NaN counts as 0)."""
        rows = self._rows.get(str(name), np.zeros(0, np.intp))
        if min_confidence is not None:
            rows = rows[np.nan_to_num(self._confidence[rows], nan=0.0) >= min_confidence]
        features = review_frame(
            self._pick_id[rows],
            self._micrograph[rows],
            self._confidence[rows],
            pd.Categorical.from_codes(self._status[rows], categories=list(STATUS_COLORS)),
            self._diameter[rows],
        )
        return self._yx[rows], features


def empty_review_table() -> pd.DataFrame:
    """An empty pick table with a ``pick_id`` column."""
    out = empty_picks()
    out["pick_id"] = pd.Series(dtype=np.int64)
    return out


def points_style(
    diameter: float, *, text: bool = True, colors: dict[str, str] | None = None
) -> dict:
    """Keyword arguments of ``viewer.add_points`` for picks: hollow circles of the
    particle diameter, border coloured by ``status`` (``colors``, default
    ``STATUS_COLORS``), confidence as text."""
    style = {
        "size": float(diameter),
        "face_color": "transparent",
        "border_color": "status",
        "border_color_cycle": colors or STATUS_COLORS,
        "border_width": BORDER_WIDTH,
        "border_width_is_relative": True,
        "symbol": "disc",
    }
    if text:
        style["text"] = {
            "string": "{confidence:.2f}",
            "color": "white",
            "size": 9,
            "anchor": "upper_left",
        }
    return style


def coordinate_layer_data(
    picks: pd.DataFrame, names: Sequence[str] | None = None, *, name: str = "picks", **meta
) -> tuple:
    """A LayerData tuple ``(coords, kwargs, "points")`` for a pick table (see
    :func:`picks_to_points`); metadata holds the micrograph order."""
    if names is None:
        names = list(dict.fromkeys(picks["micrograph"].astype(str)))
    coords, rows = picks_to_points(picks, names)
    diameter = float(rows["diameter"].median()) if len(rows) else DEFAULT_DIAMETER
    kwargs = points_style(diameter, text=bool(rows["confidence"].notna().any()))
    if len(rows) and rows["diameter"].nunique() > 1:
        kwargs["size"] = rows["diameter"].to_numpy(dtype=np.float64)
    features = rows[[c for c in PICK_COLUMNS if c not in ("x", "y")]]
    kwargs.update(
        name=name,
        features=features,
        metadata={MICROGRAPHS_KEY: [str(n) for n in names], **meta},
        ndim=coords.shape[1] if len(coords) else (3 if len(names) > 1 else 2),
    )
    if len(coords) == 0:
        coords = np.zeros((0, kwargs["ndim"]))
    return (coords, kwargs, "points")


def ground_truth_layer_data(truth: pd.DataFrame, names: Sequence[str] | None = None) -> tuple:
    """A hidden ``ground truth`` Points layer (its own colour, no text) for a pick table."""
    data, kwargs, kind = coordinate_layer_data(truth, names, name="ground truth", ground_truth=True)
    kwargs.pop("border_color_cycle", None)
    kwargs.pop("text", None)
    kwargs.update(border_color=GROUND_TRUTH_COLOR, opacity=0.7, visible=False)
    return data, kwargs, kind


class LabelIndex:
    """The particle labels' pick ids by micrograph (the labels layer draws one
    micrograph's), kept up to date from the label store's changes: O(changes)."""

    def __init__(self) -> None:
        self._ids: dict[str, set[int]] = {}
        self._mic: dict[int, str] = {}

    def reset(self, labels: pd.DataFrame) -> None:
        """Index a whole label table."""
        pos = labels[labels["status"].isin(POSITIVE_STATUSES)]
        ids = pos["pick_id"].to_numpy(np.int64).tolist()
        self._mic = dict(zip(ids, pos["micrograph"].astype(str).tolist(), strict=True))
        self._ids = {}
        for pick_id, mic in self._mic.items():
            self._ids.setdefault(mic, set()).add(pick_id)

    def ids_of(self, name: str | None) -> list[int]:
        """The particle labels' pick ids on micrograph ``name``, sorted."""
        return sorted(self._ids.get(name, ())) if name is not None else []

    def apply(
        self, changed: Iterable[int], store, name: str | None
    ) -> list[tuple[int, dict | None]]:
        """Index the labels ``changed`` (pick ids; rows from ``store.get``). Returns those
        that change what micrograph ``name`` shows: ``(pick_id, label row)`` for a particle
        label on it, ``(pick_id, None)`` for one that left it (removed, rejected, moved)."""
        edits: list[tuple[int, dict | None]] = []
        for pick_id in changed:
            old = self._mic.pop(pick_id, None)
            if old is not None:
                self._ids[old].discard(pick_id)
            row = store.get(pick_id)
            if row is not None and row["status"] in POSITIVE_STATUSES:
                mic = str(row["micrograph"])
                self._ids.setdefault(mic, set()).add(pick_id)
                self._mic[pick_id] = mic
                if mic == name:
                    edits.append((pick_id, row))
                    continue
            if old == name:
                edits.append((pick_id, None))
        return edits
