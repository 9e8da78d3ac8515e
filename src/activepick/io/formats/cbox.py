"""crYOLO ``.cbox``: a STAR file, block ``data_cryolo``, one file per micrograph.

Columns ``_CoordinateX _CoordinateY _CoordinateZ _Width _Height _Depth _EstWidth
_EstHeight _Confidence _NumBoxes _Angle``; ``<NA>`` marks a missing value. As in
``.box``, X / Y are the box's lower-left corner (smallest column / row), so the
centre is ``(X + Width / 2, Y + Height / 2)``; the diameter is ``Width`` and the
confidence ``Confidence``. crYOLO also writes a ``data_global`` block with
``_cbox_format_version``; we write it too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ...errors import CoordinateError
from ._common import (
    WriteOptions,
    empty_raw,
    loop_block,
    numeric,
    per_micrograph_targets,
    raw_frame,
    read_star,
    require_columns,
    write_star,
)

EXTENSIONS = (".cbox",)
PER_MICROGRAPH = True
CBOX_COLUMNS = (
    "CoordinateX",
    "CoordinateY",
    "CoordinateZ",
    "Width",
    "Height",
    "Depth",
    "EstWidth",
    "EstHeight",
    "Confidence",
    "NumBoxes",
    "Angle",
)
CBOX_VERSION = "1.0"


def read(path: Path) -> pd.DataFrame:
    """Centres and confidences from one ``.cbox``; the micrograph name is the file stem."""
    blocks = read_star(path)
    if not blocks:
        return empty_raw()
    if "cryolo" not in blocks:
        raise CoordinateError(
            f"{path}: no data_cryolo block (found {', '.join('data_' + b for b in blocks)})"
        )
    df = loop_block(blocks, "cryolo", path)
    if len(df) == 0:
        return empty_raw()
    require_columns(df, ("CoordinateX", "CoordinateY", "Width", "Height"), path, "data_cryolo")
    w, h = numeric(df, "Width"), numeric(df, "Height")
    conf = numeric(df, "Confidence") if "Confidence" in df.columns else np.nan
    return raw_frame(
        path.stem, numeric(df, "CoordinateX") + w / 2, numeric(df, "CoordinateY") + h / 2, w, conf
    )


def cbox_blocks(rows: pd.DataFrame) -> dict:
    """The STAR blocks of a ``.cbox`` for rows of one micrograph."""
    d = rows["diameter"].to_numpy(dtype=np.float64)
    na = np.full(len(rows), np.nan)
    table = pd.DataFrame(
        {
            "CoordinateX": rows["x"].to_numpy(dtype=np.float64) - d / 2,
            "CoordinateY": rows["y"].to_numpy(dtype=np.float64) - d / 2,
            "CoordinateZ": na,
            "Width": d,
            "Height": d,
            "Depth": na,
            "EstWidth": na,
            "EstHeight": na,
            "Confidence": rows["confidence"].to_numpy(dtype=np.float64),
            "NumBoxes": na,
            "Angle": na,
        },
        columns=list(CBOX_COLUMNS),
    )
    return {"global": {"cbox_format_version": CBOX_VERSION}, "cryolo": table}


def write(picks: pd.DataFrame, path: Path, opts: WriteOptions, groups) -> list[Path]:
    """Write ``<name><file_suffix>.cbox`` per micrograph into folder ``path`` (or one file)."""
    targets = per_micrograph_targets(
        picks, path, groups, extensions=EXTENSIONS, what=".cbox file", file_suffix=opts.file_suffix
    )
    return [write_star(cbox_blocks(rows), target) for target, rows in targets]
