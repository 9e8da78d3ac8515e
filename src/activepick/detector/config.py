"""Detector settings: one dataclass, serialised to the checkpoint's JSON sidecar.

Sizes are in pixels of the ORIGINAL micrograph unless a name says otherwise
(``input_size`` is the long side of the resized network input).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from ..constants import DEFAULT_NMS_IOU
from ..errors import ActivePickError

#: Architectures :func:`activepick.detector.build_network` knows.
ARCHITECTURES: tuple[str, ...] = ("light", "full")
#: Channel scale of the light variant (x0.25 of the thesis table, ~3.2 M parameters).
DEFAULT_LIGHT_WIDTH = 0.25
#: Stride of the detection grid in input pixels (64 x 64 cells for a 1024 px input).
GRID_STRIDE = 16
#: The input's height and width are padded to a multiple of this (the backbone stride).
INPUT_MULTIPLE = 32
#: Automatic input size: the particle diameter is scaled to about this many input
#: pixels (about 2 grid cells of stride 16), then the long side is clamped.
TARGET_DIAMETER_PX = 32.0
MIN_INPUT_SIZE = 256
MAX_INPUT_SIZE = 1024
#: Adam learning rate when fine-tuning (from the general model or a checkpoint);
#: docs/model_card.md.
FINETUNE_LR = 3e-4
#: Devices a config may name.
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")

#: Sane bounds of the numeric settings, ``name: (low, high, kind)``; a value outside
#: them is refused (a corrupt sidecar once asked for width 64 = 4.8 GB of weights, or
#: input 65536 = 17 GB per image). ``kind`` "int" refuses fractions. Bounds are
#: inclusive except ``diameter``, ``lr`` and ``width`` (> 0) and ``dropout`` (< 1).
LIMITS: dict[str, tuple[float, float, str]] = {
    "diameter": (0.0, 10_000.0, "float"),
    "input_size": (INPUT_MULTIPLE, 8192, "int"),
    "epochs": (0, 100_000, "int"),
    "batch_size": (1, 1024, "int"),
    "lr": (0.0, 10.0, "float"),
    "seed": (-(2**63), 2**63 - 1, "int"),
    "width": (0.0, 1.0, "float"),
    "nms_iou": (0.0, 1.0, "float"),
    "pos_weight": (0.0, 1e6, "float"),
    "neg_weight": (0.0, 1e6, "float"),
    "coord_weight": (0.0, 1e6, "float"),
    "dropout": (0.0, 1.0, "float"),
    "steps": (0, 10_000_000, "int"),
    "jitter": (0.0, 1.0, "float"),
    "scale_jitter": (0.0, 0.5, "float"),
    "holdout": (0.0, 1.0, "float"),
    "eval_points": (1, 10_000, "int"),
    "crop": (INPUT_MULTIPLE, 8192, "int"),
    "ring": (0.0, 2.0, "float"),
    "distill": (0.0, 1e3, "float"),
}
_OPEN_LOW = ("diameter", "lr", "width")
_OPEN_HIGH = ("dropout", "jitter", "scale_jitter", "holdout")


class ConfigError(ActivePickError, ValueError):
    """A detector setting has the wrong type or lies outside :data:`LIMITS`."""


def _check_number(name: str, value: Any) -> None:
    low, high, kind = LIMITS[name]
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not is_number or (kind == "int" and isinstance(value, float) and not value.is_integer()):
        what = "a whole number" if kind == "int" else "a number"
        raise ConfigError(f"{name} must be {what}, not {value!r}")
    if not math.isfinite(value):
        raise ConfigError(f"{name} must be finite, not {value!r}")
    too_low = value <= low if name in _OPEN_LOW else value < low
    too_high = value >= high if name in _OPEN_HIGH else value > high
    if too_low or too_high:
        lo = f"> {low:g}" if name in _OPEN_LOW else f">= {low:g}"
        hi = f"< {high:g}" if name in _OPEN_HIGH else f"<= {high:g}"
        raise ConfigError(f"{name} must be {lo} and {hi}, not {value!r}")


@dataclass
class DetectorConfig:
    """Settings of one detector: architecture, input scaling, training and prediction.

    - ``arch``: ``"light"`` (channel widths x ``width``, default on CPU) or ``"full"``
      (PhosaurusNet as the thesis table, ~50 M parameters).
    - ``diameter``: particle diameter = box size = anchor, in px of the ORIGINAL
      micrograph.
    - ``input_size``: long side of the network input after resizing (aspect ratio
      kept, then padded to a multiple of 32); ``None`` = :func:`auto_input_size`
      at training time (the trained detector stores the resolved value).
    - ``epochs``, ``batch_size``, ``lr`` (Adam), ``seed`` (weights init, shuffling,
      augmentation, dropout), ``device`` (``"auto"`` = CUDA when present).
    - ``width``: channel scale of the light variant (``None`` = 0.25); ignored by
      ``"full"``.
    - ``nms_iou``: circle-IoU threshold of non-maximum suppression at prediction.
    - Loss: ``pos_weight`` (objectness weight of a cell holding a particle),
      ``neg_weight`` (weight of a cell holding an explicit rejection),
      ``coord_weight`` (weight of the offset / log-size MSE).
    - ``augment``: random flips and 90-degree rotations during training.
    - ``dropout``: dropout before the detection conv (0.2 as the thesis).
    - ``steps``: optimiser steps per training run; when set it replaces ``epochs``
      (the budget then does not grow with the number of labelled micrographs).
    - ``jitter``: contrast and noise jitter of the normalised input: gain drawn
      from [1 - jitter, 1 + jitter], added Gaussian noise of SD [0, jitter]
      (0 = off).
    - ``scale_jitter``: each batch is zoomed by a factor in [1 - s, 1 + s]
      (0 = off); particle sizes scale with it.
    - ``holdout``: fraction of the trained micrographs held out for model
      selection (early stopping): their loss is checked ``eval_points`` times
      and the weights of the best check are kept (0 = off; needs >= 2 micrographs).
    - ``freeze_norm``: when fine-tuning (``init`` given), keep the BatchNorm
      statistics of the initial model (few labels give poor batch statistics).
    - ``crop``: train on square crops of this many input px (a multiple of 32)
      instead of whole micrographs: with partial labels each crop is centred near
      a random label or rejection, else drawn anywhere (None = whole micrographs).
    - ``ring``: with partial labels, the cells within ``ring`` diameters of a label
      (other than its own) are background: the same particle seen off-centre.
      Crowded neighbours sit at least ~0.8 diameters away, so 0.5 never teaches an
      unlabelled neighbour as background.
    - ``distill``: with partial labels and an initial model, weight of a
      distillation loss on the unsupervised cells: their objectness follows the
      initial model's (binary cross-entropy to its confidence) instead of being
      left free (0 = off).
    """

    arch: str = "light"
    diameter: float = 64.0
    input_size: int | None = None
    epochs: int = 40
    # batch 2 at lr 3e-3 converges in fewer epochs than batch 4 at 1e-3 for the same compute
    # (docs/benchmarks/detector.md, "Training settings"): on simulated 512 px micrographs,
    # input 256, F1 at T_opt after 20 epochs 0.99 (batch 2, 3e-3) vs 0.88 (batch 4, 1e-3).
    batch_size: int = 2
    lr: float = 3e-3
    seed: int = 0
    device: str = "auto"
    width: float | None = None
    nms_iou: float = DEFAULT_NMS_IOU
    pos_weight: float = 10.0
    neg_weight: float = 5.0
    coord_weight: float = 1.0
    augment: bool = True
    dropout: float = 0.2
    steps: int | None = None
    jitter: float = 0.0
    scale_jitter: float = 0.0
    holdout: float = 0.0
    eval_points: int = 10
    freeze_norm: bool = True
    crop: int | None = None
    ring: float = 0.5
    distill: float = 0.0

    def __post_init__(self) -> None:
        """Check every field's type and :data:`LIMITS`; raises :class:`ConfigError`."""
        if not isinstance(self.arch, str) or self.arch not in ARCHITECTURES:
            raise ConfigError(f"arch must be one of {ARCHITECTURES}, not {self.arch!r}")
        if not isinstance(self.device, str) or self.device not in DEVICES:
            raise ConfigError(f"device must be one of {DEVICES}, not {self.device!r}")
        for flag in ("augment", "freeze_norm"):
            if not isinstance(getattr(self, flag), bool):
                raise ConfigError(f"{flag} must be true or false, not {getattr(self, flag)!r}")
        for name in LIMITS:
            value = getattr(self, name)
            if value is None and name in ("input_size", "width", "steps", "crop"):
                continue
            _check_number(name, value)
        if self.crop is not None:
            self.crop = int(self.crop)
            if self.crop % INPUT_MULTIPLE:
                raise ConfigError(f"crop must be a multiple of {INPUT_MULTIPLE}, not {self.crop!r}")
        if self.input_size is not None:
            self.input_size = int(self.input_size)
            if self.input_size % INPUT_MULTIPLE:
                raise ConfigError(
                    f"input_size must be a multiple of {INPUT_MULTIPLE}, not {self.input_size!r}"
                )
        self.epochs, self.batch_size, self.seed = (
            int(self.epochs),
            int(self.batch_size),
            int(self.seed),
        )
        if self.steps is not None:
            self.steps = int(self.steps)
        self.eval_points = int(self.eval_points)

    @property
    def channel_width(self) -> float:
        """The channel scale actually used: 1.0 for ``"full"``, ``width`` or 0.25 for ``"light"``."""
        if self.arch == "full":
            return 1.0
        return DEFAULT_LIGHT_WIDTH if self.width is None else float(self.width)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DetectorConfig:
        """Inverse of :meth:`to_dict`; unknown keys (from newer versions) are ignored."""
        if not isinstance(data, dict):
            raise ConfigError(f"a detector config is a JSON object, not {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def auto_input_size(long_side: int, diameter: float) -> int:
    """The input long side that scales ``diameter`` to ~32 px (about 2 grid cells).

    ``long_side`` and ``diameter`` are in px of the original micrograph. The result
    is rounded to a multiple of 32 and clamped to [256, 1024]; e.g. a 1024 px
    micrograph with 64 px particles -> 512, a 4096 px one with 200 px -> 640.
    """
    size = long_side * TARGET_DIAMETER_PX / float(diameter)
    size = int(round(size / INPUT_MULTIPLE)) * INPUT_MULTIPLE
    return int(min(max(size, MIN_INPUT_SIZE), MAX_INPUT_SIZE))
