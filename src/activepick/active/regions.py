"""Cheaper reviews (issue 20): complete regions and bulk confirmation of confident picks.

Two actions cut the clicks a review costs besides one decision per queued pick:

- **Complete** (``f`` in the viewer): after reviewing the queued picks of a micrograph
  and adding the particles the model missed around them, one action marks the
  neighbourhood of every pick reviewed there (and of the one under review) complete: a circle of
  :data:`REGION_DIAMETERS` particle diameters (radius) around each. A complete region
  is a row of the label table with status ``complete`` (centre ``x``, ``y`` = the
  reviewed pick's predicted centre, ``diameter`` = the region's, px of the original
  micrograph); it goes through the session's journal, compaction and undo like any
  label, with its round, time and source. Training supervises every grid cell inside it
  (unlabelled cells are background: ``detector.regions``); its predictions are no
  longer candidates.
- **Confirm** (``b``): the confident picks of a micrograph (confidence at least
  :func:`bulk_threshold`, far above T_opt) are accepted at once. The user first rejects
  the wrong ones among them. The accepted rows carry ``strategy`` = :data:`BULK_STRATEGY`.

The simulated person of the hitl benchmark uses both (:meth:`RegionReview.review_regions_with`),
and the benchmark counts what each costs (``benchmark.run.REVIEW_COST``).
Coordinates are centres in pixels of the ORIGINAL micrograph (x = column, y = row).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..constants import STATUS_COMPLETE
from ..errors import CoordinateError
from ..io.picks import now_utc
from .label_store import near_labels

if TYPE_CHECKING:  # pragma: no cover
    from .oracle import HumanOracle

#: Radius of a reviewed neighbourhood, in particle diameters: the particles touching the
#: reviewed one and the next ring's nearest (about 3.5 particle centres at the density of
#: a crowded real micrograph, 0.5 per diameter squared).
REGION_DIAMETERS = 1.5
#: Confident picks (bulk confirmation): re-centred confidence (T_opt maps to 0.5) at least
#: this, i.e. logit(c) >= logit(T_opt) + logit(0.9) = logit(T_opt) + 2.2.
BULK_MIN_RECENTRED = 0.9
#: ``strategy`` of the labels a bulk confirmation makes (provenance in the journal).
BULK_STRATEGY = "bulk_confirm"
#: Oracle / benchmark actions of this module: one region action and one bulk action per
#: micrograph, and the picks a bulk action accepted (no click of their own).
ACTION_COMPLETE, ACTION_CONFIRM, ACTION_CONFIRMED = "complete", "confirm", "confirmed"


def bulk_threshold(t_opt: float, min_recentred: float = BULK_MIN_RECENTRED) -> float:
    """The raw confidence whose re-centred value is ``min_recentred``:
    ``sigmoid(logit(t_opt) + logit(min_recentred))`` (0.9 at T_opt 0.5, 0.69 at 0.2)."""
    t = min(max(float(t_opt), 1e-6), 1 - 1e-6)
    z = math.log(t / (1 - t)) + math.log(min_recentred / (1 - min_recentred))
    return 1.0 / (1.0 + math.exp(-z))


def complete_regions(labels: pd.DataFrame) -> pd.DataFrame:
    """The complete-region rows of a label table (status ``complete``)."""
    return labels[labels["status"] == STATUS_COMPLETE]


def inside_regions(picks: pd.DataFrame, regions: pd.DataFrame) -> np.ndarray:
    """Boolean mask: pick centre inside a region (distance < its radius) on its micrograph."""
    inside = np.zeros(len(picks), dtype=bool)
    if len(picks) == 0 or len(regions) == 0:
        return inside
    names = picks["micrograph"].astype(str).to_numpy()
    xy = picks[["x", "y"]].to_numpy(float)
    for name, reg in regions.groupby("micrograph"):
        idx = np.flatnonzero(names == str(name))
        if len(idx) == 0:
            continue
        c = reg[["x", "y"]].to_numpy(float)
        r = reg["diameter"].to_numpy(float) / 2
        d = np.hypot(*(xy[idx, None, :] - c[None, :, :]).transpose(2, 0, 1))
        inside[idx] = np.any(d < r[None, :], axis=1)
    return inside


class RegionReview:
    """Mixin of :class:`~activepick.active.engine.ActiveLearner`: micrographs marked fully
    picked, complete regions and bulk confirmation (see the module docs). Expects the
    learner's label editing
    (:class:`~activepick.active.decisions.LabelEditing`), ``queue``, ``predictions``,
    ``complete``, ``config`` and ``t_opt``."""

    def mark_complete(self, micrograph: str, complete: bool = True) -> None:
        """Mark a micrograph as fully picked (or not): with ``partial`` its unlabelled
        area counts as background, it is always trained on, and its predictions are
        no longer candidates. Saved to the session settings' ``complete`` list."""
        if micrograph not in self._by_name:
            raise CoordinateError(f"micrograph {micrograph!r} is not in the pool")
        if complete:
            self.complete.add(micrograph)
        else:
            self.complete.discard(micrograph)
        self._save_complete()

    def _save_complete(self) -> None:
        if self.session is not None:
            settings = dict(self.session.settings)
            settings["complete"] = sorted(self.complete)
            self.session.save_settings(settings)

    def complete_regions(self) -> pd.DataFrame:
        """The regions marked complete (label rows of status ``complete``)."""
        return complete_regions(self.labels)

    def reviewed_centres(self, micrograph: str) -> list[tuple[float, float]]:
        """Predicted centres of the queued picks on ``micrograph`` that were reviewed
        (decided, or skipped by a simulated reviewer) or are under review, in queue order."""
        q = self.queue
        current = int(q["pick_id"].iat[self.position]) if self.position < len(q) else None
        q = q[q["micrograph"].astype(str) == str(micrograph)]
        return [
            (float(x), float(y))
            for pid, x, y in zip(q["pick_id"].tolist(), q["x"], q["y"], strict=True)
            if self.is_decided(int(pid)) or int(pid) == current
        ]

    def complete_reviewed(
        self, micrograph: str, *, source: str = "human", radius: float | None = None
    ) -> list[int]:
        """Mark the neighbourhood (``radius`` px, default :data:`REGION_DIAMETERS`
        diameters) of every pick reviewed or under review on ``micrograph`` complete
        (:meth:`reviewed_centres`: the user adds the missed particles around the last
        pick, presses the key, then decides it), except where a region of that centre
        exists; one undo step. Returns the new regions' ids (empty: nothing to mark)."""
        if str(micrograph) not in self._by_name:
            raise CoordinateError(f"complete region: micrograph {micrograph!r} is not in the pool")
        radius = REGION_DIAMETERS * float(self.config.diameter) if radius is None else radius
        regions = self.complete_regions()
        regions = regions[regions["micrograph"].astype(str) == str(micrograph)]
        have = set(zip(regions["x"].tolist(), regions["y"].tolist(), strict=True))
        centres = [c for c in dict.fromkeys(self.reviewed_centres(micrograph)) if c not in have]
        if not centres:
            return []
        ids = self._new_ids(len(centres)).tolist()
        time_now = now_utc()
        nan = math.nan
        rows = [
            (str(micrograph), x, y, 2.0 * float(radius), nan, STATUS_COMPLETE, int(self.round))
            + (time_now, int(pick_id), "", source, nan, nan)
            for pick_id, (x, y) in zip(ids, centres, strict=True)
        ]
        self._change(rows)
        return ids

    def confident_picks(self, micrograph: str, threshold: float | None = None) -> pd.DataFrame:
        """The latest round's predictions on ``micrograph`` that a bulk confirmation
        accepts: confidence >= ``threshold`` (default :func:`bulk_threshold` of T_opt),
        undecided, not within half a diameter of a label or rejection, not inside a
        complete region, and none on a micrograph marked fully picked."""
        p = self.predictions
        if p is None or len(p) == 0 or str(micrograph) in self.complete:
            return self._empty_queue().drop(columns=["uncertainty", "rank"])
        t = bulk_threshold(self.t_opt) if threshold is None else float(threshold)
        p = p[(p["micrograph"].astype(str) == str(micrograph)) & (p["round"] == p["round"].max())]
        p = p[p["confidence"] >= t]
        p = p[~p["pick_id"].map(self.is_decided).astype(bool)]
        p = p[~near_labels(p, self.labels, p["diameter"].to_numpy(float) / 2)]
        return p[~inside_regions(p, self.complete_regions())].reset_index(drop=True)

    def confirm_confident(
        self, micrograph: str, threshold: float | None = None, *, source: str = "human"
    ) -> list[int]:
        """Accept every :meth:`confident_picks` of ``micrograph`` at its predicted centre
        (one undo step; ``strategy`` :data:`BULK_STRATEGY`). Returns their pick ids."""
        ids = self.confident_picks(micrograph, threshold)["pick_id"].astype(int).tolist()
        if ids:
            decisions = [(i, "accept", None, None) for i in ids]
            self._apply_decisions(decisions, source=source, strategy=BULK_STRATEGY)
        return ids

    def review_regions_with(
        self,
        oracle: HumanOracle,
        micrographs: Sequence[str],
        *,
        complete: bool = True,
        bulk: bool = True,
    ) -> pd.DataFrame:
        """What a simulated person does on each of ``micrographs`` (the batch's, in
        queue order) after reviewing its queued picks: with ``complete``, one action
        marks the reviewed neighbourhoods complete (the oracle added their missed
        particles while reviewing); with ``bulk``, it rejects (or, on a labelled
        particle, deselects: ``skip``) the wrong ones among the confident picks
        (:meth:`HumanOracle.review_confident`) and confirms the rest with one action.

        Returns a decision table: one ``complete`` and one ``confirm`` row per
        micrograph where the action did something, the bulk ``reject`` / ``skip`` rows,
        and one ``confirmed`` row per pick the confirmation accepted.
        """
        from .oracle import empty_decisions

        parts = [empty_decisions().assign(micrograph=pd.Series(dtype=object))]

        def actions(name: str, action: str, ids: list[int]) -> pd.DataFrame:
            n = len(ids)
            return pd.DataFrame(
                {
                    "pick_id": np.asarray(ids, np.int64),
                    "action": [action] * n,
                    "x": np.full(n, np.nan),
                    "y": np.full(n, np.nan),
                    "truth_index": np.full(n, -1, np.int64),
                    "micrograph": [name] * n,
                }
            )

        for name in dict.fromkeys(str(m) for m in micrographs):
            if complete and self.complete_reviewed(name, source="oracle"):
                parts.append(actions(name, ACTION_COMPLETE, [-1]))
            if not bulk:
                continue
            picks = self.confident_picks(name)
            if len(picks) == 0:
                continue
            dec = oracle.review_confident(picks, labels=self.labels)
            wrong = dec[dec["action"] == "reject"]
            if len(wrong):
                self._apply_decisions(wrong, source="oracle", strategy=BULK_STRATEGY)
            self.mark_reviewed(dec.loc[dec["action"] == "skip", "pick_id"].astype(int).tolist())
            ids = self.confirm_confident(name, source="oracle")
            parts += [dec[dec["action"] != "accept"], actions(name, ACTION_CONFIRM, [-1])]
            parts.append(actions(name, ACTION_CONFIRMED, ids))
        self._save_labels()
        return pd.concat(parts, ignore_index=True)


__all__ = [
    "ACTION_COMPLETE",
    "ACTION_CONFIRM",
    "ACTION_CONFIRMED",
    "BULK_MIN_RECENTRED",
    "BULK_STRATEGY",
    "REGION_DIAMETERS",
    "RegionReview",
    "bulk_threshold",
    "complete_regions",
    "inside_regions",
]
