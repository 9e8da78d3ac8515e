"""``activepick convert``: convert particle coordinates between formats."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..constants import COORDINATE_FORMATS as FORMATS
from ._args import positive


def register(subparsers) -> None:
    """Add the ``convert`` subcommand."""
    p = subparsers.add_parser(
        "convert",
        help="convert particle coordinates between formats",
        description="Read coordinates (a file or a folder of per-micrograph files) and write "
        "them in another format. Formats: " + ", ".join(FORMATS) + ". See docs/formats.md.",
    )
    p.add_argument("input", type=Path, metavar="IN", help="coordinate file or folder")
    p.add_argument("output", type=Path, metavar="OUT", help="coordinate file or folder")
    p.add_argument(
        "--from",
        dest="fmt_in",
        choices=list(FORMATS),
        default=None,
        help="input format (default: from the extension / content)",
    )
    p.add_argument(
        "--to",
        dest="fmt_out",
        choices=list(FORMATS),
        default=None,
        help="output format (default: from OUT's extension; a folder -> relion)",
    )
    p.add_argument(
        "--diameter",
        type=positive,
        default=None,
        metavar="PX",
        help="particle diameter / box size in px (needed for STAR, Topaz, cryoSPARC input)",
    )
    p.add_argument(
        "--micrographs",
        type=Path,
        default=None,
        metavar="DIR",
        help="folder of micrographs: checks names and bounds, needed for .cs output and --flip-y",
    )
    p.add_argument(
        "--prefix", default="", help="prepended to micrograph names in STAR / .cs output"
    )
    p.add_argument(
        "--suffix",
        default=".mrc",
        help="appended to micrograph names in STAR / .cs output (default: %(default)s)",
    )
    p.add_argument(
        "--file-suffix",
        default="",
        help="per-micrograph files are <name><file-suffix>.<ext>, e.g. _autopick",
    )
    p.add_argument(
        "--pixel-size",
        type=positive,
        default=None,
        metavar="A",
        help="Å/px: adds a RELION 3.1 optics block to STAR output",
    )
    p.add_argument(
        "--flip-y",
        action="store_true",
        help="input has its origin at the bottom: y -> H - 1 - y (needs --micrographs)",
    )
    p.add_argument(
        "--skip-errors", action="store_true", help="drop bad rows (reported) instead of stopping"
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="overwrite OUT when it exists (a folder: its old coordinate files are removed)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Read, report what was skipped, write; returns the exit code."""
    from ..io.atomic import refuse_existing
    from ..io.formats import read_coordinates, write_coordinates
    from ..io.micrograph import list_micrographs, micrograph_shapes

    refuse_existing(args.output, force=args.force)
    shapes = micrograph_shapes(list_micrographs(args.micrographs)) if args.micrographs else None
    picks = read_coordinates(
        args.input,
        args.fmt_in,
        diameter=args.diameter,
        shapes=shapes,
        flip_y=args.flip_y,
        on_error="skip" if args.skip_errors else "raise",
        format_option="--from",
    )
    for line in picks.attrs.get("skipped", []):
        print(f"skipped: {line}", file=sys.stderr)
    files = write_coordinates(
        picks,
        args.output,
        args.fmt_out,
        shapes=shapes,
        prefix=args.prefix,
        suffix=args.suffix,
        file_suffix=args.file_suffix,
        pixel_size=args.pixel_size,
    )
    n_mics = picks["micrograph"].nunique()
    print(
        f"read {len(picks)} pick(s) on {n_mics} micrograph(s) from {args.input} "
        f"({picks.attrs.get('format', '?')}); wrote {len(files)} file(s) to {args.output}"
    )
    return 0
