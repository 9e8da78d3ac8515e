"""How a fine-tuning run trains: crops, batch, learning rate and a step budget that
follows the number of labels (docs/model_card.md, "Fine-tuning").

Fine-tuning (from the shipped general model or an earlier detector) trains on
square crops of the network input rather than whole micrographs: a step then
costs the same on a 4k micrograph as on a 1k one, and with partial labels every
crop holds a label. The step budget grows with the labels, so that a fully
labelled set is learnt as thoroughly as training from scratch learns it, while a
round with a few labels stays short. With partial labels the unsupervised cells
follow the initial model (``distill``), so an unlabelled neighbour of a labelled
particle is never taught as background.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .config import FINETUNE_LR, DetectorConfig

#: Input px of a fine-tuning crop, and crops per step.
FINETUNE_CROP = 256
FINETUNE_BATCH = 4
#: The step budget: ``MIN_STEPS + STEPS_PER_LABEL * labels``, at most ``MAX_STEPS``.
MIN_STEPS = 60
STEPS_PER_LABEL = 0.05
MAX_STEPS = 600
#: Partial labels: the learning rate and the weight of the distillation loss on the
#: unsupervised cells. Chosen on a crowded simulated set with a good initial model
#: (F1 0.901 with no labels: 0.920 after 6 labels) and a sparse one with a weak
#: initial model (0.529: 0.676 after 12 labels); lr 3e-4 with distill 1 gave 0.889 /
#: 0.679, lr 1e-4 with distill 3 gave 0.922 / 0.639 (docs/model_card.md).
FINETUNE_LR_PARTIAL = 2e-4
FINETUNE_DISTILL = 2.0


def finetune_steps(n_labels: int) -> int:
    """Optimiser steps of a fine-tuning run on ``n_labels`` particle labels."""
    steps = MIN_STEPS + STEPS_PER_LABEL * max(int(n_labels), 0)
    return int(min(MAX_STEPS, max(MIN_STEPS, round(steps))))


def finetune_config(
    diameter: float, n_labels: int, *, partial: bool, **fields: Any
) -> DetectorConfig:
    """The :class:`DetectorConfig` of a fine-tuning run: :func:`finetune_steps`,
    :data:`FINETUNE_LR_PARTIAL` or (complete labels) :data:`FINETUNE_LR`, crops of :data:`FINETUNE_CROP` px, batches of
    :data:`FINETUNE_BATCH` and, with ``partial`` labels, the distillation loss.
    ``fields`` override any of them (and set the others, e.g. ``arch``, ``seed``)."""
    values: dict[str, Any] = {
        "diameter": float(diameter),
        "steps": finetune_steps(n_labels),
        "lr": FINETUNE_LR_PARTIAL if partial else FINETUNE_LR,
        "crop": FINETUNE_CROP,
        "batch_size": FINETUNE_BATCH,
        "distill": FINETUNE_DISTILL if partial else 0.0,
    }
    values.update({k: v for k, v in fields.items() if v is not None})
    return DetectorConfig(**values)


def finetuned(
    config: DetectorConfig, n_labels: int, *, min_steps: int | None = None
) -> DetectorConfig:
    """``config`` with the fine-tuning settings of partial labels (the product
    protocol's rounds): :func:`finetune_config`'s crops, batch and distillation, a
    learning rate of at most :data:`FINETUNE_LR_PARTIAL` and ``max(min_steps,
    finetune_steps(n_labels))`` steps (``min_steps`` None: the budget alone)."""
    return dataclasses.replace(
        config,
        lr=min(config.lr, FINETUNE_LR_PARTIAL),
        crop=FINETUNE_CROP,
        batch_size=FINETUNE_BATCH,
        distill=FINETUNE_DISTILL,
        steps=max(int(min_steps or 0), finetune_steps(n_labels)),
    )
