"""The session cache of prepared network inputs (activepick.detector.input_cache)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from activepick.detector import DetectorConfig, auto_input_size
from activepick.detector.data import prepare_image
from activepick.detector.input_cache import (
    CACHE_FOLDER,
    InputCache,
    iter_fill_cache,
    prepared_input,
    session_input_cache,
)
from activepick.errors import MicrographError
from activepick.io.micrograph import read_micrograph, write_micrograph
from activepick.progress import drive


def _image(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.normal(3.0, 2.0, (h, w)) + np.linspace(0, 5, w)[None]).astype(np.float32)


def _write_mics(folder, n: int, h: int, w: int) -> list:
    """``n`` micrograph files ``m0.mrc`` ... of ``h`` x ``w`` px in ``folder``."""
    paths = [folder / f"m{i}.mrc" for i in range(n)]
    for i, p in enumerate(paths):
        write_micrograph(p, _image(h, w, seed=i))
    return paths


@pytest.fixture
def mrc(tmp_path):
    path = tmp_path / "mics" / "a.mrc"
    path.parent.mkdir()
    write_micrograph(path, _image(300, 200))
    return path


def _fp16_close(a: torch.Tensor, b: torch.Tensor) -> None:
    # float16 keeps 11 significant bits: |error| <= 2**-11 * |value| (normal range)
    assert a.shape == b.shape and a.dtype == b.dtype == torch.float32
    err = (a - b).abs()
    assert bool((err <= b.abs() * 2.0**-11 + 1e-7).all())


def test_same_tensor_as_prepare_image_up_to_fp16(tmp_path, mrc):
    cache = session_input_cache(tmp_path / "session")
    expected, scale = prepare_image(read_micrograph(mrc).data, 160)
    first, s1 = prepared_input(mrc, 160, cache)
    assert s1 == scale == (107 / 200, 160 / 300)  # 200 x 300 -> 107 x 160
    assert first.shape == (1, 160, 128)  # padded to multiples of 32 with zeros
    _fp16_close(first, expected)
    assert float(first[0, :, 107:].abs().max()) == 0.0
    assert cache.misses == 1 and cache.writes == 1
    files = list((tmp_path / "session" / CACHE_FOLDER).glob("*.npz"))
    assert len(files) == 1
    # a fresh cache (new process) reads the file instead of the micrograph
    again = InputCache(tmp_path / "session" / CACHE_FOLDER)
    second, s2 = prepared_input(mrc, 160, again)
    assert s2 == scale and torch.equal(second, first)
    assert (again.disk_hits, again.misses) == (1, 0)
    third, _ = prepared_input(mrc, 160, again)
    assert torch.equal(third, first) and again.memory_hits == 1


def test_hit_does_not_read_the_micrograph(tmp_path, mrc, monkeypatch):
    cache = session_input_cache(tmp_path / "s")
    prepared_input(mrc, 128, cache)
    import activepick.detector.input_cache as mod

    def boom(*a, **k):
        raise AssertionError("micrograph read on a cache hit")

    monkeypatch.setattr(mod, "read_micrograph", boom)
    cold = InputCache(tmp_path / "s" / CACHE_FOLDER)
    t, _ = prepared_input(mrc, 128, cold)
    assert t.shape == (1, 128, 96) and cold.disk_hits == 1


def test_key_follows_file_and_settings(tmp_path, mrc):
    cache = session_input_cache(tmp_path / "s")
    prepared_input(mrc, 128, cache)
    prepared_input(mrc, 160, cache)  # another input size: another entry
    assert cache.misses == 2
    # the file changes (new content, new mtime): a miss, and the new content is used
    write_micrograph(mrc, _image(300, 200, seed=1))
    st = mrc.stat()
    os.utime(mrc, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    t, _ = prepared_input(mrc, 128, cache)
    assert cache.misses == 3
    _fp16_close(t, prepare_image(_image(300, 200, seed=1), 128)[0])
    # a symlink is another micrograph (own entry), with the same content
    link = tmp_path / "mics" / "b.mrc"
    link.symlink_to(mrc)
    t2, _ = prepared_input(link, 128, cache)
    assert cache.misses == 4 and torch.equal(t2, t)


def test_micrograph_objects_and_auto_input_size(tmp_path, mrc):
    cache = session_input_cache(tmp_path / "s")
    mic = read_micrograph(mrc)
    cfg = DetectorConfig(diameter=20.0, input_size=None)
    size = auto_input_size(300, 20.0)
    assert size == 480
    t, scale = prepared_input(mic, cfg, cache)
    _fp16_close(t, prepare_image(mic.data, size)[0])
    # the same file given by path hits the entry made from the Micrograph
    t2, scale2 = prepared_input(mrc, cfg, cache)
    assert torch.equal(t, t2) and scale2 == scale and cache.misses == 1
    # a bare array has no file: prepared every time, never written
    t3, _ = prepared_input(mic.data, cfg, cache)
    assert torch.equal(t3, t) and cache.misses == 2 and cache.writes == 1


def test_memory_lru_is_bounded_in_bytes(tmp_path):
    paths = _write_mics(tmp_path, 3, 64, 64)
    entry_bytes = 64 * 64 * 2
    cache = InputCache(None, memory_bytes=2 * entry_bytes)  # memory only, 2 entries
    for p in paths:
        prepared_input(p, 64, cache)
    assert len(cache) == 2 and cache.writes == 0
    prepared_input(paths[2], 64, cache)  # the most recent stays
    assert cache.memory_hits == 1
    prepared_input(paths[0], 64, cache)  # evicted earlier: prepared again
    assert cache.misses == 4


def test_damaged_entry_is_prepared_again(tmp_path, mrc):
    cache = session_input_cache(tmp_path / "s")
    good, _ = prepared_input(mrc, 128, cache)
    (entry,) = (tmp_path / "s" / CACHE_FOLDER).glob("*.npz")
    entry.write_bytes(entry.read_bytes()[:100])
    fresh = InputCache(tmp_path / "s" / CACHE_FOLDER)
    t, _ = prepared_input(mrc, 128, fresh)
    assert torch.equal(t, good) and fresh.misses == 1 and fresh.writes == 1


def test_missing_micrograph_names_the_file(tmp_path):
    cache = session_input_cache(tmp_path / "s")
    with pytest.raises(MicrographError, match="gone.mrc"):
        prepared_input(tmp_path / "gone.mrc", DetectorConfig(input_size=None), cache)
    with pytest.raises(MicrographError, match="gone.mrc"):
        prepared_input(tmp_path / "gone.mrc", 256, cache)


def test_fill_cache_ahead_of_use(tmp_path):
    paths = _write_mics(tmp_path, 3, 96, 64)
    cache = session_input_cache(tmp_path / "s")
    prepared_input(paths[1], 64, cache)
    steps = []
    prepared = drive(iter_fill_cache(paths, 64, cache), steps.append)
    assert [s["micrograph"] for s in steps] == ["m0", "m1", "m2"]
    assert steps[-1] == {"stage": "cache", "step": 3, "total": 3, "micrograph": "m2"}
    assert prepared == 2 and cache.writes == 3
    # a stopped fill ends quietly before the next micrograph
    fresh = InputCache(tmp_path / "other")
    assert list(iter_fill_cache(paths, 64, fresh, should_stop=lambda: True)) == []
    assert fresh.misses == 0


def test_unwritable_cache_folder_does_not_stop_the_round(tmp_path, mrc):
    blocker = tmp_path / "s"
    blocker.write_text("a file where the cache folder should be")
    cache = InputCache(blocker / CACHE_FOLDER)
    t, _ = prepared_input(mrc, 128, cache)
    _fp16_close(t, prepare_image(read_micrograph(mrc).data, 128)[0])
    assert (cache.writes, cache.write_errors) == (0, 1)
    assert str(blocker / CACHE_FOLDER) in cache.last_error
    t2, _ = prepared_input(mrc, 128, cache)  # still served from memory
    assert torch.equal(t2, t) and cache.memory_hits == 1
