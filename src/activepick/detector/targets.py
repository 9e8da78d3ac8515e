"""Grid targets (encode / decode) and the YOLO-style loss.

Everything here works in **edge coordinates of the network input** (see
:mod:`activepick.detector.data`): a point ``(u, v)`` lies in grid cell
``(row, col) = (floor(v / 16), floor(u / 16))`` and is encoded as its offset inside
the cell, ``(u / 16 - col, v / 16 - row)`` in [0, 1) (predicted through a sigmoid),
and its size as ``log(size / anchor)`` where ``anchor`` is the box size in input px.
A cell holding a particle centre has objectness target 1; if two centres share a
cell, the last one wins (with particles ~2 cells wide this is rare).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .config import GRID_STRIDE

#: Channels of an encoded target grid.
TARGET_CHANNELS: tuple[str, ...] = ("x", "y", "w", "h", "objectness")


@dataclass
class GridTargets:
    """Encoded targets of one image.

    - ``target``: ``(5, Gh, Gw)`` float32, channels :data:`TARGET_CHANNELS`
      (offsets in [0, 1), log sizes, objectness 0/1).
    - ``weight``: ``(Gh, Gw)`` float32 objectness weight per cell (0 = unsupervised,
      1 = background, ``pos_weight`` for particles, ``neg_weight`` for rejections).
    """

    target: np.ndarray
    weight: np.ndarray


def grid_shape(input_shape: tuple[int, int], stride: int = GRID_STRIDE) -> tuple[int, int]:
    """Grid ``(rows, cols)`` of a padded input of ``(H, W)`` px."""
    return int(input_shape[0]) // stride, int(input_shape[1]) // stride


def _cells(
    uv: np.ndarray, grid: tuple[int, int], stride: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, col, inside) of points; ``inside`` is False for points off the grid."""
    col = np.floor(uv[:, 0] / stride).astype(np.int64)
    row = np.floor(uv[:, 1] / stride).astype(np.int64)
    inside = (row >= 0) & (row < grid[0]) & (col >= 0) & (col < grid[1])
    return row, col, inside


def cell_centres(grid: tuple[int, int], stride: int = GRID_STRIDE) -> np.ndarray:
    """Edge coordinates ``(Gh, Gw, 2)`` (u, v) of every cell's centre."""
    v, u = np.meshgrid(np.arange(grid[0]), np.arange(grid[1]), indexing="ij")
    return (np.stack([u, v], axis=-1) + 0.5) * stride


def supervised_cells(
    points: np.ndarray, radius: float, grid: tuple[int, int], stride: int = GRID_STRIDE
) -> np.ndarray:
    """Boolean ``(Gh, Gw)``: cells whose centre lies within ``radius`` input px of any
    of ``points`` ``(N, 2)`` (edge coordinates) - the reviewed region of partial labels."""
    mask = np.zeros(grid, dtype=bool)
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if len(points) == 0:
        return mask
    centres = cell_centres(grid, stride).reshape(-1, 2)
    from scipy.spatial import cKDTree

    hits = cKDTree(points).query_ball_point(centres, r=radius, return_length=True)
    return (np.asarray(hits) > 0).reshape(grid)


def encode_targets(
    positives: np.ndarray,
    sizes: np.ndarray | float,
    grid: tuple[int, int],
    anchor: float,
    *,
    negatives: np.ndarray | None = None,
    supervised: np.ndarray | None = None,
    pos_weight: float = 1.0,
    neg_weight: float = 1.0,
    stride: int = GRID_STRIDE,
) -> GridTargets:
    """Encode particle centres into a grid.

    ``positives`` ``(N, 2)`` and ``negatives`` ``(M, 2)`` are edge coordinates of the
    input; ``sizes`` are box sizes in input px (scalar or ``(N,)``); ``anchor`` is the
    anchor box size in input px. ``supervised`` (``(Gh, Gw)`` bool, default all)
    marks cells that contribute to the objectness loss; cells of positives and
    negatives always do. Points off the grid are ignored.
    """
    target = np.zeros((len(TARGET_CHANNELS), *grid), dtype=np.float32)
    weight = (
        np.ones(grid, dtype=np.float32) if supervised is None else supervised.astype(np.float32)
    )
    if negatives is not None and len(negatives):
        neg = np.asarray(negatives, dtype=np.float64).reshape(-1, 2)
        r, c, ok = _cells(neg, grid, stride)
        weight[r[ok], c[ok]] = neg_weight
    pos = np.asarray(positives, dtype=np.float64).reshape(-1, 2)
    if len(pos):
        sizes = np.broadcast_to(np.asarray(sizes, dtype=np.float64), (len(pos),))
        r, c, ok = _cells(pos, grid, stride)
        r, c, p, s = r[ok], c[ok], pos[ok], sizes[ok]
        target[0, r, c] = p[:, 0] / stride - c
        target[1, r, c] = p[:, 1] / stride - r
        target[2, r, c] = np.log(s / anchor)
        target[3, r, c] = np.log(s / anchor)
        target[4, r, c] = 1.0
        weight[r, c] = pos_weight
    return GridTargets(target, weight)


def decode_grid(
    output: torch.Tensor | np.ndarray, anchor: float, stride: int = GRID_STRIDE
) -> dict[str, np.ndarray]:
    """Decode one network output ``(6, Gh, Gw)`` (raw) into per-cell predictions.

    Returns flat arrays over all ``Gh * Gw`` cells (row-major): ``u``, ``v`` (edge
    coordinates of the input), ``size`` (box size in input px, the mean of the
    decoded width and height), ``confidence`` (sigmoid of objectness), ``row``,
    ``col`` (the cell).
    """
    out = torch.as_tensor(output).detach().float().cpu()
    gh, gw = out.shape[-2:]
    rows, cols = torch.meshgrid(torch.arange(gh), torch.arange(gw), indexing="ij")
    u = (cols + torch.sigmoid(out[0])) * stride
    v = (rows + torch.sigmoid(out[1])) * stride
    size = anchor * torch.exp(0.5 * (out[2] + out[3]).clamp(-10, 10))
    conf = torch.sigmoid(out[4])
    return {
        "u": u.reshape(-1).numpy().astype(np.float64),
        "v": v.reshape(-1).numpy().astype(np.float64),
        "size": size.reshape(-1).numpy().astype(np.float64),
        "confidence": conf.reshape(-1).numpy().astype(np.float64),
        "row": rows.reshape(-1).numpy(),
        "col": cols.reshape(-1).numpy(),
    }


def detector_loss(
    output: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, *, coord_weight: float = 1.0
) -> tuple[torch.Tensor, dict[str, float]]:
    """YOLO-style loss of a batch.

    ``output`` ``(B, 6, Gh, Gw)`` raw network output, ``target`` ``(B, 5, Gh, Gw)``
    and ``weight`` ``(B, Gh, Gw)`` from :func:`encode_targets`.

    - objectness: binary cross-entropy with logits, each cell weighted by ``weight``
      (positives carry ``pos_weight``), summed and divided by the number of
      supervised cells (``weight > 0``);
    - coordinates: squared error of sigmoid(x), sigmoid(y) against the offsets and
      of w, h against the log sizes, summed over the 4 terms and averaged over
      positive cells, times ``coord_weight``.

    The class channel is not trained (one class). Computed in float32.
    """
    output = output.float()
    obj_t = target[:, 4]
    bce = F.binary_cross_entropy_with_logits(output[:, 4], obj_t, reduction="none")
    n_sup = (weight > 0).sum().clamp(min=1)
    obj_loss = (bce * weight).sum() / n_sup
    pos = obj_t > 0.5
    n_pos = pos.sum()
    if n_pos > 0:
        pred = torch.stack(
            [torch.sigmoid(output[:, 0]), torch.sigmoid(output[:, 1]), output[:, 2], output[:, 3]],
            dim=1,
        )
        sq = ((pred - target[:, :4]) ** 2).sum(dim=1)
        coord_loss = sq[pos].sum() / n_pos
    else:
        coord_loss = output.sum() * 0.0
    loss = obj_loss + coord_weight * coord_loss
    return loss, {"objectness": float(obj_loss.detach()), "coordinates": float(coord_loss.detach())}


def distillation_loss(
    output: torch.Tensor, teacher_logits: torch.Tensor, weight: torch.Tensor
) -> torch.Tensor:
    """Mean binary cross-entropy of the objectness logits ``output[:, 4]`` against the
    teacher's confidences ``sigmoid(teacher_logits)`` over the unsupervised cells
    (``weight == 0``); 0 when every cell is supervised. Shapes: ``output``
    ``(B, 6, Gh, Gw)``, ``teacher_logits`` and ``weight`` ``(B, Gh, Gw)``."""
    free = weight <= 0
    if not bool(free.any()):
        return output.sum() * 0.0
    target = torch.sigmoid(teacher_logits.float())
    bce = F.binary_cross_entropy_with_logits(output[:, 4].float(), target, reduction="none")
    return bce[free].mean()
