"""The user's edits on the review layers, forwarded to the workbench: points drawn,
deleted or dragged on the labels / queue layers, the cursor position the
remove-nearest key uses, and the per-micrograph actions of the shown micrograph
(complete, confirm, fully picked; a mixin of :class:`.review.ReviewLayers`)."""

from __future__ import annotations

import numpy as np

from ._layers import LABELS, QUEUE


class LayerInput:
    """Layers -> workbench. Expects ``viewer``, ``names``, ``stacked``, ``workbench``,
    ``busy``, ``on_message``, ``refresh`` and ``_run`` of :class:`.review.ReviewLayers`."""

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

    def _on_shown(self, action, done) -> None:
        """Run ``action(name)`` on the shown micrograph; ``done(name, result)`` is the
        status line."""
        name = self._current_name()
        if name is None:
            self.on_message("open micrographs first")
            return
        result: list = []
        self._run(lambda: result.append(action(name)), follow=False)
        if result:  # after the key path's own messages (e.g. "batch reviewed")
            self.on_message(done(name, result[0]))

    def complete_reviewed(self) -> None:
        """Mark the neighbourhoods of the picks reviewed on the shown micrograph complete
        (add their missed particles first): their unlabelled area is background."""
        self._on_shown(
            self.workbench.complete_reviewed,
            lambda name, ids: f"{name}: {len(ids)} reviewed neighbourhood(s) marked complete",
        )

    def confirm_confident(self) -> None:
        """Accept the confident picks of the shown micrograph at once (reject the wrong
        ones first: select them in the predictions layer and press z)."""
        from ..active.regions import bulk_threshold

        t = bulk_threshold(self.learner.t_opt) if self.learner is not None else 0.0
        self._on_shown(
            self.workbench.confirm_confident,
            lambda name, ids: (
                f"{name}: {len(ids)} pick(s) with confidence >= {t:.2f} confirmed (u undoes)"
            ),
        )

    def toggle_micrograph_complete(self) -> None:
        """Mark (or unmark) the shown micrograph fully picked."""

        def toggle(name: str) -> bool:
            done = name not in self.learner.complete
            self.workbench.mark_complete(name, done)
            return done

        self._on_shown(
            toggle,
            lambda name, done: f"{name}: {'fully picked' if done else 'not marked fully picked'}",
        )

    def add_particle(self, micrograph: str, x: float, y: float) -> None:
        """Add a particle at (x, y) (refused within the minimum distance of a label)."""
        self._run(lambda: self.workbench.add(micrograph, x, y))

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
