"""The pretraining simulator (simulate.realism, simulate.molecules): each feature real
micrographs have is drawn, and seen on a drawn image."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial import cKDTree

from activepick.simulate.molecules import FAMILIES, family_molecule
from activepick.simulate.physics import _render_molecule, ctf_2d
from activepick.simulate.realism import (
    FILTERS,
    RealismSpec,
    dense_centres,
    draw_spec,
    filtered_look,
    render_realistic,
)


def _plain(shape=(256, 256), diameter=32.0, **kw) -> RealismSpec:
    """A spec with every optional feature off unless ``kw`` turns it on."""
    base = dict(
        shape=shape,
        diameter=diameter,
        density=0.0,
        ice_noise=0.0,
        thickness=0.0,
        blobs=0,
        poisson=False,
        dose=50.0,
        snr=0.5,
    )
    base.update(kw)
    return RealismSpec(**base)


def _radial_power(image: np.ndarray) -> np.ndarray:
    """Radially averaged power spectrum, one value per integer radius (cycles/image)."""
    f = np.abs(np.fft.fftshift(np.fft.fft2(image - image.mean()))) ** 2
    h, w = image.shape
    y, x = np.indices(f.shape)
    r = np.hypot(y - h // 2, x - w // 2).astype(int)
    return np.bincount(r.ravel(), f.ravel()) / np.maximum(np.bincount(r.ravel()), 1)


def test_draw_spec_draws_every_new_feature():
    rng = np.random.default_rng(0)
    specs = [draw_spec(rng, (256, 256), 32.0) for _ in range(400)]
    assert max(s.density for s in specs) >= 0.6  # crowding up to touching
    assert min(s.min_distance for s in specs) < 0.85
    assert {s.family for s in specs} == set(FAMILIES)  # shells, barrels, symmetric, ...
    assert any(s.preferred for s in specs) and not all(s.preferred for s in specs)
    assert any(s.poisson for s in specs) and any(s.ice_noise > 0.5 for s in specs)
    assert {s.carbon for s in specs} == {None, "edge", "hole"}
    assert any(s.contamination for s in specs) and any(s.decoys > 0 for s in specs)
    drawn = {f for s in specs for f in s.filters}
    assert drawn == set(FILTERS)
    assert 0.2 < np.mean([bool(s.filters) for s in specs]) < 0.5  # the filtered look


def test_crowded_image_holds_touching_particles_and_some_cut_by_the_border():
    d = 24.0
    spec = _plain(shape=(384, 384), diameter=d, density=0.7, min_distance=0.85)
    sim = render_realistic(np.random.default_rng(1), spec)
    c = sim.centres
    density = len(c) * d**2 / (384 * 384)
    assert density >= 0.6
    nn = cKDTree(c).query(c, k=2)[0][:, 1]
    assert nn.min() >= 0.85 * d - 1e-9  # never closer than min_distance
    assert np.mean(nn < 1.0 * d) > 0.3  # many touch: nearer than one diameter
    # particles cut by the border: centres inside the image but within half a diameter
    edge = np.minimum.reduce([c[:, 0], c[:, 1], 383 - c[:, 0], 383 - c[:, 1]])
    assert (edge < 0.5 * d).any() and edge.min() >= 0


def test_dense_centres_respects_obstacles_and_fills_up():
    rng = np.random.default_rng(2)
    obstacles = np.array([[100.0, 100.0]])
    pts = dense_centres(rng, (200, 200), 10_000, 10.0, obstacles=obstacles, obstacle_distance=30)
    assert np.linalg.norm(pts - obstacles, axis=1).min() >= 30
    assert len(pts) * 100 / 200**2 > 0.55  # near jamming: > 0.55 per (min distance)^2


def test_shell_projects_to_a_ring_with_a_dark_rim():
    d = 48.0
    mol = family_molecule(np.random.default_rng(3), "shell", d)
    from scipy.spatial.transform import Rotation

    img = np.zeros((96, 96), np.float32)
    _render_molecule(img, mol, np.array([[48.0, 48.0]]), Rotation.identity(1), 40)
    y, x = np.indices(img.shape)
    r = np.hypot(x - 48, y - 48)
    profile = [img[(r >= a) & (r < a + 2)].mean() for a in range(0, 24, 2)]
    assert max(profile[6:]) > 1.3 * profile[0]  # more density at the rim than the centre


def test_every_family_fits_its_diameter():
    rng = np.random.default_rng(4)
    for family in FAMILIES:
        m = family_molecule(rng, family, 40.0)
        extent = np.max(np.linalg.norm(m.centres, axis=1) + 1.5 * m.sigmas)
        assert extent == pytest.approx(20.0)
    with pytest.raises(ValueError, match="unknown molecule family 'cube'"):
        family_molecule(rng, "cube", 40.0)


def test_ice_noise_has_thon_rings_at_the_ctf_zeros():
    shape, pixel, defocus = (512, 512), 1.5, 1.5
    spec = _plain(shape=shape, ice_noise=4.0, pixel_size=pixel, defocus_um=defocus, bfactor=0.0)
    sim = render_realistic(np.random.default_rng(5), spec)
    power = _radial_power(sim.image)
    ctf = ctf_2d(shape, pixel, defocus)[0, :]  # along kx, ky = 0: index = radius
    radii = np.arange(20, 200)
    zeros = radii[np.abs(ctf[radii]) < 0.1]
    peaks = radii[np.abs(ctf[radii]) > 0.95]
    assert len(zeros) >= 3 and len(peaks) >= 3
    # white counting noise alone is flat; the ice's CTF-modulated noise adds 4x at the peaks
    assert power[zeros].mean() < 0.5 * power[peaks].mean()


def test_counting_noise_is_poisson():
    spec = _plain(shape=(256, 256), poisson=True, dose=3.0)
    img = render_realistic(np.random.default_rng(6), spec).image
    assert np.array_equal(img, np.round(img))  # electron counts
    assert img.var() == pytest.approx(img.mean(), rel=0.05)  # variance = mean
    assert img.mean() == pytest.approx(3.0, rel=0.03)


def test_filtered_look_blurs_equalises_and_quantises():
    rng = np.random.default_rng(7)
    noise = rng.standard_normal((256, 256)).astype(np.float32) * 5 + 100
    blurred = filtered_look(rng, noise, 32.0, ("blur",))
    p0, p1 = _radial_power(noise), _radial_power(blurred)
    assert p1[64:128].sum() < 0.2 * p0[64:128].sum()  # high frequencies removed
    quantised = filtered_look(rng, noise, 32.0, ("quantise",))
    assert len(np.unique(quantised)) <= 256 and quantised.min() == 0 and quantised.max() == 255
    ramp = noise + np.linspace(0, 500, 256, dtype=np.float32)[None, :]
    equalised = filtered_look(rng, ramp, 32.0, ("equalise",))
    halves = equalised[:, 40:120].mean(), equalised[:, 136:216].mean()
    # before: the halves differ by 250 counts = 50 noise SDs; after: under half an SD
    assert abs(halves[0] - halves[1]) < 0.5  # the ramp is (nearly) gone, the noise stays
    assert 0.5 < equalised.std() < 2.0
    jpeg = filtered_look(rng, noise, 32.0, ("jpeg",))
    assert jpeg.dtype == np.float32 and jpeg.shape == noise.shape
    with pytest.raises(ValueError, match="unknown filters"):
        filtered_look(rng, noise, 32.0, ("sharpen",))


def test_contamination_removes_the_particles_under_it_from_the_truth():
    spec = _plain(shape=(256, 256), density=0.5, contamination=3)
    full = render_realistic(np.random.default_rng(8), _plain(shape=(256, 256), density=0.5))
    dirty = render_realistic(np.random.default_rng(8), spec)
    assert len(dirty.centres) < len(full.centres)
    # contamination is dark: far fewer electrons than the ice around it
    assert np.percentile(dirty.image, 2) < 0.5 * np.median(dirty.image)


@pytest.mark.parametrize("carbon", ["edge", "hole"])
def test_carbon_film_darkens_part_of_the_image(carbon):
    rng = np.random.default_rng(9 if carbon == "edge" else 11)
    img = render_realistic(rng, _plain(shape=(256, 256), carbon=carbon)).image
    from scipy import ndimage

    smooth = ndimage.uniform_filter(img, 32)[16:-16, 16:-16]
    # the film absorbs: a smooth step of exp(-0.1..-0.7) in the mean count
    assert smooth.min() < math.exp(-0.09) * smooth.max()


def test_decoys_are_rendered_but_not_in_the_truth():
    spec = _plain(shape=(256, 256), density=0.2, decoys=0.5)
    sim = render_realistic(np.random.default_rng(10), spec)
    assert len(sim.decoys) > 0
    dist = cKDTree(sim.centres).query(sim.decoys)[0]
    assert dist.min() > 0.5 * 32.0 * 0.3  # decoys are not the particles
