"""cryoSPARC ``.cs`` particle locations (a numpy structured array saved with ``np.save``).

Fields read: ``location/micrograph_path`` (bytes), ``location/micrograph_shape``
(H, W), ``location/center_x_frac``, ``location/center_y_frac``; the centre in
pixels is ``x = x_frac * W``, ``y = y_frac * H`` (y = array row, no flip). The
micrograph name is the path's file name without extension, with the numeric uid
that cryoSPARC prefixes to imported files (``012345678901234567890_``) removed.
No diameter is stored: pass ``diameter=``. No confidence is read.

Writing builds the same fields (plus ``uid``, ``location/micrograph_uid``,
``location/exp_group_id``, ``location/micrograph_psize_A``) and needs the
micrograph shapes; the path is prefix + name + suffix. Fractions are float32 as
in cryoSPARC, so positions round-trip to about 1e-3 px on 4k images.
To import picks into cryoSPARC, exporting a STAR (``--to star``) is the route its
"Import Particle Stack" job accepts; the ``.cs`` is for tools that read ``.cs``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from ...errors import CoordinateError
from ..atomic import atomic_open
from ._common import WriteOptions, empty_raw, name_from_path, raw_frame

EXTENSIONS = (".cs",)
PER_MICROGRAPH = False
FIELDS = (
    "location/micrograph_path",
    "location/micrograph_shape",
    "location/center_x_frac",
    "location/center_y_frac",
)
_UID_PREFIX = re.compile(r"^\d{15,}_")


def cs_name(path_bytes, source: Path | None = None) -> str:
    """Micrograph name from a cryoSPARC micrograph path (uid prefix removed).

    A path that is not UTF-8 raises CoordinateError naming ``source``.
    """
    if isinstance(path_bytes, bytes):
        try:
            text = path_bytes.decode("utf-8")
        except UnicodeDecodeError:
            raise CoordinateError(
                f"{source}: location/micrograph_path {path_bytes[:60]!r} is not UTF-8 text"
            ) from None
    else:
        text = str(path_bytes)
    return _UID_PREFIX.sub("", name_from_path(text))


def read(path: Path) -> pd.DataFrame:
    """Centres from a ``.cs`` file."""
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise CoordinateError(
            f"{path}: not a readable .cs file ({exc}); object (pickled) fields are not read"
        ) from None
    except Exception as exc:
        raise CoordinateError(f"{path}: not a readable .cs file ({exc})") from None
    if not isinstance(arr, np.ndarray) or arr.dtype.names is None:
        raise CoordinateError(f"{path}: not a cryoSPARC .cs file (no structured array)")
    missing = [f for f in FIELDS if f not in arr.dtype.names]
    if missing:
        raise CoordinateError(f"{path}: .cs file lacks field(s) {', '.join(missing)}")
    if arr.ndim != 1:
        raise CoordinateError(
            f"{path}: a .cs file holds one row per particle, not an array of shape {arr.shape}"
        )
    if len(arr) == 0:
        return empty_raw()
    try:
        shape = np.asarray(arr["location/micrograph_shape"], dtype=np.float64).reshape(len(arr), -1)
        fx = np.asarray(arr["location/center_x_frac"], dtype=np.float64).reshape(-1)
        fy = np.asarray(arr["location/center_y_frac"], dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise CoordinateError(f"{path}: .cs location fields are not numeric ({exc})") from None
    if shape.shape[1] != 2 or len(fx) != len(arr) or len(fy) != len(arr):
        raise CoordinateError(f"{path}: location/micrograph_shape must hold (H, W) per row")
    _check_rows(
        path, ~np.all(np.isfinite(shape) & (shape >= 1), axis=1), "a micrograph shape < 1 px"
    )
    outside = ~((fx >= 0) & (fx <= 1) & (fy >= 0) & (fy <= 1))
    _check_rows(path, outside, "a fractional centre outside [0, 1]")
    names = [cs_name(p, path) for p in arr["location/micrograph_path"]]
    return raw_frame(names, fx * shape[:, 1], fy * shape[:, 0])


def _check_rows(path: Path, bad: np.ndarray, what: str) -> None:
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise CoordinateError(f"{path}: {int(bad.sum())} row(s) with {what} (first: row {first})")


def write(picks: pd.DataFrame, path: Path, opts: WriteOptions) -> list[Path]:
    """One ``.cs`` file; every micrograph must be in ``opts.shapes`` ({name: (H, W)})."""
    if opts.shapes is None:
        raise CoordinateError(
            f"{path}: writing .cs needs the micrograph shapes (give --micrographs)"
        )
    missing = sorted(set(picks["micrograph"]) - set(opts.shapes))
    if missing:
        raise CoordinateError(f"{path}: no shape known for micrograph(s) {missing[:5]}")
    names = picks["micrograph"].astype(str).tolist()
    full = [opts.full_name(n).encode() for n in names]
    width = max([len(f) for f in full] + [1])
    order = {n: i for i, n in enumerate(dict.fromkeys(names))}
    dtype = [
        ("uid", "<u8"),
        ("location/micrograph_uid", "<u8"),
        ("location/exp_group_id", "<u4"),
        ("location/micrograph_path", f"S{width}"),
        ("location/micrograph_shape", "<u4", (2,)),
        ("location/micrograph_psize_A", "<f4"),
        ("location/center_x_frac", "<f4"),
        ("location/center_y_frac", "<f4"),
    ]
    arr = np.zeros(len(picks), dtype=dtype)
    shapes = np.array([opts.shapes[n] for n in names], dtype=np.float64).reshape(len(picks), 2)
    arr["uid"] = np.arange(len(picks), dtype=np.uint64)
    arr["location/micrograph_uid"] = [order[n] for n in names]
    arr["location/micrograph_path"] = full
    arr["location/micrograph_shape"] = shapes
    arr["location/micrograph_psize_A"] = float(opts.pixel_size or 0.0)
    if len(picks):
        arr["location/center_x_frac"] = picks["x"].to_numpy() / shapes[:, 1]
        arr["location/center_y_frac"] = picks["y"].to_numpy() / shapes[:, 0]
    with atomic_open(path, "wb") as fh:  # a file handle: np.save would append .npy to a name
        np.save(fh, arr, allow_pickle=False)
    return [path]
