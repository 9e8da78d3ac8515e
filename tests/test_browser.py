"""The micrograph browser: the Qt-free table and the napari table widget."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from activepick.active.browser import BROWSER_COLUMNS, micrograph_table
from activepick.io.picks import make_picks

NAMES = ["mic_a", "mic_b", "mic_c", "mic_d"]


def _predictions() -> pd.DataFrame:
    # mic_a: 0.9, 0.5, 0.2 | mic_b: 0.45 | mic_c: none | elsewhere: 0.99 (not in the pool)
    return make_picks(
        ["mic_a", "mic_a", "mic_a", "mic_b", "other"],
        [1, 2, 3, 4, 5],
        [1, 2, 3, 4, 5],
        20.0,
        [0.9, 0.5, 0.2, 0.45, 0.99],
        "predicted",
    )


def _labels() -> pd.DataFrame:
    return make_picks(
        ["mic_a", "mic_a", "mic_a", "mic_b", "mic_c", "mic_c"],
        [1, 2, 3, 4, 5, 6],
        [1, 2, 3, 4, 5, 6],
        20.0,
        np.nan,
        ["accepted", "moved", "rejected", "added", "rejected", "imported"],
    )


def test_counts_by_hand():
    table = micrograph_table(
        NAMES,
        predictions=_predictions(),
        labels=_labels(),
        t_opt=0.45,
        complete={"mic_d"},
        reviewed={"mic_b"},
    )
    assert tuple(table.columns) == BROWSER_COLUMNS
    assert table["micrograph"].tolist() == NAMES
    assert table["index"].tolist() == [0, 1, 2, 3]
    assert table["picks"].tolist() == [2, 1, 0, 0]  # >= 0.45: 0.9, 0.5 | 0.45
    assert table["labels"].tolist() == [2, 1, 1, 0]  # accepted+moved | added | imported
    assert table["rejections"].tolist() == [1, 0, 1, 0]
    assert table["reviewed"].tolist() == [True, True, True, True]
    assert table["complete"].tolist() == [False, False, False, True]


def test_threshold_none_counts_every_prediction_and_empty_tables():
    table = micrograph_table(NAMES, predictions=_predictions(), t_opt=None)
    assert table["picks"].tolist() == [3, 1, 0, 0]
    assert table["labels"].tolist() == [0, 0, 0, 0]
    assert table["reviewed"].tolist() == [False] * 4
    empty = micrograph_table(NAMES, predictions=_predictions().iloc[:0], labels=None, t_opt=0.5)
    assert empty["picks"].sum() == 0 and len(empty) == 4
    assert micrograph_table([]).empty


def test_duplicate_names_refused():
    with pytest.raises(ValueError, match="unique"):
        micrograph_table(["a", "a"])


def _click(qtbot, browser, row: int) -> None:
    from qtpy.QtCore import Qt

    rect = browser.visualItemRect(browser.item(row, 1))
    qtbot.mouseClick(browser.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())


@pytest.mark.gui
def test_browser_sorts_and_a_click_jumps_to_the_micrograph(make_napari_viewer, qtbot):
    from qtpy.QtCore import Qt

    from activepick.plugin._browser import (
        MicrographBrowser,
        follow_viewer,
        show_micrograph_names,
    )

    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((4, 16, 16), np.float32), name="micrographs")
    browser = MicrographBrowser()
    qtbot.addWidget(browser)
    browser.resize(600, 300)
    browser.show()
    table = micrograph_table(
        NAMES, predictions=_predictions(), labels=_labels(), t_opt=0.45, complete={"mic_d"}
    )
    browser.set_table(table)
    assert browser.rowCount() == 4
    assert [browser.item(r, 1).text() for r in range(4)] == NAMES

    # sort by rejections, most first: mic_a and mic_c (1 each) lead, numerically
    browser.sortItems(4, Qt.SortOrder.DescendingOrder)
    assert [browser.item(r, 4).data(Qt.ItemDataRole.DisplayRole) for r in range(4)] == [1, 1, 0, 0]
    assert {browser.index_at(0), browser.index_at(1)} == {0, 2}
    # by picks, ascending: 0, 0, 1, 2 -> the last row is mic_a
    browser.sortItems(2, Qt.SortOrder.AscendingOrder)
    assert [browser.item(r, 2).data(Qt.ItemDataRole.DisplayRole) for r in range(4)] == [0, 0, 1, 2]
    assert browser.item(3, 1).text() == "mic_a" and browser.index_at(3) == 0
    assert browser.item(3, 5).text() == "yes"  # reviewed (it has labels)

    follow_viewer(browser, viewer)
    viewer.dims.set_current_step(0, 0)
    show_micrograph_names(viewer, NAMES)
    overlay = viewer.canvas.overlays.text
    assert overlay.visible and overlay.text == "mic_a (1 / 4)"
    assert viewer.dims.axis_labels[0] == "micrograph"

    row_b = browser.row_of(1)  # mic_b: 1 pick -> row 2 in this order
    assert row_b == 2
    with qtbot.waitSignal(browser.micrograph_chosen, timeout=2000) as blocker:
        _click(qtbot, browser, row_b)
    assert blocker.args == [1]
    assert viewer.dims.current_step[0] == 1
    assert overlay.text == "mic_b (2 / 4)"

    # refilling keeps the sort; moving the slider highlights the micrograph's row
    browser.set_table(table)
    assert browser.item(3, 1).text() == "mic_a"
    viewer.dims.set_current_step(0, 3)
    assert browser.selectionModel().selectedRows()[0].row() == browser.row_of(3)
    assert overlay.text == "mic_d (4 / 4)"
