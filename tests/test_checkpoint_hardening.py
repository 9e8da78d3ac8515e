"""Checkpoint sidecars and detector settings that used to give tracebacks or huge
allocations (issue 12, item 10). The sidecar is checked before any weight is read,
so a dummy model file is enough here."""

import json

import pytest

from activepick.detector.checkpoint import CHECKPOINT_FORMAT, load_checkpoint
from activepick.detector.config import ConfigError, DetectorConfig
from activepick.errors import ActivePickError, CheckpointError

GOOD = DetectorConfig(diameter=16.0, input_size=128).to_dict()


def checkpoint(tmp_path, config=None, **top):
    model = tmp_path / "model.pt"
    model.write_bytes(b"not read: the sidecar is refused first")
    info = {"format": CHECKPOINT_FORMAT, "version": 1, "config": config or GOOD, **top}
    (tmp_path / "model.pt.json").write_text(json.dumps(info))
    return model


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("width", "wide", "width must be a number"),
        ("width", 64, "width must be > 0 and <= 1"),  # 4.8 GB of weights
        ("input_size", 65536, "input_size must be >= 32 and <= 8192"),  # 17 GB per image
        ("input_size", 100.5, "input_size must be a whole number"),
        ("nms_iou", "0.3", "nms_iou must be a number"),
        ("nms_iou", 1.5, "nms_iou must be >= 0 and <= 1"),
        ("diameter", 0, "diameter must be > 0"),
        ("diameter", float("nan"), "diameter must be finite"),
        ("epochs", True, "epochs must be a whole number"),
        ("batch_size", 0, "batch_size must be >= 1"),
        ("lr", -1e-3, "lr must be > 0"),
        ("dropout", 1.0, "dropout must be >= 0 and < 1"),
        ("arch", 5, "arch must be one of"),
        ("augment", "yes", "augment must be true or false"),
    ],
)
def test_a_bad_sidecar_field_is_one_checkpoint_error(tmp_path, field, value, message):
    model = checkpoint(tmp_path, {**GOOD, field: value})
    with pytest.raises(CheckpointError, match=message) as info:
        load_checkpoint(model, device="cpu")
    assert "model.pt.json: invalid config" in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "top, message",
    [
        ({"training": ["not", "a", "dict"]}, "'training' must be a JSON object"),
        ({"training": 3}, "'training' must be a JSON object"),
        ({"version": "one"}, "'version' must be a whole number"),
    ],
)
def test_bad_top_level_sidecar_entries_are_refused(tmp_path, top, message):
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(checkpoint(tmp_path, **top), device="cpu")


def test_config_errors_are_project_errors_and_value_errors():
    with pytest.raises(ConfigError) as info:
        DetectorConfig(epochs=-1)
    assert isinstance(info.value, ActivePickError) and isinstance(info.value, ValueError)
    with pytest.raises(ConfigError, match="JSON object"):
        DetectorConfig.from_dict(["arch", "light"])


def test_good_values_are_kept_and_integral_floats_become_ints():
    cfg = DetectorConfig.from_dict({**GOOD, "epochs": 3.0, "input_size": 256.0, "width": 1.0})
    assert cfg.epochs == 3 and isinstance(cfg.epochs, int)
    assert cfg.input_size == 256 and isinstance(cfg.input_size, int)
    assert cfg.channel_width == 1.0
