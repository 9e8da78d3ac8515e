"""The pick table: one pandas DataFrame type for every pick in the project.

Columns are :data:`activepick.constants.PICK_COLUMNS`:

- ``micrograph`` (str): micrograph name, the file name without extension, kept
  exactly as read.
- ``x``, ``y`` (float): centre in pixels of the ORIGINAL micrograph; x = column,
  y = row, origin at the top-left array element (napari shows a point at
  ``(row, col) = (y, x)``).
- ``diameter`` (float): box size in pixels.
- ``confidence`` (float): in [0, 1]; NaN for picks that were not predicted.
- ``status`` (str): one of :data:`activepick.constants.STATUSES`.
- ``round`` (int): active-learning round (0 for imported / initial picks).
- ``time`` (str): ISO 8601 UTC time stamp, may be empty.

Coordinate formats convert to and from this table; nothing else in the project
invents its own coordinate container.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone

import numpy as np
import pandas as pd

from ..constants import PICK_COLUMNS, POSITIVE_STATUSES, STATUS_IMPORTED, STATUSES
from ..errors import CoordinateError

_DTYPES = {
    "micrograph": object,
    "x": np.float64,
    "y": np.float64,
    "diameter": np.float64,
    "confidence": np.float64,
    "status": object,
    "round": np.int64,
    "time": object,
}


def now_utc() -> str:
    """The current UTC time as an ISO 8601 string (seconds precision)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def empty_picks() -> pd.DataFrame:
    """A pick table with no rows and the right columns and dtypes."""
    return pd.DataFrame({c: pd.Series(dtype=_DTYPES[c]) for c in PICK_COLUMNS})


def make_picks(
    micrograph: str | np.ndarray | list,
    x,
    y,
    diameter,
    confidence=np.nan,
    status: str | np.ndarray | list = STATUS_IMPORTED,
    round: int | np.ndarray | list = 0,  # noqa: A002 - the column's name
    time: str | np.ndarray | list | None = None,
) -> pd.DataFrame:
    """Build a pick table from columns; scalars are broadcast to the length of ``x``."""
    x = np.atleast_1d(np.asarray(x, dtype=np.float64))
    n = len(x)
    cols = {
        "micrograph": micrograph,
        "x": x,
        "y": y,
        "diameter": diameter,
        "confidence": confidence,
        "status": status,
        "round": round,
        "time": "" if time is None else time,
    }
    data = {}
    for name, value in cols.items():
        arr = np.asarray(value, dtype=_DTYPES[name])
        data[name] = (
            np.broadcast_to(arr, (n,)).copy() if arr.ndim == 0 or arr.shape != (n,) else arr
        )
    return validate_picks(pd.DataFrame(data, columns=list(PICK_COLUMNS)))


def validate_picks(df: pd.DataFrame, source: str = "pick table") -> pd.DataFrame:
    """Check and normalise a pick table; return it with canonical column order and dtypes.

    Missing optional columns are filled (confidence NaN, status ``imported``,
    round 0, time ""). Raises :class:`CoordinateError` naming ``source`` when a
    required column (micrograph, x, y, diameter) is missing, when x / y /
    diameter hold NaN or non-numbers, when a diameter is not positive, or when a
    status is unknown.
    """
    missing = [c for c in ("micrograph", "x", "y", "diameter") if c not in df.columns]
    if missing:
        raise CoordinateError(f"{source}: missing column(s) {', '.join(missing)}")
    df = df.copy()
    if "confidence" not in df.columns:
        df["confidence"] = np.nan
    if "status" not in df.columns:
        df["status"] = STATUS_IMPORTED
    if "round" not in df.columns:
        df["round"] = 0
    if "time" not in df.columns:
        df["time"] = ""
    for col in ("x", "y", "diameter", "confidence"):
        try:
            df[col] = pd.to_numeric(df[col], errors="raise").astype(np.float64)
        except (ValueError, TypeError) as exc:
            raise CoordinateError(f"{source}: column {col!r} is not numeric ({exc})") from None
    for col in ("x", "y", "diameter"):
        bad = ~np.isfinite(df[col].to_numpy())
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise CoordinateError(
                f"{source}: {int(bad.sum())} row(s) with NaN or infinite {col!r} (first at row {first})"
            )
    if (df["diameter"] <= 0).any():
        raise CoordinateError(f"{source}: diameters must be positive")
    conf = df["confidence"].to_numpy()
    if np.any((conf < 0) | (conf > 1)):
        raise CoordinateError(f"{source}: confidences must lie in [0, 1]")
    unknown = set(pd.unique(df["status"].astype(str).to_numpy())) - set(STATUSES)
    if unknown:
        raise CoordinateError(f"{source}: unknown status value(s) {sorted(unknown)}")
    df["micrograph"] = df["micrograph"].astype(str)
    df["status"] = df["status"].astype(str)
    df["round"] = _rounds(df["round"], source)
    df["time"] = df["time"].fillna("").astype(str)
    return df[list(PICK_COLUMNS)].reset_index(drop=True)


def _rounds(values: pd.Series, source: str) -> np.ndarray:
    """Round numbers as int64; blank / missing -> 0, anything not a whole number -> error."""
    text = values.astype(object).where(values.notna(), "")
    blank = text.astype(str).str.strip().isin(["", "nan", "<NA>"]).to_numpy()
    numbers = pd.to_numeric(text.where(~blank, "0"), errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(numbers) | (numbers != np.round(numbers)) | (numbers < 0)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise CoordinateError(
            f"{source}: {int(bad.sum())} row(s) whose round is not a whole number >= 0 "
            f"(first at row {first}: {values.iloc[first]!r})"
        )
    return numbers.astype(np.int64)


def check_bounds(
    df: pd.DataFrame,
    shapes: Mapping[str, tuple[int, int]],
    source: str = "pick table",
    on_error: str = "raise",
) -> pd.DataFrame:
    """Check picks against micrograph shapes ``{name: (height, width)}``.

    A pick is in bounds when ``0 <= x < width`` and ``0 <= y < height`` (centres,
    original pixels). Picks on micrographs that are not in ``shapes`` are unknown.
    ``on_error="raise"`` raises :class:`CoordinateError` naming ``source``, the
    micrograph and the count; ``on_error="drop"`` returns the table without the
    offending rows and records what it dropped in ``df.attrs["skipped"]``
    (a list of human-readable lines) so the caller can report it.
    """
    if on_error not in ("raise", "drop"):
        raise ValueError(f"on_error must be 'raise' or 'drop', not {on_error!r}")
    keep = np.ones(len(df), dtype=bool)
    problems: list[str] = []
    for name, idx in df.groupby("micrograph", sort=False).groups.items():
        idx = np.asarray([df.index.get_loc(i) for i in idx])
        if name not in shapes:
            keep[idx] = False
            problems.append(f"{len(idx)} pick(s) on unknown micrograph {name!r}")
            continue
        h, w = shapes[name]
        xs = df["x"].to_numpy()[idx]
        ys = df["y"].to_numpy()[idx]
        outside = (xs < 0) | (xs >= w) | (ys < 0) | (ys >= h)
        if outside.any():
            keep[idx[outside]] = False
            problems.append(
                f"{int(outside.sum())} pick(s) outside micrograph {name!r} ({w} x {h} px)"
            )
    if problems and on_error == "raise":
        raise CoordinateError(f"{source}: " + "; ".join(problems))
    out = df[keep].reset_index(drop=True)
    out.attrs["skipped"] = [f"{source}: {p}" for p in problems]
    return out


def positive_picks(df: pd.DataFrame) -> pd.DataFrame:
    """Rows whose status counts as a particle label (accepted, moved, added, imported)."""
    return df[df["status"].isin(POSITIVE_STATUSES)].reset_index(drop=True)


def picks_by_micrograph(df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Split a pick table into ``{micrograph name: rows}`` in order of first appearance."""
    return {str(k): g.reset_index(drop=True) for k, g in df.groupby("micrograph", sort=False)}
