"""The general model shipped in the package (crYOLO-style): pretrained on a broad
simulated distribution (:mod:`activepick.detector.pretrain`, docs/model_card.md),
the default starting point of every fine-tuning round.

It works at the network's own scale: every micrograph is resized so that the
particle spans ``TARGET_DIAMETER_PX`` (32) input pixels, so one set of weights
serves diameters of about 30-300 px. :func:`load_general_detector` returns it
with the requested diameter and no fixed input size (prediction and training
then use :func:`activepick.detector.config.auto_input_size`).
"""

from __future__ import annotations

import dataclasses
from importlib import resources
from pathlib import Path

from ..errors import CheckpointError
from .config import DEFAULT_LIGHT_WIDTH
from .networks import Detector

#: Shipped weights per architecture (file names inside ``activepick/detector/models``).
GENERAL_MODELS: dict[str, str] = {"light": "general_light.pt"}


def general_model_path(arch: str = "light") -> Path:
    """Path of the shipped weights of ``arch``; :class:`CheckpointError` when none is shipped."""
    if arch not in GENERAL_MODELS:
        raise CheckpointError(
            f"no general model is shipped for arch {arch!r} (shipped: {', '.join(GENERAL_MODELS)}); "
            "train from scratch (--init scratch) or pass a checkpoint"
        )
    path = Path(str(resources.files("activepick.detector") / "models" / GENERAL_MODELS[arch]))
    if not path.is_file():
        raise CheckpointError(
            f"{path}: the general model file is missing from this installation; "
            "regenerate it with python -m activepick.detector.pretrain --out " + str(path)
        )
    return path


def load_general_detector(
    diameter: float, *, arch: str = "light", device: str = "auto", path: str | Path | None = None
) -> Detector:
    """The shipped general detector, set up for particles of ``diameter`` px.

    ``path`` (tests, regenerated weights) replaces the shipped file. Raises
    :class:`CheckpointError` with the reason when the file is missing or
    unreadable, is not a general model, or is not of architecture ``arch``.
    """
    from .checkpoint import load_checkpoint

    if not diameter > 0:
        raise CheckpointError(f"general model: diameter must be positive, not {diameter!r}")
    path = general_model_path(arch) if path is None else Path(path)
    detector = load_checkpoint(path, device=device)
    return general_for(detector, diameter, path, arch=arch, device=device)


def general_for(
    detector: Detector,
    diameter: float,
    path: str | Path,
    *,
    arch: str = "light",
    device: str = "auto",
) -> Detector:
    """``detector`` (loaded from ``path`` for ``device``) set up as the general model for
    particles of ``diameter`` px, with the checks of :func:`load_general_detector`."""
    if not diameter > 0:
        raise CheckpointError(f"general model: diameter must be positive, not {diameter!r}")
    if not detector.meta.get("general"):
        raise CheckpointError(f"{path}: not a general model (its sidecar lacks 'general': true)")
    if detector.config.arch != arch or (
        arch == "light" and detector.config.channel_width != DEFAULT_LIGHT_WIDTH
    ):
        raise CheckpointError(
            f"{path}: the general model is arch {detector.config.arch!r} "
            f"(width {detector.config.channel_width}), not the requested {arch!r}"
            + (f" (width {DEFAULT_LIGHT_WIDTH})" if arch == "light" else "")
        )
    detector.config = dataclasses.replace(
        detector.config, diameter=float(diameter), input_size=None, device=device
    )
    return detector
