"""The input cache wired into rounds: the ``prepare`` hook of training and prediction,
and the learner taking prepared inputs from its session's cache (issue 13)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from scipy.spatial import cKDTree

from activepick.active.settings import LearnerSettings
from activepick.active.workbench import Workbench
from activepick.detector import Detector, DetectorConfig, build_network, predict_picks
from activepick.detector.data import default_prepare, prepare_image
from activepick.detector.input_cache import CACHE_FOLDER, InputCache, prepared_input
from activepick.detector.train import train_detector
from activepick.io.micrograph import Micrograph, read_micrograph, write_micrograph
from activepick.io.picks import make_picks
from activepick.progress import drive

D = 16.0
COLUMNS = ["micrograph", "x", "y", "diameter", "confidence", "status"]


class CountingMicrograph(Micrograph):
    """A micrograph that counts how often its pixels are read."""

    reads = 0

    @property
    def data(self):
        CountingMicrograph.reads += 1
        return self._data

    @data.setter
    def data(self, value):
        self._data = value

    @property
    def shape(self):  # from the header, as a lazy micrograph's
        return self._data.shape


def _files(folder, n=3, size=(96, 128)):
    rng = np.random.default_rng(1)
    paths = []
    for i in range(n):
        paths.append(folder / f"m{i}.mrc")
        write_micrograph(paths[-1], rng.normal(size=size).astype(np.float32))
    return paths


def _detector(width=0.125, input_size=96):
    torch.manual_seed(0)
    cfg = DetectorConfig(arch="light", width=width, input_size=input_size, diameter=D)
    return Detector(build_network("light", width=width), cfg)


def test_default_prepare_is_prepare_image_of_the_pixels(tmp_path):
    mics = [read_micrograph(p) for p in _files(tmp_path)]
    det = _detector()
    default = predict_picks(det, mics)
    calls = []

    def legacy(m, size):  # what prediction did before the hook, by hand
        calls.append((m.name, size))
        return prepare_image(np.asarray(m.data, dtype=np.float32), size)

    explicit = predict_picks(det, mics, prepare=legacy)
    assert calls == [("m0", 96), ("m1", 96), ("m2", 96)]
    assert len(default) > 0
    pd.testing.assert_frame_equal(default[COLUMNS], explicit[COLUMNS])
    t, s = default_prepare(mics[0], 96)
    e, es = prepare_image(mics[0].data, 96)
    assert torch.equal(t, e) and s == es == (0.75, 0.75)


def test_cached_inputs_read_no_pixels_and_give_the_same_picks(tmp_path):
    paths = _files(tmp_path / "mics")

    def pool():
        return [CountingMicrograph(p.stem, read_micrograph(p).data, path=p) for p in paths]

    det, cache = _detector(), InputCache(tmp_path / "cache")
    CountingMicrograph.reads = 0
    first = predict_picks(det, pool(), prepare=lambda m, s: prepared_input(m, s, cache))
    assert cache.misses == 3 and cache.writes == 3 and CountingMicrograph.reads == 3
    fresh = InputCache(tmp_path / "cache")  # a new process: from disk
    CountingMicrograph.reads = 0
    again = predict_picks(det, pool(), prepare=lambda m, s: prepared_input(m, s, fresh))
    assert CountingMicrograph.reads == 0 and (fresh.disk_hits, fresh.misses) == (3, 0)
    pd.testing.assert_frame_equal(first[COLUMNS], again[COLUMNS])
    # training takes the same hook
    labels = make_picks(["m0", "m1"], [40.0, 60.0], [30.0, 50.0], D)
    cfg = dataclasses_replace(det.config, steps=1, batch_size=2)
    CountingMicrograph.reads = 0
    train_detector(pool(), labels, cfg, prepare=lambda m, s: prepared_input(m, s, fresh))
    assert CountingMicrograph.reads == 0 and fresh.misses == 0


def dataclasses_replace(cfg, **kw):
    import dataclasses

    return dataclasses.replace(cfg, **kw)


def test_float16_inputs_change_the_general_models_confidences_by_under_1e_3():
    from activepick.detector.general import load_general_detector
    from activepick.simulate import simulate_micrograph

    rng = np.random.default_rng(0)
    mics = [
        Micrograph(f"m{i}", simulate_micrograph(rng, size=384, n_particles=12, diameter=40)[0])
        for i in range(2)
    ]
    det = load_general_detector(40.0)
    exact = predict_picks(det, mics, threshold=0.0, nms_iou=1.0)  # every cell, no NMS
    cache = InputCache(None)
    rounded = predict_picks(
        det, mics, threshold=0.0, nms_iou=1.0, prepare=lambda m, s: prepared_input(m, s, cache)
    )
    assert len(exact) == len(rounded) > 100
    for name in ("m0", "m1"):
        a, b = exact[exact["micrograph"] == name], rounded[rounded["micrograph"] == name]
        dist, j = cKDTree(b[["x", "y"]].to_numpy()).query(a[["x", "y"]].to_numpy())
        dconf = np.abs(a["confidence"].to_numpy() - b["confidence"].to_numpy()[j])
        # measured: 0.009 px and 6.8e-4 at most (mean 5e-4 over 2,028 cells, 512 px inputs)
        assert dist.max() < 0.05 and dconf.max() < 1e-3


def test_a_learner_with_a_session_takes_inputs_from_its_cache(tmp_path):
    mics = [read_micrograph(p) for p in _files(tmp_path / "mics", n=4)]
    cfg = DetectorConfig(arch="light", width=0.125, input_size=96, diameter=D, batch_size=2)
    settings = LearnerSettings(detector=cfg, protocol="thesis", init="scratch", train_steps=1)
    wb = Workbench.for_micrographs(mics, settings)
    wb.learner.add_labels(make_picks(["m0", "m1"], [40.0, 60.0], [30.0, 50.0], D))
    drive(wb.iter_round())  # no session: nothing cached
    assert not (tmp_path / "s" / CACHE_FOLDER).exists()
    no_cache = wb.learner.predictions.copy()
    wb.create_session(tmp_path / "s")
    drive(wb.learner.iter_predict())  # the same detector, inputs rounded through float16
    cached = wb.learner.predictions
    assert len(cached) == len(no_cache) > 0
    np.testing.assert_allclose(cached["confidence"], no_cache["confidence"], atol=1e-6)
    files = sorted((tmp_path / "s" / CACHE_FOLDER).glob("*.npz"))
    assert len(files) == 4  # one per micrograph at the one input size
    from activepick.detector.input_cache import session_prepare

    cache = session_prepare(wb.session).cache
    assert (cache.misses, cache.writes) == (4, 4)
    drive(wb.iter_round())  # train on m0, m1 and predict all 4: every input from memory
    assert cache.misses == 4 and cache.memory_hits == 2 + 4
    wb.close()


def test_cache_entries_survive_a_reopened_session(tmp_path, size=96):
    mics = [read_micrograph(p) for p in _files(tmp_path / "mics", n=2)]
    cfg = DetectorConfig(arch="light", width=0.125, input_size=size, diameter=D, batch_size=2)
    settings = LearnerSettings(detector=cfg, protocol="thesis", init="scratch", train_steps=1)
    wb = Workbench.for_micrographs(mics, settings)
    wb.create_session(tmp_path / "s")
    wb.learner.add_labels(make_picks(["m0"], [40.0], [30.0], D))
    drive(wb.iter_round())
    before = wb.learner.predictions
    wb.close()
    again = Workbench.open(tmp_path / "s")
    from activepick.detector.input_cache import session_prepare

    drive(again.learner.iter_predict())
    cache = session_prepare(again.session).cache
    assert cache.misses == 0 and cache.disk_hits == 2
    pd.testing.assert_frame_equal(
        before[COLUMNS].reset_index(drop=True),
        again.learner.predictions[COLUMNS].reset_index(drop=True),
    )
    again.close()
