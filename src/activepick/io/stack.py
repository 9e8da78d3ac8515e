"""Particle stacks: cut boxes around picks into a ``.mrcs`` plus a RELION 3.1 particle STAR.

Box placement: a pick's centre ``(x, y)`` (pixels of the original micrograph,
x = column, y = row, pixel centres at integer positions) is rounded to the
nearest pixel ``(cx, cy)`` (halves round up) and the box covers columns
``cx - B // 2 .. cx - B // 2 + B - 1`` (rows likewise), so the centre pixel sits at
index ``B // 2`` of the box, RELION's convention. Boxes that cross the
micrograph's edge are skipped and reported (``attrs["skipped"]``), never padded.

Each box is optionally contrast-inverted (``invert``: multiplied by -1) and then
normalised over the whole box to zero mean and unit variance (``normalise``;
RELION normalises on the background ring, we use the whole box - documented
difference). The stack is written through a memory map, so only one micrograph
and the output map are in memory at a time.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import Cancelled, CoordinateError
from .atomic import atomic_path
from .formats._common import write_star
from .formats.star import optics_block
from .micrograph import Micrograph, micrograph_name, read_micrograph, read_pixel_size, read_shape
from .micrograph import normalise as normalise_image
from .picks import validate_picks

#: Pixel size written when neither the caller nor any micrograph header gives one.
FALLBACK_PIXEL_SIZE = 1.0

MicrographSource = Micrograph | str | os.PathLike


def _by_name(micrographs) -> dict[str, MicrographSource]:
    if isinstance(micrographs, Mapping):
        return {str(k): v for k, v in micrographs.items()}
    out = {}
    for m in micrographs:
        out[m.name if isinstance(m, Micrograph) else micrograph_name(m)] = m
    return out


def _shape(source: MicrographSource) -> tuple[int, int]:
    return source.shape if isinstance(source, Micrograph) else read_shape(source)


def _load(source: MicrographSource) -> Micrograph:
    return source if isinstance(source, Micrograph) else read_micrograph(source)


def box_corners(x: np.ndarray, y: np.ndarray, box_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-left array index ``(col0, row0)`` of boxes of ``box_size`` centred at ``(x, y)``."""
    cx = np.floor(np.asarray(x, dtype=np.float64) + 0.5).astype(np.int64)
    cy = np.floor(np.asarray(y, dtype=np.float64) + 0.5).astype(np.int64)
    return cx - box_size // 2, cy - box_size // 2


def _plan(picks: pd.DataFrame, sources: dict, box_size: int) -> tuple[pd.DataFrame, list[str]]:
    """Rows that fit, with their box corners, and lines describing what was skipped."""
    skipped, kept = [], []
    for name, rows in picks.groupby("micrograph", sort=False):
        if name not in sources:
            skipped.append(f"{len(rows)} pick(s) on micrograph {name!r}, which was not given")
            continue
        h, w = _shape(sources[name])
        x0, y0 = box_corners(rows["x"].to_numpy(), rows["y"].to_numpy(), box_size)
        inside = (x0 >= 0) & (y0 >= 0) & (x0 + box_size <= w) & (y0 + box_size <= h)
        if (~inside).any():
            skipped.append(
                f"{int((~inside).sum())} box(es) of {box_size} px cross the edge of {name!r} ({w} x {h} px)"
            )
        kept.append(rows[inside].assign(_x0=x0[inside], _y0=y0[inside]))
    table = pd.concat(kept) if kept else picks.iloc[:0].assign(_x0=[], _y0=[])
    return table, skipped


def _pixel_size(pixel_size: float | None, sources: dict, names) -> tuple[float, bool]:
    """The pixel size to write and whether it was known (else the fallback)."""
    if pixel_size:
        return float(pixel_size), True
    src = sources[names[0]]
    size = src.pixel_size if isinstance(src, Micrograph) else read_pixel_size(src)
    return (float(size), True) if size else (FALLBACK_PIXEL_SIZE, False)


def _micrograph_label(name: str, src: MicrographSource) -> str:
    """rlnMicrographName: the file path as given, else ``<name>.mrc``."""
    if isinstance(src, Micrograph):
        return str(src.path) if src.path is not None else f"{name}.mrc"
    return str(src)


def extract_particles(
    micrographs: Mapping[str, MicrographSource] | Iterable[MicrographSource],
    picks: pd.DataFrame,
    box_size: int,
    out_mrcs: str | os.PathLike,
    out_star: str | os.PathLike,
    *,
    invert: bool = False,
    normalise: bool = True,
    pixel_size: float | None = None,
    progress: Callable[[dict], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> pd.DataFrame:
    """Cut ``box_size`` px boxes around every pick into ``out_mrcs`` and describe them in ``out_star``.

    ``micrographs``: :class:`Micrograph` objects or paths (or ``{name: either}``),
    matched to ``picks["micrograph"]`` by name; every row of ``picks`` is
    extracted (filter by status first). Output: ``out_mrcs`` float32
    ``(N, box, box)`` (an image stack, voxel size = pixel size) and ``out_star``
    with ``data_optics`` (300 kV, Cs 2.7, amplitude contrast 0.1,
    ``rlnImageSize`` = box, ``rlnImagePixelSize`` = ``rlnMicrographPixelSize`` =
    pixel size) and ``data_particles`` (``rlnImageName`` ``000001@<mrcs path
    relative to the STAR's folder>``, ``rlnMicrographName`` the micrograph's path
    or name, ``rlnCoordinateX/Y`` the pick centres, ``rlnOpticsGroup``,
    ``rlnAutopickFigureOfMerit`` when confidences are known). Pixel size:
    ``pixel_size`` (Å/px), else the first micrograph's header, else 1.0 (noted
    in ``attrs["notes"]``).

    Returns the ``data_particles`` table; ``attrs["skipped"]`` lists boxes that
    crossed an edge and picks on micrographs not given. Raises
    :class:`CoordinateError` when no box fits.
    """
    if int(box_size) != box_size or box_size < 2:
        raise ValueError(f"extract_particles: box_size must be an integer >= 2, got {box_size}")
    box_size = int(box_size)
    out_mrcs, out_star = Path(out_mrcs), Path(out_star)
    picks = validate_picks(picks, source="picks to extract")
    sources = _by_name(micrographs)
    plan, skipped = _plan(picks, sources, box_size)
    if len(plan) == 0:
        raise CoordinateError(
            f"{out_mrcs}: no particle box of {box_size} px fits inside its micrograph"
            + (f" ({'; '.join(skipped)})" if skipped else "")
        )
    names = list(dict.fromkeys(plan["micrograph"]))
    apix, known = _pixel_size(pixel_size, sources, names)
    n = len(plan)
    _write_stack(
        plan, sources, names, box_size, out_mrcs, apix, invert, normalise, progress, should_stop
    )

    mic_names = {nm: _micrograph_label(nm, sources[nm]) for nm in names}
    stack_ref = os.path.relpath(out_mrcs, out_star.parent).replace(os.sep, "/")
    ordered = pd.concat([plan[plan["micrograph"] == nm] for nm in names], ignore_index=True)
    table = pd.DataFrame(
        {
            "rlnCoordinateX": ordered["x"].to_numpy(dtype=np.float64),
            "rlnCoordinateY": ordered["y"].to_numpy(dtype=np.float64),
            "rlnImageName": [f"{i + 1:06d}@{stack_ref}" for i in range(n)],
            "rlnMicrographName": [mic_names[m] for m in ordered["micrograph"]],
            "rlnOpticsGroup": np.ones(n, dtype=np.int64),
        }
    )
    conf = ordered["confidence"].to_numpy(dtype=np.float64)
    if np.isfinite(conf).any():
        table["rlnAutopickFigureOfMerit"] = np.where(np.isfinite(conf), conf, -999.0)
    write_star({"optics": optics_block(apix, box_size, apix), "particles": table}, out_star)
    table.attrs["skipped"] = skipped
    table.attrs["notes"] = (
        [] if known else [f"pixel size unknown; wrote {FALLBACK_PIXEL_SIZE} Å/px"]
    )
    return table


def _write_stack(
    plan, sources, names, box_size, out_mrcs, apix, invert, normalise, progress, should_stop
):
    import mrcfile

    n = len(plan)
    with atomic_path(out_mrcs) as tmp:
        with mrcfile.new_mmap(
            tmp, shape=(n, box_size, box_size), mrc_mode=2, overwrite=True
        ) as mrc:
            mrc.set_image_stack()
            mrc.voxel_size = apix
            i = 0
            for step, name in enumerate(names):
                if should_stop is not None and should_stop():
                    raise Cancelled("particle extraction stopped")
                image = _load(sources[name]).data
                rows = plan[plan["micrograph"] == name]
                for x0, y0 in zip(rows["_x0"], rows["_y0"], strict=True):
                    box = image[y0 : y0 + box_size, x0 : x0 + box_size].astype(np.float32)
                    if invert:
                        box = -box
                    mrc.data[i] = normalise_image(box) if normalise else box
                    i += 1
                if progress is not None:
                    progress(
                        {"stage": "extract", "step": step + 1, "total": len(names), "particles": i}
                    )
            mrc.update_header_stats()
