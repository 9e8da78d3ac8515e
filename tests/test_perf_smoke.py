"""Every script in ``perf/`` runs in its ``--smoke`` mode (issue 21, item 14).

The scripts run in no other test, so a rename in the package broke one unnoticed
(``bench_round.py`` passed ``batch_size=`` to ``ActiveLearner`` after the rename to
``review_k``). The scripts are found by glob, so a new one is covered (and must have
a ``--smoke`` mode). A smoke run writes its JSON to its own folder, never over a
measurement in ``perf/results/``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PERF = Path(__file__).resolve().parents[1] / "perf"
SCRIPTS = sorted(p.name for p in PERF.glob("*.py") if not p.name.startswith("_"))


def _results_state() -> dict[str, float]:
    return {p.name: p.stat().st_mtime_ns for p in (PERF / "results").rglob("*") if p.is_file()}


def test_every_perf_script_is_found():
    assert len(SCRIPTS) >= 15 and "bench_round.py" in SCRIPTS and "fuzz_inputs.py" in SCRIPTS


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS)
def test_perf_script_runs_in_smoke_mode(script, tmp_path):
    before = _results_state()
    env = {
        **os.environ,
        "ACTIVEPICK_PERF_SMOKE_DIR": str(tmp_path / "results"),
        "OMP_NUM_THREADS": "1",
    }
    proc = subprocess.run(
        [sys.executable, str(PERF / script), "--smoke"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert proc.returncode == 0, (
        f"{script} --smoke exited {proc.returncode}:\n{proc.stderr[-3000:]}"
    )
    written = sorted((tmp_path / "results").glob("*.json"))
    assert written, f"{script} --smoke wrote no results:\n{proc.stdout[-2000:]}"
    for path in written:
        assert json.loads(path.read_text())
        assert f"wrote {path}" in proc.stdout
    assert _results_state() == before  # perf/results/ untouched
