"""The micrograph browser's table: one row per micrograph with its counts and state.

:func:`micrograph_table` is what the napari table (``plugin/_browser.py``) shows,
like napari-boxmanager's table: it is computed here, without Qt, from the pick
tables the engine holds, so the CLI and tests reach it too. Counts take one pass
over each table (``value_counts``), so a pool of thousands of micrographs with
hundreds of thousands of picks is built in well under a second.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np
import pandas as pd

from ..constants import POSITIVE_STATUSES, STATUS_REJECTED

#: Columns of :func:`micrograph_table`, in order.
BROWSER_COLUMNS: tuple[str, ...] = (
    "index",
    "micrograph",
    "picks",
    "labels",
    "rejections",
    "reviewed",
    "complete",
)


def _counts(table: pd.DataFrame | None, mask, names: list[str]) -> np.ndarray:
    if table is None or len(table) == 0:
        return np.zeros(len(names), dtype=np.int64)
    counts = table.loc[mask, "micrograph"].astype(str).value_counts()
    return counts.reindex(names, fill_value=0).to_numpy(dtype=np.int64)


def micrograph_table(
    names: Sequence[str],
    *,
    predictions: pd.DataFrame | None = None,
    labels: pd.DataFrame | None = None,
    t_opt: float | None = None,
    complete: Collection[str] = (),
    reviewed: Collection[str] = (),
) -> pd.DataFrame:
    """One row per micrograph of ``names``, in that order (the stack's order).

    Columns (:data:`BROWSER_COLUMNS`):

    - ``index``: the micrograph's position in ``names`` (the napari slider step);
    - ``micrograph``: its name;
    - ``picks``: predictions (pick table rows of ``predictions``) with
      ``confidence >= t_opt``; every prediction when ``t_opt`` is None;
    - ``labels``: particles in ``labels`` (status accepted, moved, added or
      imported);
    - ``rejections``: rows of ``labels`` with status rejected;
    - ``reviewed``: named in ``reviewed``, holds any label or rejection, or is
      complete;
    - ``complete``: marked fully picked (in ``complete``).

    Rows of the tables naming micrographs not in ``names`` are ignored.
    """
    names = [str(n) for n in names]
    if len(set(names)) != len(names):
        raise ValueError("micrograph names must be unique")
    if predictions is not None and len(predictions):
        conf = predictions["confidence"].to_numpy(dtype=np.float64)
        keep = np.ones(len(conf), bool) if t_opt is None else conf >= float(t_opt)
    else:
        keep = None
    picks = _counts(predictions, keep, names)
    if labels is not None and len(labels):
        status = labels["status"].astype(str)
        n_labels = _counts(labels, status.isin(POSITIVE_STATUSES).to_numpy(), names)
        n_rejected = _counts(labels, (status == STATUS_REJECTED).to_numpy(), names)
    else:
        n_labels = n_rejected = np.zeros(len(names), dtype=np.int64)
    complete = set(map(str, complete))
    reviewed = set(map(str, reviewed))
    is_complete = np.array([n in complete for n in names], dtype=bool)
    is_reviewed = np.array([n in reviewed for n in names], dtype=bool)
    is_reviewed |= is_complete | (n_labels > 0) | (n_rejected > 0)
    return pd.DataFrame(
        {
            "index": np.arange(len(names), dtype=np.int64),
            "micrograph": names,
            "picks": picks,
            "labels": n_labels,
            "rejections": n_rejected,
            "reviewed": is_reviewed,
            "complete": is_complete,
        },
        columns=list(BROWSER_COLUMNS),
    )
