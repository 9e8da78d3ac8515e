"""The widget's file actions: opening micrograph folders as lazy layers, the *Export*
section (export picks, extract particles) and the file dialogs. Writing is the workbench's; an existing output is written
only after the user agrees (``io.atomic.refuse_existing`` decides what exists).
"""

from __future__ import annotations

from pathlib import Path

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QCheckBox, QFileDialog, QLabel
from superqt import QLabeledDoubleSlider

from ..errors import ActivePickError, MicrographError
from ._layout import (
    DEFAULTS,
    EXPORT_FORMATS,
    FOLDER_FORMATS,
    _box_for,
    _button,
    _combo,
    _row,
    _section,
    _spin,
)
from ._reader import lazy_micrograph_layer_data


class FilesPanel:
    """Mixin of :class:`~activepick.plugin._widget.ActivePickWidget`."""

    def _add_micrograph_layer(self, paths, name: str):
        """A lazy stack layer of the micrograph files ``paths`` (headers read now)."""
        if not paths:
            raise MicrographError(f"{name}: no micrographs (MRC, TIFF, PNG) found")
        data, kwargs, _ = lazy_micrograph_layer_data(list(paths), name=name)
        self._loading = True
        try:
            layer = self.viewer.add_image(data, **kwargs)
        finally:
            self._loading = False
        self.viewer.layers.move(self.viewer.layers.index(layer), 0)
        return layer

    def open_folder(self, folder: str | Path) -> None:
        """Open every micrograph in ``folder`` as one lazy stack layer and use it."""
        from ..io.micrograph import list_micrographs

        try:
            layer = self._add_micrograph_layer(list_micrographs(folder), Path(folder).name)
        except ActivePickError as exc:
            self._error(exc)
            return
        self.use_layer(layer)

    def _build_export_section(self, root) -> None:
        form = _section(root, "Export", expanded=False)
        self.threshold = QLabeledDoubleSlider(Qt.Orientation.Horizontal)
        self.threshold.setRange(0.0, 1.0)
        self.threshold.setDecimals(2)
        self.threshold.setValue(0.5)
        self.threshold.valueChanged.connect(self._on_threshold)
        form.addRow("Threshold", self.threshold)
        self.include_predictions = QCheckBox("include predictions ≥ threshold")
        self.include_predictions.toggled.connect(lambda _: self._on_threshold())
        self.predict_all_btn = _button(
            "Predict all",
            self.predict_all,
            "Predict every micrograph with the current model (background, resumable); "
            "exports with predictions use them",
        )
        form.addRow(self.include_predictions)
        form.addRow(self.predict_all_btn)
        self.export_count = QLabel("")
        self.export_count.setWordWrap(True)
        form.addRow(self.export_count)
        self.format_combo = _combo("Coordinate format of the export")
        for fmt, text in EXPORT_FORMATS.items():
            self.format_combo.addItem(text, fmt)
        form.addRow("Format", _row(self.format_combo, _button("Export…", self._ask_export)))
        self.box_size = _spin(2, 8192, _box_for(DEFAULTS["diameter"]), " px")
        self.box_size.valueChanged.connect(lambda _: self.show_angstrom())
        self.box_angstrom = QLabel("")
        extract = _button("Extract…", self._ask_extract, "Cut boxes into .mrcs + STAR")
        form.addRow("Box size", _row(self.box_size, self.box_angstrom, extract))

    # ------------------------------------------------------------------ export
    def export_table(self, *, include_predictions: bool | None = None, threshold=None):
        """The pick table an export writes (labels, optionally predictions >= threshold)."""
        if include_predictions is None:
            include_predictions = self.include_predictions.isChecked()
        threshold = float(self.threshold.value()) if threshold is None else threshold
        return self.workbench.export_table(
            include_predictions=include_predictions, threshold=threshold
        )

    def _may_write(self, *paths: Path) -> bool | None:
        """None when no path exists; else the user's answer to "overwrite?"."""
        from ..io.atomic import refuse_existing

        try:
            for p in paths:
                refuse_existing(p)
        except ActivePickError:
            return self._confirm(f"{', '.join(str(p) for p in paths)} exists. Overwrite?")
        return None

    def export_picks(self, path, fmt=None, *, include_predictions=None, threshold=None,
                     overwrite=False) -> list[Path]:  # fmt: skip
        """Write the curated picks to ``path`` in ``fmt`` (default: the format box);
        asks before overwriting. Returns the files written."""
        if self.workbench is None:
            return []
        path, fmt = Path(path), fmt or self.format_combo.currentData()
        force = overwrite or self._may_write(path)
        if force is False:
            return []
        if include_predictions is None:
            include_predictions = self.include_predictions.isChecked()
        try:
            picks, files = self.workbench.export(
                path,
                fmt,
                include_predictions=include_predictions,
                threshold=float(self.threshold.value()) if threshold is None else threshold,
                force=bool(force),
            )
        except (ActivePickError, OSError) as exc:
            self._error(exc)
            return []
        self.set_status(f"exported {len(picks)} picks to {len(files)} file(s) ({fmt}): {path}")
        return files

    def extract_particles(self, out_mrcs, *, box_size: int | None = None, overwrite=False):
        """Cut the exported picks into ``out_mrcs`` + a RELION STAR next to it
        (background); returns the worker."""
        if self.workbench is None:
            return None
        out_mrcs = Path(out_mrcs).with_suffix(".mrcs")
        force = overwrite or self._may_write(out_mrcs, out_mrcs.with_suffix(".star"))
        if force is False:
            return None
        box = int(box_size or self.box_size.value())
        wb, include = self.workbench, self.include_predictions.isChecked()
        kwargs = dict(
            include_predictions=include,
            threshold=float(self.threshold.value()),
            force=bool(force),
        )

        def done(table) -> None:
            self.last_result = table
            self.progress.setValue(1000)
            skipped = table.attrs.get("skipped", [])
            self.set_status(
                f"extracted {len(table)} particles of {box} px to {table.attrs['out_mrcs']}"
                + (f"; skipped: {'; '.join(skipped)}" if skipped else "")
            )

        return self._start(
            "extracting particles",
            lambda stop: wb.iter_extract(out_mrcs, box, should_stop=stop, **kwargs),
            done,
        )

    # ------------------------------------------------------------------ predict all
    def predict_all(self):
        """Predict every micrograph of the pool with the current model (background,
        parts in ``<session>/predict_all/``; a cancelled run resumes); the picks
        become the predictions an export includes. Returns the worker."""
        wb = self.workbench

        def run(stop):
            for item in wb.iter_predict_all(should_stop=stop):
                rate, eta = item.get("rate") or 0.0, item.get("eta")
                speed = f" at {rate:.2f}/s, {eta:.0f} s left" if rate and eta == eta else ""
                yield {**item, "stage": f"predicting all{speed}"}
            return wb.predict_all

        def done(picks) -> None:
            self.last_result = picks
            self.progress.setValue(1000)
            summary = picks.attrs.get("summary", {})
            failed = summary.get("failed") or {}
            self.include_predictions.setChecked(True)
            self._on_threshold()
            self.set_status(
                f"Predict all: {len(picks)} picks on {len(summary.get('names', []))} "
                f"micrograph(s) ({summary.get('skipped', 0)} done earlier); export includes "
                "those ≥ threshold" + (f"; failed to read: {', '.join(failed)}" if failed else "")
            )

        return self._start("predicting all micrographs", run, done)

    # ------------------------------------------------------------------ dialogs
    def _ask_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder of micrographs")
        if folder:
            self.open_folder(folder)

    def _ask_new_session(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "New session folder")
        if folder:
            self.new_session(folder)

    def _ask_open_session(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open session folder")
        if folder:
            self.open_session(folder)

    def _ask_import(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Import labels", "", "Coordinates (*.star *.cbox *.box *.cs *.csv *.txt *.tsv)"
        )
        if path:
            self.import_labels(path)

    def _ask_export(self) -> None:
        fmt = self.format_combo.currentData()
        if fmt in FOLDER_FORMATS:
            path = QFileDialog.getExistingDirectory(self, "Export folder")
        else:
            path, _ = QFileDialog.getSaveFileName(
                self, "Export picks", "", EXPORT_FORMATS[fmt],
                options=QFileDialog.Option.DontConfirmOverwrite,
            )  # fmt: skip
        if path:
            self.export_picks(path, fmt)

    def _ask_extract(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Particle stack", "particles.mrcs", "MRC stack (*.mrcs)",
            options=QFileDialog.Option.DontConfirmOverwrite,
        )  # fmt: skip
        if path:
            self.extract_particles(path)
