"""Simulated data sets on disk: micrographs, ground truth and settings (SPEC section 6).

:func:`simulate_dataset` draws the micrographs with the numpy backend
(:mod:`.physics`) or, when ``backend="aspire"``, with the optional ASPIRE backend
(:mod:`.aspire`, imported only then), and writes them with their ground truth.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from ..errors import Cancelled
from .physics import (
    AMPLITUDE_CONTRAST,
    CS_MM,
    VOLTAGE_KV,
    SimulationError,
    make_molecule,
    micrograph_shape,
    render_micrograph,
)

#: File name stem of simulated micrographs: ``synth_0000`` ...
NAME_FORMAT = "synth_{:04d}"
BACKENDS = ("numpy", "aspire")
#: Label / comment written into the simulated MRC and STAR files (no time stamp).
FILE_LABEL = "Simulated by napari-activepick (activepick.simulate)"

Progress = Callable[[dict], None] | None
ShouldStop = Callable[[], bool] | None


def _numpy_micrographs(
    seed: int, n: int, shape: tuple[int, int], settings: dict
) -> Iterator[tuple[np.ndarray, np.ndarray, dict]]:
    """Yield (image, centres, info) per micrograph; one molecule for the whole set.

    Micrograph ``i`` uses its own child of ``SeedSequence(seed)``, so the first
    micrographs of a set do not depend on ``n``.
    """
    children = np.random.SeedSequence(seed).spawn(n + 1)
    molecule = make_molecule(np.random.default_rng(children[0]), settings["diameter"])
    settings["molecule"] = molecule.to_dict()
    for child in children[1:]:
        sim = render_micrograph(
            np.random.default_rng(child),
            size=shape,
            n_particles=settings["particles"],
            diameter=settings["diameter"],
            snr=settings["snr"],
            volume=molecule,
            defocus_um=tuple(settings["defocus_um"]),
            pixel_size=settings["pixel_size"],
            distractors=settings["distractors"],
            gradient=settings["gradient"],
        )
        info = {
            "defocus_um": sim.defocus_um,
            "snr_measured": sim.snr,
            "distractors": sim.distractors.tolist(),
        }
        yield sim.image, sim.centres, info


def write_mrc(path: str | Path, image: np.ndarray, pixel_size: float) -> None:
    """Write a float32 MRC with ``pixel_size`` (Å/px) in the header, atomically."""
    import mrcfile

    from ..io.atomic import atomic_path

    with atomic_path(path) as tmp, mrcfile.new(tmp, overwrite=True) as mrc:
        mrc.set_data(np.ascontiguousarray(image, dtype=np.float32))
        mrc.voxel_size = pixel_size
        mrc.header.label[0] = FILE_LABEL.encode()  # not mrcfile's time stamp: reproducible


def write_truth(out: Path, truth, names: list[str]) -> tuple[Path, Path]:
    """Write ``ground_truth.csv`` (pick table) and ``ground_truth.star`` into ``out``."""
    import pandas as pd
    import starfile

    from ..io.atomic import atomic_open, atomic_path

    csv_path, star_path = out / "ground_truth.csv", out / "ground_truth.star"
    with atomic_open(csv_path, "w", encoding="utf-8", newline="") as fh:
        truth.to_csv(fh, index=False)
    star = pd.DataFrame(
        {
            "rlnMicrographName": [f"{m}.mrc" for m in truth["micrograph"]],
            "rlnCoordinateX": truth["x"].to_numpy(),
            "rlnCoordinateY": truth["y"].to_numpy(),
        }
    )
    with atomic_path(star_path) as tmp:
        starfile.write({"particles": star}, tmp)
        # starfile's first line is a time stamp; a fixed comment keeps the file reproducible
        lines = tmp.read_text(encoding="utf-8").splitlines(keepends=True)
        if lines and lines[0].startswith("# Created by the starfile"):
            lines[0] = f"# {FILE_LABEL}\n"
        tmp.write_text("".join(lines), encoding="utf-8")
    return csv_path, star_path


def _check_folder(folder: Path, names: list[str]) -> None:
    """Refuse a micrograph folder that holds other micrographs (they would mix with ours)."""
    if not folder.is_dir():
        return
    ours = {f"{n}.mrc" for n in names}
    others = sorted(p.name for p in folder.glob("*.mrc") if p.name not in ours)
    if others:
        raise SimulationError(
            f"{folder}: holds {len(others)} other micrograph(s) (e.g. {others[0]}); "
            "simulate into an empty folder"
        )


def simulate_dataset(
    out: str | Path,
    *,
    n: int = 10,
    particles: int = 40,
    snr: float = 0.05,
    size: int | tuple[int, int] = 1024,
    diameter: float = 64,
    seed: int = 0,
    distractors: int = 0,
    gradient: float = 0.0,
    backend: str = "numpy",
    defocus_um: tuple[float, float] = (1.0, 2.5),
    pixel_size: float = 1.5,
    progress: Progress = None,
    should_stop: ShouldStop = None,
) -> dict:
    """Simulate ``n`` micrographs with ground truth into the folder ``out``.

    Writes ``out/micrographs/synth_0000.mrc`` ... (float32, ``pixel_size`` Å/px
    in the header), ``out/ground_truth.csv`` (the pick table, status
    ``imported``), ``out/ground_truth.star`` (one ``data_particles`` block:
    rlnMicrographName = file name, rlnCoordinateX/Y = centre column / row in px)
    and ``out/simulation.json`` (settings, seed, molecule, per-micrograph defocus,
    measured SNR and distractors). Every file is written atomically.

    One molecule is drawn per dataset (from ``seed``); see
    :func:`simulate_micrograph` for the other settings. ``backend`` is "numpy"
    (default, ~0.1 s per 1024 px micrograph) or "aspire" (the ASPIRE package's
    ``MicrographSimulation``, optional extra). ``progress`` receives
    ``{"stage": "simulate", "step": i + 1, "total": n}`` after each micrograph;
    ``should_stop()`` is checked before each and raises :class:`Cancelled`.

    Returns ``{"micrographs": [Path, ...], "truth": DataFrame, "settings": dict}``.
    """
    import pandas as pd

    from ..io.picks import empty_picks, make_picks

    if backend not in BACKENDS:
        raise SimulationError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if n < 0:
        raise SimulationError(f"n must be >= 0, got {n}")
    out = Path(out)
    shape = micrograph_shape(size)
    settings = {
        "backend": backend,
        "n": int(n),
        "particles": int(particles),
        "snr": float(snr),
        "size": list(shape),
        "diameter": float(diameter),
        "seed": int(seed),
        "distractors": int(distractors),
        "gradient": float(gradient),
        "defocus_um": [float(d) for d in defocus_um],
        "pixel_size": float(pixel_size),
        "voltage_kv": VOLTAGE_KV,
        "cs_mm": CS_MM,
        "amplitude_contrast": AMPLITUDE_CONTRAST,
        "snr_definition": "var(CTF-filtered particle signal within diameter/2 of a centre) "
        "/ var(noise)",
        "coordinates": "x = column, y = row, pixels, origin at the top-left pixel centre",
    }
    names = [NAME_FORMAT.format(i) for i in range(n)]
    folder = out / "micrographs"
    _check_folder(folder, names)
    if backend == "aspire":
        from .aspire import aspire_micrographs

        stream = aspire_micrographs(seed, n, shape, settings)
    else:
        stream = _numpy_micrographs(seed, n, shape, settings)
    paths, tables, per_micrograph = [], [], []
    for i, name in enumerate(names):
        if should_stop is not None and should_stop():
            raise Cancelled(f"{out}: simulation stopped after {i} of {n} micrographs")
        path = folder / f"{name}.mrc"
        try:
            image, centres, info = next(stream)
        except SimulationError as exc:
            raise SimulationError(f"{path}: {exc}") from None
        write_mrc(path, image, pixel_size)
        paths.append(path)
        tables.append(make_picks(name, centres[:, 0], centres[:, 1], float(diameter)))
        per_micrograph.append({"name": name, "particles": len(centres), **info})
        if progress is not None:
            progress({"stage": "simulate", "step": i + 1, "total": n})
    truth = pd.concat(tables, ignore_index=True) if tables else empty_picks()
    write_truth(out, truth, names)
    record = {**settings, "micrographs": per_micrograph}
    from ..io.atomic import atomic_write_text

    atomic_write_text(out / "simulation.json", json.dumps(record, indent=2) + "\n")
    return {"micrographs": paths, "truth": truth, "settings": record}
