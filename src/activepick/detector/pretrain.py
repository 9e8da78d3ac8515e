"""Pretraining of the shipped general model: realistic simulated micrographs, plus
optionally the training part of a labelled real set.

Regenerate the shipped weights with (docs/model_card.md gives the exact command)::

    python -m activepick.detector.pretrain --out src/activepick/detector/models/general_light.pt \\
        --minutes 240 --threads 2 --real-micrographs DIR --real-labels FILE \\
        --real-diameter D --real-split split.json --real-part train --real-val 2

Every simulated image is drawn on the fly (:func:`training_sample`,
:mod:`activepick.simulate.realism`) at a random scale and then resized exactly as
:func:`activepick.detector.data.prepare_image` resizes a user's micrograph, so that
the particle lands at about ``TARGET_DIAMETER_PX`` (32) input pixels - the scale
every detector of this package works at. The network therefore serves diameters of
30-300 px: the user's diameter only sets the resize.

The simulated distribution (one draw per image, :func:`~activepick.simulate.realism.draw_spec`):
particle diameter 22-46 input px, the original 1-3.5x larger (the resize averages
the noise as on real data); eight molecule families (shells, rings, barrels,
multi-domain and symmetric complexes, rods, globules, blob chains) in random or
preferred orientations; 0-0.8 particles per diameter squared, up to touching, cut
by the border; CTF-modulated ice noise with Thon rings, Poisson counting noise,
thin and thick ice; carbon edges and holes, contamination, ice blobs, small decoys;
and on a third of the images a filtered look (blur, local contrast equalisation,
8-bit quantisation, JPEG).

Real micrographs (``--real-*``): random crops of the labelled micrographs at the
same scale jitter, some with added noise so that they also look raw; they make up
``real_fraction`` of each batch. ``--real-val N`` holds N of them out for model
selection: every ``eval_every`` steps the F1 on those and on a fixed simulated
validation set is measured, and the checkpoint of the best mean is kept
(``--minutes`` bounds the run; the best step is in the sidecar).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass

import numpy as np

from ..errors import Cancelled
from ..progress import StopFn, drive

#: Input side of a pretraining crop (px) and the batch size.
CROP = 256
BATCH = 8
#: Simulated samples kept in the replay pool, and how many are replaced per step.
POOL = 48
FRESH_PER_STEP = 2
#: The distribution (see the module docstring).
INPUT_DIAMETER = (22.0, 46.0)
DOWNSAMPLE = (1.0, 3.5)
SNR = (0.02, 1.0)
#: Share of a batch drawn from real micrographs when a real set is given.
REAL_FRACTION = 0.25
#: Real crops stay this many diameters inside the micrograph (border artefacts).
REAL_MARGIN = 1.0
#: Simulated validation images (fixed seed) and the validation period in steps.
SIM_VAL_IMAGES = 12
EVAL_EVERY = 200

#: ``(image (1, crop, crop) tensor, positives (N, 2) input edge coords, sizes (N,))``.
Sample = tuple


def distribution(real: RealSource | None = None) -> dict:
    """The pretraining distribution as a JSON-friendly dict (saved in the sidecar)."""
    from ..simulate.molecules import FAMILIES
    from ..simulate.realism import FILTERS

    return {
        "crop": CROP,
        "input_diameter_px": list(INPUT_DIAMETER),
        "downsample": list(DOWNSAMPLE),
        "snr": list(SNR),
        "defocus_um": [0.5, 4.0],
        "pixel_size": [0.7, 3.0],
        "particles_per_diameter2": [0.0, 0.8],
        "min_distance_diameters": [0.8, 1.3],
        "molecules": list(FAMILIES),
        "noise": "CTF-modulated ice noise (B 20-300 A^2), Poisson or Gaussian counting noise",
        "clutter": "carbon edge or hole (30%), contamination (20%), 0-9 ice blobs, decoys (25%)",
        "filtered_look": list(FILTERS),
        "real_fraction": REAL_FRACTION if real is not None else 0.0,
        "real_micrographs_seen": 0 if real is None else len(real.images),
        "real_micrographs": [] if real is None else list(real.names),
    }


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


# --------------------------------------------------------------------------- samples


def simulated_micrograph(rng: np.random.Generator, crop: int = CROP):
    """One simulated micrograph of the pretraining distribution at its original size;
    returns the :class:`~activepick.simulate.realism.RealisticMicrograph`."""
    from ..simulate.realism import draw_spec, render_realistic

    f = _log_uniform(rng, *DOWNSAMPLE)
    diameter = rng.uniform(*INPUT_DIAMETER) * f
    side = int(round(crop * f))
    return render_realistic(rng, draw_spec(rng, (side, side), diameter, snr=SNR))


def training_sample(rng: np.random.Generator, crop: int = CROP) -> Sample:
    """One simulated training image at the network's scale (see :data:`Sample`)."""
    from .data import prepare_image, to_input_points

    sim = simulated_micrograph(rng, crop)
    tensor, scale = prepare_image(sim.image, crop)
    pos = to_input_points(sim.centres, scale)
    sizes = np.full(len(pos), sim.spec.diameter * 0.5 * (scale[0] + scale[1]))
    return tensor, pos, sizes


@dataclass
class RealSource:
    """Labelled real micrographs to crop from: images, label centres (N, 2) per image,
    the particle diameter (px) and the names."""

    images: list[np.ndarray]
    centres: list[np.ndarray]
    diameter: float
    names: list[str]


def real_source(micrographs: list, truth, diameter: float) -> RealSource:
    """A :class:`RealSource` of micrographs (``.name``, ``.data``) and their pick table."""
    names = [m.name for m in micrographs]
    centres = [truth.loc[truth["micrograph"] == n, ["x", "y"]].to_numpy(np.float64) for n in names]
    images = [np.asarray(m.data, dtype=np.float32) for m in micrographs]
    return RealSource(images, centres, float(diameter), names)


def raw_look(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """A noisier copy of a (possibly denoised) real image: white Gaussian noise of
    0.3-3 times its standard deviation (log-uniform)."""
    sd = float(image.std()) * _log_uniform(rng, 0.3, 3.0)
    return image + rng.standard_normal(image.shape, dtype=np.float32) * np.float32(sd)


def real_sample(rng: np.random.Generator, source: RealSource, crop: int = CROP) -> Sample:
    """A random crop of a real micrograph at the pretraining scale jitter (half of them
    with :func:`raw_look` noise), as a :data:`Sample`. Crops keep
    :data:`REAL_MARGIN` diameters from the micrograph's border."""
    from .data import prepare_image, to_input_points

    i = int(rng.integers(len(source.images)))
    image, d = source.images[i], source.diameter
    h, w = image.shape
    margin = int(math.ceil(REAL_MARGIN * d))
    side = int(round(crop * d / rng.uniform(*INPUT_DIAMETER)))
    side = max(8, min(side, h - 2 * margin, w - 2 * margin))
    y0 = int(rng.integers(margin, max(margin, h - margin - side) + 1))
    x0 = int(rng.integers(margin, max(margin, w - margin - side) + 1))
    sub = image[y0 : y0 + side, x0 : x0 + side]
    if rng.random() < 0.5:
        sub = raw_look(rng, sub)
    tensor, scale = prepare_image(sub, crop)
    c = source.centres[i] - np.array([x0, y0], dtype=np.float64)
    inside = (c[:, 0] >= 0) & (c[:, 0] <= side - 1) & (c[:, 1] >= 0) & (c[:, 1] <= side - 1)
    pos = to_input_points(c[inside], scale)
    return tensor, pos, np.full(len(pos), d * 0.5 * (scale[0] + scale[1]))


# --------------------------------------------------------------------------- validation


@dataclass
class ValidationSet:
    """Images with their truth for model selection: ``items`` are
    ``(name, image, centres (N, 2), diameter, group)``; ``group`` is "sim" or "real"."""

    items: list[tuple[str, np.ndarray, np.ndarray, float, str]]

    def groups(self) -> list[str]:
        return sorted({it[4] for it in self.items})


def validation_set(
    seed: int = 12345, n_sim: int = SIM_VAL_IMAGES, real: RealSource | None = None
) -> ValidationSet:
    """A fixed simulated validation set (``n_sim`` images drawn with ``seed``) plus
    every image of ``real``."""
    rng = np.random.default_rng(seed)
    items = []
    for k in range(n_sim):
        sim = simulated_micrograph(rng)
        items.append((f"sim_{k:03d}", sim.image, sim.centres, sim.spec.diameter, "sim"))
    if real is not None:
        for name, image, centres in zip(real.names, real.images, real.centres, strict=True):
            items.append((name, image, centres, real.diameter, "real"))
    return ValidationSet(items)


def validation_scores(detector, val: ValidationSet) -> dict[str, float]:
    """F1 at the best threshold of ``detector`` on each group of ``val`` and their mean
    (``"score"``). The detector is used at each image's own diameter; picks and
    truth within half a diameter of the border are left out."""
    import pandas as pd

    from .. import metrics
    from ..io.picks import make_picks
    from .networks import Detector
    from .predict import predict_picks

    out = {}
    for group in val.groups():
        preds, truths, shapes = [], [], {}
        for name, image, centres, d, g in val.items:
            if g != group:
                continue
            cfg = dataclasses.replace(detector.config, diameter=float(d), input_size=None)
            det = Detector(detector.network, cfg, detector.meta)
            p = predict_picks(det, [image], threshold=0.0)
            p["micrograph"] = name
            preds.append(p)
            truths.append(make_picks(name, centres[:, 0], centres[:, 1], float(d)))
            shapes[name] = image.shape
        margin = 0.5 * max(it[3] for it in val.items if it[4] == group)
        pred = metrics.inside_margin(pd.concat(preds, ignore_index=True), shapes, margin)
        truth = metrics.inside_margin(pd.concat(truths, ignore_index=True), shapes, margin)
        out[group] = round(float(metrics.summary(pred, truth)["f1_topt"]), 4)
    out["score"] = round(float(np.mean([out[g] for g in val.groups()])), 4)
    return out


# --------------------------------------------------------------------------- the loop


def iter_pretrain(
    *,
    minutes: float = 45.0,
    max_steps: int | None = None,
    lr: float = 2e-3,
    seed: int = 0,
    arch: str = "light",
    should_stop: StopFn | None = None,
    checkpoint: str | None = None,
    save_every: int = 200,
    real: RealSource | None = None,
    real_fraction: float = REAL_FRACTION,
    validation: ValidationSet | None = None,
    eval_every: int = EVAL_EVERY,
    init=None,
    evaluate: Callable | None = None,
) -> Generator[dict, None, object]:
    """Pretrain a detector for ``minutes`` (or ``max_steps``); yield progress per step.

    Returns the trained :class:`Detector` (config: ``input_size`` = ``CROP``,
    ``diameter`` = 32, the input-scale particle size). With ``validation`` the
    weights of the best validation score (:func:`validation_scores`, every
    ``eval_every`` steps and at the end) are returned and saved; else the last
    ones. ``checkpoint`` is written (float16) every ``save_every`` steps and at the
    end. ``init`` (a Detector of the same arch) continues from its weights.
    """
    import torch

    from .checkpoint import save_checkpoint
    from .config import TARGET_DIAMETER_PX, DetectorConfig
    from .data import random_view, transform_image, transform_points
    from .networks import Detector, network_for_config
    from .targets import detector_loss, encode_targets, grid_shape

    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    config = DetectorConfig(arch=arch, diameter=TARGET_DIAMETER_PX, input_size=CROP, device="cpu")
    network = network_for_config(config)
    if init is not None:
        network.load_state_dict(init.network.state_dict())
    evaluate = evaluate or validation_scores
    optimiser = torch.optim.Adam(network.parameters(), lr=lr)
    pool = [training_sample(rng) for _ in range(POOL)]
    budget = minutes * 60.0
    started = time.perf_counter()
    step, losses, history = 0, [], []
    best: dict = {"score": -1.0, "step": 0, "state": None}

    def meta(final: bool) -> dict:
        return {
            "general": True,
            "steps": step,
            "batch_size": BATCH,
            "lr": lr,
            "seed": seed,
            "train_time_s": round(time.perf_counter() - started, 1),
            "final_loss": float(np.mean(losses[-50:])) if losses else None,
            "distribution": distribution(real),
            "validation": history,
            "best_step": best["step"] if validation is not None else step,
            "init": None if init is None else init.meta.get("steps"),
            "finished": final,
        }

    def validate() -> None:
        network.eval()
        scores = evaluate(Detector(network, config, {}), validation)
        network.train()
        history.append({"step": step, **scores})
        if scores["score"] > best["score"]:
            state = {k: v.detach().clone() for k, v in network.state_dict().items()}
            best.update(score=scores["score"], step=step, state=state)

    network.train()
    while True:
        elapsed = time.perf_counter() - started
        if elapsed >= budget or (max_steps is not None and step >= max_steps):
            break
        if should_stop is not None and should_stop():
            raise Cancelled(f"pretraining cancelled after {step} steps")
        frac = elapsed / budget if max_steps is None else step / max_steps
        for group in optimiser.param_groups:
            group["lr"] = lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))
        images, targets, weights = [], [], []
        for i in rng.choice(len(pool), BATCH, replace=False):
            if real is not None and rng.random() < real_fraction:
                img, pos, sizes = real_sample(rng, real)
            else:
                img, pos, sizes = pool[int(i)]
            view = random_view(rng, True)
            img = transform_image(img, view)
            pos = transform_points(pos, (CROP, CROP), view)
            enc = encode_targets(
                pos,
                sizes,
                grid_shape((CROP, CROP)),
                TARGET_DIAMETER_PX,
                pos_weight=config.pos_weight,
            )
            images.append(img)
            targets.append(enc.target)
            weights.append(enc.weight)
        x = torch.stack(images).to(memory_format=torch.channels_last)
        loss, _ = detector_loss(
            network(x),
            torch.as_tensor(np.stack(targets)),
            torch.as_tensor(np.stack(weights)),
            coord_weight=config.coord_weight,
        )
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        step += 1
        losses.append(float(loss.detach()))
        for i in rng.choice(len(pool), FRESH_PER_STEP, replace=False):
            pool[int(i)] = training_sample(rng)
        if validation is not None and step % eval_every == 0:
            validate()
        if checkpoint and step % save_every == 0:
            network.eval()
            save_checkpoint(Detector(network, config, meta(False)), checkpoint + ".last", half=True)
            network.train()
        info = {"stage": "pretrain", "step": step, "elapsed_s": elapsed, "loss": losses[-1]}
        if history and history[-1]["step"] == step:
            info["validation"] = history[-1]
        yield info
    if validation is not None and (not history or history[-1]["step"] != step):
        validate()
    if best["state"] is not None:
        network.load_state_dict(best["state"])
    network.eval()
    result = Detector(network, config, meta(True))
    if checkpoint:
        save_checkpoint(result, checkpoint, half=True)
    return result


def _real_from_args(args) -> tuple[RealSource | None, RealSource | None]:
    """(training source, validation source) from the ``--real-*`` options."""
    if not args.real_micrographs:
        return None, None
    from ..io.labelled import load_labelled_set

    labelled = load_labelled_set(
        args.real_micrographs, args.real_labels, args.real_diameter, args.real_split
    )
    mics, truth = labelled.part(args.real_part if args.real_split else None)
    n_val = int(args.real_val)
    rng = np.random.default_rng(args.seed + 7)
    order = rng.permutation(len(mics))
    val_idx, train_idx = sorted(order[:n_val]), sorted(order[n_val:])
    train = real_source([mics[i] for i in train_idx], truth, labelled.diameter)
    val = real_source([mics[i] for i in val_idx], truth, labelled.diameter) if n_val else None
    return train, val


def main(argv: list[str] | None = None) -> None:
    """``python -m activepick.detector.pretrain --out PATH [--minutes M] [--steps N] ...``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="checkpoint to write (float16 + .json)")
    parser.add_argument("--minutes", type=float, default=45.0, help="time budget")
    parser.add_argument("--steps", type=int, default=None, help="stop after N steps")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--init", default=None, help="continue from this general checkpoint")
    parser.add_argument("--real-micrographs", default=None, help="folder of real micrographs")
    parser.add_argument("--real-labels", default=None, help="their labels (coordinate file)")
    parser.add_argument("--real-diameter", type=float, default=None, help="particle px")
    parser.add_argument("--real-split", default=None, help="JSON split file")
    parser.add_argument("--real-part", default="train", help="split part to learn from")
    parser.add_argument("--real-val", type=int, default=0, help="real micrographs held out")
    parser.add_argument("--real-fraction", type=float, default=REAL_FRACTION)
    parser.add_argument("--eval-every", type=int, default=EVAL_EVERY)
    parser.add_argument("--no-validation", action="store_true", help="keep the last weights")
    args = parser.parse_args(argv)
    if args.real_micrographs and not (args.real_labels and args.real_diameter):
        parser.error("--real-micrographs needs --real-labels and --real-diameter")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    real, real_val = _real_from_args(args)
    val = None if args.no_validation else validation_set(real=real_val)
    init = None
    if args.init:
        from .checkpoint import load_checkpoint

        init = load_checkpoint(args.init, device="cpu")
    gen = iter_pretrain(
        minutes=args.minutes,
        max_steps=args.steps,
        lr=args.lr,
        seed=args.seed,
        checkpoint=args.out,
        real=real,
        real_fraction=args.real_fraction,
        validation=val,
        eval_every=args.eval_every,
        init=init,
    )

    def report(p: dict) -> None:
        if "validation" in p:
            print(f"step {p['step']:6d}  validation {p['validation']}", flush=True)
        if p["step"] % 25 == 0:
            print(f"step {p['step']:6d}  {p['elapsed_s']:7.0f} s  loss {p['loss']:.4f}", flush=True)

    det = drive(gen, report)
    print(
        f"wrote {args.out} after {det.meta['steps']} steps, {det.meta['train_time_s']} s "
        f"(best step {det.meta['best_step']})"
    )


if __name__ == "__main__":
    main()
