"""``activepick predict``: pick particles on a folder of micrographs with a trained detector.

Streams (:mod:`activepick.batch`): micrographs are read a batch at a time and each
one's picks are written to ``<out>.parts/`` as it finishes; ``--resume`` skips the
finished ones; the combined output is written at the end. ``--workers``,
``--scheduler`` and ``--cluster`` run the same work on Dask (:mod:`activepick.cluster`).
Heavy imports (torch, dask, pandas) happen inside :func:`run`.
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import threading
import time
from pathlib import Path

from ..errors import ActivePickError, MicrographError
from ._args import at_least, fraction, positive

#: Seconds between progress lines when stderr is not a terminal (batch-job logs).
LOG_EVERY_S = 30.0
#: Confidence threshold of a trained model's picks when --threshold is not given.
DEFAULT_THRESHOLD = 0.3


def register(subparsers) -> None:
    """Add the ``predict`` subcommand."""
    p = subparsers.add_parser(
        "predict",
        help="pick particles with a trained detector",
        description="Predict particle picks on every micrograph of a folder and write them as "
        "coordinates (STAR carries the confidence as rlnAutopickFigureOfMerit). Picks of each "
        "micrograph are saved in <out>.parts/ as it finishes; --resume continues a stopped run.",
    )
    p.add_argument(
        "--model",
        required=True,
        help="checkpoint written by 'activepick train', or 'general' for the shipped general "
        "model (no training; needs --diameter)",
    )
    p.add_argument(
        "--diameter",
        type=positive,
        default=None,
        help="particle diameter in px, for the general model (a trained model keeps its own)",
    )
    p.add_argument("--micrographs", type=Path, help="folder of micrographs")
    p.add_argument(
        "--out",
        type=Path,
        help="coordinate file (or folder for per-micrograph formats)",
    )
    p.add_argument(
        "--format", dest="fmt", default=None, help="output format (default: from the extension)"
    )
    p.add_argument(
        "--threshold",
        type=fraction,
        default=None,
        help="minimum confidence (default: the general model's calibrated threshold from its "
        f"model card, {DEFAULT_THRESHOLD} for a trained model)",
    )
    p.add_argument(
        "--nms-iou",
        type=fraction,
        default=None,
        help="circle-IoU of NMS (default: the model's, 0.3)",
    )
    p.add_argument(
        "--batch-size",
        type=at_least(1),
        default=4,
        help="micrographs per forward pass (default: 4)",
    )
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--resume", action="store_true", help="skip micrographs already done")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.add_argument(
        "--keep-parts", action="store_true", help="keep <out>.parts/ after the combined output"
    )
    d = p.add_argument_group("Dask (needs napari-activepick[cluster])")
    where = d.add_mutually_exclusive_group()
    where.add_argument(
        "--workers", type=int, default=0, help="local Dask worker processes, one thread each"
    )
    where.add_argument("--scheduler", help="address of a running Dask scheduler to join")
    where.add_argument("--cluster", choices=("slurm", "pbs", "sge"), help="submit batch jobs")
    d.add_argument("--queue", help="queue / partition of the batch jobs")
    d.add_argument("--account", help="account / project charged for the batch jobs")
    d.add_argument("--cores", type=int, default=4, help="cores per job (default: 4)")
    d.add_argument("--memory", default="16GB", help="memory per job (default: 16GB)")
    d.add_argument("--walltime", default="01:00:00", help="per job (default: 01:00:00)")
    d.add_argument("--gpus", type=int, default=0, help="GPUs per job (default: 0)")
    d.add_argument("--jobs", type=int, default=1, help="batch jobs to submit (default: 1)")
    d.add_argument(
        "--dry-run", action="store_true", help="print the job script of --cluster and stop"
    )
    p.set_defaults(func=run)


def _job_options(args) -> dict:
    return dict(
        cores=args.cores,
        memory=args.memory,
        queue=args.queue,
        walltime=args.walltime,
        gpus=args.gpus,
        account=args.account,
    )


def _client(args):
    """A Dask client for the chosen mode, or None for in-process prediction."""
    from .. import cluster

    if args.workers:
        if args.workers < 1:
            raise ActivePickError(f"--workers must be at least 1, got {args.workers}")
        return cluster.local_client(args.workers)
    if args.scheduler:
        return cluster.connect(args.scheduler)
    if args.cluster:
        return cluster.jobqueue_client(args.cluster, jobs=args.jobs, **_job_options(args))
    return None


def _dask(args) -> bool:
    return bool(args.workers or args.scheduler or args.cluster)


def _worker_device(args) -> str:
    if args.device != "auto":
        return args.device
    if args.cluster:
        return "cuda" if args.gpus else "cpu"
    return "cpu" if args.workers else "auto"


def _rate_eta(info: dict) -> str:
    eta = info["eta"]
    if not math.isfinite(eta):
        return ""
    return f"{info['rate']:.2f} micrograph/s, {eta / 60:.1f} min left"


class _LogProgress:
    """Progress lines for logs (batch jobs, no terminal): every ``LOG_EVERY_S`` seconds
    and at the end, since tqdm draws nothing there."""

    def __init__(self) -> None:
        self.last = time.monotonic()

    def __call__(self, info: dict) -> None:
        now = time.monotonic()
        if now - self.last < LOG_EVERY_S and info["step"] < info["total"]:
            return
        self.last = now
        print(
            f"activepick predict: {info['step']}/{info['total']} micrographs; {_rate_eta(info)}",
            file=sys.stderr,
            flush=True,
        )


def _drive(gen, total: int) -> dict:
    """Run the batch generator with a progress bar (a terminal) or log lines (a batch
    job); returns its summary."""
    from tqdm import tqdm

    from ..progress import drive

    log = _LogProgress() if not sys.stderr.isatty() else None
    with tqdm(total=total, unit="micrograph", desc="predict", disable=None) as bar:

        def show(info: dict) -> None:
            bar.n = info["step"]
            if info["failed"]:
                tqdm.write(f"activepick predict: skipped: {info['failed']}", file=sys.stderr)
            bar.set_postfix_str(_rate_eta(info))
            bar.refresh()
            if log is not None:
                log(info)

        return drive(gen, show)


def _close(client) -> None:
    client.close()
    cluster = getattr(client, "cluster", None)
    if cluster is not None:
        cluster.close()


def _start_closing(client) -> threading.Thread | None:
    """Close ``client`` and the cluster it started (not a joined ``--scheduler``'s) in a
    thread; the caller joins it."""
    if client is None:
        return None
    thread = threading.Thread(target=_close, args=(client,), name="activepick-close-dask")
    thread.start()
    return thread


def load_model(model: str, diameter: float | None, device: str):
    """``(detector, checkpoint path, threshold)`` for ``--model``: ``"general"`` (the
    shipped model) or a checkpoint path. A general model (its sidecar says so) is set
    up for ``diameter`` px, which it needs, and brings its calibrated threshold; a
    trained model keeps its own diameter and refuses another one."""
    from ..detector import load_checkpoint
    from ..detector.general import general_for, general_model_path

    path = general_model_path() if model == "general" else Path(model)
    detector = load_checkpoint(path, device=device)
    if detector.meta.get("general"):
        if diameter is None:
            raise ActivePickError(
                f"--model {model}: the general model needs --diameter PX (the particle "
                "diameter in px of your micrographs)"
            )
        threshold = detector.meta.get("threshold") or DEFAULT_THRESHOLD
        return general_for(detector, diameter, path, device=device), path, float(threshold)
    if diameter is not None:
        raise ActivePickError(
            f"--diameter is for the general model only: {path} was trained for "
            f"{detector.config.diameter:g} px particles"
        )
    return detector, path, DEFAULT_THRESHOLD


def run(args: argparse.Namespace) -> int:
    if args.dry_run:
        if not args.cluster:
            raise ActivePickError("--dry-run prints the job script of --cluster; give --cluster")
        from ..cluster import job_script

        print(job_script(args.cluster, **_job_options(args)))
        return 0
    if args.micrographs is None or args.out is None:
        raise ActivePickError("--micrographs and --out are required")

    from ..batch import (
        done_names,
        iter_predict_batch,
        parts_folder,
        summary_line,
        write_combined,
    )
    from ..detector.checkpoint import check_trained
    from ..io.atomic import refuse_existing
    from ..io.formats import check_writable_names
    from ..io.micrograph import list_micrographs, micrograph_name

    refuse_existing(args.out, force=args.force)
    paths = list_micrographs(args.micrographs)
    if not paths:
        raise MicrographError(f"{args.micrographs}: no micrographs found")
    # before the work: a name the output cannot hold would lose every pick at the end
    names = [micrograph_name(p) for p in paths]
    check_writable_names(names, args.out, args.fmt, format_option="--format")
    parts = parts_folder(args.out)
    earlier = len(done_names(parts))
    if earlier and not (args.resume or args.force):
        raise ActivePickError(
            f"{parts} holds the picks of {earlier} micrograph(s) from an earlier run; pass "
            "--resume to continue it or --force to start over"
        )
    # in process: the model used; on Dask: a check that fails fast (workers load their own)
    detector, model_path, threshold = load_model(
        args.model, args.diameter, args.device if not _dask(args) else "cpu"
    )
    check_trained(detector, model_path)
    general = bool(detector.meta.get("general"))
    if args.threshold is not None:
        threshold = args.threshold
    client = _client(args)
    if client is not None:
        detector = None
    closing = None
    try:
        try:
            gen = iter_predict_batch(
                paths,
                parts,
                detector=detector,
                model=model_path,
                diameter=detector.config.diameter if general else None,
                threshold=threshold,
                nms_iou=args.nms_iou,
                batch_size=args.batch_size,
                resume=args.resume,
                client=client,
                device=_worker_device(args),
                threads=args.cores if args.cluster and args.gpus else 1,
                # CPU workers: one micrograph per task balances best; a GPU batches
                group_size=args.batch_size if _worker_device(args) == "cuda" else 1,
            )
            summary = _drive(gen, len(paths))
        finally:
            closing = _start_closing(client)
        if summary["failed"] and not summary["names"]:
            shutil.rmtree(parts, ignore_errors=True)
            raise MicrographError(
                f"{args.micrographs}: no micrograph could be read "
                f"({len(summary['failed'])} skipped); nothing written"
            )
        # written while the Dask workers shut down (seconds on a local cluster)
        picks, written = write_combined(parts, summary["names"], paths, args.out, args.fmt)
    finally:
        if closing is not None:
            closing.join()
    if not args.keep_parts:
        shutil.rmtree(parts, ignore_errors=True)
    print(f"{summary_line(summary, len(picks))}; wrote {len(written)} file(s) to {args.out}")
    return 0
