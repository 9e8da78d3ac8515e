"""Picking with no labels from the command line, labelled sets on disk, and the scores
of the real-data benchmark (issue 19). Nothing here needs ../shared/realdata."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import starfile

from activepick import metrics
from activepick.cli import main
from activepick.errors import CoordinateError, MicrographError
from activepick.io.formats import write_coordinates
from activepick.io.labelled import load_labelled_set, read_split, spread_labels
from activepick.io.micrograph import write_micrograph
from activepick.io.picks import make_picks
from activepick.simulate import simulate_micrograph


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Two simulated micrographs of 384 px with 48 px particles and their labels."""
    root = tmp_path_factory.mktemp("labelled")
    rng = np.random.default_rng(5)
    tables = []
    for k in range(2):
        image, centres = simulate_micrograph(rng, size=384, n_particles=12, diameter=48, snr=0.3)
        write_micrograph(root / "mics" / f"m{k}.mrc", image)
        tables.append(make_picks(f"m{k}", centres[:, 0], centres[:, 1], 48.0))
    truth = pd.concat(tables, ignore_index=True)
    write_coordinates(truth, root / "labels.star")
    (root / "split.json").write_text(json.dumps({"train": ["m0.mrc"], "test": ["m1"]}))
    return root, truth


def test_predict_with_the_general_model_needs_no_training(folder, tmp_path, capsys):
    root, truth = folder
    out = tmp_path / "picks.star"
    rc = main(
        [
            "predict",
            "--model",
            "general",
            "--diameter",
            "48",
            "--micrographs",
            str(root / "mics"),
            "--out",
            str(out),
            "--device",
            "cpu",
        ]  # fmt: skip
    )
    assert rc == 0, capsys.readouterr().err
    picks = starfile.read(out)
    assert len(picks) > 0
    # the default threshold is the model card's calibrated one (or 0.3 without one)
    from activepick.detector.general import load_general_detector

    calibrated = load_general_detector(48.0).meta.get("threshold") or 0.3
    assert picks["rlnAutopickFigureOfMerit"].min() >= calibrated
    pred = make_picks(
        picks["rlnMicrographName"].str.replace(".mrc", "", regex=False),
        picks["rlnCoordinateX"],
        picks["rlnCoordinateY"],
        48.0,
    )
    assert metrics.evaluate(pred, truth)["f1"] >= 0.7


def test_general_model_without_diameter_and_diameter_on_a_trained_model_are_one_line(
    folder, tmp_path, capsys
):
    root, _ = folder
    base = ["predict", "--micrographs", str(root / "mics"), "--out", str(tmp_path / "p.star")]
    assert main([*base, "--model", "general"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the general model needs --diameter" in err[0]
    from activepick.detector import Detector, DetectorConfig, build_network, save_checkpoint

    trained = Detector(
        build_network("light"),
        DetectorConfig(diameter=48.0, input_size=256),
        {"final_loss": 0.5, "steps": 1},
    )
    save_checkpoint(trained, tmp_path / "m.pt")
    assert main([*base, "--model", str(tmp_path / "m.pt"), "--diameter", "30"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--diameter is for the general model only" in err[0]
    assert "48 px" in err[0]


def test_labelled_set_reads_split_parts(folder):
    root, truth = folder
    data = load_labelled_set(root / "mics", root / "labels.star", 48.0, root / "split.json")
    assert [m.name for m in data.micrographs] == ["m0", "m1"]
    mics, labels = data.part("test")
    assert [m.name for m in mics] == ["m1"] and set(labels["micrograph"]) == {"m1"}
    assert len(labels) == int((truth["micrograph"] == "m1").sum())
    assert data.shapes() == {"m0": (384, 384), "m1": (384, 384)}
    with pytest.raises(CoordinateError, match="no part 'val'"):
        data.part("val")


def test_labels_of_absent_micrographs_and_bad_splits_are_one_clear_line(folder, tmp_path):
    root, truth = folder
    extra = pd.concat([truth, make_picks("m9", [10.0], [10.0], 48.0)], ignore_index=True)
    write_coordinates(extra, tmp_path / "more.star")
    with pytest.raises(CoordinateError, match=r"more\.star: labels name 1 micrograph\(s\) absent"):
        load_labelled_set(root / "mics", tmp_path / "more.star", 48.0)
    (tmp_path / "split.json").write_text(json.dumps({"test": ["m1", "m7"]}))
    with pytest.raises(MicrographError, match="part 'test' names micrograph.*m7"):
        load_labelled_set(root / "mics", root / "labels.star", 48.0, tmp_path / "split.json")
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(CoordinateError, match="bad.json: a split is a JSON object"):
        read_split(tmp_path / "bad.json")
    with pytest.raises(CoordinateError, match="is a folder, not a split file"):
        read_split(tmp_path)


def test_spread_labels_takes_from_each_micrograph_in_turn():
    truth = pd.concat(
        [make_picks("a", np.arange(10.0), np.arange(10.0), 8.0),
         make_picks("b", np.arange(3.0), np.arange(3.0), 8.0)],
        ignore_index=True,
    )  # fmt: skip
    five = spread_labels(truth, 5, seed=1)
    assert sorted(five["micrograph"].value_counts().tolist()) == [2, 3]
    eight = spread_labels(truth, 8, seed=1)
    assert eight["micrograph"].value_counts().to_dict() == {"a": 5, "b": 3}  # b runs out
    assert spread_labels(truth, None).equals(truth)


def test_inside_margin_and_centre_offsets():
    shapes = {"m": (100, 200)}
    picks = make_picks("m", [5.0, 10.0, 189.0, 190.0, 50.0], [50.0, 50.0, 50.0, 50.0, 89.0], 8.0)
    kept = metrics.inside_margin(picks, shapes, 10.0)
    # x in [10, 189], y in [10, 89]: 5 and 190 leave, the edges stay
    assert kept["x"].tolist() == [10.0, 189.0, 50.0]
    assert len(metrics.inside_margin(make_picks("other", [50.0], [50.0], 8.0), shapes, 1)) == 0
    truth = make_picks("m", [50.0, 100.0, 150.0], [50.0, 50.0, 50.0], 20.0)
    pred = make_picks("m", [53.0, 100.0, 170.0], [54.0, 48.0, 50.0], 20.0)
    pred["confidence"] = [0.9, 0.4, 0.9]
    off = metrics.centre_offsets(pred, truth, 0.5)
    # at 0.5 the 0.4 pick is out; (170, 50) is 20 px = one diameter away: IoU 0, no match
    np.testing.assert_allclose(off, [[3.0, 4.0]])
    np.testing.assert_allclose(
        np.sort(np.linalg.norm(metrics.centre_offsets(pred, truth, 0.0), axis=1)), [2.0, 5.0]
    )


def test_matched_pairs_are_the_one_to_one_true_positives():
    truth = make_picks("m", [50.0, 100.0, 150.0], [50.0, 50.0, 50.0], 20.0)
    # two picks on the first particle: the closer one (IoU higher) is its match
    pred = make_picks("m", [53.0, 51.0, 100.0, 170.0], [54.0, 50.0, 48.0, 50.0], 20.0)
    pred["confidence"] = [0.9, 0.8, 0.4, 0.9]
    p, t = metrics.matched_pairs(pred, truth, 0.5)
    assert sorted(zip(p.tolist(), t.tolist(), strict=True)) == [(1, 0)]
    p, t = metrics.matched_pairs(pred, truth, 0.0)
    assert sorted(zip(p.tolist(), t.tolist(), strict=True)) == [(1, 0), (2, 1)]
