"""Micrographs that look like real ones: the image formation of the pretraining set.

:func:`render_realistic` draws one micrograph from a :class:`RealismSpec` (drawn at
random by :func:`draw_spec`). Compared with :func:`~.physics.render_micrograph`
(white Gaussian noise, non-touching particles) it adds what real micrographs have:

- **Crowding** up to touching particles (:func:`dense_centres`, at least
  ``min_distance`` x diameter apart, 0.8-1 diameters) and particles cut by the
  image border (centres up to 0.3 diameters outside; only centres inside the
  image are in the truth). Optional small decoy particles (another complex,
  fragments) that are not in the truth teach the size.
- **Molecules with internal structure** (:mod:`.molecules`): shells, rings,
  barrels, multi-domain and symmetric complexes seen in random or preferred
  orientations, each particle at its own contrast (ice thickness, occupancy).
- **Noise with a real power spectrum**: structural noise of the ice, modulated by
  the same CTF as the particles (Thon rings in the power spectrum) with a B-factor
  envelope, then counting noise: the expected electron count per pixel is
  ``dose * m(x) * (1 + contrast(x) / sqrt(dose))`` and the image is a Poisson draw of it
  (a Gaussian one of the same variance on some images). ``m(x) = exp(-t(x))``
  follows the ice thickness ``t``: a smooth random field plus a ramp (thin and
  thick ice), carbon film and contamination.
- **Carbon and contamination**: a carbon film with a curved edge or a round hole
  (darker, with its own texture), large irregular dark contamination (no particle
  under it stays in the truth) and the simulator's smooth ice / aggregate blobs.
- **A filtered look** (:func:`filtered_look`), as many users pick on denoised or
  low-pass-filtered micrographs: Gaussian blur, local contrast equalisation
  (CLAHE-like), 8-bit quantisation and JPEG compression, each drawn on its own.

Units: ``contrast`` is in units of the counting noise's standard deviation at
``m = 1``; ``snr`` is the thesis's var(signal in the particle circles) / var(noise),
as in :mod:`.physics`. Coordinates are (x, y) = (column, row), origin at the centre
of the top-left pixel. Everything is drawn from the generator passed in.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field

import numpy as np

from .molecules import FAMILIES, family_molecule
from .physics import (
    RENDER_HALF_WIDTH,
    _k_squared,
    _render_molecule,
    ctf_2d,
    gradient_ramp,
    particle_mask,
    render_distractors,
)

#: Ways :func:`filtered_look` can change an image (each drawn independently).
FILTERS: tuple[str, ...] = ("blur", "equalise", "quantise", "jpeg")


@dataclass
class RealismSpec:
    """Everything :func:`render_realistic` draws an image from (sizes in px of the image).

    - ``shape`` (H, W), ``diameter``, ``pixel_size`` (Å/px), ``defocus_um``;
    - ``density``: particles per diameter squared; ``min_distance``: least centre
      distance in diameters (1 = touching); ``family``: :data:`.molecules.FAMILIES`;
      ``preferred``: rotations near one view instead of uniform;
    - ``snr``; ``ice_noise``: variance of the CTF-modulated structural noise (units
      of the counting noise); ``bfactor`` (Å^2) of the CTF envelope; ``dose``:
      electrons per pixel; ``poisson``: Poisson counting noise (else Gaussian);
    - ``thickness``: peak-to-peak of the ice-thickness field ``t``; ``carbon``:
      ``None``, ``"edge"`` or ``"hole"``; ``contamination``: large dark blobs;
      ``blobs``: the simulator's ice / aggregate blobs; ``decoys``: small particles
      per true particle (not in the truth);
    - ``filters``: the subset of :data:`FILTERS` applied.
    """

    shape: tuple[int, int]
    diameter: float
    pixel_size: float = 1.5
    defocus_um: float = 1.5
    density: float = 0.3
    min_distance: float = 1.0
    family: str = "chain"
    preferred: bool = False
    snr: float = 0.1
    ice_noise: float = 0.3
    bfactor: float = 100.0
    dose: float = 20.0
    poisson: bool = True
    thickness: float = 0.3
    carbon: str | None = None
    contamination: int = 0
    blobs: int = 0
    decoys: float = 0.0
    filters: tuple[str, ...] = field(default_factory=tuple)

    def features(self) -> dict:
        """A JSON-friendly summary (what a test or a log needs to know was drawn)."""
        return {
            "family": self.family,
            "density": round(self.density, 3),
            "min_distance": round(self.min_distance, 3),
            "preferred": self.preferred,
            "ice_noise": round(self.ice_noise, 3),
            "poisson": self.poisson,
            "carbon": self.carbon,
            "contamination": self.contamination,
            "decoys": round(self.decoys, 3),
            "filters": list(self.filters),
        }


@dataclass
class RealisticMicrograph:
    """One drawn image: ``image`` float32 (H, W), ``centres`` (N, 2) of the particles
    whose centre lies inside the image and not under contamination, ``decoys``
    (K, 2), and the ``spec`` it was drawn from."""

    image: np.ndarray
    centres: np.ndarray
    decoys: np.ndarray
    spec: RealismSpec


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def draw_spec(
    rng: np.random.Generator, shape: tuple[int, int], diameter: float, *, snr=(0.02, 1.0)
) -> RealismSpec:
    """A random :class:`RealismSpec` of the pretraining distribution (docs/model_card.md)."""
    empty = rng.random() < 0.05
    crowded = rng.random() < 0.4
    density = 0.0 if empty else rng.uniform(0.3, 0.8) if crowded else rng.uniform(0.02, 0.3)
    filters = ()
    if rng.random() < 0.35:
        filters = tuple(f for f in FILTERS if rng.random() < 0.5) or ("blur",)
    carbon = None
    if rng.random() < 0.3:
        carbon = "edge" if rng.random() < 0.6 else "hole"
    return RealismSpec(
        shape=tuple(int(s) for s in shape),
        diameter=float(diameter),
        pixel_size=rng.uniform(0.7, 3.0),
        defocus_um=rng.uniform(0.5, 4.0),
        density=float(density),
        min_distance=rng.uniform(0.8, 1.0) if crowded else rng.uniform(0.9, 1.3),
        family=FAMILIES[int(rng.integers(len(FAMILIES)))],
        preferred=bool(rng.random() < 0.3),
        snr=_log_uniform(rng, *snr),
        ice_noise=rng.uniform(0.0, 1.0),
        bfactor=rng.uniform(20.0, 300.0),
        dose=_log_uniform(rng, 1.0, 60.0),
        poisson=bool(rng.random() < 0.7),
        thickness=rng.uniform(0.0, 0.4),
        carbon=carbon,
        contamination=int(rng.integers(1, 4)) if rng.random() < 0.2 else 0,
        blobs=int(rng.integers(0, 10)),
        decoys=rng.uniform(0.1, 0.5) if rng.random() < 0.25 else 0.0,
        filters=filters,
    )


# --------------------------------------------------------------------------- placement


def dense_centres(
    rng: np.random.Generator,
    shape: tuple[int, int],
    n: int,
    min_distance: float,
    *,
    outside: float = 0.0,
    obstacles: np.ndarray | None = None,
    obstacle_distance: float = 0.0,
    rounds: int = 12,
) -> np.ndarray:
    """Up to ``n`` centres (x, y) at least ``min_distance`` px apart (random sequential
    addition in batches, fast up to jamming: about 0.55 of the plane covered).

    Centres lie in ``[-outside, W - 1 + outside] x [-outside, H - 1 + outside]``;
    none lies within ``obstacle_distance`` of an ``obstacles`` point. Returns fewer
    than ``n`` when the field is full.
    """
    from scipy.spatial import cKDTree

    h, w = shape
    placed = np.zeros((0, 2))
    blocked = None
    if obstacles is not None and len(obstacles):
        blocked = cKDTree(np.asarray(obstacles, dtype=np.float64).reshape(-1, 2))
    for _ in range(rounds):
        need = n - len(placed)
        if need <= 0:
            break
        cand = np.column_stack(
            [
                rng.uniform(-outside, w - 1 + outside, 3 * need + 8),
                rng.uniform(-outside, h - 1 + outside, 3 * need + 8),
            ]
        )
        if len(placed):
            cand = cand[cKDTree(placed).query(cand, k=1)[0] >= min_distance]
        if blocked is not None and len(cand):
            cand = cand[blocked.query(cand, k=1)[0] >= obstacle_distance]
        if not len(cand):
            continue
        pairs = cKDTree(cand).query_pairs(min_distance, output_type="ndarray")
        keep = np.ones(len(cand), dtype=bool)
        if len(pairs):
            # greedy in draw order: a candidate loses to every earlier kept neighbour
            later = np.sort(pairs, axis=1)
            for i, j in later[np.lexsort((later[:, 1], later[:, 0]))]:
                if keep[i]:
                    keep[j] = False
        placed = np.concatenate([placed, cand[keep][:need]])
    return placed


# --------------------------------------------------------------------------- fields


def _gaussian_transfer(shape: tuple[int, int], sigma: float) -> np.ndarray:
    """The ``rfft2`` transfer function of a Gaussian blur of ``sigma`` px, float32."""
    ky = np.fft.fftfreq(shape[0])[:, None]
    kx = np.fft.rfftfreq(shape[1])[None, :]
    return np.exp(-2.0 * (np.pi * sigma) ** 2 * (kx**2 + ky**2)).astype(np.float32)


def gaussian_blur(image: np.ndarray, sigma: float, *, periodic: bool = False) -> np.ndarray:
    """``image`` blurred by a Gaussian of ``sigma`` px through the FFT (cost independent
    of ``sigma``), float32. Borders are mirrored (as ``scipy.ndimage``'s default)
    unless ``periodic``."""
    import scipy.fft

    image = np.asarray(image, dtype=np.float32)
    pad = 0 if periodic else int(min(math.ceil(3 * sigma), *image.shape))
    padded = np.pad(image, pad, mode="symmetric") if pad else image
    shape = padded.shape
    f = scipy.fft.rfft2(padded) * _gaussian_transfer(shape, sigma)
    out = scipy.fft.irfft2(f, s=shape).astype(np.float32)
    return out[pad : pad + image.shape[0], pad : pad + image.shape[1]] if pad else out


def smooth_field(rng: np.random.Generator, shape: tuple[int, int], scale: float) -> np.ndarray:
    """A Gaussian random field of correlation length ``scale`` px, zero mean, unit SD
    (zeros when ``scale`` is so long that the field is flat across the image)."""
    out = gaussian_blur(rng.standard_normal(shape, dtype=np.float32), scale, periodic=True)
    out -= out.mean()
    sd = float(out.std())
    return out / sd if sd > 1e-6 else np.zeros(shape, dtype=np.float32)


def ctf_envelope(shape: tuple[int, int], pixel_size: float, bfactor: float) -> np.ndarray:
    """``exp(-B k^2 / 4)`` on the ``rfft2`` grid (k in 1/Å), float32."""
    return np.exp(-0.25 * bfactor * _k_squared(tuple(shape), float(pixel_size))).astype(np.float32)


def ctf_filter(image: np.ndarray, spec: RealismSpec) -> np.ndarray:
    """``image`` filtered by the spec's CTF times its B-factor envelope."""
    import scipy.fft

    shape = image.shape
    transfer = ctf_2d(shape, spec.pixel_size, spec.defocus_um) * ctf_envelope(
        shape, spec.pixel_size, spec.bfactor
    )
    return scipy.fft.irfft2(scipy.fft.rfft2(image) * transfer, s=shape).astype(np.float32)


def film_mask(rng: np.random.Generator, shape: tuple[int, int], kind: str) -> np.ndarray:
    """Where carbon film covers the image, soft-edged in [0, 1]: ``"edge"`` (one side
    of a gently curved line) or ``"hole"`` (outside a circle larger than a
    quarter of the image, centred near it)."""
    h, w = shape
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    width = rng.uniform(1.0, 4.0)
    if kind == "hole":
        r = rng.uniform(0.6, 1.5) * max(h, w)
        theta = rng.uniform(0, 2 * np.pi)
        cx = w / 2 + math.cos(theta) * (r - rng.uniform(0.05, 0.4) * min(h, w))
        cy = h / 2 + math.sin(theta) * (r - rng.uniform(0.05, 0.4) * min(h, w))
        d = np.sqrt((x - cx) ** 2 + (y - cy) ** 2) - r
    elif kind == "edge":
        theta = rng.uniform(0, 2 * np.pi)
        u = np.cos(theta) * (x - w / 2) + np.sin(theta) * (y - h / 2)
        v = -np.sin(theta) * (x - w / 2) + np.cos(theta) * (y - h / 2)
        d = u - rng.uniform(-0.4, 0.4) * min(h, w) - rng.uniform(-1.0, 1.0) / max(h, w) * v**2
    else:
        raise ValueError(f"unknown carbon kind {kind!r} (edge, hole)")
    return (1.0 / (1.0 + np.exp(-np.clip(d / width, -50, 50)))).astype(np.float32)


def contamination_mask(
    rng: np.random.Generator, shape: tuple[int, int], count: int, diameter: float
) -> np.ndarray:
    """``count`` irregular blobs of 2-8 diameters (a thresholded smooth field inside a
    disc), soft-edged in [0, 1]."""
    h, w = shape
    mask = np.zeros(shape, dtype=np.float32)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    rough = smooth_field(rng, shape, 0.4 * diameter)
    for _ in range(count):
        r = 0.5 * diameter * rng.uniform(2.0, 8.0)
        cx, cy = rng.uniform(0, w - 1), rng.uniform(0, h - 1)
        d = np.sqrt((x - cx) ** 2 + (y - cy) ** 2) / r
        level = 1.0 - d + 0.35 * rough
        mask = np.maximum(mask, np.clip(level * 6.0, 0.0, 1.0))
    return mask


# --------------------------------------------------------------------------- filtered look


def filtered_look(
    rng: np.random.Generator, image: np.ndarray, diameter: float, filters: tuple[str, ...]
) -> np.ndarray:
    """Apply the ``filters`` (:data:`FILTERS`) the way denoising pipelines leave images.

    ``blur``: Gaussian of 0.03-0.12 diameters; ``equalise``: local contrast
    equalisation over 2-6 diameters (subtract the local mean, divide by the local
    SD: what CLAHE does to the contrast); ``quantise``: clip to the 0.2-99.8
    percentiles and round to 256 levels; ``jpeg``: a JPEG round trip at quality
    40-95 (implies 8 bits).
    """
    out = np.asarray(image, dtype=np.float32)
    unknown = set(filters) - set(FILTERS)
    if unknown:
        raise ValueError(f"unknown filters {sorted(unknown)} (known: {', '.join(FILTERS)})")
    if "blur" in filters:
        out = gaussian_blur(out, rng.uniform(0.03, 0.12) * diameter)
    if "equalise" in filters:
        size = rng.uniform(2.0, 6.0) * diameter
        mean = gaussian_blur(out, size / 2)
        var = np.maximum(gaussian_blur((out - mean) ** 2, size / 2), 0)
        out = (out - mean) / np.sqrt(var + 1e-6 * float(var.mean()) + 1e-12)
    if "quantise" in filters or "jpeg" in filters:
        lo, hi = np.percentile(out, [0.2, 99.8])
        out = np.round(np.clip((out - lo) / max(hi - lo, 1e-12), 0, 1) * 255.0)
        if "jpeg" in filters:
            from PIL import Image

            buf = io.BytesIO()
            Image.fromarray(out.astype(np.uint8)).save(
                buf, format="JPEG", quality=int(rng.integers(40, 96))
            )
            buf.seek(0)
            out = np.asarray(Image.open(buf), dtype=np.float32)
    return out.astype(np.float32)


# --------------------------------------------------------------------------- the image


def _rotations(rng: np.random.Generator, n: int, preferred: bool):
    from scipy.spatial.transform import Rotation

    if not preferred:
        return Rotation.from_quat(rng.standard_normal((n, 4)))
    base = Rotation.from_quat(rng.standard_normal(4))
    tilt = Rotation.from_rotvec(rng.normal(0, 0.25, (n, 3)) * np.array([1.0, 1.0, 0.0]))
    spin = Rotation.from_euler("z", rng.uniform(0, 2 * np.pi, (n, 1)))
    return spin * tilt * base


def render_realistic(rng: np.random.Generator, spec: RealismSpec) -> RealisticMicrograph:
    """Draw one micrograph of ``spec`` (see the module docstring for the model)."""
    shape, d = spec.shape, spec.diameter
    h, w = shape
    area = h * w / d**2
    centres = dense_centres(
        rng, shape, int(round(spec.density * area)), spec.min_distance * d, outside=0.3 * d
    )
    molecule = family_molecule(rng, spec.family, d)
    half = int(math.ceil(RENDER_HALF_WIDTH * d))
    projection = np.zeros(shape, dtype=np.float32)
    if len(centres):
        amps = rng.uniform(0.6, 1.4, len(centres))
        rots = _rotations(rng, len(centres), spec.preferred)
        _render_molecule(projection, molecule, centres, rots, half, amps)
    decoys = np.zeros((0, 2))
    if spec.decoys > 0:
        dd = d * rng.uniform(0.3, 0.55)
        decoys = dense_centres(
            rng,
            shape,
            int(round(spec.decoys * max(len(centres), 0.1 * area))),
            dd,
            obstacles=centres,
            obstacle_distance=0.5 * (d + dd),
        )
        if len(decoys):
            small = family_molecule(rng, FAMILIES[int(rng.integers(len(FAMILIES)))], dd)
            # a decoy's mass per area as a particle's: its projection scales with dd^3
            amps = rng.uniform(0.6, 1.4, len(decoys))
            _render_molecule(
                projection, small, decoys, _rotations(rng, len(decoys), False), half, amps
            )
    signal = ctf_filter(projection, spec)
    inside = (
        (centres[:, 0] >= 0)
        & (centres[:, 0] <= w - 1)
        & (centres[:, 1] >= 0)
        & (centres[:, 1] <= h - 1)
    )
    if inside.any():
        mask = particle_mask(shape, centres[inside], d)
        var = float(np.var(signal[mask], dtype=np.float64))
        if var > 0:
            signal *= np.float32(math.sqrt(spec.snr / var))
    contrast = signal
    if spec.ice_noise > 0:
        ice = ctf_filter(rng.standard_normal(shape, dtype=np.float32), spec)
        contrast += ice * np.float32(math.sqrt(spec.ice_noise / max(float(ice.var()), 1e-12)))
    if spec.blobs:
        blobs, _ = render_distractors(rng, shape, spec.blobs, centres[inside], d, 1.0)
        contrast += blobs
    thickness = spec.thickness * (
        0.5 * smooth_field(rng, shape, rng.uniform(3.0, 10.0) * d)
        + gradient_ramp(rng, shape, rng.uniform(0.0, 1.0))
    )
    if spec.carbon:
        film = film_mask(rng, shape, spec.carbon)
        thickness += film * rng.uniform(0.1, 0.7)
        texture = ctf_filter(rng.standard_normal(shape, dtype=np.float32), spec)
        contrast += (
            film * texture * np.float32(rng.uniform(0.5, 2.0) / max(float(texture.std()), 1e-6))
        )
    keep = inside
    if spec.contamination:
        dirt = contamination_mask(rng, shape, spec.contamination, d)
        thickness += dirt * rng.uniform(0.8, 2.5)
        if len(centres):
            ix = np.clip(np.round(centres[:, 0]).astype(int), 0, w - 1)
            iy = np.clip(np.round(centres[:, 1]).astype(int), 0, h - 1)
            keep = keep & (dirt[iy, ix] < 0.5)
    m = np.exp(-thickness).astype(np.float32)
    mean = (
        np.float32(spec.dose) * m * np.maximum(1.0 + contrast / np.float32(math.sqrt(spec.dose)), 0)
    )
    if spec.poisson:
        image = rng.poisson(mean).astype(np.float32)
    else:
        image = mean + np.sqrt(mean) * rng.standard_normal(shape, dtype=np.float32)
    if spec.filters:
        image = filtered_look(rng, image, d, spec.filters)
    return RealisticMicrograph(image.astype(np.float32), centres[keep], decoys, spec)
