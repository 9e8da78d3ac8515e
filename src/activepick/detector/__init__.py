"""The detector: PhosaurusNet and a light variant, grid targets, training, prediction, checkpoints.

Public API (SPEC section 2)::

    cfg = DetectorConfig(arch="light", diameter=64, epochs=40)
    det = train_detector(micrographs, labels, cfg, progress=print)
    picks = predict_picks(det, micrographs, threshold=0.1)
    save_checkpoint(det, "model.pt"); det = load_checkpoint("model.pt")
"""

import importlib

#: Public name -> submodule. Imported on first use (PEP 562), so that
#: ``activepick.detector.config`` can be read without importing torch (the CLI's
#: ``--help`` stays fast).
_EXPORTS = {
    "load_checkpoint": "checkpoint",
    "save_checkpoint": "checkpoint",
    "sidecar_path": "checkpoint",
    "ARCHITECTURES": "config",
    "DetectorConfig": "config",
    "auto_input_size": "config",
    "Detector": "networks",
    "PhosaurusNet": "networks",
    "build_network": "networks",
    "count_parameters": "networks",
    "resolve_device": "networks",
    "DISAGREEMENT_COLUMN": "predict",
    "iter_predict_picks": "predict",
    "predict_picks": "predict",
    "decode_grid": "targets",
    "detector_loss": "targets",
    "encode_targets": "targets",
    "iter_train_detector": "train",
    "train_detector": "train",
}


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_EXPORTS))


__all__ = [
    "ARCHITECTURES",
    "DISAGREEMENT_COLUMN",
    "Detector",
    "DetectorConfig",
    "PhosaurusNet",
    "auto_input_size",
    "build_network",
    "count_parameters",
    "decode_grid",
    "detector_loss",
    "encode_targets",
    "iter_predict_picks",
    "iter_train_detector",
    "load_checkpoint",
    "predict_picks",
    "resolve_device",
    "save_checkpoint",
    "sidecar_path",
    "train_detector",
]
