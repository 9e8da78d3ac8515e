"""Session files: names, locking state, JSON and backup helpers (see :mod:`activepick.session`)."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import CoordinateError, SessionError
from ..io.atomic import atomic_path
from ..io.labels import (
    check_int_column,
)
from ..io.lock import FolderLock, acquire_folder_lock
from ..io.picks import empty_picks, now_utc, validate_picks
from ._sync import Syncer

#: Version of the session folder layout written by this code.
SESSION_VERSION = 1
#: ``format`` value of ``session.json``.
SESSION_FORMAT = "activepick-session"

SESSION_FILE = "session.json"
SESSION_BACKUP = "session.json.bak"
LOCK_FILE = "session.lock"
LABELS_FILE = "labels.csv"
LABELS_BACKUP = "labels.csv.bak"
JOURNAL_FILE = "labels.journal.csv"
QUEUE_FILE = "queue.csv"
QUEUE_STATE_FILE = "queue.json"
HISTORY_FILE = "history.json"
ROUNDS_DIR = "rounds"
MODEL_FILE = "model.pt"
PREDICTIONS_FILE = "predictions.csv"
METRICS_FILE = "metrics.json"

#: Temporary files of interrupted writes are removed on open: all of them by the first
#: opener in a process (the folder lock says no other process writes), only those older
#: than this (seconds) by a second one (its sibling's background thread may be writing).
STALE_TEMP_AGE_S = 3600.0

_ROUND_RE = re.compile(r"^round_(\d+)$")
_DISK_FULL = {errno.ENOSPC, errno.EDQUOT}


class SessionWarning(UserWarning):
    """Something in a session was recovered or ignored (e.g. labels read from the backup)."""


@contextlib.contextmanager
def _writing(path: Path, what: str) -> Iterator[None]:
    """Turn an ``OSError`` while writing ``path`` into one :class:`SessionError` line."""
    try:
        yield
    except OSError as exc:
        if exc.errno in _DISK_FULL:
            raise SessionError(
                f"{path}: disk full (no space left on device) while saving {what}; nothing "
                "in memory was lost: free some space and save again"
            ) from None
        reason = exc.strerror or str(exc)
        raise SessionError(f"{path}: cannot write {what} ({reason})") from None


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _FolderState:
    """What the Session objects of one folder share within one process."""

    def __init__(self, lock: FolderLock | None) -> None:
        self.lock = lock
        self.pid = os.getpid()
        self.users = 0
        self.mutex = threading.RLock()  # saves from the GUI thread and a worker thread
        self.record: dict | None = None  # labels entry of session.json (what was written)
        self.current: dict | None = None  # {"rows", "sha256"} of the labels.csv on disk
        self.verify = True  # False when session.json came from its backup
        self.queue: tuple[str, int] | None = None  # (sha256, length) of queue.csv
        self.journal_fd: int | None = None
        self.pending = ""  # journal lines not written yet (a failed append)
        self.syncer: Syncer | None = None  # background fsync of the key path's writes
        self.position: tuple[int, str, int] | None = None  # queue position not written yet
        self.position_slot = threading.Lock()  # guards ``position``
        self.position_file = threading.Lock()  # one writer of queue.json at a time


_STATES: dict[Path, _FolderState] = {}
_STATES_MUTEX = threading.Lock()


def _attach(folder: Path, break_lock: bool) -> tuple[_FolderState, list[str]]:
    """The shared state of ``folder``, locking it when this process does not hold it yet."""
    with _STATES_MUTEX:
        state = _STATES.get(folder)
        if state is not None and state.pid == os.getpid() and state.users > 0:
            state.users += 1
            return state, []
        lock = acquire_folder_lock(folder, LOCK_FILE, break_lock=break_lock, stamp=now_utc())
        state = _FolderState(lock)
        state.users = 1
        _STATES[folder] = state
        return state, list(lock.notes)


def _detach(folder: Path, state: _FolderState) -> None:
    """Drop one user of ``state``; the last one closes the journal and releases the lock."""
    with _STATES_MUTEX:
        if state.pid != os.getpid() or state.users <= 0:
            return
        state.users -= 1
        if state.users:
            return
        if state.syncer is not None:  # the last key presses reach the disk before unlocking
            state.syncer.stop()
            state.syncer.sync()
            state.syncer = None
        if state.journal_fd is not None:
            with contextlib.suppress(OSError):
                os.close(state.journal_fd)
            state.journal_fd = None
        if state.lock is not None:
            state.lock.release()
        if _STATES.get(folder) is state:
            del _STATES[folder]


# --------------------------------------------------------------------------- tables


def _validate_pick_extras(df: pd.DataFrame, source: str) -> pd.DataFrame:
    """A pick table with extra columns (queue, predictions): pick columns checked, extras kept."""
    try:
        out = validate_picks(df, source)
    except CoordinateError as exc:
        raise SessionError(str(exc)) from None
    for c in df.columns:
        if c not in out.columns:
            out[c] = df[c].to_numpy()
    if "pick_id" in out.columns and len(out):
        out["pick_id"] = check_int_column(out, "pick_id", source)
    elif "pick_id" in out.columns:
        out["pick_id"] = out["pick_id"].astype(np.int64)
    return out


def _empty_queue() -> pd.DataFrame:
    q = empty_picks()
    q["pick_id"] = pd.Series(dtype=np.int64)
    return q


# --------------------------------------------------------------------------- JSON


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (Path, os.PathLike)):
        return os.fspath(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def _dumps(obj: Any, what: str) -> str:
    try:
        return json.dumps(obj, indent=2, default=_json_default) + "\n"
    except (TypeError, ValueError) as exc:
        raise SessionError(f"{what}: cannot be stored as JSON ({exc})") from None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SessionError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SessionError(f"{path}: not a readable JSON file ({exc})") from None


def _remove_stale_temp_files(folder: Path, max_age_s: float = STALE_TEMP_AGE_S) -> list[Path]:
    """Remove temporary files left by writes interrupted by a crash (older than ``max_age_s``)."""
    removed = []
    now = time.time()
    for sub in (folder, *sorted((folder / ROUNDS_DIR).glob("round_*"))):
        if not sub.is_dir():
            continue
        for p in sub.glob(".*.tmp*"):
            with contextlib.suppress(OSError):
                if p.is_file() and now - p.stat().st_mtime > max_age_s:
                    p.unlink()
                    removed.append(p)
    return removed


def _link_backup(path: Path, bak: Path) -> None:
    """Make ``bak`` the current ``path`` (hard link, else atomic copy); both stay complete files."""
    link = bak.with_name(f".{bak.name}.link.tmp")
    with contextlib.suppress(FileNotFoundError):
        link.unlink()
    try:
        os.link(path, link)
    except FileNotFoundError:
        return
    except OSError:
        with atomic_path(bak) as tmp:
            shutil.copyfile(path, tmp)
        return
    os.replace(link, bak)


def _parse_session_json(path: Path) -> dict:
    info = _read_json(path)
    if not isinstance(info, dict) or info.get("format") != SESSION_FORMAT:
        raise SessionError(f"{path}: not an activepick session file")
    try:
        version = int(info.get("version"))
    except (TypeError, ValueError):
        raise SessionError(f"{path}: missing or invalid 'version'") from None
    if version > SESSION_VERSION:
        raise SessionError(
            f"{path}: written by a newer activepick (session version {version}, "
            f"this one reads up to {SESSION_VERSION}); update activepick"
        )
    if not isinstance(info.get("settings"), dict):
        raise SessionError(f"{path}: 'settings' is missing or not an object")
    entries = info.get("micrographs")
    if not isinstance(entries, list) or not all(
        isinstance(e, dict) and isinstance(e.get("path"), str) for e in entries
    ):
        raise SessionError(f"{path}: 'micrographs' is missing or malformed")
    record = info.get("labels")
    if record is not None and not (
        isinstance(record, dict)
        and isinstance(record.get("rows"), int)
        and isinstance(record.get("sha256"), str)
    ):
        raise SessionError(f"{path}: 'labels' is not a row count + checksum record")
    return info


def _core(record: dict | None) -> dict | None:
    return None if record is None else {"rows": record["rows"], "sha256": record["sha256"]}
