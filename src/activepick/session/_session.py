"""The :class:`Session` class (see :mod:`activepick.session`)."""

from __future__ import annotations

import contextlib
import os
import shutil
import warnings
import weakref
from collections.abc import Sequence
from pathlib import Path

from ..errors import SessionError
from ..io.atomic import atomic_write_text
from ..io.labels import (
    JOURNAL_HEADER,
)
from ..io.picks import now_utc
from ._files import (
    HISTORY_FILE,
    JOURNAL_FILE,
    LABELS_BACKUP,
    LABELS_FILE,
    QUEUE_FILE,
    QUEUE_STATE_FILE,
    ROUNDS_DIR,
    SESSION_BACKUP,
    SESSION_FILE,
    SESSION_FORMAT,
    SESSION_VERSION,
    STALE_TEMP_AGE_S,
    SessionWarning,
    _attach,
    _core,
    _detach,
    _dumps,
    _FolderState,
    _link_backup,
    _parse_session_json,
    _remove_stale_temp_files,
    _sha256,
    _writing,
)
from ._journal import LabelJournalMixin
from ._rounds import QueueRoundsMixin

# --------------------------------------------------------------------------- Session


class Session(QueueRoundsMixin, LabelJournalMixin):
    """A session folder on disk, locked by this process while open; every ``save_*`` is atomic.

    Attributes:
        folder: the session folder (absolute).
        settings: JSON-able dict (diameter, arch, strategy, batch_size, epochs, seed,
            threshold, ``detector`` config, ``complete`` micrographs, ...).
        micrograph_paths: absolute micrograph paths in pool order.
        created: ISO 8601 UTC time the session was created.
        open_warnings: what was dropped or recovered while opening and loading
            (damaged queue / history / predictions / model, labels from a backup,
            a broken stale lock), one line each, for the GUI / CLI to show.
    """

    def __init__(
        self,
        folder: Path,
        settings: dict,
        micrograph_paths: list[Path],
        created: str,
        *,
        _state: _FolderState | None = None,
    ) -> None:
        self.folder = folder
        self.settings = settings
        self.micrograph_paths = micrograph_paths
        self.created = created
        self.open_warnings: list[str] = []
        self._state = _state if _state is not None else _FolderState(None)
        self._closed = False
        self._lock = self._state.mutex
        self._release = weakref.finalize(self, _detach, folder, self._state)

    def __repr__(self) -> str:
        return f"Session({str(self.folder)!r}, micrographs={len(self.micrograph_paths)}, rounds={self.rounds()})"

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _note(self, message: str) -> None:
        """Record something dropped or recovered: ``open_warnings`` + a :class:`SessionWarning`."""
        if message in self.open_warnings:
            return
        self.open_warnings.append(message)
        warnings.warn(message, SessionWarning, stacklevel=3)

    def close(self) -> None:
        """Compact the journal into ``labels.csv`` (when it holds anything) and release the lock.

        Idempotent. The lock is held per process: it is released, and the journal
        compacted, when the last open Session of the folder in this process is
        closed (a Session garbage-collected unclosed releases without compacting;
        the journal is replayed on the next open). When the compaction fails
        (disk full) the :class:`SessionError` is raised and the session stays
        open, with decisions not yet written still in memory: free space, close again.
        """
        if self._closed:
            return
        with self._lock:
            last = self._state.users == 1  # others in this process still use the journal
            if last and (self._journal_size() > len(JOURNAL_HEADER) or self._state.pending):
                self.save_labels(self.load_labels())
            self._closed = True
            self._release()

    def _check_open(self) -> None:
        if self._closed:
            raise SessionError(f"session {self.folder} is closed; open it again to save")

    # ----------------------------------------------------------------- create / open
    @staticmethod
    def exists(folder: str | os.PathLike) -> bool:
        """Whether ``folder`` holds a ``session.json`` (it may still be unreadable)."""
        return (Path(folder) / SESSION_FILE).is_file()

    @classmethod
    def create(
        cls,
        folder: str | os.PathLike,
        micrographs: Sequence[str | os.PathLike],
        settings: dict,
        *,
        overwrite: bool = False,
        break_lock: bool = False,
    ) -> Session:
        """Create a session in ``folder`` (made if needed) for ``micrographs`` (pool order), locked.

        Raises :class:`SessionError` when ``folder`` already holds a session and
        ``overwrite`` is false, when another process has it open, when a
        micrograph file does not exist (all missing ones are listed) or when two
        micrographs share a name (file name without extension: picks refer to
        micrographs by that name). With ``overwrite`` the previous session's files
        (labels, journal, queue, history, rounds) are removed; nothing else in the
        folder is touched.
        """
        folder = Path(folder).expanduser().resolve()
        if cls.exists(folder) and not overwrite:
            raise SessionError(
                f"{folder / SESSION_FILE}: a session already exists here (open it, or create with overwrite)"
            )
        # absolute, but symlinks kept: a link's own name is the micrograph's name (a
        # folder of links to a few real files is a valid pool)
        paths = [Path(os.path.abspath(Path(p).expanduser())) for p in micrographs]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise SessionError(
                f"{folder}: {len(missing)} micrograph file(s) not found: " + ", ".join(missing)
            )
        seen: dict[str, Path] = {}
        for p in paths:
            name = p.stem
            if name in seen:
                raise SessionError(
                    f"{folder}: micrographs {seen[name]} and {p} share the name {name!r}"
                )
            seen[name] = p
        with _writing(folder, "the session folder"):
            folder.mkdir(parents=True, exist_ok=True)
        state, notes = _attach(folder, break_lock)
        session = cls(folder, dict(settings), paths, now_utc(), _state=state)
        session.open_warnings.extend(notes)
        try:
            if overwrite:
                with state.position_file, state.position_slot:
                    state.position = None  # a pending position of the session replaced
                names = (LABELS_FILE, LABELS_BACKUP, JOURNAL_FILE, QUEUE_FILE, QUEUE_STATE_FILE)
                for name in (*names, HISTORY_FILE, SESSION_BACKUP):
                    with contextlib.suppress(FileNotFoundError):
                        (folder / name).unlink()
                shutil.rmtree(folder / ROUNDS_DIR, ignore_errors=True)
                with state.mutex:
                    state.record = state.current = state.queue = None
                    state.pending = ""
                    if state.journal_fd is not None:
                        os.close(state.journal_fd)
                        state.journal_fd = None
            session._write_session_json()
        except BaseException:
            session._release()
            raise
        return session

    @classmethod
    def open(
        cls, folder: str | os.PathLike, *, check_files: bool = True, break_lock: bool = False
    ) -> Session:
        """Open the session in ``folder`` and lock it for this process.

        Each micrograph is found at its absolute path if that exists, else at its
        path relative to the session folder (a folder copied together with its
        micrographs). Raises :class:`SessionError` naming the file when another
        process has the session open (``break_lock=True`` breaks a stale lock;
        a lock of a dead process on this host is broken automatically), when
        ``session.json`` and its backup are missing, unreadable, not a session or
        of a newer version, and, with ``check_files`` (default), listing the
        micrographs found at neither place (use :meth:`relocate`, or
        ``check_files=False`` to open anyway, e.g. to export labels). A damaged
        ``session.json`` is replaced by ``session.json.bak``; a damaged queue or
        history is dropped: both are said in :attr:`open_warnings`.
        """
        folder = Path(folder).expanduser().resolve()
        path, bak = folder / SESSION_FILE, folder / SESSION_BACKUP
        if not path.is_file() and not bak.is_file():
            if folder.is_file():
                raise SessionError(f"{folder}: is a file, not a session folder")
            if path.is_dir():
                raise SessionError(f"{path}: is a folder, not a file")
            raise SessionError(f"{path}: no session here (session.json not found)")
        state, notes = _attach(folder, break_lock)
        try:
            return cls._open_locked(folder, state, notes, check_files)
        except BaseException:
            _detach(folder, state)
            raise

    @classmethod
    def _open_locked(
        cls, folder: Path, state: _FolderState, notes: list[str], check_files: bool
    ) -> Session:
        path, bak = folder / SESSION_FILE, folder / SESSION_BACKUP
        try:
            info = _parse_session_json(path)
        except SessionError as exc:
            if "newer activepick" in str(exc) or not bak.is_file():
                raise
            try:
                info = _parse_session_json(bak)
            except SessionError:
                raise exc from None
            notes.append(f"{exc}; opened its backup {bak.name} (one save older)")
            state.verify = False
        settings, entries = info["settings"], info["micrographs"]
        paths, missing = [], []
        for e in entries:
            absolute = Path(e["path"])
            rel = e.get("relative")
            candidate = Path(os.path.normpath(folder / rel)) if isinstance(rel, str) else None
            if absolute.is_file():
                paths.append(absolute)
            elif candidate is not None and candidate.is_file():
                paths.append(candidate)
            else:
                paths.append(absolute)
                missing.append(str(absolute))
        if missing and check_files:
            raise SessionError(
                f"{path}: {len(missing)} micrograph file(s) not found (at the absolute path "
                f"or relative to the session folder): {', '.join(missing)}. "
                "Use Session.relocate(new_folder), or open with check_files=False."
            )
        _remove_stale_temp_files(folder, 0.0 if state.users == 1 else STALE_TEMP_AGE_S)
        session = cls(folder, settings, paths, str(info.get("created", "")), _state=state)
        with state.mutex:
            if state.users == 1:  # first opener in this process: read the label record
                state.record = info.get("labels")
                state.current = session._matching_record()
        for note in notes:
            session._note(note)
        session._check_queue_and_history()
        return session

    def _matching_record(self) -> dict | None:
        """The entry of the label record (current or previous) that labels.csv on disk matches."""
        record = self._state.record
        try:
            digest = _sha256((self.folder / LABELS_FILE).read_bytes())
        except OSError:
            return None
        for entry in (record, (record or {}).get("previous")):
            if isinstance(entry, dict) and entry.get("sha256") == digest:
                return _core(entry)
        return None

    def _check_queue_and_history(self) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SessionWarning)
            self.load_queue()
        self.history()

    def _session_json(self) -> dict:
        entries = []
        for p in self.micrograph_paths:
            try:
                rel = Path(os.path.relpath(p, self.folder)).as_posix()
            except ValueError:  # another drive on Windows
                rel = None
            entries.append({"name": p.stem, "path": str(p), "relative": rel})
        info = {
            "format": SESSION_FORMAT,
            "version": SESSION_VERSION,
            "created": self.created,
            "modified": now_utc(),
            "settings": self.settings,
            "micrographs": entries,
        }
        if self._state.record is not None:
            info["labels"] = self._state.record
        return info

    def _write_session_json(self) -> None:
        """Rewrite ``session.json`` atomically; the previous one becomes ``session.json.bak``."""
        path = self.folder / SESSION_FILE
        text = _dumps(self._session_json(), str(path))
        with self._lock, _writing(path, "the session settings"):
            _link_backup(path, self.folder / SESSION_BACKUP)
            atomic_write_text(path, text)

    def save_settings(self, settings: dict) -> None:
        """Replace the settings and rewrite ``session.json`` atomically."""
        self._check_open()
        path = self.folder / SESSION_FILE
        _dumps({"settings": settings}, f"{path} settings")  # fail before changing state
        self.settings = dict(settings)  # kept when the write fails: the next save writes it
        self._write_session_json()

    def relocate(self, new_root: str | os.PathLike) -> None:
        """Point the micrographs at files of the same name under ``new_root``.

        For sessions copied to another machine or micrographs moved: each
        micrograph is looked up by file name directly in ``new_root``, else
        anywhere below it (it must then be unique). Raises :class:`SessionError`
        listing the ones not found (or found twice) and changes nothing in that
        case; on success ``session.json`` is rewritten.
        """
        self._check_open()
        root = Path(new_root).expanduser().resolve()
        if not root.is_dir():
            raise SessionError(f"{root}: not a folder")
        index: dict[str, list[Path]] | None = None
        found, problems = [], []
        for p in self.micrograph_paths:
            direct = root / p.name
            if direct.is_file():
                found.append(direct)
                continue
            if index is None:
                index = {}
                for dirpath, _dirs, files in os.walk(root):
                    for f in files:
                        index.setdefault(f, []).append(Path(dirpath) / f)
            hits = index.get(p.name, [])
            if len(hits) == 1:
                found.append(hits[0])
            elif not hits:
                problems.append(f"{p.name} (not found)")
            else:
                problems.append(f"{p.name} (found {len(hits)} times)")
        if problems:
            raise SessionError(
                f"{root}: cannot relocate {len(problems)} micrograph(s) of session "
                f"{self.folder}: {', '.join(problems)}"
            )
        self.micrograph_paths = found
        self._write_session_json()
