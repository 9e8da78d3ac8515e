"""The review layers: draw a :class:`~activepick.active.workbench.Workbench`'s state as
napari Points layers and forward the user's edits / key presses to it. Every review
rule (minimum distance, nearest label, multi-pick decisions, navigation) is the
workbench's; this module only translates layer coordinates and events.

Layers (all in pixels of the original micrographs, ``(index, y, x)`` on a stack):

- ``predictions``: every prediction of the latest round; only those with
  confidence >= the threshold are shown.
- ``labels``: the particle labels (accepted, moved, added, imported). Adding a
  point here (add mode, ``2`` / ``P``) records an *added* particle; deleting one
  removes the label.
- ``review queue``: the K most uncertain predictions in review order, orange until
  decided, then coloured by status; dragging a point (select mode, ``3``) records
  a *move*.
- ``current pick``: a thick white square around the pick under review.

Key bindings (on the viewer and on each of these layers; each is also a button):

====== =====================================================================
key    action
====== =====================================================================
x      accept the current pick (or every selected queue point)
z      reject the current pick (or every selected queue point)
d      next proposal
s      previous proposal
c      remove the label nearest the mouse cursor (an added particle)
u      undo the last decision (also Ctrl+Z)
====== =====================================================================
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from ..active.workbench import ReviewRefused
from ..constants import DEFAULT_DIAMETER, POSITIVE_STATUSES, STATUS_ADDED
from ..errors import ActivePickError
from ._layers import (
    MICROGRAPHS_KEY,
    PIXEL_SIZE_KEY,
    QUEUE_COLORS,
    SHAPES_KEY,
    STATUS_COLORS,
    picks_to_points,
    points_style,
)

PREDICTIONS = "predictions"
LABELS = "labels"
QUEUE = "review queue"
CURRENT = "current pick"

#: key -> (method name, description); the widget's help shows this table.
KEY_BINDINGS: dict[str, tuple[str, str]] = {
    "x": ("accept", "accept the current pick (positive)"),
    "z": ("reject", "reject the current pick (negative)"),
    "d": ("next", "next proposal"),
    "s": ("previous", "previous proposal"),
    "c": ("remove_nearest", "remove the label nearest the cursor"),
    "u": ("undo", "undo the last decision"),
    "Control-z": ("undo", "undo the last decision"),
}
#: Size of the current-pick square relative to the diameter.
CURRENT_SCALE = 1.5


class ReviewLayers:
    """Keeps the review layers of one viewer in step with a ``Workbench``.

    ``on_message(text)`` receives status lines (refusals, end of batch);
    ``on_change()`` is called after every change of the labels or queue position
    (the widget updates its counts). While ``busy`` is true (a round runs in a
    worker thread) edits are refused.
    """

    def __init__(
        self,
        viewer,
        *,
        on_message: Callable[[str], None] | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.viewer = viewer
        self.workbench = None
        self.names: list[str] = []
        self.image_meta: dict = {}
        self.threshold = 0.5
        self.busy = False
        self.on_message = on_message or (lambda text: None)
        self.on_change = on_change or (lambda: None)
        self._syncing = False
        self._removing: dict[str, list[int]] = {}
        self._drawn: list[int] = []
        self._zoomed = False
        self.layers: dict[str, object] = {}

    # ------------------------------------------------------------------ set-up
    @property
    def learner(self):
        return self.workbench.learner if self.workbench is not None else None

    @property
    def stacked(self) -> bool:
        return len(self.names) > 1

    @property
    def diameter(self) -> float:
        learner = self.learner
        return float(learner.config.diameter) if learner is not None else DEFAULT_DIAMETER

    def attach(self, workbench, image_meta: dict | None = None) -> None:
        """Show ``workbench``'s state; creates the layers on first use."""
        self.workbench = workbench
        self.names = [m.name for m in workbench.learner.micrographs]
        self.image_meta = dict(image_meta or {})
        self._zoomed = False
        self._ensure_layers()
        self.refresh()

    def _layer_meta(self) -> dict:
        return {
            MICROGRAPHS_KEY: list(self.names),
            SHAPES_KEY: dict(self.learner.shapes) if self.learner is not None else {},
            PIXEL_SIZE_KEY: self.image_meta.get(PIXEL_SIZE_KEY),
        }

    def _ndim(self) -> int:
        return 3 if self.stacked else 2

    def _ensure_layers(self) -> None:
        """Create (or recreate when the dimensionality changed) the four layers."""
        names = {ly.name for ly in self.viewer.layers}
        for name in (PREDICTIONS, LABELS, QUEUE, CURRENT):
            old = self.layers.get(name)
            if old is not None and old.name in names and old.ndim == self._ndim():
                continue
            if old is not None and old.name in names:
                self.viewer.layers.remove(old.name)
            self.layers[name] = self._make_layer(name)
        self.bind_keys()

    def _make_layer(self, name: str):
        d = self.diameter
        empty = np.zeros((0, self._ndim()))
        meta = self._layer_meta()
        if name == CURRENT:
            return self.viewer.add_points(
                empty,
                name=CURRENT,
                size=CURRENT_SCALE * d,
                symbol="square",
                face_color="transparent",
                border_color="white",
                border_width=0.1,
                border_width_is_relative=True,
                metadata=meta,
            )
        features = pd.DataFrame(
            {
                "pick_id": pd.Series(dtype=np.int64),
                "micrograph": pd.Series(dtype=object),
                "confidence": pd.Series(dtype=np.float64),
                "status": pd.Categorical([], categories=list(STATUS_COLORS)),
                "diameter": pd.Series(dtype=np.float64),
            }
        )
        style = points_style(d, text=name == QUEUE, colors=QUEUE_COLORS if name == QUEUE else None)
        if name == PREDICTIONS:
            style.update(opacity=0.5)
        layer = self.viewer.add_points(empty, name=name, features=features, metadata=meta, **style)
        layer.feature_defaults = {
            "pick_id": -1,
            "micrograph": "",
            "confidence": np.nan,
            "status": STATUS_ADDED,
            "diameter": d,
        }
        if name in (LABELS, QUEUE):
            layer.events.data.connect(self._on_data_event)
        return layer

    def bind_keys(self) -> None:
        """Bind the review keys on the viewer and on each review layer."""
        targets = [self.viewer] + [self.layers[n] for n in (PREDICTIONS, LABELS, QUEUE)]
        for key, (method, _) in KEY_BINDINGS.items():
            func = getattr(self, method)

            def handler(_target=None, _func=func):
                _func()

            handler.__doc__ = KEY_BINDINGS[key][1]
            for target in targets:
                target.bind_key(key, handler, overwrite=True)

    def set_diameter(self, diameter: float) -> None:
        """Resize every review point to ``diameter`` px (display only)."""
        for name, layer in self.layers.items():
            scale = CURRENT_SCALE if name == CURRENT else 1.0
            if len(layer.data):
                layer.size = np.full(len(layer.data), scale * float(diameter))
            layer.current_size = scale * float(diameter)
            if name != CURRENT:
                layer.feature_defaults = {**_defaults(layer), "diameter": float(diameter)}

    # ------------------------------------------------------------------ workbench -> layers
    @staticmethod
    def _features(rows: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "pick_id": rows["pick_id"].to_numpy(np.int64)
                if "pick_id" in rows
                else np.full(len(rows), -1, np.int64),
                "micrograph": rows["micrograph"].astype(str).to_numpy(dtype=object),
                "confidence": rows["confidence"].to_numpy(np.float64),
                "status": pd.Categorical(
                    rows["status"].astype(str), categories=list(STATUS_COLORS)
                ),
                "diameter": rows["diameter"].to_numpy(np.float64),
            }
        )

    def _set_points(self, layer, picks: pd.DataFrame) -> None:
        coords, rows = picks_to_points(picks, self.names, stacked=self.stacked)
        self._draw(layer, coords, self._features(rows), rows["diameter"].to_numpy(np.float64))

    def _draw(self, layer, coords: np.ndarray, features: pd.DataFrame, sizes: np.ndarray) -> None:
        self._syncing = True
        try:
            layer.selected_data = set()
            layer.data = coords if len(coords) else np.zeros((0, self._ndim()))
            layer.features = features
            if len(coords):
                layer.size = sizes
            layer.refresh_colors(update_color_mapping=False)
            if layer.text is not None and len(coords):
                layer.text.refresh(layer.features)
            layer.metadata.update(self._layer_meta())
            # napari copies a selected point's features into the defaults; a drawn one has no id
            if "pick_id" in layer.features:
                defaults = {**_defaults(layer), "pick_id": -1, "status": STATUS_ADDED}
                layer.feature_defaults = defaults
        finally:
            self._syncing = False

    def refresh(self) -> None:
        """Redraw every layer from the workbench."""
        if self.workbench is None:
            return
        self.refresh_predictions()
        self.refresh_labels(full=True)
        self.refresh_queue()

    def refresh_predictions(self) -> None:
        pred = self.learner.predictions
        if pred is None or len(pred) == 0:
            pred = _empty_table()
        self._set_points(self.layers[PREDICTIONS], pred)
        self.set_threshold(self.threshold)

    def set_threshold(self, threshold: float) -> None:
        """Show only predictions with confidence >= ``threshold``."""
        self.threshold = float(threshold)
        layer = self.layers.get(PREDICTIONS)
        if layer is not None and len(layer.data):
            conf = layer.features["confidence"].to_numpy(np.float64)
            layer.shown = np.nan_to_num(conf, nan=0.0) >= self.threshold

    def refresh_labels(self, full: bool = False) -> None:
        """Redraw the particle labels: only the picks changed since the last redraw
        (a key press costs no table rebuild), or all of them."""
        store = self.learner.label_store
        changed = store.take_changes()
        layer = self.layers[LABELS]
        if full or changed is None:
            labels = self.learner.labels
            pos = labels[labels["status"].isin(POSITIVE_STATUSES)]
            self._set_points(layer, pos if len(pos) else _empty_table())
            return
        ids = layer.features["pick_id"].to_numpy(np.int64)
        keep = ~np.isin(ids, list(changed)) & (ids >= 0)
        drawn = [i for i in self._drawn if i < len(keep)]  # points the user just drew
        keep[drawn] = False
        self._drawn = []
        if keep.all() and not changed:
            return
        rows = [store.get(i) for i in sorted(changed)]
        rows = [r for r in rows if r is not None and r["status"] in POSITIVE_STATUSES]
        new_coords, new_rows = picks_to_points(
            pd.DataFrame(rows) if rows else _empty_table(), self.names, stacked=self.stacked
        )
        coords = np.concatenate(
            [np.asarray(layer.data)[keep], new_coords.reshape(-1, self._ndim())]
        )
        features = pd.concat([layer.features[keep], self._features(new_rows)], ignore_index=True)
        sizes = np.concatenate([np.ravel(layer.size)[keep], new_rows["diameter"].to_numpy(float)])
        self._draw(layer, coords, features, sizes)

    def refresh_queue(self) -> None:
        table = self.workbench.queue_table()
        self._set_points(self.layers[QUEUE], table if len(table) else _empty_table())
        self.refresh_current(move_camera=True)

    def current_pick(self) -> dict | None:
        """The queue row under review, or None when the queue is done or empty."""
        return self.workbench.current_pick() if self.workbench is not None else None

    def refresh_current(self, move_camera: bool = True) -> None:
        layer = self.layers[CURRENT]
        row = self.current_pick()
        self._syncing = True
        try:
            if row is None:
                layer.data = np.zeros((0, self._ndim()))
            else:
                coords, _ = picks_to_points(pd.DataFrame([row]), self.names, stacked=self.stacked)
                layer.data = coords
                layer.size = np.full(len(coords), CURRENT_SCALE * float(row["diameter"]))
        finally:
            self._syncing = False
        if row is not None and move_camera:
            self.centre_on(row)

    def centre_on(self, row) -> None:
        """Move the slider to the pick's micrograph and centre the camera on it."""
        viewer = self.viewer
        if self.stacked:
            viewer.dims.set_current_step(0, self.names.index(str(row["micrograph"])))
        cam = camera(viewer)
        cam.center = (float(row["y"]), float(row["x"]))
        if not self._zoomed:
            self._zoomed = True
            cam.zoom = max(min(viewer.canvas.size) / (10.0 * self.diameter), 0.05)

    # ------------------------------------------------------------------ actions
    def _run(self, action: Callable[[], object]) -> None:
        """Run a workbench action; refusals and errors go to the status line."""
        if self.workbench is None:
            self.on_message("open micrographs first")
            return
        if self.busy:
            self.on_message("busy: wait for training / prediction to finish (or cancel it)")
            return
        try:
            action()
        except (ActivePickError, OSError) as exc:
            self.on_message(str(exc))
            if not isinstance(exc, ReviewRefused):
                _show_error(exc)
        self._after_change()

    def _selected_queue_ids(self) -> list[int]:
        """Pick ids of the selected queue points when the queue layer is the active one.

        Compared by name: napari hands plugins a ``PublicOnlyProxy`` viewer whose
        layers are proxies, so an identity check never matches."""
        layer = self.layers.get(QUEUE)
        active = self.viewer.layers.selection.active
        if layer is None or not layer.selected_data or active is None or active.name != QUEUE:
            return []
        ids = layer.features["pick_id"].to_numpy()
        return [int(ids[i]) for i in sorted(layer.selected_data) if i < len(ids)]

    def accept(self) -> None:
        """Accept the current pick (or every selected queue point) as particles."""
        self._run(lambda: self.workbench.accept(self._selected_queue_ids()))

    def reject(self) -> None:
        """Reject the current pick (or every selected queue point): reviewed negatives."""
        self._run(lambda: self.workbench.reject(self._selected_queue_ids()))

    def goto(self, index: int) -> None:
        """Review the queue pick at ``index`` (clamped to the queue)."""
        self._run(lambda: self.workbench.goto(index))

    def next(self) -> None:
        """Go to the next proposal."""
        self._run(lambda: self.workbench.next())

    def previous(self) -> None:
        """Go to the previous proposal."""
        self._run(lambda: self.workbench.previous())

    def undo(self) -> None:
        """Undo the last change."""
        self._run(lambda: self.workbench.undo())

    def cursor_position(self) -> tuple[str, float, float] | None:
        """``(micrograph, x, y)`` under the mouse cursor (original pixels)."""
        pos = self.viewer.cursor.position
        if pos is None or len(pos) < 2 or not self.names:
            return None
        index = int(round(pos[-3])) if self.stacked and len(pos) >= 3 else 0
        if self.stacked and len(pos) < 3:
            index = int(self.viewer.dims.current_step[0])
        if not 0 <= index < len(self.names):
            return None
        return self.names[index], float(pos[-1]), float(pos[-2])

    def remove_nearest(self, position: tuple[str, float, float] | None = None) -> None:
        """Remove the label nearest ``position`` (default: the mouse cursor) if it lies
        within one diameter; an accepted / moved pick becomes undecided again."""
        position = position or self.cursor_position()
        if position is None:
            self.on_message("move the mouse over a micrograph first")
            return
        self._run(lambda: self.workbench.remove_nearest(*position))

    def add_particle(self, micrograph: str, x: float, y: float) -> None:
        """Add a particle at (x, y) (refused within the minimum distance of a label)."""
        self._run(lambda: self.workbench.add(micrograph, x, y))

    def _after_change(self) -> None:
        if self.workbench is None:
            return
        self.refresh_labels()
        self.refresh_queue()
        self.on_change()
        if self.workbench.batch_done():
            self.on_message("batch reviewed: press Next round to retrain with the new labels")

    # ------------------------------------------------------------------ layers -> workbench
    def _point_location(self, layer, index: int) -> tuple[str, float, float]:
        p = np.asarray(layer.data[index], dtype=np.float64)
        mic_index = int(round(p[-3])) if self.stacked and len(p) >= 3 else 0
        mic_index = int(np.clip(mic_index, 0, len(self.names) - 1))
        return self.names[mic_index], float(p[-1]), float(p[-2])

    def _on_data_event(self, event) -> None:
        if self._syncing or self.workbench is None:
            return
        layer = event.source
        action = str(getattr(event, "action", ""))
        indices = [int(i) for i in (getattr(event, "data_indices", ()) or ())]
        if action == "removing":
            ids = layer.features["pick_id"].to_numpy()
            self._removing[layer.name] = [int(ids[i]) for i in indices if i < len(ids)]
            return
        if action not in ("added", "removed", "changed"):
            return
        if self.busy:
            self.on_message("busy: the edit was undone; wait for training to finish")
            self.refresh()
            return
        wb = self.workbench
        if action == "added":
            points = [self._point_location(layer, i) for i in indices]
            self._drawn = indices if layer.name == LABELS else []
            self._run(lambda: [wb.add(*p) for p in points])
        elif action == "removed":
            ids = [i for i in self._removing.pop(layer.name, []) if i >= 0]
            if layer.name == QUEUE:
                self._run(lambda: wb.reject_removed(ids))
            else:
                self._run(lambda: [wb.remove(i) for i in ids])
        else:
            pick_ids = layer.features["pick_id"].to_numpy()
            moves = [(int(pick_ids[i]), *self._point_location(layer, i)) for i in indices]
            self._run(lambda: [wb.move(*m) for m in moves if m[0] >= 0])


def camera(viewer):
    """The viewer's camera (``viewer.scene.camera`` from napari 0.9, else ``viewer.camera``)."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None and hasattr(scene, "camera") else viewer.camera


def _defaults(layer) -> dict:
    fd = layer.feature_defaults
    return {c: fd[c].iloc[0] for c in fd.columns} if len(fd) else {}


def _empty_table() -> pd.DataFrame:
    from ..io.picks import empty_picks

    out = empty_picks()
    out["pick_id"] = pd.Series(dtype=np.int64)
    return out


def _show_error(exc: Exception) -> None:
    from napari.utils.notifications import show_error

    show_error(str(exc))
