"""Progress reporting for long work: generators that yield progress dicts.

Long work in the core (training, prediction, a round) is a generator that yields a
progress dict (``{"stage": str, "step": int, "total": int, ...}``) after each step
and returns its result; the napari layer runs such generators in a thread worker
(cancelling at a yield), and plain callers run them with :func:`drive`.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import TypeVar

T = TypeVar("T")

#: Receives one progress dict per step.
ProgressFn = Callable[[dict], None]
#: Returns True once the user asked to stop.
StopFn = Callable[[], bool]


def drive(gen: Generator[dict, None, T], progress: ProgressFn | None = None) -> T:
    """Run a progress generator to its end, passing each yielded dict to ``progress``.

    Returns the generator's return value.
    """
    while True:
        try:
            info = next(gen)
        except StopIteration as stop:
            return stop.value
        if progress is not None:
            progress(info)
