"""Label editing of the :class:`~activepick.active.engine.ActiveLearner`: decisions,
added and removed particles, undo, counts, and their journal in the session.

:class:`LabelEditing` is a mixin: the learner inherits these methods, so its public
API (``decide``, ``add_particle``, ``remove_label``, ``undo``, ``add_labels``,
``counts``, ``labels``) is unchanged while the code lives here, beside the
:class:`~activepick.active.label_store.LabelStore` it works on.

Every change costs O(rows changed) plus, with a session attached, one append to the
session's label journal (``Session.append_labels`` / ``append_removals``) and an
O(1) queue-position update (``Session.save_position``). The full table is written
only by :meth:`LabelEditing.compact` (round boundaries, close).

Coordinates are centres in pixels of the ORIGINAL micrograph (x = column, y = row,
origin top-left).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..constants import (
    LABEL_COLUMNS,
    PICK_COLUMNS,
    POSITIVE_STATUSES,
    STATUS_ACCEPTED,
    STATUS_ADDED,
    STATUS_IMPORTED,
    STATUS_MOVED,
    STATUS_PREDICTED,
    STATUS_REJECTED,
)
from ..errors import ActivePickError, CoordinateError
from ..io.picks import check_bounds, now_utc, validate_picks
from .label_store import LabelStore, Row, UndoEntry, UndoStack, restore

if TYPE_CHECKING:  # pragma: no cover
    from ..session import Session
    from .oracle import Oracle

#: Decision action -> label status.
ACTION_STATUS = {"accept": STATUS_ACCEPTED, "move": STATUS_MOVED, "reject": STATUS_REJECTED}
#: Keys of :meth:`LabelEditing.counts`.
COUNT_KEYS = (STATUS_ACCEPTED, STATUS_MOVED, STATUS_ADDED, STATUS_REJECTED, STATUS_IMPORTED)


class ReviewError(ActivePickError):
    """A decision, removal or training request does not fit the learner's state."""


def _journal_labels(session: Session, rows: list[Row], removed: list[int]) -> None:
    """Append a change to the session's label journal (O(len(rows)), no table rewrite)."""
    if rows:
        session.append_label_rows(rows)
    if removed:
        session.append_removals(removed)


class LabelEditing:
    """Mixin of :class:`ActiveLearner`: the label store, decisions, undo and the journal.

    Expects the learner to set ``micrographs``, ``config``, ``strategy``, ``round``,
    ``queue``, ``predictions``, ``position``, ``session`` and ``_by_name`` and to call
    :meth:`_init_labels` in its constructor.
    """

    session: Session | None
    queue: pd.DataFrame
    predictions: pd.DataFrame | None
    position: int
    round: int

    def _init_labels(self) -> None:
        self._store = LabelStore()
        self._undo = UndoStack()
        self._reviewed: set[int] = set()  # pick ids reviewed without a label ("skip")
        self._next_id = 0
        self._lookup_key: tuple[int, int] | None = None
        self._lookup: dict[int, tuple[str, float, float, float, float]] = {}
        self._lookup_max = -1

    # ------------------------------------------------------------------ the table
    @property
    def labels(self) -> pd.DataFrame:
        """The label table (``constants.LABEL_COLUMNS``), every decision ever made,
        rejections included; built on demand from the store (cached until a change).
        Treat it as read-only: change labels through the methods."""
        return self._store.frame

    @labels.setter
    def labels(self, df: pd.DataFrame) -> None:
        self._store.set_frame(df)

    @property
    def label_store(self) -> LabelStore:
        """The labels by pick id (O(1) look-ups, counts, nearest label on a micrograph)."""
        return self._store

    def counts(self, round: int | None = None) -> dict[str, int]:  # noqa: A002 - contract name
        """Label counts by status: accepted, moved, added, rejected, imported, and
        ``positive`` (all particle labels). ``round`` restricts to decisions made in
        that round (after training round ``round``); None counts everything. O(1)."""
        return self._store.counts(round)

    def positive_labels(self) -> pd.DataFrame:
        """The particle labels as a pick table (statuses in ``POSITIVE_STATUSES``)."""
        labels = self.labels
        pos = labels[labels["status"].isin(POSITIVE_STATUSES)]
        return pos[list(PICK_COLUMNS)].reset_index(drop=True)

    def negative_labels(self) -> pd.DataFrame:
        """The reviewed negatives (status ``rejected``) as a pick table."""
        labels = self.labels
        neg = labels[labels["status"] == STATUS_REJECTED]
        return neg[list(PICK_COLUMNS)].reset_index(drop=True)

    def is_decided(self, pick_id: int) -> bool:
        """True when ``pick_id`` has a label row or was reviewed without one."""
        return int(pick_id) in self._store or int(pick_id) in self._reviewed

    def mark_reviewed(self, pick_ids: Iterable[int]) -> None:
        """Remember predictions as reviewed without a label: they are not queued again
        this round (forgotten at the next prediction)."""
        self._reviewed.update(int(i) for i in pick_ids)

    # ------------------------------------------------------------------ changes
    def add_labels(self, picks: pd.DataFrame, source: str = "import") -> None:
        """Add initial / imported labels (a pick table) with new pick ids.

        Statuses are kept except ``predicted``, which becomes ``imported``; every
        pick must lie inside a pool micrograph (:class:`CoordinateError`
        otherwise). ``source`` is ``"import"`` or ``"initial"`` (benchmarks).
        Undoable as one step.
        """
        picks = validate_picks(picks, f"{source} labels")
        picks = check_bounds(picks, self.shapes, source=f"{source} labels")
        if len(picks) == 0:
            return
        status = picks["status"].where(picks["status"] != STATUS_PREDICTED, STATUS_IMPORTED)
        new = picks.assign(
            status=status,
            round=self.round,
            pick_id=self._new_ids(len(picks)),
            strategy="",
            source=source,
            pred_x=np.nan,
            pred_y=np.nan,
        )[list(LABEL_COLUMNS)]
        cols = [new[c].tolist() for c in LABEL_COLUMNS]
        self._change(list(zip(*cols, strict=True)))

    def add_particle(self, micrograph: str, x: float, y: float) -> int:
        """Add a particle the detector missed at centre (x, y); returns its new pick id.

        Status ``added``, source ``human``, diameter ``config.diameter``. Raises
        :class:`CoordinateError` if the micrograph is not in the pool or the
        centre lies outside it. Undoable.
        """
        x, y = self._checked_centre(micrograph, x, y, "added particle")
        pick_id = int(self._new_ids(1)[0])
        row = (
            str(micrograph),
            x,
            y,
            float(self.config.diameter),
            math.nan,
            STATUS_ADDED,
            int(self.round),
            now_utc(),
            pick_id,
            "",
            "human",
            math.nan,
            math.nan,
        )
        self._change([row])
        return pick_id

    def remove_label(self, pick_id: int) -> None:
        """Remove the label (or rejection) ``pick_id``; undoable. :class:`ReviewError` if unknown."""
        pick_id = int(pick_id)
        if pick_id not in self._store:
            raise ReviewError(f"no label with pick id {pick_id}")
        self._change([], removed=[pick_id])

    def decide(
        self,
        pick_id: int,
        action: str,
        x: float | None = None,
        y: float | None = None,
        *,
        source: str = "human",
    ) -> None:
        """Record a decision on a predicted pick (normally the queued one under review).

        ``action``: ``"accept"`` (label at the predicted centre), ``"move"``
        (label at the new centre ``x``, ``y``; the predicted centre is kept in
        ``pred_x`` / ``pred_y``) or ``"reject"`` (a reviewed negative at the
        predicted centre). A second decision on the same pick replaces the first.
        When the pick is the one under review, :attr:`position` advances to the
        next undecided pick of the queue. Undoable.
        """
        self._apply_decisions(
            [(int(pick_id), action, x, y)],
            source=source,
        )

    def undo(self) -> bool:
        """Undo the last decide / add_particle / remove_label / add_labels; False if none left."""
        entry = self._undo.pop()
        if entry is None:
            return False
        back, gone = restore(self._store, entry)
        moved = self.position != entry.position
        self.position = entry.position
        self._reviewed = set(entry.reviewed)
        self._persist(back, gone, position_changed=moved)
        return True

    # ------------------------------------------------------------------ simulated review
    def review_with(self, oracle: Oracle, *, max_positives: int | None = None) -> pd.DataFrame:
        """Let ``oracle`` decide the undecided picks of the queue (from :attr:`position`).

        Accept / move / reject decisions become labels with source ``oracle``;
        ``skip`` decisions are remembered as reviewed (not queued again). With
        ``max_positives``, decisions are applied in queue order only up to and
        including the one that brings the new particle labels to that number;
        later picks stay undecided (the benchmark's "K new labels" rule). The
        queue position moves past the applied decisions. Returns the applied
        decisions (the oracle's table, truncated).
        """
        batch = self.queue.iloc[self.position :]
        done = set(self.labels["pick_id"].tolist()) | self._reviewed
        batch = batch[~batch["pick_id"].isin(done)]
        decisions = oracle.review(batch, labels=self.labels).reset_index(drop=True)
        if max_positives is not None:
            positive = decisions["action"].isin(("accept", "move", "add")).to_numpy()
            reached = np.flatnonzero(np.cumsum(positive) >= max_positives)
            if len(reached):
                decisions = decisions.iloc[: reached[0] + 1]
        skip = (decisions["action"] == "skip").to_numpy()
        add = (decisions["action"] == "add").to_numpy()
        self._reviewed |= set(decisions.loc[skip, "pick_id"].astype(int).tolist())
        if (~skip & ~add).any():
            self._apply_decisions(decisions[~skip & ~add], source="oracle")
        else:
            self._advance()
        if add.any():
            self._add_missed(decisions[add])
        self._save_labels()
        self._save_queue()
        return decisions

    def _add_missed(self, adds: pd.DataFrame) -> None:
        """Oracle ``add`` rows (``micrograph``, ``x``, ``y``) -> labels of status ``added``,
        source ``oracle``, no confidence (one undo step)."""
        ids = self._new_ids(len(adds))
        rows = []
        for pick_id, name, x, y in zip(
            ids.tolist(), adds["micrograph"].astype(str), adds["x"], adds["y"], strict=True
        ):
            x, y = self._checked_centre(name, float(x), float(y), "added particle")
            rows.append(
                (
                    name,
                    x,
                    y,
                    float(self.config.diameter),
                    np.nan,
                    STATUS_ADDED,
                    int(self.round),
                    now_utc(),
                    int(pick_id),
                    "",
                    "oracle",
                    np.nan,
                    np.nan,
                )
            )
        self._change(rows)

    # ------------------------------------------------------------------ session
    def compact(self) -> None:
        """Write the whole label table to the session (``Session.save_labels``: atomic,
        with a backup), emptying its journal. Round boundaries and close call it."""
        if self.session is not None:
            self.session.save_labels(self.labels)

    def _save_labels(self) -> None:
        self.compact()

    def _save_queue(self) -> None:
        if self.session is not None:
            self.session.save_queue(self.queue, self.position)

    def _save_position(self) -> None:
        if self.session is None:
            return
        self.session.save_position(self.position)

    def _persist(self, rows: list[Row], removed: list[int], *, position_changed: bool) -> None:
        if self.session is None:
            return
        _journal_labels(self.session, rows, removed)
        if position_changed:
            self._save_position()

    # ------------------------------------------------------------------ internals
    def _new_ids(self, n: int) -> np.ndarray:
        """``n`` fresh pick ids, above every id in the labels, predictions and queue."""
        self._predicted()  # refreshes the ids' maximum when the queue / predictions changed
        self._next_id = max(self._next_id, self._store.max_id() + 1, self._lookup_max + 1)
        ids = np.arange(self._next_id, self._next_id + n, dtype=np.int64)
        self._next_id += n
        return ids

    def _checked_centre(self, micrograph: str, x: float, y: float, what: str):
        mic = self._by_name.get(micrograph)
        if mic is None:
            raise CoordinateError(f"{what}: micrograph {micrograph!r} is not in the pool")
        h, w = mic.shape
        x, y = float(x), float(y)
        if not (math.isfinite(x) and math.isfinite(y)):
            raise CoordinateError(f"{what}: centre ({x}, {y}) on {micrograph!r} is not a number")
        if not (0 <= x < w and 0 <= y < h):
            raise CoordinateError(
                f"{what}: centre ({x:.1f}, {y:.1f}) lies outside micrograph {micrograph!r} "
                f"({w} x {h} px)"
            )
        return x, y

    def _change(
        self, rows: list[Row], removed: Sequence[int] = (), *, advance: bool = False
    ) -> None:
        """One undoable change: upsert ``rows``, delete ``removed``, journal both."""
        ids = [int(r[LABEL_COLUMNS.index("pick_id")]) for r in rows] + [int(i) for i in removed]
        old_position = self.position
        old = self._store.remove(ids)
        self._undo.push(UndoEntry(ids, old, old_position, frozenset(self._reviewed)))
        self._store.upsert(rows)
        if advance:
            self._advance()
        self._persist(rows, list(removed), position_changed=self.position != old_position)

    def _predicted(self) -> dict[int, tuple[str, float, float, float, float]]:
        """``pick_id -> (micrograph, x, y, diameter, confidence)`` of the queue and the
        predictions (the queue wins); rebuilt only when either table is replaced."""
        key = (id(self.queue), id(self.predictions))
        if key != self._lookup_key:
            lookup: dict[int, tuple[str, float, float, float, float]] = {}
            for df in (self.predictions, self.queue):
                if df is None or len(df) == 0:
                    continue
                cols = [df[c].tolist() for c in ("micrograph", "x", "y", "diameter", "confidence")]
                for pid, *vals in zip(df["pick_id"].tolist(), *cols, strict=True):
                    lookup[int(pid)] = (str(vals[0]), *map(float, vals[1:]))
            self._lookup, self._lookup_key = lookup, key
            self._lookup_max = max(lookup, default=-1)
        return self._lookup

    def _apply_decisions(
        self,
        decisions: pd.DataFrame | Iterable[tuple],
        *,
        source: str,
        strategy: str | None = None,
    ) -> None:
        """Turn accept / move / reject decisions on predicted picks into label rows
        (one undo step). ``decisions``: a table with ``pick_id``, ``action``, ``x``,
        ``y`` or ``(pick_id, action, x, y)`` tuples. ``strategy`` (provenance; default
        the learner's) is what queued the picks, e.g. a bulk confirmation."""
        if self.predictions is None and len(self.queue) == 0:
            raise ReviewError("no predictions to decide on: run a round first")
        if isinstance(decisions, pd.DataFrame):
            xs = decisions["x"] if "x" in decisions else pd.Series(np.nan, decisions.index)
            ys = decisions["y"] if "y" in decisions else pd.Series(np.nan, decisions.index)
            decisions = list(zip(decisions["pick_id"], decisions["action"], xs, ys, strict=True))
        pool = self._predicted()
        unknown = sorted({int(d[0]) for d in decisions if int(d[0]) not in pool})
        if unknown:
            raise ReviewError(f"no predicted pick with id(s) {unknown[:5]}")
        bad = sorted({str(d[1]) for d in decisions} - set(ACTION_STATUS))
        if bad:
            raise ReviewError(f"unknown action(s) {bad}; use accept, move or reject")
        time_now = now_utc()
        rows = []
        for pick_id, action, dx, dy in decisions:
            mic, px, py, diameter, confidence = pool[int(pick_id)]
            if action == "move":
                if dx is None or dy is None or not (np.isfinite(dx) and np.isfinite(dy)):
                    raise ReviewError("a 'move' decision needs the new x and y")
                x, y = self._checked_centre(mic, dx, dy, "decision")
            else:
                x, y = px, py
            rows.append(
                (
                    mic,
                    x,
                    y,
                    diameter,
                    confidence,
                    ACTION_STATUS[action],
                    int(self.round),
                    time_now,
                    int(pick_id),
                    self.strategy if strategy is None else strategy,
                    source,
                    px,
                    py,
                )
            )
        self._change(rows, advance=True)

    def _advance(self) -> None:
        """Move :attr:`position` past decided / reviewed picks of the queue."""
        ids = self.queue["pick_id"]
        n = len(ids)
        while self.position < n and self.is_decided(int(ids.iat[self.position])):
            self.position += 1


def as_labels(df: pd.DataFrame) -> pd.DataFrame:
    """Normalise a frame with label columns to the label table (order and dtypes)."""
    return LabelStore(df).frame


__all__ = ["ACTION_STATUS", "COUNT_KEYS", "LabelEditing", "ReviewError", "as_labels"]
