"""Atomic file writes: a temporary file in the same folder, then ``os.replace``.

A crash or an exception while writing leaves the previous version of the file
untouched; readers never see a half-written file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: Read once at import: os.umask can only be read by setting it, which is not thread-safe.
_UMASK = _current_umask()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path``.

    Use it for libraries that want a file name (``mrcfile``, ``starfile``,
    ``torch.save``, ``np.save``). On an exception the temporary file is removed
    and ``path`` keeps its previous content.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent
    )
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates 0600 files; give the result the permissions a plain open() would.
    os.chmod(tmp_path, 0o666 & ~_UMASK)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs) -> Iterator:
    """Open a temporary file for writing that atomically replaces ``path`` on close."""
    if "r" in mode or "a" in mode:
        raise ValueError(f"atomic_open is for writing only, got mode {mode!r}")
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as fh:
        yield fh


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb") as fh:
        fh.write(data)


def refuse_existing(path: str | os.PathLike, *, force: bool = False, what: str = "output") -> Path:
    """Return ``path`` if it may be written: it does not exist yet, or ``force`` is true.

    Raises :class:`~activepick.errors.ActivePickError` naming the file otherwise,
    the way RELION and cryoSPARC refuse to overwrite without being told to. A folder
    output (per-micrograph formats) counts as existing when it holds any file.
    """
    from ..errors import ActivePickError

    path = Path(path)
    if force or not path.exists():
        return path
    if path.is_dir() and not any(path.iterdir()):
        return path
    raise ActivePickError(f"{what} {path} already exists; pass --force to overwrite it")
