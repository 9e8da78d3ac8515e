"""The ASPIRE backend of :func:`activepick.simulate.simulate_dataset` (optional extra).

The thesis simulated its micrographs with ASPIRE
(``pip install "napari-activepick[aspire]"``, i.e. ``aspire==0.14.3``). This
backend uses ASPIRE for the particles: an ``AsymmetricVolume`` of box size
``L = round(diameter)`` (seeded), projected at random orientations with random
amplitudes by ``aspire.source.MicrographSimulation``, with one
``RadialCTFFilter`` per micrograph (300 kV, Cs 2.7 mm, amplitude contrast 0.1,
defocus drawn from ``defocus_um``), centres at least ``L`` apart and ``L // 2``
from the edges. ASPIRE pastes each L x L projection onto the micrograph.

Noise, distractors and the gradient are added here exactly as in the numpy
backend, so the SNR has the same definition (var of the clean ASPIRE micrograph
inside the particle circles / var of the noise). ASPIRE draws its centres on
the integer pixel grid in (row, column) order; they are returned as
(x, y) = (column, row). Square micrographs only.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from .physics import (
    AMPLITUDE_CONTRAST,
    CS_MM,
    VOLTAGE_KV,
    SimulationError,
    gradient_ramp,
    particle_mask,
    render_distractors,
)

#: The ASPIRE release this backend was written and tested against.
ASPIRE_VERSION = "0.14.3"


def _import_aspire():
    try:
        from aspire.operators import RadialCTFFilter
        from aspire.source import MicrographSimulation
        from aspire.volume import AsymmetricVolume
    except ImportError as exc:
        raise SimulationError(
            f"the ASPIRE backend needs the optional package aspire=={ASPIRE_VERSION} "
            f'({exc}); install it with: pip install "napari-activepick[aspire]"'
        ) from None
    return AsymmetricVolume, MicrographSimulation, RadialCTFFilter


def aspire_micrographs(
    seed: int, n: int, shape: tuple[int, int], settings: dict
) -> Iterator[tuple[np.ndarray, np.ndarray, dict]]:
    """Yield (image float32 (H, W), centres (N, 2) as (x, y), info) per micrograph.

    ``settings`` carries ``particles``, ``snr``, ``diameter`` (px),
    ``distractors``, ``gradient``, ``defocus_um`` (low, high) and ``pixel_size``
    (Å/px), as built by :func:`activepick.simulate.simulate_dataset`.
    """
    asymmetric_volume, micrograph_simulation, radial_ctf = _import_aspire()
    height, width = shape
    if height != width:
        raise SimulationError(
            f"the ASPIRE backend simulates square micrographs only, not {width} x {height} px"
        )
    if n == 0:
        return
    box = int(round(settings["diameter"]))
    pixel_size = float(settings["pixel_size"])
    particles = int(settings["particles"])
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
    defocus = rng.uniform(*settings["defocus_um"], size=n)
    volume = asymmetric_volume(
        L=box, C=1, seed=seed, pixel_size=pixel_size, dtype=np.float32
    ).generate()
    filters = [
        radial_ctf(voltage=VOLTAGE_KV, defocus=d * 1e4, Cs=CS_MM, alpha=AMPLITUDE_CONTRAST, B=0)
        for d in defocus
    ]
    try:
        source = micrograph_simulation(
            volume,
            micrograph_size=height,
            micrograph_count=n,
            particles_per_micrograph=particles,
            ctf_filters=filters,
            interparticle_distance=box,
            seed=seed,
        )
    except (RuntimeError, ValueError) as exc:
        raise SimulationError(
            f"ASPIRE cannot place {particles} particles of box {box} px on a "
            f"{width} x {height} px micrograph ({exc})"
        ) from None
    settings["aspire"] = {"version": ASPIRE_VERSION, "volume": "AsymmetricVolume", "L": box}
    for i in range(n):
        clean = np.array(source.clean_images[i].asnumpy()[0], dtype=np.float32)  # a copy
        centres = np.asarray(source.centers[i], dtype=np.float64)[:, ::-1].copy()
        mask = particle_mask(shape, centres, settings["diameter"])
        noise = rng.standard_normal(shape, dtype=np.float32)
        noise_var = float(np.var(noise, dtype=np.float64))
        signal_var = float(np.var(clean[mask], dtype=np.float64))
        clean *= np.float32(math.sqrt(settings["snr"] * noise_var / signal_var))
        background, kept = render_distractors(
            rng, shape, int(settings["distractors"]), centres, settings["diameter"], 1.0
        )
        if settings["gradient"]:
            background += gradient_ramp(rng, shape, float(settings["gradient"]))
        image = noise
        image += clean
        image += background
        info = {
            "defocus_um": float(defocus[i]),
            "snr_measured": float(np.var(clean[mask], dtype=np.float64)) / noise_var,
            "distractors": kept.tolist(),
        }
        yield image, centres, info
