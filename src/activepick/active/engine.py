"""The active-learning round engine (SPEC sections 3-5): labels, queue, rounds, undo.

:class:`ActiveLearner` holds a pool of micrographs and the label table, trains the
detector on the labels, predicts on the pool, ranks the candidates with an
uncertainty strategy into a review queue, and records every decision with its
provenance. The napari widget drives it (its long steps are generators that yield
progress dicts, for ``napari.qt.threading.thread_worker``); the benchmark drives it
with a :class:`~activepick.active.oracle.SimulatedOracle`.

Coordinates everywhere are centres in pixels of the ORIGINAL micrograph, x =
column, y = row, origin at the top-left array element.

The label table (:func:`empty_labels`) has the columns of
:data:`activepick.constants.LABEL_COLUMNS`: the pick columns plus ``pick_id``
(unique int), ``strategy`` (strategy that queued the pick, "" for added /
imported), ``source`` (one of ``LABEL_SOURCES``) and ``pred_x`` / ``pred_y``
(the predicted centre before a correction, NaN when there was no prediction). It
keeps every decision ever made, rejections included (status ``rejected``).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Generator, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from ..constants import (
    DEFAULT_MIN_CONFIDENCE,
    DEFAULT_NMS_IOU,
    LABEL_COLUMNS,
    PICK_COLUMNS,
    POSITIVE_STATUSES,
    STATUS_ACCEPTED,
    STATUS_ADDED,
    STATUS_IMPORTED,
    STATUS_MOVED,
    STATUS_PREDICTED,
    STATUS_REJECTED,
)
from ..errors import ActivePickError, CoordinateError
from ..io.picks import check_bounds, empty_picks, now_utc, validate_picks

if TYPE_CHECKING:  # pragma: no cover - imported for type hints only
    from ..detector import Detector, DetectorConfig
    from ..io.micrograph import Micrograph
    from ..session import Session
    from .oracle import Oracle

#: Default number of stochastic passes for the MC-dropout strategy.
DEFAULT_MC_PASSES = 8
#: T_opt before any validation or decision is available.
DEFAULT_T_OPT = 0.5
#: Undo depth (decisions, additions, removals).
UNDO_DEPTH = 1000
#: Decision action -> label status.
ACTION_STATUS = {"accept": STATUS_ACCEPTED, "move": STATUS_MOVED, "reject": STATUS_REJECTED}
#: Where a round's training starts (product protocol): the shipped general model,
#: the previous round's detector (the general model in round 1), or random weights.
INIT_CHOICES = ("general", "previous", "scratch")
#: Optimiser steps per round when fine-tuning (product default; docs/benchmarks/detector.md).
DEFAULT_TRAIN_STEPS = 60
#: Learning rate when fine-tuning (product default).
FINETUNE_LR = 3e-4
#: Keys of :meth:`ActiveLearner.counts`.
COUNT_KEYS = (STATUS_ACCEPTED, STATUS_MOVED, STATUS_ADDED, STATUS_REJECTED, STATUS_IMPORTED)

Progress = dict[str, Any]


class ReviewError(ActivePickError):
    """A decision, removal or training request does not fit the learner's state."""


def empty_labels() -> pd.DataFrame:
    """A label table (``LABEL_COLUMNS``) with no rows and the right dtypes."""
    df = empty_picks()
    df["pick_id"] = pd.Series(dtype=np.int64)
    df["strategy"] = pd.Series(dtype=object)
    df["source"] = pd.Series(dtype=object)
    df["pred_x"] = pd.Series(dtype=np.float64)
    df["pred_y"] = pd.Series(dtype=np.float64)
    return df[list(LABEL_COLUMNS)]


def _as_labels(df: pd.DataFrame) -> pd.DataFrame:
    """Normalise a frame with label columns to the label-table column order and dtypes."""
    if len(df) == 0:
        return empty_labels()
    out = validate_picks(df[list(PICK_COLUMNS)], "label table")
    out["pick_id"] = df["pick_id"].to_numpy(np.int64)
    out["strategy"] = df["strategy"].fillna("").astype(str).to_numpy()
    out["source"] = df["source"].fillna("").astype(str).to_numpy()
    out["pred_x"] = df["pred_x"].to_numpy(np.float64)
    out["pred_y"] = df["pred_y"].to_numpy(np.float64)
    return out[list(LABEL_COLUMNS)]


def learner_settings(
    config: DetectorConfig,
    *,
    strategy: str = "boundary_distance",
    batch_size: int = 20,
    seed: int = 0,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
    partial: bool = False,
    warm_start: bool = False,
    mc_passes: int = DEFAULT_MC_PASSES,
) -> dict[str, Any]:
    """The JSON-able settings dict a session stores so :meth:`ActiveLearner.from_session` can resume.

    Pass it as ``settings`` to ``Session.create``; ``detector`` is
    ``DetectorConfig.to_dict()``.
    """
    return {
        "detector": config.to_dict(),
        "strategy": strategy,
        "batch_size": int(batch_size),
        "seed": int(seed),
        "min_confidence": float(min_confidence),
        "partial": bool(partial),
        "warm_start": bool(warm_start),
        "mc_passes": int(mc_passes),
    }


def _jsonable(value: Any) -> Any:
    """Convert numpy scalars / NaN in nested dicts and lists to plain JSON values (NaN -> None)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return None if math.isnan(v) or math.isinf(v) else v
    if isinstance(value, np.bool_):
        return bool(value)
    return value


@dataclasses.dataclass
class _UndoEntry:
    """What one undoable change replaced: the label rows with ``pick_ids`` before it."""

    pick_ids: list[int]
    old_rows: pd.DataFrame
    position: int
    reviewed: frozenset[int]


class ActiveLearner:
    """Pool-based active learning over a set of micrographs (SPEC sections 3-5).

    Parameters
    ----------
    micrographs:
        The pool (``io.micrograph.Micrograph``; names must be unique). Labels,
        predictions and the queue refer to them by ``name``.
    config:
        ``detector.DetectorConfig`` for every training round (its ``diameter``,
        in original-micrograph pixels, is the size of added particles).
    strategy:
        Name in ``active.strategies.STRATEGIES``.
    batch_size:
        Default review batch size K of :meth:`select`.
    seed:
        Seeds the strategy's randomness (round-dependent) and nothing else; the
        detector's seed is ``config.seed``.
    min_confidence:
        Predictions below it are not candidates (c_min, SPEC section 3).
    partial:
        Supervise only reviewed regions plus micrographs in :attr:`complete`
        (``True``), or count the unlabelled rest of every trained micrograph as
        background (``False``, the thesis).
    warm_start:
        Initialise each round's training from the previous detector instead of
        training from scratch (the thesis trains from scratch).
    validation:
        ``(micrographs, truth pick table)`` fully labelled; when given, T_opt is
        the F1-optimal threshold on it after every training round.
    session:
        When given, every state change is saved through it immediately (atomic
        writes): labels on every decide / add / remove / undo, the queue and
        position on select and decide, detector + predictions + metrics per round.
    test:
        ``(micrographs, truth pick table)``: when given, every round's history
        entry holds ``metrics.summary`` on it (benchmarks).
    mc_passes:
        Stochastic passes for the ``mc_dropout`` strategy.

    Attributes
    ----------
    labels, predictions, queue, position, round, detector, t_opt, history, complete:
        See the module docs and each method. ``round`` counts completed training
        rounds; decisions made after round r carry ``round = r`` (initial and
        imported labels made before any training carry 0).
    """

    def __init__(
        self,
        micrographs: Sequence[Micrograph],
        config: DetectorConfig,
        *,
        strategy: str = "boundary_distance",
        batch_size: int = 20,
        seed: int = 0,
        min_confidence: float = DEFAULT_MIN_CONFIDENCE,
        partial: bool = False,
        warm_start: bool = False,
        validation: tuple[Sequence[Micrograph], pd.DataFrame] | None = None,
        session: Session | None = None,
        test: tuple[Sequence[Micrograph], pd.DataFrame] | None = None,
        mc_passes: int = DEFAULT_MC_PASSES,
        protocol: str = "product",
        init: str | Detector | None = "general",
        train_steps: int | None = DEFAULT_TRAIN_STEPS,
    ) -> None:
        from .strategies import PROTOCOLS, STRATEGIES

        if protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {protocol!r}; choose from {PROTOCOLS}")
        if not (init is None or init in INIT_CHOICES or hasattr(init, "network")):
            raise ValueError(
                f"init must be one of {INIT_CHOICES}, a Detector or None, not {init!r}"
            )

        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}; choose from {sorted(STRATEGIES)}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, not {batch_size}")
        self.micrographs = list(micrographs)
        self._by_name = {m.name: m for m in self.micrographs}
        if len(self._by_name) != len(self.micrographs):
            raise ReviewError("micrograph names in the pool are not unique")
        self.config = config
        self.strategy = strategy
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.min_confidence = float(min_confidence)
        self.partial = bool(partial)
        self.warm_start = bool(warm_start)
        self.mc_passes = int(mc_passes)
        self.protocol = protocol
        self.init = init
        self.train_steps = None if train_steps is None else int(train_steps)
        self.validation = self._checked_split(validation, "validation")
        self.test = self._checked_split(test, "test")
        self.session = session

        self.labels: pd.DataFrame = empty_labels()
        self.predictions: pd.DataFrame | None = None
        self.queue: pd.DataFrame = self._empty_queue()
        self.position: int = 0
        self.round: int = 0
        self.detector: Detector | None = None
        self.t_opt: float = DEFAULT_T_OPT
        self.t_opt_source: str = "default"
        self.history: list[dict[str, Any]] = []
        self.complete: set[str] = set()
        self._undo: list[_UndoEntry] = []
        self._reviewed: set[int] = set()  # pick ids reviewed without a label ("skip")
        self._next_id = 0
        self._selects_this_round = 0

    # ------------------------------------------------------------------ settings
    @property
    def settings(self) -> dict[str, Any]:
        """The learner's settings as stored in a session (see :func:`learner_settings`)."""
        return learner_settings(
            self.config,
            strategy=self.strategy,
            batch_size=self.batch_size,
            seed=self.seed,
            min_confidence=self.min_confidence,
            partial=self.partial,
            warm_start=self.warm_start,
            mc_passes=self.mc_passes,
        )

    @property
    def shapes(self) -> dict[str, tuple[int, int]]:
        """``{micrograph name: (height, width)}`` of the pool, in pixels."""
        return {m.name: tuple(m.data.shape) for m in self.micrographs}

    # ------------------------------------------------------------------ labels
    def add_labels(self, picks: pd.DataFrame, source: str = "import") -> None:
        """Add initial / imported labels (a pick table) with new pick ids.

        Statuses are kept except ``predicted``, which becomes ``imported``; every
        pick must lie inside a pool micrograph (:class:`CoordinateError`
        otherwise). ``source`` is ``"import"`` or ``"initial"`` (benchmarks).
        Undoable as one step.
        """
        picks = validate_picks(picks, f"{source} labels")
        picks = check_bounds(picks, self.shapes, source=f"{source} labels")
        if len(picks) == 0:
            return
        status = picks["status"].where(picks["status"] != STATUS_PREDICTED, STATUS_IMPORTED)
        new = picks.assign(
            status=status,
            round=self.round,
            pick_id=self._new_ids(len(picks)),
            strategy="",
            source=source,
            pred_x=np.nan,
            pred_y=np.nan,
        )
        self._replace_labels(new)
        self._save_labels()

    def add_particle(self, micrograph: str, x: float, y: float) -> int:
        """Add a particle the detector missed at centre (x, y); returns its new pick id.

        Status ``added``, source ``human``, diameter ``config.diameter``. Raises
        :class:`CoordinateError` if the micrograph is not in the pool or the
        centre lies outside it. Undoable.
        """
        if micrograph not in self._by_name:
            raise CoordinateError(f"micrograph {micrograph!r} is not in the pool")
        row = validate_picks(
            pd.DataFrame(
                {
                    "micrograph": [micrograph],
                    "x": [x],
                    "y": [y],
                    "diameter": [float(self.config.diameter)],
                    "status": [STATUS_ADDED],
                    "round": [self.round],
                    "time": [now_utc()],
                }
            ),
            "added particle",
        )
        check_bounds(row, self.shapes, source="added particle")
        pick_id = int(self._new_ids(1)[0])
        new = row.assign(pick_id=pick_id, strategy="", source="human", pred_x=np.nan, pred_y=np.nan)
        self._replace_labels(new)
        self._save_labels()
        return pick_id

    def remove_label(self, pick_id: int) -> None:
        """Remove the label (or rejection) ``pick_id``; undoable. :class:`ReviewError` if unknown."""
        pick_id = int(pick_id)
        if pick_id not in set(self.labels["pick_id"].tolist()):
            raise ReviewError(f"no label with pick id {pick_id}")
        self._push_undo([pick_id])
        self.labels = self.labels[self.labels["pick_id"] != pick_id].reset_index(drop=True)
        self._save_labels()

    def decide(
        self,
        pick_id: int,
        action: str,
        x: float | None = None,
        y: float | None = None,
        *,
        source: str = "human",
    ) -> None:
        """Record a decision on a predicted pick (normally the queued one under review).

        ``action``: ``"accept"`` (label at the predicted centre), ``"move"``
        (label at the new centre ``x``, ``y``; the predicted centre is kept in
        ``pred_x`` / ``pred_y``) or ``"reject"`` (a reviewed negative at the
        predicted centre). A second decision on the same pick replaces the first.
        When the pick is the one under review, :attr:`position` advances to the
        next undecided pick of the queue. Undoable.
        """
        decision = pd.DataFrame(
            {
                "pick_id": [int(pick_id)],
                "action": [action],
                "x": [np.nan if x is None else float(x)],
                "y": [np.nan if y is None else float(y)],
            }
        )
        self._apply_decisions(decision, source=source)
        self._save_labels()
        self._save_queue()

    def undo(self) -> bool:
        """Undo the last decide / add_particle / remove_label / add_labels; False if none left."""
        if not self._undo:
            return False
        entry = self._undo.pop()
        keep = self.labels[~self.labels["pick_id"].isin(entry.pick_ids)]
        self.labels = _as_labels(pd.concat([keep, entry.old_rows], ignore_index=True))
        self.position = entry.position
        self._reviewed = set(entry.reviewed)
        self._save_labels()
        self._save_queue()
        return True

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

    def counts(self, round: int | None = None) -> dict[str, int]:  # noqa: A002 - contract name
        """Label counts by status: accepted, moved, added, rejected, imported, and
        ``positive`` (all particle labels). ``round`` restricts to decisions made in
        that round (after training round ``round``); None counts everything."""
        df = self.labels if round is None else self.labels[self.labels["round"] == round]
        out = {k: int((df["status"] == k).sum()) for k in COUNT_KEYS}
        out["positive"] = int(df["status"].isin(POSITIVE_STATUSES).sum())
        return out

    def positive_labels(self) -> pd.DataFrame:
        """The particle labels as a pick table (statuses in ``POSITIVE_STATUSES``)."""
        pos = self.labels[self.labels["status"].isin(POSITIVE_STATUSES)]
        return pos[list(PICK_COLUMNS)].reset_index(drop=True)

    def negative_labels(self) -> pd.DataFrame:
        """The reviewed negatives (status ``rejected``) as a pick table."""
        neg = self.labels[self.labels["status"] == STATUS_REJECTED]
        return neg[list(PICK_COLUMNS)].reset_index(drop=True)

    # ------------------------------------------------------------------ training
    def training_micrographs(self) -> list[Micrograph]:
        """Micrographs trained on: those with any label or rejection, plus the complete ones.

        Micrographs nobody looked at are left out (they would teach "background"
        everywhere); pool order is kept.
        """
        used = set(self.labels["micrograph"]) | self.complete
        return [m for m in self.micrographs if m.name in used]

    def iter_train(
        self, should_stop: Callable[[], bool] | None = None
    ) -> Generator[Progress, None, Detector]:
        """Train a detector on the labels; a generator yielding progress dicts, returning it.

        Trains from scratch with ``config`` unless ``warm_start`` (then from the
        previous detector), with rejections as negatives, ``partial`` and
        :attr:`complete` passed to the detector. Then :attr:`round` increases by
        one, T_opt is updated (validation set, else decisions, else 0.5), test
        metrics are computed when a test set is known, a history entry is
        appended and the round is saved to the session. Raises
        :class:`ReviewError` with no positive label, ``errors.Cancelled`` when
        ``should_stop()`` turns true.
        """
        from ..detector import iter_train_detector

        positives = self.positive_labels()
        if len(positives) == 0:
            raise ReviewError("no particle labels to train on: add or accept some picks first")
        mics = self.training_micrographs()
        self.init_used = None
        init = self._round_init()
        if self.init_used is None:
            self.init_used = (
                "scratch"
                if init is None
                else ("general" if init.meta.get("general") else "previous")
            )
        config = self.config
        if init is not None and self.protocol == "product":
            config = dataclasses.replace(config, lr=min(config.lr, FINETUNE_LR))
        if self.train_steps is not None:
            config = dataclasses.replace(config, steps=self.train_steps)
        yield {
            "stage": "train",
            "step": 0,
            "total": int(config.steps if config.steps is not None else config.epochs),
            "round": self.round + 1,
        }
        t0 = time.perf_counter()
        detector = yield from iter_train_detector(
            mics,
            positives,
            config,
            negatives=self.negative_labels(),
            init=init,
            partial=self.partial or self.protocol == "product",
            complete=set(self.complete),
            should_stop=should_stop,
        )
        train_s = time.perf_counter() - t0
        self.detector = detector
        self.round += 1
        self._selects_this_round = 0
        t0 = time.perf_counter()
        metrics = yield from self._iter_evaluate(should_stop)
        eval_s = time.perf_counter() - t0
        entry = {
            "round": self.round,
            "strategy": self.strategy,
            "labels": int(len(positives)),
            "negatives": int((self.labels["status"] == STATUS_REJECTED).sum()),
            "micrographs_trained": len(mics),
            "protocol": self.protocol,
            "init": self.init_used,
            "train_steps": detector.meta.get("steps"),
            "counts": self.counts(),
            "t_opt": float(self.t_opt),
            "t_opt_source": self.t_opt_source,
            "train_s": train_s,
            "eval_s": eval_s,
            "predict_s": None,
            "metrics": metrics,
            "time": now_utc(),
        }
        self.history.append(_jsonable(entry))
        self._save_round(detector=detector, metrics=self.history[-1])
        return detector

    def _round_init(self) -> Detector | None:
        """The detector this round fine-tunes (None = from scratch); see ``init``."""
        if self.warm_start and self.detector is not None:
            return self.detector
        if self.init is None or self.init == "scratch":
            return None
        if not isinstance(self.init, str):
            return self.init
        if self.init == "previous" and self.detector is not None:
            return self.detector
        if getattr(self, "_general", None) is None:
            from ..detector.config import DEFAULT_LIGHT_WIDTH
            from ..detector.general import load_general_detector

            if self.config.arch != "light" or self.config.channel_width != DEFAULT_LIGHT_WIDTH:
                # no general model of this size: train from scratch, and say so in the history
                self.init_used = (
                    f"scratch (no general model for {self.config.arch} width "
                    f"{self.config.channel_width})"
                )
                return None
            self._general = load_general_detector(
                self.config.diameter, arch=self.config.arch, device=self.config.device
            )
        return self._general

    def _iter_evaluate(
        self, should_stop: Callable[[], bool] | None
    ) -> Generator[Progress, None, dict | None]:
        """Update T_opt (validation / decisions) and return test metrics (or None)."""
        from .. import metrics

        if self.validation is not None:
            mics, truth = self.validation
            yield {"stage": "validate", "step": 0, "total": len(mics)}
            pred = yield from self._iter_predict_on(mics, should_stop)
            self.t_opt = float(metrics.find_t_opt(pred, truth))
            self.t_opt_source = "validation"
        else:
            self._update_t_opt_from_decisions()
        if self.test is None:
            return None
        mics, truth = self.test
        yield {"stage": "test", "step": 0, "total": len(mics)}
        pred = yield from self._iter_predict_on(mics, should_stop)
        return _jsonable(metrics.summary(pred, truth, t_opt=self.t_opt))

    def _iter_predict_on(
        self, mics: Sequence[Micrograph], should_stop: Callable[[], bool] | None, **kwargs
    ) -> Generator[Progress, None, pd.DataFrame]:
        """Predict with the current detector on ``mics`` (all confidences >= 0)."""
        from ..detector import iter_predict_picks

        pred = yield from iter_predict_picks(
            self.detector, list(mics), threshold=0.0, should_stop=should_stop, **kwargs
        )
        return pred

    def _update_t_opt_from_decisions(self) -> None:
        """T_opt from the review decisions of the latest round that has any.

        Accepted / moved (particle) and rejected (not) predictions with their
        confidences, plus particles added by hand in that round at confidence 0
        (missed by the detector; thesis protocol only - the product protocol uses
        the accepts / moves and rejects alone), go to ``metrics.t_opt_from_decisions``. Without
        a positive and a negative decision T_opt stays as it is (0.5 at first).
        """
        from .. import metrics

        lab = self.labels[self.labels["source"].isin(("human", "oracle"))]
        reviewed = lab["status"].isin((STATUS_ACCEPTED, STATUS_MOVED, STATUS_REJECTED))
        reviewed &= np.isfinite(lab["confidence"])
        if not reviewed.any():
            return
        latest = lab.loc[reviewed, "round"].max()
        # product protocol: the user's accepts / moves vs rejects only (issue 9); a missed
        # particle added by hand has no confidence, and counting it at 0 drags T_opt to 0
        added = lab["status"] == STATUS_ADDED if self.protocol == "thesis" else False
        lab = lab[(lab["round"] == latest) & (reviewed | added)]
        is_particle = (lab["status"] != STATUS_REJECTED).to_numpy()
        if is_particle.all() or not is_particle.any():
            return
        confidence = lab["confidence"].fillna(0.0).to_numpy(float)
        self.t_opt = float(metrics.t_opt_from_decisions(confidence, is_particle))
        self.t_opt_source = "decisions"

    # ------------------------------------------------------------------ prediction
    def iter_predict(
        self, should_stop: Callable[[], bool] | None = None
    ) -> Generator[Progress, None, pd.DataFrame]:
        """Predict on the whole pool with the current detector; yields progress, returns
        :attr:`predictions` (pick table + ``pick_id``, status ``predicted``, confidence
        >= ``min_confidence``, plus ``disagreement`` for the mc_dropout / tta
        strategies). Saved to the session with the round."""
        from .strategies import strategy_needs

        if self.detector is None:
            raise ReviewError("no detector yet: train a round first")
        need = strategy_needs(self.strategy)
        kwargs: dict[str, Any] = {}
        if need == "mc_dropout":
            kwargs["mc_dropout"] = self.mc_passes
        elif need == "tta":
            kwargs["tta"] = True
        from ..detector import iter_predict_picks

        t0 = time.perf_counter()
        pred = yield from iter_predict_picks(
            self.detector,
            self.micrographs,
            threshold=self.min_confidence,
            should_stop=should_stop,
            **kwargs,
        )
        pred = pred.reset_index(drop=True)
        pred["round"] = self.round
        pred["pick_id"] = self._new_ids(len(pred))
        self.predictions = pred
        self._reviewed = set()
        if self.history:
            self.history[-1]["predict_s"] = time.perf_counter() - t0
            self.history[-1]["predictions"] = int(len(pred))
        self._save_round(predictions=pred, metrics=self.history[-1] if self.history else None)
        return pred

    # ------------------------------------------------------------------ selection
    def candidates(self) -> pd.DataFrame:
        """Predictions that may be queued (SPEC section 3).

        Confidence >= ``min_confidence``; not on a complete micrograph; not
        decided or reviewed already; centre farther than half a diameter from
        every label and rejection on its micrograph; one per (micrograph, x, y).
        """
        if self.predictions is None or len(self.predictions) == 0:
            return self._empty_queue().drop(columns=["uncertainty", "rank"])
        c = self.predictions
        c = c[c["confidence"] >= self.min_confidence]
        c = c[~c["micrograph"].isin(self.complete)]
        done = set(self.labels["pick_id"].tolist()) | self._reviewed
        c = c[~c["pick_id"].isin(done)]
        c = c.drop_duplicates(subset=["micrograph", "x", "y"])
        c = c[~self._near_labels(c, self.labels, c["diameter"].to_numpy(float) / 2)]
        if self.protocol == "product":
            from .strategies import plausible_candidates

            c = plausible_candidates(c, self.t_opt)
        return c.reset_index(drop=True)

    def select(self, k: int | None = None) -> pd.DataFrame:
        """Rank the candidates with the strategy and make the top ``k`` the queue.

        ``k`` defaults to ``batch_size``. Sets :attr:`queue` (candidate rows in
        review order plus ``uncertainty`` and ``rank``) and ``position = 0``, and
        saves them. When no validation set is given, T_opt is first re-estimated
        from the decisions. Returns the queue (possibly empty).
        """
        from .strategies import rank_candidates

        k = self.batch_size if k is None else int(k)
        if self.validation is None:
            self._update_t_opt_from_decisions()
        cands = self.candidates()
        if len(cands) == 0 or k <= 0:
            queue = self._empty_queue()
        else:
            seed = int(
                np.random.SeedSequence(
                    [self.seed, self.round, self._selects_this_round]
                ).generate_state(1)[0]
            )
            queue = rank_candidates(
                cands, self.strategy, k, seed=seed, t_opt=self.t_opt, protocol=self.protocol
            )
            queue = queue.reset_index(drop=True)
        self._selects_this_round += 1
        self.queue = queue
        self.position = 0
        self._save_queue()
        if self.history:
            # the round's record says how many picks it queued (kept in the session too)
            self.history[-1]["queued"] = int(len(queue))
            self._save_round(metrics=self.history[-1])
        return queue

    def iter_round(
        self, should_stop: Callable[[], bool] | None = None, *, predict: bool = True
    ) -> Generator[Progress, None, dict]:
        """One round: :meth:`iter_train` -> :meth:`iter_predict` -> :meth:`select`.

        Yields progress dicts; returns the round's history entry (labels,
        counts, T_opt, timings, metrics when a test set is known, queue size).
        ``predict=False`` stops after training and evaluation (a benchmark's
        last round).
        """
        yield from self.iter_train(should_stop)
        if predict:
            yield from self.iter_predict(should_stop)
            queue = self.select()
            yield {"stage": "select", "step": 1, "total": 1, "queued": int(len(queue))}
        return self.history[-1]

    # ------------------------------------------------------------------ simulated review
    def review_with(self, oracle: Oracle, *, max_positives: int | None = None) -> pd.DataFrame:
        """Let ``oracle`` decide the undecided picks of the queue (from :attr:`position`).

        Accept / move / reject decisions become labels with source ``oracle``;
        ``skip`` decisions are remembered as reviewed (not queued again). With
        ``max_positives``, decisions are applied in queue order only up to and
        including the one that brings the new particle labels to that number;
        later picks stay undecided (the benchmark's "K new labels" rule). The
        queue position moves past the applied decisions. Returns the applied
        decisions (the oracle's table, truncated).
        """
        batch = self.queue.iloc[self.position :]
        done = set(self.labels["pick_id"].tolist()) | self._reviewed
        batch = batch[~batch["pick_id"].isin(done)]
        decisions = oracle.review(batch, labels=self.labels).reset_index(drop=True)
        if max_positives is not None:
            positive = decisions["action"].isin(("accept", "move", "add")).to_numpy()
            reached = np.flatnonzero(np.cumsum(positive) >= max_positives)
            if len(reached):
                decisions = decisions.iloc[: reached[0] + 1]
        skip = (decisions["action"] == "skip").to_numpy()
        add = (decisions["action"] == "add").to_numpy()
        self._reviewed |= set(decisions.loc[skip, "pick_id"].astype(int).tolist())
        if (~skip & ~add).any():
            self._apply_decisions(decisions[~skip & ~add], source="oracle")
        else:
            self._advance()
        if add.any():
            self._add_missed(decisions[add])
        self._save_labels()
        self._save_queue()
        return decisions

    # ------------------------------------------------------------------ export
    def export_picks(
        self, *, include_predictions: bool = False, threshold: float | None = None
    ) -> pd.DataFrame:
        """The curated picks as a pick table: every particle label, in label order.

        With ``include_predictions``, also the current predictions with confidence
        >= ``threshold`` (default T_opt) that are not decided, not on a complete
        micrograph and overlap no label or rejection (circle IoU > the NMS
        threshold, ``DEFAULT_NMS_IOU``); they keep status ``predicted``.
        """
        out = self.positive_labels()
        if not include_predictions or self.predictions is None or len(self.predictions) == 0:
            return out
        t = self.t_opt if threshold is None else float(threshold)
        p = self.predictions
        p = p[(p["confidence"] >= t) & ~p["micrograph"].isin(self.complete)]
        p = p[~p["pick_id"].isin(set(self.labels["pick_id"].tolist()))]
        p = p[~self._overlaps_labels(p, self.labels, DEFAULT_NMS_IOU)]
        return validate_picks(pd.concat([out, p[list(PICK_COLUMNS)]], ignore_index=True))

    # ------------------------------------------------------------------ session
    @classmethod
    def from_session(
        cls,
        session: Session,
        micrographs: Sequence[Micrograph] | None = None,
        **overrides: Any,
    ) -> ActiveLearner:
        """Resume from a session: settings, labels, queue + position, round, detector,
        predictions, T_opt, history and complete micrographs.

        ``micrographs`` defaults to reading ``session.micrograph_paths``.
        ``overrides`` (e.g. ``validation=...``) go to the constructor.
        """
        from ..detector import DetectorConfig

        settings = dict(session.settings)
        if "detector" not in settings:
            raise ActivePickError(
                f"session {getattr(session, 'folder', '')}: settings hold no detector configuration"
            )
        if micrographs is None:
            from ..io.micrograph import read_micrograph

            micrographs = [read_micrograph(p) for p in session.micrograph_paths]
        kwargs = {
            k: settings[k]
            for k in (
                "strategy",
                "batch_size",
                "seed",
                "min_confidence",
                "partial",
                "warm_start",
                "mc_passes",
            )
            if k in settings
        }
        kwargs.update(overrides)
        learner = cls(micrographs, DetectorConfig.from_dict(settings["detector"]), **kwargs)
        labels = session.load_labels()
        if labels is not None and len(labels):
            learner.labels = _as_labels(labels)
        learner.history = [dict(h) for h in session.history()]
        learner.round = max([int(h.get("round", 0)) for h in learner.history] + [0])
        if learner.history:
            last = learner.history[-1]
            learner.t_opt = float(last.get("t_opt", DEFAULT_T_OPT))
            learner.t_opt_source = str(last.get("t_opt_source", "default"))
        learner.detector = session.load_detector()
        predictions = session.load_predictions()
        learner.predictions = predictions if predictions is not None and len(predictions) else None
        queue, position = session.load_queue()
        if queue is not None and len(queue):
            learner.queue, learner.position = queue.reset_index(drop=True), int(position)
        learner.complete = {str(c) for c in settings.get("complete", [])}
        ids = [learner.labels["pick_id"]]
        ids += [df["pick_id"] for df in (learner.predictions, learner.queue) if df is not None]
        all_ids = pd.concat(ids, ignore_index=True)
        learner._next_id = int(all_ids.max()) + 1 if len(all_ids) else 0
        learner.session = session
        return learner

    def _save_labels(self) -> None:
        if self.session is not None:
            self.session.save_labels(self.labels)

    def _save_queue(self) -> None:
        if self.session is not None:
            self.session.save_queue(self.queue, self.position)

    def _save_round(self, **kwargs: Any) -> None:
        if self.session is not None:
            self.session.save_round(self.round, **kwargs)

    def _save_complete(self) -> None:
        if self.session is not None and hasattr(self.session, "save_settings"):
            settings = dict(self.session.settings)
            settings["complete"] = sorted(self.complete)
            self.session.save_settings(settings)

    # ------------------------------------------------------------------ internals
    def _checked_split(
        self, split: tuple[Sequence[Micrograph], pd.DataFrame] | None, what: str
    ) -> tuple[list[Micrograph], pd.DataFrame] | None:
        if split is None:
            return None
        mics, truth = split
        return list(mics), validate_picks(truth, f"{what} ground truth")

    def _empty_queue(self) -> pd.DataFrame:
        q = empty_picks()
        q["pick_id"] = pd.Series(dtype=np.int64)
        q["uncertainty"] = pd.Series(dtype=np.float64)
        q["rank"] = pd.Series(dtype=np.int64)
        return q

    def _new_ids(self, n: int) -> np.ndarray:
        """``n`` fresh pick ids, above every id in the labels, predictions and queue."""
        for df in (self.labels, self.predictions, self.queue):
            if df is not None and len(df):
                self._next_id = max(self._next_id, int(df["pick_id"].max()) + 1)
        ids = np.arange(self._next_id, self._next_id + n, dtype=np.int64)
        self._next_id += n
        return ids

    def _push_undo(self, pick_ids: Iterable[int]) -> None:
        ids = [int(i) for i in pick_ids]
        old = self.labels[self.labels["pick_id"].isin(ids)].copy()
        self._undo.append(_UndoEntry(ids, old, self.position, frozenset(self._reviewed)))
        del self._undo[:-UNDO_DEPTH]

    def _replace_labels(self, new: pd.DataFrame) -> None:
        """Undoably put ``new`` label rows in place of any rows with the same pick ids."""
        self._push_undo(new["pick_id"].tolist())
        keep = self.labels[~self.labels["pick_id"].isin(new["pick_id"])]
        self.labels = _as_labels(pd.concat([keep, new[list(LABEL_COLUMNS)]], ignore_index=True))

    def _add_missed(self, adds: pd.DataFrame) -> None:
        """Oracle ``add`` rows (``micrograph``, ``x``, ``y``) -> labels of status ``added``,
        source ``oracle``, confidence NaN (one undo step)."""
        new = validate_picks(
            pd.DataFrame(
                {
                    "micrograph": adds["micrograph"].astype(str).to_numpy(),
                    "x": adds["x"].to_numpy(float),
                    "y": adds["y"].to_numpy(float),
                    "diameter": float(self.config.diameter),
                    "status": STATUS_ADDED,
                    "round": self.round,
                    "time": now_utc(),
                }
            ),
            "added particles",
        )
        check_bounds(new, self.shapes, source="added particles")
        new = new.assign(
            pick_id=self._new_ids(len(new)),
            strategy="",
            source="oracle",
            pred_x=np.nan,
            pred_y=np.nan,
        )
        self._replace_labels(new)

    def _apply_decisions(self, decisions: pd.DataFrame, *, source: str) -> None:
        """Turn accept / move / reject decisions on predicted picks into label rows (one undo step)."""
        if self.predictions is None and len(self.queue) == 0:
            raise ReviewError("no predictions to decide on: run a round first")
        pool = pd.concat(
            [df for df in (self.queue, self.predictions) if df is not None and len(df)],
            ignore_index=True,
        ).drop_duplicates("pick_id")
        pool = pool.set_index("pick_id")
        unknown = set(decisions["pick_id"].astype(int)) - set(pool.index)
        if unknown:
            raise ReviewError(f"no predicted pick with id(s) {sorted(unknown)[:5]}")
        bad = set(decisions["action"]) - set(ACTION_STATUS)
        if bad:
            raise ReviewError(f"unknown action(s) {sorted(bad)}; use accept, move or reject")
        pred = pool.loc[decisions["pick_id"].astype(int).to_numpy()]
        is_move = (decisions["action"] == "move").to_numpy()
        dx, dy = decisions["x"].to_numpy(float), decisions["y"].to_numpy(float)
        if np.any(is_move & ~(np.isfinite(dx) & np.isfinite(dy))):
            raise ReviewError("a 'move' decision needs the new x and y")
        x = np.where(is_move, dx, pred["x"].to_numpy(float))
        y = np.where(is_move, dy, pred["y"].to_numpy(float))
        new = pd.DataFrame(
            {
                "micrograph": pred["micrograph"].to_numpy(),
                "x": x,
                "y": y,
                "diameter": pred["diameter"].to_numpy(float),
                "confidence": pred["confidence"].to_numpy(float),
                "status": decisions["action"].map(ACTION_STATUS).to_numpy(),
                "round": self.round,
                "time": now_utc(),
                "pick_id": decisions["pick_id"].to_numpy(np.int64),
                "strategy": self.strategy,
                "source": source,
                "pred_x": pred["x"].to_numpy(float),
                "pred_y": pred["y"].to_numpy(float),
            }
        )
        check_bounds(new, self.shapes, source="decision")
        self._replace_labels(new)
        self._advance()

    def _advance(self) -> None:
        """Move :attr:`position` past decided / reviewed picks of the queue."""
        done = set(self.labels["pick_id"].tolist()) | self._reviewed
        ids = self.queue["pick_id"].tolist()
        while self.position < len(ids) and int(ids[self.position]) in done:
            self.position += 1

    @staticmethod
    def _near_labels(picks: pd.DataFrame, labels: pd.DataFrame, radius: np.ndarray) -> np.ndarray:
        """Boolean mask: pick centre within ``radius`` (px, per pick) of any label on its micrograph."""
        near = np.zeros(len(picks), dtype=bool)
        if len(picks) == 0 or len(labels) == 0:
            return near
        by_mic = {str(k): g for k, g in labels.groupby("micrograph")}
        for name, idx in picks.groupby("micrograph").indices.items():
            lab = by_mic.get(str(name))
            if lab is None:
                continue
            tree = cKDTree(lab[["x", "y"]].to_numpy(float))
            d, _ = tree.query(picks[["x", "y"]].to_numpy(float)[idx], k=1)
            near[idx] = d < radius[idx]
        return near

    @staticmethod
    def _overlaps_labels(picks: pd.DataFrame, labels: pd.DataFrame, min_iou: float) -> np.ndarray:
        """Boolean mask: pick overlaps a label on its micrograph with circle IoU > ``min_iou``."""
        from ..matching import pairwise_iou

        out = np.zeros(len(picks), dtype=bool)
        if len(picks) == 0 or len(labels) == 0:
            return out
        by_mic = {str(k): g for k, g in labels.groupby("micrograph")}
        for name, idx in picks.groupby("micrograph").indices.items():
            lab = by_mic.get(str(name))
            if lab is None:
                continue
            p = picks.iloc[idx]
            iou = pairwise_iou(
                p[["x", "y"]].to_numpy(float),
                p["diameter"].to_numpy(float) / 2,
                lab[["x", "y"]].to_numpy(float),
                lab["diameter"].to_numpy(float) / 2,
            )
            out[idx] = np.asarray(iou.max(axis=1).todense()).ravel() > min_iou
        return out


__all__ = [
    "ActiveLearner",
    "ReviewError",
    "empty_labels",
    "learner_settings",
]
