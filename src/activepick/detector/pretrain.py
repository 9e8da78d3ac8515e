"""Pretraining of the shipped general model on a broad simulated distribution.

Regenerate the shipped weights with::

    python -m activepick.detector.pretrain --out src/activepick/detector/models/general_light.pt \\
        --minutes 45 --threads 2

Every training image is simulated on the fly (:func:`training_sample`) at a random
scale and then resized exactly as :func:`activepick.detector.data.prepare_image`
resizes a user's micrograph, so that the particle lands at about
``TARGET_DIAMETER_PX`` (32) input pixels - the scale every detector of this package
works at, whatever the particle's size in the original micrograph. The network
therefore serves diameters of 30-300 px: the user's diameter only sets the resize.

The distribution (one draw per image):

- particle diameter in the input 22-46 px (scale jitter around 32); the original
  micrograph is 1-3.5x larger than the input (``D = 22-160 px``), so the resize
  averages the noise by a random factor, as it does on real data;
- a fresh molecule per image from four shape families (:func:`random_molecule`):
  blob chains of 3-20 blobs, rods, rings, globules;
- SNR 0.02-1 (log-uniform, measured at the original scale), defocus 0.5-4 µm,
  pixel size 0.7-3 Å;
- 0-0.3 particles per diameter squared (5 % of images empty);
- clutter not in the truth: 0-12 ice / aggregate blobs, a background ramp on
  half of the images, a carbon edge on a quarter of them.

Training is time-budgeted (``--minutes``) with a cosine learning rate; it is not
bit-reproducible (the number of steps depends on the machine), but the seed fixes
the data stream. The result is written as a float16 checkpoint whose sidecar's
``training`` entry says ``"general": true`` and summarises the distribution.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Generator

import numpy as np

from ..errors import Cancelled
from ..progress import StopFn, drive

#: Input side of a pretraining crop (px) and the batch size.
CROP = 256
BATCH = 8
#: Samples kept in the replay pool, and how many are replaced by fresh ones per step.
POOL = 48
FRESH_PER_STEP = 3
#: The distribution (see the module docstring).
INPUT_DIAMETER = (22.0, 46.0)
DOWNSAMPLE = (1.0, 3.5)
SNR = (0.02, 1.0)
DEFOCUS_UM = (0.5, 4.0)
PIXEL_SIZE = (0.7, 3.0)
DENSITY = (0.0, 0.3)


def distribution() -> dict:
    """The pretraining distribution as a JSON-friendly dict (saved in the sidecar)."""
    return {
        "crop": CROP,
        "input_diameter_px": list(INPUT_DIAMETER),
        "downsample": list(DOWNSAMPLE),
        "snr": list(SNR),
        "defocus_um": list(DEFOCUS_UM),
        "pixel_size": list(PIXEL_SIZE),
        "particles_per_diameter2": list(DENSITY),
        "molecules": "fresh per image: blob chains (3-20 blobs), rods, rings, globules",
        "clutter": "0-12 ice/aggregate blobs, ramp on 1/2, carbon edge on 1/4 of images",
        "real_micrographs_seen": 0,
    }


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


# --------------------------------------------------------------------------- molecules and clutter


def random_molecule(rng: np.random.Generator, diameter: float):
    """A molecule of a randomly drawn shape family, for a broad training distribution.

    Families (equal odds): the default blob chain (:func:`make_molecule`) with 3-20
    blobs; an elongated rod (blobs on a line, aspect ~2-4); a ring / hollow shell
    (blobs on a circle); a compact globule (a few wide blobs). Every family is
    scaled like :func:`make_molecule` to fit inside ``diameter`` px.
    """
    from ..simulate import Molecule, make_molecule

    family = int(rng.integers(4))
    if family == 0:
        return make_molecule(rng, diameter, int(rng.integers(3, 21)))
    n = int(rng.integers(4, 13))
    if family == 1:  # rod
        t = np.linspace(-1.0, 1.0, n)
        centres = np.column_stack([t, rng.normal(0, 0.08, n), rng.normal(0, 0.08, n)])
        sigmas = rng.uniform(0.08, 0.14, n) * 2.0 / rng.uniform(2.0, 4.0)
    elif family == 2:  # ring
        a = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
        centres = np.column_stack([np.cos(a), np.sin(a), rng.normal(0, 0.1, n)])
        sigmas = rng.uniform(0.15, 0.3, n)
    else:  # globule
        n = int(rng.integers(2, 5))
        centres = rng.normal(0, 0.3, (n, 3))
        sigmas = rng.uniform(0.25, 0.45, n)
    weights = rng.uniform(0.5, 1.5, n) * sigmas**3
    centres = centres - np.average(centres, axis=0, weights=weights)
    extent = np.max(np.linalg.norm(centres, axis=1) + 1.5 * sigmas)
    scale = 0.5 * diameter / extent
    return Molecule(centres * scale, sigmas * scale, weights * scale**3)


def carbon_edge(rng: np.random.Generator, shape: tuple[int, int], height: float) -> np.ndarray:
    """A carbon-film edge: a smooth step of ``height`` noise SDs across a random
    gently curved line (the film side is offset), float32 (H, W)."""
    h, w = shape
    theta = rng.uniform(0, 2 * np.pi)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    u = np.cos(theta) * (x - w / 2) + np.sin(theta) * (y - h / 2)
    v = -np.sin(theta) * (x - w / 2) + np.cos(theta) * (y - h / 2)
    offset = rng.uniform(-0.4, 0.4) * min(h, w)
    curve = rng.uniform(-1.0, 1.0) / max(h, w)
    d = u - offset - curve * v**2
    width = rng.uniform(1.0, 6.0)
    return (height / (1.0 + np.exp(-d / width))).astype(np.float32)


def training_sample(rng: np.random.Generator, crop: int = CROP):
    """One simulated training image at the network's scale.

    Returns ``(image (1, crop, crop) tensor, positives (N, 2) input edge coords,
    sizes (N,) input px)``.
    """
    from ..simulate import SimulationError, render_micrograph
    from .data import prepare_image, to_input_points

    f = _log_uniform(rng, *DOWNSAMPLE)
    d_in = rng.uniform(*INPUT_DIAMETER)
    diameter = d_in * f
    side = int(round(crop * f))
    density = 0.0 if rng.random() < 0.05 else rng.uniform(0.02, DENSITY[1])
    n = int(density * (side / diameter) ** 2)
    defocus = rng.uniform(*DEFOCUS_UM)
    for _ in range(3):
        try:
            sim = render_micrograph(
                rng,
                size=side,
                n_particles=n,
                diameter=diameter,
                snr=_log_uniform(rng, *SNR),
                volume=random_molecule(rng, diameter),
                defocus_um=(defocus, defocus),
                pixel_size=rng.uniform(*PIXEL_SIZE),
                distractors=int(rng.integers(0, 13)),
                gradient=rng.uniform(0.0, 4.0) if rng.random() < 0.5 else 0.0,
            )
            break
        except SimulationError:
            n //= 2
    image = sim.image
    if rng.random() < 0.25:
        image = image + carbon_edge(rng, image.shape, rng.uniform(0.5, 4.0))
    tensor, scale = prepare_image(image, crop)
    pos = to_input_points(sim.centres, scale)
    sizes = np.full(len(pos), diameter * 0.5 * (scale[0] + scale[1]))
    return tensor, pos, sizes


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
) -> Generator[dict, None, object]:
    """Pretrain a detector for ``minutes`` (or ``max_steps``); yield progress per step.

    Returns the trained :class:`Detector` (config: ``input_size`` = ``CROP``,
    ``diameter`` = 32, the input-scale particle size). When ``checkpoint`` is
    given the model is also saved there (float16) every ``save_every`` steps.
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
    optimiser = torch.optim.Adam(network.parameters(), lr=lr)
    pool = [training_sample(rng) for _ in range(POOL)]
    budget = minutes * 60.0
    started = time.perf_counter()
    step, losses = 0, []

    def detector(final: bool) -> Detector:
        meta = {
            "general": True,
            "steps": step,
            "batch_size": BATCH,
            "lr": lr,
            "seed": seed,
            "train_time_s": round(time.perf_counter() - started, 1),
            "final_loss": float(np.mean(losses[-50:])) if losses else float("nan"),
            "distribution": distribution(),
            "finished": final,
        }
        return Detector(network, config, meta)

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
        out = network(x)
        loss, _ = detector_loss(
            out,
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
        if checkpoint and step % save_every == 0:
            network.eval()
            save_checkpoint(detector(False), checkpoint, half=True)
            network.train()
        yield {"stage": "pretrain", "step": step, "elapsed_s": elapsed, "loss": losses[-1]}
    network.eval()
    result = detector(True)
    if checkpoint:
        save_checkpoint(result, checkpoint, half=True)
    return result


def main(argv: list[str] | None = None) -> None:
    """``python -m activepick.detector.pretrain --out PATH [--minutes M] [--steps N]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="checkpoint to write (float16 + .json)")
    parser.add_argument("--minutes", type=float, default=45.0, help="time budget")
    parser.add_argument("--steps", type=int, default=None, help="stop after N steps")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    gen = iter_pretrain(
        minutes=args.minutes, max_steps=args.steps, lr=args.lr, seed=args.seed, checkpoint=args.out
    )

    def report(p: dict) -> None:
        if p["step"] % 25 == 0:
            print(f"step {p['step']:6d}  {p['elapsed_s']:7.0f} s  loss {p['loss']:.4f}", flush=True)

    det = drive(gen, report)
    print(f"wrote {args.out} after {det.meta['steps']} steps, {det.meta['train_time_s']} s")


if __name__ == "__main__":
    main()
