"""The review layers: draw a :class:`~activepick.active.workbench.Workbench`'s state as
napari Points layers and forward the user's edits / key presses to it. Every review
rule (minimum distance, nearest label, multi-pick decisions, navigation) is the
workbench's; this module only translates layer coordinates and events.

Layers (in pixels of the original micrographs; ``(index, y, x)`` for the labels and
the queue on a stack, ``(y, x)`` for the predictions and the square, which show the
slider's micrograph only):

- ``predictions``: the predictions of the latest round on the micrograph the slider
  shows; only those with confidence >= the threshold are drawn.
- ``labels``: the particle labels (accepted, moved, added, imported) of the
  micrograph the slider shows. Adding a point here (add mode, ``2`` / ``P``)
  records an *added* particle; deleting one removes the label.
- ``review queue``: the K most uncertain predictions in review order, orange until
  decided, then coloured by status; dragging a point (select mode, ``3``) records
  a *move*.
- ``current pick``: a thick white square around the pick under review.

Speed: napari's work on a Points layer grows with the points it holds, so the
``labels`` and ``predictions`` layers hold only the shown micrograph's points and are
refilled when the slider moves; and napari re-slices every 3-D layer on each slider
move (about 3 ms each here, whatever its size), so the predictions and the square are
2-D. A key press (:meth:`ReviewLayers._after_change`) edits only the points of the
picks it changed, in place, with one redraw per layer (``_points``), moves the square,
and fills the one-micrograph layers before the slider moves, so its cost does not
grow with the number of labels (``perf/bench_review.py --layers``). The user's own
edits on the layers are forwarded by ``_review_input``.

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
f      the neighbourhoods of the picks reviewed on this micrograph are complete
b      confirm this micrograph's confident picks at once
F      this micrograph is fully picked (toggle; Shift-F)
====== =====================================================================

x / z decide every selected point instead when the queue or the predictions layer is
the active layer (reject the wrong confident picks that way before ``b``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from ..active.workbench import ReviewRefused
from ..constants import DEFAULT_DIAMETER, LABEL_COLUMNS, STATUS_ADDED, STATUS_PREDICTED
from ..errors import ActivePickError
from ._layers import (
    CURRENT,
    LABELS,
    MICROGRAPHS_KEY,
    PIXEL_SIZE_KEY,
    PREDICTIONS,
    QUEUE,
    QUEUE_COLORS,
    SHAPES_KEY,
    STATUS_COLORS,
    LabelIndex,
    PointsByMicrograph,
    empty_review_table,
    picks_to_points,
    points_style,
    review_features,
)
from ._points import (
    append_points,
    feature_defaults_of,
    label_points,
    place_points,
    set_points,
    sync_points,
)
from ._review_input import LayerInput

#: key -> (method name, description); the widget's help shows this table.
KEY_BINDINGS: dict[str, tuple[str, str]] = {
    "x": ("accept", "accept the current pick (positive)"),
    "z": ("reject", "reject the current pick (negative)"),
    "d": ("next", "next proposal"),
    "s": ("previous", "previous proposal"),
    "c": ("remove_nearest", "remove the label nearest the cursor"),
    "u": ("undo", "undo the last decision"),
    "f": ("complete_reviewed", "neighbourhoods reviewed on this micrograph are complete"),
    "b": ("confirm_confident", "confirm this micrograph's confident picks"),
    "Shift-F": ("toggle_micrograph_complete", "this micrograph is fully picked (toggle)"),
    "Control-z": ("undo", "undo the last decision"),
}
#: Size of the current-pick square relative to the diameter, and its border width
#: (relative to its size): between the pick's circle and the square lies a band of
#: about a third of a diameter, free for the pick's confidence text.
CURRENT_SCALE = 2.0
CURRENT_BORDER = 0.05
#: Where a queue pick's confidence text is centred: this many diameters above the pick's
#: centre, in the band between its circle and the current-pick square.
TEXT_OFFSET = 0.72


def queue_text_translation(diameter: float, ndim: int) -> list[float]:
    """Offset (data px, ``ndim`` coordinates) of a queue pick's confidence text from the
    pick's centre (napari's ``center`` anchor): :data:`TEXT_OFFSET` diameters up, in the
    band between the pick's circle and the current-pick square, so that neither covers
    the other at the review zoom (the text is 9 pt; the band is ~30 px when a diameter
    is ~85 px on screen). Centred on the pick and nearer to it than the square's edge,
    the text stays inside the micrograph but for a few pixels, whichever edge the pick
    lies at (queue picks lie at least half a diameter from the edges)."""
    return [0.0] * (ndim - 2) + [-TEXT_OFFSET * float(diameter), 0.0]


class ReviewLayers(LayerInput):
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
        # per micrograph: particle-label pick ids and prediction rows, for the
        # one-micrograph labels / predictions layers (see the module docs)
        self._label_index = LabelIndex()
        self._pred_points = PointsByMicrograph(None)
        self._shown_mic: dict[str, str | None] = {}
        self._follows_slider = False
        # the points drawn: pick id -> row of the labels / queue layer, and the queue
        # table the queue layer shows (a key press edits only the rows it changed)
        self._label_rows: dict[int, int] = {}
        self._queue_rows: dict[int, int] = {}
        self._queue_drawn: pd.DataFrame | None = None

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

    def _ndim(self, name: str) -> int:
        """``(index, y, x)`` points for the labels and the queue on a stack (the user
        draws and drags them; the queue spans micrographs); ``(y, x)`` for the
        predictions and the current-pick square, which show one micrograph's points and
        are refilled by the key path, so that napari need not re-slice them when the
        slider moves (see the module docs)."""
        return 3 if self.stacked and name in (LABELS, QUEUE) else 2

    def _ensure_layers(self) -> None:
        """Create (or recreate when the dimensionality changed) the four layers."""
        names = {ly.name for ly in self.viewer.layers}
        for name in (PREDICTIONS, LABELS, QUEUE, CURRENT):
            old = self.layers.get(name)
            if old is not None and old.name in names and old.ndim == self._ndim(name):
                continue
            if old is not None and old.name in names:
                self.viewer.layers.remove(old.name)
            self.layers[name] = self._make_layer(name)
            self._shown_mic.pop(name, None)
        self.bind_keys()
        if not self._follows_slider:
            self.viewer.dims.events.current_step.connect(self._on_step)
            self._follows_slider = True

    def _make_layer(self, name: str):
        d = self.diameter
        empty = np.zeros((0, self._ndim(name)))
        meta = self._layer_meta()
        if name == CURRENT:
            return self.viewer.add_points(
                empty,
                name=CURRENT,
                size=CURRENT_SCALE * d,
                symbol="square",
                face_color="transparent",
                border_color="white",
                border_width=CURRENT_BORDER,
                border_width_is_relative=True,
                metadata=meta,
            )
        features = review_features(empty_review_table())
        style = points_style(d, text=name == QUEUE)
        if name == QUEUE:
            style["text"].update(
                anchor="center", translation=queue_text_translation(d, self._ndim(name))
            )
        # direct colours: the key path colours each point by its status in place
        # (_points.status_rgba); a point the user draws starts as an added particle
        style.pop("border_color_cycle")
        style["border_color"] = self._colors(name)[STATUS_ADDED]
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

    @staticmethod
    def _colors(name: str) -> dict[str, str]:
        """Border colour by status of review layer ``name``."""
        return QUEUE_COLORS if name == QUEUE else STATUS_COLORS

    def bind_keys(self) -> None:
        """Bind the review keys on the viewer and on each review layer."""
        targets = [self.viewer] + [self.layers[n] for n in (PREDICTIONS, LABELS, QUEUE, CURRENT)]
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
                layer.feature_defaults = {**feature_defaults_of(layer), "diameter": float(diameter)}
            offset = queue_text_translation(diameter, layer.ndim)
            if name == QUEUE and not np.allclose(layer.text.translation, offset):
                layer.text.translation = offset

    # ------------------------------------------------------------------ workbench -> layers
    def _set_points(self, layer, picks: pd.DataFrame) -> None:
        coords, rows = picks_to_points(picks, self.names, stacked=layer.ndim == 3)
        self._draw(layer, coords, review_features(rows))

    def _draw(self, layer, coords: np.ndarray, features: pd.DataFrame) -> None:
        """Replace ``layer``'s points (:func:`._points.set_points`)."""
        self._syncing = True
        try:
            coords = coords if len(coords) else np.zeros((0, layer.ndim))
            queue = layer is self.layers.get(QUEUE)
            set_points(
                layer, coords, features, self._colors(QUEUE if queue else LABELS), text=queue
            )
        finally:
            self._syncing = False

    def _current_name(self) -> str | None:
        """The micrograph the viewer shows (the slider's; the only one when not stacked)."""
        if not self.names:
            return None
        index = int(self.viewer.dims.current_step[0]) if self.stacked else 0
        return self.names[index] if 0 <= index < len(self.names) else None

    def _on_step(self, event=None) -> None:
        """The slider moved: refill the one-micrograph layers when it shows another one."""
        if self.workbench is None or not self.layers:
            return
        name = self._current_name()
        if self._shown_mic.get(PREDICTIONS) != name:
            self._draw_predictions()
        if self._shown_mic.get(LABELS) != name:
            self.refresh_labels()
        self.refresh_current(move_camera=False)

    def refresh(self) -> None:
        """Redraw every layer from the workbench."""
        if self.workbench is None:
            return
        meta = self._layer_meta()
        for layer in self.layers.values():
            layer.metadata.update(meta)
        self.refresh_predictions()
        self.refresh_labels(full=True)
        self.refresh_queue(full=True)

    def refresh_predictions(self) -> None:
        """Index the latest round's predictions by micrograph (once per round) and draw
        those of the shown micrograph."""
        self._pred_points = PointsByMicrograph(self.learner.predictions)
        self._draw_predictions()

    def _draw_predictions(self, name: str | None = None) -> None:
        """Draw micrograph ``name``'s (default: the shown one's) predictions with
        confidence >= the threshold (napari's work grows with the points a layer holds,
        hidden ones too)."""
        name = self._current_name() if name is None else name
        coords, features = self._pred_points.points(name, self.threshold)
        self._draw(self.layers[PREDICTIONS], coords, features)
        self._shown_mic[PREDICTIONS] = name

    def set_threshold(self, threshold: float) -> None:
        """Show only predictions with confidence >= ``threshold``."""
        changed = float(threshold) != self.threshold
        self.threshold = float(threshold)
        if changed and self.workbench is not None and PREDICTIONS in self.layers:
            self._draw_predictions()

    def refresh_labels(self, full: bool = False) -> None:
        """Bring the labels layer up to date with the picks changed since the last call
        (O(changes); the whole table only when ``full`` or after it was replaced)."""
        changed = self.learner.label_store.take_changes()
        self._sync_labels(None if full else changed, self._current_name())

    def _sync_labels(self, changed: set[int] | None, name: str | None) -> None:
        """Index the label changes ``changed`` (None: the whole table) and show micrograph
        ``name``'s labels: the changed points only, when the layer shows ``name`` already
        and no point was drawn or removed, else a redraw (O(labels of ``name``))."""
        redraw = bool(self._drawn) or self._shown_mic.get(LABELS) != name
        self._drawn = []
        if changed is None:
            self._label_index.reset(self.learner.labels)
            edits, redraw = [], True
        else:
            edits = self._label_index.apply(changed, self.learner.label_store, name)
        if redraw or any(row is None for _, row in edits):
            self._draw_labels(name)
        elif edits:
            self._edit_labels(name, edits)

    def _stack_index(self, name: str | None) -> int | None:
        """The leading coordinate of micrograph ``name``'s points (None: not stacked)."""
        return self.names.index(name) if self.stacked and name in self.names else None

    def _draw_labels(self, name: str | None) -> None:
        """Draw the particle labels of micrograph ``name`` (O(its labels))."""
        store = self.learner.label_store
        ids = self._label_index.ids_of(name)
        coords, features = label_points(store.rows(ids), self._stack_index(name))
        self._draw(self.layers[LABELS], coords, features)
        self._label_rows = {pick_id: i for i, pick_id in enumerate(ids)}
        self._shown_mic[LABELS] = name

    def _edit_labels(self, name: str | None, edits: list[tuple[int, dict]]) -> None:
        """Change the labels layer's points of the labels ``edits`` (on ``name``, shown):
        new ones are appended, the others moved / recoloured in place."""
        layer, index = self.layers[LABELS], self._label_rows
        new = [row for pick_id, row in edits if pick_id not in index]
        old = [(index[pick_id], row) for pick_id, row in edits if pick_id in index]
        self._syncing = True
        try:
            if layer.selected_data:
                layer.selected_data = set()
            if old:
                yx = [(row["y"], row["x"]) for _, row in old]
                sync_points(layer, [r for r, _ in old], [row["status"] for _, row in old], yx)
            if new:
                rows = [tuple(row[c] for c in LABEL_COLUMNS) for row in new]
                coords, features = label_points(rows, self._stack_index(name))
                start = len(layer.data)
                append_points(layer, coords, features)
                for i, row in enumerate(new):
                    index[int(row["pick_id"])] = start + i
        finally:
            self._syncing = False

    def refresh_queue(self, full: bool = False) -> None:
        """Redraw the review queue (O(queue)): when it is the queue drawn last, only the
        points whose status or centre changed are updated. Then the current pick."""
        queue = self.learner.queue
        layer = self.layers[QUEUE]
        if full or queue is not self._queue_drawn or len(layer.data) != len(queue):
            table = self.workbench.queue_table()
            self._set_points(layer, table if len(table) else empty_review_table())
            self._queue_drawn = queue
            self._queue_rows = {int(p): i for i, p in enumerate(queue["pick_id"].tolist())}
        else:
            self._update_queue(set(self._queue_rows))
        self.refresh_current(move_camera=True)

    def _update_queue(self, changed: set[int], redraw: bool = True) -> None:
        """Recolour / move the queue points of the picks ``changed`` whose status / centre
        differs from the workbench's (O(changed)). ``redraw=False``: the slider moves next,
        and napari's re-slice of the (3-D) queue layer draws the change."""
        layer, queue = self.layers[QUEUE], self.learner.queue
        store = self.learner.label_store
        hits = sorted(self._queue_rows[p] for p in changed if p in self._queue_rows)
        self._syncing = True
        try:
            if layer.selected_data:
                layer.selected_data = set()
            if not hits:
                return
            status, yx = [], np.empty((len(hits), 2))
            for i, r in enumerate(hits):
                row = store.get(int(queue["pick_id"].iat[r]))
                src = queue.iloc[r] if row is None else row
                status.append(STATUS_PREDICTED if row is None else str(row["status"]))
                yx[i] = float(src["y"]), float(src["x"])
            sync_points(layer, hits, status, yx, self._colors(QUEUE), redraw=redraw)
        finally:
            self._syncing = False

    def current_pick(self) -> dict | None:
        """The queue row under review, or None when the queue is done or empty."""
        return self.workbench.current_pick() if self.workbench is not None else None

    def refresh_current(self, move_camera: bool = True, row: dict | None = None) -> None:
        """Put the current-pick square on ``row`` (default: the pick under review) and,
        with ``move_camera``, move the slider and camera to it; without, the square
        shows only while the slider shows the pick's micrograph. The square is moved in
        place when it is shown already (one redraw, no data event)."""
        layer = self.layers[CURRENT]
        row = self.current_pick() if row is None else row
        if row is not None and not move_camera and self.stacked:
            row = row if str(row["micrograph"]) == self._current_name() else None
        self._syncing = True
        try:
            if row is None:
                place_points(layer, np.zeros((0, 2)))
            else:
                place_points(layer, np.array([[float(row["y"]), float(row["x"])]]))
                size = CURRENT_SCALE * float(row["diameter"])
                if not np.allclose(layer.size, size):
                    layer.size = np.full(1, size)
        finally:
            self._syncing = False
        if row is not None and move_camera:
            self.centre_on(row)

    def centre_on(self, row) -> None:
        """Move the slider to the pick's micrograph and centre the camera on it."""
        viewer = self.viewer
        if self.stacked:
            index = self.names.index(str(row["micrograph"]))
            if int(viewer.dims.current_step[0]) != index:
                viewer.dims.set_current_step(0, index)
        cam = camera(viewer)
        centre = (float(row["y"]), float(row["x"]))
        if tuple(cam.center[-2:]) != centre:
            cam.center = centre
        if not self._zoomed:
            self._zoomed = True
            cam.zoom = max(min(viewer.canvas.size) / (10.0 * self.diameter), 0.05)

    # ------------------------------------------------------------------ actions
    def _run(self, action: Callable[[], object], *, follow: bool = True) -> None:
        """Run a workbench action; refusals and errors go to the status line. With
        ``follow`` the slider and camera then go to the pick under review; without (an
        action on the shown micrograph) they stay."""
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
        self._after_change(follow=follow)

    def _selected_queue_ids(self) -> list[int]:
        """Pick ids of the selected points when the queue or the predictions layer is
        the active one.

        Compared by name: napari hands plugins a ``PublicOnlyProxy`` viewer whose
        layers are proxies, so an identity check never matches."""
        active = self.viewer.layers.selection.active
        if active is None or active.name not in (QUEUE, PREDICTIONS):
            return []
        layer = self.layers.get(active.name)
        if layer is None or not layer.selected_data:
            return []
        ids = layer.features["pick_id"].to_numpy()
        return [int(ids[i]) for i in sorted(layer.selected_data) if i < len(ids)]

    def accept(self) -> None:
        """Accept the current pick (or every selected point) as particles."""
        ids = self._selected_queue_ids()
        self._run(lambda: self.workbench.accept(ids), follow=not ids)

    def reject(self) -> None:
        """Reject the current pick (or every selected point): reviewed negatives."""
        ids = self._selected_queue_ids()
        self._run(lambda: self.workbench.reject(ids), follow=not ids)

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

    def _after_change(self, follow: bool = True) -> None:
        """The key path: show a change of the workbench with as few napari calls as it
        needs (O(changed picks); a redraw of one micrograph's points when the next pick
        lies on another micrograph). The labels and predictions layers are filled for
        the micrograph of the pick under review before the slider moves there, so napari
        slices them once."""
        if self.workbench is None:
            return
        changed = self.learner.label_store.take_changes()
        queue = self.learner.queue
        if (
            changed is None
            or queue is not self._queue_drawn
            or len(self.layers[QUEUE].data) != len(queue)  # a point drawn on / deleted from it
        ):
            self.refresh_queue(full=True)
            self._sync_labels(None, self._current_name())
        else:
            row = self.current_pick()
            name = shown = self._current_name()
            if row is not None and self.stacked and follow:
                name = str(row["micrograph"])
            self._update_queue(changed, redraw=name == shown)
            self._sync_labels(changed, name)
            if self._shown_mic.get(PREDICTIONS) != name:
                self._draw_predictions(name)
            self.refresh_current(move_camera=follow, row=row if follow else None)
        self.on_change()
        if self.workbench.batch_done():
            self.on_message("batch reviewed: press Next round to retrain with the new labels")

    # ------------------------------------------------------------------ layers -> workbench


def camera(viewer):
    """The viewer's camera (``viewer.scene.camera`` from napari 0.9, else ``viewer.camera``)."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None and hasattr(scene, "camera") else viewer.camera


def _show_error(exc: Exception) -> None:
    from napari.utils.notifications import show_error

    show_error(str(exc))
