"""``activepick session create``: make a session folder from the command line.

    activepick session create run1 --micrographs mics/ --diameter 64 --labels picks.star
    activepick round --session run1          # then rounds, headless or in the GUI

The session is what the GUI's *New session…* makes, through the same core call
(:meth:`activepick.active.workbench.Workbench.create_session`): the micrographs of a
folder (headers read now, pixels when a round needs them), the learner's settings
(``LearnerSettings`` defaults, ``--diameter``, and any setting by name with ``--set``),
and optionally the picks of a coordinate file as the first labels. torch and pandas
are imported only when the command runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import ActivePickError
from ._args import positive


def register(subparsers) -> None:
    """Add the ``session`` subcommand (and its ``create`` action)."""
    p = subparsers.add_parser(
        "session",
        help="create a session folder (micrographs, diameter, settings)",
        description="Create a picking session that 'activepick round' and the GUI open.",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    c = actions.add_parser(
        "create",
        help="create a session for a folder of micrographs",
        description="Create a session in DIR for the micrographs of a folder: settings from "
        "--diameter and --set, first labels from --labels. The GUI's New session... does the "
        "same.",
    )
    c.add_argument("folder", type=Path, metavar="DIR", help="session folder to create")
    c.add_argument(
        "--micrographs", required=True, type=Path, help="folder of micrographs (MRC, TIFF, PNG)"
    )
    c.add_argument(
        "--diameter", required=True, type=positive, help="particle diameter / box size in px"
    )
    c.add_argument(
        "--labels",
        type=Path,
        default=None,
        help="coordinate file or folder (any readable format) whose picks become the first labels",
    )
    c.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="any learner or detector setting, repeatable: strategy=entropy, review_k=30, "
        "train_steps=100, init=scratch, partial=true, arch=full, seed=1 (VALUE read as JSON, "
        "else as text; docs/session.md lists them)",
    )
    c.add_argument("--force", action="store_true", help="replace a session that DIR already holds")
    c.set_defaults(func=run_create)


def parse_settings(items: list[str]) -> dict:
    """``["review_k=30", "strategy=entropy"]`` -> ``{"review_k": 30, "strategy": "entropy"}``
    (values read as JSON, else kept as text)."""
    out = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            raise ActivePickError(f"--set {item!r}: give NAME=VALUE, e.g. review_k=30")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        out[name.strip()] = value
    return out


def run_create(args: argparse.Namespace) -> int:
    from ..active.settings import LearnerSettings, SettingsError
    from ..active.workbench import Workbench
    from ..io.lazy import LazyStack, lazy_micrographs
    from ..io.micrograph import list_micrographs
    from ..session import Session

    if Session.exists(args.folder) and not args.force:
        raise ActivePickError(
            f"{args.folder} already holds a session; open it (activepick round --session "
            f"{args.folder}) or pass --force to replace it"
        )
    changes = {"diameter": args.diameter, **parse_settings(args.settings)}
    paths = list_micrographs(args.micrographs)
    micrographs = lazy_micrographs(LazyStack(paths))  # headers only; refuses an unreadable one
    try:
        settings = LearnerSettings().replace(**changes)
        wb = Workbench.for_micrographs(micrographs, settings)  # checks the strategy
    except ActivePickError:
        raise
    except (TypeError, ValueError) as exc:  # a setting of a wrong type, an unknown strategy
        raise SettingsError(f"--set: {exc}") from None
    labels = 0
    if args.labels is not None:
        picks = wb.import_labels(args.labels)
        for line in picks.attrs.get("skipped", []):
            print(f"activepick session: warning: {line}", file=sys.stderr)
        labels = len(picks)
        if not labels:
            raise ActivePickError(
                f"{args.labels}: no picks on the micrographs of {args.micrographs}"
            )
    session = wb.create_session(args.folder, overwrite=args.force)
    folder = session.folder
    wb.close()
    print(
        f"created session {folder}: {len(paths)} micrograph(s), diameter {settings.diameter:g} px, "
        f"{labels} label(s), strategy {settings.strategy}; next: activepick round --session "
        f"{args.folder}"
    )
    return 0
