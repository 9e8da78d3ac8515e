"""The label table: its schema, its validation and its exact CSV codec (one home).

A label table is a pick table (:data:`activepick.constants.PICK_COLUMNS`) plus the
provenance columns ``pick_id`` (unique int64), ``strategy`` (the strategy that
queued the pick, "" for added / imported), ``source`` (one of
:data:`activepick.constants.LABEL_SOURCES`) and ``pred_x`` / ``pred_y`` (the
predicted centre before a correction, NaN when there was none): the columns of
:data:`LABEL_COLUMNS`, in that order. Coordinates are centres in pixels of the
ORIGINAL micrograph, x = column, y = row, origin at the top-left array element.

The CSV codec (:func:`table_to_csv` / :func:`read_table`, used for every table of
a session) writes floats as Python's shortest round-trip ``repr`` and reads them
back bit-identical; NaN / None is an empty field ("no value"). String columns
(:data:`STRING_COLUMNS`) stay strings ("0001" is not turned into 1) and empty
strings stay empty strings. Errors are :class:`~activepick.errors.SessionError`
naming the file (or the ``source`` given) and the problem.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..constants import LABEL_COLUMNS, LABEL_SOURCES, PICK_COLUMNS, STATUSES
from ..errors import CoordinateError, SessionError
from .picks import empty_picks, validate_picks

#: Columns always read back as strings (never parsed as numbers or NaN).
STRING_COLUMNS: frozenset[str] = frozenset({"micrograph", "status", "time", "strategy", "source"})

_NEEDS_QUOTES = re.compile(r'[,"\r\n]')


# --------------------------------------------------------------------------- CSV codec


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


def csv_rows(df: pd.DataFrame) -> str:
    """The CSV rows of ``df`` without the header, each ending in ``\\n`` ("" for no rows)."""
    if len(df) == 0:
        return ""
    cols = [_column_text(df[c].to_numpy()) for c in df.columns]
    return "\n".join(",".join(row) for row in zip(*cols, strict=True)) + "\n"


def csv_header(columns) -> str:
    """The CSV header line of ``columns`` (with its ``\\n``)."""
    return ",".join(_column_text(np.asarray([str(c) for c in columns], dtype=object))) + "\n"


def table_to_csv(df: pd.DataFrame) -> str:
    """The CSV text of ``df`` (header + rows, ``\\n`` line ends, no index).

    Floats are written with Python's shortest round-trip ``repr`` (exact on read),
    NaN / None as an empty field, strings quoted only when they hold a comma, a
    quote or a line break. About three times faster than ``DataFrame.to_csv``
    with the same exactness.
    """
    return csv_header(df.columns) + csv_rows(df)


def parse_table(text: str, source: str) -> pd.DataFrame:
    """Parse CSV ``text`` written by :func:`table_to_csv`; errors name ``source``."""
    first = text.split("\n", 1)[0]
    header = next(csv.reader([first]), []) if first.strip() else []
    if not header:
        raise SessionError(f"{source}: empty file (no header line)")
    if len(set(header)) != len(header):
        raise SessionError(f"{source}: duplicate column names in the header")
    try:
        with warnings.catch_warnings():
            # a row with more fields than the header: refused, not silently cut
            warnings.simplefilter("error", pd.errors.ParserWarning)
            return pd.read_csv(
                io.StringIO(text),
                dtype={c: str for c in header if c in STRING_COLUMNS},
                keep_default_na=False,
                na_values={c: ["", "NaN", "nan"] for c in header if c not in STRING_COLUMNS},
                index_col=False,
            )
    except (ValueError, pd.errors.ParserError, pd.errors.ParserWarning) as exc:
        reason = " ".join(str(exc).split())  # one line
        raise SessionError(f"{source}: not a readable CSV table ({reason})") from None


def read_text(path: str | os.PathLike) -> str:
    """The UTF-8 text of ``path``; :class:`SessionError` naming it when missing or unreadable."""
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            return fh.read()
    except FileNotFoundError:
        raise SessionError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SessionError(f"{path}: not a readable CSV table ({exc})") from None


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a CSV written by :func:`table_to_csv`; raises :class:`SessionError` naming ``path``.

    Columns in :data:`STRING_COLUMNS` are strings ("" for empty fields); every other
    column is parsed by pandas (int64 / float64 / bool), an empty field being NaN.
    """
    return parse_table(read_text(path), str(path))


# --------------------------------------------------------------------------- label table


def empty_labels() -> pd.DataFrame:
    """A label table (``LABEL_COLUMNS``) with no rows: int64 ``pick_id``, float64 coordinates."""
    df = empty_picks()
    df["pick_id"] = pd.Series(dtype=np.int64)
    df["strategy"] = pd.Series(dtype=df["status"].dtype)
    df["source"] = pd.Series(dtype=df["status"].dtype)
    df["pred_x"] = pd.Series(dtype=np.float64)
    df["pred_y"] = pd.Series(dtype=np.float64)
    return df[list(LABEL_COLUMNS)]


def check_int_column(df: pd.DataFrame, col: str, source: str) -> np.ndarray:
    """Column ``col`` as int64; :class:`SessionError` naming ``source`` on a non-integer."""
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
    small = _small_valid_table(df)
    if small is not None:
        return small
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
    ids = check_int_column(df, "pick_id", source)
    if len(np.unique(ids)) != len(ids):
        raise SessionError(f"{source}: duplicate pick_id value(s)")
    out["pick_id"] = ids
    out["strategy"] = df["strategy"].fillna("").astype(str).to_numpy()
    sources = df["source"].fillna("").astype(str)
    unknown = set(sources.unique()) - set(LABEL_SOURCES)
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


def labels_to_csv(df: pd.DataFrame) -> str:
    """The CSV text of a label table: ``LABEL_COLUMNS`` first, then any extra columns."""
    cols = list(LABEL_COLUMNS) + [c for c in df.columns if c not in LABEL_COLUMNS]
    return table_to_csv(df[cols])


def read_labels_csv(path: str | os.PathLike) -> pd.DataFrame:
    """Read and validate a label table written by :func:`labels_to_csv`.

    Raises :class:`SessionError` naming ``path`` when it is missing, unreadable or
    not a valid label table.
    """
    path = Path(path)
    return validate_labels(read_table(path), str(path))


# --------------------------------------------------------------------------- journal
#: Columns of the label journal: ``op`` ("u" = upsert the row, "d" = remove the
#: ``pick_id``) then the label columns (empty for a removal, except ``pick_id``).
JOURNAL_COLUMNS: tuple[str, ...] = ("op", *LABEL_COLUMNS)
JOURNAL_HEADER = csv_header(JOURNAL_COLUMNS)


def journal_upserts(rows: pd.DataFrame, source: str = "label rows") -> str:
    """Journal lines that upsert ``rows`` (a validated label table), one line per row."""
    text = csv_rows(rows[list(LABEL_COLUMNS)])
    if text.count("\n") != len(rows):
        raise SessionError(f"{source}: a text field holds a line break; not journalled")
    return "".join("u," + line + "\n" for line in text.splitlines())


#: Tables up to this many rows are journalled through the pure-Python path below.
_FAST_ROWS = 32
_FLOAT_COLS = frozenset({"x", "y", "diameter", "confidence", "pred_x", "pred_y"})
_NAN_OK = frozenset({"confidence", "pred_x", "pred_y"})


def _fast_field(col: str, v) -> str | None:
    """The CSV field of a valid value of ``col``, or None when the value needs the full check."""
    if col in _FLOAT_COLS:
        if isinstance(v, bool) or not isinstance(v, (float, int)):
            return None
        v = float(v)
        if v != v:
            return "" if col in _NAN_OK else None
        if math.isinf(v) or (col == "diameter" and v <= 0):
            return None
        if col == "confidence" and not 0.0 <= v <= 1.0:
            return None
        return repr(v)
    if col in ("round", "pick_id"):
        return str(v) if isinstance(v, int) and not isinstance(v, bool) else None
    if not isinstance(v, str) or "\n" in v or "\r" in v:
        return None
    if (col == "status" and v not in STATUSES) or (col == "source" and v not in LABEL_SOURCES):
        return None
    return '"' + v.replace('"', '""') + '"' if _NEEDS_QUOTES.search(v) else v


_INT_COLS = frozenset({"round", "pick_id"})
_PICK_ID = LABEL_COLUMNS.index("pick_id")


def _small_valid_table(df: pd.DataFrame) -> pd.DataFrame | None:
    """What :func:`validate_labels` returns for a few plainly valid rows with the label
    columns only (the rows of a key press), built without pandas' column checks (about
    a millisecond saved per key); None when any value needs the full check."""
    if not 0 < len(df) <= _FAST_ROWS or list(df.columns) != list(LABEL_COLUMNS):
        return None
    columns = {c: df[c].tolist() for c in LABEL_COLUMNS}
    ids = columns["pick_id"]
    if len(set(ids)) != len(ids):
        return None
    for col, values in columns.items():
        if any(_fast_field(col, v) is None for v in values):
            return None
    want = [np.float64 if c in _FLOAT_COLS else np.int64 if c in _INT_COLS else object for c in df]
    if list(df.dtypes) == want and df.index.equals(pd.RangeIndex(len(df))):
        return df.copy()  # built from row tuples: already the validated form
    out = {}
    for col, values in columns.items():
        if col in _FLOAT_COLS:
            out[col] = np.array(values, dtype=np.float64)
        elif col in _INT_COLS:
            out[col] = np.array(values, dtype=np.int64)
        else:
            out[col] = np.array(values, dtype=object)
    return pd.DataFrame(out)


def fast_journal_lines(rows: Sequence[Sequence]) -> str | None:
    """Upsert journal lines of a few plainly valid label rows (tuples in
    ``LABEL_COLUMNS`` order, a key press's rows) in pure Python: exactly what
    :func:`validate_labels` + :func:`journal_upserts` write; None when there are many
    rows, a repeated pick id or any value that needs the full check."""
    if len(rows) > _FAST_ROWS:
        return None
    ids = [r[_PICK_ID] for r in rows]
    if len(set(ids)) != len(ids):
        return None
    lines = []
    for values in rows:
        fields = ["u"]
        for col, v in zip(LABEL_COLUMNS, values, strict=True):
            text = _fast_field(col, v)
            if text is None:
                return None
            fields.append(text)
        lines.append(",".join(fields) + "\n")
    return "".join(lines)


def _fast_upserts(rows: pd.DataFrame) -> str | None:
    """:func:`fast_journal_lines` of a small table's rows; None when it does not apply."""
    if len(rows) > _FAST_ROWS or any(c not in rows.columns for c in LABEL_COLUMNS):
        return None
    return fast_journal_lines(list(zip(*[rows[c].tolist() for c in LABEL_COLUMNS], strict=True)))


def label_rows_to_journal(rows: pd.DataFrame, source: str = "label rows") -> str:
    """Validate label rows and return their upsert journal lines.

    A few plainly valid rows (a key press) take a pure-Python path that writes
    exactly what :func:`validate_labels` + :func:`journal_upserts` write, in tens
    of microseconds; anything else goes through :func:`validate_labels`, which
    raises :class:`SessionError` naming ``source``.
    """
    fast = _fast_upserts(rows)
    if fast is not None:
        return fast
    return journal_upserts(validate_labels(rows, source), source)


def journal_removals(pick_ids) -> str:
    """Journal lines that remove the labels of ``pick_ids``."""
    blanks = "," * (len(LABEL_COLUMNS) - LABEL_COLUMNS.index("pick_id") - 1)
    head = "," * LABEL_COLUMNS.index("pick_id")
    return "".join(f"d,{head}{int(p)}{blanks}\n" for p in pick_ids)


def replay_journal(labels: pd.DataFrame, text: str, source: str) -> tuple[pd.DataFrame, list[str]]:
    """Apply journal ``text`` (header + lines) to ``labels``; return the table and what was dropped.

    The last entry for a ``pick_id`` wins: an upsert replaces the row (moved to the
    end, as the engine appends changed rows), a removal deletes it. A last line
    without its line end (a write cut by a crash) is dropped; so is everything from
    the first malformed line on (an earlier, consistent state), each with a message.
    """
    notes: list[str] = []
    if not text:
        return labels, notes
    lines = text.split("\n")
    if lines[-1]:
        notes.append(f"{source}: dropped an incomplete last line (a write cut short)")
    lines = lines[:-1]
    if not lines:
        return labels, notes
    if lines[0] + "\n" != JOURNAL_HEADER:
        notes.append(
            f"{source}: not a label journal (wrong header); its {len(lines) - 1} line(s) ignored"
        )
        return labels, notes
    good = len(lines)
    width = len(JOURNAL_COLUMNS)
    for i, fields in enumerate(csv.reader(lines[1:]), start=1):
        if len(fields) != width or fields[0] not in ("u", "d"):
            good = i
            break
    if good < len(lines):
        notes.append(
            f"{source}: line {good + 1} is malformed; it and the {len(lines) - good - 1} line(s) "
            "after it were ignored"
        )
    if good == 1:
        return labels, notes
    df = parse_table("\n".join(lines[:good]) + "\n", source)
    df["pick_id"] = check_int_column(df, "pick_id", source)
    last = df.drop_duplicates("pick_id", keep="last")
    ups = last[last["op"] == "u"]
    kept = labels[~labels["pick_id"].isin(df["pick_id"])]
    if len(ups) == 0:
        return kept.reset_index(drop=True), notes
    new = validate_labels(ups[list(LABEL_COLUMNS)].reset_index(drop=True), source)
    if len(kept) == 0:
        return new, notes
    return pd.concat([kept, new], ignore_index=True), notes


__all__ = [
    "JOURNAL_COLUMNS",
    "LABEL_COLUMNS",
    "STRING_COLUMNS",
    "empty_labels",
    "journal_removals",
    "journal_upserts",
    "label_rows_to_journal",
    "labels_to_csv",
    "read_labels_csv",
    "read_table",
    "replay_journal",
    "table_to_csv",
    "validate_labels",
]
