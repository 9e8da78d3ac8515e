"""``activepick train``: train a detector on a folder of micrographs and a coordinate file."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..errors import CoordinateError, MicrographError

#: How many unmatched names the report lists before "...".
_MAX_LISTED = 10


def register(subparsers) -> None:
    """Add the ``train`` subcommand."""
    from ..detector.budget import (
        FINETUNE_BATCH,
        FINETUNE_CROP,
        MAX_STEPS,
        MIN_STEPS,
        STEPS_PER_LABEL,
    )
    from ..detector.config import ARCHITECTURES, FINETUNE_LR, DetectorConfig

    d = DetectorConfig()
    p = subparsers.add_parser(
        "train",
        help="train a particle detector",
        description="Train a detector (light or full PhosaurusNet) on micrographs and picked "
        "coordinates; micrographs are matched to coordinates by file stem.",
    )
    p.add_argument(
        "--micrographs", required=True, type=Path, help="folder of micrographs (MRC, TIFF, PNG)"
    )
    p.add_argument(
        "--coords", required=True, type=Path, help="coordinate file or folder (any readable format)"
    )
    p.add_argument(
        "--format", dest="fmt", default=None, help="coordinate format (default: guessed)"
    )
    p.add_argument(
        "--diameter", required=True, type=float, help="particle diameter / box size in px"
    )
    p.add_argument(
        "--arch", choices=ARCHITECTURES, default=d.arch, help="network (default: %(default)s)"
    )
    p.add_argument(
        "--width",
        type=float,
        default=None,
        help="channel scale of the light network (default 0.25)",
    )
    p.add_argument(
        "--epochs",
        type=int,
        default=None,
        help=f"passes over the data when training from scratch without --steps "
        f"(default: {d.epochs})",
    )
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help="optimiser steps (replaces --epochs; default with --init general or a "
        f"checkpoint: {MIN_STEPS} + {STEPS_PER_LABEL:g} per label, at most {MAX_STEPS})",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help=f"default: {d.batch_size} micrographs from scratch, {FINETUNE_BATCH} crops of "
        f"{FINETUNE_CROP} px fine-tuning",
    )
    p.add_argument(
        "--lr",
        type=float,
        default=None,
        help=f"Adam learning rate (default: {d.lr} from scratch, {FINETUNE_LR} fine-tuning)",
    )
    p.add_argument(
        "--input-size",
        type=int,
        default=None,
        help="long side of the network input (default: from --diameter)",
    )
    p.add_argument("--seed", type=int, default=d.seed, help="default: %(default)s")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument(
        "--init",
        default="general",
        metavar="general|scratch|PATH",
        help="start from the shipped general model (default), from scratch, or fine-tune a "
        "checkpoint",
    )
    p.add_argument(
        "--partial",
        action="store_true",
        help="the coordinate file is incomplete: supervise only around the picks (unpicked "
        "particles are not taught as background)",
    )
    p.add_argument("--out", required=True, type=Path, help="checkpoint to write (plus <out>.json)")
    p.add_argument(
        "--force", action="store_true", help="overwrite --out (and <out>.json) when it exists"
    )
    p.set_defaults(func=run)


def _listed(names) -> str:
    names = sorted(names)
    more = f", ... ({len(names) - _MAX_LISTED} more)" if len(names) > _MAX_LISTED else ""
    return ", ".join(names[:_MAX_LISTED]) + more


def match_micrographs(
    micrograph_names: list[str], pick_names: set[str]
) -> tuple[list[str], set[str], set[str]]:
    """``(matched in folder order, micrographs without picks, pick names without micrograph)``."""
    matched = [n for n in micrograph_names if n in pick_names]
    return matched, set(micrograph_names) - pick_names, pick_names - set(micrograph_names)


def load_init(init: str, diameter: float, arch: str, device: str):
    """The detector ``--init`` names: ``"general"`` (shipped), ``"scratch"`` (None) or a
    checkpoint path; :class:`CheckpointError` (one line) when it is missing or does
    not fit ``arch``."""
    from ..detector import load_checkpoint
    from ..detector.general import load_general_detector
    from ..errors import CheckpointError

    if init == "scratch":
        return None
    if init == "general":
        return load_general_detector(diameter, arch=arch, device=device)
    detector = load_checkpoint(Path(init), device=device)
    if detector.config.arch != arch:
        raise CheckpointError(
            f"{init}: --init is a {detector.config.arch} model but --arch is {arch}"
        )
    return detector


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..detector import DetectorConfig, save_checkpoint, sidecar_path, train_detector
    from ..detector.budget import finetune_config
    from ..io.atomic import refuse_existing
    from ..io.formats import read_coordinates
    from ..io.micrograph import (
        list_micrographs,
        micrograph_name,
        micrograph_shapes,
        read_micrograph,
    )
    from ..io.picks import positive_picks

    refuse_existing(args.out, force=args.force, what="checkpoint")
    refuse_existing(sidecar_path(args.out), force=args.force, what="checkpoint settings")
    paths = list_micrographs(args.micrographs)
    if not paths:
        raise MicrographError(f"{args.micrographs}: no micrographs found")
    by_name = {micrograph_name(p): p for p in paths}
    shapes = micrograph_shapes(paths)
    picks = read_coordinates(
        args.coords, args.fmt, diameter=args.diameter, shapes=shapes, on_error="skip"
    )
    for line in picks.attrs.get("skipped", []):
        print(line, file=sys.stderr)
    picks = positive_picks(picks)
    matched, no_picks, no_file = match_micrographs(
        list(by_name), set(picks["micrograph"].astype(str))
    )
    if no_file:
        print(
            f"{args.coords}: {int(picks['micrograph'].isin(no_file).sum())} pick(s) on {len(no_file)} "
            f"micrograph name(s) with no file in {args.micrographs}: {_listed(no_file)}",
            file=sys.stderr,
        )
    if no_picks:
        print(
            f"{len(no_picks)} micrograph(s) without picks, not used: {_listed(no_picks)}",
            file=sys.stderr,
        )
    if not matched:
        raise CoordinateError(
            f"{args.coords}: no micrograph name matches a file in {args.micrographs} "
            f"(coordinate names: {_listed(set(picks['micrograph']))})"
        )
    mics = [read_micrograph(by_name[n]) for n in matched]
    picks = picks[picks["micrograph"].isin(matched)]
    init = load_init(args.init, args.diameter, args.arch, args.device)
    common = dict(
        arch=args.arch,
        input_size=args.input_size,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        device=args.device,
        width=args.width,
    )
    if init is not None and args.epochs is None:
        config = finetune_config(
            args.diameter, len(picks), partial=args.partial, steps=args.steps, **common
        )
    else:
        config = DetectorConfig(
            diameter=args.diameter,
            epochs=DetectorConfig.epochs if args.epochs is None else args.epochs,
            steps=args.steps,
            **{k: v for k, v in common.items() if v is not None},
        )
    budget = f"{config.steps} steps" if config.steps is not None else f"{config.epochs} epochs"
    start = "scratch" if init is None else args.init
    print(
        f"training {config.arch} on {len(mics)} micrograph(s), {len(picks)} particle(s); "
        f"init {start}, {budget}, lr {config.lr}, partial labels {'on' if args.partial else 'off'}"
    )
    started = time.perf_counter()
    with tqdm(total=None, unit="step", desc="train", disable=None) as bar:

        def progress(info: dict) -> None:
            bar.total = info["steps"]
            bar.set_postfix(epoch=f"{info['epoch']}/{info['epochs']}", loss=f"{info['loss']:.4f}")
            bar.update(1)

        detector = train_detector(
            mics, picks, config, init=init, partial=args.partial, progress=progress
        )
    save_checkpoint(detector, args.out)
    print(
        f"wrote {args.out} (input size {detector.config.input_size}, "
        f"{time.perf_counter() - started:.1f} s, final loss {detector.meta['final_loss']:.4f})"
    )
    return 0
