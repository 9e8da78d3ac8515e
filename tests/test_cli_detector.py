"""``activepick train`` and ``activepick predict`` end to end on tiny data."""

from __future__ import annotations

import json

import numpy as np
import pytest
import starfile

from activepick.cli import main
from activepick.io.formats import read_coordinates, write_coordinates
from activepick.io.micrograph import write_micrograph
from activepick.io.picks import make_picks


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Three 96 x 160 micrographs with bright discs and their picks in our CSV."""
    root = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:96, 0:160]
    picks = []
    for i in range(3):
        xy = np.column_stack([rng.uniform(12, 148, 3), rng.uniform(12, 84, 3)])
        image = rng.normal(0, 0.3, (96, 160)).astype(np.float32)
        for x, y in xy:
            image[(xx - x) ** 2 + (yy - y) ** 2 < 64] += 1
        write_micrograph(root / "mics" / f"mic_{i}.mrc", image)
        picks.append(make_picks(f"mic_{i}", xy[:, 0], xy[:, 1], 16.0))
    picks.append(make_picks("not_there", [10.0], [10.0], 16.0))
    import pandas as pd

    write_coordinates(pd.concat(picks, ignore_index=True), root / "picks.csv")
    return root


def _train(root, out, *extra):
    return main(
        [
            "train",
            "--micrographs",
            str(root / "mics"),
            "--coords",
            str(root / "picks.csv"),
            "--diameter",
            "16",
            "--arch",
            "light",
            "--width",
            "0.125",
            "--epochs",
            "2",
            "--input-size",
            "128",
            "--device",
            "cpu",
            "--out",
            str(out),
            "--init",
            "scratch",
            *extra,
        ]
    )


def test_train_then_predict_star_with_confidence(dataset, tmp_path, capsys):
    model = tmp_path / "model.pt"
    assert _train(dataset, model) == 0
    err = capsys.readouterr().err
    assert "not_there" in err  # the pick without a micrograph file is reported
    info = json.loads((tmp_path / "model.pt.json").read_text())
    assert info["input_size"] == 128 and info["training"]["n_micrographs"] == 3
    assert info["training"]["n_labels"] == 9

    out = tmp_path / "picks.star"
    rc = main(
        [
            "predict",
            "--model",
            str(model),
            "--micrographs",
            str(dataset / "mics"),
            "--out",
            str(out),
        ]
        + ["--threshold", "0.0", "--device", "cpu"]
    )
    assert rc == 0
    assert "pick(s) on 3 micrograph(s)" in capsys.readouterr().out
    star = starfile.read(out)
    table = star if not isinstance(star, dict) else next(iter(star.values()))
    assert "rlnAutopickFigureOfMerit" in table.columns
    fom = table["rlnAutopickFigureOfMerit"].to_numpy()
    assert len(table) > 0 and np.all((fom >= 0) & (fom <= 1))
    back = read_coordinates(out, diameter=16.0)
    assert set(back["micrograph"]) <= {"mic_0", "mic_1", "mic_2"}
    assert (back["x"] < 160).all() and (back["y"] < 96).all()
    np.testing.assert_allclose(np.sort(back["confidence"]), np.sort(fom))


def test_warm_start_and_errors(dataset, tmp_path, capsys):
    model = tmp_path / "model.pt"
    assert _train(dataset, model, "--epochs", "1") == 0
    assert _train(dataset, tmp_path / "again.pt", "--epochs", "1", "--init", str(model)) == 0
    assert json.loads((tmp_path / "again.pt.json").read_text())["training"]["warm_start"] is True
    capsys.readouterr()
    model.write_bytes(b"broken")
    rc = main(
        [
            "predict",
            "--model",
            str(model),
            "--micrographs",
            str(dataset / "mics"),
            "--out",
            str(tmp_path / "p.star"),
        ]
    )
    assert rc == 2
    assert "model.pt: cannot read" in capsys.readouterr().err
    write_coordinates(make_picks("elsewhere", [5.0], [5.0], 16.0), tmp_path / "other.csv")
    rc = main(
        ["train", "--micrographs", str(dataset / "mics"), "--coords", str(tmp_path / "other.csv")]
        + ["--diameter", "16", "--epochs", "1", "--out", str(tmp_path / "x.pt")]
    )
    assert rc == 2
    err = capsys.readouterr().err
    assert "elsewhere" in err and "no micrograph name matches" in err
    assert not (tmp_path / "x.pt").exists()
