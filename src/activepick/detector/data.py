"""Network inputs: resizing, per-image normalisation, padding, augmentation.

Coordinate convention inside the detector: **edge coordinates** ``(u, v)`` where the
image covers ``[0, W) x [0, H)`` and pixel ``(row, col)`` has its centre at
``(col + 0.5, row + 0.5)``. A pick-table centre ``(x, y)`` (original pixels,
x = column, y = row, origin at the top-left pixel's centre) is ``(x + 0.5, y + 0.5)``
in edge coordinates of the original micrograph, and ``((x + 0.5) * sx,
(y + 0.5) * sy)`` in the resized input, ``sx = W_resized / W``, ``sy = H_resized / H``
(exactly the mapping of ``torch.nn.functional.interpolate(align_corners=False)``).
Padding is added at the right and bottom only, so it never shifts coordinates.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import MicrographError
from ..io.micrograph import Micrograph, robust_normalise
from .config import INPUT_MULTIPLE

#: The 8 views of the dihedral group: (quarter turns counter-clockwise, flip columns).
VIEWS: tuple[tuple[int, bool], ...] = tuple((k, f) for f in (False, True) for k in range(4))
#: The views that keep a non-square image's shape.
SHAPE_KEEPING_VIEWS: tuple[tuple[int, bool], ...] = tuple(v for v in VIEWS if v[0] % 2 == 0)


#: ``prepare(micrograph, input_size) -> (tensor (1, Hp, Wp), (sx, sy))``: a network input.
Prepare = Callable[[Any, int], tuple[torch.Tensor, tuple[float, float]]]


@dataclass
class _Image:
    name: str
    data: np.ndarray


def as_micrographs(micrographs: Sequence) -> list:
    """Normalise the accepted inputs to objects with ``.name`` and ``.data`` (2-D).

    Accepts :class:`activepick.io.micrograph.Micrograph` (or anything with ``.name``
    and ``.data``) and bare 2-D arrays (named ``image_000``, ``image_001``, ...).
    Raises :class:`MicrographError` on anything else or a non-2-D image.
    """
    if isinstance(micrographs, np.ndarray) or hasattr(micrographs, "data"):
        micrographs = [micrographs]
    out = []
    for i, m in enumerate(micrographs):
        if isinstance(m, np.ndarray):
            m = _Image(f"image_{i:03d}", m)
        # isinstance first: hasattr(m, "data") would decode a lazy micrograph's pixels
        elif not (hasattr(m, "name") and (isinstance(m, Micrograph) or hasattr(m, "data"))):
            raise MicrographError(f"item {i}: not a micrograph ({type(m).__name__})")
        shape = micrograph_shape(m)
        if len(shape) != 2:
            raise MicrographError(f"micrograph {m.name!r}: expected a 2-D image, got shape {shape}")
        out.append(m)
    return out


def micrograph_shape(m) -> tuple[int, ...]:
    """``(height, width)`` of a micrograph without decoding a lazy one (its ``shape``
    comes from the header); the array's shape for anything without ``shape``."""
    shape = getattr(m, "shape", None)
    return tuple(int(s) for s in (np.shape(m.data) if shape is None else shape))


def default_prepare(m, input_size: int) -> tuple[torch.Tensor, tuple[float, float]]:
    """The network input of micrograph ``m`` (``prepare`` of training and prediction
    when none is given): :func:`prepare_image` of its pixels."""
    return prepare_image(np.asarray(m.data, dtype=np.float32), input_size)


def resized_shape(shape: tuple[int, int], input_size: int) -> tuple[int, int]:
    """``(height, width)`` after scaling the long side to ``input_size`` (aspect kept)."""
    h, w = int(shape[0]), int(shape[1])
    scale = input_size / max(h, w)
    return max(1, int(round(h * scale))), max(1, int(round(w * scale)))


def padded_shape(shape: tuple[int, int], multiple: int = INPUT_MULTIPLE) -> tuple[int, int]:
    """``shape`` rounded up to a multiple of ``multiple`` (the network's stride)."""
    return tuple(int(-(-s // multiple) * multiple) for s in shape)


def prepare_image(image: np.ndarray, input_size: int) -> tuple[torch.Tensor, tuple[float, float]]:
    """Resize, normalise and pad one micrograph for the network.

    Returns ``(tensor (1, Hp, Wp) float32, (sx, sy))``: the long side is resized to
    ``input_size`` with antialiased bilinear interpolation, the resized image is
    normalised robustly (median 0, robust SD 1, clipped at +-5:
    :func:`~activepick.io.micrograph.robust_normalise`), then zero-padded at the right and
    bottom to a multiple of 32. ``sx = W_resized / W``, ``sy = H_resized / H`` map
    edge coordinates of the original to the input (module docstring).
    """
    h, w = image.shape
    nh, nw = resized_shape((h, w), input_size)
    t = torch.as_tensor(np.ascontiguousarray(image), dtype=torch.float32)[None, None]
    if (nh, nw) != (h, w):
        t = F.interpolate(t, size=(nh, nw), mode="bilinear", align_corners=False, antialias=nh < h)
    t = torch.from_numpy(robust_normalise(t[0].numpy()))
    ph, pw = padded_shape((nh, nw))
    t = F.pad(t, (0, pw - nw, 0, ph - nh))
    return t.contiguous(), (nw / w, nh / h)


def to_input_points(xy: np.ndarray, scale: tuple[float, float]) -> np.ndarray:
    """Pick-table centres ``(N, 2)`` (x, y) -> edge coordinates of the resized input."""
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    return (xy + 0.5) * np.asarray(scale, dtype=np.float64)


def from_input_points(uv: np.ndarray, scale: tuple[float, float]) -> np.ndarray:
    """Inverse of :func:`to_input_points`: input edge coordinates -> original (x, y)."""
    uv = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
    return uv / np.asarray(scale, dtype=np.float64) - 0.5


def transform_image(image: torch.Tensor, view: tuple[int, bool]) -> torch.Tensor:
    """Apply a dihedral view to the last two dims: rotate ``k`` quarter turns
    counter-clockwise (``torch.rot90``), then flip columns if ``flip``."""
    k, flip = view
    out = torch.rot90(image, k, dims=(-2, -1)) if k % 4 else image
    return torch.flip(out, dims=(-1,)) if flip else out


def inverse_transform_image(image: torch.Tensor, view: tuple[int, bool]) -> torch.Tensor:
    """Undo :func:`transform_image` (works on output grids as well as images)."""
    k, flip = view
    out = torch.flip(image, dims=(-1,)) if flip else image
    return torch.rot90(out, -k, dims=(-2, -1)) if k % 4 else out


def transform_points(uv: np.ndarray, shape: tuple[int, int], view: tuple[int, bool]) -> np.ndarray:
    """Map edge coordinates ``(N, 2)`` (u, v) on an image of ``shape`` (H, W) through
    :func:`transform_image`'s ``view``. One counter-clockwise quarter turn sends
    ``(u, v)`` to ``(v, W - u)`` on the ``(W, H)`` image; a column flip sends
    ``(u, v)`` to ``(W - u, v)``."""
    k, flip = view
    uv = np.asarray(uv, dtype=np.float64).reshape(-1, 2).copy()
    h, w = shape
    for _ in range(k % 4):
        uv = np.stack([uv[:, 1], w - uv[:, 0]], axis=1)
        h, w = w, h
    if flip:
        uv[:, 0] = w - uv[:, 0]
    return uv


def random_view(rng: np.random.Generator, square: bool) -> tuple[int, bool]:
    """A uniformly random dihedral view; only shape-keeping ones for non-square images."""
    views = VIEWS if square else SHAPE_KEEPING_VIEWS
    return views[int(rng.integers(len(views)))]
