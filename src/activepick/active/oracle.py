"""Oracles: who reviews the queued predictions (SPEC section 4).

An oracle looks at a review batch (predictions with a ``pick_id``) and returns one
decision per row. The napari layer is the human oracle (it calls
:meth:`activepick.active.engine.ActiveLearner.decide` per click); benchmarks use
:class:`SimulatedOracle`, which answers from ground truth.

Decision table columns (:data:`DECISION_COLUMNS`):

- ``pick_id`` (int): the reviewed prediction.
- ``action`` (str): ``"accept"`` (the label is the predicted centre),
  ``"move"`` (the label is at ``x``, ``y``), ``"reject"`` (a reviewed negative at
  the predicted centre) or ``"skip"`` (the prediction lies on a particle that is
  already labelled: no new label and no negative).
- ``x``, ``y`` (float): the decided centre in pixels of the original
  micrograph (x = column, y = row, origin top-left); the predicted centre for
  ``reject`` / ``skip``.
- ``truth_index`` (int): the row of the ground-truth table the prediction was
  matched to, -1 when none (simulated oracles only).

:class:`HumanOracle` (product protocol) also returns ``"add"`` rows: a missed
particle of the reviewed region, ``pick_id`` -1, ``x``, ``y`` its centre.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd

from ..constants import ORACLE_TAU_SYNTHETIC, POSITIVE_STATUSES
from ..io.picks import validate_picks

#: Columns of a decision table, in order.
DECISION_COLUMNS: tuple[str, ...] = ("pick_id", "action", "x", "y", "truth_index")
#: Oracle actions. ``skip`` is only produced by oracles, never stored as a label.
ACTIONS: tuple[str, ...] = ("accept", "move", "reject", "skip", "add")
#: HumanOracle: a pick whose centre lies on a particle (centre distance < radius,
#: i.e. circle IoU > 0.2430 for equal radii, SPEC section 4's d = r value) is moved.
HUMAN_MOVE_IOU = 0.2430
#: HumanOracle: the reviewed region around each reviewed pick, in diameters.
HUMAN_REGION_DIAMETERS = 2.0
#: Matching modes of the simulated oracle.
ORACLE_MODES: tuple[str, ...] = ("optimal", "first")


@runtime_checkable
class Oracle(Protocol):
    """Anything that reviews a batch of predictions.

    ``batch`` has the pick columns plus ``pick_id``; ``labels`` (optional) is the
    label table so far, for oracles that must not label a particle twice. The
    return value is a decision table (:data:`DECISION_COLUMNS`), one row per
    reviewed pick, in review order.
    """

    def review(self, batch: pd.DataFrame, labels: pd.DataFrame | None = None) -> pd.DataFrame: ...


def empty_decisions() -> pd.DataFrame:
    """A decision table with no rows."""
    return pd.DataFrame(
        {
            "pick_id": pd.Series(dtype=np.int64),
            "action": pd.Series(dtype=object),
            "x": pd.Series(dtype=np.float64),
            "y": pd.Series(dtype=np.float64),
            "truth_index": pd.Series(dtype=np.int64),
        }
    )


class SimulatedOracle:
    """Answer review batches from ground truth (SPEC section 4).

    Parameters
    ----------
    truth:
        Pick table of every ground-truth particle (pixels of the original
        micrographs). ``truth_index`` in the decisions is the row number of this
        table after ``reset_index``.
    tau:
        Circle-IoU threshold: a prediction matches a ground-truth particle when
        IoU > tau (strictly). 0.7 on synthetic data, 0.3 on real data.
    mode:
        ``"optimal"`` (default): per micrograph, a one-to-one assignment of the
        batch's predictions to unlabelled ground truth maximising the total IoU
        over the pairs with IoU > tau (``scipy.optimize.linear_sum_assignment``).
        ``"first"``: the thesis rule; predictions are taken in batch (review)
        order and each gets the first unlabelled ground-truth particle, in truth
        order, with IoU > tau, even if a later one overlaps it better.
    labelled:
        Truth indices that are labelled already (e.g. the initial set); never
        assigned. Particles labelled later are known from the ``labels`` passed
        to :meth:`review`.

    A matched prediction gets the ground truth's centre: action ``"accept"`` if
    the centres are identical, else ``"move"``. An unmatched prediction that
    still overlaps (IoU > tau) a labelled particle is ``"skip"`` (a duplicate);
    any other unmatched prediction is ``"reject"``.
    """

    def __init__(
        self,
        truth: pd.DataFrame,
        tau: float = ORACLE_TAU_SYNTHETIC,
        mode: str = "optimal",
        *,
        labelled: Iterable[int] = (),
    ) -> None:
        if mode not in ORACLE_MODES:
            raise ValueError(f"oracle mode must be one of {ORACLE_MODES}, not {mode!r}")
        if not 0.0 <= tau < 1.0:
            raise ValueError(f"oracle tau must lie in [0, 1), not {tau}")
        self.truth = validate_picks(truth, "ground truth").reset_index(drop=True)
        self.tau = float(tau)
        self.mode = mode
        self.labelled: set[int] = {int(i) for i in labelled}
        self._by_micrograph = {
            str(k): np.asarray(v) for k, v in self.truth.groupby("micrograph").indices.items()
        }

    def labelled_from(self, labels: pd.DataFrame) -> set[int]:
        """Truth indices covered by the positive labels of ``labels`` (IoU > tau, one-to-one)."""
        if labels is None or len(labels) == 0:
            return set()
        pos = labels[labels["status"].isin(POSITIVE_STATUSES)]
        found: set[int] = set()
        for name, rows in pos.groupby("micrograph"):
            ti, _, _ = self._match(rows, str(name), exclude=set(), mode="optimal")
            found.update(ti)
        return found

    def review(self, batch: pd.DataFrame, labels: pd.DataFrame | None = None) -> pd.DataFrame:
        """Decide every row of ``batch`` (pick columns + ``pick_id``); see the class docs.

        Truth particles in ``self.labelled`` or covered by a positive label of
        ``labels`` (IoU > tau) are never assigned. The oracle keeps no memory
        between calls: pass the current ``labels`` so that particles labelled
        since construction are known (the engine does). Returns a decision table
        in batch order.
        """
        if len(batch) == 0:
            return empty_decisions()
        labelled = set(self.labelled) | self.labelled_from(labels)
        batch = batch.reset_index(drop=True)
        truth_index = np.full(len(batch), -1, dtype=np.int64)
        for name, rows in batch.groupby("micrograph", sort=False):
            ti, bi, _ = self._match(rows, str(name), exclude=labelled, mode=self.mode)
            truth_index[rows.index.to_numpy()[bi]] = ti
            labelled.update(int(t) for t in ti)
        return self._decisions(batch, truth_index, labelled)

    def _match(
        self, rows: pd.DataFrame, name: str, *, exclude: set[int], mode: str
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Match ``rows`` (one micrograph) to its truth; returns (truth_idx, row positions, iou)."""
        from ..matching import match_first, match_optimal

        cand = self._by_micrograph.get(name, np.empty(0, dtype=np.int64))
        cand = np.asarray([i for i in cand if int(i) not in exclude], dtype=np.int64)
        none = (np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0))
        if len(cand) == 0 or len(rows) == 0:
            return none
        truth = self.truth.iloc[cand]
        match = match_optimal if mode == "optimal" else match_first
        ia, ib, iou = match(
            rows[["x", "y"]].to_numpy(float),
            rows["diameter"].to_numpy(float) / 2,
            truth[["x", "y"]].to_numpy(float),
            truth["diameter"].to_numpy(float) / 2,
            self.tau,
        )
        ia, ib, iou = np.asarray(ia, np.int64), np.asarray(ib, np.int64), np.asarray(iou, float)
        keep = iou > self.tau  # strict, whatever the matcher's convention at the boundary
        return cand[ib[keep]], ia[keep], iou[keep]

    def _overlaps_labelled(self, row: pd.Series, labelled: set[int]) -> bool:
        """Whether a pick overlaps (IoU > tau) any labelled truth particle on its micrograph."""
        from ..matching import circle_iou

        idx = [i for i in self._by_micrograph.get(str(row["micrograph"]), []) if i in labelled]
        if not idx:
            return False
        truth = self.truth.iloc[idx]
        d = np.hypot(truth["x"].to_numpy() - row["x"], truth["y"].to_numpy() - row["y"])
        iou = circle_iou(d, row["diameter"] / 2, truth["diameter"].to_numpy() / 2)
        return bool(np.any(np.asarray(iou) > self.tau))

    def _decisions(
        self, batch: pd.DataFrame, truth_index: np.ndarray, labelled: set[int]
    ) -> pd.DataFrame:
        """Build the decision table from the per-row truth assignment (-1 = none)."""
        x = batch["x"].to_numpy(float).copy()
        y = batch["y"].to_numpy(float).copy()
        actions = np.empty(len(batch), dtype=object)
        for i, t in enumerate(truth_index):
            if t >= 0:
                tx, ty = self.truth.at[int(t), "x"], self.truth.at[int(t), "y"]
                actions[i] = "accept" if (tx == x[i] and ty == y[i]) else "move"
                x[i], y[i] = tx, ty
            else:
                actions[i] = (
                    "skip" if self._overlaps_labelled(batch.iloc[i], labelled) else "reject"
                )
        return pd.DataFrame(
            {
                "pick_id": batch["pick_id"].to_numpy(np.int64),
                "action": actions,
                "x": x,
                "y": y,
                "truth_index": truth_index,
            },
            columns=list(DECISION_COLUMNS),
        )


class HumanOracle(SimulatedOracle):
    """A simulated person (product protocol, SPEC 3a): what a human does in the GUI.

    Per micrograph, the batch is matched one-to-one to the unlabelled truth
    (maximal total IoU, pairs with IoU > ``move_iou``):

    - IoU > ``accept_iou`` (0.7): ``"accept"``, the label stays at the predicted
      centre (a person does not nudge a good pick);
    - ``move_iou`` < IoU <= ``accept_iou`` (the pick lies on the particle):
      ``"move"`` onto the particle's centre - a near miss is never a negative;
    - no match but on an already labelled particle: ``"skip"``;
    - otherwise ``"reject"``.

    With ``add_missed`` (default) the person also clicks the particles they see
    and the model missed: every unlabelled, unmatched truth particle whose centre
    lies within ``region`` diameters (default 2) of a reviewed pick becomes an
    ``"add"`` row (``pick_id`` -1, the particle's centre), after the batch's rows.
    Its decision tables carry one extra column, ``micrograph``.
    """

    def __init__(
        self,
        truth: pd.DataFrame,
        *,
        accept_iou: float = ORACLE_TAU_SYNTHETIC,
        move_iou: float = HUMAN_MOVE_IOU,
        add_missed: bool = True,
        region: float = HUMAN_REGION_DIAMETERS,
        labelled: Iterable[int] = (),
    ) -> None:
        if not 0.0 <= move_iou <= accept_iou < 1.0:
            raise ValueError(f"need 0 <= move_iou <= accept_iou < 1, got {move_iou}, {accept_iou}")
        super().__init__(truth, move_iou, "optimal", labelled=labelled)
        self.accept_iou = float(accept_iou)
        self.add_missed = bool(add_missed)
        self.region = float(region)

    def review(self, batch: pd.DataFrame, labels: pd.DataFrame | None = None) -> pd.DataFrame:
        """Decide every row of ``batch``, then add the missed particles; see the class docs."""
        if len(batch) == 0:
            return empty_decisions()
        labelled = set(self.labelled) | self.labelled_from(labels)
        batch = batch.reset_index(drop=True)
        truth_index = np.full(len(batch), -1, dtype=np.int64)
        iou = np.zeros(len(batch))
        for name, rows in batch.groupby("micrograph", sort=False):
            ti, bi, io = self._match(rows, str(name), exclude=labelled, mode="optimal")
            pos = rows.index.to_numpy()[bi]
            truth_index[pos], iou[pos] = ti, io
            labelled.update(int(t) for t in ti)
        out = self._decisions(batch, truth_index, labelled)
        out["micrograph"] = batch["micrograph"].astype(str).to_numpy()
        good = (truth_index >= 0) & (iou > self.accept_iou)
        out.loc[good, "action"] = "accept"
        out.loc[good, "x"] = batch["x"].to_numpy(float)[good]
        out.loc[good, "y"] = batch["y"].to_numpy(float)[good]
        if self.add_missed:
            out = pd.concat([out, self._added(batch, labelled)], ignore_index=True)
        return out

    def review_confident(
        self, picks: pd.DataFrame, labels: pd.DataFrame | None = None
    ) -> pd.DataFrame:
        """Check the picks of a bulk confirmation as a person does before confirming
        them (``active.regions``): ``"accept"`` on an unlabelled particle (IoU >
        ``move_iou``, one-to-one; the label stays at the predicted centre, a bulk
        confirmation moves nothing), ``"skip"`` on a labelled particle (the person
        deselects the duplicate), ``"reject"`` otherwise. Adds nothing."""
        dec = SimulatedOracle.review(self, picks, labels)
        dec["action"] = dec["action"].replace({"move": "accept"})
        dec["x"] = picks["x"].to_numpy(float)
        dec["y"] = picks["y"].to_numpy(float)
        dec["micrograph"] = picks["micrograph"].astype(str).to_numpy()
        return dec

    def _added(self, batch: pd.DataFrame, labelled: set[int]) -> pd.DataFrame:
        """``add`` rows: unlabelled truth within ``region`` diameters of a reviewed pick."""
        found: list[int] = []
        for name, rows in batch.groupby("micrograph", sort=False):
            idx = [int(i) for i in self._by_micrograph.get(str(name), []) if int(i) not in labelled]
            if not idx:
                continue
            truth = self.truth.iloc[idx]
            txy = truth[["x", "y"]].to_numpy(float)
            pxy = rows[["x", "y"]].to_numpy(float)
            reach = self.region * rows["diameter"].to_numpy(float)
            d = np.hypot(*(txy[:, None, :] - pxy[None, :, :]).transpose(2, 0, 1))
            near = np.any(d <= reach[None, :], axis=1)
            found.extend(np.asarray(idx)[near].tolist())
        if not found:
            return empty_decisions().assign(micrograph=pd.Series(dtype=object))
        rows = self.truth.iloc[found]
        return pd.DataFrame(
            {
                "pick_id": np.full(len(found), -1, dtype=np.int64),
                "action": ["add"] * len(found),
                "x": rows["x"].to_numpy(float),
                "y": rows["y"].to_numpy(float),
                "truth_index": np.asarray(found, dtype=np.int64),
                "micrograph": rows["micrograph"].astype(str).to_numpy(),
            },
            columns=[*DECISION_COLUMNS, "micrograph"],
        )
