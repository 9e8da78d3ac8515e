"""The physics of the simulator: molecule, projection, CTF, noise and clutter (SPEC section 6).

A micrograph is simulated in four steps:

1. **Particles.** A random asymmetric molecule of the requested diameter (a few
   3-D Gaussian blobs, :func:`make_molecule`) is rotated by a uniformly random
   rotation per particle (``scipy.spatial.transform.Rotation`` from a normalised
   Gaussian quaternion, as ``Rotation.random`` draws them) and
   projected along z. A 3-D Gaussian of weight ``w`` and width ``s`` projects to
   the 2-D Gaussian ``w / (2 pi s^2) * exp(-r^2 / (2 s^2))`` centred at the first
   two components of its rotated centre, so the projection is exact and cheap.
   The molecule's centre of mass is at its origin, so the ground-truth centre is
   the centre of mass of every projection. Centres are drawn by rejection
   sampling with a minimum distance of one diameter and at least one radius from
   every edge (:func:`place_centres`).
2. **CTF.** The particle image is multiplied in Fourier space
   (``scipy.fft.rfft2`` in float32) by the phase-contrast transfer function
   (:func:`ctf_2d`)::

       chi(k) = pi * lambda * dz * k^2 - pi / 2 * Cs * lambda^3 * k^4
       CTF(k) = -(sqrt(1 - A^2) * sin(chi) + A * cos(chi))

   with ``k`` the spatial frequency in 1/Å (``cycles per pixel / pixel_size``),
   ``lambda`` the relativistic electron wavelength (0.0197 Å at 300 kV), ``dz``
   the defocus in Å (positive = underfocus; drawn uniformly per micrograph from
   ``defocus_um``), ``Cs`` = 2.7 mm and amplitude contrast ``A`` = 0.1. The
   leading minus sign makes protein dark at low frequencies, as in real
   micrographs.
3. **Noise.** White Gaussian noise of standard deviation 1; the particle image
   is scaled so that ``SNR = var(signal inside the particle circles) /
   var(noise)`` equals the request for the noise actually drawn, where the particle circles are the pixels
   within ``diameter / 2`` of a centre (the definition of the thesis).
4. **Optional clutter** that is not in the ground truth: ``distractors`` smooth
   Gaussian blobs (ice, aggregates) of other sizes, bright or dark, not touching
   any particle; and a linear background ramp in a random direction whose
   peak-to-peak height across the micrograph is ``gradient`` noise standard
   deviations.

Coordinates: ``(x, y) = (column, row)`` in pixels of the simulated image, origin
at the centre of the top-left array element (as napari shows it). Everything is
drawn from the ``numpy.random.Generator`` passed in, so a seed reproduces a
micrograph byte for byte.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import ActivePickError

#: Microscope constants of the simulated CTF (SPEC section 6).
VOLTAGE_KV = 300.0
CS_MM = 2.7
AMPLITUDE_CONTRAST = 0.1
#: Blobs per random molecule.
MOLECULE_BLOBS = 8
#: Candidate centres drawn per requested particle before giving up.
PLACEMENT_TRIES_PER_PARTICLE = 200
#: Particle boxes are rendered out to this multiple of the diameter (half-width).
RENDER_HALF_WIDTH = 0.75


class SimulationError(ActivePickError):
    """The requested simulation is impossible (e.g. too many particles for the micrograph)."""


@dataclass(frozen=True)
class Molecule:
    """A 3-D density made of isotropic Gaussian blobs, in pixels of the micrograph.

    ``centres`` (K, 3) are (x, y, z) offsets from the molecule's centre of mass,
    ``sigmas`` (K,) the blob widths and ``weights`` (K,) their integrated
    densities (arbitrary units; the simulator rescales to the requested SNR).
    """

    centres: np.ndarray
    sigmas: np.ndarray
    weights: np.ndarray

    def to_dict(self) -> dict:
        """JSON-friendly lists (for ``simulation.json``)."""
        return {k: np.asarray(v).tolist() for k, v in asdict(self).items()}


@dataclass
class SimulatedMicrograph:
    """One simulated micrograph and its parts (all float32 arrays of shape (H, W)).

    ``image = signal + background + noise``; ``signal`` is the CTF-filtered
    particle image scaled to the requested SNR, ``background`` the distractors
    plus the gradient, the noise has standard deviation ``noise_sigma`` (1).
    ``centres`` (N, 2) are the particle centres as (x, y) = (column, row);
    ``distractors`` (M, 3) the distractor centres and diameters (x, y, d);
    ``decoys`` (K, 2) the centres of the decoy particles (a second molecule that is
    not to be picked, part of ``signal``, not of ``centres``).
    ``snr`` is the measured var(signal in the particle circles) / var(noise).
    """

    image: np.ndarray
    centres: np.ndarray
    signal: np.ndarray
    background: np.ndarray
    noise_sigma: float
    defocus_um: float
    distractors: np.ndarray
    snr: float
    decoys: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))


# --------------------------------------------------------------------------- physics


def electron_wavelength(voltage_kv: float = VOLTAGE_KV) -> float:
    """Relativistic electron wavelength in Å for an acceleration voltage in kV."""
    volts = voltage_kv * 1e3
    return 12.2642598 / math.sqrt(volts * (1.0 + 0.978475e-6 * volts))


@functools.lru_cache(maxsize=4)
def _k_squared(shape: tuple[int, int], pixel_size: float) -> np.ndarray:
    """Squared spatial frequency (1/Å^2) on the ``rfft2`` grid; float32, read-only."""
    h, w = shape
    ky = (np.fft.fftfreq(h) / pixel_size).astype(np.float32)
    kx = (np.fft.rfftfreq(w) / pixel_size).astype(np.float32)
    k2 = ky[:, None] ** 2 + kx[None, :] ** 2
    k2.flags.writeable = False
    return k2


def ctf_2d(
    shape: tuple[int, int],
    pixel_size: float,
    defocus_um: float,
    *,
    voltage_kv: float = VOLTAGE_KV,
    cs_mm: float = CS_MM,
    amplitude_contrast: float = AMPLITUDE_CONTRAST,
) -> np.ndarray:
    """The CTF on the ``rfft2`` grid of an image of ``shape`` (H, W); float32 (H, W // 2 + 1).

    ``pixel_size`` in Å/px, ``defocus_um`` in µm (positive = underfocus). See the
    module docstring for the formula.
    """
    lam = electron_wavelength(voltage_kv)
    dz = defocus_um * 1e4  # Å
    cs = cs_mm * 1e7  # Å
    k2 = _k_squared(tuple(shape), float(pixel_size))
    chi = float(np.pi * lam * dz) * k2 - float(0.5 * np.pi * cs * lam**3) * k2**2
    # sqrt(1 - A^2) sin(chi) + A cos(chi) = sin(chi + asin(A)); float32 is ample here
    return -np.sin(chi + np.float32(math.asin(amplitude_contrast)))


# --------------------------------------------------------------------------- molecule


def make_molecule(
    rng: np.random.Generator, diameter: float, n_blobs: int = MOLECULE_BLOBS
) -> Molecule:
    """A random asymmetric molecule: a chain of Gaussian blobs within ``diameter`` (px).

    The blobs follow a 3-D random walk; the result is centred on its centre of
    mass and scaled so that every blob lies, out to 1.5 widths, inside a sphere
    of diameter ``diameter``.
    """
    sigmas = rng.uniform(0.07, 0.13, n_blobs) * diameter
    steps = rng.standard_normal((n_blobs, 3))
    steps *= 0.22 * diameter / np.linalg.norm(steps, axis=1, keepdims=True)
    steps[0] = 0.0
    centres = np.cumsum(steps, axis=0)
    weights = rng.uniform(0.5, 1.5, n_blobs) * sigmas**3
    centres -= np.average(centres, axis=0, weights=weights)
    extent = np.max(np.linalg.norm(centres, axis=1) + 1.5 * sigmas)
    scale = 0.5 * diameter / extent
    return Molecule(centres * scale, sigmas * scale, weights * scale**3)


# --------------------------------------------------------------------------- placement


def place_centres(
    rng: np.random.Generator,
    shape: tuple[int, int],
    n: int,
    diameter: float,
    *,
    max_tries: int | None = None,
) -> np.ndarray:
    """``n`` centres (x, y) at least ``diameter`` apart and ``diameter / 2`` from every edge.

    Rejection sampling (random sequential addition) with at most ``max_tries``
    candidates (default ``PLACEMENT_TRIES_PER_PARTICLE * n``); raises
    :class:`SimulationError` when the micrograph cannot hold ``n`` particles.
    """
    h, w = shape
    r = diameter / 2.0
    if n == 0:
        return np.zeros((0, 2))
    if w - 1 < 2 * r or h - 1 < 2 * r:
        raise SimulationError(
            f"a {w} x {h} px micrograph cannot hold a particle of diameter {diameter:g} px"
        )
    tries = PLACEMENT_TRIES_PER_PARTICLE * n if max_tries is None else max_tries
    candidates = np.column_stack(
        [rng.uniform(r, w - 1 - r, tries), rng.uniform(r, h - 1 - r, tries)]
    )
    placed = np.empty((n, 2))
    count = 0
    d2 = diameter * diameter
    for cand in candidates:
        if count and np.min(np.sum((placed[:count] - cand) ** 2, axis=1)) < d2:
            continue
        placed[count] = cand
        count += 1
        if count == n:
            return placed
    raise SimulationError(
        f"a {w} x {h} px micrograph cannot hold {n} non-overlapping particles of diameter "
        f"{diameter:g} px (placed {count} in {tries} tries); use fewer particles, a smaller "
        "diameter or a larger micrograph"
    )


def _box(centre: float, half: int, size: int) -> tuple[int, int]:
    """Pixel range [lo, hi) of a box of half-width ``half`` around ``centre``, clipped."""
    c = int(round(centre))
    return max(c - half, 0), min(c + half + 1, size)


def particle_mask(shape: tuple[int, int], centres: np.ndarray, diameter: float) -> np.ndarray:
    """Boolean (H, W): the pixels within ``diameter / 2`` of any centre (x, y)."""
    h, w = shape
    mask = np.zeros(shape, dtype=bool)
    r = diameter / 2.0
    half = int(math.ceil(r)) + 1
    for cx, cy in centres:
        y0, y1 = _box(cy, half, h)
        x0, x1 = _box(cx, half, w)
        yy = np.arange(y0, y1)[:, None] - cy
        xx = np.arange(x0, x1)[None, :] - cx
        mask[y0:y1, x0:x1] |= yy**2 + xx**2 <= r * r
    return mask


# --------------------------------------------------------------------------- rendering


def _render_molecule(
    image: np.ndarray,
    molecule: Molecule,
    centres: np.ndarray,
    rotations,
    half: int,
    amplitudes: np.ndarray | None = None,
) -> None:
    """Add the projections of ``molecule`` at ``centres`` (x, y) into ``image`` in place,
    each scaled by its entry of ``amplitudes`` (default 1). Centres may lie off the
    image: only the part inside is drawn."""
    h, w = image.shape
    projected = np.einsum("nij,kj->nki", rotations.as_matrix(), molecule.centres)[..., :2]
    sig2 = 2.0 * molecule.sigmas**2
    amp = molecule.weights / (np.pi * sig2)
    scales = np.ones(len(centres)) if amplitudes is None else np.asarray(amplitudes, float)
    for (cx, cy), offsets, a in zip(centres, projected, scales, strict=True):
        y0, y1 = _box(cy, half, h)
        x0, x1 = _box(cx, half, w)
        if y1 <= y0 or x1 <= x0:
            continue
        bx = cx + offsets[:, 0]
        by = cy + offsets[:, 1]
        gx = np.exp(-((np.arange(x0, x1)[None, :] - bx[:, None]) ** 2) / sig2[:, None])
        gy = np.exp(-((np.arange(y0, y1)[None, :] - by[:, None]) ** 2) / sig2[:, None])
        image[y0:y1, x0:x1] += (gy * (a * amp)[:, None]).T @ gx


def project_volume(volume: np.ndarray, rotation) -> np.ndarray:
    """Project a cubic density ``volume[z, y, x]`` along z after a rotation; (L, L) float32.

    The volume is sampled at the micrograph's pixel size with its centre at
    ``(L - 1) / 2``; ``rotation`` (a scipy ``Rotation``) turns (x, y, z) vectors.
    Trilinear interpolation (``scipy.ndimage.map_coordinates``), zero outside.
    """
    from scipy.ndimage import map_coordinates

    size = volume.shape[0]
    c = (size - 1) / 2.0
    axis = np.arange(size) - c
    z, y, x = np.meshgrid(axis, axis, axis, indexing="ij")
    points = np.stack([x.ravel(), y.ravel(), z.ravel()], axis=1)
    body = rotation.inv().apply(points) + c  # (x, y, z) in the volume's frame
    values = map_coordinates(volume, [body[:, 2], body[:, 1], body[:, 0]], order=1, cval=0.0)
    return values.reshape(volume.shape).sum(axis=0).astype(np.float32)


def _render_volume(image: np.ndarray, volume: np.ndarray, centres: np.ndarray, rotations) -> None:
    """Add projections of a voxel ``volume`` at integer-rounded ``centres`` into ``image``."""
    from scipy.ndimage import shift

    h, w = image.shape
    size = volume.shape[0]
    for (cx, cy), rot in zip(centres, rotations, strict=True):
        proj = project_volume(volume, rot)
        ix, iy = int(round(cx)), int(round(cy))
        proj = shift(proj, (cy - iy, cx - ix), order=1)
        y0 = iy - (size - 1) // 2
        x0 = ix - (size - 1) // 2
        ys, xs = slice(max(y0, 0), min(y0 + size, h)), slice(max(x0, 0), min(x0 + size, w))
        image[ys, xs] += proj[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0]


def _check_volume(volume: np.ndarray) -> np.ndarray:
    volume = np.asarray(volume, dtype=np.float32)
    if volume.ndim != 3 or len(set(volume.shape)) != 1:
        raise SimulationError(f"volume must be a cubic 3-D array, got shape {volume.shape}")
    return volume


def render_distractors(
    rng: np.random.Generator,
    shape: tuple[int, int],
    count: int,
    centres: np.ndarray,
    diameter: float,
    amplitude: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Smooth Gaussian blobs clear of the particles; returns (image, (M, 3) x, y, d).

    Half are small (0.3-0.8 diameters), half large (1.3-3 diameters); each is
    bright or dark with a peak of 0.3-1 ``amplitude``. A blob's "diameter" is 4
    widths. A blob that finds no free spot in 100 tries is left out.
    """
    h, w = shape
    image = np.zeros(shape, dtype=np.float32)
    kept = []
    for _ in range(count):
        large = rng.random() < 0.5
        d = diameter * (rng.uniform(1.3, 3.0) if large else rng.uniform(0.3, 0.8))
        peak = amplitude * rng.uniform(0.3, 1.0) * rng.choice((-1.0, 1.0))
        xy = np.column_stack([rng.uniform(0, w - 1, 100), rng.uniform(0, h - 1, 100)])
        if len(centres):
            dist = np.sqrt(((xy[:, None, :] - centres[None, :, :]) ** 2).sum(-1)).min(axis=1)
            free = np.flatnonzero(dist >= (diameter + d) / 2.0)
        else:
            free = np.arange(len(xy))
        if not len(free):
            continue
        cx, cy = xy[free[0]]
        sigma = d / 4.0
        half = int(math.ceil(3 * sigma))
        y0, y1 = _box(cy, half, h)
        x0, x1 = _box(cx, half, w)
        gx = np.exp(-((np.arange(x0, x1) - cx) ** 2) / (2 * sigma**2))
        gy = np.exp(-((np.arange(y0, y1) - cy) ** 2) / (2 * sigma**2))
        image[y0:y1, x0:x1] += peak * np.outer(gy, gx)
        kept.append((cx, cy, d))
    return image, np.asarray(kept, dtype=np.float64).reshape(-1, 3)


def gradient_ramp(rng: np.random.Generator, shape: tuple[int, int], height: float) -> np.ndarray:
    """A linear ramp in a random direction, ``height`` from its lowest to highest pixel."""
    h, w = shape
    theta = rng.uniform(0, 2 * np.pi)
    u = np.cos(theta) * np.arange(w)[None, :] + np.sin(theta) * np.arange(h)[:, None]
    span = abs(np.cos(theta)) * (w - 1) + abs(np.sin(theta)) * (h - 1)
    return (height * (u - u.min()) / max(span, 1e-12) - height / 2).astype(np.float32)


def micrograph_shape(size: int | tuple[int, int]) -> tuple[int, int]:
    """(height, width) of ``size``: an int (square) or a (height, width) pair."""
    if isinstance(size, int | np.integer):
        shape = (int(size), int(size))
    else:
        shape = tuple(int(s) for s in size)
    if len(shape) != 2 or min(shape) < 1:
        raise SimulationError(f"size must be a positive int or (height, width), got {size!r}")
    return shape


def render_micrograph(
    rng: np.random.Generator,
    *,
    size: int | tuple[int, int] = 1024,
    n_particles: int = 40,
    diameter: float = 64,
    snr: float = 0.05,
    volume: np.ndarray | Molecule | None = None,
    defocus_um: tuple[float, float] = (1.0, 2.5),
    pixel_size: float = 1.5,
    distractors: int = 0,
    gradient: float = 0.0,
    decoys: int = 0,
    decoy_volume: Molecule | None = None,
) -> SimulatedMicrograph:
    """Simulate one micrograph and keep its parts; see :func:`simulate_micrograph`.

    ``decoys`` more particles of ``decoy_volume`` (a :class:`Molecule` that fits
    ``diameter``) are placed among the particles, rendered with the same CTF and
    scale, and returned in ``decoys``, not in ``centres``: particles the user does
    not want picked (another complex, a fragment). With ``decoys=0`` the draws are
    those of a micrograph without decoys.
    """
    shape = micrograph_shape(size)
    if not snr > 0:
        raise SimulationError(f"snr must be positive, got {snr}")
    if not diameter > 0:
        raise SimulationError(f"diameter must be positive, got {diameter}")
    import scipy.fft
    from scipy.spatial.transform import Rotation

    if volume is None:
        volume = make_molecule(rng, diameter)
    elif not isinstance(volume, Molecule):
        volume = _check_volume(volume)
    if decoys and not isinstance(decoy_volume, Molecule):
        raise SimulationError("decoys need a decoy_volume Molecule")
    placed = place_centres(rng, shape, int(n_particles) + int(decoys), diameter)
    centres, decoy_centres = placed[: int(n_particles)], placed[int(n_particles) :]
    defocus = float(rng.uniform(*defocus_um))
    projection = np.zeros(shape, dtype=np.float32)
    if len(placed):
        # uniform on SO(3): normalised Gaussian quaternions (what Rotation.random does,
        # drawn from our generator so any scipy version gives the same micrograph)
        rotations = Rotation.from_quat(rng.standard_normal((len(placed), 4)))
        half = int(math.ceil(RENDER_HALF_WIDTH * diameter))
        if len(centres) and isinstance(volume, Molecule):
            _render_molecule(projection, volume, centres, rotations[: len(centres)], half)
        elif len(centres):
            _render_volume(projection, volume, centres, rotations[: len(centres)])
        if len(decoy_centres):
            _render_molecule(
                projection, decoy_volume, decoy_centres, rotations[len(centres) :], half
            )
    ctf = ctf_2d(shape, pixel_size, defocus)
    signal = scipy.fft.irfft2(scipy.fft.rfft2(projection) * ctf, s=shape).astype(np.float32)
    noise = rng.standard_normal(shape, dtype=np.float32)
    noise_var = float(np.var(noise, dtype=np.float64))
    snr_measured = float("nan")
    if len(centres):
        mask = particle_mask(shape, centres, diameter)
        signal_var = float(np.var(signal[mask], dtype=np.float64))
        signal *= np.float32(math.sqrt(snr * noise_var / signal_var))
        snr_measured = float(np.var(signal[mask], dtype=np.float64)) / noise_var
    background, kept = render_distractors(rng, shape, int(distractors), centres, diameter, 1.0)
    if gradient:
        background += gradient_ramp(rng, shape, float(gradient))
    image = noise
    image += signal
    image += background
    return SimulatedMicrograph(
        image=image,
        centres=centres,
        signal=signal,
        background=background,
        noise_sigma=1.0,
        defocus_um=defocus,
        distractors=kept,
        snr=snr_measured,
        decoys=decoy_centres,
    )


def simulate_micrograph(
    rng: np.random.Generator,
    *,
    size: int | tuple[int, int] = 1024,
    n_particles: int = 40,
    diameter: float = 64,
    snr: float = 0.05,
    volume: np.ndarray | Molecule | None = None,
    defocus_um: tuple[float, float] = (1.0, 2.5),
    pixel_size: float = 1.5,
    distractors: int = 0,
    gradient: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic micrograph and its particle centres.

    ``size`` is an int (square) or (height, width) in pixels; ``diameter`` the
    particle diameter in px; ``snr`` = var(signal in the particle circles) /
    var(noise), noise standard deviation 1; ``volume`` a :class:`Molecule`, a
    cubic voxel density ``[z, y, x]`` at ``pixel_size``, or None to draw a random
    molecule from ``rng``; ``defocus_um`` the (low, high) range of the per-
    micrograph defocus in µm; ``pixel_size`` in Å/px (for the CTF);
    ``distractors`` the number of ice / aggregate blobs; ``gradient`` the
    peak-to-peak height of a background ramp in noise standard deviations.

    Returns ``(image, centres)``: image float32 (H, W); centres float64 (N, 2) as
    (x, y) = (column, row) in pixels, origin at the top-left pixel's centre.
    Raises :class:`SimulationError` when the particles do not fit.
    """
    sim = render_micrograph(
        rng,
        size=size,
        n_particles=n_particles,
        diameter=diameter,
        snr=snr,
        volume=volume,
        defocus_um=defocus_um,
        pixel_size=pixel_size,
        distractors=distractors,
        gradient=gradient,
    )
    return sim.image, sim.centres
