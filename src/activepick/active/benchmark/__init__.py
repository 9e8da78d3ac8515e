"""The active-learning benchmark (SPEC section 6, issue 11): strategies x paired seeds x rounds.

- :mod:`.presets`: the ``quick``, ``thesis`` and ``hitl`` presets and the settings dict.
- :mod:`.data`: simulated (uniform or mixed-difficulty) or user data, split.
- :mod:`.run`: one :class:`~activepick.session.Session` per strategy, seed and partial
  mode; resume comes from the sessions.
- :mod:`.report`: tables, learning-curve areas, paired Wilcoxon tests, figures, report.md.

Outputs in ``--out``: ``benchmark.json`` (the settings), ``split.json``, ``runs/`` (the
run sessions), ``rounds.csv`` / ``.json``, ``runs.csv`` (per-run statistics),
``paired_tests.csv``, ``labels_to_95.csv``, ``distinct_particles.csv`` / ``.png``,
``learning_<metric>[_reviews].png``, ``summary.json`` and ``report.md``.
"""

from .data import BenchmarkData, prepare_data, simulate_mixed
from .presets import (
    ALL_STRATEGIES,
    BASELINE,
    GENERAL,
    PRESETS,
    REAL_SETTINGS,
    BenchmarkError,
    benchmark_settings,
)
from .report import (
    curve_area,
    labels_to_95,
    paired_tests,
    run_statistics,
    wilcoxon_p,
)
from .run import initial_indices, run_benchmark, run_key, write_outputs

__all__ = [
    "ALL_STRATEGIES",
    "BASELINE",
    "GENERAL",
    "PRESETS",
    "REAL_SETTINGS",
    "BenchmarkData",
    "BenchmarkError",
    "benchmark_settings",
    "curve_area",
    "initial_indices",
    "labels_to_95",
    "paired_tests",
    "prepare_data",
    "run_benchmark",
    "run_key",
    "run_statistics",
    "simulate_mixed",
    "wilcoxon_p",
    "write_outputs",
]
