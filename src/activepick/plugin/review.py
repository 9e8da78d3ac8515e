"""The review layers: translate an ``ActiveLearner``'s state to napari Points layers
and the user's edits / key presses back to learner calls.

Layers (all in pixels of the original micrographs, ``(index, y, x)`` on a stack):

- ``predictions``: every prediction of the latest round; only those with
  confidence >= the threshold are shown.
- ``labels``: the particle labels (accepted, moved, added, imported). Adding a
  point here (add mode, ``2`` / ``P``) records an *added* particle; deleting one
  removes the label.
- ``review queue``: the K most uncertain predictions in review order, coloured by
  status; dragging a point (select mode, ``3``) records a *move*.
- ``current pick``: a square around the pick under review.

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

from ..constants import POSITIVE_STATUSES, STATUS_ADDED, STATUS_PREDICTED, STATUS_REJECTED
from ..errors import ActivePickError
from ._layers import (
    MICROGRAPHS_KEY,
    PIXEL_SIZE_KEY,
    SHAPES_KEY,
    STATUS_COLORS,
    picks_to_points,
    points_style,
)

PREDICTIONS = "predictions"
LABELS = "labels"
QUEUE = "review queue"
CURRENT = "current pick"

#: key -> (method name, description); the widget shows this table.
KEY_BINDINGS: dict[str, tuple[str, str]] = {
    "x": ("accept", "accept the current pick (positive)"),
    "z": ("reject", "reject the current pick (negative)"),
    "d": ("next", "next proposal"),
    "s": ("previous", "previous proposal"),
    "c": ("remove_nearest", "remove the label nearest the cursor"),
    "u": ("undo", "undo the last decision"),
    "Control-z": ("undo", "undo the last decision"),
}
#: Feature columns of the review layers.
_FEATURES = ["pick_id", "micrograph", "confidence", "status", "diameter"]


class ReviewLayers:
    """Keeps the review layers of one viewer in step with an ``ActiveLearner``.

    ``on_message(text)`` receives status lines (refusals, end of batch);
    ``on_change()`` is called after every change of the learner's labels or
    queue position (the widget updates its counts). While ``busy`` is true
    (training runs in a worker thread) edits are refused.
    """

    def __init__(
        self,
        viewer,
        *,
        on_message: Callable[[str], None] | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.viewer = viewer
        self.learner = None
        self.names: list[str] = []
        self.image_meta: dict = {}
        self.threshold = 0.5
        self.min_distance = 0.0
        self.busy = False
        self.on_message = on_message or (lambda text: None)
        self.on_change = on_change or (lambda: None)
        self._syncing = False
        self._removing: dict[str, list[int]] = {}
        self._zoomed = False
        self.layers: dict[str, object] = {}

    # ------------------------------------------------------------------ set-up
    @property
    def stacked(self) -> bool:
        return len(self.names) > 1

    @property
    def diameter(self) -> float:
        return float(self.learner.config.diameter) if self.learner is not None else 64.0

    def attach(self, learner, image_meta: dict | None = None) -> None:
        """Show ``learner``'s state; creates the layers on first use."""
        self.learner = learner
        self.names = [m.name for m in learner.micrographs]
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
        viewer = self.viewer
        for name in (PREDICTIONS, LABELS, QUEUE, CURRENT):
            old = self.layers.get(name)
            if old is not None and old in viewer.layers and old.ndim == self._ndim():
                continue
            if old is not None and old in viewer.layers:
                viewer.layers.remove(old)
            self.layers[name] = self._make_layer(name)
        self.bind_keys()

    def _make_layer(self, name: str):
        d = self.diameter
        empty = np.zeros((0, self._ndim()))
        features = pd.DataFrame(
            {
                "pick_id": pd.Series(dtype=np.int64),
                "micrograph": pd.Series(dtype=object),
                "confidence": pd.Series(dtype=np.float64),
                "status": pd.Categorical([], categories=list(STATUS_COLORS)),
                "diameter": pd.Series(dtype=np.float64),
            }
        )
        meta = self._layer_meta()
        if name == CURRENT:
            layer = self.viewer.add_points(
                empty,
                name=CURRENT,
                size=1.5 * d,
                symbol="square",
                face_color="transparent",
                border_color="white",
                border_width=0.05,
                border_width_is_relative=True,
                metadata=meta,
            )
            return layer
        style = points_style(d, text=name == QUEUE)
        if name == PREDICTIONS:
            style.update(opacity=0.6)
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
            scale = 1.5 if name == CURRENT else 1.0
            if len(layer.data):
                layer.size = np.full(len(layer.data), scale * float(diameter))
            layer.current_size = scale * float(diameter)
            if name != CURRENT:
                layer.feature_defaults = {**_defaults(layer), "diameter": float(diameter)}

    # ------------------------------------------------------------------ learner -> layers
    def _set_points(self, layer, picks: pd.DataFrame) -> None:
        coords, rows = picks_to_points(picks, self.names, stacked=self.stacked)
        features = pd.DataFrame(
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
        self._syncing = True
        try:
            layer.selected_data = set()
            layer.data = coords if len(coords) else np.zeros((0, self._ndim()))
            layer.features = features
            if len(coords):
                layer.size = rows["diameter"].to_numpy(np.float64)
            layer.refresh_colors(update_color_mapping=False)
            if layer.text is not None and len(coords):
                layer.text.refresh(layer.features)
            layer.metadata.update(self._layer_meta())
        finally:
            self._syncing = False

    def refresh(self) -> None:
        """Redraw every layer from the learner."""
        if self.learner is None:
            return
        self.refresh_predictions()
        self.refresh_labels()
        self.refresh_queue()

    def refresh_predictions(self) -> None:
        pred = self.learner.predictions
        layer = self.layers[PREDICTIONS]
        if pred is None or len(pred) == 0:
            pred = _empty_table()
        self._set_points(layer, pred)
        self.set_threshold(self.threshold)

    def set_threshold(self, threshold: float) -> None:
        """Show only predictions with confidence >= ``threshold``."""
        self.threshold = float(threshold)
        layer = self.layers.get(PREDICTIONS)
        if layer is not None and len(layer.data):
            conf = layer.features["confidence"].to_numpy(np.float64)
            layer.shown = np.nan_to_num(conf, nan=0.0) >= self.threshold

    def refresh_labels(self) -> None:
        labels = self.learner.labels
        pos = labels[labels["status"].isin(POSITIVE_STATUSES)]
        self._set_points(self.layers[LABELS], pos if len(pos) else _empty_table())

    def queue_table(self) -> pd.DataFrame:
        """The queue rows with the status of their decision (predicted when none)."""
        queue = self.learner.queue
        if queue is None or len(queue) == 0:
            return _empty_table()
        status = self.learner.labels.set_index("pick_id")["status"]
        decided = queue["pick_id"].map(status)
        out = queue.copy()
        out["status"] = decided.fillna(STATUS_PREDICTED).astype(str).to_numpy()
        labels = self.learner.labels.set_index("pick_id")
        moved = out["pick_id"].isin(labels.index)
        if moved.any():  # show decided picks where the label is (a move changes it)
            out.loc[moved, "x"] = labels.loc[out.loc[moved, "pick_id"], "x"].to_numpy()
            out.loc[moved, "y"] = labels.loc[out.loc[moved, "pick_id"], "y"].to_numpy()
        return out

    def refresh_queue(self) -> None:
        self._set_points(self.layers[QUEUE], self.queue_table())
        self.refresh_current(move_camera=True)

    def current_pick(self) -> pd.Series | None:
        """The queue row under review, or None when the queue is done or empty."""
        queue = self.learner.queue if self.learner is not None else None
        if queue is None or not 0 <= self.learner.position < len(queue):
            return None
        return queue.iloc[self.learner.position]

    def refresh_current(self, move_camera: bool = True) -> None:
        layer = self.layers[CURRENT]
        row = self.current_pick()
        self._syncing = True
        try:
            if row is None:
                layer.data = np.zeros((0, self._ndim()))
            else:
                coords, _ = picks_to_points(
                    pd.DataFrame([row]).reset_index(drop=True), self.names, stacked=self.stacked
                )
                layer.data = coords
                layer.size = np.full(len(coords), 1.5 * float(row["diameter"]))
        finally:
            self._syncing = False
        if row is not None and move_camera:
            self.centre_on(row)

    def centre_on(self, row: pd.Series) -> None:
        """Move the slider to the pick's micrograph and centre the camera on it."""
        viewer = self.viewer
        if self.stacked:
            viewer.dims.set_current_step(0, self.names.index(str(row["micrograph"])))
        cam = camera(viewer)
        cam.center = (float(row["y"]), float(row["x"]))
        if not self._zoomed:
            self._zoomed = True
            canvas = min(getattr(viewer, "_canvas_size", (600, 600)) or (600, 600))
            cam.zoom = max(canvas / (10.0 * self.diameter), 0.05)

    # ------------------------------------------------------------------ actions
    def _guard(self) -> bool:
        if self.learner is None:
            self.on_message("open micrographs first")
            return False
        if self.busy:
            self.on_message("busy: wait for training / prediction to finish (or cancel it)")
            return False
        return True

    def _selected_queue_ids(self) -> list[int]:
        layer = self.layers.get(QUEUE)
        if (
            layer is None
            or not layer.selected_data
            or layer is not self.viewer.layers.selection.active
        ):
            return []
        ids = layer.features["pick_id"].to_numpy()
        return [int(ids[i]) for i in sorted(layer.selected_data) if i < len(ids)]

    def _decide(self, action: str) -> None:
        if not self._guard():
            return
        ids = self._selected_queue_ids()
        if not ids:
            row = self.current_pick()
            if row is None:
                self.on_message("no pick under review: the batch is done - press Next round")
                return
            ids = [int(row["pick_id"])]
        try:
            for pick_id in ids:
                self.learner.decide(pick_id, action)
        except ActivePickError as exc:
            self.on_message(str(exc))
            _show_error(exc)
        self._after_change()

    def accept(self) -> None:
        """Accept the current pick (or the selected queue points) as particles."""
        self._decide("accept")

    def reject(self) -> None:
        """Reject the current pick (or the selected queue points): reviewed negatives."""
        self._decide("reject")

    def goto(self, index: int) -> None:
        """Review the queue pick at ``index`` (clamped to the queue)."""
        if self.learner is None or len(self.learner.queue) == 0:
            return
        self.learner.position = int(np.clip(index, 0, len(self.learner.queue) - 1))
        session = getattr(self.learner, "session", None)
        if session is not None:  # the queue position survives a restart
            try:
                session.save_queue(self.learner.queue, self.learner.position)
            except ActivePickError as exc:
                self.on_message(str(exc))
        self.refresh_current(move_camera=True)
        self.on_change()

    def next(self) -> None:
        """Go to the next proposal."""
        if self.learner is not None:
            self.goto(self.learner.position + 1)

    def previous(self) -> None:
        """Go to the previous proposal."""
        if self.learner is not None:
            self.goto(self.learner.position - 1)

    def undo(self) -> None:
        """Undo the learner's last change."""
        if not self._guard():
            return
        if not self.learner.undo():
            self.on_message("nothing to undo")
        self._after_change()

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
        if not self._guard():
            return
        position = position or self.cursor_position()
        if position is None:
            self.on_message("move the mouse over a micrograph first")
            return
        pick_id, dist = nearest_label(self.learner.labels, *position)
        if pick_id is None or dist > self.diameter:
            self.on_message("no label within one diameter of the cursor")
            return
        self.learner.remove_label(pick_id)
        self._after_change()

    def add_particle(self, micrograph: str, x: float, y: float) -> int | None:
        """Add a particle at (x, y) unless a label lies within the minimum distance."""
        if not self._guard():
            return None
        pick_id, dist = nearest_label(self.learner.labels, micrograph, x, y)
        limit = max(self.min_distance, 1e-9)
        if pick_id is not None and dist < limit:
            self.on_message(
                f"refused: a label lies {dist:.0f} px away (minimum distance {self.min_distance:.0f} px)"
            )
            self.refresh_labels()
            return None
        try:
            new_id = self.learner.add_particle(micrograph, x, y)
        except ActivePickError as exc:
            self.on_message(str(exc))
            _show_error(exc)
            new_id = None
        self._after_change()
        return new_id

    def _after_change(self) -> None:
        self.refresh_labels()
        self.refresh_queue()
        self.on_change()
        if len(self.learner.queue) and self.learner.position >= len(self.learner.queue):
            self.on_message("batch reviewed: press Next round to retrain with the new labels")

    # ------------------------------------------------------------------ layers -> learner
    def _point_location(self, layer, index: int) -> tuple[str, float, float]:
        p = np.asarray(layer.data[index], dtype=np.float64)
        mic_index = int(round(p[-3])) if self.stacked and len(p) >= 3 else 0
        mic_index = int(np.clip(mic_index, 0, len(self.names) - 1))
        return self.names[mic_index], float(p[-1]), float(p[-2])

    def _on_data_event(self, event) -> None:
        if self._syncing or self.learner is None:
            return
        layer = event.source
        action = str(getattr(event, "action", ""))
        indices = [int(i) for i in (getattr(event, "data_indices", ()) or ())]
        key = layer.name
        if action == "removing":
            ids = layer.features["pick_id"].to_numpy()
            self._removing[key] = [int(ids[i]) for i in indices if i < len(ids)]
            return
        if action not in ("added", "removed", "changed"):
            return
        if self.busy:
            self.on_message("busy: the edit was undone; wait for training to finish")
            self.refresh()
            return
        try:
            if action == "added":
                for i in indices:
                    self.add_particle(*self._point_location(layer, i))
            elif action == "removed":
                for pick_id in self._removing.pop(key, []):
                    if pick_id < 0:
                        continue
                    if layer.name == QUEUE:
                        if pick_id not in set(self.learner.labels["pick_id"]):
                            self.learner.decide(pick_id, "reject")
                        elif self._label_status(pick_id) == STATUS_REJECTED:
                            continue
                        else:
                            self.learner.decide(pick_id, "reject")
                    else:
                        self.learner.remove_label(pick_id)
            elif action == "changed":
                ids = layer.features["pick_id"].to_numpy()
                for i in indices:
                    name, x, y = self._point_location(layer, i)
                    pick_id = int(ids[i])
                    self._move(pick_id, name, x, y)
        except ActivePickError as exc:
            self.on_message(str(exc))
            _show_error(exc)
        self._after_change()

    def _label_status(self, pick_id: int) -> str | None:
        rows = self.learner.labels[self.learner.labels["pick_id"] == pick_id]
        return None if len(rows) == 0 else str(rows["status"].iloc[0])

    def _move(self, pick_id: int, name: str, x: float, y: float) -> None:
        """A point was dragged to (x, y): a move decision for predictions, else re-add."""
        known = set()
        for df in (self.learner.queue, self.learner.predictions):
            if df is not None and len(df):
                known |= set(df["pick_id"].astype(int))
        if pick_id in known:
            self.learner.decide(pick_id, "move", x, y)
        elif pick_id >= 0:
            self.learner.remove_label(pick_id)
            self.learner.add_particle(name, x, y)


def camera(viewer):
    """The viewer's camera (``viewer.scene.camera`` from napari 0.9, else ``viewer.camera``)."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None and hasattr(scene, "camera") else viewer.camera


def nearest_label(
    labels: pd.DataFrame, micrograph: str, x: float, y: float
) -> tuple[int | None, float]:
    """``(pick_id, distance in px)`` of the particle label nearest (x, y) on a micrograph
    (``(None, inf)`` when it has none)."""
    rows = labels[(labels["micrograph"] == micrograph) & labels["status"].isin(POSITIVE_STATUSES)]
    if len(rows) == 0:
        return None, float("inf")
    d = np.hypot(rows["x"].to_numpy(float) - x, rows["y"].to_numpy(float) - y)
    i = int(np.argmin(d))
    return int(rows["pick_id"].iloc[i]), float(d[i])


def _defaults(layer) -> dict:
    fd = layer.feature_defaults
    return {c: fd[c].iloc[0] for c in fd.columns} if len(fd) else {}


def _empty_table() -> pd.DataFrame:
    from ..io.picks import empty_picks

    out = empty_picks()
    out["pick_id"] = pd.Series(dtype=np.int64)
    return out


def _show_error(exc: Exception) -> None:
    try:
        from napari.utils.notifications import show_error

        show_error(str(exc))
    except Exception:  # pragma: no cover - notification manager unavailable
        pass
