"""The micrograph simulator: geometry, CTF, SNR, clutter, determinism, files, CLI."""

from __future__ import annotations

import json
import math
import sys
import time

import mrcfile
import numpy as np
import pandas as pd
import pytest
from scipy.spatial.transform import Rotation

from activepick.cli import main
from activepick.errors import ActivePickError, Cancelled
from activepick.io.formats import read_coordinates
from activepick.io.micrograph import read_micrograph
from activepick.simulate import (
    Molecule,
    SimulationError,
    ctf_2d,
    electron_wavelength,
    make_molecule,
    project_volume,
    render_micrograph,
    simulate_dataset,
    simulate_micrograph,
)


def disc_mask(shape, centres, radius):
    """Pixels within ``radius`` of any (x, y) centre, computed independently of the module."""
    rows, cols = np.indices(shape)
    mask = np.zeros(shape, dtype=bool)
    for x, y in centres:
        mask |= (cols - x) ** 2 + (rows - y) ** 2 <= radius**2
    return mask


# --------------------------------------------------------------------------- geometry


def test_non_square_shape_centres_inside_and_apart():
    rng = np.random.default_rng(1)
    image, xy = simulate_micrograph(rng, size=(200, 320), n_particles=12, diameter=40)
    assert image.shape == (200, 320) and image.dtype == np.float32
    assert xy.shape == (12, 2) and xy.dtype == np.float64
    # x is the column (width 320), y the row (height 200); centres >= radius from edges
    assert np.all((xy[:, 0] >= 20) & (xy[:, 0] <= 319 - 20))
    assert np.all((xy[:, 1] >= 20) & (xy[:, 1] <= 199 - 20))
    assert xy[:, 0].max() > 200  # would be impossible if x and y were swapped
    d = np.sqrt(((xy[:, None] - xy[None]) ** 2).sum(-1))
    assert d[np.triu_indices(12, 1)].min() >= 40


def test_too_many_particles_is_a_clear_error():
    rng = np.random.default_rng(0)
    with pytest.raises(SimulationError, match=r"cannot hold 50 non-overlapping particles") as e:
        simulate_micrograph(rng, size=256, n_particles=50, diameter=64)
    assert isinstance(e.value, ActivePickError)
    with pytest.raises(SimulationError, match="cannot hold a particle"):
        simulate_micrograph(rng, size=(100, 40), n_particles=1, diameter=48)


def test_single_blob_projection_is_at_the_centre_through_the_ctf():
    # a one-blob molecule projects to a 2-D Gaussian exactly at (x, y) = (column, row);
    # the signal must equal that Gaussian times the CTF (rfft2), up to the SNR scale
    shape = (96, 160)
    mol = Molecule(np.zeros((1, 3)), np.array([3.0]), np.array([1.0]))
    sim = render_micrograph(
        np.random.default_rng(5), size=shape, n_particles=1, diameter=24, volume=mol, snr=1.0
    )
    ((x, y),) = sim.centres
    rows, cols = np.indices(shape)
    gauss = np.exp(-((cols - x) ** 2 + (rows - y) ** 2) / 18.0)
    ctf = ctf_2d(shape, 1.5, sim.defocus_um)
    expected = np.fft.irfft2(np.fft.rfft2(gauss) * ctf, s=shape)
    scale = np.dot(sim.signal.ravel(), expected.ravel()) / np.dot(
        expected.ravel(), expected.ravel()
    )
    np.testing.assert_allclose(sim.signal, scale * expected, atol=2e-3 * np.abs(sim.signal).max())
    assert scale > 0


def test_molecule_centred_and_within_diameter():
    mol = make_molecule(np.random.default_rng(3), 64)
    np.testing.assert_allclose(np.average(mol.centres, axis=0, weights=mol.weights), 0, atol=1e-9)
    assert np.max(np.linalg.norm(mol.centres, axis=1) + 1.5 * mol.sigmas) == pytest.approx(32)
    # asymmetric: the blobs are not all alike
    assert np.ptp(mol.sigmas) > 0 and len(mol.sigmas) >= 4


def test_project_volume_rotation_convention():
    # a blob at x = +5 voxels; rotating 90 degrees about z moves it to y = +5
    size = 21
    axis = np.arange(size) - 10
    z, y, x = np.meshgrid(axis, axis, axis, indexing="ij")
    vol = np.exp(-((x - 5) ** 2 + y**2 + z**2) / 4.0)
    proj = project_volume(vol, Rotation.from_euler("z", 90, degrees=True))
    row, col = np.unravel_index(np.argmax(proj), proj.shape)
    assert (row - 10, col - 10) == (5, 0)
    np.testing.assert_allclose(proj.sum(), vol.sum(), rtol=1e-3)


def test_voxel_volume_backend_runs():
    axis = np.arange(17) - 8
    z, y, x = np.meshgrid(axis, axis, axis, indexing="ij")
    vol = np.exp(-((x - 3) ** 2 + y**2 + z**2) / 6.0) + np.exp(-(x**2 + (y + 2) ** 2 + z**2) / 3)
    sim = render_micrograph(
        np.random.default_rng(2), size=128, n_particles=4, diameter=20, volume=vol, snr=0.1
    )
    assert sim.centres.shape == (4, 2) and sim.snr == pytest.approx(0.1, rel=0.02)
    with pytest.raises(SimulationError, match="cubic"):
        simulate_micrograph(np.random.default_rng(0), size=64, volume=np.zeros((4, 5, 4)))


# --------------------------------------------------------------------------- CTF


def test_electron_wavelength_300kv():
    assert electron_wavelength(300) == pytest.approx(0.019687, abs=2e-6)
    assert electron_wavelength(200) == pytest.approx(0.025079, abs=2e-6)


def test_ctf_hand_values():
    lam = electron_wavelength(300)
    n, j = 64, 8
    # Cs = 0, defocus 1 um: choose the pixel size that puts chi = pi / 2 at index j
    k = math.sqrt(1.0 / (2 * lam * 1e4))
    p = j / (n * k)
    ctf = ctf_2d((n, n), p, 1.0, cs_mm=0.0)
    assert ctf.shape == (n, n // 2 + 1)
    assert ctf[0, 0] == pytest.approx(-0.1)  # -A at k = 0 (particles dark)
    assert ctf[0, j] == pytest.approx(-math.sqrt(0.99), abs=1e-5)
    assert ctf[j, 0] == pytest.approx(-math.sqrt(0.99), abs=1e-5)  # rows: same |k|
    # zero defocus, Cs 2.7 mm: chi = -pi / 2 where Cs lam^3 k^4 = 1 -> CTF = +sqrt(0.99)
    k = (1.0 / (2.7e7 * lam**3)) ** 0.25
    ctf = ctf_2d((n, n), j / (n * k), 0.0)
    assert ctf[0, j] == pytest.approx(math.sqrt(0.99), abs=1e-5)


# --------------------------------------------------------------------------- noise / SNR


@pytest.mark.parametrize("snr", [0.05, 0.2])
def test_snr_of_generated_micrographs(snr):
    rng = np.random.default_rng(7)
    for _ in range(2):
        sim = render_micrograph(rng, size=(256, 384), n_particles=12, diameter=48, snr=snr)
        noise = sim.image.astype(np.float64) - sim.signal - sim.background
        inside = disc_mask(sim.image.shape, sim.centres, 24)
        measured = np.var(sim.signal[inside].astype(np.float64)) / np.var(noise)
        assert measured == pytest.approx(snr, rel=0.2)
        assert sim.snr == pytest.approx(measured, rel=1e-3)
        assert np.std(noise) == pytest.approx(1.0, rel=0.02)
        assert abs(np.mean(noise)) < 0.02


def test_snr_seen_from_the_image_alone():
    # image variance inside the particles minus the variance far from them = signal variance
    rng = np.random.default_rng(11)
    sim = render_micrograph(rng, size=384, n_particles=20, diameter=48, snr=0.2)
    img = sim.image.astype(np.float64)
    inside = disc_mask(img.shape, sim.centres, 24)
    far = ~disc_mask(img.shape, sim.centres, 60)
    estimate = (np.var(img[inside]) - np.var(img[far])) / np.var(img[far])
    assert estimate == pytest.approx(0.2, rel=0.2)


# --------------------------------------------------------------------------- clutter


def test_distractors_and_gradient():
    rng = np.random.default_rng(4)
    sim = render_micrograph(rng, size=(256, 320), n_particles=6, diameter=32, distractors=4)
    assert len(sim.distractors) == 4
    for x, y, d in sim.distractors:
        assert np.min(np.hypot(*(sim.centres - (x, y)).T)) >= (32 + d) / 2
        assert d != 32
    assert np.abs(sim.background).max() > 0.3  # peaks 0.3-1 noise sigma
    plain = render_micrograph(np.random.default_rng(4), size=(256, 320), n_particles=6, diameter=32)
    np.testing.assert_array_equal(plain.centres, sim.centres)  # clutter is drawn after
    ramp = render_micrograph(np.random.default_rng(4), size=(256, 320), n_particles=0, gradient=3)
    assert np.ptp(ramp.background) == pytest.approx(3.0, rel=1e-5)
    assert abs(ramp.background.mean()) < 0.2
    # a ramp is linear: its second differences vanish
    assert np.abs(np.diff(ramp.background, 2, axis=1)).max() < 1e-4


# --------------------------------------------------------------------------- datasets


def _files(folder):
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != "simulation.json"
    }


def test_dataset_files_and_determinism(tmp_path):
    kw = dict(n=3, particles=5, size=(128, 160), diameter=24, snr=0.1, distractors=1, gradient=1)
    steps = []
    a = simulate_dataset(tmp_path / "a", seed=3, progress=steps.append, **kw)
    time.sleep(1.0)  # a time stamp in any file would now differ
    simulate_dataset(tmp_path / "b", seed=3, **kw)
    simulate_dataset(tmp_path / "c", seed=4, **kw)
    fa, fb, fc = (_files(tmp_path / s) for s in "abc")
    assert sorted(fa) == [
        "ground_truth.csv",
        "ground_truth.star",
        "micrographs/synth_0000.mrc",
        "micrographs/synth_0001.mrc",
        "micrographs/synth_0002.mrc",
    ]
    assert fa == fb  # byte-identical for the same seed
    assert all(fa[k] != fc[k] for k in fa)  # every file differs for another seed
    assert steps == [{"stage": "simulate", "step": i, "total": 3} for i in (1, 2, 3)]
    assert a["micrographs"] == [
        tmp_path / "a" / "micrographs" / f"synth_000{i}.mrc" for i in range(3)
    ]

    mic = read_micrograph(a["micrographs"][1])
    assert mic.shape == (128, 160) and mic.pixel_size == pytest.approx(1.5)
    with mrcfile.open(a["micrographs"][1]) as m:
        assert m.data.dtype == np.float32
        assert m.header.label[0].decode().startswith("Simulated by napari-activepick")
    assert fa["ground_truth.star"].startswith(b"# Simulated by napari-activepick")
    truth = a["truth"]
    assert list(truth["micrograph"].unique()) == ["synth_0000", "synth_0001", "synth_0002"]
    assert (truth["status"] == "imported").all() and (truth["diameter"] == 24).all()
    csv = read_coordinates(tmp_path / "a" / "ground_truth.csv")
    np.testing.assert_allclose(csv[["x", "y"]], truth[["x", "y"]])
    star = read_coordinates(tmp_path / "a" / "ground_truth.star", diameter=24)
    np.testing.assert_allclose(star[["x", "y"]], truth[["x", "y"]], atol=1e-5)
    assert list(star["micrograph"]) == list(truth["micrograph"])

    record = json.loads((tmp_path / "a" / "simulation.json").read_text())
    assert record["seed"] == 3 and record["size"] == [128, 160] and record["n"] == 3
    assert [m["name"] for m in record["micrographs"]] == ["synth_0000", "synth_0001", "synth_0002"]
    for m in record["micrographs"]:
        assert m["snr_measured"] == pytest.approx(0.1, rel=0.01)
        assert 1.0 <= m["defocus_um"] <= 2.5


def test_dataset_prefix_does_not_depend_on_n(tmp_path):
    kw = dict(particles=4, size=96, diameter=20, seed=9)
    one = simulate_dataset(tmp_path / "one", n=1, **kw)
    two = simulate_dataset(tmp_path / "two", n=2, **kw)
    assert one["micrographs"][0].read_bytes() == two["micrographs"][0].read_bytes()
    pd.testing.assert_frame_equal(
        one["truth"], two["truth"][two["truth"].micrograph == "synth_0000"]
    )


def test_dataset_cancel_and_foreign_folder(tmp_path):
    calls = []

    def stop():
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(Cancelled, match="after 2 of 5"):
        simulate_dataset(tmp_path / "x", n=5, particles=2, size=64, diameter=16, should_stop=stop)
    assert not (tmp_path / "x" / "ground_truth.csv").exists()
    (tmp_path / "y" / "micrographs").mkdir(parents=True)
    (tmp_path / "y" / "micrographs" / "other.mrc").write_bytes(b"")
    with pytest.raises(SimulationError, match="other.mrc"):
        simulate_dataset(tmp_path / "y", n=1, particles=1, size=64, diameter=16)
    with pytest.raises(SimulationError, match="unknown backend"):
        simulate_dataset(tmp_path / "z", n=1, backend="bogus")


# --------------------------------------------------------------------------- CLI


def test_cli_simulate(tmp_path, capsys):
    out = tmp_path / "sim"
    args = ["simulate", "--out", str(out), "--n", "2", "--particles", "3", "--size", "96", "128"]
    assert main([*args, "--diameter", "24", "--seed", "1", "--distractors", "1"]) == 0
    text = capsys.readouterr().out
    assert "wrote 2 micrograph(s)" in text and "ground_truth.star" in text
    assert read_micrograph(out / "micrographs" / "synth_0001.mrc").shape == (96, 128)
    assert len(pd.read_csv(out / "ground_truth.csv")) == 6
    code = main(["simulate", "--out", str(tmp_path / "bad"), "--n", "1", "--size", "256"])
    assert code == 2
    err = capsys.readouterr().err
    assert "synth_0000.mrc: a 256 x 256 px micrograph cannot hold 40" in err


# --------------------------------------------------------------------------- ASPIRE


def test_aspire_backend_missing_is_a_clear_error(tmp_path, monkeypatch):
    for name in ("aspire", "aspire.operators", "aspire.source", "aspire.volume"):
        monkeypatch.setitem(sys.modules, name, None)  # import fails as when not installed
    with pytest.raises(SimulationError, match=r'pip install "napari-activepick\[aspire\]"'):
        simulate_dataset(tmp_path, n=1, particles=2, size=128, diameter=24, backend="aspire")


def test_aspire_backend(tmp_path):
    pytest.importorskip("aspire")  # optional extra: napari-activepick[aspire]
    res = simulate_dataset(
        tmp_path / "a", n=1, particles=5, size=256, diameter=32, snr=10.0, backend="aspire"
    )
    xy = res["truth"][["x", "y"]].to_numpy()
    assert xy.shape == (5, 2)
    assert np.all((xy >= 16) & (xy <= 255 - 16))
    image = read_micrograph(res["micrographs"][0]).data.astype(np.float64)
    assert image.shape == (256, 256)
    # the particles sit at (row, col) = (y, x): the image varies far more inside the circles
    inside = disc_mask(image.shape, xy, 16)
    assert np.var(image[inside]) > 3 * np.var(image[~disc_mask(image.shape, xy, 24)])
    assert res["settings"]["micrographs"][0]["snr_measured"] == pytest.approx(10.0, rel=0.01)
    with pytest.raises(SimulationError, match="square"):
        simulate_dataset(tmp_path / "b", n=1, size=(256, 320), backend="aspire")


def test_decoys_are_rendered_but_not_in_the_truth():
    kw = dict(size=160, n_particles=4, diameter=30, snr=1.0)
    mol = make_molecule(np.random.default_rng(0), 30)
    small = make_molecule(np.random.default_rng(1), 15)
    plain = render_micrograph(np.random.default_rng(7), volume=mol, **kw)
    none = render_micrograph(np.random.default_rng(7), volume=mol, decoys=0, **kw)
    # no decoys: the very same draws as a micrograph made without the argument
    np.testing.assert_array_equal(plain.image, none.image)
    assert none.decoys.shape == (0, 2)
    sim = render_micrograph(
        np.random.default_rng(7), volume=mol, decoys=3, decoy_volume=small, **kw
    )
    assert sim.centres.shape == (4, 2) and sim.decoys.shape == (3, 2)
    every = np.vstack([sim.centres, sim.decoys])
    gaps = np.hypot(*(every[:, None] - every[None]).transpose(2, 0, 1))
    assert gaps[~np.eye(7, dtype=bool)].min() >= 30  # placed apart like particles
    # the decoys are in the signal: far more of it on them than away from every particle
    on = disc_mask(sim.signal.shape, sim.decoys, 7.5)
    away = ~disc_mask(sim.signal.shape, every, 30)
    assert on.any() and away.any()
    assert np.abs(sim.signal[on]).mean() > 3 * np.abs(sim.signal[away]).mean()
    with pytest.raises(ActivePickError, match="decoy_volume"):
        render_micrograph(np.random.default_rng(7), volume=mol, decoys=1, **kw)
