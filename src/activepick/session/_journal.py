"""The label journal of a :class:`~activepick.session.Session` (a mixin; see
:mod:`activepick.session`): ``labels.csv`` (compacted, checked against its record in
``session.json``, with a backup), ``labels.journal.csv`` (one line per decision since),
the background fsync, and loading both back."""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Sequence

import pandas as pd

from ..constants import LABEL_COLUMNS, LABEL_SOURCES, STATUSES
from ..errors import SessionError
from ..io.atomic import atomic_path, atomic_write_text
from ..io.labels import (
    JOURNAL_HEADER,
    empty_labels,
    fast_journal_lines,
    journal_removals,
    label_rows_to_journal,
    labels_to_csv,
    parse_table,
    read_text,
    replay_journal,
    validate_labels,
)
from ._files import (
    JOURNAL_FILE,
    LABELS_BACKUP,
    LABELS_FILE,
    _link_backup,
    _sha256,
    _writing,
)
from ._rounds import flush_position
from ._sync import Syncer


class LabelJournalMixin:
    """Compaction (:meth:`save_labels`), journal appends, the background fsync and
    :meth:`load_labels`. The session provides ``folder``, ``_state``, ``_lock``,
    ``_check_open``, ``_note`` and ``_write_session_json``."""

    def save_labels(self, labels: pd.DataFrame) -> None:
        """Compaction: write the full label table to ``labels.csv`` and empty the journal.

        ``session.json`` first records the new file's row count and SHA-256 (and
        those of the file it replaces), then ``labels.csv`` is replaced atomically
        (the previous one becomes ``labels.csv.bak``), then the journal is emptied;
        a kill between any two steps leaves a state that loads exactly. Call it at
        round boundaries and on close; per decision use :meth:`append_labels`.
        Raises :class:`SessionError` when a label column is missing or holds an
        unknown status / source (before writing), or when the disk is full.
        """
        self._check_open()
        path = self.folder / LABELS_FILE
        missing = [c for c in LABEL_COLUMNS if c not in labels.columns]
        if missing:
            raise SessionError(f"label table for {path}: missing column(s) {', '.join(missing)}")
        for col, allowed in (("status", STATUSES), ("source", LABEL_SOURCES)):
            unknown = set(labels[col].astype(str).unique()) - set(allowed)
            if unknown:
                raise SessionError(
                    f"label table for {path}: unknown {col} value(s) {sorted(unknown)}; nothing written"
                )
        data = labels_to_csv(labels).encode("utf-8")
        entry = {"rows": len(labels), "sha256": _sha256(data)}
        state = self._state
        with self._lock:
            # Record first when labels.csv is verified: a kill before the replace leaves
            # the old file, which the record names as "previous". Otherwise (first save,
            # an old-format or damaged file) replace first: there is nothing to protect.
            record_first = state.current is not None
            if record_first:
                state.record = {**entry, "previous": state.current}
                self._write_session_json()
            with _writing(path, "the labels"), atomic_path(path) as tmp:
                tmp.write_bytes(data)
                if path.exists():
                    _link_backup(path, self.folder / LABELS_BACKUP)
            state.current = entry
            if not record_first:
                state.record = {**entry, "previous": None}
                self._write_session_json()
            state.verify = True
            self._reset_journal()
            if state.syncer is not None:  # labels.csv holds every decision, fsynced
                state.syncer.take_error()

    def _journal_size(self) -> int:
        try:
            return (self.folder / JOURNAL_FILE).stat().st_size
        except FileNotFoundError:
            return 0

    def _reset_journal(self) -> None:
        """Empty the journal (header only) after a compaction; drop unwritten lines."""
        state = self._state
        state.pending = ""
        if state.journal_fd is not None:
            os.close(state.journal_fd)
            state.journal_fd = None
        if self._journal_size() > len(JOURNAL_HEADER):
            path = self.folder / JOURNAL_FILE
            with _writing(path, "the label journal"):
                atomic_write_text(path, JOURNAL_HEADER)

    def _journal_fd(self) -> int:
        """The journal opened for appending.

        A torn last line (a cut write) is cut off first. A journal whose header is
        not this version's (damaged, or unreadable to this code) is moved aside to
        ``labels.journal.csv.damaged`` rather than appended to, with a note.
        """
        state = self._state
        if state.journal_fd is None:
            path = self.folder / JOURNAL_FILE
            header = JOURNAL_HEADER.encode("utf-8")
            if self._journal_size():
                with open(path, "rb") as fh:
                    head = fh.read(len(header))
                if head != header:
                    aside = path.with_name(path.name + ".damaged")
                    os.replace(path, aside)
                    self._note(
                        f"{path}: not a label journal of this version; moved to {aside.name}"
                    )
            if self._journal_size() == 0:
                atomic_write_text(path, JOURNAL_HEADER)
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC)
            size = os.fstat(fd).st_size
            tail = os.pread(fd, min(size, 1 << 16), max(0, size - (1 << 16)))
            if tail and not tail.endswith(b"\n"):
                os.ftruncate(fd, max(size - len(tail) + tail.rfind(b"\n") + 1, len(header)))
            state.journal_fd = fd
        return state.journal_fd

    def _append_journal(self, text: str) -> None:
        path = self.folder / JOURNAL_FILE
        state = self._state
        with self._lock:
            self._check_open()
            data = (state.pending + text).encode("utf-8")
            state.pending += text  # kept until written: a failed append loses nothing
            with _writing(path, "the decision"):
                fd = self._journal_fd()
                start = os.fstat(fd).st_size
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view) :]
                except OSError:
                    with contextlib.suppress(OSError):
                        os.ftruncate(fd, start)  # no partial line before the next append
                    raise
            state.pending = ""
            syncer = self._syncer()
            syncer.request()  # fsync in the background (see docs/session.md, durability)
            self._raise_sync_error(syncer.take_error())

    def _syncer(self) -> Syncer:
        state = self._state
        if state.syncer is None:
            position = functools.partial(flush_position, self.folder, state)
            state.syncer = Syncer((self.folder / JOURNAL_FILE,), before=position)
        return state.syncer

    def _raise_sync_error(self, error: OSError | None) -> None:
        if error is not None:
            reason = error.strerror or str(error)
            path = error.filename or self.folder / JOURNAL_FILE
            raise SessionError(
                f"{path}: cannot flush the decisions to the disk ({reason}); "
                "they are kept in memory and written in full at the next round or on close"
            )

    def sync(self) -> None:
        """Write the pending queue position and flush the journal to the disk now (in this
        thread). A key press only appends to the journal (safe from a crash of the
        program) and leaves the rest to a background thread; call this where a power
        loss must not lose the last decisions. Raises :class:`SessionError` when this
        or an earlier background write failed."""
        with self._lock:
            self._raise_sync_error(self._syncer().sync())

    def append_labels(self, rows: pd.DataFrame) -> None:
        """Upsert label rows (keyed by ``pick_id``) by appending them to the journal.

        O(len(rows)): one line per row, written before it returns (a crash of the
        program loses nothing) and flushed to the disk by a background thread within
        milliseconds (:meth:`sync` waits for nothing and does it now); ``labels.csv`` is
        not touched. Only the label columns are journalled. Raises
        :class:`SessionError` on an invalid row (nothing written), a failed write (disk
        full: the rows stay in memory and are written with the next append or
        compaction) or when an earlier background fsync failed (the rows are written).
        """
        self._check_open()
        text = label_rows_to_journal(rows, f"label rows for {self.folder / JOURNAL_FILE}")
        if text:
            self._append_journal(text)

    def append_label_rows(self, rows: Sequence[tuple]) -> None:
        """:meth:`append_labels` for rows given as tuples in ``LABEL_COLUMNS`` order (the
        label store's form): the same journal lines, without building a table for the
        few rows of a key press (pure Python; a table and the full check otherwise)."""
        self._check_open()
        text = fast_journal_lines(rows)
        if text is None:
            table = pd.DataFrame([list(r) for r in rows], columns=list(LABEL_COLUMNS))
            text = label_rows_to_journal(table, f"label rows for {self.folder / JOURNAL_FILE}")
        if text:
            self._append_journal(text)

    def append_removals(self, pick_ids: Sequence[int]) -> None:
        """Journal the removal of the labels of ``pick_ids`` (unknown ids are ignored on load)."""
        self._check_open()
        ids = [int(p) for p in pick_ids]
        if ids:
            self._append_journal(journal_removals(ids))

    def _load_compacted(self) -> pd.DataFrame:
        """``labels.csv`` checked against the record in ``session.json``, else the backup."""
        path, bak = self.folder / LABELS_FILE, self.folder / LABELS_BACKUP
        state = self._state
        record = state.record if state.verify else None
        if not path.exists() and not bak.exists():
            if record is not None and record["rows"] > 0:
                raise SessionError(
                    f"{path}: missing, and no backup {bak.name}; session.json records "
                    f"{record['rows']} label(s)"
                )
            return empty_labels()
        try:
            text = read_text(path)
            if record is not None:
                digest = _sha256(text.encode("utf-8"))
                known = [record, record.get("previous") or {}]
                if digest not in [e.get("sha256") for e in known]:
                    rows = max(text.count("\n") - 1, 0)
                    raise SessionError(
                        f"{path}: does not match session.json ({record['rows']} rows recorded, "
                        f"{rows} found): cut short or edited"
                    )
            return validate_labels(parse_table(text, str(path)), str(path))
        except SessionError as exc:
            if not bak.exists():
                raise
            try:
                labels = validate_labels(parse_table(read_text(bak), str(bak)), str(bak))
            except SessionError as exc_bak:
                raise SessionError(f"{exc}; the backup is not usable either: {exc_bak}") from None
            self._note(
                f"{exc}; loaded the previous labels from {bak.name} instead "
                "(decisions since the compaction before are replayed from the journal if kept)"
            )
            return labels

    def load_labels(self) -> pd.DataFrame:
        """The label table: ``labels.csv`` with the journal replayed on top.

        ``labels.csv`` is checked against the row count and SHA-256 recorded in
        ``session.json``; when it is missing, cut short, unreadable or invalid and
        ``labels.csv.bak`` is valid, the backup is used with a
        :class:`SessionWarning`. A torn last journal line is dropped with a
        warning. Raises :class:`SessionError` naming the file when neither is
        usable. An empty table when nothing was saved yet.
        """
        with self._lock:
            labels = self._load_compacted()
            jpath = self.folder / JOURNAL_FILE
            text = read_text(jpath) if jpath.exists() else ""
            if self._state.pending:
                text = (text or JOURNAL_HEADER) + self._state.pending
            labels, notes = replay_journal(labels, text, str(jpath))
        for note in notes:
            self._note(note)
        return labels
