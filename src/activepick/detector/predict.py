"""Prediction: batched forward passes, decoding to original pixels, circle NMS.

Picks come back as a pick table (:mod:`activepick.io.picks`) with status
``predicted``: ``x``, ``y`` the centre in px of the ORIGINAL micrograph (x = column,
y = row, origin top-left), ``confidence`` = sigmoid(objectness) of the cell,
``diameter`` = ``config.diameter`` (the box size the model was trained with; the
decoded box size is not used, so every pick of one model has the same size).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ..constants import STATUS_PREDICTED
from ..errors import Cancelled
from ..io.picks import empty_picks, make_picks, now_utc
from ..matching import nms
from ..progress import drive
from .config import auto_input_size
from .data import (
    SHAPE_KEEPING_VIEWS,
    VIEWS,
    Prepare,
    as_micrographs,
    default_prepare,
    from_input_points,
    inverse_transform_image,
    micrograph_shape,
    transform_image,
)
from .networks import Detector
from .targets import decode_grid

#: Extra column of the pick table returned with ``mc_dropout`` or ``tta``.
DISAGREEMENT_COLUMN = "disagreement"


def _batches(mics: list, batch_size: int) -> list[list[int]]:
    return [list(range(i, min(i + batch_size, len(mics)))) for i in range(0, len(mics), batch_size)]


def _amp_dtype(device: torch.device):
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _forward(detector: Detector, x: torch.Tensor, mc_dropout: int, tta: bool, seed: int):
    """Raw output (B, 6, Gh, Gw) and, if asked, the per-cell confidence std (B, Gh, Gw)."""
    net = detector.network
    dtype = _amp_dtype(x.device)
    with torch.autocast(x.device.type, dtype=dtype, enabled=dtype is not None):
        feats = net.features(x)
        out = net.head(feats).float()
        spread = None
        if mc_dropout > 0:
            conv = net.head[-1]
            p = float(net.head[0].p)
            with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
                torch.manual_seed(seed)
                confs = [
                    torch.sigmoid(conv(F.dropout(feats, p, training=True))[:, 4].float())
                    for _ in range(mc_dropout)
                ]
            spread = torch.stack(confs).std(dim=0, unbiased=False)
        elif tta:
            square = x.shape[-1] == x.shape[-2]
            confs = []
            for view in VIEWS if square else SHAPE_KEEPING_VIEWS:
                o = net(transform_image(x, view))[:, 4].float()
                confs.append(torch.sigmoid(inverse_transform_image(o, view)))
            spread = torch.stack(confs).std(dim=0, unbiased=False)
    return out, spread


def _picks_of_image(
    output: torch.Tensor,
    spread: torch.Tensor | None,
    scale: tuple[float, float],
    shape: tuple[int, int],
    diameter: float,
    threshold: float,
    nms_iou: float,
) -> dict[str, np.ndarray]:
    """Decoded, thresholded, NMS-filtered picks of one image in original px."""
    anchor = diameter * 0.5 * (scale[0] + scale[1])
    cells = decode_grid(output, anchor)
    xy = from_input_points(np.stack([cells["u"], cells["v"]], axis=1), scale)
    h, w = shape
    inside = (xy[:, 0] >= -0.5) & (xy[:, 0] < w - 0.5) & (xy[:, 1] >= -0.5) & (xy[:, 1] < h - 0.5)
    keep = inside & (cells["confidence"] >= threshold)
    idx = np.flatnonzero(keep)
    xy = xy[idx]
    xy[:, 0] = np.clip(xy[:, 0], 0.0, w - 1.0)
    xy[:, 1] = np.clip(xy[:, 1], 0.0, h - 1.0)
    conf = cells["confidence"][idx]
    if len(idx) > 1 and nms_iou < 1.0:
        kept = nms(xy, np.full(len(idx), diameter / 2.0), conf, iou_threshold=nms_iou)
    else:
        kept = np.arange(len(idx))
    kept = kept[np.argsort(-conf[kept], kind="stable")]
    result = {"x": xy[kept, 0], "y": xy[kept, 1], "confidence": conf[kept]}
    if spread is not None:
        flat = spread.detach().float().cpu().numpy().reshape(-1)
        result[DISAGREEMENT_COLUMN] = flat[idx[kept]].astype(np.float64)
    return result


def iter_predict_picks(
    detector: Detector,
    micrographs: Sequence,
    *,
    threshold: float = 0.0,
    nms_iou: float | None = None,
    batch_size: int = 4,
    mc_dropout: int = 0,
    tta: bool = False,
    seed: int = 0,
    should_stop: Callable[[], bool] | None = None,
    prepare: Prepare | None = None,
) -> Generator[dict, None, pd.DataFrame]:
    """Predict picks; yield ``{"stage": "predict", "step", "total", "micrograph"}``
    after every micrograph and return the pick table (``StopIteration.value``).

    See :func:`predict_picks` for the arguments and the table.
    """
    prepare = default_prepare if prepare is None else prepare
    if mc_dropout and tta:
        raise ValueError("choose one of mc_dropout and tta")
    mics = as_micrographs(micrographs)
    cfg = detector.config
    nms_iou = cfg.nms_iou if nms_iou is None else float(nms_iou)
    device = detector.device
    network = detector.network
    was_training = network.training
    network.eval().to(memory_format=torch.channels_last)  # ~2x faster convolutions on CPU
    tables = []
    done = 0
    try:
        for batch in _batches(mics, batch_size):
            if should_stop is not None and should_stop():
                raise Cancelled(f"prediction cancelled after {done} of {len(mics)} micrographs")
            prepared = [
                prepare(
                    mics[i],
                    cfg.input_size or auto_input_size(max(micrograph_shape(mics[i])), cfg.diameter),
                )
                for i in batch
            ]
            groups: dict[tuple[int, int], list[int]] = {}
            for j, (img, _) in enumerate(prepared):
                groups.setdefault(tuple(img.shape[-2:]), []).append(j)
            results: dict[int, dict] = {}
            for members in groups.values():
                x = torch.stack([prepared[j][0] for j in members]).to(
                    device, memory_format=torch.channels_last
                )
                with torch.inference_mode():
                    out, spread = _forward(detector, x, mc_dropout, tta, seed)
                for k, j in enumerate(members):
                    m = mics[batch[j]]
                    results[j] = _picks_of_image(
                        out[k],
                        None if spread is None else spread[k],
                        prepared[j][1],
                        micrograph_shape(m),
                        cfg.diameter,
                        threshold,
                        nms_iou,
                    )
            for j, i in enumerate(batch):
                r = results[j]
                table = make_picks(
                    mics[i].name,
                    r["x"],
                    r["y"],
                    cfg.diameter,
                    r["confidence"],
                    STATUS_PREDICTED,
                    0,
                    now_utc(),
                )
                if DISAGREEMENT_COLUMN in r:
                    table[DISAGREEMENT_COLUMN] = r[DISAGREEMENT_COLUMN]
                tables.append(table)
                done += 1
                yield {
                    "stage": "predict",
                    "step": done,
                    "total": len(mics),
                    "micrograph": mics[i].name,
                }
    finally:
        network.train(was_training)
    tables = [t for t in tables if len(t)]
    if not tables:
        out = empty_picks()
        if mc_dropout or tta:
            out[DISAGREEMENT_COLUMN] = pd.Series(dtype=np.float64)
        return out
    return pd.concat(tables, ignore_index=True)


def predict_picks(
    detector: Detector,
    micrographs: Sequence,
    *,
    threshold: float = 0.0,
    nms_iou: float | None = None,
    batch_size: int = 4,
    mc_dropout: int = 0,
    tta: bool = False,
    seed: int = 0,
    progress: Callable[[dict], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    prepare: Prepare | None = None,
) -> pd.DataFrame:
    """Pick particles on ``micrographs`` (Micrograph objects or 2-D arrays).

    Each micrograph is resized / normalised / padded as in training (a detector
    without an input size, the general model, uses the automatic size for its
    diameter, :func:`activepick.detector.config.auto_input_size`), passed through
    the network in batches of ``batch_size`` (eval mode), decoded to centres in
    ORIGINAL px (x = column, y = row, origin top-left), filtered to
    ``confidence >= threshold`` and reduced by circle-IoU NMS at ``nms_iou``
    (default ``config.nms_iou``; radius ``config.diameter / 2``), most confident
    first per micrograph. Returns a pick table (status ``predicted``, diameter
    ``config.diameter``).

    ``mc_dropout=T > 0``: T extra passes of the head with its dropout on (seeded by
    ``seed``); column ``disagreement`` = population std of the confidence at each
    pick's grid cell across the T passes. ``tta=True``: the 8 flips / quarter turns
    (4 shape-keeping ones on non-square inputs); ``disagreement`` = std across the
    views at the cell. Confidences always come from the plain pass.
    ``progress(dict)`` is called per micrograph; ``should_stop()`` is checked per
    batch and raises :class:`activepick.errors.Cancelled`. ``prepare(micrograph,
    input_size) -> (tensor (1, Hp, Wp), (sx, sy))`` makes each network input
    (default :func:`~activepick.detector.data.default_prepare`, i.e. ``prepare_image``
    of the pixels; e.g. ``input_cache.prepared_input`` through a session's cache).
    """
    gen = iter_predict_picks(
        detector,
        micrographs,
        threshold=threshold,
        nms_iou=nms_iou,
        batch_size=batch_size,
        mc_dropout=mc_dropout,
        tta=tta,
        seed=seed,
        should_stop=should_stop,
        prepare=prepare,
    )
    return drive(gen, progress)
