"""GUI round prediction with a large pool: rotating subset + input cache, 20 vs 2,000 micrographs.

    .venv/bin/python perf/bench_pool.py [--pools 20 2000] [--real 3] [--size 4096]
                                        [--rounds 3] [--max-size 12] [--input-size 1024]
                                        [--engine [--train-steps 4]]

``--real`` float32 noise MRCs of ``--size`` px are written to a temporary folder;
each pool is a folder of symlinks to them in turn, opened as a
:class:`~activepick.io.lazy.LazyStack` (headers only). For each pool and round
``r`` the micrographs of :func:`activepick.active.pool.prediction_subset` (the
rotating window of ``--max-size`` plus 3 "labelled" micrographs) are predicted by
an untrained light detector at ``--input-size``, through a fresh session
:class:`~activepick.detector.input_cache.InputCache`:

- ``prefetch``: :func:`~activepick.detector.input_cache.iter_fill_cache` on the
  round's subset (what the engine runs while the user reviews the previous round:
  read + resize + normalise of the micrographs not cached yet);
- ``predict``: the round's prediction from cached inputs (forward pass, decoding,
  NMS), i.e. the round time the user waits for once prefetching has run;
- ``cold round`` = prefetch + predict: the round time without prefetching.

The baseline is today's engine: every micrograph of the pool read, prepared and
predicted with :func:`~activepick.detector.predict.iter_predict_picks` each round
(measured on the first pool, extrapolated linearly to the others). Wall and CPU
seconds are reported with the load average, since the machine may be shared.
Prints a table and writes ``perf/results/pool.json``.

``--engine`` times whole GUI rounds instead (:func:`run_engine`: train -> predict ->
select through the Workbench, with and without the session's input cache) and
writes ``perf/results/pool_engine.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import add_smoke_flag, machine_info, results_path, write_results

RESULTS = Path(__file__).resolve().parent / "results" / "pool.json"
LABELLED = 3


class _Clock:
    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu


def predict_cached(detector, paths, cache, threshold: float = 0.01) -> int:
    """Predict ``paths`` from the input cache, as ``iter_predict_picks`` does with
    its ``prepare`` hook (docs/architecture.md, "Engine at scale"); returns the
    number of picks."""
    from activepick.detector.input_cache import prepared_input
    from activepick.detector.predict import _picks_of_image
    from activepick.io.micrograph import read_shape

    cfg = detector.config
    network = detector.network.eval().to(memory_format=torch.channels_last)
    picks = 0
    for start in range(0, len(paths), 4):
        batch = paths[start : start + 4]
        prepared = [prepared_input(p, cfg, cache) for p in batch]
        x = torch.stack([t for t, _ in prepared]).to(memory_format=torch.channels_last)
        with torch.inference_mode():
            out = network(x)
        for k, p in enumerate(batch):
            r = _picks_of_image(
                out[k], None, prepared[k][1], read_shape(p), cfg.diameter, threshold, cfg.nms_iou
            )
            picks += len(r["x"])
    return picks


def run_pool(n: int, real: list[Path], tmp: Path, detector, args) -> dict:
    from activepick.active.pool import prediction_subset
    from activepick.detector.input_cache import iter_fill_cache, session_input_cache
    from activepick.io.lazy import LazyStack
    from activepick.progress import drive

    folder = tmp / f"pool_{n}"
    folder.mkdir()
    for i in range(n):
        (folder / f"mic_{i:05d}.mrc").symlink_to(real[i % len(real)])
    with _Clock() as c_open:
        stack = LazyStack(sorted(folder.iterdir()))
    index = {name: i for i, name in enumerate(stack.names)}
    labelled = set(stack.names[:LABELLED])
    cache = session_input_cache(tmp / f"session_{n}")
    rounds = []
    for r in range(args.rounds):
        subset = prediction_subset(
            stack.names, labelled=labelled, round=r, max_size=args.max_size, seed=0
        )
        paths = [stack.paths[index[name]] for name in subset]
        with _Clock() as c_fill:
            prepared = drive(iter_fill_cache(paths, detector.config, cache))
        with _Clock() as c_pred:
            picks = predict_cached(detector, paths, cache)
        rounds.append(
            {
                "round": r,
                "predicted": len(subset),
                "prepared": prepared,
                "prefetch_s": c_fill.wall,
                "prefetch_cpu_s": c_fill.cpu,
                "predict_s": c_pred.wall,
                "predict_cpu_s": c_pred.cpu,
                "cold_round_s": c_fill.wall + c_pred.wall,
                "picks": picks,
            }
        )
        print(
            f"  pool {n}, round {r}: {len(subset)} predicted ({prepared} prepared), "
            f"prefetch {c_fill.wall:.1f} s, predict {c_pred.wall:.1f} s",
            flush=True,
        )
    return {"pool": n, "open_s": c_open.wall, "rounds": rounds}


def run_baseline(n: int, real: list[Path], tmp: Path, detector) -> dict:
    """Today's round: all ``n`` micrographs read and predicted without a cache."""
    from activepick.detector.predict import iter_predict_picks
    from activepick.io.lazy import LazyStack
    from activepick.progress import drive

    folder = tmp / f"pool_{n}"
    stack = LazyStack(sorted(folder.iterdir()), cache_size=1)
    mics = (stack.micrograph(i) for i in range(len(stack)))
    with _Clock() as c:
        for start in range(0, n, 4):  # 4 at a time, so memory stays bounded
            batch = [next(mics) for _ in range(min(4, n - start))]
            drive(iter_predict_picks(detector, batch, threshold=0.01))
    return {"pool": n, "round_s": c.wall, "round_cpu_s": c.cpu, "per_micrograph_s": c.wall / n}


def run_engine(n: int, real: list[Path], tmp: Path, args) -> dict:
    """Real rounds (train -> predict -> select) of a :class:`Workbench` on a pool of
    ``n`` lazily opened micrographs, in three modes: ``no cache`` (no session: every
    input read, resized and normalised each round), ``cache`` (a session: inputs from
    ``<session>/cache/``) and ``cache + prefetch`` (the next round's subset prepared
    by ``iter_fill_cache`` before the round, as during review; not timed in the round).
    """
    from activepick.active.settings import LearnerSettings
    from activepick.active.workbench import Workbench
    from activepick.detector import DetectorConfig
    from activepick.detector.input_cache import iter_fill_cache, session_prepare
    from activepick.io.lazy import LazyStack, lazy_micrographs
    from activepick.io.picks import make_picks
    from activepick.progress import drive

    folder = tmp / f"engine_pool_{n}"
    folder.mkdir()
    for i in range(n):  # hard links: a session resolves symlinks and refuses shared targets
        os.link(real[i % len(real)], folder / f"mic_{i:05d}.mrc")
    cfg = DetectorConfig(
        arch="light", diameter=200.0, input_size=args.input_size, device="cpu", batch_size=2
    )
    settings = LearnerSettings(
        detector=cfg,
        protocol="thesis",
        init="scratch",
        train_steps=args.train_steps,
        predict_subset=args.max_size,
    )
    modes = {}
    for mode in ("no cache", "cache", "cache + prefetch"):
        stack = LazyStack(sorted(folder.iterdir()))
        wb = Workbench.for_micrographs(lazy_micrographs(stack), settings)
        names = stack.names[:LABELLED]
        wb.learner.add_labels(
            make_picks(
                names, [args.size / 3] * LABELLED, [args.size / 2] * LABELLED, 200.0, status="added"
            )
        )
        if mode != "no cache":
            wb.create_session(tmp / f"session_{n}_{mode.replace(' ', '')}")
        rounds = []
        for r in range(args.rounds):
            prefetch = 0.0
            wb.learner.round += 1  # the subset the round will predict (after training)
            subset = wb.learner.prediction_micrographs()
            wb.learner.round -= 1
            if mode == "cache + prefetch":
                cache = session_prepare(wb.session).cache
                with _Clock() as c_fill:
                    drive(iter_fill_cache(subset, args.input_size, cache))
                prefetch = c_fill.wall
            with _Clock() as c:
                drive(wb.iter_round())
            entry = wb.learner.history[-1]
            rounds.append(
                {
                    "round": r + 1,
                    "round_s": c.wall,
                    "round_cpu_s": c.cpu,
                    "train_s": entry["train_s"],
                    "predict_s": entry["predict_s"],
                    "prefetch_s": prefetch,
                    "predicted": len(subset),
                }
            )
            print(
                f"  engine pool {n}, {mode}, round {r + 1}: {c.wall:.1f} s "
                f"(train {entry['train_s']:.1f}, predict {entry['predict_s']:.1f}, "
                f"prefetch before {prefetch:.1f})",
                flush=True,
            )
        wb.close()
        modes[mode] = rounds
    return {"pool": n, "modes": modes}


def time_inputs(real: list[Path], tmp: Path, args) -> dict:
    """CPU seconds per micrograph to make one network input: from the file
    (read + resize + normalise, no cache), a cache miss (that + float16 + write),
    a hit from disk (a new process) and a hit from memory."""
    from activepick.detector.data import prepare_image
    from activepick.detector.input_cache import InputCache, prepared_input
    from activepick.io.micrograph import read_micrograph

    size, out = args.input_size, {}
    with _Clock() as c:
        for p in real:
            prepare_image(read_micrograph(p).data, size)
    out["no cache"] = c.cpu / len(real)
    cache = InputCache(tmp / "input_cache")
    for name, fresh in (("miss", False), ("disk hit", True), ("memory hit", False)):
        if fresh:
            cache = InputCache(tmp / "input_cache")
        with _Clock() as c:
            for p in real:
                prepared_input(p, size, cache)
        out[name] = c.cpu / len(real)
    print("  input CPU s per micrograph: " + ", ".join(f"{k} {v:.3f}" for k, v in out.items()))
    return out


def main_engine(args) -> int:
    rng = np.random.default_rng(0)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        real = [tmp / "real" / f"real_{i}.mrc" for i in range(args.real)]
        from activepick.io.micrograph import write_micrograph

        for p in real:
            write_micrograph(p, rng.standard_normal((args.size, args.size), np.float32), 1.0)
        from activepick.detector import Detector, DetectorConfig, build_network, predict_picks
        from activepick.io.micrograph import read_micrograph

        warm = DetectorConfig(arch="light", diameter=200.0, input_size=args.input_size)
        predict_picks(Detector(build_network("light"), warm), [read_micrograph(real[0])])
        inputs = time_inputs(real, tmp, args)
        pools = [run_engine(n, real, tmp, args) for n in args.pools]
    load = (load_before + os.getloadavg()[0]) / 2
    print(
        f"\nGUI rounds (Workbench.iter_round), {args.size} px lazy micrographs, light network "
        f"from scratch, {args.train_steps} steps, input {args.input_size} px, subset "
        f"{args.max_size} + {LABELLED} labelled, {args.threads} torch threads; load average "
        f"{load:.1f} on {os.cpu_count()} CPUs"
    )
    print(f"{'pool':>6s} {'mode':>17s} {'round s':>8s} {'train s':>8s} {'predict s':>10s}")
    for p in pools:
        for mode, rs in p["modes"].items():
            for key in ("round_s", "train_s", "predict_s"):
                p.setdefault("mean", {}).setdefault(mode, {})[key] = float(
                    np.mean([r[key] for r in rs])
                )
            m = p["mean"][mode]
            print(
                f"{p['pool']:6d} {mode:>17s} {m['round_s']:8.2f} {m['train_s']:8.2f} "
                f"{m['predict_s']:10.2f}"
            )
    print("(means over rounds)")
    out = results_path(RESULTS.with_name("pool_engine.json"), args.smoke)
    write_results(
        out,
        {
            **machine_info(),
            "load_average": load,
            "torch": torch.__version__,
            "args": vars(args),
            "input_cpu_s_per_micrograph": inputs,
            "pools": pools,
        },
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    from activepick.detector import Detector, DetectorConfig, build_network
    from activepick.io.micrograph import write_micrograph

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pools", type=int, nargs="+", default=[20, 2000])
    ap.add_argument("--real", type=int, default=3)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--max-size", type=int, default=12)
    ap.add_argument("--input-size", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--engine",
        action="store_true",
        help="time real rounds with and without the session's input cache instead "
        "(writes perf/results/pool_engine.json)",
    )
    ap.add_argument("--train-steps", type=int, default=4)
    add_smoke_flag(ap)  # both modes: a pool of 6 micrographs of 256 px, one round, input 64
    args = ap.parse_args(argv)
    if args.smoke:
        args.threads, args.pools, args.real, args.size, args.rounds = 1, [6], 1, 256, 1
        args.max_size, args.input_size, args.train_steps = 2, 64, 1
    torch.set_num_threads(args.threads)
    if args.smoke:
        main_engine(args)
    elif args.engine:
        return main_engine(args)
    torch.manual_seed(0)
    cfg = DetectorConfig(arch="light", diameter=200.0, input_size=args.input_size, device="cpu")
    detector = Detector(build_network("light", dropout=cfg.dropout), cfg)
    rng = np.random.default_rng(0)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        real = [tmp / "real" / f"real_{i}.mrc" for i in range(args.real)]
        for p in real:
            write_micrograph(p, rng.standard_normal((args.size, args.size), np.float32), 1.0)
        pools = [run_pool(n, real, tmp, detector, args) for n in args.pools]
        baseline = run_baseline(args.pools[0], real, tmp, detector)
    load = (load_before + os.getloadavg()[0]) / 2
    print(
        f"\n{args.size} px micrographs (symlinks to {args.real} files), light network, "
        f"input {args.input_size} px, max_size {args.max_size} + {LABELLED} labelled, "
        f"{args.threads} torch threads; load average {load:.1f} on {os.cpu_count()} CPUs"
    )
    print(
        f"{'pool':>6s} {'predicted':>9s} {'prefetch s':>11s} {'predict s':>10s} "
        f"{'cold round s':>13s} {'today s':>10s}"
    )
    for p in pools:
        rs = p["rounds"]
        today = baseline["per_micrograph_s"] * p["pool"]
        p["today_round_s"] = today
        p["today_measured"] = p["pool"] == baseline["pool"]
        mark = "" if p["today_measured"] else " (extrap.)"
        print(
            f"{p['pool']:6d} {np.mean([r['predicted'] for r in rs]):9.1f} "
            f"{np.mean([r['prefetch_s'] for r in rs]):11.2f} "
            f"{np.mean([r['predict_s'] for r in rs]):10.2f} "
            f"{np.mean([r['cold_round_s'] for r in rs]):13.2f} {today:10.1f}{mark}"
        )
    print("(means over rounds; today = every micrograph read and predicted each round)")
    write_results(
        results_path(RESULTS, args.smoke),
        {
            **machine_info(),
            "load_average": load,
            "torch": torch.__version__,
            "args": vars(args),
            "pools": pools,
            "baseline": baseline,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
