"""Checkpoints (state dict + JSON sidecar) and the config they carry."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from activepick.detector import (
    DetectorConfig,
    auto_input_size,
    load_checkpoint,
    predict_picks,
    save_checkpoint,
    sidecar_path,
    train_detector,
)
from activepick.errors import CheckpointError
from activepick.io.picks import make_picks


class _Image:
    def __init__(self, name: str, data: np.ndarray) -> None:
        self.name, self.data = name, data


@pytest.fixture(scope="module")
def trained():
    rng = np.random.default_rng(0)
    mics = [_Image(f"m{i}", rng.normal(size=(96, 128)).astype(np.float32)) for i in range(2)]
    labels = pd.concat([make_picks(f"m{i}", [40.0, 90.0], [30.0, 60.0], 16.0) for i in range(2)])
    cfg = DetectorConfig(
        width=0.125, diameter=16.0, input_size=128, epochs=1, batch_size=2, device="cpu"
    )
    return train_detector(mics, labels, cfg), mics


def test_round_trip_keeps_weights_config_and_predictions(tmp_path, trained):
    det, mics = trained
    path = save_checkpoint(det, tmp_path / "model.pt")
    assert path == tmp_path / "model.pt" and sidecar_path(path) == tmp_path / "model.pt.json"
    info = json.loads(sidecar_path(path).read_text())
    assert info["arch"] == "light" and info["width"] == 0.125 and info["input_size"] == 128
    assert info["box_size"] == 16.0 and info["torch"] == torch.__version__
    assert info["training"]["n_labels"] == 4 and info["training"]["micrographs"] == ["m0", "m1"]
    loaded = load_checkpoint(path, device="cpu")
    assert loaded.config == det.config and loaded.meta == det.meta
    assert not loaded.network.training
    for k, v in det.network.state_dict().items():
        assert torch.equal(v, loaded.network.state_dict()[k]), k
    a = predict_picks(det, mics)
    b = predict_picks(loaded, mics)
    pd.testing.assert_frame_equal(a.drop(columns="time"), b.drop(columns="time"))
    assert not list(tmp_path.glob(".*tmp*"))  # atomic writes leave no temporaries


def test_missing_files_raise_checkpoint_error(tmp_path, trained):
    with pytest.raises(CheckpointError, match="nothing.pt"):
        load_checkpoint(tmp_path / "nothing.pt")
    path = save_checkpoint(trained[0], tmp_path / "model.pt")
    sidecar_path(path).unlink()
    with pytest.raises(CheckpointError, match=r"model\.pt\.json is missing"):
        load_checkpoint(path)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_weights_raise_checkpoint_error(tmp_path, trained, damage):
    path = save_checkpoint(trained[0], tmp_path / "model.pt")
    data = path.read_bytes()
    path.write_bytes(
        {"truncate": data[: len(data) // 2], "garbage": b"not a model" * 10, "empty": b""}[damage]
    )
    with pytest.raises(CheckpointError, match="model.pt: cannot read"):
        load_checkpoint(path)


def test_bad_sidecar_and_architecture_mismatch(tmp_path, trained):
    path = save_checkpoint(trained[0], tmp_path / "model.pt")
    side = sidecar_path(path)
    good = json.loads(side.read_text())
    side.write_text("{not json")
    with pytest.raises(CheckpointError, match="model.pt.json: not a readable JSON"):
        load_checkpoint(path)
    side.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(CheckpointError, match="not an activepick detector"):
        load_checkpoint(path)
    wrong = dict(good, config=dict(good["config"], width=0.25))
    side.write_text(json.dumps(wrong))
    with pytest.raises(CheckpointError, match="do not fit a light network"):
        load_checkpoint(path)
    wrong = dict(good, config=dict(good["config"], arch="tiny"))
    side.write_text(json.dumps(wrong))
    with pytest.raises(CheckpointError, match="invalid config"):
        load_checkpoint(path)


def test_config_dict_round_trip_and_auto_input_size():
    cfg = DetectorConfig(arch="full", diameter=180.0, input_size=768, epochs=3, seed=7)
    assert DetectorConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert DetectorConfig.from_dict({**cfg.to_dict(), "future_option": 1}) == cfg
    assert cfg.channel_width == 1.0 and DetectorConfig().channel_width == 0.25
    assert auto_input_size(1024, 64) == 512  # 1024 * 32 / 64
    assert auto_input_size(4096, 200) == 640  # 655.4 -> 640
    assert auto_input_size(1024, 224) == 256  # 146 -> clamped up
    assert auto_input_size(8192, 64) == 1024  # 4096 -> clamped down
    with pytest.raises(ValueError, match="multiple of 32"):
        DetectorConfig(input_size=500)
