"""Queue and rounds of a :class:`~activepick.session.Session` (a mixin; see :mod:`activepick.session`)."""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path

import pandas as pd

from ..errors import ActivePickError, SessionError
from ..io.atomic import atomic_write_text
from ..io.labels import parse_table, read_table, table_to_csv
from ..io.picks import now_utc
from ._files import (
    _ROUND_RE,
    HISTORY_FILE,
    METRICS_FILE,
    MODEL_FILE,
    PREDICTIONS_FILE,
    QUEUE_FILE,
    QUEUE_STATE_FILE,
    ROUNDS_DIR,
    SessionWarning,
    _dumps,
    _empty_queue,
    _read_json,
    _sha256,
    _validate_pick_extras,
    _writing,
)


def _write_position_file(folder: Path, position: int, digest: str, length: int) -> None:
    """``queue.json``: the position in the ``queue.csv`` of SHA-256 ``digest`` (atomic)."""
    spath = folder / QUEUE_STATE_FILE
    state = {"position": position, "length": length, "sha256": digest, "time": now_utc()}
    with _writing(spath, "the queue position"):
        atomic_write_text(spath, _dumps(state, str(spath)))


def flush_position(folder: Path, state) -> None:
    """Write the queue position a key press left pending (``state.position``), if any.

    Runs in the session's background thread (:class:`._sync.Syncer`) and before the
    queue is read or rewritten; ``state.position_file`` keeps one writer of
    ``queue.json`` at a time, so a pending position never overwrites a newer queue's."""
    with state.position_file:
        with state.position_slot:
            job, state.position = state.position, None
        if job is not None:
            _write_position_file(folder, *job)


class QueueRoundsMixin:
    """The review queue (``queue.csv`` + ``queue.json``) and the rounds (``rounds/``, ``history.json``)."""

    # ----------------------------------------------------------------- queue
    def save_queue(self, queue: pd.DataFrame, position: int) -> None:
        """Write the review queue (``queue.csv``) and the position in it (``queue.json``).

        ``queue.json`` records the SHA-256 of the ``queue.csv`` it belongs to; when
        only the position changed, ``queue.csv`` is not rewritten. Each file is
        written atomically.
        """
        self._check_open()
        position = int(position)
        if not 0 <= position <= len(queue):
            raise SessionError(
                f"{self.folder / QUEUE_STATE_FILE}: position {position} outside the queue of {len(queue)}"
            )
        text = table_to_csv(queue)
        digest = _sha256(text.encode("utf-8"))
        qpath = self.folder / QUEUE_FILE
        state = self._state
        with self._lock, state.position_file:
            with state.position_slot:
                state.position = None  # this save supersedes a pending position
            if state.queue != (digest, len(queue)) or not qpath.is_file():
                with _writing(qpath, "the review queue"):
                    atomic_write_text(qpath, text)
            state.queue = (digest, len(queue))
            _write_position_file(self.folder, position, digest, len(queue))

    def save_position(self, position: int) -> None:
        """O(1), no file operation: record the position in the saved queue; the session's
        background thread writes ``queue.json`` (atomically) within milliseconds, and
        :meth:`sync`, :meth:`load_queue`, :meth:`save_queue` and close before they
        return (see ``docs/session.md``, "Durability")."""
        self._check_open()
        position = int(position)
        with self._lock:
            if self._state.queue is None:
                self.load_queue()
            length = self._state.queue[1] if self._state.queue else 0
            if not 0 <= position <= length:
                raise SessionError(
                    f"{self.folder / QUEUE_STATE_FILE}: position {position} outside the queue of {length}"
                )
            if self._state.queue is None:
                self._state.queue = (_sha256(table_to_csv(_empty_queue()).encode()), 0)
            with self._state.position_slot:
                self._state.position = (position, *self._state.queue)
            self._syncer().request()

    def load_queue(self) -> tuple[pd.DataFrame, int]:
        """``(queue, position)``; ``(empty queue, 0)`` when none was saved.

        When ``queue.json`` does not belong to ``queue.csv`` (a crash between the
        two writes), the position restarts at 0 with a :class:`SessionWarning`.
        A damaged ``queue.csv`` or ``queue.json`` is dropped (empty queue, or
        position 0) and said in :attr:`open_warnings`: the labels are what matters.
        """
        qpath = self.folder / QUEUE_FILE
        spath = self.folder / QUEUE_STATE_FILE
        with _writing(spath, "the queue position"):
            flush_position(self.folder, self._state)  # a pending key press's position
        if not qpath.exists():
            return _empty_queue(), 0
        try:
            raw = qpath.read_bytes()
            queue = _validate_pick_extras(parse_table(raw.decode("utf-8"), str(qpath)), str(qpath))
        except (OSError, UnicodeDecodeError, SessionError) as exc:
            self._note(f"{qpath}: damaged, the review queue was dropped ({exc}); start a new round")
            return _empty_queue(), 0
        digest = _sha256(raw)
        with self._lock:
            self._state.queue = (digest, len(queue))
        if not spath.exists():
            return queue, 0
        try:
            state = _read_json(spath)
            if not isinstance(state, dict) or not isinstance(state.get("position"), int):
                raise SessionError(f"{spath}: no integer 'position'")
        except SessionError as exc:
            self._note(f"{exc}; review restarts at the top of the queue")
            return queue, 0
        if state.get("sha256") != digest:
            warnings.warn(
                f"{spath}: does not belong to {qpath.name} (interrupted save); review restarts at 0",
                SessionWarning,
                stacklevel=2,
            )
            return queue, 0
        position = state["position"]
        if not 0 <= position <= len(queue):
            self._note(
                f"{spath}: position {position} outside the queue of {len(queue)}; review restarts at 0"
            )
            return queue, 0
        return queue, position

    # ----------------------------------------------------------------- rounds
    def round_folder(self, round: int) -> Path:  # noqa: A002 - the engine's name
        """``rounds/round_NNN`` (three digits, more when needed) of round ``round``."""
        return self.folder / ROUNDS_DIR / f"round_{int(round):03d}"

    def save_round(
        self,
        round: int,  # noqa: A002 - the engine's name
        *,
        detector=None,
        predictions: pd.DataFrame | None = None,
        metrics: dict | None = None,
    ) -> None:
        """Save what round ``round`` produced; each part is optional and kept when omitted.

        ``detector`` -> ``model.pt`` + ``model.pt.json`` via
        :func:`activepick.detector.save_checkpoint`, both written to temporary
        names first and renamed sidecar first (a kill between the renames leaves
        a pair that :meth:`load_detector` refuses, falling back to the previous
        round); ``predictions`` -> ``predictions.csv``; ``metrics`` ->
        ``metrics.json`` (with ``round`` set) and into ``history.json``: it
        replaces the history entry of the same round (the engine saves a round
        twice: after training, after prediction) or is appended; the history is
        kept in round order.
        """
        self._check_open()
        r = int(round)
        if r < 0:
            raise SessionError(f"{self.folder}: round must be >= 0, not {r}")
        folder = self.round_folder(r)
        with _writing(folder, f"round {r}"):
            folder.mkdir(parents=True, exist_ok=True)
            if detector is not None:
                self._save_model(detector, folder / MODEL_FILE)
            if predictions is not None:
                atomic_write_text(folder / PREDICTIONS_FILE, table_to_csv(predictions))
            if metrics is not None:
                entry = dict(metrics)
                entry["round"] = r
                text = _dumps(entry, str(folder / METRICS_FILE))
                atomic_write_text(folder / METRICS_FILE, text)
                path = self.folder / HISTORY_FILE
                with self._lock:
                    history = [h for h in self.history() if int(h.get("round", -1)) != r]
                    history.append(json.loads(text))
                    history.sort(key=lambda h: int(h.get("round", 0)))
                    atomic_write_text(path, _dumps(history, str(path)))

    @staticmethod
    def _save_model(detector, path: Path) -> None:
        from ..detector import save_checkpoint
        from ..detector.checkpoint import sidecar_path

        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp.pt", dir=path.parent)
        os.close(fd)
        tmp = Path(tmp)
        try:
            save_checkpoint(detector, tmp)
            os.replace(sidecar_path(tmp), sidecar_path(path))
            os.replace(tmp, path)
        finally:
            for p in (tmp, sidecar_path(tmp)):
                if p.exists():
                    p.unlink()

    def rounds(self) -> list[int]:
        """Round numbers that have a ``rounds/round_NNN`` folder, ascending."""
        base = self.folder / ROUNDS_DIR
        if not base.is_dir():
            return []
        out = []
        for p in base.iterdir():
            m = _ROUND_RE.match(p.name)
            if m and p.is_dir():
                out.append(int(m.group(1)))
        return sorted(out)

    def _latest_with(self, filename: str) -> list[Path]:
        """The rounds' ``filename`` files, newest first."""
        paths = [self.round_folder(r) / filename for r in reversed(self.rounds())]
        return [p for p in paths if p.is_file()]

    def _round_file(self, filename: str, round: int) -> Path:  # noqa: A002
        path = self.round_folder(round) / filename
        if not path.is_file():
            raise SessionError(f"{path}: not found (round {int(round)} has no {filename})")
        return path

    def load_detector(self, round: int | None = None, device=None):  # noqa: A002
        """The detector of round ``round`` (default: the latest round with a usable checkpoint).

        None when no round has a checkpoint. With ``round`` given:
        :class:`SessionError` when it has none, and
        :class:`~activepick.errors.CheckpointError` (naming the file) when the
        checkpoint is corrupt. Without: a corrupt latest checkpoint (e.g. a kill
        between writing the model and its sidecar) is skipped for the previous
        round's, said in :attr:`open_warnings`. ``device`` as in
        :func:`activepick.detector.load_checkpoint`.
        """
        from ..detector import load_checkpoint

        if round is not None:
            return load_checkpoint(self._round_file(MODEL_FILE, round), device=device)
        for path in self._latest_with(MODEL_FILE):
            try:
                return load_checkpoint(path, device=device)
            except ActivePickError as exc:
                self._note(f"{exc}; using an earlier round's model instead")
        return None

    def load_predictions(self, round: int | None = None) -> pd.DataFrame | None:  # noqa: A002
        """The predictions of round ``round`` (default: the latest round with readable ones).

        A pick table plus its extra columns (``pick_id``, ``disagreement``, ...);
        None when no round has predictions. Without ``round`` a damaged file is
        skipped for an earlier round's, said in :attr:`open_warnings`.
        """
        if round is not None:
            path = self._round_file(PREDICTIONS_FILE, round)
            return _validate_pick_extras(read_table(path), str(path))
        for path in self._latest_with(PREDICTIONS_FILE):
            try:
                return _validate_pick_extras(read_table(path), str(path))
            except SessionError as exc:
                self._note(f"{exc}; using an earlier round's predictions instead")
        return None

    def history(self) -> list[dict]:
        """The per-round metrics dicts (``history.json``), in round order; [] when none.

        A damaged ``history.json`` is rebuilt from the rounds' ``metrics.json``
        files, said in :attr:`open_warnings`.
        """
        path = self.folder / HISTORY_FILE
        if not path.exists():
            return []
        try:
            history = _read_json(path)
            if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
                raise SessionError(f"{path}: not a list of per-round objects")
            return history
        except SessionError as exc:
            rebuilt = []
            for r in self.rounds():
                try:
                    entry = _read_json(self.round_folder(r) / METRICS_FILE)
                except SessionError:
                    continue
                if isinstance(entry, dict):
                    rebuilt.append({**entry, "round": r})
            self._note(f"{exc}; rebuilt the history of {len(rebuilt)} round(s) from metrics.json")
            return rebuilt
