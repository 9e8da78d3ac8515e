"""Synthetic cryo-EM micrographs with ground truth (SPEC section 6, "Simulator").

- :mod:`.physics`: one micrograph in memory: a random molecule, its projections,
  the CTF, noise at the requested SNR and optional clutter
  (:func:`simulate_micrograph`, :func:`render_micrograph`); the method is in its
  docstring.
- :mod:`.dataset`: a data set on disk: MRC micrographs, ``ground_truth.csv`` /
  ``.star`` and ``simulation.json`` (:func:`simulate_dataset`).
- :mod:`.aspire`: the optional ASPIRE backend of :func:`simulate_dataset`, imported
  only when ``backend="aspire"``.

Imports run one way: ``dataset`` imports ``physics`` (and ``aspire`` lazily),
``aspire`` imports only public names of ``physics``, ``physics`` neither; none
imports this package back.
"""

from .dataset import (
    BACKENDS,
    FILE_LABEL,
    NAME_FORMAT,
    Progress,
    ShouldStop,
    simulate_dataset,
    write_mrc,
    write_truth,
)
from .physics import (
    AMPLITUDE_CONTRAST,
    CS_MM,
    MOLECULE_BLOBS,
    PLACEMENT_TRIES_PER_PARTICLE,
    RENDER_HALF_WIDTH,
    VOLTAGE_KV,
    Molecule,
    SimulatedMicrograph,
    SimulationError,
    ctf_2d,
    electron_wavelength,
    make_molecule,
    particle_mask,
    place_centres,
    project_volume,
    render_micrograph,
    simulate_micrograph,
)

__all__ = [
    "AMPLITUDE_CONTRAST",
    "BACKENDS",
    "CS_MM",
    "FILE_LABEL",
    "MOLECULE_BLOBS",
    "NAME_FORMAT",
    "PLACEMENT_TRIES_PER_PARTICLE",
    "RENDER_HALF_WIDTH",
    "VOLTAGE_KV",
    "Molecule",
    "Progress",
    "ShouldStop",
    "SimulatedMicrograph",
    "SimulationError",
    "ctf_2d",
    "electron_wavelength",
    "make_molecule",
    "particle_mask",
    "place_centres",
    "project_volume",
    "render_micrograph",
    "simulate_dataset",
    "simulate_micrograph",
    "write_mrc",
    "write_truth",
]
