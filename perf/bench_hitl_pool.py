"""How hard is a candidate hitl pool for the shipped general model, with no labels?

The hitl preset must leave the loop something to learn: a pool the general model
already solves cannot tell strategies apart (the first hitl run: F1 0.991 at 0
labels). For each candidate design (overrides of the hitl preset) this simulates
16 micrographs with ``simulate_mixed``, predicts them with the general model, takes
T_opt on the first 6 and scores the last 10 (F1 at T_opt, precision, recall, PR-AUC).

    .venv/bin/python perf/bench_hitl_pool.py            # the designs below
    .venv/bin/python perf/bench_hitl_pool.py --out DIR  # keep the simulated data

Prints a table and writes ``perf/results/hitl_pool.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from _common import add_smoke_flag, results_path, write_results

RESULTS = Path(__file__).resolve().parent / "results" / "hitl_pool.json"

#: Candidate designs: overrides of ``PRESETS["hitl"]``. ``v1`` is the first preset
#: (no decoys, SNR 0.4-2); ``preset`` the one shipped.
V1 = {"particles": 14, "decoys_max": 0, "snr_range": [0.4, 2.0], "data_seed": 1000}
DESIGNS: dict[str, dict] = {
    "v1 (first hitl pool)": V1,
    "v1, SNR 0.1-0.6": {**V1, "snr_range": [0.1, 0.6]},
    "0-10 decoys 0.9x, seed 1000": {**V1, "decoys_max": 10, "decoy_scale": 0.9},
    "0-20 decoys 1.0x, 10 particles": {"particles": 10, "decoys_max": 20, "decoy_scale": 1.0,
                                       "snr_range": [0.4, 2.0], "data_seed": 1000},
    "0-16 decoys 0.5x, seed 1000": {"data_seed": 1000},
    "0-16 decoys 0.5x, seed 11 (preset)": {},
    "0-16 decoys 0.5x, seed 12": {"data_seed": 12},
    "0-16 decoys 0.5x, seed 13": {"data_seed": 13},
}  # fmt: skip


def score(name: str, overrides: dict, root: Path, n: int = 16, n_val: int = 6) -> dict:

    from activepick import metrics
    from activepick.active.benchmark.data import simulate_mixed
    from activepick.active.benchmark.presets import benchmark_settings
    from activepick.detector import predict_picks
    from activepick.detector.general import load_general_detector
    from activepick.io.micrograph import list_micrographs, read_micrograph

    settings = benchmark_settings("hitl", **overrides)
    truth = simulate_mixed(root, settings, n)
    truth = truth.astype({"micrograph": str})
    mics = [read_micrograph(p) for p in list_micrographs(root / "micrographs")]
    val, test = mics[:n_val], mics[n_val:]
    part = lambda ms: truth[truth["micrograph"].isin([m.name for m in ms])]  # noqa: E731
    det = load_general_detector(float(settings["diameter"]), arch="light", device="cpu")
    t_opt = float(metrics.find_t_opt(predict_picks(det, val, threshold=0.0), part(val)))
    s = metrics.summary(predict_picks(det, test, threshold=0.0), part(test), t_opt=t_opt)
    record = json.loads((root / "simulation.json").read_text())["micrographs"]
    return {
        "design": name,
        "overrides": overrides,
        "particles": int(sum(r["particles"] for r in record[n_val:])),
        "decoys": int(sum(r.get("decoys", 0) for r in record[n_val:])),
        **{k: round(float(s[k]), 3) for k in ("f1_topt", "precision_topt", "recall_topt")},
        "pr_auc": round(float(s["pr_auc"]), 3),
        "t_opt": round(t_opt, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="keep the data here")
    add_smoke_flag(parser)  # the shipped design on 2 micrographs of 128 px
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        base = args.out or Path(tmp)
        designs = list(DESIGNS.items())
        if args.smoke:
            designs = [("smoke", {"size": 128, "particles": 3, "decoys_max": 2})]
        sizes = (2, 1) if args.smoke else (16, 6)
        for i, (name, over) in enumerate(designs):
            t0 = time.perf_counter()
            rows.append(score(name, over, base / f"design_{i}", *sizes))
            rows[-1]["wall_s"] = round(time.perf_counter() - t0, 1)
    head = f"{'design':36} {'particles':>9} {'decoys':>6} {'F1':>6} {'prec':>6} {'rec':>6} {'PR-AUC':>6}"
    print(head)
    for r in rows:
        print(
            f"{r['design']:36} {r['particles']:9d} {r['decoys']:6d} {r['f1_topt']:6.3f} "
            f"{r['precision_topt']:6.3f} {r['recall_topt']:6.3f} {r['pr_auc']:6.3f}"
        )

    record = {"rows": rows, "load_avg_1m": round(os.getloadavg()[0], 2), "cpus": os.cpu_count()}
    write_results(results_path(RESULTS, args.smoke), record, indent=1)


if __name__ == "__main__":
    main()
