"""The active-learning round engine (SPEC sections 3-5): pool, rounds, queue.

:class:`ActiveLearner` trains the detector on the labels, predicts on the pool and
ranks the candidates with an uncertainty strategy into a review queue; long steps
are generators yielding progress dicts. The workbench (:mod:`.workbench`) drives it
for the widget and ``activepick round``, the benchmark with a simulated oracle.
Label editing, undo and the session journal are the :class:`.decisions.LabelEditing`
mixin over a :class:`.label_store.LabelStore` (the label table, ``LABEL_COLUMNS``);
the settings are one :class:`.settings.LearnerSettings`. Coordinates are centres in
pixels of the ORIGINAL micrograph, x = column, y = row, origin top-left.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Generator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..constants import (
    DEFAULT_MIN_CONFIDENCE,
    DEFAULT_NMS_IOU,
    PICK_COLUMNS,
    STATUS_ACCEPTED,
    STATUS_ADDED,
    STATUS_MOVED,
    STATUS_REJECTED,
)
from ..io.picks import empty_picks, now_utc, validate_picks
from ..metrics import jsonable
from .decisions import LabelEditing, ReviewError
from .label_store import near_labels, overlaps_labels
from .pool import DEFAULT_MAX_SIZE, prediction_subset
from .regions import RegionReview, inside_regions
from .settings import (
    DEFAULT_MC_PASSES,
    DEFAULT_REVIEW_K,
    DEFAULT_STRATEGY,
    DEFAULT_TRAIN_STEPS,
    INITS,
    PROTOCOLS,
    LearnerSettings,
    SettingsAccess,
)

if TYPE_CHECKING:  # pragma: no cover - imported for type hints only
    from ..detector import Detector, DetectorConfig
    from ..io.micrograph import Micrograph
    from ..session import Session

#: T_opt before any validation or decision is available.
DEFAULT_T_OPT = 0.5

Progress = dict[str, Any]


class ActiveLearner(LabelEditing, RegionReview, SettingsAccess):
    """Pool-based active learning over a set of micrographs (SPEC sections 3-5).

    Parameters
    ----------
    micrographs:
        The pool (``io.micrograph.Micrograph``; names must be unique). Labels,
        predictions and the queue refer to them by ``name``.
    config:
        ``detector.DetectorConfig`` for every training round (its ``diameter``,
        in original-micrograph pixels, is the size of added particles).
    strategy, review_k, seed, min_confidence, partial, warm_start, mc_passes,
    protocol, init, train_steps:
        The fields of :class:`~activepick.active.settings.LearnerSettings` (see
        there); ``review_k`` is the default review batch size K of :meth:`select`
    validation:
        ``(micrographs, truth pick table)`` fully labelled; when given, T_opt is
        the F1-optimal threshold on it after every training round.
    session:
        When given, every state change is saved through it immediately: label
        changes to its journal, the queue position, detector + predictions +
        metrics per round; :meth:`compact` writes the whole label table.
    test:
        ``(micrographs, truth pick table)``: when given, every round's history
        entry holds ``metrics.summary`` on it (benchmarks).

    ``round`` counts completed training rounds; decisions made after round r carry
    ``round = r`` (initial and imported labels made before any training carry 0).
    """

    def __init__(
        self,
        micrographs: Sequence[Micrograph],
        config: DetectorConfig,
        *,
        strategy: str = DEFAULT_STRATEGY,
        review_k: int = DEFAULT_REVIEW_K,
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
        predict_subset: int | None = DEFAULT_MAX_SIZE,
    ) -> None:
        from .strategies import STRATEGIES

        if protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {protocol!r}; choose from {PROTOCOLS}")
        if not (init is None or init in INITS or hasattr(init, "network")):
            raise ValueError(f"init must be one of {INITS}, a Detector or None, not {init!r}")

        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}; choose from {sorted(STRATEGIES)}")
        review_k = int(review_k)
        if review_k < 1:
            raise ValueError(f"review_k must be >= 1, not {review_k}")
        self.micrographs = list(micrographs)
        self._by_name = {m.name: m for m in self.micrographs}
        if len(self._by_name) != len(self.micrographs):
            raise ReviewError("micrograph names in the pool are not unique")
        self.config = config
        self.strategy = strategy
        self.review_k = review_k
        self.seed = int(seed)
        self.min_confidence = float(min_confidence)
        self.partial = bool(partial)
        self.warm_start = bool(warm_start)
        self.mc_passes = int(mc_passes)
        self.protocol = protocol
        self.init = init
        self.train_steps = None if train_steps is None else int(train_steps)
        self.predict_subset = None if predict_subset is None else int(predict_subset)
        self.validation = self._checked_split(validation, "validation")
        self.test = self._checked_split(test, "test")
        self.session = session

        self._init_labels()
        self.predictions: pd.DataFrame | None = None
        self.queue: pd.DataFrame = self._empty_queue()
        self.position: int = 0
        self.round: int = 0
        self.detector: Detector | None = None
        self.t_opt: float = DEFAULT_T_OPT
        self.t_opt_source: str = "default"
        self.history: list[dict[str, Any]] = []
        self.complete: set[str] = set()
        self._selects_this_round = 0

    @classmethod
    def from_settings(
        cls, micrographs: Sequence[Micrograph], settings: LearnerSettings, **kwargs: Any
    ) -> ActiveLearner:
        """A learner with :class:`LearnerSettings`; ``kwargs`` (validation, test,
        session) go to the constructor."""
        fields = settings.to_dict()
        fields.pop("detector")
        return cls(micrographs, settings.detector, **fields, **kwargs)

    @property
    def shapes(self) -> dict[str, tuple[int, int]]:
        """``{micrograph name: (height, width)}`` of the pool, in pixels."""
        return {m.name: tuple(m.shape) for m in self.micrographs}

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
        from ..detector import input_cache, iter_train_detector
        from ..detector.budget import finetuned

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
        finetune = init is not None and self.protocol == "product"
        if finetune:  # crops, distillation, a budget that grows with the labels
            config = finetuned(config, len(positives), min_steps=self.train_steps)
        elif self.train_steps is not None:
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
            complete_regions=self.complete_regions(),
            should_stop=should_stop,
            prepare=input_cache.session_prepare(self.session),
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
        self.history.append(jsonable(entry))
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
        general = self.general_detector()
        if general is None:  # none of this size: train from scratch, and say so in the history
            cfg = self.config
            self.init_used = f"scratch (no general model for {cfg.arch} width {cfg.channel_width})"
        return general

    def general_detector(self) -> Detector | None:
        """The shipped general model for this run's diameter (loaded once); None if none
        is shipped for the config's architecture and width."""
        if getattr(self, "_general", None) is None:
            from ..detector.config import DEFAULT_LIGHT_WIDTH
            from ..detector.general import load_general_detector

            if self.config.arch != "light" or self.config.channel_width != DEFAULT_LIGHT_WIDTH:
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
        return jsonable(metrics.summary(pred, truth, t_opt=self.t_opt))

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
        """Predict with the current detector; yields progress, returns :attr:`predictions`
        (pick table + ``pick_id``, status ``predicted``, confidence >= ``min_confidence``,
        plus ``disagreement`` for the mc_dropout / tta strategies). Saved to the
        session with the round.

        The round predicts on :meth:`prediction_micrographs` (the whole pool, or a
        rotating subset of a large one); micrographs it skips keep their latest
        predictions, with the round that made them (only this round's are candidates).
        """
        from .strategies import strategy_needs

        if self.detector is None:
            raise ReviewError("no detector yet: train a round first")
        need = strategy_needs(self.strategy)
        kwargs: dict[str, Any] = {}
        if need == "mc_dropout":
            kwargs["mc_dropout"] = self.mc_passes
        elif need == "tta":
            kwargs["tta"] = True
        from ..detector import input_cache, iter_predict_picks

        t0 = time.perf_counter()
        mics = self.prediction_micrographs()
        pred = yield from iter_predict_picks(
            self.detector,
            mics,
            threshold=self.min_confidence,
            should_stop=should_stop,
            prepare=input_cache.session_prepare(self.session),
            **kwargs,
        )
        pred = pred.reset_index(drop=True)
        pred["round"] = self.round
        pred["pick_id"] = self._new_ids(len(pred))
        if self.predictions is not None and len(mics) < len(self.micrographs):
            older = self.predictions[~self.predictions["micrograph"].isin({m.name for m in mics})]
            pred = pd.concat([older, pred], ignore_index=True)
        self.predictions = pred
        self._reviewed = set()
        if self.history:
            self.history[-1]["predict_s"] = time.perf_counter() - t0
            self.history[-1]["predictions"] = int(len(pred))
        self._save_round(predictions=pred, metrics=self.history[-1] if self.history else None)
        return pred

    def prediction_micrographs(self) -> list[Micrograph]:
        """This round's micrographs to predict: the pool, or with ``predict_subset`` a
        rotating window of it plus the labelled / complete ones (``pool.prediction_subset``)."""
        if self.predict_subset is None:
            return list(self.micrographs)
        keep = set(
            prediction_subset(
                list(self._by_name),
                labelled=set(self.labels["micrograph"].astype(str)),
                complete=self.complete,
                round=self.round,
                max_size=self.predict_subset,
                seed=self.seed,
            )
        )
        return [m for m in self.micrographs if m.name in keep]

    # ------------------------------------------------------------------ selection
    def candidates(self) -> pd.DataFrame:
        """Predictions that may be queued (SPEC section 3).

        Confidence >= ``min_confidence``; not on a complete micrograph or inside a
        complete region; not decided or reviewed already; centre farther than half a
        diameter from every label and rejection on its micrograph; one per (micrograph, x, y).
        """
        if self.predictions is None or len(self.predictions) == 0:
            return self._empty_queue().drop(columns=["uncertainty", "rank"])
        c = self.predictions
        c = c[(c["confidence"] >= self.min_confidence) & (c["round"] == c["round"].max())]
        c = c[~c["micrograph"].isin(self.complete)]
        done = set(self.labels["pick_id"].tolist()) | self._reviewed
        c = c[~c["pick_id"].isin(done)]
        c = c.drop_duplicates(subset=["micrograph", "x", "y"])
        c = c[~self._near_labels(c, self.labels, c["diameter"].to_numpy(float) / 2)]
        c = c[~inside_regions(c, self.complete_regions())]
        if self.protocol == "product":
            from .strategies import plausible_candidates

            c = plausible_candidates(c, self.t_opt)
        return c.reset_index(drop=True)

    def select(self, k: int | None = None) -> pd.DataFrame:
        """Rank the candidates with the strategy and make the top ``k`` the queue.

        ``k`` defaults to ``review_k``. Sets :attr:`queue` (candidate rows in
        review order plus ``uncertainty`` and ``rank``) and ``position = 0``, and
        saves them. When no validation set is given, T_opt is first re-estimated
        from the decisions. Returns the queue (possibly empty).
        """
        from .strategies import rank_candidates

        k = self.review_k if k is None else int(k)
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

        ``micrographs`` defaults to ``session.micrograph_paths`` opened lazily (headers
        now, pixels when a round trains or predicts on them).
        ``overrides`` (e.g. ``validation=...``) go to the constructor. Sessions
        written before ``review_k`` (with ``batch_size``) open unchanged.
        """
        settings = dict(session.settings)
        learner_settings = LearnerSettings.from_dict(settings, source=f"session {session.folder}")
        if micrographs is None:
            from ..io.lazy import LazyStack, lazy_micrographs

            micrographs = lazy_micrographs(LazyStack(session.micrograph_paths))
        learner = cls.from_settings(micrographs, learner_settings, **overrides)
        labels = session.load_labels()
        if labels is not None and len(labels):
            learner.labels = labels
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
        learner._new_ids(0)  # the next id lies above every id of the session
        learner.session = session
        return learner

    def _save_round(self, **kwargs: Any) -> None:
        if self.session is not None:
            self.session.save_round(self.round, **kwargs)

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

    _near_labels = staticmethod(near_labels)
    _overlaps_labels = staticmethod(overlaps_labels)


__all__ = ["DEFAULT_T_OPT", "ActiveLearner", "ReviewError"]
