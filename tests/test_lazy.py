"""io.lazy: a stack over file paths that reads only the micrographs asked for."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from activepick.errors import MicrographError
from activepick.io import lazy
from activepick.io.lazy import LazyStack, lazy_micrographs
from activepick.io.micrograph import list_micrographs, write_micrograph


def _image(h, w, seed):
    return np.random.default_rng(seed).normal(seed, 1.0, (h, w)).astype(np.float32)


@pytest.fixture
def folder(tmp_path):
    """Five 40 x 50 micrographs plus one 30 x 60 (padded to 40 x 60)."""
    for i in range(5):
        write_micrograph(tmp_path / f"m{i}.mrc", _image(40, 50, i), pixel_size=1.25)
    write_micrograph(tmp_path / "odd.mrc", _image(30, 60, 9))
    return tmp_path


def test_opening_reads_headers_only_and_a_slice_reads_one_micrograph(folder):
    paths = sorted(folder.glob("*.mrc"))
    stack = LazyStack(paths, cache_size=2)
    assert stack.reads == 0
    assert stack.shape == (6, 40, 60)
    assert stack.names == ["m0", "m1", "m2", "m3", "m4", "odd"]
    assert stack.shapes[5] == (30, 60) and stack.pixel_size == pytest.approx(1.25)
    data = stack.to_dask()
    assert data.shape == (6, 40, 60) and data.chunks[0] == (1,) * 6
    assert stack.reads == 0
    s2 = np.asarray(data[2])
    assert stack.reads == 1  # only the slice shown
    np.testing.assert_array_equal(s2[:, :50], _image(40, 50, 2))
    assert np.all(s2[:, 50:] == np.median(_image(40, 50, 2)))  # padded right, with the median
    np.asarray(data[2])
    assert stack.reads == 1  # from the cache
    odd = np.asarray(data[5])
    np.testing.assert_array_equal(odd[:30], _image(30, 60, 9))  # top-left aligned
    assert np.all(odd[30:] == np.median(_image(30, 60, 9)))
    np.asarray(data[0])
    np.asarray(data[1])
    assert stack.reads == 4
    np.asarray(data[2])  # evicted from the LRU cache of 2: read again
    assert stack.reads == 5


def test_multiscale_levels_for_large_micrographs(folder, monkeypatch):
    paths = sorted(folder.glob("m*.mrc"))
    stack = LazyStack(paths)
    assert len(stack.multiscale()) == 1  # small micrographs: one level
    monkeypatch.setattr(lazy, "MULTISCALE_TARGET", 12)
    levels = stack.multiscale(min_size=30)
    assert [lv.shape for lv in levels] == [(5, 40, 50), (5, 20, 25), (5, 10, 12)]
    low = np.asarray(levels[1][3])
    full = _image(40, 50, 3)
    assert stack.reads == 1
    np.testing.assert_allclose(low[0, 0], full[:2, :2].mean(), rtol=1e-5)
    np.asarray(levels[0][3])
    assert stack.reads == 1  # the full-size level reuses the decoded micrograph


def test_mrcs_expands_and_bad_files_name_the_file(tmp_path):
    write_micrograph(tmp_path / "s.mrcs", np.stack([_image(20, 20, 1), _image(20, 20, 2)]))
    stack = LazyStack([tmp_path / "s.mrcs"])
    assert stack.names == ["s_0000", "s_0001"] and len(stack) == 2
    np.testing.assert_array_equal(np.asarray(stack.to_dask()[1]), _image(20, 20, 2))
    (tmp_path / "bad.mrc").write_bytes(b"not an mrc file at all")
    with pytest.raises(MicrographError, match="bad.mrc"):
        LazyStack([tmp_path / "bad.mrc"])


def test_reader_opens_a_folder_lazily_with_the_layer_metadata(folder):
    from activepick.plugin import _reader

    data, kwargs, kind = _reader.get_micrograph_reader(str(folder))()[0]
    meta = kwargs["metadata"]
    stack = meta[_reader.LAZY_STACK_KEY]
    assert kind == "image" and not kwargs["multiscale"]
    assert kwargs["cache"] is False  # no napari dask cache on top of the LRU cache
    assert data.shape == (6, 40, 60)
    assert meta["micrographs"] == ["m0", "m1", "m2", "m3", "m4", "odd"]
    assert meta["shapes"]["odd"] == (30, 60) and meta["pixel_size"] == pytest.approx(1.25)
    assert meta["paths"][5] == str(folder / "odd.mrc")
    assert stack.reads == 1  # the first micrograph, for the contrast limits
    np.testing.assert_array_equal(np.asarray(data[2])[:, :50], _image(40, 50, 2))
    assert stack.reads == 2
    np.asarray(data[0])
    assert stack.reads == 2  # from the cache


def test_multiscale_layer_gives_full_size_micrographs_to_the_widget(folder, monkeypatch):
    from napari.layers import Image

    from activepick.plugin import _reader
    from activepick.plugin._layers import micrographs_from_layer

    monkeypatch.setattr(lazy, "MULTISCALE_MIN_SIZE", 30)
    monkeypatch.setattr(lazy, "MULTISCALE_TARGET", 20)
    data, kwargs, _ = _reader.get_micrograph_reader(str(folder))()[0]
    assert kwargs["multiscale"]
    assert [d.shape for d in data] == [(6, 40, 60), (6, 20, 30), (6, 10, 15)]
    layer = Image(data, **kwargs)
    mics = micrographs_from_layer(layer)
    assert [m.name for m in mics][-1] == "odd" and mics[5].shape == (30, 60)
    np.testing.assert_array_equal(mics[5].data, _image(30, 60, 9))


def test_napari_viewer_reads_only_the_slice_shown(folder):
    from napari.components import ViewerModel
    from napari.plugins import _npe2

    if not _npe2.get_readers(str(folder)):  # plugins not yet registered in this process
        from napari.plugins import _initialize_plugins

        _initialize_plugins()
    viewer = ViewerModel()
    (layer,) = viewer.open(str(folder), plugin="napari-activepick")
    stack = layer.metadata["lazy_stack"]
    # micrograph 0 (contrast limits; napari also slices the new layer at 0) and the
    # middle one, where napari puts the slider
    assert viewer.dims.current_step[0] == 2 and stack.reads == 2
    viewer.dims.set_current_step(0, 4)
    assert stack.reads == 3
    np.testing.assert_array_equal(layer._slice.image.raw[:, :50], _image(40, 50, 4))
    viewer.dims.set_current_step(0, 2)
    assert stack.reads == 3  # still in the LRU cache


def test_lazy_micrographs_decode_only_when_their_pixels_are_read(folder):
    from activepick.io.lazy import lazy_micrographs

    stack = LazyStack(sorted(folder.glob("*.mrc")), cache_size=2)
    mics = lazy_micrographs(stack)
    assert [m.name for m in mics] == ["m0", "m1", "m2", "m3", "m4", "odd"]
    assert mics[5].shape == (30, 60) and mics[0].pixel_size == pytest.approx(1.25)
    assert mics[5].path == folder / "odd.mrc"
    assert stack.reads == 0  # names, shapes and pixel size come from the headers
    np.testing.assert_array_equal(mics[5].data, _image(30, 60, 9))
    assert stack.reads == 1


def test_a_session_reopens_without_reading_any_micrograph(folder, tmp_path):
    from activepick.active.engine import ActiveLearner
    from activepick.active.settings import LearnerSettings
    from activepick.io.lazy import LazyMicrograph
    from activepick.session import Session

    paths = sorted(folder.glob("*.mrc"))
    settings = LearnerSettings(predict_subset=None).replace(diameter=8.0)
    Session.create(tmp_path / "s", paths, settings.to_dict()).close()
    session = Session.open(tmp_path / "s")
    try:
        learner = ActiveLearner.from_session(session)
        assert all(isinstance(m, LazyMicrograph) for m in learner.micrographs)
        assert learner.shapes["odd"] == (30, 60)
        learner.add_particle("odd", 10.0, 20.0)  # bounds come from the header
        with pytest.raises(Exception, match="outside"):
            learner.add_particle("odd", 10.0, 35.0)
        assert all(m._stack.reads == 0 for m in learner.micrographs)
    finally:
        session.close()


def test_a_stack_in_a_pool_becomes_one_file_per_image_in_the_session(tmp_path):
    from activepick.active.workbench import Workbench

    write_micrograph(tmp_path / "m" / "a.mrc", np.zeros((64, 64), np.float32))
    frames = np.stack([np.full((64, 64), float(i), np.float32) for i in range(3)])
    write_micrograph(tmp_path / "m" / "s.mrcs", frames)
    stack = LazyStack(list_micrographs(tmp_path / "m"))
    assert stack.names == ["a", "s_0000", "s_0001", "s_0002"]
    wb = Workbench.for_micrographs(lazy_micrographs(stack))
    wb.create_session(tmp_path / "sess")
    wb.add("s_0001", 30.0, 31.0)
    wb.close()
    again = Workbench.open(tmp_path / "sess")
    mics = again.learner.micrographs
    assert [m.name for m in mics] == ["a", "s_0000", "s_0001", "s_0002"]
    # each image of the stack is its own file now, named as the picks refer to it
    assert [Path(m.path).name for m in mics[1:]] == ["s_0000.mrc", "s_0001.mrc", "s_0002.mrc"]
    assert float(np.asarray(mics[2].data).mean()) == 1.0
    labels = again.learner.labels
    assert labels[["micrograph", "x", "y"]].values.tolist() == [["s_0001", 30.0, 31.0]]
    again.close()
