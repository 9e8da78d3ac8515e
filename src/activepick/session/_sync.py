"""Background fsync of the files a key press writes (see :mod:`activepick.session`).

A key press appends to the label journal and replaces ``queue.json`` without
waiting for the disk: the bytes are in the operating system's page cache, so a
crash of the program loses nothing, and :class:`Syncer` flushes them to the disk
(``fsync``) in a thread a few milliseconds later; the thread also writes the queue
position the key press left pending (``queue.json``). Requests that arrive while a
round runs are coalesced into the next one. A power loss can therefore lose the
decisions of the last moments (those whose fsync had not finished); compaction,
round boundaries and close write durably (``Session.sync``, atomic writes).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path


def fsync_paths(paths: Sequence[Path]) -> OSError | None:
    """fsync each existing file of ``paths`` (opened read-only: Linux and macOS flush a
    file's data whatever the descriptor's mode). Returns the first error, else None."""
    error = None
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            continue
        except OSError as exc:
            error = error or exc
            continue
        try:
            os.fsync(fd)
        except OSError as exc:
            exc.filename = exc.filename or str(path)
            error = error or exc
        finally:
            with contextlib.suppress(OSError):
                os.close(fd)
    return error


class Syncer:
    """Coalescing background fsync of ``paths``.

    :meth:`request` (the key path: O(1), never waits for the disk) asks for an fsync
    of every path after the writes made so far; a daemon thread, started on the first
    request, does it. :meth:`sync` fsyncs now in the caller's thread and returns the
    error of a background fsync that failed since the last call (or of its own);
    :meth:`take_error` returns and clears that error without syncing. :meth:`stop`
    finishes the requests made so far and ends the thread.
    """

    def __init__(self, paths: Sequence[Path], before: Callable[[], None] | None = None) -> None:
        self.paths = tuple(paths)
        self.before = before  # a write to do first on each round (the queue position)
        self._cond = threading.Condition()
        self._requested = 0
        self._done = 0
        self._error: OSError | None = None
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.fsyncs = 0  # fsync rounds done in the thread (tests, benchmarks)

    @property
    def pending(self) -> bool:
        """True while a requested fsync has not finished."""
        with self._cond:
            return self._done < self._requested

    def request(self) -> None:
        with self._cond:
            self._requested += 1
            if self._thread is None and not self._stopping:
                self._thread = threading.Thread(
                    target=self._run, name="activepick-journal-fsync", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._done >= self._requested and not self._stopping:
                    self._cond.wait()
                if self._done >= self._requested:
                    return
                target = self._requested
            error = self._round()
            with self._cond:
                self._done = max(self._done, target)
                self.fsyncs += 1
                if error is not None and self._error is None:
                    self._error = error
                self._cond.notify_all()

    def _round(self) -> OSError | None:
        """``before`` then the fsyncs; the first error."""
        error = None
        if self.before is not None:
            try:
                self.before()
            except OSError as exc:
                error = exc
        return fsync_paths(self.paths) or error

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the background thread has done every request made so far."""
        with self._cond:
            target = self._requested
            return self._cond.wait_for(lambda: self._done >= target, timeout)

    def take_error(self) -> OSError | None:
        with self._cond:
            error, self._error = self._error, None
            return error

    def sync(self) -> OSError | None:
        """fsync every path now (in this thread); the first error of this or an earlier
        background fsync, else None."""
        with self._cond:
            target = self._requested
        error = self._round()
        with self._cond:
            self._done = max(self._done, target)
            self._cond.notify_all()
        return self.take_error() or error

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the requests made so far and end the thread (idempotent)."""
        with self._cond:
            self._stopping = True
            thread = self._thread
            self._cond.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
