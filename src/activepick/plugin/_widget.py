"""The dock widget: a thin Qt front end over :class:`activepick.active.workbench.Workbench`.

It lays out controls, forwards their events to the workbench, runs the workbench's
progress generators (rounds, particle extraction) in a ``thread_worker`` and draws
the layers (:mod:`activepick.plugin.review`). Every rule, setting, file and
training step is the workbench's.

The *Model* settings are a magicgui form whose values persist across restarts
(:mod:`._settings_form`); the layout is :mod:`._layout`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import pandas as pd
from qtpy.QtWidgets import QMessageBox, QWidget

from ..constants import DEFAULT_DIAMETER
from ..errors import ActivePickError, Cancelled
from ._display import is_display_layer
from ._files import FilesPanel
from ._layers import MICROGRAPHS_KEY, micrographs_from_layer
from ._layout import GROUND_TRUTH, build_ui, refresh_browser, wrappable_path
from ._plot import draw_metrics
from ._settings_form import SettingsForm
from ._window import fit_window
from .review import ReviewLayers


class ActivePickWidget(SettingsForm, FilesPanel, QWidget):
    """Active picking dock widget (``napari-activepick.widget``).

    Public methods mirror the buttons so scripts and tests can drive it:
    :meth:`use_layer`, :meth:`open_folder`, :meth:`load_sample`,
    :meth:`new_session`, :meth:`open_session`, :meth:`import_labels`,
    :meth:`train`, :meth:`predict`, :meth:`next_round`, :meth:`cancel`,
    :meth:`export_picks`, :meth:`extract_particles`. ``detector_options`` holds
    extra ``DetectorConfig`` fields (e.g. ``width``, ``input_size``) not shown.
    """

    def __init__(self, napari_viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.workbench = None
        self.image_layer = None
        self.detector_options: dict[str, Any] = {}
        self.last_result: Any = None
        self.last_error: BaseException | None = None
        self._truth: pd.DataFrame | None = None
        self._worker = None
        self._stop = False
        self._started = 0.0
        self._preview = None
        self._loading = False
        self._window_fitted = False
        self.review = ReviewLayers(
            napari_viewer, on_message=self.set_status, on_change=self._update_counts
        )
        build_ui(self)
        # the session (and its folder lock) is released when napari deletes the widget
        held = self._held = [None]
        self.destroyed.connect(lambda *_: held[0] is not None and held[0].close())
        self.viewer.layers.events.inserted.connect(self._on_layer_inserted)
        self.viewer.layers.events.removed.connect(self._refresh_layer_combo)
        self.viewer.dims.events.current_step.connect(self._sync_complete_button)
        self._refresh_layer_combo()
        layer = self._candidate_layer()
        if layer is not None:
            self.use_layer(layer)
        self._pick_up_ground_truth()

    def showEvent(self, event) -> None:  # noqa: N802 (Qt)
        """On the first show, enlarge napari's window to a usable size (``_window``)."""
        super().showEvent(event)
        if not self._window_fitted and self.window() is not self:
            self._window_fitted = True
            fit_window(self.window())

    # ------------------------------------------------------------------ state
    @property
    def learner(self):
        return self.workbench.learner if self.workbench is not None else None

    @property
    def session(self):
        return self.workbench.session if self.workbench is not None else None

    @property
    def truth(self) -> pd.DataFrame | None:
        return self._truth

    @property
    def round_metrics(self) -> list[dict]:
        return self.workbench.round_metrics() if self.workbench is not None else []

    @property
    def worker(self):
        """The running thread worker, or None."""
        return self._worker

    # ------------------------------------------------------------------ status
    def set_status(self, text: str) -> None:
        """Show ``text`` on the status line."""
        self.status.setText(text)

    def _error(self, exc: BaseException) -> None:
        from napari.utils.notifications import show_error, show_info

        self.last_error = exc
        if isinstance(exc, Cancelled):
            self.set_status(f"cancelled: {exc}")
            show_info(f"ActivePick: cancelled ({exc})")
            return
        message = str(exc) if isinstance(exc, ActivePickError) else f"{type(exc).__name__}: {exc}"
        self.set_status(f"error: {message}")
        show_error(message)

    def _confirm(self, question: str) -> bool:
        """Ask a yes / no question (tests replace this)."""
        answer = QMessageBox.question(self, "ActivePick", question)
        return answer == QMessageBox.StandardButton.Yes

    # ------------------------------------------------------------------ layers
    def _layer_names(self, kind: str = "Image") -> list[str]:
        return [
            ly.name
            for ly in self.viewer.layers
            if type(ly).__name__ == kind and not is_display_layer(ly)
        ]

    def _candidate_layer(self):
        images = [self.viewer.layers[n] for n in self._layer_names()]
        with_meta = [ly for ly in images if MICROGRAPHS_KEY in (ly.metadata or {})]
        return (with_meta or images or [None])[-1]

    def _refresh_layer_combo(self, event=None) -> None:
        names = self._layer_names()
        if self.image_layer is not None and self.image_layer.name not in names:
            self.image_layer = None
        self.layer_combo.blockSignals(True)
        self.layer_combo.clear()
        self.layer_combo.addItems(names)
        if self.image_layer is not None:
            self.layer_combo.setCurrentText(self.image_layer.name)
        self.layer_combo.blockSignals(False)

    def _on_layer_inserted(self, event) -> None:
        self._refresh_layer_combo()
        layer = getattr(event, "value", None)
        if layer is None or self._loading or self._worker is not None:
            return
        if type(layer).__name__ == "Image" and self.workbench is None:
            if MICROGRAPHS_KEY in (layer.metadata or {}):
                self.use_layer(layer)
        self._pick_up_ground_truth()

    def _pick_up_ground_truth(self) -> None:
        """A ``ground truth`` Points layer (e.g. from Open Sample) feeds the metrics plot."""
        from ._layers import points_to_picks

        if self._truth is not None or GROUND_TRUTH not in self._layer_names("Points"):
            return
        layer = self.viewer.layers[GROUND_TRUTH]
        names = (layer.metadata or {}).get(MICROGRAPHS_KEY)
        try:
            truth = points_to_picks(layer.data, layer.features, names, diameter=DEFAULT_DIAMETER)
        except ActivePickError:
            return
        layer.visible = False
        self._set_truth(truth)

    def _on_layer_chosen(self, index: int) -> None:
        name = self.layer_combo.itemText(index)
        if name in self._layer_names():
            self.use_layer(self.viewer.layers[name])

    def use_layer(self, layer) -> None:
        """Use the micrographs of an Image layer (one per slice of a stack) as the pool.

        The layer in use already is kept with its session; another starts a new
        in-memory workbench (open or create a session to save decisions).
        """
        from ..active.workbench import Workbench

        if self._busy():
            return
        if self.workbench is not None and self.image_layer is not None:
            if layer.name == self.image_layer.name:
                self.set_status(f"already using {layer.name!r}")
                return
        try:
            wb = Workbench.for_micrographs(micrographs_from_layer(layer), self._form_settings())
        except (ActivePickError, ValueError) as exc:
            self._error(exc)
            return
        self._attach(wb, layer)
        self.set_status(
            f"{len(wb.learner.micrographs)} micrograph(s) from layer {layer.name!r}. Set the "
            "diameter, add particles in the 'labels' layer (add mode), then Next round."
        )

    def load_sample(self, *, truth: bool = True) -> None:
        """Open the sample micrographs at the sample's diameter (and its ground truth)."""
        from ._sample_data import (
            SAMPLE_LAYER,
            sample_diameter,
            sample_micrograph_paths,
            sample_truth,
        )

        self.diameter.value = int(round(sample_diameter()))
        self.use_layer(self._add_micrograph_layer(sample_micrograph_paths(), SAMPLE_LAYER))
        if truth:
            self.set_ground_truth(sample_truth())

    def set_ground_truth(self, truth: pd.DataFrame, *, show: bool = False) -> None:
        """Known particles for per-round metrics, shown as a (hidden) layer."""
        from ._layers import ground_truth_layer_data

        names = [m.name for m in self.learner.micrographs] if self.learner else None
        if names is not None:
            truth = truth[truth["micrograph"].isin(names)].reset_index(drop=True)
        if GROUND_TRUTH in self._layer_names("Points"):
            self.viewer.layers.remove(GROUND_TRUTH)
        data, kwargs, _ = ground_truth_layer_data(truth, names)
        kwargs["visible"] = show
        self._set_truth(truth)
        self._loading = True
        try:
            self.viewer.add_points(data, **kwargs)
        finally:
            self._loading = False

    def _set_truth(self, truth: pd.DataFrame) -> None:
        self._truth = truth
        if self.workbench is not None:
            self.workbench.truth = truth
        self._update_plot()

    def _attach(self, workbench, layer, *, resumed: bool = False) -> None:
        if self.workbench is not None and self.workbench is not workbench:
            self.workbench.close()
        self.workbench, self.image_layer = workbench, layer
        self._held[0] = workbench
        workbench.truth = self._truth
        if resumed:
            self._show_settings()
        self._push_settings()
        self.show_angstrom()
        self.session_label.setText(
            wrappable_path(workbench.session.folder)
            if workbench.session
            else "none (decisions are not saved)"
        )
        self.review.attach(workbench, dict(layer.metadata or {}))
        self.display.attach(layer, workbench.pixel_size)
        self.threshold.setValue(float(workbench.learner.t_opt))
        self._refresh_layer_combo()
        self._update_preview()
        self._update_counts()
        self._update_plot()

    # ------------------------------------------------------------------ session
    def new_session(self, folder: str | Path, *, overwrite: bool = False) -> bool:
        """Create a session in ``folder`` for the current micrographs; the labels and
        queue made so far are saved into it, and every later decision too."""
        from ..session import Session

        if self.workbench is None:
            self.set_status("open micrographs first")
            return False
        if self._busy():
            return False
        if Session.exists(folder) and not overwrite:
            if not self._confirm(f"{folder} already holds a session. Overwrite it?"):
                return False
            overwrite = True
        try:
            session = self.workbench.create_session(folder, overwrite=overwrite)
        except (ActivePickError, OSError) as exc:
            self._error(exc)
            return False
        self.session_label.setText(wrappable_path(session.folder))
        self.set_status(f"session {session.folder}: every decision is saved")
        return True

    def open_session(self, folder: str | Path) -> bool:
        """Open a session: its micrographs, labels, queue position, model and predictions."""
        from ..active.workbench import Workbench

        if self._busy():
            return False
        wb = None
        try:
            wb = Workbench.open(folder)  # micrographs opened lazily
            paths = [m.path for m in wb.learner.micrographs]
            layer = self._add_micrograph_layer(paths, Path(wb.session.folder).name)
        except (ActivePickError, OSError, ValueError) as exc:
            if wb is not None:
                wb.close()  # release the session's lock
            self._error(exc)
            return False
        self._attach(wb, layer, resumed=True)
        lr = wb.learner
        warnings = "; ".join(wb.open_warnings)
        self.set_status(
            f"session {wb.session.folder}: round {lr.round}, {lr.counts()['positive']} particle "
            f"labels, pick {min(lr.position + 1, len(lr.queue))} of {len(lr.queue)}"
            + (f" (recovered: {warnings})" if warnings else "")
        )
        return True

    def import_labels(self, path: str | Path) -> int:
        """Add the particles of a coordinate file as labels; returns how many."""
        if self.workbench is None or self._busy():
            return 0
        try:
            picks = self.workbench.import_labels(path)
        except ActivePickError as exc:
            self._error(exc)
            return 0
        self.review.refresh()
        self._update_counts()
        skipped = picks.attrs.get("skipped", [])
        self.set_status(
            f"imported {len(picks)} label(s) from {path}"
            + (f"; skipped: {'; '.join(skipped)}" if skipped else "")
        )
        return len(picks)

    # ------------------------------------------------------------------ complete micrographs
    def current_micrograph(self) -> str | None:
        """Name of the micrograph the viewer shows (the stack slider's position)."""
        names = self.review.names
        index = int(self.viewer.dims.current_step[0]) if len(names) > 1 else 0
        return names[index] if names and 0 <= index < len(names) else None

    def toggle_complete(self, checked: bool | None = None) -> None:
        """Mark (or unmark) the micrograph on screen as fully picked."""
        name = self.current_micrograph()
        if self.workbench is None or name is None:
            self.set_status("open micrographs first")
            return
        complete = name not in self.learner.complete if checked is None else bool(checked)
        self.workbench.mark_complete(name, complete)
        self._sync_complete_button()
        self.set_status(f"{name}: {'fully picked' if complete else 'not marked fully picked'}")

    def _sync_complete_button(self, event=None) -> None:
        name = self.current_micrograph()
        on = self.learner is not None and name in self.learner.complete
        self.complete_btn.blockSignals(True)
        self.complete_btn.setChecked(on)
        self.complete_btn.blockSignals(False)

    # ------------------------------------------------------------------ background work
    def _busy(self) -> bool:
        if self._worker is not None:
            self.set_status("busy: wait for the running job to finish (or Cancel it)")
            return True
        return False

    def _start(self, title: str, make_gen: Callable[[Callable[[], bool]], Generator], on_done):
        """Run ``make_gen(should_stop)`` in a thread worker; returns the worker."""
        from napari.qt.threading import thread_worker

        if self._busy():
            return None
        if self.workbench is None:
            self.set_status("open micrographs first")
            return None
        self._push_settings()
        self._stop = False
        self.last_error = None

        @thread_worker(start_thread=False, ignore_errors=True)  # errors -> self._error
        def work():
            return (yield from make_gen(lambda: self._stop))

        worker = work()
        worker.yielded.connect(self._on_progress)
        worker.returned.connect(on_done)
        worker.errored.connect(self._error)
        worker.finished.connect(self._on_finished)
        self._worker = worker
        self._started = time.perf_counter()
        self.review.busy = True
        self._set_running(True)
        self.progress.setValue(0)
        self.set_status(f"{title}…")
        worker.start()
        return worker

    def _set_running(self, running: bool) -> None:
        buttons = (self.train_btn, self.predict_btn, self.round_btn, self.predict_all_btn)
        for b in (*buttons, *self.review_buttons.values()):
            b.setEnabled(not running)
        self.cancel_btn.setEnabled(running)

    def _on_progress(self, info: dict) -> None:
        stage = str(info.get("stage", ""))
        done, total = int(info.get("step") or 0), int(info.get("total") or info.get("steps") or 0)
        text = f"{stage}: {done}/{total}" if total else stage
        if stage == "train" and total:
            # the status counts what the bar counts: optimiser steps ("step" runs 1..total)
            loss = info.get("loss")
            text = f"training: step {done}/{total}" + (
                f", loss {loss:.3f}" if isinstance(loss, float) else ""
            )
        if total:
            self.progress.setValue(int(1000 * min(1.0, done / max(1, total))))
        self.set_status(f"{text} ({time.perf_counter() - self._started:.0f} s)")

    def _on_finished(self) -> None:
        self._worker = None
        self.review.busy = False
        self._set_running(False)

    def cancel(self) -> None:
        """Stop the running job at its next step (the learner is left as before it)."""
        if self._worker is not None:
            self._stop = True
            self._worker.quit()
            self.set_status("cancelling…")

    def _round(self, what: str, title: str):
        wb = self.workbench
        return self._start(title, lambda stop: wb.iter_round(stop, what=what), self._on_round_done)

    def train(self):
        """Train the detector on the current labels (background)."""
        return self._round("train", "training")

    def predict(self):
        """Predict on all micrographs and queue the K most uncertain picks (background)."""
        return self._round("predict", "predicting")

    def next_round(self):
        """Retrain with every label so far, predict, and queue the next K picks (background)."""
        return self._round("round", "next round")

    def _on_round_done(self, out: dict) -> None:
        self.last_result = out
        lr = self.learner
        self.progress.setValue(1000)
        self.review.refresh()
        self.threshold.setValue(float(lr.t_opt))
        self._update_counts()
        self._update_plot()
        entry = lr.history[-1] if lr.history else {}
        parts = [f"round {lr.round}"]
        if entry.get("train_s") is not None and out["what"] != "predict":
            parts.append(f"trained on {entry.get('labels', 0)} labels in {entry['train_s']:.1f} s")
        if lr.predictions is not None and out["what"] != "train":
            parts.append(f"{len(lr.predictions)} predictions")
            parts.append(f"{len(lr.queue)} to review (T_opt {lr.t_opt:.2f})")
        self.set_status("; ".join(parts) + ". Review with x / z, then Next round.")

    # ------------------------------------------------------------------ review display
    def _update_counts(self) -> None:
        lr = self.learner
        if lr is None:
            return
        self._sync_complete_button()  # Shift-F may have changed it
        row, n = self.workbench.current_pick(), len(lr.queue)
        if n == 0:
            self.position_label.setText("no review queue yet: press Next round")
        elif row is None:
            self.position_label.setText(f"batch of {n} reviewed: press Next round")
        else:
            self.position_label.setText(
                f"pick {lr.position + 1}/{n} · {row['micrograph']} · conf. {row['confidence']:.2f}"
            )
        now, total = lr.counts(round=lr.round), lr.counts()
        self.counts_label.setText(
            f"round {lr.round}: accepted {now['accepted']} · moved {now['moved']} · "
            f"added {now['added']} · rejected {now['rejected']}<br>"
            f"all: {total['positive']} particles, {total['rejected']} rejected"
        )
        self._on_threshold()

    def _update_plot(self) -> None:
        history = self.learner.history if self.learner is not None else []
        draw_metrics(self.axes, self.round_metrics, history)
        self.canvas.draw_idle()
        refresh_browser(self)

    def _on_threshold(self, value: float | None = None) -> None:
        value = float(self.threshold.value() if value is None else value)
        self.review.set_threshold(value)
        if self.workbench is None or self._worker is not None:
            return
        labels, preds = self.workbench.export_count(
            include_predictions=self.include_predictions.isChecked(), threshold=value
        )
        self.export_count.setText(
            f"{labels + preds} picks would be exported ({labels} labels + {preds} predictions)"
        )
