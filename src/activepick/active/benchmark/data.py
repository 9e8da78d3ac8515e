"""Benchmark data: simulated (uniform or mixed difficulty) or a user's labelled folder, split.

Every split keeps the micrograph files' paths: each run is a
:class:`~activepick.session.Session` over the training micrographs.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ...io.picks import validate_picks
from .presets import BenchmarkError

Progress = Callable[[dict], None] | None

#: Micrograph name pattern of the mixed-difficulty simulation.
MIXED_NAME = "hitl_{:04d}"
#: Fewest micrographs a user's folder needs: one validation, one test, two training.
MIN_REAL_MICROGRAPHS = 4
#: Smallest particle diameter at the network input (px): half a stride-16 grid cell.
MIN_INPUT_DIAMETER = 8.0


@dataclasses.dataclass
class BenchmarkData:
    """The three splits: micrographs and their ground truth (pick tables)."""

    train: list
    train_truth: pd.DataFrame
    val: list
    val_truth: pd.DataFrame
    test: list
    test_truth: pd.DataFrame
    split: dict[str, list[str]]
    paths: dict[str, Path] = dataclasses.field(default_factory=dict)

    def train_paths(self) -> list[Path]:
        """Files of the training micrographs, in pool order."""
        return [self.paths[m.name] for m in self.train]


def prepare_data(
    settings: dict[str, Any], out_dir: Path, progress: Progress = None
) -> BenchmarkData:
    """Simulate (or reuse) the synthetic data set, or split a user's folder.

    Synthetic: ``n_train + n_val + n_test`` micrographs in ``out_dir/data`` (or the
    folder ``data``, reused when it holds ``ground_truth.csv``); in file order the
    first ``n_train`` micrographs train, the next ``n_val`` validate, the last
    ``n_test`` test. ``simulation = "uniform"``: one ``simulate_dataset`` (seed
    ``data_seed``, one molecule, one SNR and size). ``"mixed"`` (hitl): see
    :func:`simulate_mixed`. Real data (``truth`` given): every micrograph of
    ``data`` with its ground truth, split by micrograph with ``split_seed``: 15%
    validation, 15% test (at least one each), the rest training; with
    ``input_size`` None it is set here from the micrographs (automatic, as
    ``activepick train``).
    """
    if settings.get("truth"):
        return _real_data(settings, out_dir)
    from ...io.micrograph import list_micrographs, read_micrograph

    root = Path(settings["data"]) if settings.get("data") else out_dir / "data"
    n_train, n_val, n_test = (int(settings[k]) for k in ("n_train", "n_val", "n_test"))
    total = n_train + n_val + n_test
    truth_file = root / "ground_truth.csv"
    if not truth_file.exists():
        if settings.get("data"):
            raise BenchmarkError(
                f"{truth_file}: missing; --data without --truth must be a folder written by "
                "activepick simulate (micrographs/ + ground_truth.csv)"
            )
        if progress:
            progress({"stage": "simulate", "step": 0, "total": total})
        if settings.get("simulation") == "mixed":
            simulate_mixed(root, settings, total)
        else:
            from ...simulate import simulate_dataset

            simulate_dataset(
                root,
                n=total,
                particles=int(settings["particles"]),
                snr=float(settings["snr"]),
                size=int(settings["size"]),
                diameter=float(settings["diameter"]),
                seed=int(settings["data_seed"]),
            )
    paths = list_micrographs(root / "micrographs")
    if len(paths) < total:
        raise BenchmarkError(
            f"{root / 'micrographs'}: {len(paths)} micrograph(s), the splits need {total}"
        )
    table = pd.read_csv(
        truth_file, dtype={"micrograph": str, "time": str}, keep_default_na=False, na_values=[""]
    )
    if "time" in table:
        table["time"] = table["time"].astype(object).where(table["time"].notna(), "").astype(str)
    truth = validate_picks(table, str(truth_file))
    paths = paths[:total]
    mics = [read_micrograph(p) for p in paths]
    parts = {
        "train": list(range(n_train)),
        "val": list(range(n_train, n_train + n_val)),
        "test": list(range(n_train + n_val, total)),
    }
    return _split(mics, paths, truth, parts)


def _split(mics: list, paths: list[Path], truth: pd.DataFrame, parts: dict) -> BenchmarkData:
    out = {}
    for split, idx in parts.items():
        chosen = [mics[i] for i in sorted(idx)]
        names = {m.name for m in chosen}
        out[split] = (chosen, truth[truth["micrograph"].isin(names)].reset_index(drop=True))
    return BenchmarkData(
        *out["train"],
        *out["val"],
        *out["test"],
        split={k: [m.name for m in v[0]] for k, v in out.items()},
        paths={m.name: Path(p) for m, p in zip(mics, paths, strict=True)},
    )


def simulate_mixed(root: Path, settings: dict[str, Any], n: int) -> pd.DataFrame:
    """Simulate ``n`` micrographs of mixed difficulty into ``root`` (hitl).

    Micrograph i uses its own child of ``SeedSequence(data_seed)``: the particle
    diameter alternates over ``diameters`` (one molecule per diameter), the SNR
    is log-uniform in ``snr_range``, the number of ice / aggregate distractors
    uniform in 0..``distractors_max`` and the background ramp uniform in
    [0, ``gradient_max``] noise std; with ``decoys_max`` > 0, uniform 0..``decoys_max``
    decoy particles (a second molecule per diameter, ``decoy_scale`` times its size,
    not in the truth: what the user does not want picked) join the particles. Writes ``micrographs/hitl_NNNN.mrc``,
    ``ground_truth.csv`` / ``.star`` (per-particle diameters) and
    ``simulation.json`` (the draws per micrograph); returns the truth table.
    """
    from ...io.atomic import atomic_write_text
    from ...io.picks import make_picks
    from ...simulate import make_molecule, render_micrograph, write_mrc, write_truth

    diameters = [float(d) for d in settings["diameters"]]
    lo, hi = (float(v) for v in settings["snr_range"])
    children = np.random.SeedSequence(int(settings["data_seed"])).spawn(n + 1)
    mol_rng = np.random.default_rng(children[0])
    molecules = [make_molecule(mol_rng, d) for d in diameters]
    decoys_max = int(settings.get("decoys_max") or 0)
    scale = float(settings.get("decoy_scale") or 1.0)
    decoy_molecules = [make_molecule(mol_rng, d * scale) for d in diameters] if decoys_max else []
    folder = root / "micrographs"
    tables, record = [], []
    for i, child in enumerate(children[1:]):
        rng = np.random.default_rng(child)
        which = i % len(diameters)
        snr = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        distractors = int(rng.integers(0, int(settings["distractors_max"]) + 1))
        gradient = float(rng.uniform(0.0, float(settings["gradient_max"])))
        decoys = int(rng.integers(0, decoys_max + 1)) if decoys_max else 0
        sim = render_micrograph(
            rng,
            size=int(settings["size"]),
            n_particles=int(settings["particles"]),
            diameter=diameters[which],
            snr=snr,
            volume=molecules[which],
            distractors=distractors,
            gradient=gradient,
            decoys=decoys,
            decoy_volume=decoy_molecules[which] if decoys else None,
        )
        name = MIXED_NAME.format(i)
        write_mrc(folder / f"{name}.mrc", sim.image, 1.5)
        tables.append(make_picks(name, sim.centres[:, 0], sim.centres[:, 1], diameters[which]))
        record.append(
            {
                "name": name,
                "diameter": diameters[which],
                "snr": snr,
                "snr_measured": float(sim.snr),
                "distractors": distractors,
                "gradient": gradient,
                "particles": len(sim.centres),
                "decoys": len(sim.decoys),
            }
        )
    truth = pd.concat(tables, ignore_index=True)
    write_truth(root, truth, [r["name"] for r in record])
    atomic_write_text(
        root / "simulation.json",
        json.dumps({"kind": "mixed", "seed": int(settings["data_seed"]), "micrographs": record})
        + "\n",
    )
    return truth


def _real_data(settings: dict, out_dir: Path) -> BenchmarkData:
    from ...io.formats import read_coordinates
    from ...io.micrograph import list_micrographs, read_micrograph

    if not settings.get("data"):
        raise BenchmarkError("--truth needs --data: the folder of micrographs")
    data = settings["data"]
    paths = list_micrographs(data)
    if len(paths) < MIN_REAL_MICROGRAPHS:
        raise BenchmarkError(
            f"{data}: found {len(paths)} micrograph(s); need >= {MIN_REAL_MICROGRAPHS} to split "
            "into training, validation and test"
        )
    truth = read_coordinates(settings["truth"], diameter=settings.get("diameter"))
    if settings.get("diameter"):
        truth["diameter"] = float(settings["diameter"])
    mics = [read_micrograph(p) for p in paths]
    names = [m.name for m in mics]
    have = set(truth["micrograph"])
    if not have & set(names):
        raise BenchmarkError(
            f"{settings['truth']}: no ground-truth pick matches a micrograph name in {data}"
        )
    missing = [n for n in names if n not in have]
    if missing:
        raise BenchmarkError(
            f"{settings['truth']}: no ground truth for {len(missing)} of {len(names)} "
            f"micrograph(s) in {data} (e.g. {missing[0]}); label them or move them out"
        )
    if settings.get("split"):
        parts = _file_split(settings, names)
    else:
        rng = np.random.default_rng(int(settings["split_seed"]))
        order = rng.permutation(len(names))
        n_small = max(1, round(0.15 * len(names)))
        parts = {
            "train": order[2 * n_small :],
            "val": order[:n_small],
            "test": order[n_small : 2 * n_small],
        }
    if settings.get("tile"):
        mics, paths, truth, parts = tile_micrographs(
            mics, truth, parts, int(settings["tile"]), Path(out_dir) / "data" / "tiles"
        )
    _check_diameter(settings, truth, mics)
    return _split(mics, paths, truth, parts)


def tile_micrographs(
    mics: list, truth: pd.DataFrame, parts: dict, tile: int, folder: Path
) -> tuple[list, list[Path], pd.DataFrame, dict[str, list[int]]]:
    """Cut every micrograph into ``tile`` x ``tile`` px tiles (row-major, a remainder
    narrower than a tile is left out), written once to ``folder/<name>__y<row>x<col>.mrc``
    with the micrograph's pixel size; each tile's truth is the particles centred in it,
    shifted to the tile's origin. A tile keeps its micrograph's split (``parts``: indices
    into ``mics`` -> indices into the tiles). Returns tiles, their paths, truth, parts."""
    from ...io.micrograph import Micrograph, write_micrograph

    tiles, paths, tables, index = [], [], [], {}
    for i, m in enumerate(mics):
        h, w = m.data.shape
        rows = truth[truth["micrograph"] == m.name]
        for y0 in range(0, h - tile + 1, tile):
            for x0 in range(0, w - tile + 1, tile):
                name = f"{m.name}__y{y0}x{x0}"
                path = folder / f"{name}.mrc"
                data = np.ascontiguousarray(m.data[y0 : y0 + tile, x0 : x0 + tile])
                if not path.exists():
                    write_micrograph(path, data, pixel_size=m.pixel_size)
                inside = rows["x"].between(x0, x0 + tile, inclusive="left") & rows["y"].between(
                    y0, y0 + tile, inclusive="left"
                )
                part = rows[inside].copy()
                part["micrograph"], part["x"], part["y"] = name, part["x"] - x0, part["y"] - y0
                index.setdefault(i, []).append(len(tiles))
                tiles.append(Micrograph(name, data, path=path, pixel_size=m.pixel_size))
                paths.append(path)
                tables.append(part)
    if not tiles:
        raise BenchmarkError(f"--tile {tile}: every micrograph is smaller than one tile")
    tiled = {k: [t for i in idx for t in index.get(int(i), [])] for k, idx in parts.items()}
    return tiles, paths, pd.concat(tables, ignore_index=True), tiled


def _file_split(settings: dict, names: list[str]) -> dict[str, list[int]]:
    """The split of a JSON file ``{"train": [...], "test": [...]}`` (micrograph names;
    optional ``"val"``). Without ``"val"``, a seeded 15 % (at least one) of the train
    names validate (T_opt) and the rest are the pool; test scores."""
    path = Path(settings["split"])
    try:
        split = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BenchmarkError(f"{path}: cannot read the split ({exc})") from None
    if not isinstance(split, dict) or not all(
        isinstance(split.get(k), list) for k in ("train", "test")
    ):
        raise BenchmarkError(f'{path}: a split needs "train" and "test" lists of micrograph names')
    index = {n: i for i, n in enumerate(names)}
    parts: dict[str, list[int]] = {}
    for key in ("train", "val", "test"):
        listed = [str(n) for n in split.get(key, [])]
        missing = [n for n in listed if n not in index]
        if missing:
            raise BenchmarkError(
                f"{path}: {len(missing)} {key} micrograph(s) not in {settings['data']} "
                f"(e.g. {missing[0]})"
            )
        parts[key] = [index[n] for n in listed]
    if not parts["val"]:
        rng = np.random.default_rng(int(settings["split_seed"]))
        train = list(rng.permutation(parts["train"]))
        n_val = max(1, round(0.15 * len(train)))
        parts["val"], parts["train"] = train[:n_val], train[n_val:]
    if len(parts["train"]) < 2 or not parts["test"]:
        raise BenchmarkError(f"{path}: the split leaves fewer than 2 pool or no test micrographs")
    return parts


def _check_diameter(settings: dict, truth: pd.DataFrame, mics: list) -> None:
    """Refuse a diameter that does not fit the micrographs; fix an automatic input size."""
    from ...detector.config import auto_input_size

    diameter = float(settings.get("diameter") or truth["diameter"].median())
    short = min(min(m.data.shape) for m in mics)
    long_side = max(max(m.data.shape) for m in mics)
    if settings.get("input_size") is None:
        settings["input_size"] = auto_input_size(long_side, diameter)
    at_input = diameter * int(settings["input_size"]) / long_side
    if not (diameter > 0 and diameter <= short / 2 and at_input >= MIN_INPUT_DIAMETER):
        raise BenchmarkError(
            f"{settings['data']}: a diameter of {diameter:g} px does not fit micrographs of "
            f"{short}-{long_side} px: it must be at most half the short side ({short / 2:g} px) "
            f"and at least {MIN_INPUT_DIAMETER:g} px at the network input "
            f"({at_input:.1f} px at input {settings['input_size']})"
        )
    settings["diameter"] = diameter
