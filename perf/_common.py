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
