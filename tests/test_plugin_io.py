"""The npe2 contributions without a viewer: readers, writer, sample data, manifest."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from activepick.io.formats import read_coordinates, write_coordinates
from activepick.io.micrograph import write_micrograph
from activepick.io.picks import make_picks
from activepick.plugin import _reader, _sample_data, _writer
from activepick.plugin._layers import picks_to_points, points_to_picks

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = "napari-activepick"


@pytest.fixture(autouse=True, scope="module")
def _npe2_plugins():
    import npe2

    npe2.PluginManager.instance().discover()


def _image(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(h, w)).astype(np.float32)


@pytest.fixture
def mic_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "mics"
    for i in range(3):
        write_micrograph(folder / f"mic_{i:02d}.mrc", _image(64, 96, i), pixel_size=1.5)
    return folder


@pytest.fixture
def picks() -> pd.DataFrame:
    # non-square micrographs (96 wide, 64 high): x and y must not be swapped or flipped
    return make_picks(
        ["mic_00", "mic_00", "mic_02"],
        [10.0, 80.5, 40.0],
        [12.0, 50.0, 30.25],
        20.0,
        confidence=[0.9, 0.4, 0.7],
        status="accepted",
    )


def test_every_python_name_in_the_manifest_imports():
    manifest = yaml.safe_load((ROOT / "napari.yaml").read_text())
    names = [c["python_name"] for c in manifest["contributions"]["commands"]]
    assert len(names) == 6
    for name in names:
        module, attr = name.split(":")
        assert callable(getattr(importlib.import_module(module), attr)), name


def test_folder_of_micrographs_opens_as_one_stack_through_npe2(mic_folder):
    import npe2

    layers = npe2.read([str(mic_folder)], stack=False, plugin_name=PLUGIN)
    assert len(layers) == 1
    data, kwargs, kind = layers[0]
    assert kind == "image"
    assert data.shape == (3, 64, 96)
    meta = kwargs["metadata"]
    assert meta["micrographs"] == ["mic_00", "mic_01", "mic_02"]
    assert meta["pixel_size"] == pytest.approx(1.5)
    np.testing.assert_array_equal(data[1], _image(64, 96, 1))
    lo, hi = kwargs["contrast_limits"]
    assert data.min() < lo < hi < data.max()


def test_micrographs_of_different_shapes_stack_top_left_aligned(tmp_path):
    write_micrograph(tmp_path / "a.mrc", _image(40, 50, 0))
    import tifffile

    tifffile.imwrite(tmp_path / "b.tif", _image(30, 60, 1))
    reader = _reader.get_micrograph_reader([str(tmp_path / "a.mrc"), str(tmp_path / "b.tif")])
    data, kwargs, _ = reader()[0]
    assert data.shape == (2, 40, 60)
    np.testing.assert_array_equal(data[0, :40, :50], _image(40, 50, 0))
    np.testing.assert_array_equal(data[1, :30, :60], _image(30, 60, 1))
    assert kwargs["metadata"]["shapes"] == {"a": (40, 50), "b": (30, 60)}


def test_single_micrograph_is_2d_and_foreign_files_are_declined(tmp_path):
    write_micrograph(tmp_path / "one.mrc", _image(32, 48, 3))
    data, kwargs, _ = _reader.get_micrograph_reader(str(tmp_path / "one.mrc"))()[0]
    assert data.shape == (32, 48)
    assert kwargs["metadata"]["micrographs"] == ["one"]
    (tmp_path / "notes.txt").write_text("hello")
    assert _reader.get_micrograph_reader(str(tmp_path / "notes.txt")) is None
    assert _reader.get_coordinate_reader(str(tmp_path / "one.mrc")) is None
    assert _reader.get_micrograph_reader(str(tmp_path / "missing_folder")) is None


@pytest.mark.parametrize("suffix", [".star", ".cbox", ".box", ".csv", ".txt", ".cs"])
def test_coordinate_files_open_as_points_at_index_y_x(tmp_path, picks, suffix):
    import npe2

    shapes = {f"mic_{i:02d}": (64, 96) for i in range(3)}
    if suffix in (".box", ".cbox"):  # one file per micrograph
        one = picks[picks["micrograph"] == "mic_00"]
        path = write_coordinates(one, tmp_path / f"mic_00{suffix}")[0]
        expected = picks[picks["micrograph"] == "mic_00"].reset_index(drop=True)
    else:
        path = write_coordinates(picks, tmp_path / f"picks{suffix}", shapes=shapes)[0]
        expected = picks
    layers = npe2.read([str(path)], stack=False, plugin_name=PLUGIN)
    data, kwargs, kind = layers[0]
    assert kind == "points"
    names = kwargs["metadata"]["micrographs"]
    features = kwargs["features"]
    got = points_to_picks(data, features, names)
    got = got.sort_values(["micrograph", "x"]).reset_index(drop=True)
    exp = expected.sort_values(["micrograph", "x"]).reset_index(drop=True)
    assert list(got["micrograph"]) == list(exp["micrograph"])
    np.testing.assert_allclose(got["x"], exp["x"], atol=0.51)  # .box stores integers
    np.testing.assert_allclose(got["y"], exp["y"], atol=0.51)
    if len(names) > 1:
        assert data.shape[1] == 3
        assert set(data[:, 0]) <= set(range(len(names)))
    else:
        assert data.shape[1] == 2
    if suffix in (".cbox", ".csv", ".txt", ".star"):
        np.testing.assert_allclose(
            got["confidence"].to_numpy(), exp["confidence"].to_numpy(), atol=1e-3
        )


def test_empty_coordinate_file_gives_an_empty_points_layer(tmp_path):
    path = tmp_path / "empty.box"
    path.write_text("")
    data, kwargs, kind = _reader.get_coordinate_reader(str(path))()[0]
    assert kind == "points" and len(data) == 0


def test_format_without_diameter_gets_the_default(tmp_path, picks):
    path = write_coordinates(picks, tmp_path / "picks.txt")[0]  # Topaz: no diameter
    data, kwargs, _ = _reader.get_coordinate_reader(str(path))()[0]
    assert kwargs["metadata"]["diameter_guessed"] is True
    assert np.all(np.asarray(kwargs["size"]) == _reader.DEFAULT_DIAMETER)


@pytest.mark.parametrize("ext", [".star", ".cbox", ".box", ".csv", ".txt", ".cs", ""])
def test_writer_round_trips_every_format(tmp_path, picks, ext):
    import npe2

    names = ["mic_00", "mic_01", "mic_02"]
    coords, rows = picks_to_points(picks, names)
    attributes = {
        "name": "labels",
        "features": rows[["micrograph", "confidence", "status"]],
        "size": np.full(len(rows), 20.0),
        "metadata": {"micrographs": names, "shapes": {n: (64, 96) for n in names}},
    }
    out = tmp_path / f"out{ext}"
    if ext:
        written = npe2.write(str(out), [(coords, attributes, "points")], plugin_name=PLUGIN)
    else:  # npe2 adds an extension to a bare name; a folder means RELION pick files
        written = _writer.write_points(str(out), coords, attributes)
        assert (out / "autopick.star").is_file() or len(written) > 1
    assert written
    if ext in (".box", ".cbox"):  # several micrographs: a folder of per-micrograph files
        assert all(Path(f).parent == tmp_path / "out" for f in written)
        out = tmp_path / "out"
    fmt = {".box": "box", ".cbox": "cbox", "": "star"}.get(ext)
    back = read_coordinates(out, fmt, diameter=20.0)
    back = back.sort_values(["micrograph", "x"]).reset_index(drop=True)
    exp = picks.sort_values(["micrograph", "x"]).reset_index(drop=True)
    assert list(back["micrograph"]) == list(exp["micrograph"])
    np.testing.assert_allclose(back["x"], exp["x"], atol=1e-3)
    np.testing.assert_allclose(back["y"], exp["y"], atol=1e-3)
    np.testing.assert_allclose(back["diameter"], 20.0)


def test_writer_names_points_by_stack_index_without_features(tmp_path):
    coords = np.array([[1.0, 5.0, 7.0], [2.0, 6.0, 8.0]])
    attributes = {"metadata": {"micrographs": ["a", "b", "c"]}, "size": np.array([10.0, 12.0])}
    files = _writer.write_points(str(tmp_path / "p.csv"), coords, attributes)
    back = read_coordinates(files[0])
    assert list(back["micrograph"]) == ["b", "c"]
    np.testing.assert_allclose(back[["x", "y"]].to_numpy(), [[7.0, 5.0], [8.0, 6.0]])
    np.testing.assert_allclose(back["diameter"], [10.0, 12.0])


def test_sample_data_with_truth():
    layers = _sample_data.synthetic_micrographs_with_truth()
    (image, ikw, ikind), (points, pkw, pkind) = layers
    assert (ikind, pkind) == ("image", "points")
    names = ikw["metadata"]["micrographs"]
    assert image.ndim == 3 and image.shape[0] == len(names) > 1
    assert len(points) > 0 and points.shape[1] == 3
    # every ground-truth point lies inside its micrograph
    shapes = ikw["metadata"]["shapes"]
    for (i, y, x), name in zip(points, pkw["features"]["micrograph"], strict=True):
        assert names[int(i)] == name
        h, w = shapes[name]
        assert 0 <= y < h and 0 <= x < w
    only = _sample_data.synthetic_micrographs()
    assert len(only) == 1 and only[0][0].shape == image.shape
