"""Topaz picks: tab-separated ``image_name x_coord y_coord score`` with a header line.

``image_name`` is the micrograph file name without extension; x / y are centres
in pixels (y = array row, no flip); ``score`` is a raw logit, so
confidence = sigmoid(score) on read and score = logit(confidence) on write
(confidence clipped to [1e-6, 1 - 1e-6]). A file without a score column (Topaz
training labels) reads with NaN confidence; on write the score column is left
out when no pick has a confidence (rows without one get an empty score).
Topaz stores no diameter: pass ``diameter=``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ...errors import CoordinateError
from ..atomic import atomic_open
from ._common import (
    WriteOptions,
    check_name_tokens,
    empty_raw,
    logit,
    numeric,
    raw_frame,
    read_table,
    require_columns,
    sigmoid,
)

EXTENSIONS = (".txt", ".tsv")
PER_MICROGRAPH = False
COLUMNS = ("image_name", "x_coord", "y_coord", "score")
#: Micrograph names are whitespace-separated tokens here (see check_name_tokens).
NAMES_IN_TEXT = "a Topaz file"


def read(path: Path) -> pd.DataFrame:
    """Centres and sigmoid(score) from a Topaz coordinate file."""
    df = read_table(path, "Topaz file", sep="\t")
    if df.shape[1] == 0:
        return empty_raw()
    require_columns(df, COLUMNS[:3], path, "Topaz file (tab-separated with a header)")
    conf = np.nan
    if "score" in df.columns:
        text = df["score"].str.strip()
        blank = text.str.lower().isin(["", "nan"])
        score = pd.to_numeric(text.where(~blank, "nan"), errors="coerce").to_numpy(np.float64)
        bad = ~np.isfinite(score) & ~blank.to_numpy()
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise CoordinateError(
                f"{path}: non-numeric score {df['score'].iloc[first]!r} in row {first}"
            )
        conf = sigmoid(score)
    return raw_frame(
        df["image_name"].tolist(), numeric(df, "x_coord"), numeric(df, "y_coord"), np.nan, conf
    )


def write(picks: pd.DataFrame, path: Path, opts: WriteOptions) -> list[Path]:
    """One tab-separated Topaz file with the micrograph names as ``image_name``."""
    check_name_tokens(picks["micrograph"], path, NAMES_IN_TEXT)
    conf = picks["confidence"].to_numpy(dtype=np.float64)
    out = pd.DataFrame(
        {
            "image_name": picks["micrograph"].astype(str),
            "x_coord": picks["x"].to_numpy(dtype=np.float64),
            "y_coord": picks["y"].to_numpy(dtype=np.float64),
        }
    )
    if np.isfinite(conf).any():
        out["score"] = np.where(np.isfinite(conf), logit(np.nan_to_num(conf, nan=0.5)), np.nan)
    with atomic_open(path, "w", encoding="utf-8", newline="") as fh:
        out.to_csv(fh, sep="\t", index=False, float_format="%.10g")
    return [path]
