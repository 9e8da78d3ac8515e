"""The on-disk session: everything a picking session needs to resume.

A session folder holds (see ``docs/session.md`` for the user's view)::

    session.json          format, version, created / modified (ISO 8601 UTC), settings,
                          micrographs (name, absolute path, path relative to the folder)
    labels.csv            the label table (constants.LABEL_COLUMNS): every decision
    labels.csv.bak        the previous labels.csv (one save older)
    queue.csv             the review queue (pick table + pick_id, uncertainty, rank, ...)
    queue.json            position in the queue + the SHA-256 of the queue.csv it belongs to
    history.json          one metrics dict per round, in round order
    rounds/round_NNN/     model.pt + model.pt.json (checkpoint), predictions.csv, metrics.json

Conventions:

- Coordinates in every table are centres in pixels of the ORIGINAL micrograph,
  x = column, y = row, origin at the top-left array element (as the pick table).
- Every file is written through :mod:`activepick.io.atomic` (temporary file in the
  same folder, fsync, ``os.replace``): a reader, or a session resumed after a crash
  or a kill, sees either the previous or the new version of each file, never a
  part of one.
- CSV floats are written as Python's shortest round-trip ``repr`` and read back
  exactly (a save / load round trip returns bit-identical floats); NaN is an empty
  field. String columns (micrograph, status, time, strategy, source) stay strings
  ("0001" is not turned into 1) and empty strings stay empty strings.
- ``labels.csv.bak`` is made by hard-linking (or, where links are not supported,
  atomically copying) the current ``labels.csv`` before the new one replaces it,
  so both names hold a complete file at every instant. When ``labels.csv`` cannot
  be read, :meth:`Session.load_labels` falls back to the backup with a
  :class:`SessionWarning`.

Speed: ``save_labels`` rewrites the whole table on every decision (formatting the
CSV dominates: about 8 ms for 1,000 labels, 25 ms for 3,000, 40-70 ms for 10,000,
0.6-0.9 s for 100,000 on two shared CPU cores). Should sessions of tens of
thousands of labels become common, an append-only decision journal
(``labels.journal.csv``, one fsynced line per decision, compacted into
``labels.csv`` at each round) would make a keypress O(1).

The core never imports Qt or napari; the detector is imported lazily (only
:meth:`Session.save_round` and :meth:`Session.load_detector` need torch).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import re
import shutil
import threading
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .constants import LABEL_COLUMNS, LABEL_SOURCES, PICK_COLUMNS, STATUSES
from .errors import CoordinateError, SessionError
from .io.atomic import atomic_path, atomic_write_text
from .io.picks import empty_picks, now_utc, validate_picks

#: Version of the session folder layout written by this code.
SESSION_VERSION = 1
#: ``format`` value of ``session.json``.
SESSION_FORMAT = "activepick-session"

SESSION_FILE = "session.json"
LABELS_FILE = "labels.csv"
LABELS_BACKUP = "labels.csv.bak"
QUEUE_FILE = "queue.csv"
QUEUE_STATE_FILE = "queue.json"
HISTORY_FILE = "history.json"
ROUNDS_DIR = "rounds"
MODEL_FILE = "model.pt"
PREDICTIONS_FILE = "predictions.csv"
METRICS_FILE = "metrics.json"

#: Columns always read back as strings (never parsed as numbers or NaN).
STRING_COLUMNS: frozenset[str] = frozenset({"micrograph", "status", "time", "strategy", "source"})
#: Temporary files of interrupted writes older than this (seconds) are removed on open.
STALE_TEMP_AGE_S = 3600.0

_ROUND_RE = re.compile(r"^round_(\d+)$")
_NEEDS_QUOTES = re.compile(r'[,"\r\n]')


class SessionWarning(UserWarning):
    """Something in a session was recovered or ignored (e.g. labels read from the backup)."""


# --------------------------------------------------------------------------- CSV


def _column_text(values: np.ndarray) -> list[str]:
    """CSV fields of one column: floats as shortest round-trip repr, NaN / None as ""."""
    if values.dtype.kind == "f":
        return ["" if v != v else repr(v) for v in values.tolist()]
    if values.dtype.kind in "iub":
        return [str(v) for v in values.tolist()]
    out = [
        ""
        if v is None or (isinstance(v, float) and v != v)
        else (repr(v) if isinstance(v, float) else str(v))
        for v in values.tolist()
    ]
    if _NEEDS_QUOTES.search("\x00".join(out)):  # rare: quote only the fields that need it
        out = ['"' + s.replace('"', '""') + '"' if _NEEDS_QUOTES.search(s) else s for s in out]
    return out


def table_to_csv(df: pd.DataFrame) -> str:
    """The CSV text of ``df`` (header + rows, ``\\n`` line ends, no index).

    Floats are written with Python's shortest round-trip ``repr`` (exact on read),
    NaN / None as an empty field, strings quoted only when they hold a comma, a
    quote, a line break or leading / trailing white space. About three times
    faster than ``DataFrame.to_csv`` with the same exactness.
    """
    header = ",".join(_column_text(np.asarray([str(c) for c in df.columns], dtype=object)))
    if len(df) == 0:
        return header + "\n"
    cols = [_column_text(df[c].to_numpy()) for c in df.columns]
    return header + "\n" + "\n".join(",".join(row) for row in zip(*cols, strict=True)) + "\n"


def read_table(path: Path) -> pd.DataFrame:
    """Read a CSV written by :func:`table_to_csv`; raises :class:`SessionError` naming ``path``.

    Columns in :data:`STRING_COLUMNS` are strings ("" for empty fields); every other
    column is parsed by pandas (int64 / float64 / bool), an empty field being NaN.
    """
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            first = fh.readline()
            header = next(csv.reader([first]), [])
            if not header:
                raise SessionError(f"{path}: empty file (no header line)")
            if len(set(header)) != len(header):
                raise SessionError(f"{path}: duplicate column names in the header")
            fh.seek(0)
            df = pd.read_csv(
                fh,
                dtype={c: str for c in header if c in STRING_COLUMNS},
                keep_default_na=False,
                na_values={c: ["", "NaN", "nan"] for c in header if c not in STRING_COLUMNS},
            )
    except SessionError:
        raise
    except FileNotFoundError:
        raise SessionError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError, ValueError, pd.errors.ParserError) as exc:
        raise SessionError(f"{path}: not a readable CSV table ({exc})") from None
    return df


def _write_csv(path: Path, text: str) -> None:
    atomic_write_text(path, text)


# --------------------------------------------------------------------------- tables


def empty_labels() -> pd.DataFrame:
    """A label table (``constants.LABEL_COLUMNS``) with no rows and the session's dtypes."""
    df = empty_picks()
    df["pick_id"] = pd.Series(dtype=np.int64)
    df["strategy"] = pd.Series(dtype=df["status"].dtype)
    df["source"] = pd.Series(dtype=df["status"].dtype)
    df["pred_x"] = pd.Series(dtype=np.float64)
    df["pred_y"] = pd.Series(dtype=np.float64)
    return df[list(LABEL_COLUMNS)]


def _check_int_column(df: pd.DataFrame, col: str, source: str) -> np.ndarray:
    values = pd.to_numeric(df[col], errors="coerce").to_numpy(np.float64)
    bad = ~np.isfinite(values) | (values != np.round(values))
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise SessionError(
            f"{source}: column {col!r} must hold integers ({int(bad.sum())} bad row(s), first at row {first})"
        )
    return values.astype(np.int64)


def validate_labels(df: pd.DataFrame, source: str = "label table") -> pd.DataFrame:
    """Check and normalise a label table; return it with ``LABEL_COLUMNS`` first.

    The pick columns are checked with :func:`activepick.io.picks.validate_picks`
    (statuses, finite x / y / diameter, confidences in [0, 1]); ``pick_id`` must be
    unique integers, ``source`` one of ``constants.LABEL_SOURCES``, ``pred_x`` /
    ``pred_y`` numbers or NaN; ``strategy`` is a string ("" for added / imported).
    Extra columns are kept after the label columns. Raises :class:`SessionError`
    naming ``source``.
    """
    missing = [c for c in LABEL_COLUMNS if c not in df.columns]
    if missing:
        raise SessionError(f"{source}: missing column(s) {', '.join(missing)}")
    if len(df) == 0:
        out = empty_labels()
        for c in df.columns:
            if c not in out.columns:
                out[c] = df[c].to_numpy()
        return out
    try:
        out = validate_picks(df[list(PICK_COLUMNS)], source)
    except CoordinateError as exc:
        raise SessionError(str(exc)) from None
    ids = _check_int_column(df, "pick_id", source)
    if len(np.unique(ids)) != len(ids):
        raise SessionError(f"{source}: duplicate pick_id value(s)")
    out["pick_id"] = ids
    out["strategy"] = df["strategy"].fillna("").astype(str).to_numpy()
    sources = df["source"].fillna("").astype(str)
    unknown = set(sources) - set(LABEL_SOURCES)
    if unknown:
        raise SessionError(
            f"{source}: unknown source value(s) {sorted(unknown)} (allowed: {', '.join(LABEL_SOURCES)})"
        )
    out["source"] = sources.to_numpy()
    for col in ("pred_x", "pred_y"):
        try:
            out[col] = pd.to_numeric(df[col], errors="raise").to_numpy(np.float64)
        except (ValueError, TypeError):
            raise SessionError(f"{source}: column {col!r} is not numeric") from None
    for c in df.columns:
        if c not in out.columns:
            out[c] = df[c].to_numpy()
    return out


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
        out["pick_id"] = _check_int_column(out, "pick_id", source)
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


# --------------------------------------------------------------------------- Session


class Session:
    """A session folder on disk; every ``save_*`` is an atomic write.

    Attributes:
        folder: the session folder (absolute).
        settings: JSON-able dict (diameter, arch, strategy, batch_size, epochs, seed,
            threshold, ``detector`` config, ``complete`` micrographs, ...).
        micrograph_paths: absolute micrograph paths in pool order.
        created: ISO 8601 UTC time the session was created.
    """

    def __init__(
        self, folder: Path, settings: dict, micrograph_paths: list[Path], created: str
    ) -> None:
        self.folder = folder
        self.settings = settings
        self.micrograph_paths = micrograph_paths
        self.created = created
        self._lock = threading.Lock()  # saves from the GUI thread and a worker thread

    def __repr__(self) -> str:
        return f"Session({str(self.folder)!r}, micrographs={len(self.micrograph_paths)}, rounds={self.rounds()})"

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
    ) -> Session:
        """Create a session in ``folder`` (made if needed) for ``micrographs`` (pool order).

        Raises :class:`SessionError` when ``folder`` already holds a session and
        ``overwrite`` is false, when a micrograph file does not exist (all missing
        ones are listed) or when two micrographs share a name (file name without
        extension: picks refer to micrographs by that name). With ``overwrite``
        the previous session's files (labels, queue, history, rounds) are removed;
        nothing else in the folder is touched.
        """
        folder = Path(folder).expanduser().resolve()
        if cls.exists(folder) and not overwrite:
            raise SessionError(
                f"{folder / SESSION_FILE}: a session already exists here (open it, or create with overwrite)"
            )
        paths = [Path(p).expanduser().resolve() for p in micrographs]
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
        folder.mkdir(parents=True, exist_ok=True)
        if overwrite:
            for name in (LABELS_FILE, LABELS_BACKUP, QUEUE_FILE, QUEUE_STATE_FILE, HISTORY_FILE):
                with contextlib.suppress(FileNotFoundError):
                    (folder / name).unlink()
            shutil.rmtree(folder / ROUNDS_DIR, ignore_errors=True)
        session = cls(folder, dict(settings), paths, now_utc())
        session._write_session_json()
        return session

    @classmethod
    def open(cls, folder: str | os.PathLike, *, check_files: bool = True) -> Session:
        """Open the session in ``folder``.

        Each micrograph is found at its absolute path if that exists, else at its
        path relative to the session folder (a folder copied together with its
        micrographs). Raises :class:`SessionError` naming the file when
        ``session.json`` is missing, unreadable, not a session or of a newer
        version, and, with ``check_files`` (default), listing the micrographs found
        at neither place (use :meth:`relocate`, or ``check_files=False`` to open
        anyway, e.g. to export labels).
        """
        folder = Path(folder).expanduser().resolve()
        path = folder / SESSION_FILE
        if not path.is_file():
            raise SessionError(f"{path}: no session here (session.json not found)")
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
        settings = info.get("settings")
        entries = info.get("micrographs")
        if not isinstance(settings, dict):
            raise SessionError(f"{path}: 'settings' is missing or not an object")
        if not isinstance(entries, list) or not all(
            isinstance(e, dict) and isinstance(e.get("path"), str) for e in entries
        ):
            raise SessionError(f"{path}: 'micrographs' is missing or malformed")
        paths, missing = [], []
        for e in entries:
            absolute = Path(e["path"])
            rel = e.get("relative")
            candidate = (folder / rel).resolve() if isinstance(rel, str) else None
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
        _remove_stale_temp_files(folder)
        return cls(folder, settings, paths, str(info.get("created", "")))

    def _session_json(self) -> dict:
        entries = []
        for p in self.micrograph_paths:
            try:
                rel = Path(os.path.relpath(p, self.folder)).as_posix()
            except ValueError:  # another drive on Windows
                rel = None
            entries.append({"name": p.stem, "path": str(p), "relative": rel})
        return {
            "format": SESSION_FORMAT,
            "version": SESSION_VERSION,
            "created": self.created,
            "modified": now_utc(),
            "settings": self.settings,
            "micrographs": entries,
        }

    def _write_session_json(self) -> None:
        path = self.folder / SESSION_FILE
        atomic_write_text(path, _dumps(self._session_json(), str(path)))

    def save_settings(self, settings: dict) -> None:
        """Replace the settings and rewrite ``session.json`` atomically."""
        path = self.folder / SESSION_FILE
        _dumps({"settings": settings}, f"{path} settings")  # fail before changing state
        self.settings = dict(settings)
        self._write_session_json()

    def relocate(self, new_root: str | os.PathLike) -> None:
        """Point the micrographs at files of the same name under ``new_root``.

        For sessions copied to another machine or micrographs moved: each
        micrograph is looked up by file name directly in ``new_root``, else
        anywhere below it (it must then be unique). Raises :class:`SessionError`
        listing the ones not found (or found twice) and changes nothing in that
        case; on success ``session.json`` is rewritten.
        """
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

    # ----------------------------------------------------------------- labels
    def save_labels(self, labels: pd.DataFrame) -> None:
        """Write the full label table (``LABEL_COLUMNS``) to ``labels.csv``, atomically.

        The previous ``labels.csv`` becomes ``labels.csv.bak`` (a hard link made
        before the replace, so both names always hold a complete file). Raises
        :class:`SessionError` when a label column is missing, before writing.
        """
        missing = [c for c in LABEL_COLUMNS if c not in labels.columns]
        if missing:
            raise SessionError(
                f"label table for {self.folder / LABELS_FILE}: missing column(s) {', '.join(missing)}"
            )
        for col, allowed in (("status", STATUSES), ("source", LABEL_SOURCES)):
            unknown = set(labels[col].astype(str).unique()) - set(allowed)
            if unknown:
                raise SessionError(
                    f"label table for {self.folder / LABELS_FILE}: unknown {col} value(s) "
                    f"{sorted(unknown)}; nothing written"
                )
        cols = list(LABEL_COLUMNS) + [c for c in labels.columns if c not in LABEL_COLUMNS]
        text = table_to_csv(labels[cols])
        path = self.folder / LABELS_FILE
        with self._lock, atomic_path(path) as tmp:
            tmp.write_text(text, encoding="utf-8")
            if path.exists():
                self._backup_labels(path)

    def _backup_labels(self, path: Path) -> None:
        """Make ``labels.csv.bak`` the current ``labels.csv`` (hard link, else atomic copy)."""
        bak = self.folder / LABELS_BACKUP
        link = bak.with_name(f".{bak.name}.link.tmp")
        with contextlib.suppress(FileNotFoundError):
            link.unlink()
        try:
            os.link(path, link)
        except OSError:
            with atomic_path(bak) as tmp:
                shutil.copyfile(path, tmp)
            return
        os.replace(link, bak)

    def load_labels(self) -> pd.DataFrame:
        """The label table; an empty one (``LABEL_COLUMNS``) when nothing was saved yet.

        When ``labels.csv`` is unreadable or invalid and ``labels.csv.bak`` is
        valid, the backup is returned with a :class:`SessionWarning` (one decision
        older). Raises :class:`SessionError` naming the file and the problem when
        neither is usable (missing columns, unknown statuses or sources, ...).
        """
        path = self.folder / LABELS_FILE
        bak = self.folder / LABELS_BACKUP
        if not path.exists() and not bak.exists():
            return empty_labels()
        try:
            if not path.exists():
                raise SessionError(f"{path}: file not found")
            return validate_labels(read_table(path), str(path))
        except SessionError as exc:
            if not bak.exists():
                raise
            try:
                labels = validate_labels(read_table(bak), str(bak))
            except SessionError as exc_bak:
                raise SessionError(f"{exc}; the backup is not usable either: {exc_bak}") from None
            warnings.warn(
                f"{exc}; loaded the previous labels from {bak.name} instead (the last decision may be lost)",
                SessionWarning,
                stacklevel=2,
            )
            return labels

    # ----------------------------------------------------------------- queue
    def save_queue(self, queue: pd.DataFrame, position: int) -> None:
        """Write the review queue (``queue.csv``) and the position in it (``queue.json``).

        ``queue.json`` records the SHA-256 of the ``queue.csv`` it belongs to; when
        only the position changed, ``queue.csv`` is not rewritten. Each file is
        written atomically.
        """
        position = int(position)
        if not 0 <= position <= len(queue):
            raise SessionError(
                f"{self.folder / QUEUE_STATE_FILE}: position {position} outside the queue of {len(queue)}"
            )
        text = table_to_csv(queue)
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        qpath = self.folder / QUEUE_FILE
        spath = self.folder / QUEUE_STATE_FILE
        state = {"position": position, "length": len(queue), "sha256": digest, "time": now_utc()}
        with self._lock:
            old = None
            if spath.is_file() and qpath.is_file():
                with contextlib.suppress(SessionError):
                    old = _read_json(spath)
            if not (isinstance(old, dict) and old.get("sha256") == digest):
                _write_csv(qpath, text)
            atomic_write_text(spath, _dumps(state, str(spath)))

    def load_queue(self) -> tuple[pd.DataFrame, int]:
        """``(queue, position)``; ``(empty queue, 0)`` when none was saved.

        When ``queue.json`` does not belong to ``queue.csv`` (a crash between the
        two writes), the position restarts at 0 with a :class:`SessionWarning`.
        Raises :class:`SessionError` naming the file when either is unreadable.
        """
        qpath = self.folder / QUEUE_FILE
        spath = self.folder / QUEUE_STATE_FILE
        if not qpath.exists():
            return _empty_queue(), 0
        try:
            raw = qpath.read_bytes()
        except OSError as exc:
            raise SessionError(f"{qpath}: cannot read ({exc})") from None
        queue = _validate_pick_extras(read_table(qpath), str(qpath))
        position = 0
        if spath.exists():
            state = _read_json(spath)
            if not isinstance(state, dict) or not isinstance(state.get("position"), int):
                raise SessionError(f"{spath}: no integer 'position'")
            if state.get("sha256") == hashlib.sha256(raw).hexdigest():
                position = state["position"]
                if not 0 <= position <= len(queue):
                    raise SessionError(
                        f"{spath}: position {position} outside the queue of {len(queue)} in {qpath.name}"
                    )
            else:
                warnings.warn(
                    f"{spath}: does not belong to {qpath.name} (interrupted save); review restarts at 0",
                    SessionWarning,
                    stacklevel=2,
                )
        return queue, position

    # ----------------------------------------------------------------- rounds
    def round_folder(self, round: int) -> Path:  # noqa: A002 - the engine's name
        """``rounds/round_NNN`` (three digits, more when needed) of round ``round``."""
        return self.folder / ROUNDS_DIR / f"round_{int(round):03d}"

    def save_round(
        self,
        round: int,  # noqa: A002 - the engine's name
        *,
        detector=None,
        predictions: pd.DataFrame | None = None,
        metrics: dict | None = None,
    ) -> None:
        """Save what round ``round`` produced; each part is optional and kept when omitted.

        ``detector`` -> ``model.pt`` + ``model.pt.json`` via
        :func:`activepick.detector.save_checkpoint`; ``predictions`` ->
        ``predictions.csv``; ``metrics`` -> ``metrics.json`` (with ``round`` set)
        and into ``history.json``: it replaces the history entry of the same round
        (the engine saves a round twice: after training, after prediction) or is
        appended; the history is kept in round order.
        """
        r = int(round)
        if r < 0:
            raise SessionError(f"{self.folder}: round must be >= 0, not {r}")
        folder = self.round_folder(r)
        folder.mkdir(parents=True, exist_ok=True)
        if detector is not None:
            from .detector import save_checkpoint

            save_checkpoint(detector, folder / MODEL_FILE)
        if predictions is not None:
            _write_csv(folder / PREDICTIONS_FILE, table_to_csv(predictions))
        if metrics is not None:
            entry = dict(metrics)
            entry["round"] = r
            text = _dumps(entry, str(folder / METRICS_FILE))
            atomic_write_text(folder / METRICS_FILE, text)
            path = self.folder / HISTORY_FILE
            with self._lock:
                history = [h for h in self.history() if int(h.get("round", -1)) != r]
                history.append(json.loads(text))
                history.sort(key=lambda h: int(h.get("round", 0)))
                atomic_write_text(path, _dumps(history, str(path)))

    def rounds(self) -> list[int]:
        """Round numbers that have a ``rounds/round_NNN`` folder, ascending."""
        base = self.folder / ROUNDS_DIR
        if not base.is_dir():
            return []
        out = []
        for p in base.iterdir():
            m = _ROUND_RE.match(p.name)
            if m and p.is_dir():
                out.append(int(m.group(1)))
        return sorted(out)

    def _latest_with(self, filename: str, round: int | None) -> Path | None:  # noqa: A002
        if round is not None:
            path = self.round_folder(round) / filename
            if not path.is_file():
                raise SessionError(f"{path}: not found (round {int(round)} has no {filename})")
            return path
        for r in reversed(self.rounds()):
            path = self.round_folder(r) / filename
            if path.is_file():
                return path
        return None

    def load_detector(self, round: int | None = None, device=None):  # noqa: A002
        """The detector of round ``round`` (default: the latest round with a checkpoint).

        None when no round has a checkpoint; :class:`SessionError` when the given
        round has none; :class:`~activepick.errors.CheckpointError` (naming the
        file) when the checkpoint is corrupt. ``device`` as in
        :func:`activepick.detector.load_checkpoint`.
        """
        path = self._latest_with(MODEL_FILE, round)
        if path is None:
            return None
        from .detector import load_checkpoint

        return load_checkpoint(path, device=device)

    def load_predictions(self, round: int | None = None) -> pd.DataFrame | None:  # noqa: A002
        """The predictions of round ``round`` (default: the latest round that has some).

        A pick table plus its extra columns (``pick_id``, ``disagreement``, ...);
        None when no round has predictions.
        """
        path = self._latest_with(PREDICTIONS_FILE, round)
        if path is None:
            return None
        return _validate_pick_extras(read_table(path), str(path))

    def history(self) -> list[dict]:
        """The per-round metrics dicts (``history.json``), in round order; [] when none."""
        path = self.folder / HISTORY_FILE
        if not path.exists():
            return []
        history = _read_json(path)
        if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
            raise SessionError(f"{path}: not a list of per-round objects")
        return history


__all__ = [
    "SESSION_VERSION",
    "Session",
    "SessionWarning",
    "empty_labels",
    "read_table",
    "table_to_csv",
    "validate_labels",
]
