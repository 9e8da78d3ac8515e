"""Coordinate formats behind one pair of functions (SPEC section 7).

:func:`read_coordinates` turns any supported file (or folder of files) into a
validated pick table; :func:`write_coordinates` writes a pick table in any
format. Conventions of each format are in its module and in ``docs/formats.md``.
Inside the project every centre is in pixels of the original micrograph,
x = column, y = row, origin the top-left array element (no flip for MRC).

======== ============ ============================================================
format   extension    what
======== ============ ============================================================
star     .star        RELION STAR: pick file, multi-micrograph, 4/5 index, 3.1 particles
relion   folder       write only: per-micrograph pick STARs + ``autopick.star`` index
cbox     .cbox        crYOLO (lower-left corners, confidence)
box      .box         EMAN (lower-left corners)
cs       .cs          cryoSPARC locations (fractions of the micrograph shape)
topaz    .txt .tsv    Topaz (score = logit of the confidence)
cryoppp  .csv         CryoPPP ground truth, one CSV per micrograph
csv      .csv         our pick table columns
======== ============ ============================================================
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd

from ...constants import MAX_COORDINATE, STATUS_IMPORTED
from ...errors import CoordinateError
from ..picks import check_bounds, empty_picks, validate_picks
from . import box, cbox, cryoppp, cryosparc, star, topaz
from . import csv as csv_format
from ._common import (
    WriteOptions,
    check_name_tokens,
    per_micrograph_groups,
    remove_stale_files,
)

#: Format name -> module (``read(path)``, ``write(...)``, ``EXTENSIONS``, ``PER_MICROGRAPH``).
FORMATS: dict[str, ModuleType] = {
    "star": star,
    "relion": star,
    "cbox": cbox,
    "box": box,
    "cs": cryosparc,
    "topaz": topaz,
    "cryoppp": cryoppp,
    "csv": csv_format,
}
_BY_EXTENSION = {
    ".star": "star",
    ".cbox": "cbox",
    ".box": "box",
    ".cs": "cs",
    ".txt": "topaz",
    ".tsv": "topaz",
}
ON_ERROR = ("raise", "skip")


def _format_module(fmt: str) -> ModuleType:
    if fmt not in FORMATS:
        raise CoordinateError(f"unknown coordinate format {fmt!r} (known: {', '.join(FORMATS)})")
    return FORMATS[fmt]


def _guess_file(path: Path) -> str | None:
    ext = path.suffix.lower()
    if ext == ".csv":
        return "cryoppp" if cryoppp.is_cryoppp(path) else "csv"
    return _BY_EXTENSION.get(ext)


def guess_format(path: str | os.PathLike, *, format_option: str = "fmt=") -> str:
    """The format of a coordinate file (by extension; ``.csv`` by its header) or folder.

    For a folder, the most common known extension among its files decides.
    Raises :class:`CoordinateError` when nothing fits, naming ``format_option`` (how the
    caller's user names a format: ``fmt=``, or a command's flag) as the way out.
    """
    path = Path(path)
    if path.is_dir():
        found = Counter(
            g
            for p in sorted(path.iterdir())
            if p.is_file() and not p.name.startswith(".") and (g := _guess_file(p)) is not None
        )
        if not found:
            raise CoordinateError(f"{path}: no coordinate files of a known format in this folder")
        return found.most_common(1)[0][0]
    fmt = _guess_file(path)
    if fmt is None:
        raise CoordinateError(
            f"{path}: cannot tell the coordinate format from the extension {path.suffix!r}; "
            f"give {format_option} (one of {', '.join(FORMATS)})"
        )
    return fmt


def _files_in(folder: Path, fmt: str) -> list[Path]:
    module = FORMATS[fmt]
    if module is star:
        files = star.files_in(folder)
    else:
        files = sorted(
            p
            for p in folder.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in module.EXTENSIONS
        )
        if fmt in ("csv", "cryoppp"):
            files = [p for p in files if cryoppp.is_cryoppp(p) == (fmt == "cryoppp")]
    if not files:
        raise CoordinateError(
            f"{folder}: no {fmt} files ({', '.join(module.EXTENSIONS)}) in this folder"
        )
    return files


def _bad_rows(df: pd.DataFrame, source: Path, on_error: str, skipped: list[str]) -> pd.DataFrame:
    """Drop (or raise on) rows with missing / non-numeric / non-finite / negative values,
    values beyond :data:`~activepick.constants.MAX_COORDINATE`, or an empty micrograph name.

    A centre left of or above the image (x < 0 or y < 0) is outside every
    micrograph, so it is refused even when no micrograph shape is known (with
    shapes, ``check_bounds`` also checks the far edges). Rows are 0-based.
    """
    problems: list[str] = []
    bad = np.zeros(len(df), dtype=bool)

    def flag(rows: np.ndarray, what: Callable[[int], str]) -> None:
        """Mark ``rows`` (not marked yet) bad; ``what(first row)`` describes them."""
        nonlocal bad
        rows = rows & ~bad
        if rows.any():
            problems.append(f"{int(rows.sum())} row(s) with {what(int(np.flatnonzero(rows)[0]))}")
            bad |= rows

    names = df["micrograph"].astype(str).str.strip().to_numpy()
    flag((names == "") | (names == "nan"), lambda i: f"an empty micrograph name (first: row {i})")
    values = {col: df[col].to_numpy(dtype=np.float64) for col in ("x", "y", "diameter")}
    for col, v in values.items():
        diameter = col == "diameter"
        what = "missing, NaN or non-numeric" + (" or non-positive" if diameter else "")
        flag(
            ~np.isfinite(v) | ((v <= 0) if diameter else False),
            lambda i, what=what, col=col: f"{what} {col} (first: row {i})",
        )
    for col, v in values.items():
        flag(
            np.abs(v) > MAX_COORDINATE,
            lambda i, col=col, v=v: (
                f"{col} beyond any micrograph (first: row {i}, {col} = "
                f"{v[i]:g}; |{col}| <= {MAX_COORDINATE:g} px)"
            ),
        )
    for col in ("x", "y"):
        flag(
            values[col] < 0,
            lambda i, col=col: (
                f"a negative centre {col} (first: row {i}, {col} = "
                f"{values[col][i]:g}), outside any micrograph"
            ),
        )
    conf = df["confidence"].to_numpy(dtype=np.float64)
    flag((conf < 0) | (conf > 1) | np.isinf(conf), lambda i: "a confidence outside [0, 1]")
    if not problems:
        return df
    if on_error == "raise":
        raise CoordinateError(f"{source}: " + "; ".join(problems))
    skipped.extend(f"{source}: skipped {p}" for p in problems)
    return df[~bad].reset_index(drop=True)


def _read_one(
    path: Path,
    fmt: str,
    diameter: float | None,
    micrograph: str | None,
    on_error: str,
    skipped: list[str],
) -> pd.DataFrame:
    module = FORMATS[fmt]
    if not path.is_file():
        raise CoordinateError(f"{path}: no such file")
    raw = module.read(path)
    if len(raw) == 0:
        return raw
    if micrograph is not None:
        raw["micrograph"] = micrograph
    if diameter is not None:
        raw["diameter"] = float(diameter)
    elif np.isnan(raw["diameter"].to_numpy(dtype=np.float64)).all():
        raise CoordinateError(
            f"{path}: the {fmt} format stores no particle diameter; give diameter= (--diameter PX)"
        )
    return _bad_rows(raw, path, on_error, skipped)


def flip_y_axis(
    picks: pd.DataFrame, shapes: Mapping[str, tuple[int, int]], source: str = "pick table"
) -> pd.DataFrame:
    """Mirror y for bottom-left-origin data: ``y -> H - 1 - y`` (its own inverse).

    With pixel centres at integer positions (the pick table's convention) this
    maps row 0 onto row ``H - 1`` and keeps ``0 <= y <= H - 1`` in bounds. Needs
    the height of every micrograph in ``shapes`` ({name: (H, W)}).
    """
    missing = sorted(set(picks["micrograph"]) - set(shapes))
    if missing:
        raise CoordinateError(
            f"{source}: flipping y needs the height of micrograph(s) {missing[:5]}"
        )
    heights = picks["micrograph"].map(lambda n: shapes[n][0]).to_numpy(dtype=np.float64)
    out = picks.copy()
    out["y"] = heights - 1.0 - out["y"].to_numpy(dtype=np.float64)
    return out


def read_coordinates(
    path: str | os.PathLike,
    fmt: str | None = None,
    *,
    diameter: float | None = None,
    micrograph: str | None = None,
    shapes: Mapping[str, tuple[int, int]] | None = None,
    flip_y: bool = False,
    on_error: str = "raise",
    format_option: str = "fmt=",
) -> pd.DataFrame:
    """Read a coordinate file or a folder of them into a validated pick table.

    ``fmt``: one of :data:`FORMATS` (``relion`` reads like ``star``), else
    guessed (:func:`guess_format`). A folder reads every file of the format (for
    STAR, only the RELION index files when the folder has any). ``diameter`` (px)
    is required by formats without one (STAR picks, Topaz, cryoSPARC) and
    overrides the stored one otherwise. ``micrograph`` replaces the name of a
    single per-micrograph file (default: its file stem). ``shapes``
    ({name: (H, W)}, original pixels) enables bounds checks (picks on unknown
    micrographs or outside the image are errors) and is needed by ``flip_y``
    (``y -> H - 1 - y``, for TIFF-origin data with the origin at the bottom).

    Bad rows (missing columns, NaN, non-numbers, out of bounds, unknown
    micrograph) raise :class:`CoordinateError` naming the file; with
    ``on_error="skip"`` they are dropped and described in ``df.attrs["skipped"]``.
    Returns status ``imported``, round 0 (our CSV keeps its own status / round /
    time), confidence where the format carries one, else NaN. ``format_option`` names
    the way to give the format in the error when it cannot be guessed (a CLI's flag).
    """
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, not {on_error!r}")
    path = Path(path)
    if not path.exists():
        raise CoordinateError(f"{path}: no such file or folder")
    fmt = "star" if fmt == "relion" else (fmt or guess_format(path, format_option=format_option))
    _format_module(fmt)
    if path.is_dir():
        if micrograph is not None:
            raise CoordinateError(
                f"{path}: micrograph= names a single file's micrograph, not a folder's"
            )
        files = _files_in(path, fmt)
    else:
        files = [path]
    skipped: list[str] = []
    frames = [_read_one(f, fmt, diameter, micrograph, on_error, skipped) for f in files]
    frames = [f for f in frames if len(f)]
    if not frames:
        picks = empty_picks()
    else:
        table = pd.concat(frames, ignore_index=True)
        if not getattr(FORMATS[fmt], "KEEPS_STATUS", False):
            table = table.assign(status=STATUS_IMPORTED, round=0, time="")
        picks = validate_picks(table, source=str(path))
    if flip_y:
        if shapes is None:
            raise CoordinateError(
                f"{path}: flip_y needs the micrograph shapes (give --micrographs)"
            )
        picks = flip_y_axis(picks, shapes, str(path)) if len(picks) else picks
    if shapes is not None and len(picks):
        picks = check_bounds(
            picks, shapes, str(path), on_error="drop" if on_error == "skip" else "raise"
        )
        skipped.extend(picks.attrs.get("skipped", []))
    picks = picks.reset_index(drop=True)
    picks.attrs["skipped"] = skipped
    picks.attrs["format"] = fmt
    return picks


def _write_format(path: Path, fmt: str | None, format_option: str = "fmt= / --to") -> str:
    if fmt is not None:
        _format_module(fmt)
        return fmt
    if path.suffix == "" or path.is_dir():
        return "relion"
    if path.suffix.lower() == ".csv":
        return "csv"
    guessed = _BY_EXTENSION.get(path.suffix.lower())
    if guessed is None:
        raise CoordinateError(
            f"{path}: cannot tell the format to write from {path.suffix!r}; give {format_option}"
        )
    return guessed


def write_coordinates(
    picks: pd.DataFrame,
    path: str | os.PathLike,
    fmt: str | None = None,
    *,
    shapes: Mapping[str, tuple[int, int]] | None = None,
    prefix: str = "",
    suffix: str = ".mrc",
    file_suffix: str = "",
    pixel_size: float | None = None,
    flip_y: bool = False,
) -> list[Path]:
    """Write ``picks`` (every row given; filter before) in ``fmt``; returns the files written.

    ``fmt`` from :data:`FORMATS` or from ``path``: ``.star`` one multi-micrograph
    STAR; a folder / no extension (or ``relion``) per-micrograph pick STARs plus
    the ``autopick.star`` index; ``.box`` / ``.cbox`` one file for a single
    micrograph, else (a folder) ``<name><file_suffix>.box|.cbox`` each;
    ``.cs`` cryoSPARC (needs ``shapes``); ``.txt`` Topaz; ``.csv`` ours
    (``cryoppp`` only by name: a folder of per-micrograph CSVs).

    Names other tools see (``rlnMicrographName``, the ``.cs`` path) are
    ``prefix + name + suffix``, e.g. ``prefix="MotionCorr/job003/Movies/"``.
    ``shapes`` ({name: (H, W)}) checks bounds and makes per-micrograph formats
    write a file for every micrograph in it, empty ones included (crYOLO and
    RELION treat those as micrographs without particles). ``pixel_size`` (Å/px)
    adds a RELION 3.1 optics block to ``.star`` and goes into ``.cs``.
    ``flip_y`` writes ``y -> H - 1 - y`` (needs ``shapes``). Every file is
    written atomically.

    A per-micrograph export into a folder replaces the folder's files of that
    format (``.box``, ``.cbox``, ``.star`` or ``.csv``): files of micrographs this
    export does not hold are removed, so reading the folder back gives exactly
    these picks (callers that must not replace a folder use
    :func:`activepick.io.atomic.refuse_existing` first, as the CLI does). A
    micrograph name that would not make a file name inside the folder (slashes,
    ``..``, empty) is refused. Existing files are replaced without asking.
    """
    path = Path(path)
    fmt = _write_format(path, fmt)
    picks = validate_picks(picks, source=f"picks written to {path}")
    if shapes is not None:
        shapes = {str(k): (int(v[0]), int(v[1])) for k, v in shapes.items()}
        if len(picks):
            check_bounds(picks, shapes, f"picks written to {path}")
    if flip_y:
        if shapes is None:
            raise CoordinateError(f"{path}: flip_y needs the micrograph shapes")
        picks = flip_y_axis(picks, shapes, str(path))
    opts = WriteOptions(
        prefix=prefix, suffix=suffix, file_suffix=file_suffix, pixel_size=pixel_size, shapes=shapes
    )
    module = FORMATS[fmt]
    _check_output_path(path)
    if fmt == "star":
        return star.write_table(picks, path, opts)
    if not module.PER_MICROGRAPH:
        return module.write(picks, path, opts)
    exts = star.EXTENSIONS if fmt == "relion" else module.EXTENSIONS
    if path.is_file() and (fmt == "relion" or path.suffix.lower() not in exts):
        raise CoordinateError(
            f"{path}: is a file; {fmt} writes one file per micrograph into a folder"
        )
    if fmt == "relion":
        written = star.write_relion(picks, path, opts, per_micrograph_groups(picks, opts))
    else:
        written = module.write(picks, path, opts, per_micrograph_groups(picks, opts))
    if path.is_dir():
        remove_stale_files(path, written, exts)
    return written


def check_writable_names(
    names, path: str | os.PathLike, fmt: str | None = None, *, format_option: str = "fmt="
) -> None:
    """Refuse micrograph ``names`` that :func:`write_coordinates` to ``path`` in ``fmt``
    could not store (whitespace in a STAR or Topaz file), or an output whose format
    cannot be told (``format_option`` names the way to give it), before any work is
    done: :class:`CoordinateError` naming the file and the first such name."""
    path = Path(path)
    what = getattr(FORMATS[_write_format(path, fmt, format_option)], "NAMES_IN_TEXT", None)
    if what is not None:
        check_name_tokens(names, path, what)


def _check_output_path(path: Path) -> None:
    """Refuse, in one line, an output whose folder cannot exist or be written."""
    for parent in (path, *path.parents):
        if parent.exists():
            if parent != path and not parent.is_dir():
                raise CoordinateError(
                    f"{path}: cannot write here, {parent} is a file, not a folder"
                )
            break


__all__ = [
    "FORMATS",
    "check_writable_names",
    "flip_y",
    "guess_format",
    "read_coordinates",
    "write_coordinates",
    "PICK_COLUMNS",
]
