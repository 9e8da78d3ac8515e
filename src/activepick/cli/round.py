"""``activepick round``: one active-learning round, headless, on a session folder.

    activepick round --session run1                 # train -> predict -> queue the next K
    activepick round --session run1 --device cuda   # e.g. on a GPU node; reopen run1 in the GUI

It drives the same :class:`~activepick.active.workbench.Workbench` the napari widget
uses, so the GUI reopens the result (new model, predictions, review queue).
``--device`` applies to this run only; the session's settings keep theirs. torch
and pandas are imported only when the command runs.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path


def register(subparsers) -> None:
    """Add the ``round`` subcommand."""
    p = subparsers.add_parser(
        "round",
        help="run one active-learning round on a session folder",
        description="Train on the session's labels, predict on its micrographs and queue the "
        "next picks to review (the GUI's Next round, headless).",
    )
    p.add_argument("--session", required=True, type=Path, metavar="DIR", help="session folder")
    p.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default=None,
        help="device for this run (default: the session's setting)",
    )
    p.add_argument(
        "--what",
        choices=("round", "train", "predict"),
        default="round",
        help="train + predict + queue (default), or only one step",
    )
    p.add_argument(
        "--break-lock",
        action="store_true",
        help="open the session although a lock says another process holds it "
        "(only when that process is gone)",
    )
    p.set_defaults(func=run)


def _printer(started: float):
    last = {"stage": None, "t": 0.0}

    def show(info: dict) -> None:
        now = time.perf_counter()
        stage = info.get("stage")
        if stage == last["stage"] and now - last["t"] < 2.0:
            return  # one line per stage change, else every 2 s
        last.update(stage=stage, t=now)
        parts = [f"{k} {info[k]}" for k in ("epoch", "step", "total") if k in info]
        print(f"[{now - started:6.1f} s] {stage}: {', '.join(parts)}", file=sys.stderr)

    return show


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from ..active.workbench import Workbench
    from ..progress import drive
    from ..session import SessionWarning

    started = time.perf_counter()
    with warnings.catch_warnings():  # said below, once, as open_warnings
        warnings.simplefilter("ignore", SessionWarning)
        wb = Workbench.open(args.session, break_lock=args.break_lock)
    with wb:
        for line in wb.open_warnings:
            print(f"activepick round: warning: {line}", file=sys.stderr)
        learner = wb.learner
        if args.device is not None:
            learner.config = dataclasses.replace(learner.config, device=args.device)
        out = drive(wb.iter_round(what=args.what), _printer(started))
        entry = out["result"] or {}
        print(
            f"round {learner.round}: {entry.get('labels', 0)} particle labels, "
            f"{len(learner.predictions) if learner.predictions is not None else 0} predictions, "
            f"{len(learner.queue)} queued for review, T_opt {learner.t_opt:.2f} "
            f"({time.perf_counter() - started:.1f} s); session {wb.session.folder}"
        )
    return 0
