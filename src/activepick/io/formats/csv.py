"""Our own CSV: the pick table's columns (``constants.PICK_COLUMNS``) with a header.

``micrograph,x,y,diameter,confidence,status,round,time``; centres in pixels of the
original micrograph (x = column, y = row, origin top-left). Status, round and
time are kept on read (unlike the other formats, which give status ``imported``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ...constants import PICK_COLUMNS
from ..atomic import atomic_open
from ._common import WriteOptions, read_table, require_columns

EXTENSIONS = (".csv",)
PER_MICROGRAPH = False
KEEPS_STATUS = True


def read(path: Path) -> pd.DataFrame:
    """The CSV as a frame (numbers still text; checked by ``read_coordinates``)."""
    df = read_table(path, "pick CSV", sep=",", numeric=("x", "y", "diameter", "confidence"))
    if df.shape[1] == 0:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in PICK_COLUMNS})
    require_columns(df, ("micrograph", "x", "y"), path, "pick CSV")
    for col in ("x", "y", "diameter", "confidence"):
        if col in df.columns:  # blanks and non-numbers -> NaN, reported by read_coordinates
            df[col] = pd.to_numeric(df[col], errors="coerce").astype(np.float64)
    for col in ("diameter", "confidence"):
        if col not in df.columns:
            df[col] = np.nan
    return df


def write(picks: pd.DataFrame, path: Path, opts: WriteOptions) -> list[Path]:
    """One CSV with the pick table's columns."""
    with atomic_open(path, "w", encoding="utf-8", newline="") as fh:
        picks[list(PICK_COLUMNS)].to_csv(fh, index=False, float_format="%.10g")
    return [path]
