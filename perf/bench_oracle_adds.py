"""How many particles does the simulated person add per reviewed pick in a crowded field?
(issue 20: on the shared real set, 40 queries became 294 reviews, 277 of them adds)

The general model predicts the pool micrographs of a labelled set (``--split``: its train
names; else every micrograph), the product protocol's candidates are drawn at random
(``--k`` per batch, ``--batches`` seeded batches), and ``HumanOracle`` reviews each batch
with its neighbourhood at 2 diameters (pick by pick, before issue 20) and at 1.5
(``active.regions.REGION_DIAMETERS``: what a person marks complete with ``f``). Prints
adds per query and writes ``perf/results/oracle_adds.json``.

    .venv/bin/python perf/bench_oracle_adds.py --data mics/ --truth labels.star \\
        --diameter 28 --split split.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from _common import add_smoke_flag, machine_info, results_path, smoke_labelled_set, write_results

RESULTS = Path(__file__).resolve().parent / "results" / "oracle_adds.json"


def main(argv: list[str] | None = None) -> int:
    from activepick.active.oracle import HUMAN_REGION_DIAMETERS, HumanOracle
    from activepick.active.regions import REGION_DIAMETERS
    from activepick.active.strategies import plausible_candidates
    from activepick.detector import predict_picks
    from activepick.detector.general import load_general_detector
    from activepick.io.formats import read_coordinates
    from activepick.io.micrograph import list_micrographs, read_micrograph

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path)
    ap.add_argument("--truth", type=Path)
    ap.add_argument("--diameter", type=float)
    ap.add_argument("--split", type=Path, default=None)
    ap.add_argument("--k", type=int, default=40)
    ap.add_argument("--batches", type=int, default=6)
    add_smoke_flag(ap)  # the tiny simulated set, batches of 4
    args = ap.parse_args(argv)
    if args.smoke:
        tmp = tempfile.TemporaryDirectory()
        args.data, args.truth, args.split, args.diameter = smoke_labelled_set(Path(tmp.name))
        args.k, args.batches = 4, 1
    elif None in (args.data, args.truth, args.diameter):
        ap.error("--data, --truth and --diameter are required")
    names = None
    if args.split is not None:
        names = set(json.loads(args.split.read_text())["train"])
    mics = [read_micrograph(p) for p in list_micrographs(args.data)]
    mics = [m for m in mics if names is None or m.name in names]
    truth = read_coordinates(args.truth, diameter=args.diameter)
    truth = truth[truth["micrograph"].isin({m.name for m in mics})].reset_index(drop=True)
    truth["diameter"] = args.diameter
    det = load_general_detector(args.diameter, arch="light", device="cpu")
    pred = predict_picks(det, mics, threshold=0.01).reset_index(drop=True)
    pred["pick_id"] = np.arange(len(pred))
    t_opt = 0.5
    cands = plausible_candidates(pred, t_opt).reset_index(drop=True)
    rows = []
    for region in (HUMAN_REGION_DIAMETERS, REGION_DIAMETERS):
        oracle = HumanOracle(truth, region=region)
        for b in range(args.batches):
            batch = cands.sample(min(args.k, len(cands)), random_state=b)
            dec = oracle.review(batch)
            counts = dec["action"].value_counts().to_dict()
            rows.append({"region_diameters": region, "batch": b, **counts})
    per_region = {}
    for region in (HUMAN_REGION_DIAMETERS, REGION_DIAMETERS):
        mine = [r for r in rows if r["region_diameters"] == region]
        adds = np.array([r.get("add", 0) for r in mine], float)
        per_region[str(region)] = {
            "adds_per_batch": adds.tolist(),
            "adds_per_query": adds.mean() / args.k,
        }
        print(
            f"neighbourhood {region} diameters: {adds.mean():.0f} adds per batch of {args.k} "
            f"({adds.mean() / args.k:.1f} per query; batches {adds.astype(int).tolist()})"
        )
    density = len(truth) / sum(m.shape[0] * m.shape[1] for m in mics) * args.diameter**2
    print(f"density: {density:.2f} labelled particles per diameter squared")
    write_results(
        results_path(RESULTS, args.smoke),
        {
            "data": str(args.data),
            "micrographs": len(mics),
            "particles": int(len(truth)),
            "density_per_diameter2": density,
            "candidates": int(len(cands)),
            "k": args.k,
            "per_region": per_region,
            "batches": rows,
            **machine_info(),
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
