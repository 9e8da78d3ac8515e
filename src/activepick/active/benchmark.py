"""The active-learning benchmark (SPEC section 6): strategies x seeds x rounds.

Protocol (thesis, synthetic data): the training pool's ground truth holds N
particles; the initial labelled set is a seeded random ``initial`` fraction of
them (the same for every strategy at a seed); every round trains a detector on
the labels (from scratch unless ``warm_start``), sets T_opt on the validation
micrographs (F1-optimal) and scores the test micrographs (``metrics.summary``);
then, except after the last round, it predicts on the pool, lets the strategy
queue candidates and the :class:`~activepick.active.oracle.SimulatedOracle`
review them until K = round(``add`` x N) NEW PARTICLE LABELS were added (or the
candidates run out). K counts labels, as the thesis (70 per iteration, 630
after 9 rounds); the number of reviewed predictions (accepted + moved +
rejected + skipped) is reported as ``reviews``. ``iterations`` is the number of
trained rounds, so the last round trains on ``initial + (iterations - 1) x add``.
A baseline trains once per seed on every training particle (``strategy =
all-labels``).

Everything lands in one folder: ``rounds.csv`` / ``rounds.json`` (one row per
strategy, seed, partial mode and round), ``learning_<metric>.png``,
``distinct_particles.csv`` / ``.png``, ``labels_to_95.csv``, ``summary.json``,
``split.json``, and ``state.json`` + ``runs/`` (what a ``--resume`` needs: the
rows done and the label table after each round).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Generator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..constants import ORACLE_TAU_REAL, ORACLE_TAU_SYNTHETIC
from ..errors import ActivePickError
from ..io.atomic import atomic_open, atomic_write_text
from ..io.labels import validate_labels
from ..io.picks import validate_picks
from .engine import ActiveLearner

#: Name of the all-labels baseline in the outputs.
BASELINE = "all-labels"
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
#: by measurement to run every strategy for one seed in about 10 min on 2 CPU cores.
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
}

#: Defaults that are not part of a preset.
DEFAULTS: dict[str, Any] = {
    "preset": "quick",
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
}

#: Settings whose change makes an existing benchmark folder incompatible.
PROTOCOL_KEYS: tuple[str, ...] = (
    "n_train",
    "n_val",
    "n_test",
    "size",
    "particles",
    "diameter",
    "snr",
    "initial",
    "add",
    "iterations",
    "epochs",
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
)

Progress = Callable[[dict], None] | None


class BenchmarkError(ActivePickError):
    """Benchmark settings, data or an existing output folder do not fit."""


# ---------------------------------------------------------------------------- settings
def benchmark_settings(preset: str = "quick", **overrides: Any) -> dict[str, Any]:
    """The full settings dict: ``DEFAULTS``, then the preset, then ``overrides`` (None = keep).

    ``setting`` (``i5-a8.75`` ...) sets ``initial`` / ``add`` / 9 iterations and
    tau 0.3 unless given explicitly.
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
    settings.update({k: v for k, v in overrides.items() if v is not None})
    if settings["strategies"] in ("all", ["all"]):
        settings["strategies"] = list(ALL_STRATEGIES)
    if settings["partial"] not in ("off", "on", "both"):
        raise BenchmarkError(f"partial must be off, on or both, not {settings['partial']!r}")
    if not 0 < settings["initial"] <= 1 or not 0 <= settings["add"] <= 1:
        raise BenchmarkError("initial must lie in (0, 1] and add in [0, 1]")
    if int(settings["iterations"]) < 1:
        raise BenchmarkError("iterations must be >= 1")
    from .strategies import STRATEGIES

    unknown = [s for s in settings["strategies"] if s not in STRATEGIES]
    if unknown:
        raise BenchmarkError(f"unknown strategies {unknown}; choose from {sorted(STRATEGIES)}")
    settings["seeds"] = [int(s) for s in settings["seeds"]]
    for key in ("data", "truth"):
        if settings[key] is not None:
            settings[key] = str(Path(settings[key]).resolve())
    return settings


def partial_modes(settings: dict[str, Any]) -> list[bool]:
    """The partial-label modes a run covers: [False], [True] or [False, True]."""
    return {"off": [False], "on": [True], "both": [False, True]}[settings["partial"]]


# ---------------------------------------------------------------------------- data
@dataclasses.dataclass
class BenchmarkData:
    """The three splits: micrographs and their ground truth (pick tables)."""

    train: list
    train_truth: pd.DataFrame
    val: list
    val_truth: pd.DataFrame
    test: list
    test_truth: pd.DataFrame
    split: dict[str, list[str]]


def prepare_data(
    settings: dict[str, Any], out_dir: Path, progress: Progress = None
) -> BenchmarkData:
    """Simulate (or reuse) the synthetic data set, or split a user's folder.

    Synthetic: one ``simulate_dataset`` of ``n_train + n_val + n_test``
    micrographs (seed ``data_seed``, so one molecule for all splits) in
    ``out_dir/data`` (or the folder ``data``, reused when it holds
    ``ground_truth.csv``); in file order the first ``n_train`` micrographs train,
    the next ``n_val`` validate, the last ``n_test`` test. Real data (``truth``
    given): every micrograph of ``data`` with its ground truth, split by
    micrograph with ``split_seed``: 15% validation, 15% test (at least one
    each), the rest training.
    """
    if settings.get("truth"):
        return _real_data(settings)
    from ..io.micrograph import list_micrographs, read_micrograph

    root = Path(settings["data"]) if settings.get("data") else out_dir / "data"
    n_train, n_val, n_test = (int(settings[k]) for k in ("n_train", "n_val", "n_test"))
    total = n_train + n_val + n_test
    truth_file = root / "ground_truth.csv"
    if not truth_file.exists():
        if settings.get("data"):
            raise BenchmarkError(
                f"{truth_file}: missing; --data without --truth must be a folder written by "
                "activepick simulate (micrographs/ + ground_truth.csv)"
            )
        from ..simulate import simulate_dataset

        if progress:
            progress({"stage": "simulate", "step": 0, "total": total})
        simulate_dataset(
            root,
            n=total,
            particles=int(settings["particles"]),
            snr=float(settings["snr"]),
            size=int(settings["size"]),
            diameter=float(settings["diameter"]),
            seed=int(settings["data_seed"]),
        )
    paths = list_micrographs(root / "micrographs")
    if len(paths) < total:
        raise BenchmarkError(
            f"{root / 'micrographs'}: {len(paths)} micrograph(s), the splits need {total}"
        )
    table = pd.read_csv(
        truth_file, dtype={"micrograph": str, "time": str}, keep_default_na=False, na_values=[""]
    )
    if "time" in table:
        table["time"] = _text(table["time"])
    truth = validate_picks(table, str(truth_file))
    mics = [read_micrograph(p) for p in paths[:total]]
    parts = {
        "train": mics[:n_train],
        "val": mics[n_train : n_train + n_val],
        "test": mics[n_train + n_val :],
    }
    out = {}
    for split, chosen in parts.items():
        names = {m.name for m in chosen}
        out[split] = (chosen, truth[truth["micrograph"].isin(names)].reset_index(drop=True))
    return BenchmarkData(
        *out["train"],
        *out["val"],
        *out["test"],
        split={k: [m.name for m in v] for k, v in parts.items()},
    )


def _real_data(settings: dict) -> BenchmarkData:
    from ..io.formats import read_coordinates
    from ..io.micrograph import list_micrographs, read_micrograph

    if not settings.get("data"):
        raise BenchmarkError("--truth needs --data: the folder of micrographs")
    paths = list_micrographs(settings["data"])
    if len(paths) < 3:
        raise BenchmarkError(
            f"{settings['data']}: found {len(paths)} micrograph(s); need >= 3 to split"
        )
    truth = read_coordinates(settings["truth"], diameter=settings.get("diameter"))
    if settings.get("diameter"):
        truth["diameter"] = float(settings["diameter"])
    mics = [read_micrograph(p) for p in paths]
    names = [m.name for m in mics]
    rng = np.random.default_rng(int(settings["split_seed"]))
    order = rng.permutation(len(names))
    n_small = max(1, round(0.15 * len(names)))
    parts = {
        "val": order[:n_small],
        "test": order[n_small : 2 * n_small],
        "train": order[2 * n_small :],
    }
    out = {}
    for split, idx in parts.items():
        chosen = [mics[i] for i in sorted(idx)]
        keep = {m.name for m in chosen}
        t = truth[truth["micrograph"].isin(keep)].reset_index(drop=True)
        out[split] = (chosen, t)
    if len(out["train"][1]) == 0:
        raise BenchmarkError(
            f"{settings['truth']}: no ground-truth pick matches a training micrograph name in "
            f"{settings['data']}"
        )
    return BenchmarkData(
        *out["train"],
        *out["val"],
        *out["test"],
        split={k: [m.name for m in v[0]] for k, v in out.items()},
    )


# ---------------------------------------------------------------------------- state
def run_key(strategy: str, seed: int, partial: bool) -> str:
    """The name of one run (strategy, seed, partial mode) in the state and ``runs/``."""
    return f"{strategy}__s{seed}__partial-{'on' if partial else 'off'}"


def load_state(out_dir: Path, settings: dict[str, Any]) -> dict[str, Any]:
    """The resumable state of ``out_dir`` (empty when there is none).

    Raises :class:`BenchmarkError` when the folder holds a benchmark with other
    protocol settings (``PROTOCOL_KEYS``).
    """
    path = out_dir / "state.json"
    if not path.exists():
        return {"version": 1, "settings": settings, "rows": [], "runs": {}}
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise BenchmarkError(f"{path}: cannot read the benchmark state ({exc})") from None
    old = state.get("settings", {})
    diff = [k for k in PROTOCOL_KEYS if old.get(k) != settings.get(k)]
    if diff:
        raise BenchmarkError(
            f"{path}: this folder holds a benchmark with other settings ({', '.join(diff)}); "
            "use another --out or --no-resume"
        )
    state["settings"] = settings
    return state


def save_state(out_dir: Path, state: dict[str, Any]) -> None:
    """Write ``state.json`` atomically."""
    atomic_write_text(out_dir / "state.json", json.dumps(_plain(state), indent=1))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return None if math.isnan(v) else v
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def _text(column: pd.Series) -> pd.Series:
    """A text column read from CSV with empty cells (NaN, possibly float dtype) as ""."""
    return column.astype(object).where(column.notna(), "").astype(str)


def _write_csv(df: pd.DataFrame, path: Path) -> None:
    with atomic_open(path, "w", encoding="utf-8", newline="") as fh:
        df.to_csv(fh, index=False)


# ---------------------------------------------------------------------------- runs
def initial_indices(n_truth: int, fraction: float, seed: int) -> np.ndarray:
    """Rows of the training truth in the initial labelled set: a seeded random
    ``round(fraction x n_truth)`` (at least 1), sorted; identical for every strategy."""
    n0 = min(n_truth, max(1, round(fraction * n_truth)))
    rng = np.random.default_rng([int(seed), 20250120])
    return np.sort(rng.choice(n_truth, size=n0, replace=False))


def _detector_config(settings: dict[str, Any], seed: int):
    from ..detector import DetectorConfig

    return DetectorConfig(
        arch=settings["arch"],
        diameter=float(settings["diameter"] or 64.0),
        input_size=settings.get("input_size"),
        epochs=int(settings["epochs"]),
        batch_size=int(settings["batch_size"]),
        lr=float(settings["lr"]),
        seed=int(seed),
        device=settings.get("device", "auto"),
    )


def _drain(gen: Generator, progress: Progress, **context: Any) -> Any:
    """Run a progress generator to its end, forwarding stage changes; return its value."""
    last = None
    while True:
        try:
            item = next(gen)
        except StopIteration as stop:
            return stop.value
        stage = item.get("stage") if isinstance(item, dict) else None
        if progress and stage != last:
            progress({**item, **context})
        last = stage


def _row(entry: dict, *, strategy: str, seed: int, partial: bool, reviews: int) -> dict:
    metrics = entry.get("metrics") or {}
    row = {
        "strategy": strategy,
        "seed": seed,
        "partial": partial,
        "round": entry["round"],
        "labels": entry["labels"],
        "negatives": entry.get("negatives", 0),
        "reviews": reviews,
    }
    for m in METRICS:
        row[m] = metrics.get(m, entry.get(m) if m == "t_opt" else None)
    row.update(
        train_s=entry.get("train_s"),
        predict_s=entry.get("predict_s"),
        eval_s=entry.get("eval_s"),
    )
    return row


def _learner(settings, data: BenchmarkData, strategy: str, seed: int, partial: bool, k: int):
    from ..constants import DEFAULT_MIN_CONFIDENCE

    min_conf = settings.get("min_confidence")
    return ActiveLearner(
        data.train,
        _detector_config(settings, seed),
        strategy=strategy,
        batch_size=max(1, k),
        seed=seed,
        min_confidence=DEFAULT_MIN_CONFIDENCE if min_conf is None else float(min_conf),
        partial=partial,
        warm_start=bool(settings["warm_start"]),
        validation=(data.val, data.val_truth),
        test=(data.test, data.test_truth),
        mc_passes=int(settings["mc_passes"]),
    )


def run_baseline(
    settings: dict, data: BenchmarkData, seed: int, partial: bool, progress: Progress = None
) -> dict:
    """Train once on every training particle; returns its rounds.csv row (round 0)."""
    learner = _learner(settings, data, "random", seed, partial, 1)
    learner.add_labels(data.train_truth, source="initial")
    entry = _drain(learner.iter_round(predict=False), progress, strategy=BASELINE, seed=seed)
    return _row(entry, strategy=BASELINE, seed=seed, partial=partial, reviews=0)


def run_strategy(
    settings: dict,
    data: BenchmarkData,
    strategy: str,
    seed: int,
    partial: bool,
    out_dir: Path,
    state: dict,
    progress: Progress = None,
) -> None:
    """Run (or continue) one strategy at one seed; appends a row per round to ``state``.

    After every round the label table goes to ``runs/<key>/labels_round<r>.csv``
    (and the detector to ``detector_round<r>.pt`` with warm start) before
    ``state.json`` records the round, so a crash loses at most the round in flight.
    """
    from ..detector import load_checkpoint, save_checkpoint
    from .oracle import SimulatedOracle

    key = run_key(strategy, seed, partial)
    run_dir = out_dir / "runs" / key
    n_truth = len(data.train_truth)
    k = max(1, round(float(settings["add"]) * n_truth))
    iterations = int(settings["iterations"])
    info = state["runs"].setdefault(key, {"rounds_done": 0, "selected": [], "reviews": 0})
    learner = _learner(settings, data, strategy, seed, partial, k)
    initial = initial_indices(n_truth, float(settings["initial"]), seed)
    if info["rounds_done"] == 0:
        learner.add_labels(data.train_truth.iloc[initial], source="initial")
    else:
        r = info["rounds_done"]
        labels = pd.read_csv(
            run_dir / f"labels_round{r}.csv", keep_default_na=False, na_values=[""]
        )
        learner.labels = validate_labels(labels)
        learner.round = r
        learner._next_id = int(labels["pick_id"].max()) + 1 if len(labels) else 0
        if settings["warm_start"]:
            learner.detector = load_checkpoint(run_dir / f"detector_round{r}.pt")
    oracle = SimulatedOracle(
        data.train_truth,
        tau=float(settings["tau"]),
        mode=settings["oracle"],
        labelled=[*initial.tolist(), *info["selected"]],
    )
    for r in range(info["rounds_done"] + 1, iterations + 1):
        last = r == iterations
        ctx = {"strategy": strategy, "seed": seed, "round": r}
        entry = _drain(learner.iter_round(predict=not last), progress, **ctx)
        row = _row(entry, strategy=strategy, seed=seed, partial=partial, reviews=info["reviews"])
        if not last:
            added, reviews = _review_until(learner, oracle, k, info)
            info["reviews"] += reviews
            if progress:
                progress({"stage": "review", **ctx, "added": added, "reviews": reviews})
        _write_csv(learner.labels, run_dir / f"labels_round{r}.csv")
        if settings["warm_start"] and learner.detector is not None:
            save_checkpoint(learner.detector, run_dir / f"detector_round{r}.pt")
        info["rounds_done"] = r
        state["rows"].append(row)
        save_state(out_dir, state)


def _review_until(learner: ActiveLearner, oracle, k: int, info: dict) -> tuple[int, int]:
    """Queue and review batches until ``k`` new particle labels or no candidates are left.

    Every batch is a fresh :meth:`ActiveLearner.select` of ``k`` picks from the
    remaining candidates (reviewed picks and the regions of new labels drop
    out). Returns (labels added, predictions reviewed); the truth indices of the
    new labels are appended to ``info["selected"]``.
    """
    added = reviews = 0
    while added < k:
        if len(learner.queue) - learner.position <= 0:
            if len(learner.select(k)) == 0:
                break
        dec = learner.review_with(oracle, max_positives=k - added)
        if len(dec) == 0:
            learner.queue = learner.queue.iloc[:0]
            continue
        positive = dec["action"].isin(("accept", "move"))
        added += int(positive.sum())
        reviews += len(dec)
        info["selected"].extend(int(t) for t in dec.loc[positive, "truth_index"])
    return added, reviews


# ---------------------------------------------------------------------------- outputs
def rounds_table(state: dict[str, Any]) -> pd.DataFrame:
    """All finished rows as a DataFrame with ``ROUND_COLUMNS``."""
    df = pd.DataFrame(state["rows"], columns=list(ROUND_COLUMNS))
    return df.sort_values(["partial", "strategy", "seed", "round"], kind="stable").reset_index(
        drop=True
    )


def labels_to_95(rounds: pd.DataFrame, fraction: float = 0.95) -> pd.DataFrame:
    """Labels each strategy needs for its seed-mean F1 at T_opt to reach ``fraction`` of
    the all-labels baseline's seed-mean F1 (per partial mode). NaN when never reached."""
    rows = []
    for partial, df in rounds.groupby("partial"):
        base = df[df["strategy"] == BASELINE]["f1_topt"].astype(float)
        target = fraction * float(base.mean()) if len(base) else math.nan
        for strategy, g in df[df["strategy"] != BASELINE].groupby("strategy"):
            mean = g.groupby("round")[["labels", "f1_topt"]].mean().sort_index()
            hit = mean[mean["f1_topt"] >= target]
            rows.append(
                {
                    "strategy": strategy,
                    "partial": bool(partial),
                    "baseline_f1": target / fraction if len(base) else math.nan,
                    "target_f1": target,
                    "labels": float(hit["labels"].iloc[0]) if len(hit) else math.nan,
                    "round": int(hit.index[0]) if len(hit) else None,
                    "reached": bool(len(hit)),
                    "final_f1": float(mean["f1_topt"].iloc[-1]),
                }
            )
    return pd.DataFrame(
        rows,
        columns=[
            "strategy",
            "partial",
            "baseline_f1",
            "target_f1",
            "labels",
            "round",
            "reached",
            "final_f1",
        ],
    )


def distinct_particles(state: dict[str, Any], settings: dict, partial: bool) -> pd.DataFrame:
    """Seed-averaged distinct-particle matrix |L_A minus L_B| of the particles each
    strategy selected after the initial set, at the final round (finished runs only)."""
    from ..metrics import distinct_particle_matrix

    strategies = list(settings["strategies"])
    mats = []
    for seed in settings["seeds"]:
        sets = {}
        for s in strategies:
            info = state["runs"].get(run_key(s, seed, partial))
            if info and info["rounds_done"] == int(settings["iterations"]):
                sets[s] = set(info["selected"])
        if len(sets) >= 2:
            mats.append(distinct_particle_matrix(sets).astype(float))
    if not mats:
        return pd.DataFrame()
    order = [s for s in strategies if any(s in m.index for m in mats)]
    mean = pd.concat(mats).groupby(level=0).mean()
    return mean.reindex(index=order, columns=order)


def _pm(values: pd.Series, digits: int = 3) -> str:
    """``mean ± std`` over seeds (std omitted for one seed)."""
    v = values.astype(float).dropna()
    if len(v) == 0:
        return "-"
    if len(v) == 1:
        return f"{v.iloc[0]:.{digits}f}"
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}"


def report_markdown(
    rounds: pd.DataFrame,
    l95: pd.DataFrame,
    distinct: pd.DataFrame,
    order: Sequence[str] = (),
) -> str:
    """Markdown tables of a benchmark: F1 at T_opt per round, the final round, labels to
    95% of the all-labels F1, and the distinct-particle matrix (written as report.md).
    Strategies appear in ``order`` (then any others alphabetically)."""
    names = list(order) + sorted(set(rounds["strategy"]) - set(order))
    rank = {n: i for i, n in enumerate(names)}
    rounds = rounds.sort_values(
        ["partial", "strategy"], key=lambda c: c.map(rank) if c.name == "strategy" else c
    )
    lines: list[str] = []
    for partial, df in rounds.groupby("partial"):
        tag = " (partial labels)" if partial else ""
        runs = df[df["strategy"] != BASELINE]
        base = df[df["strategy"] == BASELINE]
        n_seeds = runs["seed"].nunique()
        rounds_idx = sorted(runs["round"].unique())
        labels = runs.groupby("round")["labels"].mean()
        lines += [
            f"F1 at T_opt on the test micrographs{tag}, mean ± std over {n_seeds} seed(s); "
            "columns: round (mean labels used)",
            "",
            "| strategy | " + " | ".join(f"{r} ({labels[r]:.0f})" for r in rounds_idx) + " |",
            "|---|" + "---|" * len(rounds_idx),
        ]
        for strategy, g in runs.groupby("strategy", sort=False):
            cells = [_pm(g[g["round"] == r]["f1_topt"]) for r in rounds_idx]
            lines.append(f"| {strategy} | " + " | ".join(cells) + " |")
        if len(base):
            lines.append(
                f"| {BASELINE} ({base['labels'].mean():.0f} labels) | {_pm(base['f1_topt'])} |"
                + " |" * (len(rounds_idx) - 1)
            )
        lines += ["", f"Final round{tag}:", ""]
        cols = ["labels", "reviews", "recall_topt", "precision_topt", "f1_topt", "f1_03"]
        cols += ["pr_auc", "mean_iou", "t_opt"]
        lines += ["| strategy | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
        last = runs[runs["round"] == runs.groupby("strategy")["round"].transform("max")]
        for strategy, g in last.groupby("strategy", sort=False):
            cells = [_pm(g[c], 0 if c in ("labels", "reviews") else 3) for c in cols]
            lines.append(f"| {strategy} | " + " | ".join(cells) + " |")
        for _, g in base.groupby("strategy"):
            cells = [_pm(g[c], 0 if c in ("labels", "reviews") else 3) for c in cols]
            lines.append(f"| {BASELINE} | " + " | ".join(cells) + " |")
        lines.append("")
    if len(l95):
        lines += [
            "Labels to reach 95% of the all-labels F1 (seed means):",
            "",
            "| strategy | partial | target F1 | labels | round |",
            "|---|---|---|---|---|",
        ]
        for rec in l95.itertuples():
            labels = f"{rec.labels:.0f}" if rec.reached else "not reached"
            rnd = rec.round if rec.reached else "-"
            lines.append(
                f"| {rec.strategy} | {rec.partial} | {rec.target_f1:.3f} | {labels} | {rnd} |"
            )
        lines.append("")
    if len(distinct):
        lines += [
            "Distinct particles |L_row minus L_col| selected after the initial set, final round, "
            "seed mean:",
            "",
            "| | " + " | ".join(distinct.columns) + " |",
            "|---|" + "---|" * len(distinct.columns),
        ]
        for name, row in distinct.iterrows():
            lines.append(f"| {name} | " + " | ".join(f"{v:.1f}" for v in row) + " |")
        lines.append("")
    return "\n".join(lines)


def write_outputs(
    out_dir: Path, state: dict[str, Any], settings: dict[str, Any], *, plots: bool = True
) -> dict:
    """Write rounds.csv/json, learning curves, distinct-particle matrices, labels_to_95.csv
    and summary.json from the state (the PNGs only with ``plots``); returns the summary."""
    from .plots import plot_distinct, plot_learning_curves

    rounds = rounds_table(state)
    _write_csv(rounds, out_dir / "rounds.csv")
    atomic_write_text(
        out_dir / "rounds.json", json.dumps(_plain(rounds.to_dict("records")), indent=1)
    )
    figures = plot_learning_curves(rounds, out_dir) if plots and len(rounds) else []
    l95 = labels_to_95(rounds) if len(rounds) else labels_to_95(rounds.iloc[:0])
    _write_csv(l95, out_dir / "labels_to_95.csv")
    distinct_files = []
    first_matrix = pd.DataFrame()
    for partial in partial_modes(settings):
        suffix = "_partial" if partial and settings["partial"] == "both" else ""
        mat = distinct_particles(state, settings, partial)
        csv = out_dir / f"distinct_particles{suffix}.csv"
        with atomic_open(csv, "w", encoding="utf-8", newline="") as fh:
            mat.to_csv(fh)
        if plots and len(mat):
            plot_distinct(mat, out_dir / f"distinct_particles{suffix}.png")
        distinct_files.append(csv.name)
        if not distinct_files[1:]:
            first_matrix = mat
    final = (
        rounds[rounds["strategy"] != BASELINE]
        .sort_values("round")
        .groupby(["partial", "strategy"])
        .apply(
            lambda g: g[g["round"] == g["round"].max()][
                list(METRICS) + ["labels", "reviews"]
            ].mean()
        )
        .reset_index()
        if len(rounds[rounds["strategy"] != BASELINE])
        else pd.DataFrame()
    )
    summary = {
        "settings": settings,
        "rows": len(rounds),
        "final_round_mean": final.to_dict("records"),
        "baseline": rounds[rounds["strategy"] == BASELINE][list(METRICS)]
        .mean(numeric_only=True)
        .to_dict(),
        "labels_to_95": l95.to_dict("records"),
        "plots": figures,
        "distinct": distinct_files,
    }
    atomic_write_text(out_dir / "summary.json", json.dumps(_plain(summary), indent=1))
    atomic_write_text(
        out_dir / "report.md",
        report_markdown(rounds, l95, first_matrix, settings["strategies"]),
    )
    return summary


# ---------------------------------------------------------------------------- entry point
def run_benchmark(
    settings: dict[str, Any],
    out_dir: str | Path,
    *,
    progress: Progress = None,
    resume: bool = True,
) -> dict[str, Any]:
    """Run the benchmark of ``settings`` (see :func:`benchmark_settings`) into ``out_dir``.

    Runs in seed order (all strategies and the baseline of seed 0 first), so a
    stopped run has complete seeds. With ``resume`` (default) finished rounds in
    ``out_dir/state.json`` are skipped; without it the state is discarded.
    Tables are rewritten after every finished run, figures after every seed;
    when nothing was left to run the outputs are not rewritten. Returns the
    summary dict (plus ``wall_s``).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not resume and (out_dir / "state.json").exists():
        (out_dir / "state.json").unlink()
    state = load_state(out_dir, settings)
    data = prepare_data(settings, out_dir, progress)
    atomic_write_text(out_dir / "split.json", json.dumps(data.split, indent=1))
    t_start = time.perf_counter()
    rows_at_start = len(state["rows"])
    for i, seed in enumerate(settings["seeds"]):
        rows_before = len(state["rows"])
        for partial in partial_modes(settings):
            base_key = run_key(BASELINE, seed, partial)
            if base_key not in state["runs"]:
                row = run_baseline(settings, data, seed, partial, progress)
                state["rows"].append(row)
                state["runs"][base_key] = {"rounds_done": 1, "selected": [], "reviews": 0}
                save_state(out_dir, state)
            for strategy in settings["strategies"]:
                info = state["runs"].get(run_key(strategy, seed, partial))
                if info and info["rounds_done"] >= int(settings["iterations"]):
                    continue
                run_strategy(settings, data, strategy, seed, partial, out_dir, state, progress)
                write_outputs(out_dir, state, settings, plots=False)
        if i < len(settings["seeds"]) - 1 and len(state["rows"]) > rows_before:
            write_outputs(out_dir, state, settings)  # figures of the seeds done so far
    summary_file = out_dir / "summary.json"
    if len(state["rows"]) > rows_at_start or not summary_file.exists():
        summary = write_outputs(out_dir, state, settings)
    else:  # nothing new: the outputs on disk are current
        summary = json.loads(summary_file.read_text(encoding="utf-8"))
    summary["wall_s"] = time.perf_counter() - t_start
    return summary


__all__ = [
    "ALL_STRATEGIES",
    "BASELINE",
    "PRESETS",
    "REAL_SETTINGS",
    "BenchmarkError",
    "benchmark_settings",
    "initial_indices",
    "labels_to_95",
    "prepare_data",
    "run_benchmark",
    "run_key",
    "write_outputs",
]
