"""The micrograph browser: a sortable table of micrographs; a click jumps to one.

The rows come from :func:`activepick.active.browser.micrograph_table` (computed in
the core); this widget only shows them. Clicking a row emits
``micrograph_chosen(index)`` with the micrograph's position in the stack (its
napari slider step), whatever the sort order. :func:`follow_viewer` connects that
signal to the viewer's slider; :func:`show_micrograph_names` makes the viewer
show the current micrograph's name (text overlay and the slider's axis label)
instead of a bare index.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem

from ..active.browser import BROWSER_COLUMNS

#: Column headers shown, per column of the table.
HEADERS: dict[str, str] = {
    "index": "#",
    "micrograph": "micrograph",
    "picks": "picks",
    "labels": "labels",
    "rejections": "rejected",
    "reviewed": "reviewed",
    "complete": "fully picked",
}


class MicrographBrowser(QTableWidget):
    """A sortable table of micrographs (one row each); a click emits the stack index."""

    micrograph_chosen = Signal(int)

    def __init__(self, parent=None):
        super().__init__(0, len(BROWSER_COLUMNS), parent)
        self.setHorizontalHeaderLabels([HEADERS[c] for c in BROWSER_COLUMNS])
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.verticalHeader().setVisible(False)
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.setSortingEnabled(True)
        self.sortItems(0, Qt.SortOrder.AscendingOrder)  # stack order until the user sorts
        self.cellClicked.connect(self._on_clicked)

    def set_table(self, table: pd.DataFrame) -> None:
        """Show ``table`` (:func:`~activepick.active.browser.micrograph_table`);
        the current sort column and order are kept."""
        header = self.horizontalHeader()
        column, order = header.sortIndicatorSection(), header.sortIndicatorOrder()
        self.setSortingEnabled(False)  # inserting into a sorted table reorders rows mid-fill
        self.setRowCount(len(table))
        cols = [table[c].tolist() for c in BROWSER_COLUMNS]
        for row in range(len(table)):
            for col, values in enumerate(cols):
                value = values[row]
                item = QTableWidgetItem()
                if isinstance(value, bool):
                    item.setData(Qt.ItemDataRole.DisplayRole, "yes" if value else "")
                elif isinstance(value, str):
                    item.setData(Qt.ItemDataRole.DisplayRole, value)
                else:  # numbers sort numerically when stored as numbers
                    item.setData(Qt.ItemDataRole.DisplayRole, int(value))
                item.setData(Qt.ItemDataRole.UserRole, int(cols[0][row]))
                self.setItem(row, col, item)
        self.setSortingEnabled(True)
        if 0 <= column < self.columnCount():
            self.sortItems(column, order)

    def index_at(self, row: int) -> int:
        """The stack index of the micrograph shown in ``row`` (after sorting)."""
        return int(self.item(row, 0).data(Qt.ItemDataRole.UserRole))

    def row_of(self, index: int) -> int | None:
        """The row showing stack index ``index``, or None."""
        for row in range(self.rowCount()):
            if self.index_at(row) == index:
                return row
        return None

    def select_index(self, index: int) -> None:
        """Highlight the row of stack index ``index`` without emitting (the viewer moved)."""
        row = self.row_of(index)
        if row is not None:
            blocked = self.blockSignals(True)
            self.selectRow(row)
            self.blockSignals(blocked)

    def _on_clicked(self, row: int, _column: int) -> None:
        self.micrograph_chosen.emit(self.index_at(row))


def follow_viewer(browser: MicrographBrowser, viewer: Any, axis: int = 0) -> Callable[[], None]:
    """Clicking a row moves the viewer's slider ``axis`` to that micrograph, and
    moving the slider highlights its row. Returns a function that disconnects both."""

    def jump(index: int) -> None:
        viewer.dims.set_current_step(axis, int(index))

    def highlight(event=None) -> None:
        browser.select_index(int(viewer.dims.current_step[axis]))

    browser.micrograph_chosen.connect(jump)
    viewer.dims.events.current_step.connect(highlight)

    def disconnect() -> None:
        browser.micrograph_chosen.disconnect(jump)
        viewer.dims.events.current_step.disconnect(highlight)

    return disconnect


def _text_overlay(viewer: Any):
    """The viewer's text overlay (``viewer.canvas.overlays.text`` from napari 0.6 on)."""
    canvas = getattr(viewer, "canvas", None)
    if canvas is not None and hasattr(canvas, "overlays"):
        return canvas.overlays.text
    return viewer.text_overlay


def show_micrograph_names(viewer: Any, names: Sequence[str], axis: int = 0) -> Callable[[], None]:
    """Show the current micrograph's name, ``"name (i+1 / N)"``, in the viewer's
    text overlay, and label the slider ``axis`` "micrograph". Returns a function
    that stops following the slider."""
    names = list(names)
    overlay = _text_overlay(viewer)
    labels = list(viewer.dims.axis_labels)
    if axis < len(labels):
        labels[axis] = "micrograph"
        viewer.dims.axis_labels = labels

    def update(event=None) -> None:
        i = int(viewer.dims.current_step[axis])
        if 0 <= i < len(names):
            overlay.text = f"{names[i]} ({i + 1} / {len(names)})"

    overlay.visible = True
    update()
    viewer.dims.events.current_step.connect(update)
    return lambda: viewer.dims.events.current_step.disconnect(update)
