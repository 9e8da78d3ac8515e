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


# ------------------------------------------------------------------ issue 21


class _Hostile:
    """Unpickles as a call of ``os.system``: what a malicious "checkpoint" holds."""

    def __reduce__(self):
        import os

        return (os.system, ("touch ran-the-command",))


def test_a_hostile_checkpoint_is_refused_naming_the_object_without_torchs_advice(
    tmp_path, monkeypatch
):
    import torch

    monkeypatch.chdir(tmp_path)
    model = checkpoint(tmp_path)
    torch.save({"conv.weight": _Hostile()}, model)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(model, device="cpu")
    assert str(info.value) == (
        f"{model}: refused: the file holds a Python object (posix.system), which model weights "
        "never do; load only checkpoints written by activepick"
    )
    assert not (tmp_path / "ran-the-command").exists()


def test_garbage_weights_are_one_line_without_torchs_advice(tmp_path):
    model = checkpoint(tmp_path)
    model.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(model, device="cpu")
    msg = str(info.value)
    assert msg.startswith(f"{model}: cannot read the model weights (not a torch weights file")
    assert "weights_only" not in msg and "\n" not in msg


def test_a_folder_where_the_model_or_its_settings_belong_is_named_a_folder(tmp_path):
    folder = tmp_path / "model.pt"
    folder.mkdir()
    with pytest.raises(CheckpointError, match=r"model\.pt: model file is a folder, not a file$"):
        load_checkpoint(folder, device="cpu")
    other = tmp_path / "other"
    other.mkdir()
    model = checkpoint(other)
    (other / "model.pt.json").unlink()
    (other / "model.pt.json").mkdir()
    with pytest.raises(CheckpointError, match=r"model\.pt\.json is a folder, not a file"):
        load_checkpoint(model, device="cpu")


def test_a_sidecar_never_holds_nan_a_finite_loss_is_kept(tmp_path):
    """A run of 0 steps once wrote ``"final_loss": NaN``, which is not JSON."""
    from activepick.detector import Detector, build_network, save_checkpoint

    config = DetectorConfig(arch="light", width=0.125, input_size=64, diameter=16.0)
    net = build_network("light", width=0.125)
    for loss, stored in [(float("nan"), None), (float("inf"), None), (0.25, 0.25)]:
        path = save_checkpoint(Detector(net, config, {"final_loss": loss}), tmp_path / "m.pt")
        text = (tmp_path / "m.pt.json").read_text()
        info = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in the sidecar"))
        assert info["training"]["final_loss"] == stored
        assert load_checkpoint(path, device="cpu").meta["final_loss"] == stored


def test_the_shipped_general_models_sidecar_stays_strict_json_and_loads():
    from activepick.detector.checkpoint import check_trained, sidecar_path
    from activepick.detector.general import general_model_path, load_general_detector

    text = sidecar_path(general_model_path()).read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in the sidecar"))
    detector = load_general_detector(64.0, device="cpu")
    check_trained(detector, general_model_path())  # the general model passes
