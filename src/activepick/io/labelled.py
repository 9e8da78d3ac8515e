"""A labelled micrograph set on disk: micrographs, their particle labels and a split.

What the real-data benchmark (``perf/bench_real.py``) and the pretraining
(:mod:`activepick.detector.pretrain`, ``--real``) read: a folder of micrographs
(any format :func:`~activepick.io.micrograph.read_micrograph` reads), one
coordinate file of every label (any format :func:`~activepick.io.formats.read_coordinates`
reads; micrograph names as the files' stems) and optionally a JSON split
``{"train": [names], "test": [names], ...}`` (names with or without extension).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..errors import CoordinateError, MicrographError
from .formats import read_coordinates
from .micrograph import Micrograph, list_micrographs, micrograph_name, read_micrograph
from .picks import check_bounds


@dataclass
class LabelledSet:
    """Micrographs (file order), their labels (a pick table of ``diameter`` px) and
    the named parts of the split (``{}`` when none was given)."""

    micrographs: list[Micrograph]
    truth: pd.DataFrame
    diameter: float
    split: dict[str, list[str]] = field(default_factory=dict)

    def part(self, name: str | None) -> tuple[list[Micrograph], pd.DataFrame]:
        """Micrographs and labels of split part ``name`` (everything when None)."""
        if name is None:
            return list(self.micrographs), self.truth
        if name not in self.split:
            raise CoordinateError(
                f"the split has no part {name!r} (parts: {', '.join(self.split) or 'none'})"
            )
        names = set(self.split[name])
        mics = [m for m in self.micrographs if m.name in names]
        return mics, self.truth[self.truth["micrograph"].isin(names)].reset_index(drop=True)

    def shapes(self) -> dict[str, tuple[int, int]]:
        """``{name: (H, W)}`` of every micrograph."""
        return {m.name: tuple(m.data.shape) for m in self.micrographs}


def read_split(path: str | os.PathLike) -> dict[str, list[str]]:
    """A JSON split file: ``{part: [micrograph names]}``; names lose their extension."""
    path = Path(path)
    if path.is_dir():
        raise CoordinateError(f"{path}: is a folder, not a split file")
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise CoordinateError(f"{path}: no such split file") from None
    except (OSError, ValueError) as exc:
        raise CoordinateError(f"{path}: not a JSON split file ({exc})") from None
    ok = isinstance(data, dict) and all(
        isinstance(v, list) and all(isinstance(n, str) for n in v) for v in data.values()
    )
    if not ok:
        raise CoordinateError(f"{path}: a split is a JSON object of lists of micrograph names")
    return {str(k): [micrograph_name(n) for n in v] for k, v in data.items()}


def load_labelled_set(
    micrographs: str | os.PathLike,
    labels: str | os.PathLike,
    diameter: float,
    split: str | os.PathLike | None = None,
) -> LabelledSet:
    """Read a labelled set; raises one-line errors naming the file and the problem.

    Labels of micrographs absent from the folder, split names absent from the
    folder, and labels outside their micrograph are refused.
    """
    files = list_micrographs(micrographs)
    mics = [read_micrograph(p) for p in files]
    shapes = {m.name: tuple(m.data.shape) for m in mics}
    truth = read_coordinates(labels, diameter=float(diameter))
    absent = sorted(set(truth["micrograph"].astype(str)) - set(shapes))
    if absent:
        more = f" and {len(absent) - 3} more" if len(absent) > 3 else ""
        raise CoordinateError(
            f"{labels}: labels name {len(absent)} micrograph(s) absent from {micrographs}: "
            f"{', '.join(absent[:3])}{more}"
        )
    truth = check_bounds(truth, shapes, str(labels))
    parts = read_split(split) if split is not None else {}
    for part, names in parts.items():
        missing = sorted(set(names) - set(shapes))
        if missing:
            raise MicrographError(
                f"{split}: part {part!r} names micrograph(s) absent from {micrographs}: "
                f"{', '.join(missing[:3])}"
            )
    return LabelledSet(mics, truth, float(diameter), parts)


def spread_labels(truth: pd.DataFrame, n: int | None, seed: int = 0) -> pd.DataFrame:
    """``n`` rows of ``truth`` drawn at random (seeded) and spread evenly over the
    micrographs (one from each in turn); every row when ``n`` is None."""
    import numpy as np

    if n is None or n >= len(truth):
        return truth
    rng = np.random.default_rng(seed)
    groups = [rng.permutation(g) for g in truth.groupby("micrograph").indices.values()]
    order = [g[i] for i in range(max(len(g) for g in groups)) for g in groups if i < len(g)]
    return truth.iloc[np.sort(np.asarray(order[:n], dtype=int))].reset_index(drop=True)
