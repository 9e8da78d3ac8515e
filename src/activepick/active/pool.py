"""Which micrographs a round predicts on when the pool is large.

Predicting every micrograph of a pool of thousands each round would make a round's
time grow with the data set. :func:`prediction_subset` bounds it: each round
predicts on every micrograph that has labels or is marked fully picked (their
predictions feed the threshold estimate and the review of what was picked) plus a
window of at most ``max_size`` other micrographs that ROTATES over rounds, so every
micrograph gets its turn: a seeded permutation of the whole pool is cut into
consecutive windows of ``max_size`` (the last one shorter) and round ``r`` takes
window ``r mod ceil(N / max_size)``. Any ``ceil(N / max_size)`` consecutive rounds
therefore cover all ``N`` micrographs; the same names, seed and round give the same
subset.

:data:`DEFAULT_MAX_SIZE` comes from ``perf/bench_pool.py`` (docs/architecture.md,
"Engine at scale"): the light network predicts a 4096 px micrograph at the
largest input (1024 px) in 0.45 CPU-seconds once its input is cached (0.72 when it
must be read and resized each round), i.e. 1.3 s of wall time on 2 CPU cores
shared at load 9. 12 rotating micrographs plus a few labelled ones (15) then take
7 CPU-seconds (18-21 s at load 9), the same with a pool of 20 or 2,000, which leaves
most of a 30 s GUI round to fine-tuning on an idle 2-core machine.

Nothing here imports Qt or napari.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np

#: Micrographs predicted per round besides the labelled / fully picked ones.
DEFAULT_MAX_SIZE = 12


def rotation_order(names: Sequence[str], seed: int = 0) -> list[str]:
    """The seeded permutation of ``names`` whose windows :func:`prediction_subset` takes."""
    names = list(names)
    order = np.random.default_rng(seed).permutation(len(names))
    return [names[i] for i in order]


def prediction_subset(
    names: Sequence[str],
    *,
    labelled: Collection[str] = (),
    complete: Collection[str] = (),
    round: int = 0,
    max_size: int = DEFAULT_MAX_SIZE,
    seed: int = 0,
) -> list[str]:
    """The micrographs to predict on in round ``round`` (0, 1, 2, ...), in pool order.

    ``names`` is the pool (unique names); ``labelled`` the micrographs with any label
    or rejection and ``complete`` those marked fully picked: all of these are always
    included (names not in the pool are ignored). The rest is window
    ``round mod ceil(N / max_size)`` of :func:`rotation_order` (``max_size`` names,
    fewer for the last window, minus those already included), so the result has at
    most ``max_size + len(labelled | complete)`` names. A pool of at most
    ``max_size`` is returned whole.
    """
    names = list(names)
    if len(set(names)) != len(names):
        raise ValueError("micrograph names in the pool must be unique")
    max_size = int(max_size)
    if max_size < 1:
        raise ValueError(f"max_size must be at least 1, not {max_size}")
    n = len(names)
    if n <= max_size:
        return names
    always = set(labelled) | set(complete)
    windows = -(-n // max_size)
    start = (int(round) % windows) * max_size
    window = set(rotation_order(names, seed)[start : start + max_size])
    return [name for name in names if name in window or name in always]
