"""The review layers' key path (plugin/review.py, issue 10): a key press edits only the
points of the picks it changed, in place; what it leaves on screen must equal a full
redraw from the workbench, and the napari behaviour the in-place edits rely on must
hold (these tests fail if napari changes it)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from activepick.constants import LABEL_COLUMNS
from activepick.plugin._layers import QUEUE_COLORS, STATUS_COLORS, points_style, review_features
from activepick.plugin._points import (
    append_points,
    edit_points,
    feature_defaults_of,
    label_points,
    status_rgba,
)

pytestmark = pytest.mark.gui

SIZE = 512


def _workbench(n_mics: int = 3, seed: int = 0):
    """A workbench on ``n_mics`` blank micrographs: 5 accepted labels and 8 predictions
    per micrograph, and a queue of 6 predictions: 3 on mic_00, then 3 on mic_01."""
    from activepick.active.settings import LearnerSettings
    from activepick.active.workbench import Workbench
    from activepick.detector import DetectorConfig
    from activepick.io.micrograph import Micrograph
    from activepick.io.picks import make_picks

    rng = np.random.default_rng(seed)
    image = np.broadcast_to(np.float32(0), (SIZE, SIZE))
    mics = [Micrograph(f"mic_{i:02d}", image) for i in range(n_mics)]
    settings = LearnerSettings(detector=DetectorConfig(diameter=20.0), review_k=6)
    wb = Workbench.for_micrographs(mics, settings)
    # on a grid 40 px apart: no two picks within the minimum distance
    grid = np.array([(x, y) for x in range(40, SIZE - 20, 40) for y in range(40, SIZE - 20, 40)])
    names, xy = [], []
    for i in range(n_mics):
        pick = rng.choice(len(grid), 13, replace=False)
        names += [f"mic_{i:02d}"] * 13
        xy.append(grid[pick])
    xy = np.concatenate(xy).astype(float)
    names = np.array(names)
    first = np.tile(np.r_[np.ones(5, bool), np.zeros(8, bool)], n_mics)
    wb.learner.add_labels(
        make_picks(names[first], xy[first, 0], xy[first, 1], 20.0, status="accepted"),
        source="import",
    )
    pred = make_picks(
        names[~first],
        xy[~first, 0],
        xy[~first, 1],
        20.0,
        confidence=rng.uniform(0.6, 1.0, (~first).sum()),
        status="predicted",
    )
    pred["pick_id"] = np.arange(1000, 1000 + len(pred))
    wb.learner.predictions = pred
    queue = pd.concat([pred[pred["micrograph"] == m].head(3) for m in ("mic_00", "mic_01")])
    queue = queue.reset_index(drop=True)
    queue["uncertainty"], queue["rank"] = 0.0, np.arange(len(queue))
    wb.learner.queue, wb.learner.position = queue, 0
    return wb


def _state(layer) -> pd.DataFrame:
    """A layer's points as a table (centre, features, RGBA border colour), by pick id."""
    data = np.asarray(layer.data)
    table = layer.features[["pick_id", "status"]].astype({"status": str}).copy()
    table["y"], table["x"] = data[:, -2], data[:, -1]
    table["index"] = data[:, 0] if data.shape[1] == 3 else 0.0
    rgba = np.round(np.asarray(layer.border_color, dtype=float), 4)
    table["rgba"] = [tuple(c) for c in rgba]
    return table.sort_values("pick_id").reset_index(drop=True)


def _snapshot(review) -> dict[str, pd.DataFrame]:
    return {n: _state(review.layers[n]) for n in ("labels", "predictions", "review queue")}


def _assert_as_full_redraw(review):
    """What the key path left on screen equals a redraw of every layer from scratch."""
    shown = _snapshot(review)
    current = np.asarray(review.layers["current pick"].data).copy()
    review.refresh()
    for name, table in _snapshot(review).items():
        pd.testing.assert_frame_equal(shown[name], table, obj=name)
    np.testing.assert_array_equal(current, review.layers["current pick"].data)


@pytest.fixture
def review(make_napari_viewer):
    from activepick.plugin.review import ReviewLayers

    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((3, SIZE, SIZE), np.float32), name="mics")
    layers = ReviewLayers(viewer)
    layers.attach(_workbench())
    return layers


def test_key_presses_leave_the_layers_as_a_full_redraw_would(review):
    wb, viewer = review.workbench, review.viewer
    queue = wb.learner.queue
    labels = review.layers["labels"]
    assert viewer.dims.current_step[0] == 0 and len(labels.data) == 5
    review.accept()  # a label on the shown micrograph: appended
    assert len(labels.data) == 6 and queue["pick_id"].iat[0] in set(labels.features["pick_id"])
    _assert_as_full_redraw(review)
    review.reject()  # no label drawn; the queue point turns red
    assert review.layers["review queue"].features["status"].iat[1] == "rejected"
    _assert_as_full_redraw(review)
    review.previous()
    review.previous()
    review.reject()  # accepted -> rejected: the label leaves the labels layer
    assert len(labels.data) == 5
    _assert_as_full_redraw(review)
    review.undo()
    assert len(labels.data) == 6
    _assert_as_full_redraw(review)
    review.goto(2)
    review.accept()  # the next pick lies on mic_01: layers filled, slider moved
    assert viewer.dims.current_step[0] == 1
    assert set(labels.features["micrograph"]) == {"mic_01"}
    assert set(review.layers["predictions"].features["micrograph"]) == {"mic_01"}
    np.testing.assert_array_equal(np.asarray(labels.data)[:, 0], 1)
    _assert_as_full_redraw(review)
    pick = wb.current_pick()
    wb.move(int(pick["pick_id"]), "mic_01", float(pick["x"]) + 3, float(pick["y"]) - 2)
    review._after_change()  # a move (as after a drag): queue point and label moved
    row = review.layers["review queue"].data[3]
    assert tuple(row[-2:]) == (float(pick["y"]) - 2, float(pick["x"]) + 3)
    _assert_as_full_redraw(review)


def test_several_selected_queue_points_on_one_micrograph_are_appended_at_once(review):
    queue = review.layers["review queue"]
    review.viewer.layers.selection.active = queue
    queue.selected_data = {0, 1}
    review.accept()  # the pick under review is then pick 2, on the shown micrograph
    assert review.viewer.dims.current_step[0] == 0
    assert len(review.layers["labels"].data) == 7
    assert not queue.selected_data
    _assert_as_full_redraw(review)


def _points(viewer, status, colors=STATUS_COLORS):
    """A review-style layer (direct border colours by status, as ReviewLayers makes)."""
    rows = pd.DataFrame(
        {
            "pick_id": np.arange(len(status)),
            "micrograph": "m",
            "x": np.arange(len(status)) * 30.0 + 20,
            "y": 50.0,
            "diameter": 20.0,
            "confidence": 0.5,
            "status": status,
        }
    )
    coords = rows[["y", "x"]].to_numpy(float)
    style = points_style(20.0, text=False)
    style.pop("border_color_cycle")
    style["border_color"] = status_rgba(status, colors)
    return viewer.add_points(coords, features=review_features(rows), **style)


def test_napari_keeps_the_live_colour_array_through_adds_and_removes(make_napari_viewer):
    # edit_points writes colours into the array layer.border_color returns: it must be
    # the layer's own (what the canvas draws), and napari must keep each point's colour
    # when points are added (drawn by the user) or removed
    viewer = make_napari_viewer()
    layer = _points(viewer, ["predicted", "predicted", "accepted"], QUEUE_COLORS)
    edit_points(layer, [0, 2], status=["rejected", "moved"], colors=QUEUE_COLORS)
    want = status_rgba(["rejected", "predicted", "moved"], QUEUE_COLORS)
    np.testing.assert_allclose(layer.border_color, want)
    assert list(layer.features["status"].astype(str)) == ["rejected", "predicted", "moved"]
    np.testing.assert_allclose(layer._view_border_color, want)  # what the canvas draws
    layer.current_border_color = "magenta"
    layer.add([[10.0, 10.0]])  # as napari's add mode does
    np.testing.assert_allclose(layer.border_color[:3], want)
    layer.selected_data = {1}
    layer.remove_selected()
    np.testing.assert_allclose(layer.border_color[:2], want[[0, 2]])
    edit_points(layer, [1], yx=np.array([[60.0, 70.0]]))  # moved in place
    np.testing.assert_array_equal(layer.data[1], [60.0, 70.0])


def test_appended_points_take_their_features_and_colours(make_napari_viewer):
    viewer = make_napari_viewer()
    layer = _points(viewer, ["accepted", "added"])
    layer.feature_defaults = {**feature_defaults_of(layer), "pick_id": -1, "status": "added"}
    rows = [
        {"pick_id": 7, "micrograph": "m", "x": 90.0, "y": 40.0, "confidence": 0.9,
         "status": "moved", "diameter": 20.0},
        {"pick_id": 8, "micrograph": "m", "x": 130.0, "y": 40.0, "confidence": 0.4,
         "status": "accepted", "diameter": 24.0},
    ]  # fmt: skip
    extra = {"round": 1, "time": 0.0, "strategy": "", "source": "human", "pred_x": 0.0}
    rows = [tuple({**extra, "pred_y": 0.0, **r}[c] for c in LABEL_COLUMNS) for r in rows]
    coords, features = label_points(rows, None)
    before = np.array(layer.border_color, copy=True)
    append_points(layer, coords, features)
    assert len(layer.data) == 4
    np.testing.assert_array_equal(layer.data[2:], [[40.0, 90.0], [40.0, 130.0]])
    new = layer.features.iloc[2:]
    assert new["pick_id"].tolist() == [7, 8]
    assert new["status"].astype(str).tolist() == ["moved", "accepted"]
    assert new["confidence"].tolist() == [0.9, 0.4]
    np.testing.assert_array_equal(np.ravel(layer.size), [20.0, 20.0, 20.0, 24.0])
    want = np.vstack([before, status_rgba(["moved", "accepted"], STATUS_COLORS)])
    np.testing.assert_allclose(layer.border_color, want)
    np.testing.assert_allclose(layer._view_border_color, want)
    defaults = layer.feature_defaults  # a point the user draws is still an added one
    assert (defaults["pick_id"].iloc[0], defaults["status"].iloc[0]) == (-1, "added")


def test_status_colours_refuse_an_unknown_status():
    with pytest.raises(ValueError, match="no colour for status"):
        status_rgba(["accepted", "maybe"], STATUS_COLORS)


def test_review_keys_work_whichever_review_layer_is_active(review):
    # napari's Points keys (z: pan / zoom, s: select, d: ...) must not shadow the review
    # keys, also on the current-pick layer, the active one right after the layers appear
    viewer = review.viewer
    press = viewer.window._qt_viewer._key_map_handler.press_key
    for i, name in enumerate(["current pick", "review queue", "labels", "predictions"]):
        viewer.layers.selection.active = viewer.layers[name]
        assert press("z")
        assert str(review.layers["review queue"].features["status"].iat[i]) == "rejected"
    assert review.workbench.learner.position == 4


def test_one_micrograph_layers_follow_a_slider_the_user_moves(review):
    # the predictions and the current-pick square are 2-D layers (napari does not
    # re-slice them on a slider move): they must show the slider's micrograph only
    viewer, wb = review.viewer, review.workbench
    square, pred = review.layers["current pick"], review.layers["predictions"]
    assert square.ndim == 2 and pred.ndim == 2 and review.layers["labels"].ndim == 3
    pick = wb.current_pick()
    assert pick["micrograph"] == "mic_00" and viewer.dims.current_step[0] == 0
    np.testing.assert_array_equal(square.data, [[pick["y"], pick["x"]]])
    viewer.dims.set_current_step(0, 2)  # the user looks at another micrograph
    assert len(square.data) == 0
    assert set(pred.features["micrograph"]) == {"mic_02"} and len(pred.data) == 8
    viewer.dims.set_current_step(0, 0)
    np.testing.assert_array_equal(square.data, [[pick["y"], pick["x"]]])
    assert set(pred.features["micrograph"]) == {"mic_00"}
    review.next()  # a key moves the slider back to the pick under review
    viewer.dims.set_current_step(0, 1)
    review.next()
    assert viewer.dims.current_step[0] == 0 and len(square.data) == 1


def test_points_by_micrograph_equal_the_pick_table_conversion():
    from activepick.plugin._layers import PointsByMicrograph, picks_to_points

    pred = _workbench().learner.predictions.copy()
    pred.loc[pred.index[3], "confidence"] = np.nan  # NaN counts as 0: below any threshold
    by_mic = PointsByMicrograph(pred)
    for name in ("mic_00", "mic_02", "absent"):
        for threshold in (None, 0.8):
            want = pred[pred["micrograph"] == name]
            if threshold is not None:
                want = want[want["confidence"].fillna(0) >= threshold]
            coords, rows = picks_to_points(want, [name], stacked=False)
            got_coords, got = by_mic.points(name, threshold)
            np.testing.assert_array_equal(got_coords, coords.reshape(-1, 2))
            pd.testing.assert_frame_equal(got, review_features(rows))
    assert len(PointsByMicrograph(None).points("mic_00")[0]) == 0
