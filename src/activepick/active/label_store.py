"""The learner's label table in memory: rows keyed by pick id, a DataFrame built lazily,
and the undo stack.

A review action changes one or a few rows; rebuilding a 100,000-row DataFrame for
each would cost about a second. :class:`LabelStore` keeps one tuple per label in a
dict (``pick_id -> row`` in ``LABEL_COLUMNS`` order, insertion order = table order),
counts by ``(round, status)`` and the particle labels of each micrograph, so a
decision, a count or a nearest-label query costs O(1) to O(labels on one
micrograph). :attr:`LabelStore.frame` materialises the table (cached until the next
change) for training, export and the session's compaction.

Coordinates are centres in pixels of the ORIGINAL micrograph (x = column, y = row,
origin top-left), as everywhere in the pick table.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from ..constants import LABEL_COLUMNS, POSITIVE_STATUSES, STATUS_COMPLETE
from ..io.labels import empty_labels, validate_labels

#: Undo depth (decisions, additions, removals).
UNDO_DEPTH = 1000
#: Keys of :meth:`LabelStore.counts` besides ``positive``.
COUNT_STATUSES = ("accepted", "moved", "added", "rejected", "imported")

Row = tuple
_COL = {c: i for i, c in enumerate(LABEL_COLUMNS)}
_ID, _MIC, _X, _Y = _COL["pick_id"], _COL["micrograph"], _COL["x"], _COL["y"]
_STATUS, _ROUND = _COL["status"], _COL["round"]


def row_from_mapping(values: dict[str, Any]) -> Row:
    """One label row (a tuple in ``LABEL_COLUMNS`` order) from a dict of plain values."""
    return tuple(values[c] for c in LABEL_COLUMNS)


def rows_to_frame(rows: Iterable[Row]) -> pd.DataFrame:
    """A label table (``LABEL_COLUMNS``, the schema's dtypes) from row tuples."""
    rows = list(rows)
    if not rows:
        return empty_labels()
    cols = list(zip(*rows, strict=True))
    return validate_labels(pd.DataFrame({c: list(cols[i]) for i, c in enumerate(LABEL_COLUMNS)}))


class LabelStore:
    """Label rows by pick id with a lazily built DataFrame (see the module docs)."""

    def __init__(self, labels: pd.DataFrame | None = None) -> None:
        self._rows: dict[int, Row] = {}
        self._frame: pd.DataFrame | None = None
        self._counts: Counter = Counter()
        self._positives: dict[str, dict[int, tuple[float, float]]] = {}
        self._max_id = -1
        self._changed: set[int] | None = None  # ids changed since take_changes; None = all
        if labels is not None:
            self.set_frame(labels)

    # ------------------------------------------------------------------ whole table
    @property
    def frame(self) -> pd.DataFrame:
        """The label table (``LABEL_COLUMNS``) in insertion order; cached until a change."""
        if self._frame is None:
            self._frame = rows_to_frame(self._rows.values())
        return self._frame

    def set_frame(self, labels: pd.DataFrame, source: str = "label table") -> None:
        """Replace every row with those of ``labels`` (validated)."""
        df = validate_labels(labels, source)[list(LABEL_COLUMNS)]
        self._rows = {}
        self._counts = Counter()
        self._positives = {}
        cols = [df[c].tolist() for c in LABEL_COLUMNS]
        for row in zip(*cols, strict=True):
            self._insert(row)
        self._frame = df.reset_index(drop=True)
        self._changed = None

    # ------------------------------------------------------------------ queries
    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, pick_id: object) -> bool:
        try:
            return int(pick_id) in self._rows  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return False

    def ids(self) -> set[int]:
        """Every pick id with a label row."""
        return set(self._rows)

    def get(self, pick_id: int) -> dict[str, Any] | None:
        """The row of ``pick_id`` as a dict, or None."""
        row = self._rows.get(int(pick_id))
        return None if row is None else dict(zip(LABEL_COLUMNS, row, strict=True))

    def rows(self, pick_ids: Iterable[int]) -> list[Row]:
        """The rows (tuples in ``LABEL_COLUMNS`` order) of ``pick_ids`` that have one:
        the cheap form for many rows (no dict per row)."""
        rows = self._rows
        return [rows[i] for i in map(int, pick_ids) if i in rows]

    def status(self, pick_id: int) -> str | None:
        """The status of ``pick_id``'s label, or None when it has none."""
        row = self._rows.get(int(pick_id))
        return None if row is None else str(row[_STATUS])

    def max_id(self) -> int:
        """The largest pick id the store has held (-1 when none): new ids go above it."""
        return self._max_id

    def counts(self, round: int | None = None) -> dict[str, int]:  # noqa: A002 - engine name
        """Label counts by status plus ``positive``; ``round`` restricts to one round."""
        if round is None:
            by_status: Counter = Counter()
            for (_, status), n in self._counts.items():
                by_status[status] += n
        else:
            by_status = Counter({s: n for (r, s), n in self._counts.items() if r == int(round)})
        out = {k: int(by_status.get(k, 0)) for k in COUNT_STATUSES}
        out["positive"] = int(sum(by_status.get(s, 0) for s in POSITIVE_STATUSES))
        return out

    def nearest(self, micrograph: str, x: float, y: float) -> tuple[int | None, float]:
        """``(pick_id, distance px)`` of the particle label nearest (x, y) on
        ``micrograph`` (``(None, inf)`` when it has none). O(labels on that micrograph)."""
        points = self._positives.get(str(micrograph))
        if not points:
            return None, math.inf
        ids = np.fromiter(points.keys(), dtype=np.int64, count=len(points))
        xy = np.array(list(points.values()), dtype=np.float64)
        d = np.hypot(xy[:, 0] - float(x), xy[:, 1] - float(y))
        i = int(np.argmin(d))
        return int(ids[i]), float(d[i])

    def take_changes(self) -> set[int] | None:
        """Pick ids changed (upserted or removed) since the last call, for a view that
        redraws only those; None when the whole table was replaced since."""
        changed, self._changed = self._changed, set()
        return changed

    # ------------------------------------------------------------------ changes
    def upsert(self, rows: Sequence[Row]) -> list[Row | None]:
        """Put ``rows`` in place (a replaced row moves to the end, as a new decision);
        returns the rows they replaced (None where the pick id was new)."""
        old = []
        for row in rows:
            old.append(self._discard(int(row[_ID])))
            self._insert(row)
        self._frame = None
        if self._changed is not None:
            self._changed.update(int(r[_ID]) for r in rows)
        return old

    def remove(self, pick_ids: Iterable[int]) -> list[Row | None]:
        """Delete the rows of ``pick_ids``; returns them (None where there was none)."""
        ids = [int(i) for i in pick_ids]
        old = [self._discard(i) for i in ids]
        self._frame = None
        if self._changed is not None:
            self._changed.update(ids)
        return old

    def _insert(self, row: Row) -> None:
        pick_id = int(row[_ID])
        row = (*row[:_ID], pick_id, *row[_ID + 1 :])
        self._rows[pick_id] = row
        self._max_id = max(self._max_id, pick_id)
        self._counts[(int(row[_ROUND]), str(row[_STATUS]))] += 1
        if row[_STATUS] in POSITIVE_STATUSES:
            mic = self._positives.setdefault(str(row[_MIC]), {})
            mic[pick_id] = (float(row[_X]), float(row[_Y]))

    def _discard(self, pick_id: int) -> Row | None:
        row = self._rows.pop(pick_id, None)
        if row is None:
            return None
        key = (int(row[_ROUND]), str(row[_STATUS]))
        self._counts[key] -= 1
        if self._counts[key] <= 0:
            del self._counts[key]
        if row[_STATUS] in POSITIVE_STATUSES:
            self._positives.get(str(row[_MIC]), {}).pop(pick_id, None)
        return row


@dataclasses.dataclass
class UndoEntry:
    """What one undoable change replaced: the label rows of ``pick_ids`` before it
    (None where there was none), the queue position and the reviewed-without-label set."""

    pick_ids: list[int]
    old_rows: list[Row | None]
    position: int
    reviewed: frozenset[int]


class UndoStack:
    """The last :data:`UNDO_DEPTH` changes of a :class:`LabelStore`."""

    def __init__(self, depth: int = UNDO_DEPTH) -> None:
        self.depth = int(depth)
        self._entries: list[UndoEntry] = []

    def __len__(self) -> int:
        return len(self._entries)

    def push(self, entry: UndoEntry) -> None:
        self._entries.append(entry)
        if len(self._entries) > self.depth:
            del self._entries[: len(self._entries) - self.depth]

    def pop(self) -> UndoEntry | None:
        return self._entries.pop() if self._entries else None

    def clear(self) -> None:
        self._entries.clear()


def restore(store: LabelStore, entry: UndoEntry) -> tuple[list[Row], list[int]]:
    """Put ``entry``'s old rows back into ``store``; returns ``(rows put back, ids
    removed)`` so the caller can journal the change."""
    back = [r for r in entry.old_rows if r is not None]
    gone = [i for i, r in zip(entry.pick_ids, entry.old_rows, strict=True) if r is None]
    store.remove(entry.pick_ids)
    store.upsert(back)
    return back, gone


def _same_micrograph(picks: pd.DataFrame, labels: pd.DataFrame):
    """Yield ``(row indices of picks, label rows)`` per micrograph that has both; label
    rows are picks (complete-region rows are no pick and are left out)."""
    if len(picks) == 0 or len(labels) == 0:
        return
    labels = labels[labels["status"] != STATUS_COMPLETE]
    by_mic = {str(k): g for k, g in labels.groupby("micrograph")}
    for name, idx in picks.groupby("micrograph").indices.items():
        lab = by_mic.get(str(name))
        if lab is not None:
            yield idx, lab


def near_labels(picks: pd.DataFrame, labels: pd.DataFrame, radius: np.ndarray) -> np.ndarray:
    """Boolean mask: pick centre within ``radius`` (px, per pick) of any label on its micrograph."""
    near = np.zeros(len(picks), dtype=bool)
    for idx, lab in _same_micrograph(picks, labels):
        tree = cKDTree(lab[["x", "y"]].to_numpy(float))
        d, _ = tree.query(picks[["x", "y"]].to_numpy(float)[idx], k=1)
        near[idx] = d < radius[idx]
    return near


def overlaps_labels(picks: pd.DataFrame, labels: pd.DataFrame, min_iou: float) -> np.ndarray:
    """Boolean mask: pick overlaps a label on its micrograph with circle IoU > ``min_iou``."""
    from ..matching import pairwise_iou

    out = np.zeros(len(picks), dtype=bool)
    for idx, lab in _same_micrograph(picks, labels):
        p = picks.iloc[idx]
        iou = pairwise_iou(
            p[["x", "y"]].to_numpy(float),
            p["diameter"].to_numpy(float) / 2,
            lab[["x", "y"]].to_numpy(float),
            lab["diameter"].to_numpy(float) / 2,
        )
        out[idx] = np.asarray(iou.max(axis=1).todense()).ravel() > min_iou
    return out


__all__ = [
    "UNDO_DEPTH",
    "LabelStore",
    "UndoEntry",
    "UndoStack",
    "empty_labels",
    "near_labels",
    "overlaps_labels",
    "restore",
    "row_from_mapping",
    "rows_to_frame",
    "validate_labels",
]
