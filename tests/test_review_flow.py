"""The review flow of issue 20 in the dock widget as napari builds it (plugin manager):
a batch is reviewed micrograph by micrograph, and the cheaper actions (complete, bulk
confirm, fully picked) work from their keys and buttons and reach the session journal."""

from __future__ import annotations

import numpy as np
import pytest

from activepick.io.micrograph import write_micrograph
from activepick.io.picks import make_picks

pytestmark = pytest.mark.gui

D = 20.0
#: (micrograph index, x, y, confidence). Boundary distance at T_opt 0.5 ranks them by
#: |c - 0.5|: mic_01 0.52 (0), mic_02 0.47 (1), mic_00 0.45 (2), mic_01 0.62 (3),
#: mic_02 0.35 (4), mic_00 0.30 (5), mic_00 0.75 (6), mic_02 0.80 (7), mic_01 0.15 (8)
PREDS = [
    (0, 40.0, 40.0, 0.45),
    (0, 120.0, 40.0, 0.30),
    (0, 40.0, 120.0, 0.75),
    (1, 40.0, 40.0, 0.52),
    (1, 120.0, 40.0, 0.62),
    (1, 40.0, 120.0, 0.15),
    (2, 40.0, 40.0, 0.47),
    (2, 120.0, 40.0, 0.35),
    (2, 40.0, 120.0, 0.80),
    (0, 150.0, 150.0, 0.97),  # confident, not queued (K = 9 takes the 9 above)
    (0, 100.0, 160.0, 0.95),  # confident, not queued
]


@pytest.fixture
def widget(make_napari_viewer, tmp_path):
    folder = tmp_path / "mics"
    for i in range(3):
        write_micrograph(folder / f"mic_{i:02d}.mrc", np.zeros((192, 192), np.float32))
    viewer = make_napari_viewer()
    _, w = viewer.window.add_plugin_dock_widget("napari-activepick", "Active picking")
    w.open_folder(folder)
    w.diameter.value = int(D)
    w.review_k.value = 9
    assert w.strategy.value == "boundary_distance"  # the product defaults
    assert w.learner.protocol == "product"
    assert w.new_session(tmp_path / "session")
    lr = w.learner
    idx, x, y, c = zip(*PREDS, strict=True)
    names = [f"mic_{i:02d}" for i in idx]
    pred = make_picks(names, x, y, D, confidence=list(c), status="predicted")
    pred["pick_id"] = np.arange(100, 100 + len(pred))
    lr.predictions = pred  # what a round predicted (no training needed for the order)
    lr.select()
    w.review.refresh()
    return viewer, w


def _press(viewer, key):
    return viewer.window._qt_viewer._key_map_handler.press_key(key)


def test_a_batch_over_three_micrographs_is_reviewed_micrograph_by_micrograph(widget):
    viewer, w = widget
    lr = w.learner
    assert lr.queue["rank"].tolist() == [0, 3, 8, 1, 4, 7, 2, 5, 6]
    shown, under_review = [], []
    for _ in range(9):
        under_review.append(str(w.workbench.current_pick()["micrograph"]))
        shown.append(int(viewer.dims.current_step[0]))
        assert _press(viewer, "x")
    # mic_01 (holds the most uncertain pick), then mic_02, then mic_00: 2 slider moves for
    # 9 keys (in uncertainty order the slider would move after 8 of them)
    assert shown == [1, 1, 1, 2, 2, 2, 0, 0, 0]
    assert under_review == [f"mic_{i:02d}" for i in shown]
    assert w.learner.counts()["accepted"] == 9 and w.workbench.batch_done()


def test_complete_confirm_and_fully_picked_keys_reach_the_journal(widget):
    viewer, w = widget
    lr = w.learner
    for _ in range(3):  # the three picks of mic_01
        assert _press(viewer, "x")
    assert _press(viewer, "Shift-F")  # toggles mic_02 (shown now) fully picked ...
    assert "mic_02" in lr.complete and w.complete_btn.isChecked()
    assert _press(viewer, "Shift-F")  # ... and back
    assert "mic_02" not in lr.complete and not w.complete_btn.isChecked()
    viewer.dims.set_current_step(0, 1)
    assert _press(viewer, "f")
    regions = lr.labels[lr.labels["status"] == "complete"]
    assert sorted(regions["micrograph"]) == ["mic_01"] * 3
    assert "3 reviewed neighbourhood(s) marked complete" in w.status.text()
    assert _press(viewer, "f")  # nothing new to mark: refused on the status line
    assert "no pick reviewed on mic_01" in w.status.text()
    # on mic_00: reject the wrong confident pick (selected in the predictions layer), then
    # confirm the rest with one key
    viewer.dims.set_current_step(0, 0)
    pred_layer = viewer.layers["predictions"]
    viewer.layers.selection.active = pred_layer
    row = pred_layer.features["pick_id"].tolist().index(110)
    pred_layer.selected_data = {row}
    assert _press(viewer, "z")
    assert lr.label_store.status(110) == "rejected"
    pred_layer.selected_data = set()
    assert _press(viewer, "b")
    assert lr.label_store.status(109) == "accepted"
    assert "1 pick(s) with confidence >= 0.90 confirmed" in w.status.text()
    journal = (w.session.folder / "labels.journal.csv").read_text()
    assert journal.count(",complete,") == 3 and ",bulk_confirm," in journal
    # the buttons do the same as the keys
    buttons = w.review_buttons
    assert {"Complete (f)", "Confirm sure (b)"} <= set(buttons)
    buttons["Confirm sure (b)"].click()
    assert "no confident pick left on mic_00" in w.status.text()
    assert _press(viewer, "u")  # undo the bulk confirmation
    assert lr.label_store.status(109) is None
