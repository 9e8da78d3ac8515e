"""Benchmark presets and settings: ``quick``, ``thesis`` (SPEC section 6) and ``hitl``.

A settings dict is ``DEFAULTS``, then the preset, then the user's overrides
(:func:`benchmark_settings`). Two budget rules exist:

- ``budget = "labels"`` (quick, thesis): each round adds K = round(``add`` x N)
  new particle labels, however many reviews that takes (the thesis's rule).
- ``budget = "reviews"`` (hitl): each round the strategy queues ``review_k``
  picks and the oracle reviews them once (particle-level queries, as in the
  GUI); labels follow from the decisions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...constants import ORACLE_TAU_REAL, ORACLE_TAU_SYNTHETIC
from ...errors import ActivePickError

#: Name of the all-labels ("label everything") baseline in the outputs.
BASELINE = "all-labels"
#: Name of the general model with no labels (the hitl preset's baseline).
GENERAL = "general-0"
#: The strategy the others are compared with.
REFERENCE = "random"
#: The strategies ``--strategies all`` runs: the five thesis measures, the diversity-aware
#: boundary distance and TTA disagreement (MC dropout is available by name).
ALL_STRATEGIES: tuple[str, ...] = (
    "random",
    "low_confidence",
    "entropy",
    "norm_conf_entropy",
    "boundary_distance",
    "diverse_boundary",
    "tta",
)
#: Metrics written per round (keys of ``metrics.summary``).
METRICS: tuple[str, ...] = (
    "recall_topt",
    "precision_topt",
    "f1_topt",
    "recall_03",
    "precision_03",
    "f1_03",
    "pr_auc",
    "mean_iou",
    "t_opt",
)
#: Columns of rounds.csv.
ROUND_COLUMNS: tuple[str, ...] = (
    "strategy",
    "seed",
    "partial",
    "round",
    "labels",
    "negatives",
    "reviews",
    *METRICS,
    "train_s",
    "predict_s",
    "eval_s",
)

#: Real-data settings of the thesis: (initial fraction, added fraction per round).
REAL_SETTINGS: dict[str, tuple[float, float]] = {
    "i5-a8.75": (0.05, 0.0875),
    "i15-a7.5": (0.15, 0.075),
    "i25-a6.25": (0.25, 0.0625),
}

#: Presets. ``thesis`` is the full synthetic protocol (GPU-sized); ``quick`` was sized
#: by measurement to run every strategy for one seed in about 10 min on 2 CPU cores;
#: ``hitl`` (docs/benchmarks/active_learning.md, "The hitl preset") was sized to run
#: its 4 strategies x 6 paired seeds in under 60 min on 2 CPU cores.
PRESETS: dict[str, dict[str, Any]] = {
    "quick": {
        "n_train": 8,
        "n_val": 2,
        "n_test": 4,
        "size": 256,
        "particles": 12,
        "diameter": 32.0,
        "snr": 1.0,
        "initial": 0.1,
        "add": 0.1,
        "iterations": 5,
        "epochs": 20,
        "arch": "light",
        "input_size": 256,
        "batch_size": 2,
        "lr": 1e-3,
        "tau": 0.5,
    },
    "thesis": {
        "tau": ORACLE_TAU_SYNTHETIC,
        "n_train": 70,
        "n_val": 10,
        "n_test": 10,
        "size": 1024,
        "particles": 40,
        "diameter": 64.0,
        "snr": 0.05,
        "initial": 0.025,
        "add": 0.025,
        "iterations": 9,
        "epochs": 10,
        "arch": "full",
        "input_size": 1024,
        "batch_size": 4,
        "lr": 1e-3,
    },
    "hitl": {
        "budget": "reviews",
        "simulation": "mixed",
        "partial": "on",  # supervise what was reviewed (the product protocol's rule)
        "strategies": ["random", "low_confidence", "boundary_distance", "diverse_boundary"],
        "seeds": [0, 1, 2, 3, 4, 5],
        "n_train": 32,
        "n_val": 6,
        "n_test": 12,
        "size": 256,
        "particles": 10,  # wanted particles per micrograph: 320 in the pool
        # two particle sizes (px); the detector's anchor ``diameter`` sits between them
        "diameters": [26.0, 36.0],
        "diameter": 32.0,
        "snr_range": [0.2, 1.0],  # log-uniform per micrograph
        "distractors_max": 4,  # ice / aggregate blobs per micrograph, uniform 0..max
        "gradient_max": 2.0,  # background ramp (noise std), uniform 0..max
        # decoys: particles of another, half-size molecule that the user does not want
        # (fragments, a contaminant), uniform 0..max per micrograph. The general model
        # picks them: at 0 labels F1 0.84, PR-AUC 0.81 on this pool (data seed 11);
        # docs/benchmarks/active_learning.md, "The hitl preset", has the measurements
        "decoys_max": 16,
        "decoy_scale": 0.5,
        "data_seed": 11,
        "initial": 0.02,  # of the pool's particles: 6 of 320
        "add": 0.0,  # unused with budget "reviews"
        "review_k": 40,  # queries per round
        "iterations": 9,  # trained rounds: 8 review rounds, 320 queries (+ adds)
        "epochs": 6,  # unused: rounds fine-tune for train_steps
        "train_steps": 100,  # fine-tuning steps (batch 2) per round from the general model
        "arch": "light",
        "input_size": 256,
        "batch_size": 2,
        "lr": 1e-3,
        "tau": 0.5,
    },
}

#: Defaults that are not part of a preset.
DEFAULTS: dict[str, Any] = {
    "preset": "quick",
    "budget": "labels",
    "simulation": "uniform",
    "strategies": list(ALL_STRATEGIES),
    "seeds": [0, 1, 2],
    "data": None,
    "truth": None,
    "setting": None,
    "tau": ORACLE_TAU_SYNTHETIC,
    "oracle": "optimal",
    "partial": "off",
    "warm_start": False,
    "data_seed": 1000,
    "split_seed": 0,
    "device": "auto",
    "mc_passes": 8,
    "min_confidence": None,  # None = constants.DEFAULT_MIN_CONFIDENCE
    "review_k": None,
    "train_steps": None,
    "decoys_max": 0,
    "decoy_scale": 1.0,
    # cheaper review actions of the simulated person (review budget only; None = none):
    # "complete" (mark the reviewed neighbourhoods of a micrograph complete, after adding
    # their missed particles) and "bulk" (confirm a micrograph's confident picks at once)
    "review_actions": None,
    # real data: a JSON file {"train": [names], "test": [names]} (optional "val"); None =
    # a seeded 70 / 15 / 15 split by micrograph
    "split": None,
    # real data: cut every micrograph into tiles of this many px (a tile keeps its
    # micrograph's split): a training step then costs a tile's pixels, not a micrograph's
    "tile": None,
}
#: The cheaper review actions (``review_actions``), see :mod:`activepick.active.regions`.
REVIEW_ACTIONS_KNOWN: tuple[str, ...] = ("complete", "bulk")

#: Settings whose change makes an existing benchmark folder incompatible.
PROTOCOL_KEYS: tuple[str, ...] = (
    "budget",
    "simulation",
    "n_train",
    "n_val",
    "n_test",
    "size",
    "particles",
    "diameter",
    "diameters",
    "snr",
    "snr_range",
    "distractors_max",
    "gradient_max",
    "decoys_max",
    "decoy_scale",
    "initial",
    "add",
    "review_k",
    "iterations",
    "epochs",
    "train_steps",
    "arch",
    "input_size",
    "batch_size",
    "lr",
    "data",
    "truth",
    "tau",
    "oracle",
    "warm_start",
    "data_seed",
    "split_seed",
    "review_actions",
    "split",
    "tile",
)

#: Detector keys that ``--data --truth`` takes from ``activepick train``'s defaults
#: (``DetectorConfig()``, input size from :func:`~activepick.detector.config.auto_input_size`)
#: unless given on the command line (quick and hitl; the thesis preset keeps its own).
TRAIN_DEFAULT_KEYS: tuple[str, ...] = ("arch", "epochs", "batch_size", "lr", "input_size")


class BenchmarkError(ActivePickError):
    """Benchmark settings, data or an existing output folder do not fit."""


def benchmark_settings(preset: str = "quick", **overrides: Any) -> dict[str, Any]:
    """The full settings dict: ``DEFAULTS``, then the preset, then ``overrides`` (None = keep).

    ``setting`` (``i5-a8.75`` ...) sets ``initial`` / ``add`` / 9 iterations and
    tau 0.3 unless given explicitly. With ``truth`` (real data) and a preset other
    than ``thesis``, the detector settings not given in ``overrides`` are those of
    ``activepick train`` (``input_size`` None = automatic, fixed by
    :func:`~activepick.active.benchmark.data.prepare_data`).
    """
    if preset not in PRESETS:
        raise BenchmarkError(f"unknown preset {preset!r}; choose from {sorted(PRESETS)}")
    settings = {**DEFAULTS, **PRESETS[preset], "preset": preset}
    setting = overrides.get("setting")
    if setting is not None:
        if setting not in REAL_SETTINGS:
            raise BenchmarkError(
                f"unknown setting {setting!r}; choose from {sorted(REAL_SETTINGS)}"
            )
        settings["initial"], settings["add"] = REAL_SETTINGS[setting]
        settings["iterations"], settings["tau"] = 9, ORACLE_TAU_REAL
    if overrides.get("truth") is not None and preset != "thesis":
        from ...detector import DetectorConfig

        train = DetectorConfig()
        for key in TRAIN_DEFAULT_KEYS:
            settings[key] = getattr(train, key)
        settings["simulation"] = "none"
    settings.update({k: v for k, v in overrides.items() if v is not None})
    if settings["strategies"] in ("all", ["all"]):
        settings["strategies"] = list(ALL_STRATEGIES)
    _check(settings)
    settings["seeds"] = [int(s) for s in settings["seeds"]]
    for key in ("data", "truth", "split"):
        if settings[key] is not None:
            settings[key] = str(Path(settings[key]).resolve())
    return settings


def _check(settings: dict[str, Any]) -> None:
    from ..strategies import STRATEGIES

    if settings["partial"] not in ("off", "on", "both"):
        raise BenchmarkError(f"partial must be off, on or both, not {settings['partial']!r}")
    if not 0 < settings["initial"] <= 1 or not 0 <= settings["add"] <= 1:
        raise BenchmarkError("initial must lie in (0, 1] and add in [0, 1]")
    if int(settings["iterations"]) < 1:
        raise BenchmarkError("iterations must be >= 1")
    if settings["budget"] not in ("labels", "reviews"):
        raise BenchmarkError(f"budget must be labels or reviews, not {settings['budget']!r}")
    if settings["budget"] == "reviews" and not int(settings["review_k"] or 0) >= 1:
        raise BenchmarkError("a review budget needs review_k >= 1 queries per round")
    unknown = [s for s in settings["strategies"] if s not in STRATEGIES]
    if unknown:
        raise BenchmarkError(f"unknown strategies {unknown}; choose from {sorted(STRATEGIES)}")
    if len(set(settings["strategies"])) != len(settings["strategies"]):
        raise BenchmarkError(f"strategies listed twice: {settings['strategies']}")
    if len(set(settings["seeds"])) != len(settings["seeds"]):
        raise BenchmarkError(f"seeds listed twice: {settings['seeds']}")
    actions = settings.get("review_actions")
    if actions is not None:
        unknown = sorted(set(actions) - set(REVIEW_ACTIONS_KNOWN))
        if unknown:
            raise BenchmarkError(
                f"unknown review action(s) {unknown}; choose from {', '.join(REVIEW_ACTIONS_KNOWN)}"
            )
        if actions and settings["budget"] != "reviews":
            raise BenchmarkError("review actions need a review budget (the hitl preset)")
        settings["review_actions"] = [a for a in REVIEW_ACTIONS_KNOWN if a in actions] or None


def partial_modes(settings: dict[str, Any]) -> list[bool]:
    """The partial-label modes a run covers: [False], [True] or [False, True]."""
    return {"off": [False], "on": [True], "both": [False, True]}[settings["partial"]]


def learner_kwargs(settings: dict[str, Any]) -> dict[str, Any]:
    """The protocol, init and step budget of a preset's learners (SPEC section 3a)."""
    if settings["budget"] == "reviews":
        return {
            "protocol": "product",
            "init": "general",
            "train_steps": int(settings["train_steps"]),
        }
    # quick / thesis keep the thesis protocol exactly: from scratch (or warm start),
    # trained for ``epochs``, not a step budget
    return {"protocol": "thesis", "init": "scratch", "train_steps": None}


def make_oracle(settings: dict[str, Any], truth, labelled=()):
    """The oracle of a run: the human-like :class:`~activepick.active.oracle.HumanOracle`
    for a review budget (hitl), else the thesis :class:`~activepick.active.oracle.SimulatedOracle`."""
    if settings["budget"] == "reviews":
        from ..oracle import HUMAN_REGION_DIAMETERS, HumanOracle
        from ..regions import REGION_DIAMETERS

        # a person who marks reviewed neighbourhoods complete adds the missed particles of
        # exactly those neighbourhoods (active.regions); else those within 2 diameters
        complete = "complete" in (settings.get("review_actions") or ())
        region = REGION_DIAMETERS if complete else HUMAN_REGION_DIAMETERS
        return HumanOracle(truth, labelled=labelled, region=region)
    from ..oracle import SimulatedOracle

    return SimulatedOracle(
        truth, tau=float(settings["tau"]), mode=settings["oracle"], labelled=labelled
    )
