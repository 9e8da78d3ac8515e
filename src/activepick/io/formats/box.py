"""EMAN ``.box``: one line ``x y w h`` per pick, no header, one file per micrograph.

(x, y) is the box's lower-left corner in the EMAN sense, i.e. the corner with the
smallest column and row of the stored array, so the centre is
``(x + w / 2, y + h / 2)`` with y = array row (no flip for MRC). The diameter is
read from the box width ``w``. Extra columns (EMAN1 helix flags) are ignored.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ...errors import CoordinateError
from ..atomic import atomic_write_text
from ._common import (
    WriteOptions,
    empty_raw,
    fmt_float,
    per_micrograph_targets,
    raw_frame,
    read_table,
)

EXTENSIONS = (".box",)
PER_MICROGRAPH = True


def read(path: Path) -> pd.DataFrame:
    """Centres from one ``.box`` file; the micrograph name is the file stem."""
    df = read_table(path, ".box file", sep=None, header=False, comment="#")
    if df.shape[1] == 0:
        return empty_raw()
    if df.shape[1] < 4:
        raise CoordinateError(
            f"{path}: .box lines need 4 columns (x y width height), found {df.shape[1]}"
        )
    x0, y0, w, h = (pd.to_numeric(df[i], errors="coerce") for i in range(4))
    return raw_frame(path.stem, x0 + w / 2, y0 + h / 2, w)


def box_lines(picks: pd.DataFrame) -> str:
    """The ``.box`` text for rows of one micrograph (tab-separated, lower-left corners)."""
    lines = []
    for x, y, d in zip(picks["x"], picks["y"], picks["diameter"], strict=True):
        lines.append("\t".join(fmt_float(v) for v in (x - d / 2, y - d / 2, d, d)))
    return "".join(line + "\n" for line in lines)


def write(picks: pd.DataFrame, path: Path, opts: WriteOptions, groups) -> list[Path]:
    """Write ``groups`` ({name: rows}) as ``<name><file_suffix>.box`` files (or one file)."""
    targets = per_micrograph_targets(
        picks, path, groups, extensions=EXTENSIONS, what=".box file", file_suffix=opts.file_suffix
    )
    for target, rows in targets:
        atomic_write_text(target, box_lines(rows))
    return [target for target, _ in targets]
