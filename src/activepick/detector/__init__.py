"""The detector: PhosaurusNet and a light variant, grid targets, training, prediction, checkpoints.

Public API (SPEC section 2)::

    cfg = DetectorConfig(arch="light", diameter=64, epochs=40)
    det = train_detector(micrographs, labels, cfg, progress=print)
    picks = predict_picks(det, micrographs, threshold=0.1)   # == det.predict(...)
    save_checkpoint(det, "model.pt"); det = load_checkpoint("model.pt")
"""

from .checkpoint import load_checkpoint, save_checkpoint, sidecar_path
from .config import ARCHITECTURES, DetectorConfig, auto_input_size
from .networks import Detector, PhosaurusNet, build_network, count_parameters, resolve_device
from .predict import DISAGREEMENT_COLUMN, iter_predict_picks, predict_picks
from .targets import decode_grid, detector_loss, encode_targets
from .train import iter_train_detector, train_detector

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
