"""``activepick predict``: pick particles on a folder of micrographs with a trained detector."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..errors import MicrographError

#: Micrographs read into memory at a time (4k x 4k float32 is 64 MB each).
READ_CHUNK = 16


def register(subparsers) -> None:
    """Add the ``predict`` subcommand."""
    p = subparsers.add_parser(
        "predict",
        help="pick particles with a trained detector",
        description="Predict particle picks on every micrograph of a folder and write them as "
        "coordinates (STAR carries the confidence as rlnAutopickFigureOfMerit).",
    )
    p.add_argument(
        "--model", required=True, type=Path, help="checkpoint written by 'activepick train'"
    )
    p.add_argument("--micrographs", required=True, type=Path, help="folder of micrographs")
    p.add_argument(
        "--out",
        required=True,
        type=Path,
        help="coordinate file (or folder for per-micrograph formats)",
    )
    p.add_argument(
        "--format", dest="fmt", default=None, help="output format (default: from the extension)"
    )
    p.add_argument(
        "--threshold", type=float, default=0.3, help="minimum confidence (default: %(default)s)"
    )
    p.add_argument(
        "--nms-iou", type=float, default=None, help="circle-IoU of NMS (default: the model's, 0.3)"
    )
    p.add_argument("--batch-size", type=int, default=4, help="default: %(default)s")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import pandas as pd
    from tqdm import tqdm

    from ..detector import load_checkpoint, predict_picks
    from ..io.formats import write_coordinates
    from ..io.micrograph import list_micrographs, read_micrograph
    from ..io.picks import empty_picks

    detector = load_checkpoint(args.model, device=args.device)
    paths = list_micrographs(args.micrographs)
    if not paths:
        raise MicrographError(f"{args.micrographs}: no micrographs found")
    tables, shapes = [], {}
    started = time.perf_counter()
    with tqdm(total=len(paths), unit="micrograph", desc="predict", disable=None) as bar:
        for i in range(0, len(paths), READ_CHUNK):
            mics = [read_micrograph(p) for p in paths[i : i + READ_CHUNK]]
            shapes.update({m.name: m.shape for m in mics})
            tables.append(
                predict_picks(
                    detector,
                    mics,
                    threshold=args.threshold,
                    nms_iou=args.nms_iou,
                    batch_size=args.batch_size,
                    progress=lambda _info: bar.update(1),
                )
            )
    picks = (
        pd.concat([t for t in tables if len(t)], ignore_index=True)
        if any(len(t) for t in tables)
        else empty_picks()
    )
    written = write_coordinates(picks, args.out, args.fmt, shapes=shapes)
    print(
        f"{len(picks)} pick(s) on {len(paths)} micrograph(s) in {time.perf_counter() - started:.1f} s; "
        f"wrote {len(written)} file(s) to {args.out}"
    )
    return 0
