"""The learner's settings: one dataclass, saved in ``session.json``, shown in the widget,
used by the CLI and the benchmark.

:class:`LearnerSettings` holds everything an :class:`~activepick.active.engine.ActiveLearner`
needs besides its micrographs: the detector configuration and the active-learning
choices. ``to_dict()`` is what a session stores under ``settings``; ``from_dict()``
reads it back, including sessions written before the rename of the review batch
size (``batch_size`` there, ``review_k`` here: the number of predictions queued for
review per round, not the training minibatch, which is ``DetectorConfig.batch_size``).

Importing this module imports no torch (``DetectorConfig`` lives in
``detector/config.py``, which is plain Python).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..constants import DEFAULT_MIN_CONFIDENCE
from ..errors import ActivePickError
from .pool import DEFAULT_MAX_SIZE

#: Learning protocols (SPEC section 3a): ``product`` (GUI / CLI default) or ``thesis``.
PROTOCOLS: tuple[str, ...] = ("product", "thesis")
#: Where a round's training starts: the shipped general model, the previous round, or scratch.
INITS: tuple[str, ...] = ("general", "previous", "scratch")
#: Optimiser steps per round when fine-tuning (product protocol; docs/benchmarks/detector.md).
DEFAULT_TRAIN_STEPS = 60
#: Default review batch size K.
DEFAULT_REVIEW_K = 20
#: Default number of stochastic passes for the MC-dropout strategy.
DEFAULT_MC_PASSES = 8
#: Default strategy.
DEFAULT_STRATEGY = "boundary_distance"


class SettingsError(ActivePickError):
    """Learner settings (from a session or a caller) that cannot be used."""


def _detector_config_class():
    from ..detector.config import DetectorConfig

    return DetectorConfig


def _default_detector():
    return _detector_config_class()()


@dataclass
class LearnerSettings:
    """Settings of one active-learning run.

    - ``detector``: ``detector.DetectorConfig`` of every training round (its
      ``diameter``, px of the original micrographs, is also the size of added picks).
    - ``strategy``: name in ``active.strategies.STRATEGIES``.
    - ``review_k``: predictions queued for review per round (K).
    - ``seed``: seeds the strategy's randomness (the detector's is ``detector.seed``).
    - ``min_confidence``: c_min; predictions below it are not candidates.
    - ``partial``: supervise only reviewed regions (True) or count the unlabelled
      rest of every trained micrograph as background (False, the thesis).
    - ``warm_start``: train each round from the previous detector.
    - ``mc_passes``: stochastic passes of the ``mc_dropout`` strategy.
    - ``protocol``: ``"product"`` or ``"thesis"`` (SPEC section 3a).
    - ``init``: ``"general"``, ``"previous"`` or ``"scratch"``: where a round's
      training starts.
    - ``train_steps``: fixed optimiser-step budget per round; None = ``detector.epochs``.
    - ``predict_subset``: with a larger pool, each round predicts on this many
      rotating micrographs plus every labelled / fully picked one
      (:func:`activepick.active.pool.prediction_subset`); None = the whole pool.

    ``protocol``, ``init`` and ``train_steps`` are carried to the learner; what they
    change in training and selection is the detector's and the strategies' business.
    """

    detector: Any = field(default_factory=_default_detector)
    strategy: str = DEFAULT_STRATEGY
    review_k: int = DEFAULT_REVIEW_K
    seed: int = 0
    min_confidence: float = DEFAULT_MIN_CONFIDENCE
    partial: bool = False
    warm_start: bool = False
    mc_passes: int = DEFAULT_MC_PASSES
    protocol: str = "product"
    init: str = "general"
    train_steps: int | None = DEFAULT_TRAIN_STEPS
    predict_subset: int | None = DEFAULT_MAX_SIZE

    def __post_init__(self) -> None:
        if isinstance(self.detector, dict):
            self.detector = _detector_config_class().from_dict(self.detector)
        if int(self.review_k) < 1:
            raise SettingsError(f"review_k must be >= 1, not {self.review_k}")
        if self.protocol not in PROTOCOLS:
            raise SettingsError(f"protocol must be one of {PROTOCOLS}, not {self.protocol!r}")
        if self.init not in INITS:
            raise SettingsError(f"init must be one of {INITS}, not {self.init!r}")
        if self.predict_subset is not None and int(self.predict_subset) < 1:
            raise SettingsError(f"predict_subset must be >= 1 or None, not {self.predict_subset}")
        if self.train_steps is not None and int(self.train_steps) < 1:
            raise SettingsError(f"train_steps must be >= 1 or None, not {self.train_steps}")
        if not 0.0 <= float(self.min_confidence) <= 1.0:
            raise SettingsError(f"min_confidence must lie in [0, 1], not {self.min_confidence}")
        self.review_k = int(self.review_k)
        self.seed = int(self.seed)
        self.min_confidence = float(self.min_confidence)
        self.partial = bool(self.partial)
        self.warm_start = bool(self.warm_start)
        self.mc_passes = int(self.mc_passes)
        self.train_steps = None if self.train_steps is None else int(self.train_steps)
        self.predict_subset = None if self.predict_subset is None else int(self.predict_subset)

    @property
    def diameter(self) -> float:
        """The particle diameter (px of the original micrographs), ``detector.diameter``."""
        return float(self.detector.diameter)

    def replace(self, **changes: Any) -> LearnerSettings:
        """A copy with ``changes``; ``diameter=`` and other ``DetectorConfig`` field
        names change the detector configuration."""
        names = {f.name for f in dataclasses.fields(self)}
        det_names = {f.name for f in dataclasses.fields(self.detector)}
        mine = {k: v for k, v in changes.items() if k in names}
        det = {k: v for k, v in changes.items() if k not in names}
        unknown = set(det) - det_names
        if unknown:
            known = ", ".join(sorted((names | det_names) - {"detector"}))
            raise SettingsError(f"unknown setting(s) {sorted(unknown)}; known: {known}")
        if det:
            mine["detector"] = dataclasses.replace(mine.get("detector", self.detector), **det)
        return dataclasses.replace(self, **mine)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able dict a session stores (``detector`` is ``DetectorConfig.to_dict()``)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["detector"] = self.detector.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "settings") -> LearnerSettings:
        """Read :meth:`to_dict` output, or the settings of an older session.

        ``batch_size`` (the old name of the review batch size) is read as
        ``review_k``; unknown keys (``complete``, ``diameter``, newer fields) are
        ignored. Raises :class:`SettingsError` naming ``source`` when there is no
        detector configuration or a value is unusable.
        """
        if not isinstance(data, dict) or not isinstance(data.get("detector"), dict):
            raise SettingsError(f"{source}: settings hold no detector configuration")
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in names}
        if "review_k" not in kwargs and "batch_size" in data:
            kwargs["review_k"] = data["batch_size"]
        try:
            return cls(**kwargs)
        except (TypeError, ValueError) as exc:
            if isinstance(exc, SettingsError):
                raise
            raise SettingsError(f"{source}: {exc}") from None


#: The fields a learner holds as attributes of the same name (``detector`` is its ``config``).
_LEARNER_FIELDS = tuple(f.name for f in dataclasses.fields(LearnerSettings) if f.name != "detector")


class SettingsAccess:
    """Mixin of :class:`~activepick.active.engine.ActiveLearner`: its settings as one
    :class:`LearnerSettings` (read and applied)."""

    config: Any

    @property
    def learner_settings(self) -> LearnerSettings:
        """The learner's settings as one :class:`LearnerSettings`."""
        return LearnerSettings(
            detector=self.config, **{name: getattr(self, name) for name in _LEARNER_FIELDS}
        )

    def apply_settings(self, settings: LearnerSettings) -> None:
        """Use ``settings`` from now on (the next round trains with them)."""
        self.config = settings.detector
        for name in _LEARNER_FIELDS:
            setattr(self, name, getattr(settings, name))

    @property
    def settings(self) -> dict[str, Any]:
        """The learner's settings as stored in a session (``LearnerSettings.to_dict()``)."""
        return self.learner_settings.to_dict()


__all__ = [
    "DEFAULT_MC_PASSES",
    "DEFAULT_REVIEW_K",
    "INITS",
    "PROTOCOLS",
    "LearnerSettings",
    "SettingsAccess",
    "SettingsError",
]
