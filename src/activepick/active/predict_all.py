"""Predict all (issue 13): which detector filled a parts folder, and how its table
joins the export.

:meth:`activepick.active.workbench.Workbench.iter_predict_all` streams the whole
pool through :func:`activepick.batch.iter_predict_batch` into
``<session>/predict_all/`` (one part file per micrograph). The folder's stamp
(:data:`PREDICT_ALL_STAMP`: the round and :func:`detector_fingerprint`) says which
detector wrote the parts, so a cancelled run resumes only with that detector.
:func:`with_predict_all` puts the table into an export: per micrograph the newer of
the round's predictions and Predict all wins (equal rounds: the round's, which carry
the pick ids the decisions refer to). Coordinates are centres in px of the original
micrograph (x = column, y = row, origin top-left).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..constants import DEFAULT_NMS_IOU, PICK_COLUMNS, STATUS_PREDICTED
from ..io.picks import validate_picks
from .label_store import overlaps_labels

if TYPE_CHECKING:  # pragma: no cover
    from ..detector import Detector
    from .engine import ActiveLearner

#: Folder of a session holding the Predict all parts.
PREDICT_ALL_FOLDER = "predict_all"
#: File in that folder naming the detector the parts come from.
PREDICT_ALL_STAMP = "detector.json"


def detector_fingerprint(detector: Detector) -> str:
    """SHA-1 of the detector's settings and weights (a retrained detector differs)."""
    digest = hashlib.sha1(json.dumps(detector.config.to_dict(), sort_keys=True).encode())
    for name, value in detector.network.state_dict().items():
        digest.update(name.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def iter_predict_all(
    learner: ActiveLearner,
    folder: Callable[[], Path],
    *,
    should_stop: Callable[[], bool] | None = None,
    batch_size: int = 4,
) -> Generator[dict[str, Any], None, pd.DataFrame]:
    """The work of :meth:`~activepick.active.workbench.Workbench.iter_predict_all` (see
    there): every micrograph's file through the learner's detector (before any round: the
    shipped general model) into ``folder()``
    (called once the learner is known to be ready), resuming the parts of the same
    detector. Returns the combined pick table (``round`` = the detector's round)."""
    from ..batch import combine_parts, iter_predict_batch
    from ..io.atomic import atomic_write_text
    from ..io.micrograph import micrograph_name
    from .decisions import ReviewError

    detector = learner.detector or learner.general_detector()
    if detector is None:
        raise ReviewError("no detector yet: train a round first")
    paths = []
    for m in learner.micrographs:
        if m.path is None or micrograph_name(m.path) != m.name:
            raise ReviewError(
                f"micrograph {m.name} has no file of its own: create a session first "
                "(Predict all reads micrographs from their files)"
            )
        paths.append(Path(m.path))
    parts = folder()
    stamp = {"round": int(learner.round), "detector": detector_fingerprint(detector)}
    stamp_file = parts / PREDICT_ALL_STAMP
    try:
        resume = json.loads(stamp_file.read_text(encoding="utf-8")) == stamp
    except (OSError, ValueError):
        resume = False
    if not resume:  # stamp first: any part in the folder is then this detector's
        parts.mkdir(parents=True, exist_ok=True)
        atomic_write_text(stamp_file, json.dumps(stamp, sort_keys=True))
    summary = yield from iter_predict_batch(
        paths,
        parts,
        detector=detector,
        threshold=learner.min_confidence,
        batch_size=batch_size,
        resume=resume,
        should_stop=should_stop,
    )
    picks = combine_parts(parts, summary["names"])
    picks["round"] = int(learner.round)
    picks.attrs["round"] = int(learner.round)
    picks.attrs["summary"] = summary
    return picks


def saved_predict_all(learner: ActiveLearner, parts: Path) -> pd.DataFrame | None:
    """The table of a finished Predict all of the learner's current detector (the
    general model before any round) in
    ``parts`` (every micrograph has its part, the stamp names this round and
    detector), else None: a cancelled or outdated run is not taken for a done one."""
    from ..batch import combine_parts, done_names

    try:
        stamp = json.loads((parts / PREDICT_ALL_STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    names = [m.name for m in learner.micrographs]
    if stamp.get("round") != int(learner.round):
        return None
    detector = learner.detector
    if detector is None and int(learner.round) == 0:  # before any round: the general model
        detector = learner.general_detector()
    if detector is None or not set(names) <= done_names(parts):
        return None
    if stamp.get("detector") != detector_fingerprint(detector):
        return None
    picks = combine_parts(parts, names)
    picks["round"] = int(learner.round)
    picks.attrs["round"] = int(learner.round)
    return picks


def with_predict_all(
    table: pd.DataFrame,
    learner: ActiveLearner,
    every: pd.DataFrame | None,
    threshold: float | None,
) -> pd.DataFrame:
    """``table`` (``learner.export_picks(include_predictions=True)``) with the
    predictions of every micrograph that ``every`` (a Predict all table, its round in
    ``attrs["round"]``) predicted after the last round that did replaced by those of
    ``every``: confidence >= ``threshold`` (default T_opt), not on a complete
    micrograph, overlapping no label or rejection (as ``export_picks``)."""
    if every is None:
        return table
    done_round = int(every.attrs.get("round", learner.round))
    latest: dict[str, int] = {}
    if learner.predictions is not None and len(learner.predictions):
        latest = learner.predictions.groupby("micrograph")["round"].max().to_dict()
    newer = {m.name for m in learner.micrographs if latest.get(m.name, -1) < done_round}
    if not newer:
        return table
    t = learner.t_opt if threshold is None else float(threshold)
    p = every[every["micrograph"].isin(newer - set(learner.complete))]
    p = p[p["confidence"] >= t]
    p = p[~overlaps_labels(p, learner.labels, DEFAULT_NMS_IOU)]
    stale = (table["status"] == STATUS_PREDICTED) & table["micrograph"].isin(newer)
    return validate_picks(pd.concat([table[~stale], p[list(PICK_COLUMNS)]], ignore_index=True))


__all__ = [
    "PREDICT_ALL_FOLDER",
    "PREDICT_ALL_STAMP",
    "detector_fingerprint",
    "saved_predict_all",
    "with_predict_all",
]
