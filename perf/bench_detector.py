"""Detector speed and memory: training step / epoch and prediction throughput, light vs full.

Each case runs in a fresh subprocess so its peak memory (``ru_maxrss``; on CUDA
``torch.cuda.max_memory_allocated``) is its own. Micrographs are 1024 x 1024 noise
images with 40 random picks each (speed does not depend on content); the particle
diameter is 64 px, so the automatic input size is 512.

    .venv/bin/python perf/bench_detector.py                 # light + full on CPU (and CUDA)
    .venv/bin/python perf/bench_detector.py --arch light    # one architecture

Prints a table and writes ``perf/results/detector.json`` (rows of cases not
run this time are kept from the previous file, so ``--arch full`` can run alone).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

from _common import add_smoke_flag, results_path, write_results

RESULTS = Path(__file__).resolve().parent / "results" / "detector.json"
SIZE = 1024
DIAMETER = 64.0
PARTICLES = 40
#: Objectness bias of the (untrained) benchmark network, so that few cells pass
#: MIN_CONFIDENCE as with a trained model; NMS on every cell is timed separately.
BACKGROUND_LOGIT = -6.0
MIN_CONFIDENCE = 0.01


def _data(n: int, seed: int = 0, size: int = SIZE):
    import numpy as np
    import pandas as pd

    from activepick.io.picks import make_picks

    class _Image:
        def __init__(self, name, data):
            self.name, self.data = name, data

    rng = np.random.default_rng(seed)
    mics, picks = [], []
    for i in range(n):
        mics.append(_Image(f"bench_{i:03d}", rng.normal(size=(size, size)).astype(np.float32)))
        xy = rng.uniform(DIAMETER / 2, size - DIAMETER / 2, (PARTICLES, 2))
        picks.append(make_picks(f"bench_{i:03d}", xy[:, 0], xy[:, 1], DIAMETER))
    return mics, pd.concat(picks, ignore_index=True)


def _peak_memory_mb(device) -> float:
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024


def run_case(case: dict) -> dict:
    """One measurement (run inside the worker subprocess)."""
    import torch

    from activepick.detector import DetectorConfig, predict_picks, train_detector

    device = torch.device(case["device"])
    if case["task"] == "nms":
        import numpy as np

        from activepick.matching import nms

        rng = np.random.default_rng(0)
        g = case["input_size"] // 16
        cells = (np.indices((g, g)).reshape(2, -1).T + rng.uniform(0, 1, (g * g, 2))) * (SIZE / g)
        t0 = time.perf_counter()
        keep = nms(
            cells, np.full(len(cells), DIAMETER / 2), rng.random(len(cells)), iou_threshold=0.3
        )
        return {
            "nms_s": time.perf_counter() - t0,
            "candidates": len(cells),
            "kept": len(keep),
            "peak_memory_mb": _peak_memory_mb(device),
        }
    cfg = DetectorConfig(
        arch=case["arch"],
        diameter=DIAMETER,
        input_size=case["input_size"],
        epochs=1,
        batch_size=4,
        device=case["device"],
    )
    mics, picks = _data(case["n"], size=case.get("size", SIZE))
    if case["task"] == "train":
        stamps = []
        t0 = time.perf_counter()
        train_detector(mics, picks, cfg, progress=lambda _p: stamps.append(time.perf_counter()))
        epoch = time.perf_counter() - t0
        steps = [b - a for a, b in zip([t0, *stamps[:-1]], stamps, strict=True)]
        out = {"epoch_s": epoch, "steps": len(steps), "step_s": sorted(steps)[len(steps) // 2]}
    else:
        from activepick.detector.networks import Detector, network_for_config

        torch.manual_seed(0)
        net = network_for_config(cfg)
        with torch.no_grad():  # like a trained model: almost every cell is background
            net.head[-1].bias[4] = BACKGROUND_LOGIT
        det = Detector(net.to(device).eval(), cfg)
        predict_picks(det, mics[:1])  # warm-up
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        predict_picks(det, mics, threshold=MIN_CONFIDENCE, batch_size=4)
        if device.type == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - t0
        out = {"predict_s": elapsed, "micrographs_per_s": case["n"] / elapsed}
    out["peak_memory_mb"] = _peak_memory_mb(device)
    return out


def _cases(archs, devices, tasks, full_n):
    if "nms" in tasks:
        for input_size in (512, 1024):
            yield {"arch": "-", "device": "cpu", "task": "nms", "input_size": input_size, "n": 1}
    for device in devices:
        for arch in archs:
            n_pred = 10 if arch == "light" or device == "cuda" else full_n
            if "train" in tasks:
                yield {"arch": arch, "device": device, "task": "train", "input_size": 512, "n": 10}
            if "predict" in tasks:
                for size in (512, 1024):
                    yield {
                        "arch": arch,
                        "device": device,
                        "task": "predict",
                        "input_size": size,
                        "n": n_pred,
                    }


def _key(row: dict) -> tuple:
    return (row["arch"], row["device"], row["task"], row["input_size"])


def _merge(old: list[dict], new: list[dict]) -> list[dict]:
    """Rows of a previous run that this run did not repeat, then this run's rows."""
    keys = {_key(r) for r in new}
    return [r for r in old if _key(r) not in keys] + new


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", choices=("light", "full"), action="append", help="default: both")
    p.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        action="append",
        help="default: cpu (+ cuda if present)",
    )
    p.add_argument(
        "--full-n", type=int, default=3, help="micrographs predicted by the full net on CPU"
    )
    p.add_argument(
        "--task", choices=("train", "predict", "nms"), action="append", help="default: all three"
    )
    p.add_argument("--worker", help=argparse.SUPPRESS)
    add_smoke_flag(p)  # light on CPU: one micrograph of 256 px, input 64, train and predict
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(run_case(json.loads(args.worker))))
        return 0
    import torch

    devices = args.device or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    rows = []
    cases = _cases(
        args.arch or ["light", "full"],
        devices,
        args.task or ["train", "predict", "nms"],
        args.full_n,
    )
    if args.smoke:
        cases = [
            {"arch": "light", "device": "cpu", "task": task, "input_size": 64, "n": 1, "size": 256}
            for task in ("train", "predict")
        ]
    for case in cases:
        proc = subprocess.run(
            [sys.executable, __file__, "--worker", json.dumps(case)],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode:
            print(proc.stderr, file=sys.stderr)
            raise SystemExit(f"case {case} failed")
        row = {**case, **json.loads(proc.stdout.strip().splitlines()[-1])}
        rows.append(row)
        print(_format_row(row), flush=True)
    info = {
        "machine": platform.platform(),
        "cpu_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "micrograph_px": SIZE,
        "diameter_px": DIAMETER,
        "results": rows,
    }
    if RESULTS.is_file() and not args.smoke:  # keep the rows of cases this run did not repeat
        info["results"] = _merge(json.loads(RESULTS.read_text()).get("results", []), rows)
    write_results(results_path(RESULTS, args.smoke), info)
    return 0


def _format_row(r: dict) -> str:
    head = (
        f"{r['arch']:5s} {r['device']:4s} {r['task']:7s} input {r['input_size']:4d} n={r['n']:2d}"
    )
    if r["task"] == "nms":
        body = f"NMS of every cell: {r['candidates']} candidates -> {r['kept']} in {r['nms_s'] * 1000:.0f} ms"
    elif r["task"] == "train":
        body = f"step {r['step_s']:7.2f} s  epoch {r['epoch_s']:7.2f} s ({r['steps']} steps)"
    else:
        body = f"{r['micrographs_per_s']:7.2f} micrographs/s ({r['predict_s']:.2f} s)"
    return f"{head}  {body}  peak {r['peak_memory_mb']:8.0f} MB"


if __name__ == "__main__":
    sys.exit(main())
