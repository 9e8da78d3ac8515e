"""Training: a generator that yields progress after every step and returns a Detector.

``iter_train_detector`` is the worker the napari layer wraps in ``thread_worker``
(it may cancel at any yield); ``train_detector`` drives it for scripts and the CLI.
Micrographs are resized so the long side is ``config.input_size``, normalised per
image, padded to a multiple of 32 and augmented with random flips / quarter turns
(non-square images: only the shape-keeping ones). Training is seeded: on CPU two
runs with the same data and config give identical weights.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Collection, Generator, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ..errors import Cancelled, CheckpointError, CoordinateError, MicrographError
from ..io.picks import empty_picks, positive_picks
from ..progress import ProgressFn, StopFn, drive
from .config import DetectorConfig, auto_input_size
from .data import (
    Prepare,
    as_micrographs,
    default_prepare,
    micrograph_shape,
    padded_shape,
    random_view,
    to_input_points,
    transform_image,
    transform_points,
)
from .networks import Detector, network_for_config, resolve_device
from .regions import (
    NO_REGIONS,
    region_cells,
    sample_regions,
    shift_regions,
    transform_regions,
)
from .targets import (
    detector_loss,
    distillation_loss,
    encode_targets,
    grid_shape,
    supervised_cells,
)

#: Partial labels: background always within this many diameters of a label.
INNER_RING = 0.5
#: Outer-ring cells where the initial model's confidence reaches this are not taught
#: as background (a crowded, unlabelled neighbour).
PROTECT_CONFIDENCE = 0.5


@dataclass
class _Sample:
    """One prepared training micrograph (edge coordinates of the padded input)."""

    name: str
    image: torch.Tensor  # (1, Hp, Wp)
    positives: np.ndarray  # (N, 2)
    sizes: np.ndarray  # (N,) box sizes in input px
    negatives: np.ndarray  # (M, 2)
    complete: bool
    anchor: float  # box size (config.diameter) in input px
    # complete regions (u, v, r) in input px: every cell inside is supervised (regions.py)
    regions: np.ndarray = field(default_factory=lambda: NO_REGIONS)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.image.shape[-2:])


def _rows_for(table: pd.DataFrame, name: str) -> pd.DataFrame:
    return table[table["micrograph"].astype(str) == name]


def _prepare_samples(
    micrographs: list,
    labels: pd.DataFrame,
    negatives: pd.DataFrame,
    config: DetectorConfig,
    partial: bool,
    complete: Collection[str],
    prepare: Prepare = default_prepare,
    complete_regions: pd.DataFrame | None = None,
) -> list[_Sample]:
    samples = []
    for m in micrographs:
        pos = _rows_for(labels, m.name)
        neg = _rows_for(negatives, m.name)
        is_complete = m.name in complete
        has_regions = complete_regions is not None and len(_rows_for(complete_regions, m.name))
        if partial and len(pos) == 0 and len(neg) == 0 and not is_complete and not has_regions:
            continue  # nothing reviewed on this micrograph: no loss to compute
        image, scale = prepare(m, config.input_size)
        mean_scale = 0.5 * (scale[0] + scale[1])
        samples.append(
            _Sample(
                name=m.name,
                image=image,
                positives=to_input_points(pos[["x", "y"]].to_numpy(), scale),
                sizes=pos["diameter"].to_numpy(dtype=np.float64) * mean_scale,
                negatives=to_input_points(neg[["x", "y"]].to_numpy(), scale),
                complete=is_complete,
                anchor=config.diameter * mean_scale,
                regions=sample_regions(complete_regions, m.name, scale),
            )
        )
    return samples


def _zoom(image: torch.Tensor, zoom: float) -> torch.Tensor:
    """Resize (1, H, W) by ``zoom`` (bilinear) and pad to a multiple of 32."""
    h, w = image.shape[-2:]
    nh, nw = max(32, int(round(h * zoom))), max(32, int(round(w * zoom)))
    out = F.interpolate(image[None], size=(nh, nw), mode="bilinear", align_corners=False)[0]
    ph, pw = padded_shape((nh, nw))
    return F.pad(out, (0, pw - nw, 0, ph - nh))


def crop_sample(sample: _Sample, crop: int, rng: np.random.Generator, partial: bool) -> _Sample:
    """A ``crop`` x ``crop`` window of ``sample`` (zero-padded where the image is
    smaller). With partial labels on a micrograph that is not complete, the window
    is centred within ``crop / 4`` of a random label, rejection or complete region's
    centre; else anywhere."""
    h, w = sample.shape
    points = np.zeros((0, 2))
    if partial and not sample.complete:
        points = np.concatenate([sample.positives, sample.negatives, sample.regions[:, :2]])
        points = points.reshape(-1, 2)
    if len(points):
        centre = points[int(rng.integers(len(points)))] + rng.uniform(-crop / 4, crop / 4, 2)
        x0, y0 = (int(round(c - crop / 2)) for c in centre)
    else:
        x0, y0 = (
            int(rng.integers(0, max(w - crop, 0) + 1)),
            int(rng.integers(0, max(h - crop, 0) + 1)),
        )
    x0, y0 = min(max(x0, 0), max(w - crop, 0)), min(max(y0, 0), max(h - crop, 0))
    image = sample.image[:, y0 : y0 + crop, x0 : x0 + crop]
    image = F.pad(image, (0, crop - image.shape[-1], 0, crop - image.shape[-2]))
    shift = np.array([x0, y0], dtype=np.float64)

    def inside(uv: np.ndarray) -> np.ndarray:
        uv = uv - shift
        return (uv[:, 0] >= 0) & (uv[:, 0] < crop) & (uv[:, 1] >= 0) & (uv[:, 1] < crop)

    keep_pos, keep_neg = inside(sample.positives), inside(sample.negatives)
    return _Sample(
        name=sample.name,
        image=image,
        positives=sample.positives[keep_pos] - shift,
        sizes=sample.sizes[keep_pos],
        negatives=sample.negatives[keep_neg] - shift,
        complete=sample.complete,
        anchor=sample.anchor,
        regions=shift_regions(sample.regions, shift),
    )


def _jittered(image: torch.Tensor, jitter: float, rng: np.random.Generator) -> torch.Tensor:
    """Contrast gain in [1 - jitter, 1 + jitter] and added noise of SD [0, jitter]."""
    gain = rng.uniform(1.0 - jitter, 1.0 + jitter)
    noise = rng.standard_normal(tuple(image.shape), dtype=np.float32)
    return image * float(gain) + torch.from_numpy(noise) * float(rng.uniform(0.0, jitter))


def _encode_sample(
    sample: _Sample,
    view: tuple[int, bool],
    config: DetectorConfig,
    partial: bool,
    zoom: float = 1.0,
    rng: np.random.Generator | None = None,
) -> tuple[torch.Tensor, np.ndarray, np.ndarray, np.ndarray]:
    """Augmented image (1, H', W'), target (5, Gh, Gw), weight (Gh, Gw) and the
    ``outer`` ring (Gh, Gw bool) of partial labels.

    Partial labels (a micrograph not complete) supervise the label cells, each
    rejection's cell, and background in a ring around each label: always within
    :data:`INNER_RING` diameters (the label's own particle seen off-centre; no
    neighbour's centre can be that close), and out to ``config.ring`` diameters in
    the ``outer`` cells, which the training step leaves out where the initial
    model sees a particle (a crowded neighbour). ``zoom`` != 1 rescales image,
    centres and sizes (edge coordinates scale exactly); ``rng`` with
    ``config.jitter`` > 0 adds contrast / noise jitter.
    """
    image = transform_image(sample.image, view)
    pos = transform_points(sample.positives, sample.shape, view)
    neg = transform_points(sample.negatives, sample.shape, view)
    sizes = sample.sizes
    if zoom != 1.0:
        image = _zoom(image, zoom)
        pos, neg, sizes = pos * zoom, neg * zoom, sizes * zoom
    if rng is not None and config.jitter > 0:
        image = _jittered(image, config.jitter, rng)
    grid = grid_shape(tuple(image.shape[-2:]))
    supervised = None
    outer = np.zeros(grid, dtype=bool)
    if partial and not sample.complete:
        radius = sample.anchor * zoom
        supervised = supervised_cells(pos, min(INNER_RING, config.ring) * radius, grid)
        outer = supervised_cells(pos, config.ring * radius, grid) & ~supervised
        supervised = supervised | outer
        if len(sample.regions):  # complete regions: every cell inside (regions.py)
            regions = transform_regions(sample.regions, sample.shape, view, zoom)
            inside = region_cells(regions, grid)
            supervised |= inside
            outer &= ~inside  # a complete region's background is certain
    enc = encode_targets(
        pos,
        sizes,
        grid,
        sample.anchor,
        negatives=neg,
        supervised=supervised,
        pos_weight=config.pos_weight,
        neg_weight=config.neg_weight,
    )
    return image, enc.target, enc.weight, outer & (enc.weight == 1.0)


def _epoch_batches(
    samples: list[_Sample], batch_size: int, rng: np.random.Generator, cropped: bool = False
) -> list[list[int]]:
    """Shuffled batches of sample indices; every batch holds one input shape. With
    ``cropped`` (crops share one shape) every batch is ``batch_size`` samples drawn
    with replacement, ``ceil(n / batch_size)`` batches an epoch."""
    if cropped:
        n = len(samples)
        return [rng.integers(0, n, batch_size).tolist() for _ in range(-(-n // batch_size))]
    buckets: dict[tuple[int, int], list[int]] = {}
    for i in rng.permutation(len(samples)):
        buckets.setdefault(samples[int(i)].shape, []).append(int(i))
    return [
        idx[j : j + batch_size] for idx in buckets.values() for j in range(0, len(idx), batch_size)
    ]


def _steps_per_epoch(samples: list[_Sample], batch_size: int, cropped: bool = False) -> int:
    if cropped:
        return -(-len(samples) // batch_size)
    counts: dict[tuple[int, int], int] = {}
    for s in samples:
        counts[s.shape] = counts.get(s.shape, 0) + 1
    return sum(-(-n // batch_size) for n in counts.values())


def _autocast(device: torch.device):
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _freeze_norm(network: torch.nn.Module) -> None:
    """Put every BatchNorm layer in eval mode (running statistics stay fixed)."""
    for module in network.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.eval()


def _holdout_split(
    samples: list[_Sample], fraction: float, rng: np.random.Generator
) -> tuple[list[_Sample], list[_Sample]]:
    """(train, held out): ``max(1, round(fraction * n))`` samples held out when
    ``fraction > 0`` and at least 2 samples have positives; else (samples, [])."""
    with_pos = [i for i, s in enumerate(samples) if len(s.positives)]
    if fraction <= 0 or len(with_pos) < 2:
        return samples, []
    n_out = min(max(1, int(round(fraction * len(samples)))), len(with_pos) - 1)
    out = set(rng.choice(with_pos, n_out, replace=False).tolist())
    return [s for i, s in enumerate(samples) if i not in out], [samples[i] for i in sorted(out)]


def _holdout_loss(
    network: torch.nn.Module,
    held: list[_Sample],
    config: DetectorConfig,
    partial: bool,
    device: torch.device,
) -> float:
    """Mean loss on the held-out samples (no augmentation, eval mode)."""
    was = network.training
    network.eval()
    total = 0.0
    with torch.inference_mode():
        for s in held:
            img, tgt, wgt, _ = _encode_sample(s, (0, False), config, partial)
            out = network(img[None].to(device, memory_format=torch.channels_last))
            loss, _ = detector_loss(
                out,
                torch.as_tensor(tgt[None]).to(device),
                torch.as_tensor(wgt[None]).to(device),
                coord_weight=config.coord_weight,
            )
            total += float(loss)
    network.train(was)
    return total / max(len(held), 1)


def _initial_network(config: DetectorConfig, init: Detector | None) -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        network = network_for_config(config)
    if init is not None:
        same = init.config.arch == config.arch and init.config.channel_width == config.channel_width
        if not same:
            raise CheckpointError(
                f"warm start: the initial model is {init.config.arch} (width {init.config.channel_width}) "
                f"but the config asks for {config.arch} (width {config.channel_width})"
            )
        network.load_state_dict(copy.deepcopy(init.network.state_dict()))
    return network


def _teacher(
    init: Detector | None, config: DetectorConfig, partial: bool, device: torch.device
) -> torch.nn.Module | None:
    """A frozen copy of the initial network for the distillation loss (None when
    ``config.distill`` is 0, labels are complete or there is no initial model)."""
    if init is None or not partial or config.distill <= 0:
        return None
    teacher = copy.deepcopy(init.network).to(device, memory_format=torch.channels_last)
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


def _teacher_logits(teacher: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The teacher's objectness logits ``(B, Gh, Gw)`` on the batch (no gradient)."""
    with torch.no_grad():
        return teacher(x)[:, 4].float()


def iter_train_detector(
    micrographs: Sequence,
    labels: pd.DataFrame | None,
    config: DetectorConfig,
    *,
    negatives: pd.DataFrame | None = None,
    init: Detector | None = None,
    partial: bool = False,
    complete: Collection[str] | None = None,
    should_stop: StopFn | None = None,
    prepare: Prepare | None = None,
    complete_regions: pd.DataFrame | None = None,
) -> Generator[dict, None, Detector]:
    """Train a detector; yield a progress dict after every optimiser step.

    - ``micrographs``: Micrograph objects (``.name``, ``.data`` 2-D, rows = y) or arrays.
    - ``labels``: pick table; rows of a positive status are particles (centres in
      px of the original micrograph), matched to micrographs by name; other rows
      and rows of unknown micrographs are ignored.
    - ``negatives``: pick table of explicit rejections (any status): their cells
      get objectness 0 with weight ``config.neg_weight``.
    - ``init``: a Detector to fine-tune from (same arch and width); when
      ``config.input_size`` is None its input size is reused, unless it has none
      (the general model, :func:`activepick.detector.general.load_general_detector`):
      then the automatic size for ``config.diameter`` is used. With
      ``config.freeze_norm`` its BatchNorm statistics stay fixed.
    - ``config.steps`` (when set) is the number of optimiser steps, whatever the
      number of micrographs; else ``config.epochs`` passes over them.
    - ``partial``: False (thesis) = every unlabelled cell is background; True = the
      objectness loss only covers cells within ``config.ring`` diameters of a label
      (beyond :data:`INNER_RING`, only where the initial model sees no particle; the
      rest follows the initial model with ``config.distill``), the cell
      of each rejection (at ``config.neg_weight``), and every cell of the
      micrographs named in ``complete`` (fully picked), and every cell inside
      ``complete_regions`` (a table of circles: ``micrograph``, ``x``, ``y``,
      ``diameter``, px of the original micrograph; :mod:`.regions`).
    - ``should_stop``: checked before every step; when true raises
      :class:`activepick.errors.Cancelled`.
    - ``prepare(micrograph, input_size) -> (tensor, scale)``: each micrograph's
      network input (default :func:`~activepick.detector.data.default_prepare`; e.g.
      ``input_cache.prepared_input`` through a session's cache).

    Yields ``{"stage": "train", "epoch", "epochs", "step", "steps", "total", "loss"}``
    (epoch and step count from 1; ``total`` = ``steps``). Returns (as
    ``StopIteration.value``) the trained :class:`Detector`, in eval mode, whose
    config has the resolved ``input_size`` and whose ``meta`` summarises training.
    """
    mics = as_micrographs(micrographs)
    if not mics:
        raise MicrographError("no micrographs to train on")
    labels = positive_picks(labels) if labels is not None and len(labels) else empty_picks()
    negatives = negatives if negatives is not None else empty_picks()
    complete = set(complete or ())
    input_size = config.input_size
    if input_size is None:
        long_side = max(max(micrograph_shape(m)) for m in mics)
        input_size = (
            init.config.input_size
            if init is not None and init.config.input_size is not None
            else auto_input_size(long_side, config.diameter)
        )
    config = replace(config, input_size=int(input_size))

    samples = _prepare_samples(
        mics,
        labels,
        negatives,
        config,
        partial,
        complete,
        prepare or default_prepare,
        complete_regions=complete_regions,
    )
    if not samples:
        raise CoordinateError(
            "partial labels: no micrograph has a label, a rejection or is marked complete"
        )
    rng = np.random.default_rng(config.seed)
    samples, held = _holdout_split(samples, config.holdout, rng)
    device = resolve_device(config.device)
    network = _initial_network(config, init).to(device, memory_format=torch.channels_last)
    optimiser = torch.optim.Adam(network.parameters(), lr=config.lr)
    amp_dtype = _autocast(device)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed + 1)
        torch_state = torch.get_rng_state()
    cropped = config.crop is not None
    steps_per_epoch = _steps_per_epoch(samples, config.batch_size, cropped)
    total = steps_per_epoch * config.epochs if config.steps is None else int(config.steps)
    epochs = -(-total // steps_per_epoch) if total else 0
    check_every = max(1, total // config.eval_points) if held else 0
    best = (float("inf"), 0, None)
    step = 0
    loss_value = float("nan")
    started = time.perf_counter()
    network.train()
    frozen = init is not None and config.freeze_norm
    if frozen:
        _freeze_norm(network)
    teacher = _teacher(init, config, partial, device)
    for epoch in range(1, epochs + 1):
        for batch in _epoch_batches(samples, config.batch_size, rng, cropped):
            if step >= total:
                break
            if should_stop is not None and should_stop():
                raise Cancelled(f"training cancelled after {step} of {total} steps")
            images, targets, weights, rings = [], [], [], []
            zoom = 1.0
            if config.scale_jitter > 0:
                zoom = float(rng.uniform(1 - config.scale_jitter, 1 + config.scale_jitter))
            for i in batch:
                s = samples[i]
                if cropped:
                    s = crop_sample(s, config.crop, rng, partial)
                square = s.shape[0] == s.shape[1]
                view = random_view(rng, square) if config.augment else (0, False)
                img, tgt, wgt, ring = _encode_sample(s, view, config, partial, zoom, rng)
                images.append(img)
                targets.append(tgt)
                weights.append(wgt)
                rings.append(ring)
            x = torch.stack(images).to(device, memory_format=torch.channels_last)
            t = torch.as_tensor(np.stack(targets)).to(device)
            w = torch.as_tensor(np.stack(weights)).to(device)
            with torch.random.fork_rng(devices=[]):
                torch.set_rng_state(torch_state)
                optimiser.zero_grad(set_to_none=True)
                with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                    out = network(x)
                    taught = None if teacher is None else _teacher_logits(teacher, x)
                if taught is not None:  # the initial model's particles in the outer ring
                    seen = torch.sigmoid(taught) >= PROTECT_CONFIDENCE
                    w = torch.where(torch.as_tensor(np.stack(rings)).to(device) & seen, 0.0, w)
                loss, _parts = detector_loss(out, t, w, coord_weight=config.coord_weight)
                if taught is not None:
                    loss = loss + config.distill * distillation_loss(out, taught, w)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.step(optimiser)
                    scaler.update()
                else:
                    loss.backward()
                    optimiser.step()
                torch_state = torch.get_rng_state()
            step += 1
            loss_value = float(loss.detach())
            if check_every and (step % check_every == 0 or step == total):
                held_loss = _holdout_loss(network, held, config, partial, device)
                if frozen:
                    _freeze_norm(network)
                if held_loss < best[0]:
                    state = {k: v.detach().clone() for k, v in network.state_dict().items()}
                    best = (held_loss, step, state)
            yield {
                "stage": "train",
                "epoch": epoch,
                "epochs": epochs,
                "step": step,
                "steps": total,
                "total": total,
                "loss": loss_value,
            }
    if best[2] is not None:
        network.load_state_dict(best[2])
    network.eval()
    meta = {
        "epochs": epochs,
        "steps": step,
        "best_step": best[1] if held else None,
        "holdout_loss": best[0] if held else None,
        "n_held_out": len(held),
        "final_loss": loss_value,
        "train_time_s": round(time.perf_counter() - started, 3),
        "device": str(device),
        "input_size": config.input_size,
        "n_micrographs": len(samples) + len(held),
        "micrographs": [s.name for s in samples],
        "n_labels": int(sum(len(s.positives) for s in samples)),
        "n_negatives": int(sum(len(s.negatives) for s in samples)),
        "partial": bool(partial),
        "n_complete": int(sum(s.complete for s in samples)),
        "n_complete_regions": int(sum(len(s.regions) for s in samples)),
        "warm_start": init is not None,
        "init": None if init is None else ("general" if init.meta.get("general") else "model"),
    }
    return Detector(network, config, meta)


def train_detector(
    micrographs: Sequence,
    labels: pd.DataFrame | None,
    config: DetectorConfig,
    *,
    negatives: pd.DataFrame | None = None,
    init: Detector | None = None,
    partial: bool = False,
    complete: Collection[str] | None = None,
    progress: ProgressFn | None = None,
    should_stop: StopFn | None = None,
    prepare: Prepare | None = None,
    complete_regions: pd.DataFrame | None = None,
) -> Detector:
    """Run :func:`iter_train_detector` to the end, calling ``progress(dict)`` per step.

    Raises :class:`activepick.errors.Cancelled` once ``should_stop()`` is true
    (checked before every step).
    """
    gen = iter_train_detector(
        micrographs,
        labels,
        config,
        negatives=negatives,
        init=init,
        partial=partial,
        complete=complete,
        should_stop=should_stop,
        prepare=prepare,
        complete_regions=complete_regions,
    )
    return drive(gen, progress)
