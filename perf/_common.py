"""What the speed scripts share: the machine a measurement ran on, and writing results.

The scripts run as ``python perf/bench_x.py`` (this folder is then first on
``sys.path``), so they import it as ``from _common import ...``.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any


def machine_info() -> dict[str, Any]:
    """The machine of a measurement: platform, CPU count and Python version."""
    return {
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }


def write_results(path: str | os.PathLike, record: Any, *, indent: int = 2, **dumps: Any) -> None:
    """Write ``record`` as JSON to ``path`` atomically (temp file + rename; the folder is
    made when missing) and print where; ``dumps`` go to :func:`json.dumps`."""
    from activepick.io.atomic import atomic_write_text

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(record, indent=indent, **dumps) + "\n")
    print(f"wrote {path}")


#: Where ``--smoke`` runs write their JSON (a check that a script runs, not a measurement:
#: perf/results/ keeps the last real run). Tests point it at their own folder.
SMOKE_DIR_ENV = "ACTIVEPICK_PERF_SMOKE_DIR"


def smoke_results(path: str | os.PathLike) -> Path:
    """Where a ``--smoke`` run writes the results it would write to ``path``: the folder
    ``$ACTIVEPICK_PERF_SMOKE_DIR``, else ``activepick-perf-smoke`` in the temporary folder."""
    import tempfile

    folder = os.environ.get(SMOKE_DIR_ENV) or os.path.join(
        tempfile.gettempdir(), "activepick-perf-smoke"
    )
    return Path(folder) / Path(path).name


def add_smoke_flag(parser) -> None:
    """``--smoke``: every script's tiny run (seconds), which ``tests/test_perf_smoke.py``
    runs so that a change in the package cannot break a script unnoticed."""
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny sizes, a few seconds: checks that the script runs; results go to "
        f"${SMOKE_DIR_ENV} (default: the temporary folder), not perf/results/",
    )


def results_path(path: str | os.PathLike, smoke: bool) -> Path:
    """``path``, or where a ``--smoke`` run writes instead (:func:`smoke_results`)."""
    return smoke_results(path) if smoke else Path(path)


def smoke_labelled_set(folder: Path, labels: str = "labels.star", n_train: int = 2):
    """A tiny labelled set for ``--smoke`` runs of the real-data scripts: ``n_train`` + 2
    simulated micrographs of 256 px with 8 particles of 32 px each, ``folder/micrographs/``,
    ``folder/LABELS`` and ``folder/split.json`` (the last two micrographs are the test
    part). Returns the three paths and the diameter."""
    import numpy as np
    import pandas as pd

    from activepick.io.formats import write_coordinates
    from activepick.io.micrograph import write_micrograph
    from activepick.io.picks import make_picks
    from activepick.simulate import simulate_micrograph

    folder = Path(folder)
    rng = np.random.default_rng(0)
    tables = []
    names = [f"m{k}" for k in range(n_train + 2)]
    for k in range(n_train + 2):
        image, centres = simulate_micrograph(rng, size=256, n_particles=8, diameter=32, snr=0.3)
        write_micrograph(folder / "micrographs" / f"m{k}.mrc", image)
        tables.append(make_picks(f"m{k}", centres[:, 0], centres[:, 1], 32.0))
    write_coordinates(pd.concat(tables, ignore_index=True), folder / labels)
    (folder / "split.json").write_text(json.dumps({"train": names[:-2], "test": names[-2:]}))
    return folder / "micrographs", folder / labels, folder / "split.json", 32.0
