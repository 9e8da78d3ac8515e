"""Molecule families for the pretraining distribution: shapes real particles have.

Every family returns a :class:`~activepick.simulate.physics.Molecule` (3-D Gaussian
blobs, in px of the micrograph) centred on its centre of mass and scaled so that
every blob, out to 1.5 widths, fits inside a sphere of ``diameter`` px; rotated
at random per particle, one molecule gives top, side and oblique views.

Families (:data:`FAMILIES`, drawn with equal odds by :func:`random_molecule`):

- ``chain``: the simulator's default blob chain (3-20 blobs, :func:`make_molecule`);
- ``rod``: blobs on a line, aspect about 2-4 (filaments, elongated complexes);
- ``ring``: blobs on a circle (a toroid: a ring in top view, a bar in side view);
- ``globule``: 2-4 wide blobs (compact, featureless particles);
- ``shell``: blobs on a sphere's surface (hollow capsids, vesicle-like particles:
  a bright interior and a dark rim in projection);
- ``barrel``: 2-4 stacked rings of blobs (a cylinder: a ring in top view, a
  rectangle in side view, as proteasomes or chaperonins);
- ``multidomain``: 2-4 globular domains of different sizes joined by short
  linkers (dumbbells, L and T shapes);
- ``symmetric``: copies of one random subunit at the vertices of a square or a
  tetrahedron (D2 / T-like complexes such as beta-galactosidase).
"""

from __future__ import annotations

import numpy as np

from .physics import Molecule, make_molecule

#: The shape families, in the order :func:`random_molecule` numbers them.
FAMILIES: tuple[str, ...] = (
    "chain",
    "rod",
    "ring",
    "globule",
    "shell",
    "barrel",
    "multidomain",
    "symmetric",
)


def _fit(centres: np.ndarray, sigmas: np.ndarray, weights: np.ndarray, diameter: float):
    """Centre on the centre of mass and scale so the molecule fits ``diameter``."""
    centres = centres - np.average(centres, axis=0, weights=weights)
    extent = np.max(np.linalg.norm(centres, axis=1) + 1.5 * sigmas)
    scale = 0.5 * diameter / extent
    return Molecule(centres * scale, sigmas * scale, weights * scale**3)


def _sphere_points(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` roughly even points on the unit sphere (a jittered Fibonacci lattice)."""
    i = np.arange(n) + 0.5
    z = 1.0 - 2.0 * i / n
    phi = np.pi * (1.0 + 5**0.5) * i + rng.uniform(0, 2 * np.pi)
    r = np.sqrt(1.0 - z**2)
    pts = np.column_stack([r * np.cos(phi), r * np.sin(phi), z])
    return pts + rng.normal(0, 0.05, pts.shape)


def _family_blobs(rng: np.random.Generator, family: str):
    """(centres (K, 3), sigmas (K,)) of one molecule of ``family``, in arbitrary units."""
    if family == "rod":
        n = int(rng.integers(4, 13))
        t = np.linspace(-1.0, 1.0, n)
        centres = np.column_stack([t, rng.normal(0, 0.08, n), rng.normal(0, 0.08, n)])
        return centres, rng.uniform(0.08, 0.14, n) * 2.0 / rng.uniform(2.0, 4.0)
    if family == "ring":
        n = int(rng.integers(5, 13))
        a = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
        return np.column_stack([np.cos(a), np.sin(a), rng.normal(0, 0.1, n)]), rng.uniform(
            0.15, 0.3, n
        )
    if family == "globule":
        n = int(rng.integers(2, 5))
        return rng.normal(0, 0.3, (n, 3)), rng.uniform(0.25, 0.45, n)
    if family == "shell":
        n = int(rng.integers(24, 61))
        return _sphere_points(rng, n), rng.uniform(0.1, 0.18, n)
    if family == "barrel":
        rings, per = int(rng.integers(2, 5)), int(rng.integers(6, 11))
        a = np.linspace(0.0, 2 * np.pi, per, endpoint=False)
        height = rng.uniform(0.6, 1.6)
        parts = []
        for k, z in enumerate(np.linspace(-height / 2, height / 2, rings)):
            turn = a + (k % 2) * np.pi / per
            parts.append(np.column_stack([np.cos(turn), np.sin(turn), np.full(per, z)]))
        centres = np.concatenate(parts)
        return centres, rng.uniform(0.2, 0.3, len(centres))
    if family == "multidomain":
        n_dom = int(rng.integers(2, 5))
        radii = rng.uniform(0.3, 0.7, n_dom)
        pos = [np.zeros(3)]
        for k in range(1, n_dom):
            step = rng.normal(0, 1, 3)
            step *= (radii[k - 1] + radii[k]) * 0.9 / np.linalg.norm(step)
            pos.append(pos[int(rng.integers(k))] + step)
        centres, sigmas = [], []
        for p, r in zip(pos, radii, strict=True):
            k = int(rng.integers(2, 5))
            centres.append(p + rng.normal(0, 0.35 * r, (k, 3)))
            sigmas.append(rng.uniform(0.4, 0.6, k) * r)
        return np.concatenate(centres), np.concatenate(sigmas)
    if family == "symmetric":
        sub_n = int(rng.integers(2, 5))
        sub = rng.normal(0, 0.22, (sub_n, 3))
        sub_s = rng.uniform(0.15, 0.3, sub_n)
        if rng.random() < 0.5:  # D2-like: four subunits on a square, alternating up / down
            a = np.arange(4) * np.pi / 2 + np.pi / 4
            verts = np.column_stack([np.cos(a), np.sin(a), 0.25 * np.array([1, -1, 1, -1])])
        else:  # tetrahedron
            verts = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]]) / 3**0.5
        centres = np.concatenate([v * 0.65 + sub for v in verts])
        return centres, np.tile(sub_s, len(verts))
    raise ValueError(f"unknown molecule family {family!r} (known: {', '.join(FAMILIES)})")


def family_molecule(rng: np.random.Generator, family: str, diameter: float) -> Molecule:
    """One molecule of ``family`` (:data:`FAMILIES`) fitting ``diameter`` px."""
    if family == "chain":
        return make_molecule(rng, diameter, int(rng.integers(3, 21)))
    centres, sigmas = _family_blobs(rng, family)
    weights = rng.uniform(0.5, 1.5, len(sigmas)) * sigmas**3
    return _fit(centres, sigmas, weights, diameter)


def random_molecule(rng: np.random.Generator, diameter: float) -> tuple[str, Molecule]:
    """A molecule of a uniformly drawn family; returns ``(family, molecule)``."""
    family = FAMILIES[int(rng.integers(len(FAMILIES)))]
    return family, family_molecule(rng, family, diameter)
