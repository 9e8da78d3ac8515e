"""Checkpoints: a plain torch state_dict plus a JSON sidecar ``<path>.json``.

The state dict is written with ``torch.save`` and read with
``torch.load(weights_only=True)`` (no pickled code is ever executed). The sidecar
holds the config, architecture, channel width, input size, box size, the training
summary and the torch version; the network is rebuilt from it before loading.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import re
import warnings
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError, not_a_file
from ..io.atomic import atomic_path, atomic_write_text
from .config import DetectorConfig
from .networks import Detector, count_parameters, network_for_config, resolve_device

#: ``format`` value of the sidecar, and its version.
CHECKPOINT_FORMAT = "activepick-detector"
CHECKPOINT_VERSION = 1


def sidecar_path(path: str | os.PathLike) -> Path:
    """The JSON sidecar of a checkpoint: ``model.pt`` -> ``model.pt.json``."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def checkpoint_info(detector: Detector) -> dict[str, Any]:
    """The sidecar content of ``detector`` (JSON-serialisable)."""
    cfg = detector.config
    return {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "arch": cfg.arch,
        "width": cfg.channel_width,
        "input_size": cfg.input_size,
        "box_size": cfg.diameter,
        "parameters": count_parameters(detector.network),
        "config": cfg.to_dict(),
        "training": detector.meta,
        "torch": torch.__version__,
    }


def save_checkpoint(detector: Detector, path: str | os.PathLike, *, half: bool = False) -> Path:
    """Write the state dict to ``path`` and the sidecar to ``<path>.json``, atomically.

    Returns ``path``. The weights are stored on the CPU so any machine can load them;
    ``half=True`` stores floating-point tensors as float16 (half the size; loading
    casts them back to float32). The sidecar is strict JSON: a NaN or infinite number
    (the final loss of a run without a step) is written as ``null``.
    """
    from ..metrics import jsonable

    path = Path(path)
    state = {k: v.detach().cpu() for k, v in detector.network.state_dict().items()}
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    info = jsonable(checkpoint_info(detector))
    atomic_write_text(
        sidecar_path(path), json.dumps(info, indent=2, default=str, allow_nan=False) + "\n"
    )
    return path


def _read_sidecar(path: Path) -> dict[str, Any]:
    side = sidecar_path(path)
    problem = not_a_file(side, missing="is missing")
    if problem is not None:
        raise CheckpointError(
            f"{path}: settings file {side.name} {problem} (it is written next to the model)"
        )
    try:
        info = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{side}: not a readable JSON settings file ({exc})") from None
    if not isinstance(info, dict) or info.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{side}: not an activepick detector settings file")
    version = info.get("version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise CheckpointError(f"{side}: 'version' must be a whole number, not {version!r}")
    if version > CHECKPOINT_VERSION:
        raise CheckpointError(f"{side}: written by a newer version (format {version})")
    if "config" not in info or not isinstance(info["config"], dict):
        raise CheckpointError(f"{side}: no 'config' entry")
    training = info.get("training")
    if training is not None and not isinstance(training, dict):
        raise CheckpointError(
            f"{side}: 'training' must be a JSON object, not {type(training).__name__}"
        )
    return info


def load_checkpoint(path: str | os.PathLike, device: str | torch.device | None = None) -> Detector:
    """Load a detector saved by :func:`save_checkpoint`, in eval mode.

    ``device`` None / ``"auto"`` -> CUDA when present, else CPU. Raises
    :class:`CheckpointError` naming the file when the model or its sidecar is
    missing, corrupt or truncated, or when the weights do not fit the sidecar's
    architecture.
    """
    path = Path(path)
    problem = not_a_file(path)
    if problem is not None:
        raise CheckpointError(f"{path}: model file {problem}")
    info = _read_sidecar(path)
    try:
        config = DetectorConfig.from_dict(info["config"])
    except (TypeError, ValueError) as exc:  # ConfigError is a ValueError
        raise CheckpointError(f"{sidecar_path(path)}: invalid config ({exc})") from None
    if config.input_size is None:
        raise CheckpointError(f"{sidecar_path(path)}: the model was never trained (no input size)")
    try:
        with warnings.catch_warnings():  # torch's note on a foreign pickle: refused below
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:  # what torch's safe loader refuses, or garbage
        raise CheckpointError(f"{path}: {_refusal(exc)}") from None
    except Exception as exc:  # torch raises many types on corrupt / truncated files
        raise CheckpointError(
            f"{path}: cannot read the model weights ({type(exc).__name__}: {exc})"
        ) from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: does not hold a state dict")
    network = network_for_config(config)
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise CheckpointError(
            f"{path}: the weights do not fit a {config.arch} network (width {config.channel_width}): {first}"
        ) from None
    network.to(resolve_device(device)).eval()
    return Detector(network, config, dict(info.get("training") or {}))


def _refusal(exc: pickle.UnpicklingError) -> str:
    """One line for what ``torch.load(weights_only=True)`` refused, without torch's
    advice to load with ``weights_only=False`` (that would run the file's code)."""
    text = str(exc)
    found = re.search(r"GLOBAL ([\w.]+)", text)
    if found:
        return (
            f"refused: the file holds a Python object ({found.group(1)}), which model weights "
            "never do; load only checkpoints written by activepick"
        )
    advice = ("weights_only", "file an issue", "check the documentation")
    detail = [
        ln.strip()
        for ln in text.splitlines()
        if ln.strip() and not any(a in ln.lower() for a in advice)
    ]
    return f"cannot read the model weights (not a torch weights file: {'; '.join(detail[:1]) or type(exc).__name__})"


def check_trained(detector: Detector, path: str | os.PathLike) -> None:
    """Refuse a trained checkpoint whose training did not finish with a finite loss
    (``--steps 0`` once wrote such models; they predict noise): :class:`CheckpointError`.

    The shipped general model (``training.general``) and checkpoints without a
    training record (written by hand or by other tools) pass.
    """
    meta = detector.meta or {}
    if meta.get("general") or "final_loss" not in meta:
        return
    loss = meta.get("final_loss")
    finite = isinstance(loss, (int, float)) and not isinstance(loss, bool) and math.isfinite(loss)
    if not finite:
        raise CheckpointError(
            f"{path}: the model's training ended without a finite loss (final loss {loss}, "
            f"{meta.get('steps', '?')} steps): it was never trained; train it again"
        )
