"""The on-disk session: everything a picking session needs to resume.

A session folder holds (see ``docs/session.md`` for the user's view)::

    session.json          format, version, created / modified (ISO 8601 UTC), settings,
                          micrographs (name, absolute path, path relative to the folder),
                          labels (row count + SHA-256 of labels.csv, and of the one before)
    session.json.bak      the previous session.json
    session.lock          the exclusive lock of the process that has the session open
    labels.csv            the label table (io.labels): every decision, as of the last compaction
    labels.csv.bak        the previous labels.csv (one compaction older)
    labels.journal.csv    decisions since the last compaction, one line each
    queue.csv             the review queue (pick table + pick_id, uncertainty, rank, ...)
    queue.json            position in the queue + the SHA-256 of the queue.csv it belongs to
    history.json          one metrics dict per round, in round order
    rounds/round_NNN/     model.pt + model.pt.json (checkpoint), predictions.csv, metrics.json

Conventions:

- Coordinates in every table are centres in pixels of the ORIGINAL micrograph,
  x = column, y = row, origin at the top-left array element (as the pick table).
- Every file except the lock and the journal (appended in place) is written
  through :mod:`activepick.io.atomic`: a reader, or a session resumed after a
  crash or a kill, sees either the previous or the new version of each file.
- The label table, its validation and the exact CSV codec live in
  :mod:`activepick.io.labels`.
- One process at a time: :meth:`Session.open` / :meth:`Session.create` lock the
  folder (:mod:`activepick.io.lock`); Session objects of one folder in one process
  share the lock, the thread lock and the label bookkeeping.
- A key press costs one journal append (:meth:`Session.append_labels`,
  :meth:`Session.append_removals`) that waits for nothing on the disk: a background
  thread (:mod:`._sync`) fsyncs the journal and writes the queue position
  (:meth:`Session.save_position` only records it), so a crash of the program loses
  no decision and a power loss the last moment's (``docs/session.md``,
  "Durability"). :meth:`Session.sync` does it now; :meth:`Session.save_labels`
  compacts (full atomic rewrite of labels.csv, journal emptied) at round boundaries
  and on close.
- Write failures (disk full, read-only folder) raise one :class:`SessionError`;
  nothing changes in memory, and journal lines that could not be written are kept
  and written with the next append or compaction.

The core never imports Qt or napari; the detector is imported lazily (only
:meth:`Session.save_round` and :meth:`Session.load_detector` need torch).
"""

from __future__ import annotations

from ._files import (
    JOURNAL_FILE,
    LABELS_BACKUP,
    LABELS_FILE,
    LOCK_FILE,
    SESSION_BACKUP,
    SESSION_FILE,
    SESSION_FORMAT,
    SESSION_VERSION,
    SessionWarning,
)
from ._session import Session

__all__ = [
    "JOURNAL_FILE",
    "LABELS_BACKUP",
    "LABELS_FILE",
    "LOCK_FILE",
    "SESSION_BACKUP",
    "SESSION_FILE",
    "SESSION_FORMAT",
    "SESSION_VERSION",
    "Session",
    "SessionWarning",
]
