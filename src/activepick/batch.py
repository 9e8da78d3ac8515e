"""Streaming batch prediction over any number of micrographs, in process or on Dask.

Memory stays bounded: micrographs are read ``batch_size`` at a time (in process)
or one group per task (Dask), and each micrograph's picks are written as soon as
it finishes, atomically, to a *part* file ``<parts>/<name>.csv`` (the pick table
as CSV, ``x``/``y`` centres in px of the original micrograph, origin top-left).
No pick table of the whole data set is held while predicting. A part file means
"done": ``resume=True`` skips those micrographs, so a killed run finishes the rest
without duplicating picks. :func:`combine_parts` joins the parts at the end.

A micrograph that fails to read (truncated, corrupt, a stack) is reported in a
progress dict, skipped, and listed in the summary; it gets no part, so a later
``resume`` tries it again. A write that fails (a full disk) raises
:class:`~activepick.errors.ActivePickError` naming the file; the parts written so
far are kept.

Dask (optional extra ``napari-activepick[cluster]``): pass a
``distributed.Client``; each worker process loads the model once
(:func:`predict_group_task` keeps it per process) and runs torch on
``threads`` threads (:func:`activepick.cluster.tune_worker_process`). Each
micrograph's part comes back to the caller as CSV text, made on the worker, and the
caller writes it, so workers need to read the micrographs and the model but not the
output folder. :mod:`activepick.cluster` makes the clients.
"""

from __future__ import annotations

import errno
import json
import math
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Generator, Sequence
from pathlib import Path

import pandas as pd

from .errors import ActivePickError, Cancelled, MicrographError
from .io.atomic import atomic_open, atomic_write_text

#: Settings file in the parts folder; a resumed run must use the same settings.
SETTINGS_FILE = "settings.json"
#: Suffix of a part file (one per finished micrograph).
PART_SUFFIX = ".csv"
#: Tasks kept in flight per Dask worker (bounds the client's memory).
IN_FLIGHT_PER_WORKER = 2

_WORKER_MODEL: dict = {}
_WORKER_LOCK = threading.Lock()
#: Models loaded by this process in :func:`predict_group_task` (tests: once per worker).
_WORKER_LOADS = [0]
#: What :func:`activepick.cluster.tune_worker_process` set in this process (tests).
_WORKER_TUNING: dict = {}


def parts_folder(out: str | os.PathLike) -> Path:
    """The part folder of the output ``out``: ``<out>.parts`` beside it."""
    out = Path(out)
    return out.with_name(out.name + ".parts")


def part_path(parts: Path, name: str) -> Path:
    """Part file of micrograph ``name``."""
    return parts / f"{name}{PART_SUFFIX}"


def done_names(parts: str | os.PathLike) -> set[str]:
    """Micrographs that already have a part file (hidden temporary files ignored)."""
    parts = Path(parts)
    if not parts.is_dir():
        return set()
    return {
        p.name[: -len(PART_SUFFIX)]
        for p in parts.iterdir()
        if p.name.endswith(PART_SUFFIX) and not p.name.startswith(".")
    }


def _write_failed(path: Path, exc: OSError) -> ActivePickError:
    why = "disk full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
    return ActivePickError(
        f"{path}: cannot write ({why}); the micrographs finished so far are kept in "
        f"{path.parent}, free some space and rerun with --resume"
    )


def part_text(picks: pd.DataFrame) -> str:
    """The content of a part file: the pick table as CSV (header, no index)."""
    return picks.to_csv(index=False)


def write_part(parts: Path, name: str, picks: pd.DataFrame | str) -> Path:
    """Write one micrograph's picks atomically (an empty table marks it done too).

    ``picks`` is the pick table or its :func:`part_text` (what Dask workers return,
    so the client only writes bytes).
    """
    path = part_path(parts, name)
    text = picks if isinstance(picks, str) else part_text(picks)
    try:
        with atomic_open(path, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
    except OSError as exc:
        raise _write_failed(path, exc) from None
    return path


def read_part(path: Path) -> pd.DataFrame:
    """One part file back as a pick table (micrograph names kept as strings)."""
    from .io.picks import validate_picks

    table = pd.read_csv(path, dtype={"micrograph": str, "status": str, "time": str})
    return validate_picks(table, str(path))


def combine_parts(parts: str | os.PathLike, names: Sequence[str]) -> pd.DataFrame:
    """The pick table of ``names`` (in that order) from their part files."""
    from .io.picks import empty_picks

    parts = Path(parts)
    tables = [read_part(part_path(parts, n)) for n in names]
    tables = [t for t in tables if len(t)]
    return pd.concat(tables, ignore_index=True) if tables else empty_picks()


def prepare_parts(parts: Path, settings: dict, *, resume: bool) -> set[str]:
    """Make the parts folder; returns the names already done.

    Without ``resume`` old parts are removed. With it the stored settings must
    match ``settings`` (a resumed run may not mix two models or thresholds).
    """
    try:
        parts.mkdir(parents=True, exist_ok=True)
        stored = parts / SETTINGS_FILE
        if resume and stored.is_file():
            before = json.loads(stored.read_text(encoding="utf-8"))
            if before != settings:
                changed = sorted(k for k in settings if before.get(k) != settings[k])
                raise ActivePickError(
                    f"{parts}: cannot resume, the earlier run used other settings "
                    f"({', '.join(changed)}); rerun without --resume"
                )
        if not resume:
            for name in done_names(parts):
                part_path(parts, name).unlink()
        atomic_write_text(stored, json.dumps(settings, indent=1, sort_keys=True))
    except OSError as exc:
        raise _write_failed(parts / SETTINGS_FILE, exc) from None
    return done_names(parts) if resume else set()


def predict_group(
    detector,
    paths: Sequence[str | os.PathLike],
    *,
    threshold: float,
    nms_iou: float | None,
    batch_size: int,
) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
    """Read ``paths`` and predict them together.

    Returns ``({name: pick table}, {name: error message})``: a micrograph that
    fails to read is left out of the first and named in the second.
    """
    from .detector import predict_picks
    from .io.micrograph import micrograph_name, read_micrograph

    mics, failed = [], {}
    for p in paths:
        try:
            mics.append(read_micrograph(p))
        except MicrographError as exc:
            failed[micrograph_name(p)] = str(exc)
    tables: dict[str, pd.DataFrame] = {}
    if mics:
        picks = predict_picks(
            detector, mics, threshold=threshold, nms_iou=nms_iou, batch_size=batch_size
        )
        by_name = dict(tuple(picks.groupby("micrograph", sort=False))) if len(picks) else {}
        for m in mics:
            table = by_name.get(m.name, picks.iloc[:0])
            tables[m.name] = table.reset_index(drop=True)
    return tables, failed


def predict_group_task(
    model: str,
    paths: Sequence[str],
    *,
    device: str = "cpu",
    threads: int = 1,
    threshold: float = 0.3,
    nms_iou: float | None = None,
    batch_size: int = 4,
    diameter: float | None = None,
) -> tuple[dict[str, str], dict[str, str]]:
    """:func:`predict_group` on a Dask worker; the model is loaded once per process
    (a general model, set up for ``diameter`` px, when ``diameter`` is given).

    Returns ``({name: part_text(picks)}, {name: error message})``: the CSV is made
    here, in parallel, rather than by the client, which shares the CPUs with the
    workers of a local cluster and then only writes the text.
    """
    from .cluster import tune_worker_process
    from .detector import load_checkpoint
    from .detector.general import load_general_detector

    key = (str(model), os.path.getmtime(model), device, diameter)
    with _WORKER_LOCK:
        if _WORKER_MODEL.get("key") != key:
            _WORKER_TUNING.update(tune_worker_process(threads))
            _WORKER_MODEL.clear()
            if diameter is None:
                loaded = load_checkpoint(model, device=device)
            else:
                loaded = load_general_detector(diameter, path=model, device=device)
            _WORKER_MODEL.update(key=key, detector=loaded)
            _WORKER_LOADS[0] += 1
        detector = _WORKER_MODEL["detector"]
    tables, failed = predict_group(
        detector,
        paths,
        threshold=threshold,
        nms_iou=nms_iou,
        batch_size=batch_size,
    )
    return {name: part_text(table) for name, table in tables.items()}, failed


def _groups(paths: list[Path], size: int) -> list[list[Path]]:
    return [paths[i : i + size] for i in range(0, len(paths), size)]


def _run_local(detector, todo, settings):
    for group in _groups(todo, settings["batch_size"]):
        yield predict_group(
            detector,
            group,
            threshold=settings["threshold"],
            nms_iou=settings["nms_iou"],
            batch_size=settings["batch_size"],
        )


def _run_dask(client, todo, settings, model, device, threads, group_size):
    """Submit groups with a bounded number in flight; yield results as they finish."""
    from distributed import as_completed

    n_workers = max(1, len(client.scheduler_info().get("workers", {})))
    window = max(2, IN_FLIGHT_PER_WORKER * n_workers)
    groups = iter(_groups(todo, group_size))
    kwargs = dict(
        device=device,
        threads=threads,
        threshold=settings["threshold"],
        nms_iou=settings["nms_iou"],
        batch_size=settings["batch_size"],
        diameter=settings.get("diameter"),
    )

    names = {}

    def submit(group):
        future = client.submit(
            predict_group_task, str(model), [str(p) for p in group], pure=False, **kwargs
        )
        names[future.key] = [p.name for p in group]
        return future

    pending = as_completed([submit(g) for _, g in zip(range(window), groups, strict=False)])
    for future in pending:
        try:
            result = future.result()
        except ActivePickError:
            raise
        except Exception as exc:  # a worker died (KilledWorker), lost its files, ...
            raise ActivePickError(
                f"a Dask task on {', '.join(names[future.key])} failed "
                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); the "
                "micrographs finished so far are kept, rerun with --resume"
            ) from None
        names.pop(future.key, None)
        future.release()
        nxt = next(groups, None)
        if nxt is not None:
            pending.add(submit(nxt))
        yield result


def iter_predict_batch(
    paths: Sequence[str | os.PathLike],
    parts: str | os.PathLike,
    *,
    detector=None,
    model: str | os.PathLike | None = None,
    diameter: float | None = None,
    threshold: float = 0.3,
    nms_iou: float | None = None,
    batch_size: int = 4,
    resume: bool = False,
    client=None,
    device: str = "cpu",
    threads: int = 1,
    group_size: int | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Generator[dict, None, dict]:
    """Predict every micrograph of ``paths``, writing one part file each into ``parts``.

    In process with ``detector`` (a loaded :class:`~activepick.detector.Detector`),
    or on Dask with ``client`` and ``model`` (the checkpoint path the workers load;
    a general model with ``diameter``, the particle size it is set up for,
    on ``device`` with ``threads`` torch threads; ``group_size`` micrographs per
    task, default ``batch_size``). Yields
    ``{"stage": "predict", "step", "total", "micrograph", "rate" (micrographs/s),
    "eta" (s), "failed" (message or None), "skipped" (done earlier)}`` per
    micrograph; returns the summary ``{"names": [done, in input order], "failed":
    {name: message}, "skipped": int, "predicted": int, "seconds": float}``.
    ``should_stop()`` is checked between groups (raises ``Cancelled``; the parts
    written stay and ``resume`` continues from them).
    """
    from .io.micrograph import micrograph_name

    if detector is None and client is None:
        raise ValueError("iter_predict_batch: give a detector or a Dask client")
    if client is not None and model is None:
        raise ValueError("iter_predict_batch: a Dask client needs the model path")
    paths = [Path(p) for p in paths]
    names = [micrograph_name(p) for p in paths]
    if len(set(names)) != len(names):
        dup = sorted(n for n, c in Counter(names).items() if c > 1)
        raise MicrographError(f"micrograph names are not unique: {dup[:5]}")
    parts = Path(parts)
    settings = {
        "model": str(Path(model).resolve()) if model is not None else None,
        # a model retrained into the same file is another model
        "model_mtime": os.path.getmtime(model) if model and os.path.isfile(model) else None,
        "threshold": float(threshold),
        "nms_iou": None if nms_iou is None else float(nms_iou),
        "batch_size": int(batch_size),
    }
    if diameter is not None:  # a general model; absent otherwise, as in older parts folders
        settings["diameter"] = float(diameter)
    done = prepare_parts(parts, settings, resume=resume)
    todo = [p for p, n in zip(paths, names, strict=True) if n not in done]
    skipped = len(paths) - len(todo)
    total = len(paths)
    step = skipped
    if skipped:
        yield {"stage": "predict", "step": step, "total": total, "micrograph": None,
               "rate": 0.0, "eta": math.nan, "failed": None, "skipped": skipped}  # fmt: skip
    failed: dict[str, str] = {}
    started = time.perf_counter()
    if client is None:
        results = _run_local(detector, todo, settings)
    else:
        results = _run_dask(
            client, todo, settings, model, device, threads, group_size or batch_size
        )
    predicted = 0
    for tables, errors in results:
        for name, table in tables.items():
            write_part(parts, name, table)
        failed.update(errors)
        for name in list(tables) + list(errors):
            step += 1
            predicted += name in tables
            elapsed = time.perf_counter() - started
            rate = (step - skipped) / elapsed if elapsed > 0 else 0.0
            yield {
                "stage": "predict",
                "step": step,
                "total": total,
                "micrograph": name,
                "rate": rate,
                "eta": (total - step) / rate if rate > 0 else math.nan,
                "failed": errors.get(name),
                "skipped": skipped,
            }
        if should_stop is not None and should_stop():
            raise Cancelled(f"prediction stopped after {step} of {total} micrographs")
    finished = done_names(parts)
    return {
        "names": [n for n in names if n in finished],
        "failed": {n: failed[n] for n in names if n in failed},
        "skipped": skipped,
        "predicted": predicted,
        "seconds": time.perf_counter() - started,
    }


def write_combined(
    parts: str | os.PathLike,
    names: Sequence[str],
    paths: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    fmt: str | None = None,
) -> tuple[pd.DataFrame, list[Path]]:
    """Join the parts of ``names`` and write them to ``out`` (any coordinate format).

    Shapes for formats that need them come from the micrograph headers.
    Raises :class:`ActivePickError` naming the file on a failed write (the parts stay).
    """
    from .io.formats import write_coordinates
    from .io.micrograph import micrograph_name, read_shape

    picks = combine_parts(parts, names)
    wanted = set(names)
    shapes = {micrograph_name(p): read_shape(p) for p in paths if micrograph_name(p) in wanted}
    try:
        written = write_coordinates(picks, out, fmt, shapes=shapes)
    except OSError as exc:
        raise _write_failed(Path(out), exc) from None
    return picks, written


def summary_line(summary: dict, n_picks: int) -> str:
    """One line for the end of a run."""
    n = len(summary["names"])
    rate = summary["predicted"] / summary["seconds"] if summary["seconds"] > 0 else float("nan")
    line = (
        f"{n_picks} pick(s) on {n} micrograph(s) ({summary['predicted']} predicted at "
        f"{rate:.2f} micrograph/s, {summary['skipped']} done earlier)"
    )
    if summary["failed"]:
        line += f"; {len(summary['failed'])} failed to read: " + ", ".join(summary["failed"])
    return line
