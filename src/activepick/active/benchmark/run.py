"""The benchmark loop: one :class:`~activepick.session.Session` per (strategy, seed, partial).

A run lives in ``out/runs/<strategy>__s<seed>__partial-<off|on>/``, an ordinary
session folder (the GUI can open it). The session holds everything a resume needs:
labels, rounds (detector, predictions, metrics), queue, and under the settings
key ``"benchmark"`` the run's identity, its initial truth rows and the decision
counts of every finished review step (``decisions``: round -> action -> count).

Round r (``learner.round`` = r trained rounds): train -> T_opt on validation ->
test metrics -> (unless last) predict -> select -> the oracle reviews -> the
decision counts are saved. A run killed mid-review is resumed by removing the
labels the interrupted review made (round r) and selecting again, which repeats
the same queue (selection is seeded by seed, round and select count).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ...io.atomic import atomic_write_text
from ...progress import drive
from ...session import Session
from ..engine import ActiveLearner
from ..settings import LearnerSettings
from .data import BenchmarkData, prepare_data
from .presets import (
    BASELINE,
    GENERAL,
    METRICS,
    PROTOCOL_KEYS,
    BenchmarkError,
    learner_kwargs,
    make_oracle,
    partial_modes,
)
from .report import plain_json, write_report

Progress = Callable[[dict], None] | None

#: Folder of the run sessions inside the output folder.
RUNS_DIR = "runs"
#: The settings of the benchmark in the output folder (protocol check on resume).
SETTINGS_FILE = "benchmark.json"
#: Key of the run record in each run session's settings.
RECORD_KEY = "benchmark"
#: The cost model: what each oracle action costs a person, in reviews
#: (docs/benchmarks/active_learning.md, "Cost model"). A decision on a queued pick, an
#: added particle and the simulated oracle's skip of a duplicate cost one each; marking a
#: micrograph's reviewed neighbourhoods complete costs one; a bulk confirmation costs one
#: per micrograph plus one per pick the person rejects or deselects among the confident
#: picks (``reject`` / ``skip`` rows), and the picks it accepts cost nothing more.
REVIEW_COST: dict[str, int] = {
    "accept": 1,
    "move": 1,
    "reject": 1,
    "add": 1,
    "skip": 1,
    "complete": 1,
    "confirm": 1,
    "confirmed": 0,
}
#: Decision actions counted (the keys of a review step's counts).
REVIEW_ACTIONS: tuple[str, ...] = tuple(REVIEW_COST)
#: Actions that make a particle label.
POSITIVE_ACTIONS: tuple[str, ...] = ("accept", "move", "add", "confirmed")
#: Most select + review batches of one label-budget round (guards against a stuck loop).
MAX_BATCHES = 1000


def run_key(strategy: str, seed: int, partial: bool) -> str:
    """The name of one run (strategy, seed, partial mode): its session folder under ``runs/``."""
    return f"{strategy}__s{seed}__partial-{'on' if partial else 'off'}"


def initial_indices(n_truth: int, fraction: float, seed: int) -> np.ndarray:
    """Rows of the training truth in the initial labelled set: a seeded random
    ``round(fraction x n_truth)`` (at least 1), sorted; identical for every strategy."""
    n0 = min(n_truth, max(1, round(fraction * n_truth)))
    rng = np.random.default_rng([int(seed), 20250120])
    return np.sort(rng.choice(n_truth, size=n0, replace=False))


def round_budget(settings: dict[str, Any], n_truth: int) -> int:
    """K of a round: queries (``budget = "reviews"``) or new particle labels (``"labels"``)."""
    if settings["budget"] == "reviews":
        return int(settings["review_k"])
    return max(1, round(float(settings["add"]) * n_truth))


def detector_config(settings: dict[str, Any], seed: int):
    """The DetectorConfig of every round of a run at ``seed`` (the detector's seed)."""
    from ...detector import DetectorConfig

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


def drain(gen: Generator, progress: Progress, **context: Any) -> Any:
    """Run a progress generator to its end (:func:`activepick.progress.drive`),
    forwarding stage changes; return its value."""
    last: list = [None]

    def forward(item: dict) -> None:
        stage = item.get("stage") if isinstance(item, dict) else None
        if progress and stage != last[0]:
            progress({**item, **context})
        last[0] = stage

    return drive(gen, forward)


# ---------------------------------------------------------------------------- one run
def stored_settings(settings: dict, strategy: str, seed: int, partial: bool, k: int) -> dict:
    """The learner settings a run's session stores (``ActiveLearner.from_session`` reads them)."""
    from ...constants import DEFAULT_MIN_CONFIDENCE

    min_conf = settings.get("min_confidence")
    return LearnerSettings(
        detector=detector_config(settings, seed),
        strategy=strategy,
        review_k=max(1, k),
        seed=seed,
        min_confidence=DEFAULT_MIN_CONFIDENCE if min_conf is None else float(min_conf),
        partial=partial,
        warm_start=bool(settings["warm_start"]),
        mc_passes=int(settings["mc_passes"]),
        predict_subset=None,  # every round predicts the whole pool (the protocol as written)
        **learner_kwargs(settings),
    ).to_dict()


def _open_run(
    settings: dict, data: BenchmarkData, strategy: str, seed: int, partial: bool, folder: Path, k
) -> tuple[ActiveLearner, Session]:
    """Open the run's session (created on first use) and the learner resumed from it."""
    if Session.exists(folder):
        session = Session.open(folder)
    else:
        stored = stored_settings(settings, strategy, seed, partial, k)
        record = {"strategy": strategy, "seed": int(seed), "partial": bool(partial)}
        session = Session.create(folder, data.train_paths(), {**stored, RECORD_KEY: record})
    learner = ActiveLearner.from_session(
        session,
        data.train,
        validation=(data.val, data.val_truth),
        test=(data.test, data.test_truth),
    )
    return learner, session


def _record(session: Session) -> dict:
    return dict(session.settings.get(RECORD_KEY) or {})


def _save_record(session: Session, record: dict) -> None:
    session.save_settings({**session.settings, RECORD_KEY: record})


def run_strategy(
    settings: dict,
    data: BenchmarkData,
    strategy: str,
    seed: int,
    partial: bool,
    out_dir: Path,
    progress: Progress = None,
) -> bool:
    """Run (or continue) one strategy at one seed in its session folder; False when it
    was finished already."""
    folder = Path(out_dir) / RUNS_DIR / run_key(strategy, seed, partial)
    n_truth = len(data.train_truth)
    k = round_budget(settings, n_truth)
    iterations = int(settings["iterations"])
    learner, session = _open_run(settings, data, strategy, seed, partial, folder, k)
    initial = initial_indices(n_truth, float(settings["initial"]), seed)
    record = _record(session)
    if learner.round == 0 and len(learner.labels) == 0:
        learner.add_labels(data.train_truth.iloc[initial], source="initial")
        record["initial"] = initial.tolist()
        record.setdefault("decisions", {})
        _save_record(session, record)
    oracle = make_oracle(settings, data.train_truth, labelled=initial.tolist())
    done = record.get("decisions", {})
    ctx = {"strategy": strategy, "seed": seed}
    r = learner.round
    if r >= iterations:
        return False
    if 1 <= r < iterations and str(r) not in done:
        _restart_review(learner, session, settings, r, progress, ctx)
        _review(learner, session, oracle, k, settings, r, progress, ctx)
    if settings["warm_start"] and r >= 1:
        learner.detector = session.load_detector(r)  # not a later round's orphan checkpoint
    for r in range(learner.round + 1, iterations + 1):
        last = r == iterations
        drain(learner.iter_round(predict=not last), progress, **ctx, round=r)
        if not last:
            _review(learner, session, oracle, k, settings, r, progress, ctx)
    return True


def _restart_review(
    learner: ActiveLearner, session: Session, settings, r: int, progress, ctx
) -> None:
    """Undo an interrupted review of round ``r``: remove its labels, predict if the
    round has no predictions yet, and queue the round's first batch again."""
    from ...errors import SessionError

    made = learner.labels.loc[learner.labels["round"] == r, "pick_id"].tolist()
    for pick_id in made:
        learner.remove_label(int(pick_id))
    try:
        have = session.load_predictions(r) is not None
    except SessionError:
        have = False
    if not have:
        drain(learner.iter_predict(), progress, **ctx, round=r)
    learner.select()


def _review(
    learner: ActiveLearner, session: Session, oracle, k: int, settings, r: int, progress, ctx
) -> dict[str, int]:
    """The review step after round ``r`` (the first batch is queued already).

    Budget ``reviews``: the oracle decides the queued batch once. Budget
    ``labels``: batches are reviewed (and selected again) until ``k`` new particle
    labels or no candidates are left. Saves and returns the decision counts.
    """
    counts = dict.fromkeys(REVIEW_ACTIONS, 0)
    added = 0
    for batch in range(MAX_BATCHES):
        if batch and len(learner.select(k)) == 0:
            break
        if settings["budget"] == "reviews":
            mics = learner.queue["micrograph"].astype(str).tolist()
            dec = learner.review_with(oracle)
            actions = settings.get("review_actions") or ()
            if actions:
                more = learner.review_regions_with(
                    oracle, mics, complete="complete" in actions, bulk="bulk" in actions
                )
                dec = pd.concat([dec, more], ignore_index=True)
        else:
            dec = learner.review_with(oracle, max_positives=k - added)
        for action, n in dec["action"].value_counts().items():
            counts[str(action)] = counts.get(str(action), 0) + int(n)
        added += int(dec["action"].isin(POSITIVE_ACTIONS).sum())
        if settings["budget"] == "reviews" or added >= k:
            break
    if progress:
        progress(
            {"stage": "review", **ctx, "round": r, "added": added, "reviews": review_cost(counts)}
        )
    record = _record(session)
    record.setdefault("decisions", {})[str(r)] = counts
    _save_record(session, record)
    return counts


def review_cost(counts: dict[str, int]) -> int:
    """Reviews of a step's decision counts (:data:`REVIEW_COST`; an unknown action costs 1)."""
    return int(sum(n * REVIEW_COST.get(action, 1) for action, n in counts.items()))


def run_baseline(
    settings: dict, data: BenchmarkData, seed: int, partial: bool, out_dir: Path, progress=None
) -> None:
    """ "Label everything": one round trained on every training particle (its session)."""
    folder = Path(out_dir) / RUNS_DIR / run_key(BASELINE, seed, partial)
    learner, session = _open_run(settings, data, "random", seed, partial, folder, 1)
    if learner.round >= 1:
        return False
    if len(learner.labels) == 0:
        learner.add_labels(data.train_truth, source="initial")
    drain(learner.iter_round(predict=False), progress, strategy=BASELINE, seed=seed)
    return True


def run_general(settings: dict, data: BenchmarkData, seed: int, out_dir: Path) -> dict | None:
    """The general model with 0 labels on the test set (review-budget presets); cached as JSON."""
    if settings["budget"] != "reviews":
        return None
    path = Path(out_dir) / RUNS_DIR / f"{GENERAL}__s{seed}.json"
    if path.exists():
        return json.loads(path.read_text(encoding="utf-8"))
    from ... import metrics
    from ...detector import iter_predict_picks
    from ...detector.general import load_general_detector  # type: ignore[import-not-found]

    det = load_general_detector(
        float(settings["diameter"]), arch=settings["arch"], device=settings["device"]
    )
    val = drain(iter_predict_picks(det, data.val, threshold=0.0), None)
    t_opt = float(metrics.find_t_opt(val, data.val_truth))
    test = drain(iter_predict_picks(det, data.test, threshold=0.0), None)
    partial = partial_modes(settings)[0]  # listed with the runs of the first partial mode
    row = {"strategy": GENERAL, "seed": seed, "partial": partial, "round": 0, "labels": 0}
    row.update(negatives=0, reviews=0, **metrics.summary(test, data.test_truth, t_opt=t_opt))
    atomic_write_text(path, json.dumps(plain_json(row), indent=1))
    return row


# ---------------------------------------------------------------------------- rows
def run_rows(settings: dict, data: BenchmarkData, out_dir: Path) -> list[dict]:
    """One rounds.csv row per finished round of every run session under ``out/runs``."""
    rows: list[dict] = []
    n_truth = len(data.train_truth)
    for seed in settings["seeds"]:
        for partial in partial_modes(settings):
            for strategy in [BASELINE, *settings["strategies"]]:
                folder = Path(out_dir) / RUNS_DIR / run_key(strategy, seed, partial)
                if not Session.exists(folder):
                    continue
                session = Session.open(folder, check_files=False)
                decisions = _record(session).get("decisions", {})
                for entry in session.history():
                    r = int(entry["round"])
                    if strategy == BASELINE:
                        reviews = n_truth  # the clicks to pick every pool particle by hand
                    else:
                        reviews = sum(review_cost(c) for q, c in decisions.items() if int(q) < r)
                    rows.append(_row(entry, strategy, seed, partial, reviews))
            general = Path(out_dir) / RUNS_DIR / f"{GENERAL}__s{seed}.json"
            if partial == partial_modes(settings)[0] and general.exists():
                rows.append(json.loads(general.read_text(encoding="utf-8")))
    return rows


def _row(entry: dict, strategy: str, seed: int, partial: bool, reviews: int) -> dict:
    metrics = entry.get("metrics") or {}
    row = {
        "strategy": strategy,
        "seed": int(seed),
        "partial": bool(partial),
        "round": int(entry["round"]),
        "labels": entry["labels"],
        "negatives": entry.get("negatives", 0),
        "reviews": int(reviews),
    }
    for m in METRICS:
        row[m] = metrics.get(m, entry.get(m) if m == "t_opt" else None)
    row.update(
        train_s=entry.get("train_s"), predict_s=entry.get("predict_s"), eval_s=entry.get("eval_s")
    )
    return row


def run_selected(settings: dict, data: BenchmarkData, out_dir: Path, partial: bool) -> dict:
    """{seed: {strategy: truth rows labelled after the initial set}} of the finished runs.

    Truth rows are found by matching each run's particle labels to the training
    truth (IoU > tau, one-to-one), so any oracle's labels are counted alike.
    """
    from ..oracle import SimulatedOracle

    matcher = SimulatedOracle(data.train_truth, tau=float(settings["tau"]))
    out: dict = {}
    for seed in settings["seeds"]:
        for strategy in settings["strategies"]:
            folder = Path(out_dir) / RUNS_DIR / run_key(strategy, seed, partial)
            if not Session.exists(folder):
                continue
            session = Session.open(folder, check_files=False)
            if len(session.history()) < int(settings["iterations"]):
                continue
            labels = session.load_labels()
            n_truth, fraction = len(data.train_truth), float(settings["initial"])
            initial = set(initial_indices(n_truth, fraction, seed).tolist())
            if labels is not None and len(labels):
                found = matcher.labelled_from(labels[labels["source"] != "initial"]) - initial
            else:
                found = set()
            out.setdefault(seed, {})[strategy] = found
    return out


# ---------------------------------------------------------------------------- entry point
def check_protocol(out_dir: Path, settings: dict[str, Any], *, final: bool) -> None:
    """Refuse an output folder holding a benchmark with other protocol settings.

    Before the data are prepared (``final`` False) settings that are still None
    (an automatic input size) are not compared; afterwards they are, and the
    settings are saved to ``benchmark.json``.
    """
    path = Path(out_dir) / SETTINGS_FILE
    if path.exists():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise BenchmarkError(f"{path}: cannot read the benchmark settings ({exc})") from None
        keys = [k for k in PROTOCOL_KEYS if final or settings.get(k) is not None]
        diff = [k for k in keys if old.get(k) != plain_json(settings.get(k))]
        if diff:
            raise BenchmarkError(
                f"{path}: this folder holds a benchmark with other settings ({', '.join(diff)}); "
                "use another --out or --no-resume"
            )
    if final:
        atomic_write_text(path, json.dumps(plain_json(settings), indent=1))


def write_outputs(out_dir: Path, settings: dict[str, Any], data, *, plots: bool = True) -> dict:
    """Write the tables, figures (with ``plots``), summary.json and report.md from the
    run sessions under ``out_dir`` (:func:`.report.write_report`); returns the summary."""
    rows = run_rows(settings, data, out_dir)
    selected = {p: run_selected(settings, data, out_dir, p) for p in partial_modes(settings)}
    return write_report(out_dir, settings, data, rows, selected, plots=plots)


def run_benchmark(
    settings: dict[str, Any],
    out_dir: str | Path,
    *,
    progress: Progress = None,
    resume: bool = True,
) -> dict[str, Any]:
    """Run the benchmark of ``settings`` (see ``benchmark_settings``) into ``out_dir``.

    Runs in seed order (the baseline and every strategy of the first seed first),
    so a stopped run has complete seeds. With ``resume`` (default) each run
    continues from its session; without it ``runs/`` (and ``data/`` when simulated
    there) is discarded first. The tables are rewritten after every run, and
    not at all when nothing was left to run. Returns
    the summary dict (plus ``wall_s``); the figures are drawn at the end.
    """
    import shutil

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not resume:  # start over: the run sessions, and simulated data of other settings
        shutil.rmtree(out_dir / RUNS_DIR, ignore_errors=True)
        if settings.get("data") is None:
            shutil.rmtree(out_dir / "data", ignore_errors=True)
        (out_dir / SETTINGS_FILE).unlink(missing_ok=True)
    check_protocol(out_dir, settings, final=False)
    data = prepare_data(settings, out_dir, progress)
    check_protocol(out_dir, settings, final=True)
    atomic_write_text(out_dir / "split.json", json.dumps(data.split, indent=1))
    t_start = time.perf_counter()
    new = False
    for seed in settings["seeds"]:
        run_general(settings, data, seed, out_dir)
        for partial in partial_modes(settings):
            new |= run_baseline(settings, data, seed, partial, out_dir, progress)
            for strategy in settings["strategies"]:
                if run_strategy(settings, data, strategy, seed, partial, out_dir, progress):
                    new = True
                    write_outputs(out_dir, settings, data, plots=False)
    summary_file = out_dir / "summary.json"
    if new or not summary_file.exists():
        summary = write_outputs(out_dir, settings, data)
    else:  # nothing new: the outputs on disk are current
        summary = json.loads(summary_file.read_text(encoding="utf-8"))
    summary["wall_s"] = time.perf_counter() - t_start
    return summary


__all__ = [
    "REVIEW_COST",
    "RUNS_DIR",
    "SETTINGS_FILE",
    "detector_config",
    "initial_indices",
    "review_cost",
    "run_benchmark",
    "run_key",
    "run_rows",
    "run_strategy",
    "write_outputs",
]
