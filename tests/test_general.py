"""The shipped general model: loading, refusal of bad checkpoints, and 0-label quality."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from activepick import metrics
from activepick.cli import main
from activepick.cli.train import load_init
from activepick.detector import (
    Detector,
    DetectorConfig,
    build_network,
    predict_picks,
    save_checkpoint,
)
from activepick.detector.general import general_model_path, load_general_detector
from activepick.errors import CheckpointError
from activepick.io.picks import make_picks
from activepick.simulate import simulate_micrograph


def test_init_general_loads_the_shipped_weights():
    path = general_model_path("light")
    assert path.name == "general_light.pt" and path.parent.name == "models"
    shipped = torch.load(path, map_location="cpu", weights_only=True)
    assert shipped["layer1.0.weight"].dtype == torch.float16  # stored in half precision
    det = load_init("general", 64.0, "light", "cpu")
    assert det.meta["general"] is True
    assert det.config.diameter == 64.0 and det.config.input_size is None
    state = det.network.state_dict()
    for name in ("layer1.0.weight", "layer22.0.weight", "head.1.bias"):
        torch.testing.assert_close(state[name], shipped[name].float())
    assert load_init("scratch", 64.0, "light", "cpu") is None


def test_general_model_finds_particles_with_zero_labels():
    # a micrograph of this package's simulator (default molecule family, not one of
    # the pretraining draws): 512 px, 48 px particles, SNR 0.1, ice blobs and a ramp
    image, centres = simulate_micrograph(
        np.random.default_rng(2024),
        size=512,
        n_particles=25,
        diameter=48,
        snr=0.1,
        distractors=3,
        gradient=1.0,
    )
    truth = make_picks("m", centres[:, 0], centres[:, 1], 48.0)
    det = load_general_detector(48.0, device="cpu")
    pred = predict_picks(det, [image], threshold=0.0)
    pred["micrograph"] = "m"
    assert metrics.summary(pred, truth)["f1_topt"] >= 0.7


def test_general_model_refuses_other_architectures_and_non_general_files(tmp_path):
    with pytest.raises(CheckpointError, match="no general model is shipped for arch 'full'"):
        load_general_detector(64.0, arch="full")
    narrow = Detector(
        build_network("light", width=0.125),
        DetectorConfig(width=0.125, input_size=256, diameter=32.0),
        {"general": True},
    )
    save_checkpoint(narrow, tmp_path / "narrow.pt")
    with pytest.raises(CheckpointError, match=r"width 0\.125\), not the requested 'light'"):
        load_general_detector(64.0, path=tmp_path / "narrow.pt")
    narrow.meta = {}
    save_checkpoint(narrow, tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="not a general model"):
        load_general_detector(64.0, path=tmp_path / "plain.pt")


def test_cli_init_with_missing_or_incompatible_checkpoint_is_one_line(tmp_path, capsys):
    from activepick.io.formats import write_coordinates
    from activepick.io.micrograph import write_micrograph

    write_micrograph(tmp_path / "mics" / "a.mrc", np.zeros((64, 64), np.float32))
    write_coordinates(make_picks("a", [32.0], [32.0], 16.0), tmp_path / "p.csv")
    base = ["train", "--micrographs", str(tmp_path / "mics"), "--coords", str(tmp_path / "p.csv")]
    base += ["--diameter", "16", "--device", "cpu", "--out", str(tmp_path / "out.pt")]
    assert main([*base, "--init", str(tmp_path / "missing.pt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.pt: model file not found" in err[0]
    narrow = Detector(
        build_network("light", width=0.125), DetectorConfig(width=0.125, input_size=64), {}
    )
    save_checkpoint(narrow, tmp_path / "narrow.pt")
    assert main([*base, "--init", str(tmp_path / "narrow.pt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "width 0.125" in err[0]
    assert not (tmp_path / "out.pt").exists()
