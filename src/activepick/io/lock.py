"""An exclusive, per-process lock on a folder (``fcntl.flock`` on a lock file).

:func:`acquire_folder_lock` opens ``<folder>/<name>`` and takes an exclusive
``flock`` on it without waiting. The kernel releases the lock when the process
ends, however it ends (a crash or ``kill -9`` included), and a forked child closes its inherited
copy at once, so a lock is stale only when a process passed the descriptor on by
other means or on a network file system that lost its lock server. The file
records the holder (``pid``, ``host``, ``time``) so a refused opener can be told
who holds it; it is rewritten in place (not through :mod:`activepick.io.atomic`:
the lock belongs to the file's inode, which a rename would replace).

A lock whose recorded holder is a process that no longer exists on this host is
broken automatically (the caller is told); ``break_lock=True`` breaks any lock by
replacing the lock file (use it only when the holder is known to be gone, e.g. a
crashed machine on a shared file system). Where the file system does not support
``flock`` the recorded pid is the only guard.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import weakref
from dataclasses import dataclass
from pathlib import Path

from ..errors import SessionError

#: errno values of a file system without ``flock`` support.
_NO_LOCKING = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}


#: Locks held by this process; a forked child closes its copies (see _close_in_child).
_HELD: weakref.WeakSet[FolderLock] = weakref.WeakSet()


def _close_in_child() -> None:
    """After ``fork``: close the child's copies of the lock files.

    ``flock`` locks belong to the open file, which a forked child shares; a child
    that outlived its parent's session (a data-loader worker, a subprocess) would
    otherwise keep the session locked. Closing the copy leaves the parent's lock.
    """
    for lock in list(_HELD):
        if lock.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(lock.fd)
            lock.fd = -1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_in_child)


@dataclass(eq=False)
class FolderLock:
    """A held lock: the open lock file (closing it releases the lock) and what happened taking it."""

    path: Path
    fd: int
    notes: list[str]

    def release(self) -> None:
        """Release the lock (idempotent). The lock file stays: removing it could race an opener."""
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, 0)
            os.close(self.fd)
            self.fd = -1


def _holder(fd: int) -> dict:
    with contextlib.suppress(OSError, ValueError, UnicodeDecodeError):
        os.lseek(fd, 0, os.SEEK_SET)
        info = json.loads(os.read(fd, 4096).decode("utf-8") or "{}")
        if isinstance(info, dict):
            return info
    return {}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _is_dead_here(info: dict) -> bool:
    """Whether ``info`` names a process on this host that no longer exists."""
    pid = info.get("pid")
    return (
        isinstance(pid, int)
        and info.get("host") == socket.gethostname()
        and pid != os.getpid()
        and not _pid_alive(pid)
    )


def _record(fd: int, label: str) -> None:
    info = {"pid": os.getpid(), "host": socket.gethostname(), "time": label}
    data = (json.dumps(info) + "\n").encode("utf-8")
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)
    os.fsync(fd)


def _refusal(folder: Path, path: Path, info: dict) -> SessionError:
    if "pid" in info:
        who = f"process {info['pid']} on host {info.get('host', '?')}"
    else:  # held, but the holder has not recorded itself (yet)
        who = "another process"
    return SessionError(
        f"session {folder} is open in {who} (lock file {path.name}); close it there first. "
        f"If that process is gone (e.g. its machine crashed), open with break_lock=True "
        f"or delete {path}"
    )


def acquire_folder_lock(
    folder: Path, name: str, *, break_lock: bool = False, stamp: str = ""
) -> FolderLock:
    """Take the exclusive lock ``folder / name``; :class:`SessionError` when another process holds it.

    ``stamp`` (e.g. the current UTC time) is recorded with the pid and host.
    ``notes`` of the result say when a stale lock was broken.
    """
    path = folder / name
    notes: list[str] = []
    for attempt in range(3):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError as exc:
            raise SessionError(
                f"{path}: cannot create the session's lock file ({exc.strerror}); "
                "the session folder must be writable"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            info = _holder(fd)
            os.close(fd)
            if attempt < 2 and (break_lock or _is_dead_here(info)):
                why = "break_lock=True" if break_lock else "its process no longer exists"
                notes.append(
                    f"{path}: broke the lock of process {info.get('pid', '?')} on host "
                    f"{info.get('host', '?')} ({why})"
                )
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()  # the holder keeps a lock on an inode nobody opens again
                continue
            raise _refusal(folder, path, info) from None
        except OSError as exc:
            if exc.errno not in _NO_LOCKING:
                os.close(fd)
                raise SessionError(f"{path}: cannot lock the session ({exc.strerror})") from None
            info = _holder(fd)
            if info.get("pid") not in (None, os.getpid()) and not (
                break_lock or _is_dead_here(info)
            ):
                os.close(fd)
                raise _refusal(folder, path, info) from None
            notes.append(
                f"{path}: this file system cannot lock files; only the pid record guards it"
            )
        try:
            # a breaker may have replaced the file between our open and flock: retry on the new one
            if os.fstat(fd).st_ino != os.stat(path).st_ino:
                os.close(fd)
                continue
        except FileNotFoundError:
            os.close(fd)
            continue
        _record(fd, stamp)
        lock = FolderLock(path, fd, notes)
        _HELD.add(lock)
        return lock
    raise SessionError(f"{path}: cannot lock the session (the lock file keeps changing)")


__all__ = ["FolderLock", "acquire_folder_lock"]
