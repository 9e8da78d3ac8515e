"""Micrographs: read MRC / TIFF / PNG / JPEG into 2-D float32 arrays, and small image helpers.

Conventions (SPEC section 1): a micrograph's ``data`` is a 2-D float32 array of
shape ``(height, width)``; rows are y, columns are x, and the array is kept as
stored in the file (no flip), so a pick at ``(x, y)`` sits on ``data[y, x]``.
Pixel sizes are in Å per pixel of the stored image.

Every failure caused by a file (missing, truncated, complex-valued, wrong number
of dimensions, unknown extension, a stack read without an index) raises
:class:`~activepick.errors.MicrographError` naming the file and the problem.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..errors import MicrographError
from .atomic import atomic_path

#: File extensions read as MRC (``.mrcs`` is a stack of images).
MRC_EXTENSIONS: tuple[str, ...] = (".mrc", ".mrcs", ".map", ".st")
#: File extensions read with tifffile.
TIFF_EXTENSIONS: tuple[str, ...] = (".tif", ".tiff")
#: File extensions read with Pillow.
PIL_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg")
#: Extensions that :func:`list_micrographs` collects.
MICROGRAPH_EXTENSIONS: tuple[str, ...] = (".mrc", ".mrcs", ".tif", ".tiff", ".png", ".jpg", ".jpeg")

#: Bytes per pixel of the MRC modes (101 = 4-bit, two pixels per byte).
_MRC_MODE_BYTES = {0: 1, 1: 2, 2: 4, 3: 4, 4: 8, 6: 2, 12: 2, 101: 0.5}
_MRC_HEADER_BYTES = 1024


class NonFinitePixelsWarning(UserWarning):
    """A micrograph held NaN or infinite pixels; they were replaced (see :func:`read_micrograph`)."""


#: ITU-R 601 luma weights used to turn RGB(A) images into grey.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass
class Micrograph:
    """One micrograph.

    ``name`` is the file name without its final extension (as in pick tables),
    ``data`` a 2-D float32 array (rows = y, columns = x, origin the top-left array
    element as stored), ``pixel_size`` in Å/px or None when unknown, ``path`` the
    file it was read from (None for in-memory images).
    """

    name: str
    data: np.ndarray
    pixel_size: float | None = None
    path: Path | None = None

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)`` in pixels."""
        return (int(self.data.shape[0]), int(self.data.shape[1]))


def micrograph_name(path: str | os.PathLike) -> str:
    """The name used in pick tables: the file name without its final extension.

    ``"a/b/mic.001.mrc"`` -> ``"mic.001"``; nothing else is changed (case, dots,
    underscores are kept exactly).
    """
    return Path(path).stem


def _kind(path: Path) -> str:
    ext = path.suffix.lower()
    if ext in MRC_EXTENSIONS:
        return "mrc"
    if ext in TIFF_EXTENSIONS:
        return "tiff"
    if ext in PIL_EXTENSIONS:
        return "pil"
    raise MicrographError(
        f"{path}: unknown micrograph extension {path.suffix!r} "
        f"(known: {', '.join(MRC_EXTENSIONS + TIFF_EXTENSIONS + PIL_EXTENSIONS)})"
    )


def _check_exists(path: Path) -> None:
    if not path.exists():
        raise MicrographError(f"{path}: no such file")
    if path.is_dir():
        raise MicrographError(f"{path}: is a folder, not a micrograph file")


def _to_grey(arr: np.ndarray) -> np.ndarray:
    """RGB / RGBA (last axis 3 or 4) -> luma; alpha is dropped."""
    return np.tensordot(arr[..., :3].astype(np.float32), _LUMA, axes=([-1], [0]))


def _as_image(arr: np.ndarray, path: Path, index: int | None, n_pages: int = 1) -> np.ndarray:
    """Turn what a reader returned into one 2-D float32 image (or raise)."""
    if np.iscomplexobj(arr):
        raise MicrographError(f"{path}: complex-valued data (MRC mode 3/4) is not a micrograph")
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 3 and arr.shape[-1] not in (3, 4):
        n = arr.shape[0]
        if index is None:
            raise MicrographError(
                f"{path}: is a stack of {n} images of {arr.shape[1]} x {arr.shape[2]} px; "
                "give index= to read one of them"
            )
        if not -n <= index < n:
            raise MicrographError(f"{path}: index {index} out of range for a stack of {n} images")
        arr = arr[index]
    elif index not in (None, 0) and n_pages == 1:
        raise MicrographError(f"{path}: index {index} given but the file holds a single image")
    if arr.ndim == 3:  # RGB / RGBA
        arr = _to_grey(arr)
    if arr.ndim != 2:
        raise MicrographError(
            f"{path}: data of shape {tuple(arr.shape)} is not a 2-D image or a stack of them"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise MicrographError(f"{path}: empty image of shape {tuple(arr.shape)}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def check_mrc_header(path: Path) -> tuple[int, int, int]:
    """``(nx, ny, nz)`` from an MRC header, checked against the file size before any read.

    A corrupt header can claim 2^31 x 2^31 pixels or a 1 GB extended header
    (``nsymbt``); mrcfile would then allocate and read that much before failing.
    Refuses (MicrographError naming the file) dimensions < 1, a negative or
    oversized ``nsymbt``, and a file shorter than 1024 + nsymbt + the data the
    header promises. Unknown modes are left to mrcfile's own error.
    """
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(_MRC_HEADER_BYTES)
    if len(head) < _MRC_HEADER_BYTES:
        raise MicrographError(
            f"{path}: not a readable MRC file ({size} bytes, shorter than the 1024-byte header)"
        )
    order = ">" if head[212] == 0x11 else "<"
    nx, ny, nz, mode = (int(v) for v in np.frombuffer(head, f"{order}i4", count=4))
    nsymbt = int(np.frombuffer(head, f"{order}i4", count=1, offset=92)[0])
    if order == "<" and head[212] not in (0x44, 0x41) and mode not in _MRC_MODE_BYTES:
        swapped = np.frombuffer(head, ">i4", count=4)
        if int(swapped[3]) in _MRC_MODE_BYTES:  # no machine stamp, big-endian data
            nx, ny, nz, mode = (int(v) for v in swapped)
            nsymbt = int(np.frombuffer(head, ">i4", count=1, offset=92)[0])
    if mode not in _MRC_MODE_BYTES:
        return nx, ny, nz
    if min(nx, ny, nz) < 1:
        raise MicrographError(f"{path}: MRC header gives an empty image ({nx} x {ny} x {nz} px)")
    if nsymbt < 0 or nsymbt > size - _MRC_HEADER_BYTES:
        raise MicrographError(
            f"{path}: MRC header gives an extended header of {nsymbt} bytes in a file of "
            f"{size} bytes (corrupt header)"
        )
    data_bytes = math.ceil(nx * _MRC_MODE_BYTES[mode]) * ny * nz
    need = _MRC_HEADER_BYTES + nsymbt + data_bytes
    if need > size:
        raise MicrographError(
            f"{path}: MRC header promises {nx} x {ny} x {nz} px of mode {mode} ({need} bytes) "
            f"but the file has {size} bytes (truncated or corrupt)"
        )
    return nx, ny, nz


def _open_mrc(path: Path, header_only: bool = False):
    import mrcfile

    try:
        check_mrc_header(path)
    except OSError as exc:
        raise MicrographError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if header_only:
                return mrcfile.open(path, mode="r", header_only=True, permissive=False)
            return mrcfile.mmap(path, mode="r", permissive=False)
    except Exception as exc:  # mrcfile raises ValueError / OSError / EOFError ...
        raise MicrographError(f"{path}: not a readable MRC file ({exc})") from None


def _mrc_pixel_size(mrc) -> float | None:
    size = float(mrc.voxel_size.x)
    return size if size > 0 and math.isfinite(size) else None


def _read_mrc(path: Path, index: int | None) -> tuple[np.ndarray, float | None]:
    with _open_mrc(path) as mrc:
        data = mrc.data
        if data is None:
            raise MicrographError(f"{path}: MRC file holds no data")
        if data.ndim == 3 and data.shape[0] > 1 and index is not None:
            n = data.shape[0]
            if not -n <= index < n:
                raise MicrographError(
                    f"{path}: index {index} out of range for a stack of {n} images"
                )
            data, index = data[index], None
        if np.iscomplexobj(data):
            raise MicrographError(f"{path}: complex-valued data (MRC mode 3/4) is not a micrograph")
        if data.ndim == 3 and data.shape[0] > 1:  # refuse before copying a whole stack
            raise MicrographError(
                f"{path}: is a stack of {data.shape[0]} images of {data.shape[1]} x "
                f"{data.shape[2]} px; give index= to read one of them"
            )
        # copy out of the memory map before it closes
        image = _as_image(np.array(data, dtype=np.float32), path, index)
        return image, _mrc_pixel_size(mrc)


def _read_tiff(path: Path, index: int | None) -> np.ndarray:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            pages = tif.pages
            n = len(pages)
            if n == 0:
                raise MicrographError(f"{path}: TIFF file holds no image")
            if n > 1:
                if index is None:
                    raise MicrographError(
                        f"{path}: is a stack of {n} TIFF pages; give index= to read one of them"
                    )
                if not -n <= index < n:
                    raise MicrographError(
                        f"{path}: index {index} out of range for a stack of {n} pages"
                    )
                arr = pages[index].asarray()
                return _as_image(arr, path, None, n_pages=n)
            arr = pages[0].asarray()
    except MicrographError:
        raise
    except Exception as exc:  # tifffile raises TiffFileError, ValueError, struct.error ...
        raise MicrographError(f"{path}: not a readable TIFF file ({exc})") from None
    return _as_image(arr, path, index)


def _read_pil(path: Path, index: int | None) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as img:
            if img.mode in ("P", "PA", "CMYK", "YCbCr", "LAB", "HSV", "1"):
                img = img.convert("RGBA" if "A" in img.mode else "RGB")
            if img.mode == "LA":
                arr = np.asarray(img)[..., 0]
            else:
                arr = np.asarray(img)
    except Exception as exc:  # PIL.UnidentifiedImageError, OSError (truncated) ...
        raise MicrographError(f"{path}: not a readable {path.suffix} image ({exc})") from None
    return _as_image(arr, path, index)


def read_micrograph(path: str | os.PathLike, index: int | None = None) -> Micrograph:
    """Read one micrograph as a 2-D float32 :class:`Micrograph`.

    MRC (modes 0 int8, 1 int16, 2 float32, 6 uint16, 12 float16; complex modes
    are refused), TIFF (tifffile) and PNG / JPEG (Pillow). The array is kept as
    stored: row 0 of the file is row 0 of ``data`` (y = row, no flip). A
    ``(1, H, W)`` file is squeezed; a stack (MRC with nz > 1, ``.mrcs``,
    multi-page TIFF) needs ``index`` (0-based) and raises otherwise. RGB(A)
    images become grey (ITU-R 601 luma, alpha dropped). ``pixel_size`` (Å/px)
    comes from the MRC header ``voxel_size.x`` when it is > 0, else None.
    """
    path = Path(path)
    kind = _kind(path)
    _check_exists(path)
    pixel_size = None
    if kind == "mrc":
        data, pixel_size = _read_mrc(path, index)
    elif kind == "tiff":
        data = _read_tiff(path, index)
    else:
        data = _read_pil(path, index)
    data = replace_non_finite(data, str(path))
    return Micrograph(name=micrograph_name(path), data=data, pixel_size=pixel_size, path=path)


def read_micrograph_stack(path: str | os.PathLike) -> np.ndarray:
    """Read every image of a stack file as a float32 array ``(N, H, W)``.

    MRC / ``.mrcs`` (a 2-D MRC gives ``N = 1``) and multi-page TIFF.
    """
    path = Path(path)
    kind = _kind(path)
    _check_exists(path)
    if kind == "mrc":
        with _open_mrc(path) as mrc:
            data = np.asarray(mrc.data)
            if np.iscomplexobj(data):
                raise MicrographError(f"{path}: complex-valued data is not an image stack")
            if data.ndim == 2:
                data = data[None]
            if data.ndim != 3:
                raise MicrographError(f"{path}: data of shape {data.shape} is not an image stack")
            return replace_non_finite(np.ascontiguousarray(data, dtype=np.float32), str(path))
    if kind == "tiff":
        import tifffile

        try:
            with tifffile.TiffFile(path) as tif:
                n = len(tif.pages)
        except Exception as exc:
            raise MicrographError(f"{path}: not a readable TIFF file ({exc})") from None
        return np.stack([_read_tiff(path, i if n > 1 else None) for i in range(n)])
    return _read_pil(path, None)[None]


def read_shape(path: str | os.PathLike) -> tuple[int, int]:
    """``(height, width)`` of a micrograph (of each image of a stack) from its header.

    Reads only the MRC header, the first TIFF page's tags, or the PNG/JPEG
    header, so it is cheap enough for bounds checks over thousands of files.
    """
    path = Path(path)
    kind = _kind(path)
    _check_exists(path)
    if kind == "mrc":
        with _open_mrc(path, header_only=True) as mrc:
            h, w = int(mrc.header.ny), int(mrc.header.nx)
    elif kind == "tiff":
        import tifffile

        try:
            with tifffile.TiffFile(path) as tif:
                h, w = int(tif.pages[0].imagelength), int(tif.pages[0].imagewidth)
        except Exception as exc:
            raise MicrographError(f"{path}: not a readable TIFF file ({exc})") from None
    else:
        from PIL import Image

        try:
            with Image.open(path) as img:
                w, h = img.size
        except Exception as exc:
            raise MicrographError(f"{path}: not a readable {path.suffix} image ({exc})") from None
    if h <= 0 or w <= 0:
        raise MicrographError(f"{path}: header gives an empty image ({w} x {h} px)")
    return (h, w)


def read_pixel_size(path: str | os.PathLike) -> float | None:
    """Pixel size (Å/px) from an MRC header (``voxel_size.x`` when > 0); None otherwise.

    TIFF / PNG / JPEG files carry no reliable pixel size, so they give None.
    """
    path = Path(path)
    if _kind(path) != "mrc":
        return None
    _check_exists(path)
    with _open_mrc(path, header_only=True) as mrc:
        return _mrc_pixel_size(mrc)


def micrograph_shapes(paths: Iterable[str | os.PathLike]) -> dict[str, tuple[int, int]]:
    """``{micrograph name: (height, width)}`` for many files, from headers only."""
    return {micrograph_name(p): read_shape(p) for p in paths}


def list_micrographs(folder: str | os.PathLike) -> list[Path]:
    """Micrograph files in ``folder`` (not recursive), sorted by file name.

    Extensions: :data:`MICROGRAPH_EXTENSIONS` (case-insensitive). Hidden files
    (leading ``.``, e.g. unfinished atomic writes) are ignored. Raises
    :class:`MicrographError` when the folder is missing or holds no micrograph.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise MicrographError(f"{folder}: no such folder")
    files = sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in MICROGRAPH_EXTENSIONS
    )
    if not files:
        raise MicrographError(
            f"{folder}: no micrographs found (looked for {', '.join(MICROGRAPH_EXTENSIONS)})"
        )
    return files


def write_micrograph(
    path: str | os.PathLike, data: np.ndarray, pixel_size: float | None = None
) -> Path:
    """Write a 2-D image (or a 3-D stack) as a float32 MRC file, atomically.

    ``pixel_size`` (Å/px) goes into the header voxel size (0 when None, which
    :func:`read_micrograph` reads back as None). Returns the path written.
    """
    import mrcfile

    path = Path(path)
    data = np.asarray(data, dtype=np.float32)
    if data.ndim not in (2, 3):
        raise ValueError(f"write_micrograph: data must be 2-D or 3-D, got shape {data.shape}")
    with atomic_path(path) as tmp:
        with mrcfile.new(tmp, overwrite=True) as mrc:
            mrc.set_data(data)
            if data.ndim == 3:
                mrc.set_image_stack()
            mrc.voxel_size = float(pixel_size) if pixel_size else 0.0
    return path


def downscale(image: np.ndarray, factor: float) -> np.ndarray:
    """Shrink ``image`` by ``factor`` >= 1 with area averaging; returns float32.

    Integer factors take the mean of each ``factor x factor`` block; trailing
    rows / columns that do not fill a block are dropped, so the output is
    ``(H // f, W // f)``. Non-integer factors first block-average by
    ``floor(factor)`` and then resample the remaining factor (< 2) with linear
    interpolation (``scipy.ndimage.zoom``, ``prefilter=False``, ``grid_mode=True``),
    giving ``round(H / factor) x round(W / factor)``.

    Coordinates: with pixel centres at integer positions (the pick table's
    convention), output pixel ``i`` of an integer factor covers input pixels
    ``i*f .. i*f + f - 1``, so an original coordinate ``x`` is at
    ``(x - (f - 1) / 2) / f`` in the downscaled image.
    """
    if not factor >= 1:
        raise ValueError(f"downscale: factor must be >= 1, got {factor}")
    image = np.asarray(image, dtype=np.float32)
    f = int(math.floor(factor))
    if f > 1:
        h, w = (image.shape[0] // f) * f, (image.shape[1] // f) * f
        blocks = image[:h, :w].reshape(h // f, f, w // f, f)
        image = blocks.mean(axis=(1, 3), dtype=np.float64).astype(np.float32)
    rest = factor / f
    if rest > 1 + 1e-9:
        target = (
            max(1, round(image.shape[0] * f / factor)),
            max(1, round(image.shape[1] * f / factor)),
        )
        zoom = (target[0] / image.shape[0], target[1] / image.shape[1])
        image = ndimage.zoom(image, zoom, order=1, prefilter=False, grid_mode=True, mode="nearest")
    return np.ascontiguousarray(image, dtype=np.float32)


def replace_non_finite(image: np.ndarray, source: str = "image") -> np.ndarray:
    """``image`` with NaN / infinite pixels set to the mean of the finite ones.

    One such pixel would otherwise make the mean and standard deviation NaN and
    :func:`normalise` blank the whole micrograph. Warns
    (:class:`NonFinitePixelsWarning`) naming ``source`` and the count; an image
    with no finite pixel raises MicrographError. Returns ``image`` itself when
    every pixel is finite, else a float32 copy.
    """
    finite = np.isfinite(image)
    if finite.all():
        return image
    n_bad = int(finite.size - np.count_nonzero(finite))
    if not finite.any():
        raise MicrographError(f"{source}: every pixel is NaN or infinite")
    fill = float(np.mean(image[finite], dtype=np.float64))
    warnings.warn(
        f"{source}: {n_bad} NaN or infinite pixel(s) replaced by the mean of the others "
        f"({fill:.4g})",
        NonFinitePixelsWarning,
        stacklevel=3,
    )
    out = np.array(image, dtype=np.float32)
    out[~finite] = fill
    return out


def normalise(image: np.ndarray) -> np.ndarray:
    """Zero mean, unit standard deviation, as float32; a constant image gives zeros.

    NaN / infinite pixels are first replaced by the mean of the finite ones
    (:func:`replace_non_finite`, which warns), so they cannot blank the image.
    """
    image = replace_non_finite(np.asarray(image, dtype=np.float32))
    mean = float(image.mean(dtype=np.float64))
    std = float(image.std(dtype=np.float64))
    if not std > 0 or not math.isfinite(std):
        return np.zeros_like(image, dtype=np.float32)
    return ((image - mean) / std).astype(np.float32)


#: :func:`robust_normalise` clips at this many robust standard deviations.
ROBUST_CLIP = 5.0
#: Pixels :func:`robust_normalise` estimates the median and spread from (a regular
#: subsample of larger images).
ROBUST_SAMPLE = 1 << 18


def robust_normalise(image: np.ndarray) -> np.ndarray:
    """Centre on the ice's mean and scale by its standard deviation, both estimated
    robustly, then clip to +-:data:`ROBUST_CLIP`; float32.

    The estimate starts from the median and 1.4826 x the median absolute deviation,
    then keeps refining the mean and SD of the pixels within 3.5 SD of the mean
    (sigma clipping, three rounds). Unlike :func:`normalise`, carbon film,
    contamination and hot pixels do not set the scale: the particles keep their
    contrast against the ice they sit in. The statistics come from a regular
    subsample of at most :data:`ROBUST_SAMPLE` pixels. Falls back to the standard
    deviation when most pixels are equal (MAD 0, e.g. padded or saturated images);
    a constant image gives zeros. NaN / infinite pixels are replaced first, as in
    :func:`normalise`.
    """
    image = replace_non_finite(np.asarray(image, dtype=np.float32))
    step = max(1, int(math.ceil(math.sqrt(image.size / ROBUST_SAMPLE))))
    sample = image[::step, ::step] if image.ndim == 2 else image.reshape(-1)[::step]
    sample = sample.astype(np.float64).ravel()
    centre = float(np.median(sample))
    scale = 1.4826 * float(np.median(np.abs(sample - centre)))
    if scale > 0:
        for _ in range(3):
            inliers = sample[np.abs(sample - centre) < 3.5 * scale]
            if len(inliers) < 2 or not inliers.std() > 0:
                break
            centre, scale = float(inliers.mean()), float(inliers.std())
    else:
        centre, scale = float(sample.mean()), float(sample.std())
    if not scale > 0 or not math.isfinite(scale):
        return np.zeros_like(image, dtype=np.float32)
    out = (image - np.float32(centre)) / np.float32(scale)
    return np.clip(out, -ROBUST_CLIP, ROBUST_CLIP, out=out).astype(np.float32, copy=False)
