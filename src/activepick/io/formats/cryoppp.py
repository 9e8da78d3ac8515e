"""CryoPPP ground truth: one CSV per micrograph, ``X-Coordinate,Y-Coordinate,Diameter``.

Centres in pixels (y = array row, no flip), a diameter per row (224 px for
EMPIAR-10028). The micrograph name is the CSV's file name without extension;
other columns (CryoPPP files carry angles, defocus ...) are ignored. Reading a
folder reads every ``.csv`` in it. Writing makes ``<name><file_suffix>.csv`` per
micrograph in the folder given.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import atomic_open
from ._common import (
    WriteOptions,
    empty_raw,
    numeric,
    per_micrograph_targets,
    raw_frame,
    read_table,
    require_columns,
)

EXTENSIONS = (".csv",)
PER_MICROGRAPH = True
COLUMNS = ("X-Coordinate", "Y-Coordinate", "Diameter")


def is_cryoppp(path: Path) -> bool:
    """True when the first line of ``path`` names the CryoPPP coordinate columns."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            header = fh.readline()
    except OSError:
        return False
    return "X-Coordinate" in header and "Y-Coordinate" in header


def read(path: Path) -> pd.DataFrame:
    """Centres and diameters from one CryoPPP CSV; the name is the file stem."""
    df = read_table(path, "CryoPPP CSV", sep=",")
    if df.shape[1] == 0:
        return empty_raw()
    require_columns(df, COLUMNS[:2], path, "CryoPPP CSV")
    diameter = numeric(df, "Diameter") if "Diameter" in df.columns else np.nan
    return raw_frame(path.stem, numeric(df, "X-Coordinate"), numeric(df, "Y-Coordinate"), diameter)


def write(picks: pd.DataFrame, path: Path, opts: WriteOptions, groups) -> list[Path]:
    """``<name><file_suffix>.csv`` per micrograph into folder ``path`` (or one ``.csv``)."""
    items = per_micrograph_targets(
        picks, path, groups, extensions=(".csv",), what="CryoPPP CSV", file_suffix=opts.file_suffix
    )
    out = []
    for target, rows in items:
        table = pd.DataFrame(
            {
                "X-Coordinate": rows["x"].to_numpy(dtype=np.float64),
                "Y-Coordinate": rows["y"].to_numpy(dtype=np.float64),
                "Diameter": rows["diameter"].to_numpy(dtype=np.float64),
            }
        )
        with atomic_open(target, "w", encoding="utf-8", newline="") as fh:
            table.to_csv(fh, index=False, float_format="%.10g")
        out.append(target)
    return out
