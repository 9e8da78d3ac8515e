"""The Qt-free workbench: one picking session, driven by the napari widget, the
``activepick round`` command and tests alike.

:class:`Workbench` owns an :class:`~activepick.active.engine.ActiveLearner` and its
:class:`~activepick.session.Session` (create / open / close; the session holds the
folder lock), runs rounds as progress generators (train -> predict -> select), and
holds every review rule: accept / reject (the pick under review or several at
once), move, add (refused within the minimum distance of a label: no duplicate
picks), remove (the label nearest a point), undo, queue navigation (goto / next /
previous), T_opt, export and particle extraction.

A review action is an in-memory change of O(1) to O(labels on one micrograph) plus
one append to the session's label journal and an O(1) queue-position update; the
label table is compacted into ``labels.csv`` at round boundaries and on
:meth:`Workbench.close`. Refused actions raise :class:`ReviewRefused` (an
``ActivePickError``) with a one-line reason for the status line.

Coordinates are centres in pixels of the ORIGINAL micrograph (x = column, y = row,
origin top-left).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..constants import STATUS_PREDICTED, STATUS_REJECTED
from ..errors import ActivePickError
from .decisions import ReviewError
from .pixel_size import PIXEL_SIZE_SETTING, PixelSizeAccess, check_pixel_size
from .predict_all import PREDICT_ALL_FOLDER, saved_predict_all, with_predict_all
from .settings import LearnerSettings

if TYPE_CHECKING:  # pragma: no cover
    from ..io.micrograph import Micrograph
    from ..session import Session
    from .engine import ActiveLearner

Progress = dict[str, Any]
#: Review actions a key or button triggers (``Workbench.<name>()``).
REVIEW_ACTIONS = (
    "accept",
    "reject",
    "next",
    "previous",
    "remove_nearest",
    "undo",
    "complete_reviewed",
    "confirm_confident",
)


class ReviewRefused(ActivePickError):
    """A review action the rules refuse (a duplicate pick, nothing to decide, ...)."""


def default_box_size(diameter: float) -> int:
    """Extraction box for particles of ``diameter`` px: 1.5 diameters, rounded down to even."""
    return max(2, int(float(diameter) * 1.5) // 2 * 2)


def nms_iou_for(min_distance: float, diameter: float) -> float:
    """The detector's NMS threshold that keeps picks ``min_distance`` px apart: the circle
    IoU of two picks of ``diameter`` at that distance, within [0.01, 0.99]."""
    from ..matching import circle_iou

    return float(min(max(float(circle_iou(float(min_distance), diameter / 2)), 0.01), 0.99))


class Workbench(PixelSizeAccess):
    """One picking session: the learner, its session, the review rules and rounds.

    Build with :meth:`for_micrographs` (in memory; :meth:`create_session` saves it)
    or :meth:`open` (resume a session folder). ``truth`` (a pick table), when set,
    adds ground-truth metrics to every round's history entry (``truth_metrics``).
    ``min_distance`` (px): an added particle closer than this to a label is refused.
    """

    def __init__(self, learner: ActiveLearner, session: Session | None = None) -> None:
        self.learner = learner
        self.session = session
        learner.session = session
        self.truth: pd.DataFrame | None = None
        self.min_distance = float(learner.config.diameter) / 2
        #: The last :meth:`iter_predict_all` table (None before one finishes).
        self.predict_all: pd.DataFrame | None = None

    # ================================================================== lifecycle
    @classmethod
    def for_micrographs(
        cls, micrographs: Sequence[Micrograph], settings: LearnerSettings | None = None
    ) -> Workbench:
        """An in-memory workbench (no session: decisions are not saved yet)."""
        from .engine import ActiveLearner

        settings = settings or LearnerSettings()
        return cls(ActiveLearner.from_settings(micrographs, settings))

    @classmethod
    def open(
        cls,
        folder: str | Path,
        micrographs: Sequence[Micrograph] | None = None,
        *,
        read: Callable[[list[Path]], Sequence[Micrograph]] | None = None,
        check_files: bool = True,
        break_lock: bool = False,
    ) -> Workbench:
        """Resume the session in ``folder`` (settings, labels + journal, queue, model).

        ``micrographs`` defaults to ``read(session.micrograph_paths)``, or without
        ``read`` to the session's micrographs opened lazily (headers only). A session open in
        another process is refused by the session's lock (``break_lock`` breaks a
        stale one).
        """
        from ..session import Session
        from .engine import ActiveLearner

        session = Session.open(folder, check_files=check_files, break_lock=break_lock)
        try:
            if micrographs is None and read is not None:
                micrographs = read(list(session.micrograph_paths))
            learner = ActiveLearner.from_session(session, micrographs)
            entered = check_pixel_size(
                session.settings.get(PIXEL_SIZE_SETTING), f"{session.folder}/session.json"
            )
        except BaseException:
            session.close()
            raise
        wb = cls(learner, session)
        wb.entered_pixel_size = entered
        saved = session.settings.get("min_distance")
        if isinstance(saved, (int, float)) and saved >= 0:
            wb.min_distance = float(saved)
        wb.predict_all = saved_predict_all(learner, wb.predict_all_folder())
        return wb

    def create_session(self, folder: str | Path, *, overwrite: bool = False) -> Session:
        """Save this workbench as a new session in ``folder``; later changes go to it.

        Micrographs held only in memory are written into ``folder/micrographs``
        first. The labels and queue made so far are saved. Raises ``SessionError``
        when ``folder`` holds a session and ``overwrite`` is false.
        """
        from ..session import Session

        folder = Path(folder)
        if Session.exists(folder) and not overwrite:
            raise ActivePickError(f"{folder} already holds a session (open it, or overwrite)")
        session = Session.create(
            folder, self._micrograph_files(folder), self.settings_dict(), overwrite=overwrite
        )
        if self.session is not None:
            self.session.close()
        self.session = self.learner.session = session
        self.learner.compact()
        self.learner._save_queue()
        return session

    def _micrograph_files(self, folder: Path) -> list[Path]:
        from ..io.micrograph import write_micrograph

        paths = []
        for m in self.learner.micrographs:
            if m.path is not None and Path(m.path).is_file() and Path(m.path).stem == m.name:
                paths.append(Path(m.path))
                continue
            out = folder / "micrographs" / f"{m.name}.mrc"
            write_micrograph(out, m.data, pixel_size=m.pixel_size)
            m.path = out
            paths.append(out)
        return paths

    @property
    def open_warnings(self) -> list[str]:
        """What the session dropped or recovered when it was opened (empty without one)."""
        return list(self.session.open_warnings) if self.session is not None else []

    def close(self) -> None:
        """Compact the labels into the session and release it (its lock)."""
        if self.session is None:
            return
        self.learner.compact()
        self.learner._save_queue()
        self.session.close()
        self.session = self.learner.session = None

    def __enter__(self) -> Workbench:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ================================================================== settings
    @property
    def settings(self) -> LearnerSettings:
        """The learner's settings (what a session stores)."""
        return self.learner.learner_settings

    def settings_dict(self) -> dict[str, Any]:
        """The session's ``settings``: the learner's plus the complete micrographs."""
        return {
            **self.settings.to_dict(),
            "complete": sorted(self.learner.complete),
            "min_distance": float(self.min_distance),
            PIXEL_SIZE_SETTING: self.entered_pixel_size,
        }

    def apply_settings(self, settings: LearnerSettings) -> None:
        """Use ``settings`` from the next round on and save them in the session."""
        self.learner.apply_settings(settings)
        if self.session is not None:
            self.session.save_settings({**self.session.settings, **self.settings_dict()})

    def update_settings(self, *, min_distance: float | None = None, **changes: Any) -> None:
        """Change settings by name (``LearnerSettings`` or ``DetectorConfig`` fields,
        e.g. ``diameter``, ``epochs``, ``review_k``) and save them. ``min_distance``
        (px) is the review rule's minimum distance and sets the detector's NMS IoU
        (0 leaves the NMS threshold as it is)."""
        if min_distance is not None:
            self.min_distance = float(min_distance)
        diameter = float(changes.get("diameter", self.learner.config.diameter))
        if self.min_distance > 0 and "nms_iou" not in changes:
            changes["nms_iou"] = nms_iou_for(self.min_distance, diameter)
        new = self.settings.replace(**changes)
        if new != self.settings or min_distance is not None:
            self.apply_settings(new)

    # ================================================================== rounds
    def iter_round(
        self, should_stop: Callable[[], bool] | None = None, *, what: str = "round"
    ) -> Generator[Progress, None, dict]:
        """A round as a progress generator: ``what`` = ``"train"``, ``"predict"`` or
        ``"round"`` (train -> predict -> select the queue).

        The labels are compacted into the session before and after. Predictions
        whose box (one diameter) would leave the micrograph are not queued. Returns
        ``{"what", "result" (the history entry or None), "metrics" (against
        ``truth`` when set, also saved in the history as ``truth_metrics``)}``.
        """
        if what not in ("train", "predict", "round"):
            raise ValueError(f"what must be train, predict or round, not {what!r}")
        learner = self.learner
        learner.compact()
        result = None
        if what in ("train", "round"):
            yield from learner.iter_train(should_stop)
            result = learner.history[-1]
        if what in ("predict", "round"):
            yield from learner.iter_predict(should_stop)
            self._skip_edge_predictions()
            queue = learner.select()
            yield {"stage": "select", "step": 1, "total": 1, "queued": int(len(queue))}
            result = learner.history[-1] if learner.history else None
        metrics = None
        if self.truth is not None and len(self.truth) and learner.predictions is not None:
            yield {"stage": "evaluate", "step": 0, "total": 1}
            from ..metrics import jsonable, summary

            metrics = jsonable(summary(learner.predictions, self.truth, t_opt=learner.t_opt))
            if learner.history:
                learner.history[-1]["truth_metrics"] = metrics
                learner._save_round(metrics=learner.history[-1])
        learner.compact()
        return {"what": what, "result": result, "metrics": metrics}

    def _skip_edge_predictions(self) -> None:
        """Predictions within half a diameter of a micrograph's edge are not queued
        (extraction would skip their box): they count as reviewed."""
        pred = self.learner.predictions
        if pred is None or len(pred) == 0:
            return
        shapes = self.learner.shapes
        h = pred["micrograph"].map(lambda n: shapes[n][0]).to_numpy(float)
        w = pred["micrograph"].map(lambda n: shapes[n][1]).to_numpy(float)
        x, y = pred["x"].to_numpy(float), pred["y"].to_numpy(float)
        r = pred["diameter"].to_numpy(float) / 2
        edge = (x - r < 0) | (y - r < 0) | (x + r > w) | (y + r > h)
        self.learner.mark_reviewed(pred.loc[edge, "pick_id"].astype(int).tolist())

    # ================================================================== predict all
    def predict_all_folder(self) -> Path:
        """Where :meth:`iter_predict_all` keeps its parts: ``<session>/predict_all/``."""
        if self.session is None:
            raise ReviewError("Predict all needs a session (or an output folder): create one first")
        return Path(self.session.folder) / PREDICT_ALL_FOLDER

    def iter_predict_all(
        self,
        out: str | Path | None = None,
        should_stop: Callable[[], bool] | None = None,
        *,
        batch_size: int = 4,
    ) -> Generator[Progress, None, pd.DataFrame]:
        """Predict EVERY micrograph of the pool with the current detector (before any
        round: the shipped general model), streamed.

        Runs :func:`activepick.batch.iter_predict_batch` in process (``batch_size``
        micrographs in memory at a time, ``should_stop`` checked between them) and writes one part file per micrograph into
        ``out`` (default :meth:`predict_all_folder`). A cancelled run (``should_stop``)
        keeps its parts; the next call with the same detector continues from them (a
        detector retrained since starts over). Yields the batch progress dicts;
        returns the combined pick table (confidence >= ``min_confidence``, ``round`` =
        the detector's round), which becomes :attr:`predict_all`: export and
        extraction with predictions use it for every micrograph the rounds have not
        predicted since. The review queue and the round's predictions are unchanged.
        Micrographs are read from their files (an in-memory pool needs a session).
        """
        from .predict_all import iter_predict_all

        picks = yield from iter_predict_all(
            self.learner,
            lambda: Path(out) if out is not None else self.predict_all_folder(),
            should_stop=should_stop,
            batch_size=batch_size,
        )
        self.predict_all = picks
        return picks

    def round_metrics(self) -> list[dict]:
        """Per round: ground-truth metrics (or test metrics) plus ``labels``; {} when none."""
        out = []
        for h in self.learner.history:
            m = h.get("truth_metrics") or h.get("metrics") or {}
            out.append({**m, "labels": h.get("labels", 0)} if m else {})
        return out

    # ================================================================== review: queue
    @property
    def queue(self) -> pd.DataFrame:
        return self.learner.queue

    @property
    def position(self) -> int:
        return self.learner.position

    def current_pick(self) -> dict | None:
        """The queue row under review as a dict, or None when the queue is done or empty."""
        queue, pos = self.learner.queue, self.learner.position
        if queue is None or not 0 <= pos < len(queue):
            return None
        return {c: queue[c].iat[pos] for c in queue.columns}

    def goto(self, index: int) -> int:
        """Review the queue pick at ``index`` (clamped); saves the position. Returns it."""
        n = len(self.learner.queue)
        if n == 0:
            raise ReviewRefused("no review queue yet: press Next round")
        self.learner.position = int(np.clip(int(index), 0, n - 1))
        self.learner._save_position()
        return self.learner.position

    def next(self) -> int:
        """Go to the next proposal."""
        return self.goto(self.learner.position + 1)

    def previous(self) -> int:
        """Go to the previous proposal."""
        return self.goto(self.learner.position - 1)

    def batch_done(self) -> bool:
        """True when a queue exists and every pick of it has been passed."""
        n = len(self.learner.queue)
        return n > 0 and self.learner.position >= n

    def queue_table(self) -> pd.DataFrame:
        """The queue with each pick's decision (``status``; ``predicted`` when none)
        and its labelled centre (a move changes it), for drawing."""
        queue = self.learner.queue
        out = queue.copy()
        if len(queue) == 0:
            return out
        store = self.learner.label_store
        status = []
        xs, ys = out["x"].to_numpy(float).copy(), out["y"].to_numpy(float).copy()
        for i, pid in enumerate(out["pick_id"].tolist()):
            row = store.get(pid)
            status.append(STATUS_PREDICTED if row is None else row["status"])
            if row is not None:
                xs[i], ys[i] = row["x"], row["y"]
        out["status"], out["x"], out["y"] = status, xs, ys
        return out

    # ================================================================== review: decisions
    def decide(self, action: str, pick_ids: Sequence[int] | None = None) -> list[int]:
        """``"accept"`` or ``"reject"`` the picks ``pick_ids`` (several at once: one
        undo step) or, when None / empty, the pick under review. Returns the ids."""
        ids = [int(i) for i in (pick_ids or [])]
        if not ids:
            row = self.current_pick()
            if row is None:
                raise ReviewRefused("no pick under review: the batch is done - press Next round")
            ids = [int(row["pick_id"])]
        self.learner._apply_decisions([(i, action, None, None) for i in ids], source="human")
        return ids

    def accept(self, pick_ids: Sequence[int] | None = None) -> list[int]:
        """Accept the pick under review (or ``pick_ids``) as particles."""
        return self.decide("accept", pick_ids)

    def reject(self, pick_ids: Sequence[int] | None = None) -> list[int]:
        """Reject the pick under review (or ``pick_ids``): reviewed negatives."""
        return self.decide("reject", pick_ids)

    def reject_removed(self, pick_ids: Sequence[int]) -> list[int]:
        """Queue points deleted in the viewer: reject those not rejected already."""
        store = self.learner.label_store
        ids = [int(i) for i in pick_ids if i >= 0 and store.status(i) != STATUS_REJECTED]
        if ids:
            self.decide("reject", ids)
        return ids

    def is_predicted(self, pick_id: int) -> bool:
        """True when ``pick_id`` is a prediction (queued or not)."""
        return int(pick_id) in self.learner._predicted()

    def move(self, pick_id: int, micrograph: str, x: float, y: float) -> int:
        """A point dragged to (x, y): a *move* decision on a prediction, else the
        label is re-added there (a new pick id, returned)."""
        pick_id = int(pick_id)
        if self.is_predicted(pick_id):
            self.learner.decide(pick_id, "move", x, y)
            return pick_id
        self.learner.remove_label(pick_id)
        return self.learner.add_particle(micrograph, x, y)

    def add(self, micrograph: str, x: float, y: float) -> int:
        """Add a missed particle at (x, y); refused (:class:`ReviewRefused`) when a
        particle label lies closer than :attr:`min_distance` (no duplicate picks)."""
        pick_id, dist = self.learner.label_store.nearest(micrograph, x, y)
        if pick_id is not None and dist < max(self.min_distance, 1e-9):
            raise ReviewRefused(
                f"refused: a label lies {dist:.0f} px away "
                f"(minimum distance {self.min_distance:.0f} px)"
            )
        return self.learner.add_particle(micrograph, x, y)

    def remove(self, pick_id: int) -> None:
        """Remove the label (or rejection) ``pick_id``."""
        self.learner.remove_label(int(pick_id))

    def remove_nearest(self, micrograph: str, x: float, y: float) -> int:
        """Remove the particle label nearest (x, y) if it lies within one diameter
        (an accepted / moved pick becomes undecided again); returns its id."""
        pick_id, dist = self.learner.label_store.nearest(micrograph, x, y)
        if pick_id is None or dist > float(self.learner.config.diameter):
            raise ReviewRefused("no label within one diameter of the cursor")
        self.learner.remove_label(pick_id)
        return pick_id

    def undo(self) -> None:
        """Undo the last change; :class:`ReviewRefused` when there is none."""
        if not self.learner.undo():
            raise ReviewRefused("nothing to undo")

    def complete_reviewed(self, micrograph: str) -> list[int]:
        """Mark the neighbourhoods of the picks reviewed (or under review) on ``micrograph``
        complete, after adding their missed particles (``active.regions``). Returns the
        regions' ids."""
        ids = self.learner.complete_reviewed(micrograph)
        if not ids:
            raise ReviewRefused(
                f"no pick reviewed on {micrograph} since its neighbourhoods were last "
                "marked complete: review its picks first"
            )
        return ids

    def confirm_confident(self, micrograph: str, threshold: float | None = None) -> list[int]:
        """Accept the confident picks of ``micrograph`` at once (``active.regions``;
        reject the wrong ones first). Returns their pick ids."""
        ids = self.learner.confirm_confident(micrograph, threshold)
        if not ids:
            raise ReviewRefused(f"no confident pick left on {micrograph} to confirm")
        return ids

    def mark_complete(self, micrograph: str, complete: bool = True) -> None:
        """Mark a micrograph fully picked (or not); saved in the session settings."""
        self.learner.mark_complete(micrograph, complete)

    def import_labels(self, path: str | Path) -> pd.DataFrame:
        """Add the particles of a coordinate file (on pool micrographs) as labels; returns
        them (``attrs["skipped"]`` lists what was skipped)."""
        from ..io.formats import read_coordinates

        shapes = self.learner.shapes
        picks = read_coordinates(
            path, diameter=float(self.learner.config.diameter), shapes=shapes, on_error="skip"
        )
        skipped = list(picks.attrs.get("skipped", []))
        picks = picks[picks["micrograph"].isin(set(shapes))]
        self.learner.add_labels(picks, source="import")
        picks.attrs["skipped"] = skipped
        return picks

    # ================================================================== export
    def export_table(
        self, *, include_predictions: bool = False, threshold: float | None = None
    ) -> pd.DataFrame:
        """The pick table an export writes: every particle label, plus predictions >=
        ``threshold`` (default T_opt) that overlap no label, when asked."""
        table = self.learner.export_picks(
            include_predictions=include_predictions, threshold=threshold
        )
        if include_predictions and self.predict_all is not None:
            table = with_predict_all(table, self.learner, self.predict_all, threshold)
        return table

    def export_count(
        self, *, include_predictions: bool = False, threshold: float | None = None
    ) -> tuple[int, int]:
        """``(labels, predictions)`` an export would write; O(1) without predictions."""
        labels = self.learner.counts()["positive"]
        if not include_predictions:
            return labels, 0
        table = self.export_table(include_predictions=True, threshold=threshold)
        return labels, int((table["status"] == STATUS_PREDICTED).sum())

    def export(
        self,
        path: str | Path,
        fmt: str | None = None,
        *,
        include_predictions: bool = False,
        threshold: float | None = None,
        pixel_size: float | None = None,
        force: bool = False,
    ) -> tuple[pd.DataFrame, list[Path]]:
        """Write the curated picks to ``path`` (``io.formats`` format ``fmt``; with the
        session's :attr:`pixel_size` unless ``pixel_size`` is given); an existing output
        is refused unless ``force``. Returns ``(picks, files)``."""
        from ..io.atomic import refuse_existing
        from ..io.formats import write_coordinates

        refuse_existing(path, force=force, what="export")
        picks = self.export_table(include_predictions=include_predictions, threshold=threshold)
        size = pixel_size or self.pixel_size
        files = write_coordinates(
            picks, Path(path), fmt, shapes=self.learner.shapes, pixel_size=size
        )
        return picks, files

    def iter_extract(
        self,
        out_mrcs: str | Path,
        box_size: int,
        *,
        include_predictions: bool = False,
        threshold: float | None = None,
        pixel_size: float | None = None,
        force: bool = False,
        should_stop: Callable[[], bool] | None = None,
    ) -> Generator[Progress, None, pd.DataFrame]:
        """Cut the exported picks into ``out_mrcs`` (``.mrcs``) + a RELION STAR beside
        it (voxel size and optics block: ``pixel_size``, else the session's); a progress
        generator returning the particle table."""
        from ..io.atomic import refuse_existing
        from ..io.stack import extract_particles

        out_mrcs = Path(out_mrcs)
        if out_mrcs.suffix.lower() != ".mrcs":
            out_mrcs = out_mrcs.with_suffix(".mrcs")
        out_star = out_mrcs.with_suffix(".star")
        for path in (out_mrcs, out_star):
            refuse_existing(path, force=force, what="particle stack")
        picks = self.export_table(include_predictions=include_predictions, threshold=threshold)
        yield {"stage": "extract", "step": 0, "total": 1}
        table = extract_particles(
            list(self.learner.micrographs),
            picks,
            int(box_size),
            out_mrcs,
            out_star,
            pixel_size=pixel_size or self.pixel_size,
            should_stop=should_stop,
        )
        yield {"stage": "extract", "step": 1, "total": 1}
        table.attrs["out_mrcs"], table.attrs["out_star"] = str(out_mrcs), str(out_star)
        return table


__all__ = ["REVIEW_ACTIONS", "ReviewRefused", "Workbench", "default_box_size", "nms_iou_for"]
