"""RELION STAR coordinates (read with ``starfile``; centres, y = array row, no flip).

What is read (chosen from the file's content, so one ``star`` format covers all):

- a per-micrograph pick file: one loop with ``_rlnCoordinateX/Y`` (and optionally
  ``_rlnAutopickFigureOfMerit``); the micrograph name is the file stem with a
  trailing ``_autopick`` / ``_manualpick`` removed (RELION's own file names);
- a multi-micrograph STAR: a loop that also has ``_rlnMicrographName`` (a path;
  the name is its file name without extension);
- a RELION 4/5 coordinate index: block ``data_coordinate_files`` with
  ``_rlnMicrographName`` and ``_rlnMicrographCoordinates`` (paths relative to the
  RELION project folder); every referenced pick file is read. A relative path is
  looked up from the index's folder, then each folder above it, then the
  current folder;
- a RELION 3.1+ particle STAR: ``data_optics`` + ``data_particles`` joined by
  ``_rlnOpticsGroup``; the diameter defaults to the box ``_rlnImageSize`` scaled by
  ``_rlnImagePixelSize / _rlnMicrographPixelSize``. Origin offsets
  (``_rlnOriginX/YAngst``) are not applied: coordinates are read as stored.

The figure of merit becomes the confidence when it lies in [0, 1] (else NaN,
e.g. RELION's -999 for manual picks). STAR stores no particle diameter for picks:
pass ``diameter=`` (``--diameter``).

Writing: ``star`` = one multi-micrograph file (block ``data_particles`` with
``_rlnMicrographName`` = prefix + name + suffix, ``_rlnCoordinateX/Y``, the figure
of merit when any confidence is known, NaN as -999; with ``pixel_size`` a RELION
3.1 ``data_optics`` block is added). This is also the file cryoSPARC's
"Import Particle Stack"/STAR import accepts: choose ``suffix`` so the names equal
the micrograph files you imported. ``relion`` = a folder of per-micrograph pick
files ``<name><file_suffix>.star`` plus the index ``autopick.star``
(``data_coordinate_files``) whose ``_rlnMicrographCoordinates`` are
``<folder name>/<file>``, i.e. relative to the folder's parent (put the folder in
the RELION project folder).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ...errors import CoordinateError
from ._common import (
    WriteOptions,
    check_name_tokens,
    confidence_to_fom,
    empty_raw,
    fom_to_confidence,
    loop_block,
    name_from_path,
    numeric,
    raw_frame,
    read_star,
    require_columns,
    safe_file_name,
    strip_relion_suffix,
    write_star,
)

EXTENSIONS = (".star",)
PER_MICROGRAPH = True
INDEX_BLOCK = "coordinate_files"
INDEX_NAME = "autopick.star"
#: Micrograph names are whitespace-separated tokens here (see check_name_tokens).
NAMES_IN_TEXT = "a STAR file"

#: RELION optics defaults used when writing particle STAR files.
DEFAULT_VOLTAGE = 300.0
DEFAULT_CS = 2.7
DEFAULT_AMPLITUDE_CONTRAST = 0.1


def is_index(path: Path) -> bool:
    """True when ``path`` is a RELION 4/5 coordinate index (has data_coordinate_files)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return any(line.strip() == f"data_{INDEX_BLOCK}" for line in fh)
    except OSError:
        return False


def _confidence(df: pd.DataFrame):
    if "rlnAutopickFigureOfMerit" in df.columns:
        return fom_to_confidence(numeric(df, "rlnAutopickFigureOfMerit"))
    return np.nan


def _coordinate_block(blocks: dict, path: Path) -> pd.DataFrame | None:
    """Every block with ``_rlnCoordinateX`` concatenated (None when there is none).

    RELION writes one block per pick file, but a file merged by hand or by a
    script may hold several; all of them are read. Blocks that name micrographs
    and blocks that do not cannot be mixed (the unnamed ones would be given the
    file's name).
    """
    found = [
        df for name in blocks if "rlnCoordinateX" in (df := loop_block(blocks, name, path)).columns
    ]
    if not found:
        return None
    if len(found) > 1:
        named = {"rlnMicrographName" in df.columns for df in found}
        if len(named) > 1:
            raise CoordinateError(
                f"{path}: some coordinate blocks have _rlnMicrographName and some do not; "
                "cannot tell which micrograph the others belong to"
            )
    return pd.concat(found, ignore_index=True) if len(found) > 1 else found[0]


def _resolve(index: Path, rel: str) -> Path | None:
    rel_path = Path(rel)
    if rel_path.is_absolute():
        return rel_path if rel_path.exists() else None
    for base in (index.parent, *index.parent.resolve().parents, Path.cwd()):
        if (base / rel_path).exists():
            return base / rel_path
    return None


def _read_index(blocks: dict, path: Path) -> pd.DataFrame:
    df = loop_block(blocks, INDEX_BLOCK, path)
    if len(df) == 0:
        return empty_raw()
    require_columns(
        df, ("rlnMicrographName", "rlnMicrographCoordinates"), path, f"data_{INDEX_BLOCK}"
    )
    frames = []
    for mic, rel in zip(df["rlnMicrographName"], df["rlnMicrographCoordinates"], strict=True):
        target = _resolve(path, str(rel))
        if target is None:
            raise CoordinateError(
                f"{path}: pick file {rel!r} of micrograph {mic!r} not found "
                "(looked relative to the index's folder, its parents and the current folder)"
            )
        raw = _read_pick_file(read_star(target), target)
        raw["micrograph"] = name_from_path(str(mic))
        frames.append(raw)
    return pd.concat(frames, ignore_index=True) if frames else empty_raw()


def _read_particles(blocks: dict, path: Path) -> pd.DataFrame:
    particles = loop_block(blocks, "particles", path)
    optics = loop_block(blocks, "optics", path)
    if len(particles) == 0:
        return empty_raw()
    require_columns(
        particles, ("rlnMicrographName", "rlnCoordinateX", "rlnCoordinateY"), path, "data_particles"
    )
    diameter = np.nan
    if "rlnOpticsGroup" in particles.columns and "rlnOpticsGroup" in optics.columns:
        merged = particles.merge(optics, on="rlnOpticsGroup", how="left", suffixes=("", "_optics"))
        if len(merged) != len(particles):
            raise CoordinateError(f"{path}: rlnOpticsGroup values repeat in data_optics")
        if "rlnImageSize" in merged.columns:
            diameter = numeric(merged, "rlnImageSize")
            if "rlnImagePixelSize" in merged.columns and "rlnMicrographPixelSize" in merged.columns:
                diameter = (
                    diameter
                    * numeric(merged, "rlnImagePixelSize")
                    / numeric(merged, "rlnMicrographPixelSize")
                )
        particles = merged
    names = [name_from_path(m) for m in particles["rlnMicrographName"]]
    return raw_frame(
        names,
        numeric(particles, "rlnCoordinateX"),
        numeric(particles, "rlnCoordinateY"),
        diameter,
        _confidence(particles),
    )


def _read_pick_file(blocks: dict, path: Path) -> pd.DataFrame:
    df = _coordinate_block(blocks, path)
    if df is None:
        if not blocks or all(len(loop_block(blocks, b, path)) == 0 for b in blocks):
            return empty_raw()
        raise CoordinateError(
            f"{path}: no block with _rlnCoordinateX / _rlnCoordinateY "
            f"(found {', '.join('data_' + b for b in blocks)})"
        )
    require_columns(df, ("rlnCoordinateY",), path, "the coordinate block")
    if "rlnMicrographName" in df.columns:
        names = [name_from_path(m) for m in df["rlnMicrographName"]]
    else:
        names = strip_relion_suffix(path.stem)
    return raw_frame(
        names, numeric(df, "rlnCoordinateX"), numeric(df, "rlnCoordinateY"), np.nan, _confidence(df)
    )


def read(path: Path) -> pd.DataFrame:
    """Centres (and figures of merit) from any of the STAR kinds listed in the module doc."""
    blocks = read_star(path)
    if INDEX_BLOCK in blocks:
        return _read_index(blocks, path)
    if "optics" in blocks and "particles" in blocks:
        return _read_particles(blocks, path)
    return _read_pick_file(blocks, path)


def files_in(folder: Path) -> list[Path]:
    """STAR files to read from a folder: the index files if any, else every ``.star``."""
    files = sorted(p for p in folder.glob("*.star") if not p.name.startswith("."))
    indices = [p for p in files if is_index(p)]
    return indices or files


def optics_block(
    pixel_size: float, image_size: int | None = None, image_pixel_size: float | None = None
) -> pd.DataFrame:
    """A one-group RELION 3.1 ``data_optics`` table (300 kV, Cs 2.7 mm, 0.1 amplitude contrast)."""
    cols = {
        "rlnOpticsGroupName": ["opticsGroup1"],
        "rlnOpticsGroup": [1],
        "rlnMicrographPixelSize": [float(pixel_size)],
        "rlnVoltage": [DEFAULT_VOLTAGE],
        "rlnSphericalAberration": [DEFAULT_CS],
        "rlnAmplitudeContrast": [DEFAULT_AMPLITUDE_CONTRAST],
    }
    if image_size is not None:
        cols["rlnImagePixelSize"] = [float(image_pixel_size or pixel_size)]
        cols["rlnImageSize"] = [int(image_size)]
        cols["rlnImageDimensionality"] = [2]
    return pd.DataFrame(cols)


def _coordinates(rows: pd.DataFrame, with_fom: bool) -> dict:
    cols = {
        "rlnCoordinateX": rows["x"].to_numpy(dtype=np.float64),
        "rlnCoordinateY": rows["y"].to_numpy(dtype=np.float64),
    }
    if with_fom:
        cols["rlnAutopickFigureOfMerit"] = confidence_to_fom(rows["confidence"].to_numpy())
    return cols


def write_table(picks: pd.DataFrame, path: Path, opts: WriteOptions) -> list[Path]:
    """One multi-micrograph STAR (``data_particles``; ``data_optics`` when pixel_size is set)."""
    with_fom = bool(np.isfinite(picks["confidence"].to_numpy()).any())
    cols = {"rlnMicrographName": [opts.full_name(n) for n in picks["micrograph"]]}
    check_name_tokens(cols["rlnMicrographName"], path, NAMES_IN_TEXT)
    cols.update(_coordinates(picks, with_fom))
    blocks = {}
    if opts.pixel_size:
        blocks["optics"] = optics_block(opts.pixel_size)
        cols["rlnOpticsGroup"] = np.ones(len(picks), dtype=np.int64)
    blocks["particles"] = pd.DataFrame(cols)
    return [write_star(blocks, path)]


def write_relion(picks: pd.DataFrame, folder: Path, opts: WriteOptions, groups) -> list[Path]:
    """Per-micrograph pick STARs ``<name><file_suffix>.star`` plus the index ``autopick.star``."""
    if f"{Path(INDEX_NAME).stem}" in {f"{n}{opts.file_suffix}" for n in groups}:
        raise CoordinateError(
            f"{folder}: a micrograph's pick file would overwrite the index {INDEX_NAME}; "
            "choose another file suffix"
        )
    with_fom = bool(np.isfinite(picks["confidence"].to_numpy()).any())
    base = folder.resolve().name
    out, names, rels = [], [], []
    for name, rows in groups.items():
        target = folder / safe_file_name(f"{name}{opts.file_suffix}", ".star", folder, name)
        out.append(write_star({"": pd.DataFrame(_coordinates(rows, with_fom))}, target))
        names.append(opts.full_name(name))
        rels.append(os.path.join(base, target.name).replace(os.sep, "/"))
    check_name_tokens(names, folder / INDEX_NAME, NAMES_IN_TEXT)
    index = pd.DataFrame(
        {"rlnMicrographName": names, "rlnMicrographCoordinates": rels}, dtype=object
    )
    out.append(write_star({INDEX_BLOCK: index}, folder / INDEX_NAME))
    return out
