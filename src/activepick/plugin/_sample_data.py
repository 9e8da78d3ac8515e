"""npe2 sample data: synthetic micrographs (and their ground-truth particles).

The repository ships ``sample_data/`` (``micrographs/*.mrc`` + ``ground_truth.csv``);
an installed wheel has no such folder, so a small set is simulated once with
:func:`activepick.simulate.simulate_dataset` into a cache folder in the temp
directory and reused.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from ._layers import MICROGRAPHS_KEY, ground_truth_layer_data
from ._reader import lazy_micrograph_layer_data

#: The repository's sample-data folder (exists in a source checkout only).
REPO_SAMPLE_DATA = Path(__file__).resolve().parents[3] / "sample_data"
#: Settings of the fallback simulation (small enough to simulate in seconds).
FALLBACK_SIMULATION = {"n": 6, "particles": 30, "snr": 0.1, "size": 512, "diameter": 48, "seed": 0}
TRUTH_FILE = "ground_truth.csv"
#: Name of the sample's micrograph layer.
SAMPLE_LAYER = "synthetic micrographs"


def _complete(folder: Path) -> bool:
    mics = folder / "micrographs"
    return (folder / TRUTH_FILE).is_file() and mics.is_dir() and any(mics.glob("*.mrc"))


def sample_data_folder() -> Path:
    """A folder holding ``micrographs/*.mrc`` and ``ground_truth.csv``.

    The repository's ``sample_data/`` when present, else a simulated set cached
    in ``<tempdir>/activepick-sample-data``.
    """
    if _complete(REPO_SAMPLE_DATA):
        return REPO_SAMPLE_DATA
    from .. import __version__

    cache = Path(tempfile.gettempdir()) / f"activepick-sample-data-{__version__}"
    if not _complete(cache):
        from ..simulate import simulate_dataset

        simulate_dataset(cache, **FALLBACK_SIMULATION)
    return cache


def sample_micrograph_paths() -> list[Path]:
    """The sample micrograph files (sorted by name)."""
    from ..io.micrograph import list_micrographs

    return list_micrographs(sample_data_folder() / "micrographs")


def sample_truth():
    """The sample's ground-truth pick table."""
    from ..io.formats import read_coordinates

    return read_coordinates(sample_data_folder() / TRUTH_FILE, "csv")


def sample_diameter() -> float:
    """The sample particles' diameter in px (``simulation.json``; 48 px)."""
    import json

    path = sample_data_folder() / "simulation.json"
    try:
        return float(json.loads(path.read_text())["diameter"])
    except (OSError, ValueError, KeyError, TypeError):
        return float(FALLBACK_SIMULATION["diameter"])


def synthetic_micrographs() -> list[tuple]:
    """npe2 sample data: the synthetic micrographs as one Image stack."""
    return [lazy_micrograph_layer_data(sample_micrograph_paths(), name=SAMPLE_LAYER)]


def synthetic_micrographs_with_truth() -> list[tuple]:
    """npe2 sample data: the synthetic micrographs and a ``ground truth`` Points layer."""
    layer = lazy_micrograph_layer_data(sample_micrograph_paths(), name=SAMPLE_LAYER)
    names = layer[1]["metadata"][MICROGRAPHS_KEY]
    truth = sample_truth()
    truth = truth[truth["micrograph"].isin(names)]
    return [layer, ground_truth_layer_data(truth, names)]
