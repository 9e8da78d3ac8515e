"""The session store (issue 10 item 3, issue 12 "Sessions"): lock, journal, compaction,
checksums, backups, disk full, damaged files, and a session folder in the v1 format."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from activepick.constants import LABEL_COLUMNS
from activepick.errors import SessionError
from activepick.io.labels import JOURNAL_HEADER, empty_labels, journal_upserts, table_to_csv
from activepick.session import Session, SessionWarning
from test_session import _labels as _any_labels
from test_session import _queue

_TEN = _any_labels(10)


def _labels(n: int, seed: int = 0) -> pd.DataFrame:
    """The first ``n`` rows of one fixed table (seed 0), so that ``_labels(2)`` is a prefix of ``_labels(3)``."""
    if seed:
        return _any_labels(n, seed=seed)
    return _TEN.iloc[:n].reset_index(drop=True)


@pytest.fixture
def session(tmp_path, mics):
    s = Session.create(tmp_path / "sess", mics, {"diameter": 64})
    yield s
    s.close()


def _strict_load(folder: Path) -> pd.DataFrame:
    """Open ``folder`` in this process and load the labels; any SessionWarning fails the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", SessionWarning)
        with Session.open(folder, check_files=False) as s:
            return s.load_labels()


# ----------------------------------------------------------------------------- lock

_HOLDER = """
import sys, time
from activepick.session import Session
s = Session.open(sys.argv[1], check_files=False)
print("held", flush=True)
time.sleep(60)
"""


def _child(code: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    line = proc.stdout.readline()
    assert line.strip() == "held", proc.stderr.read()
    return proc


def test_second_process_is_refused_with_pid_and_host_then_opens_after_a_kill(session):
    folder = session.folder
    session.close()
    holder = _child(_HOLDER, str(folder))
    try:
        with pytest.raises(
            SessionError, match=rf"is open in process {holder.pid} on host \S+.*break_lock=True"
        ):
            Session.open(folder)
        with pytest.raises(SessionError, match=rf"process {holder.pid}"):
            Session.create(folder, [], {}, overwrite=True)
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    # the kernel dropped the killed process's lock: no error, no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = Session.open(folder)
    assert s.open_warnings == []
    record = json.loads((folder / "session.lock").read_text())
    assert record["pid"] == os.getpid()
    s.close()
    assert (folder / "session.lock").read_text() == ""  # released: no holder recorded


_STALE = """
import fcntl, json, os, socket, sys, time
fd = os.open(os.path.join(sys.argv[1], "session.lock"), os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
os.write(fd, json.dumps({"pid": int(sys.argv[2]), "host": sys.argv[3]}).encode())
print("held", flush=True)
time.sleep(60)
"""


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_lock_of_a_dead_process_is_broken_and_a_live_one_only_with_break_lock(session):
    import socket

    folder = session.folder
    session.close()
    # held (e.g. inherited by a forked child) but recorded for a process that is gone
    stale = _child(_STALE, str(folder), str(_dead_pid()), socket.gethostname())
    try:
        with pytest.warns(SessionWarning, match="broke the lock of process .*no longer exists"):
            s = Session.open(folder)
        assert len(s.open_warnings) == 1 and "broke the lock" in s.open_warnings[0]
        s.close()
    finally:
        stale.kill()
        stale.wait()
    # a live holder on another host: refused, unless break_lock=True
    other = _child(_STALE, str(folder), "1", "another-host")
    try:
        with pytest.raises(SessionError, match="open in process 1 on host another-host"):
            Session.open(folder)
        with pytest.warns(
            SessionWarning, match=r"broke the lock .*another-host \(break_lock=True\)"
        ):
            s = Session.open(folder, break_lock=True)
        s.save_labels(_labels(3))  # the session is usable
        s.close()
    finally:
        other.kill()
        other.wait()


def test_sessions_of_one_folder_in_one_process_share_the_lock(session):
    session.append_labels(_labels(2))
    reader = Session.open(session.folder)  # e.g. an export while the widget has it open
    pd.testing.assert_frame_equal(reader.load_labels(), _labels(2))
    reader.close()  # the other Session still holds the lock and can save
    session.append_labels(_labels(3).iloc[2:])
    assert len(session.load_labels()) == 3
    session.close()
    with pytest.raises(SessionError, match="is closed"):
        session.append_labels(_labels(1))


# ----------------------------------------------------------------------------- journal


def test_journal_upserts_and_removals_replay_exactly_and_close_compacts(session):
    base = _labels(6)
    session.save_labels(base)
    labels_inode = (session.folder / "labels.csv").stat().st_ino
    moved = base.iloc[[2]].assign(x=0.1 + 0.2, status="moved", pred_x=5e-324)
    session.append_labels(moved)
    session.append_removals([base.loc[4, "pick_id"], 123456])  # unknown ids are ignored
    extra = _labels(8, seed=3).iloc[7:].assign(pick_id=999)
    session.append_labels(extra)
    assert (session.folder / "labels.csv").stat().st_ino == labels_inode  # not rewritten
    journal = (session.folder / "labels.journal.csv").read_text()
    assert journal.startswith(JOURNAL_HEADER) and journal.count("\n") == 5
    expected = pd.concat([base.drop(index=[2, 4]), moved, extra], ignore_index=True).reset_index(
        drop=True
    )
    pd.testing.assert_frame_equal(session.load_labels(), expected, check_exact=True)
    pd.testing.assert_frame_equal(_strict_load(session.folder), expected, check_exact=True)
    session.close()  # compaction: labels.csv holds everything, the journal only its header
    assert (session.folder / "labels.journal.csv").read_text() == JOURNAL_HEADER
    assert (session.folder / "labels.csv").stat().st_ino != labels_inode
    record = json.loads((session.folder / "session.json").read_text())["labels"]
    assert record["rows"] == 6
    pd.testing.assert_frame_equal(_strict_load(session.folder), expected, check_exact=True)


def test_torn_last_journal_line_is_dropped_with_a_warning_and_cut_before_the_next(session):
    session.close()
    # what a kill in the middle of an append leaves: the second line without its end
    path = session.folder / "labels.journal.csv"
    path.write_text(JOURNAL_HEADER + journal_upserts(_labels(2))[:-15])
    s = Session.open(session.folder)
    with pytest.warns(
        SessionWarning, match=r"labels\.journal\.csv: dropped an incomplete last line"
    ):
        loaded = s.load_labels()
    pd.testing.assert_frame_equal(loaded, _labels(1))
    assert any("incomplete last line" in w for w in s.open_warnings)
    s.append_labels(_labels(3).iloc[2:])  # the fragment is cut first, not glued to this line
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = s.load_labels()
    pd.testing.assert_frame_equal(got, _labels(3).iloc[[0, 2]].reset_index(drop=True))
    s.close()


def test_malformed_journal_line_keeps_the_lines_before_it(session):
    session.append_labels(_labels(3))
    path = session.folder / "labels.journal.csv"
    lines = path.read_text().splitlines(keepends=True)
    lines[2] = "x,garbage\n"
    path.write_text("".join(lines))
    with pytest.warns(SessionWarning, match=r"line 3 is malformed; it and the 1 line\(s\) after"):
        loaded = session.load_labels()
    pd.testing.assert_frame_equal(loaded, _labels(3).iloc[:1])


def test_append_refuses_invalid_rows_and_writes_nothing(session):
    with pytest.raises(SessionError, match=r"unknown source value\(s\) \['robot'\]"):
        session.append_labels(_labels(2).assign(source="robot"))
    with pytest.raises(SessionError, match="duplicate pick_id"):
        session.append_labels(_labels(2).assign(pick_id=5))
    assert not (session.folder / "labels.journal.csv").exists()


def test_label_rows_as_tuples_journal_the_same_lines_as_a_table(session, tmp_path, mics):
    # the key path journals the label store's tuples directly (no table per key press);
    # numpy values and invalid rows take the table's full check
    table = _labels(3)
    plain = list(zip(*[table[c].tolist() for c in LABEL_COLUMNS], strict=True))
    numpy = [tuple(np.asarray([v])[0] for v in row) for row in plain]
    session.append_label_rows(plain[:2])
    session.append_label_rows(numpy[2:])
    other = Session.create(tmp_path / "other", mics, {"diameter": 64})
    other.append_labels(table)
    journal = "labels.journal.csv"
    assert (session.folder / journal).read_text() == (other.folder / journal).read_text()
    other.close()
    pd.testing.assert_frame_equal(session.load_labels(), table)
    bad = [
        tuple(2.0 if c == "confidence" else v for c, v in zip(LABEL_COLUMNS, plain[0], strict=True))
    ]
    with pytest.raises(SessionError, match="labels.journal.csv"):
        session.append_label_rows(bad)


def test_disk_full_on_append_is_one_clear_error_and_the_decision_is_kept(session, monkeypatch):
    session.append_labels(_labels(1))
    real_write = os.write
    calls = {"n": 0}

    def full(fd, data):
        calls["n"] += 1
        real_write(fd, bytes(data[:10]))  # part of the line reaches the disk, then ENOSPC
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(SessionError, match=r"labels\.journal\.csv: disk full .*free some space"):
        session.append_labels(_labels(2).iloc[1:])
    monkeypatch.undo()
    assert calls["n"] == 1
    # no partial line on disk; the decision is still part of the session's labels
    assert (session.folder / "labels.journal.csv").read_text().count("\n") == 2
    pd.testing.assert_frame_equal(session.load_labels(), _labels(2))
    session.append_labels(_labels(3).iloc[2:])  # the next append writes both
    pd.testing.assert_frame_equal(_strict_load(session.folder), _labels(3))


def test_disk_full_on_compaction_keeps_journal_and_memory(session, monkeypatch, disk_full):
    session.append_labels(_labels(4))
    disk_full("labels.csv")
    with pytest.raises(SessionError, match="disk full"):
        session.save_labels(_labels(4))
    monkeypatch.undo()
    pd.testing.assert_frame_equal(_strict_load(session.folder), _labels(4))
    session.save_labels(_labels(4))
    pd.testing.assert_frame_equal(_strict_load(session.folder), _labels(4))


# ----------------------------------------------------------------------------- compaction


def test_kill_inside_compaction_loses_nothing_and_warns_nothing(session, monkeypatch):
    session.save_labels(_labels(3))
    session.append_labels(_labels(5).iloc[3:])
    # 1. killed after session.json recorded the new table, before labels.csv was replaced
    real_replace = os.replace

    def killed(src, dst):
        if Path(dst).name == "labels.csv":
            raise KeyboardInterrupt  # stands for the kill: nothing after this runs
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        session.save_labels(_labels(5))
    monkeypatch.undo()
    pd.testing.assert_frame_equal(_strict_load(session.folder), _labels(5))
    # 2. killed after labels.csv was replaced, before the journal was emptied
    session.append_labels(_labels(7).iloc[5:])
    monkeypatch.setattr(Session, "_reset_journal", lambda self: None)
    session.save_labels(_labels(7))
    monkeypatch.undo()
    assert (session.folder / "labels.journal.csv").read_text().count("\n") == 5
    # the old lines are replayed on the new table: same rows (upserts are idempotent)
    loaded = _strict_load(session.folder)
    pd.testing.assert_frame_equal(
        loaded.sort_values("pick_id").reset_index(drop=True), _labels(7), check_exact=True
    )


def test_labels_cut_at_a_row_end_or_deleted_are_detected_and_recovered(session):
    session.save_labels(_labels(4))
    session.save_labels(_labels(6))
    path = session.folder / "labels.csv"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-1]))  # a valid CSV, one row short (not the previous table)
    with pytest.warns(
        SessionWarning, match=r"6 rows recorded, 5 found\): cut short.*labels\.csv\.bak"
    ):
        loaded = session.load_labels()
    pd.testing.assert_frame_equal(loaded, _labels(4))
    path.unlink()
    with pytest.warns(SessionWarning, match=r"labels\.csv: file not found.*labels\.csv\.bak"):
        loaded = session.load_labels()
    pd.testing.assert_frame_equal(loaded, _labels(4))
    (session.folder / "labels.csv.bak").unlink()
    with pytest.raises(SessionError, match=r"labels\.csv: missing, and no backup.*records 6 label"):
        session.load_labels()


def test_session_json_has_a_backup_used_when_it_is_damaged(session):
    session.save_settings({"diameter": 48})
    session.save_labels(_labels(3))
    session.close()
    bak = json.loads((session.folder / "session.json.bak").read_text())
    assert bak["settings"] == {"diameter": 48}
    (session.folder / "session.json").write_text('{"format": "activepick-ses')
    with pytest.warns(
        SessionWarning, match=r"session\.json: not a readable JSON.*session\.json\.bak"
    ):
        s = Session.open(session.folder)
    assert s.settings == {"diameter": 48}
    pd.testing.assert_frame_equal(s.load_labels(), _labels(3))
    s.save_labels(_labels(4))  # rewrites session.json from the recovered state
    s.close()
    pd.testing.assert_frame_equal(_strict_load(session.folder), _labels(4))


# ----------------------------------------------------------------------------- damaged files


def test_damaged_queue_history_and_predictions_open_with_the_labels(session):
    session.save_labels(_labels(5))
    session.save_queue(_queue(4), 2)
    p = _queue(3).drop(columns=["uncertainty", "rank"])
    session.save_round(1, predictions=p, metrics={"f1": 0.5})
    session.save_round(2, predictions=p.iloc[:1], metrics={"f1": 0.7})
    session.close()
    (session.folder / "queue.csv").write_text("micrograph,x\n0001,abc\n")
    (session.folder / "history.json").write_text("[{")
    (session.folder / "rounds" / "round_002" / "predictions.csv").write_bytes(b"\xff\x00")
    with pytest.warns(SessionWarning):
        s = Session.open(session.folder)
        queue, position = s.load_queue()
        history = s.history()
        predictions = s.load_predictions()
    assert len(queue) == 0 and position == 0
    assert [h["f1"] for h in history] == [0.5, 0.7]  # rebuilt from the rounds' metrics.json
    assert len(predictions) == 3  # round 2's are damaged: round 1's
    pd.testing.assert_frame_equal(s.load_labels(), _labels(5))
    said = "\n".join(s.open_warnings)
    assert "queue.csv: damaged, the review queue was dropped" in said
    assert "history.json: not a readable JSON" in said and "rebuilt the history of 2" in said
    assert "round_002/predictions.csv" in said and "earlier round's predictions" in said
    with pytest.raises(SessionError, match="round_002.predictions.csv"):
        s.load_predictions(2)  # an explicit round still fails loudly
    s.close()


def test_damaged_queue_json_restarts_review_at_the_top(session):
    session.save_queue(_queue(4), 3)
    (session.folder / "queue.json").write_text('{"position": "three"}')
    with pytest.warns(SessionWarning, match=r"queue\.json: no integer 'position'"):
        queue, position = session.load_queue()
    assert len(queue) == 4 and position == 0


def test_save_position_rewrites_only_queue_json(session):
    session.save_queue(_queue(5), 0)
    inode = (session.folder / "queue.csv").stat().st_ino
    session.save_position(4)
    assert (session.folder / "queue.csv").stat().st_ino == inode
    with pytest.raises(SessionError, match="position 6 outside the queue of 5"):
        session.save_position(6)
    session.close()
    with Session.open(session.folder) as s:
        assert s.load_queue()[1] == 4
        s.save_position(5)  # digest computed once from queue.csv, then cached
        assert s.load_queue()[1] == 5


# ----------------------------------------------------------------------------- model


def _detector(seed: int):
    from activepick.detector import DetectorConfig, train_detector
    from activepick.io.picks import make_picks

    class _Image:
        def __init__(self, name, data):
            self.name, self.data = name, data

    rng = np.random.default_rng(seed)
    images = [_Image("a", rng.normal(size=(64, 64)).astype(np.float32))]
    cfg = DetectorConfig(
        width=0.125, diameter=16.0, input_size=64, epochs=1, batch_size=1, device="cpu", seed=seed
    )
    return train_detector(images, make_picks("a", [20.0, 40.0], [20.0, 44.0], 16.0), cfg)


def test_model_without_its_sidecar_falls_back_to_the_previous_round(session):
    import torch

    first, second = _detector(1), _detector(2)
    session.save_round(1, detector=first)
    session.save_round(2, detector=second)
    assert sorted(p.name for p in session.round_folder(2).iterdir()) == [
        "model.pt",
        "model.pt.json",
    ]
    (session.round_folder(2) / "model.pt.json").unlink()  # a kill between the two files
    session.close()
    with pytest.warns(
        SessionWarning, match=r"round_002.model\.pt: settings file .*missing.*earlier round"
    ):
        s = Session.open(session.folder)
        loaded = s.load_detector()
    for k, v in first.network.state_dict().items():
        assert torch.equal(v.cpu(), loaded.network.state_dict()[k].cpu())
    assert any("earlier round's model" in w for w in s.open_warnings)
    s.close()


# ----------------------------------------------------------------------------- v1 format


def test_a_session_folder_in_the_format_written_before_the_journal_still_opens(tmp_path, mics):
    """Literal files as the code before issue 10/12 wrote them (no lock, journal, record, backup)."""
    folder = tmp_path / "old"
    folder.mkdir()
    entries = [
        {"name": p.stem, "path": str(p), "relative": f"../micrographs/{p.name}"} for p in mics
    ]
    (folder / "session.json").write_text(
        json.dumps(
            {
                "format": "activepick-session",
                "version": 1,
                "created": "2026-11-30T10:00:00+00:00",
                "modified": "2026-11-30T11:00:00+00:00",
                "settings": {"diameter": 48.0, "strategy": "entropy", "complete": ["a"]},
                "micrographs": entries,
            },
            indent=2,
        )
    )
    (folder / "labels.csv").write_text(
        "micrograph,x,y,diameter,confidence,status,round,time,pick_id,strategy,source,pred_x,pred_y\n"
        "0001,10.5,20.25,48.0,0.9,accepted,1,2026-11-30T10:30:00+00:00,3,entropy,human,,\n"
        '"mic,b",0.30000000000000004,7.0,48.0,,added,1,,4,,human,,\n'
        "a,100.0,50.0,48.0,0.2,moved,2,2026-11-30T10:31:00+00:00,7,entropy,human,99.5,48.0\n"
    )
    queue_csv = "micrograph,x,y,diameter,confidence,status,round,time,pick_id\n"
    queue_csv += "a,30.0,40.0,48.0,0.5,predicted,2,,8\n0001,60.0,70.0,48.0,0.4,predicted,2,,9\n"
    (folder / "queue.csv").write_text(queue_csv)
    import hashlib

    digest = hashlib.sha256(queue_csv.encode()).hexdigest()
    (folder / "queue.json").write_text(json.dumps({"position": 1, "length": 2, "sha256": digest}))
    (folder / "history.json").write_text(
        json.dumps([{"round": 1, "f1": 0.4}, {"round": 2, "f1": 0.6}])
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = Session.open(folder)
        labels = s.load_labels()
        queue, position = s.load_queue()
    assert s.settings["diameter"] == 48.0 and s.open_warnings == []
    assert list(labels["pick_id"]) == [3, 4, 7] and labels.loc[1, "micrograph"] == "mic,b"
    assert labels.loc[1, "x"] == 0.1 + 0.2 and np.isnan(labels.loc[1, "confidence"])
    assert labels.loc[2, "pred_x"] == 99.5 and labels.loc[0, "time"] == "2026-11-30T10:30:00+00:00"
    assert list(queue["pick_id"]) == [8, 9] and position == 1
    assert [h["f1"] for h in s.history()] == [0.4, 0.6]
    # the new journal works on top of it, and closing upgrades it to the checksummed layout
    s.append_removals([4])
    s.close()
    assert json.loads((folder / "session.json").read_text())["labels"]["rows"] == 2
    assert list(_strict_load(folder)["pick_id"]) == [3, 7]


def test_empty_label_table_round_trips_through_the_journal(session):
    session.append_labels(empty_labels())
    assert not (session.folder / "labels.journal.csv").exists()
    session.append_labels(_labels(1))
    session.append_removals([0])
    assert len(session.load_labels()) == 0
    session.close()
    assert table_to_csv(_strict_load(session.folder)) == table_to_csv(empty_labels())


def test_fast_journal_path_writes_what_the_full_validation_writes():
    from activepick.io.labels import journal_upserts, label_rows_to_journal, validate_labels

    rows = _any_labels(30, seed=4)  # NaN, quoted names ("mic,b"), "0001", "" times
    rows.loc[0, "x"] = 0.1 + 0.2
    rows.loc[1, "y"] = 5e-324
    rows["round"] = rows["round"].astype(np.int32)
    fast = label_rows_to_journal(rows)
    assert fast == journal_upserts(validate_labels(rows))
    assert fast.count("\n") == 30 and '"mic,b"' in fast
    ints = rows.iloc[:1].assign(x=12, diameter=64)  # ints are written as the floats they become
    assert label_rows_to_journal(ints) == journal_upserts(validate_labels(ints))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (dict(confidence=1.5), r"confidences must lie in \[0, 1\]"),
        (dict(diameter=0.0), "diameters must be positive"),
        (dict(x=np.nan), r"NaN or infinite 'x'"),
        (dict(y=np.inf), r"NaN or infinite 'y'"),
        (dict(status="maybe"), r"unknown status value\(s\) \['maybe'\]"),
        (dict(pick_id=1.5), "'pick_id' must hold integers"),
        (dict(x="12,5"), "'x' is not numeric"),
    ],
)
def test_every_invalid_row_is_refused_on_the_fast_path_too(session, edit, message):
    with pytest.raises(SessionError, match=message):
        session.append_labels(_labels(1).assign(**edit))
    assert not (session.folder / "labels.journal.csv").exists()


def _sleep_in_child(seconds: float) -> None:
    import time

    time.sleep(seconds)


def test_a_forked_child_does_not_keep_the_session_locked(session):
    import multiprocessing

    child = multiprocessing.get_context("fork").Process(target=_sleep_in_child, args=(30,))
    child.start()  # forked while the session is open (e.g. a data-loader worker)
    try:
        session.close()
        holder = _child(_HOLDER, str(session.folder))  # another process can take it now
        holder.kill()
        holder.wait()
    finally:
        child.kill()
        child.join()


def test_a_journal_with_a_foreign_header_is_moved_aside_not_appended_to(session):
    session.save_labels(_labels(2))
    path = session.folder / "labels.journal.csv"
    path.write_text("op,something,else\nu,1,2\n")
    session.close()
    s = Session.open(session.folder)
    with pytest.warns(SessionWarning, match="not a label journal"):
        assert len(s.load_labels()) == 2
        s.append_labels(_labels(3).iloc[2:])
    assert (
        session.folder / "labels.journal.csv.damaged"
    ).read_text() == "op,something,else\nu,1,2\n"
    pd.testing.assert_frame_equal(s.load_labels(), _labels(3))
    s.close()


def test_close_on_a_full_disk_keeps_the_session_open_until_it_can_compact(
    session, monkeypatch, disk_full
):
    session.save_labels(_labels(2))
    real_write = os.write

    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(SessionError, match="disk full"):
        session.append_labels(_labels(3).iloc[2:])  # kept in memory, not on disk
    monkeypatch.setattr(os, "write", real_write)
    disk_full("labels.csv", "session.json")
    with pytest.raises(SessionError, match="disk full"):
        session.close()
    monkeypatch.undo()
    session.append_removals([])  # still open: no "is closed" error
    session.close()  # space again: compacts the decision kept in memory
    pd.testing.assert_frame_equal(_strict_load(session.folder), _labels(3))


@pytest.mark.parametrize("row", ["1,2,9", "3,4,5"])
def test_a_row_with_an_extra_field_is_refused_not_shifted_or_cut(tmp_path, row):
    from activepick.io.labels import read_table

    path = tmp_path / "t.csv"
    path.write_text(f"a,b\n{row}\n1,2\n")
    with pytest.raises(SessionError, match=r"t\.csv: not a readable CSV table"):
        read_table(path)


# ----------------------------------------------------------------------------- durability

_NO_FSYNC_CHILD = """
import os, signal, sys, threading
from activepick.io.labels import read_labels_csv
from activepick.session import Session
signal.alarm(60)  # never outlive a failed test
s = Session.open(sys.argv[1], check_files=False)
rows = read_labels_csv(sys.argv[2])
os.fsync = lambda fd: threading.Event().wait()  # the disk never acknowledges a flush
for i in range(len(rows)):  # key presses: a decision and the queue position each
    s.append_labels(rows.iloc[i : i + 1])
    s.save_position(i + 1)
s.append_removals([int(sys.argv[3])])
print("held", flush=True)
threading.Event().wait()
"""


def test_a_program_crash_before_any_fsync_loses_no_decision(session, tmp_path):
    # the durability rule (docs/session.md): a key press writes the journal line before
    # it returns and leaves the fsync and the queue position to a thread, so a crash of
    # the program (here: killed while no fsync ever finished) loses no decision; the
    # position, whose write waits for an fsync, is the one saved before
    session.save_labels(_labels(1))
    session.append_labels(_labels(2).iloc[1:])
    session.save_queue(_queue(5), 0)
    folder = session.folder
    session.close()  # compacts: labels.csv holds 2 rows, the journal its header
    (tmp_path / "rows.csv").write_text(table_to_csv(_labels(4).iloc[2:]))
    removed = str(int(_labels(1)["pick_id"].iloc[0]))
    child = _child(_NO_FSYNC_CHILD, str(folder), str(tmp_path / "rows.csv"), removed)
    child.send_signal(signal.SIGKILL)  # the child got here: no key press waited for fsync
    child.wait(10)
    child.stdout.close(), child.stderr.close()
    expected = _labels(4).iloc[1:].reset_index(drop=True)
    pd.testing.assert_frame_equal(_strict_load(folder), expected)
    with Session.open(folder, check_files=False) as s:
        queue, position = s.load_queue()
    assert len(queue) == 5 and position == 0


def test_key_presses_leave_the_fsync_to_a_background_thread(session, monkeypatch):
    import threading

    synced: list[tuple[str, str]] = []
    real_fsync = os.fsync

    def fsync(fd):
        name = Path(os.readlink(f"/proc/self/fd/{fd}")).name
        synced.append((threading.current_thread().name, name))
        real_fsync(fd)

    session.save_queue(_queue(5), 0)
    session.append_labels(_labels(1))  # the first append creates the journal (durably)
    monkeypatch.setattr(os, "fsync", fsync)
    queue_json = session.folder / "queue.json"
    before = queue_json.read_bytes()
    session.append_labels(_labels(2).iloc[1:])
    session.save_position(2)
    main, thread = threading.current_thread().name, "activepick-journal-fsync"
    assert not [s for s in synced if s[0] == main]
    assert session._syncer().wait(timeout=10)
    assert (thread, "labels.journal.csv") in synced
    assert [name for who, name in synced if who == thread and "queue.json" in name]
    assert queue_json.read_bytes() != before and json.loads(queue_json.read_text())["position"] == 2
    synced.clear()
    session.save_position(3)
    assert session.load_queue()[1] == 3  # a pending position is written before a read
    session.sync()  # now, in this thread
    assert (main, "labels.journal.csv") in synced


def test_a_failed_background_fsync_is_one_clear_error_and_the_decision_is_kept(
    session, monkeypatch
):
    session.append_labels(_labels(1))
    session.sync()

    def broken(fd):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", broken)
    with pytest.raises(SessionError, match=r"labels\.journal\.csv: cannot flush the decisions"):
        session.sync()
    session._syncer().request()  # a key press's fsync fails in the background ...
    assert session._syncer().wait(timeout=10)
    with pytest.raises(SessionError, match=r"\(Input/output error\); they are kept in memory"):
        session.append_labels(_labels(2).iloc[1:])  # ... and the next key press says so
    monkeypatch.undo()
    session.sync()  # reported once; the disk works again
    pd.testing.assert_frame_equal(session.load_labels(), _labels(2))
    session.close()  # compaction writes every decision durably
    pd.testing.assert_frame_equal(_strict_load(session.folder), _labels(2))


def test_the_small_table_shortcut_of_validate_labels_returns_what_the_full_check_does(
    monkeypatch,
):
    # a key press's label rows skip pandas' column checks (io.labels._small_valid_table);
    # the result must be the full check's, and anything unusual must take the full check
    from activepick.io import labels as lab

    tables = [_labels(1), _labels(5), _labels(10), _labels(7, seed=3)]
    tables.append(_labels(2).assign(x=[1, 2]))  # integer centres become floats
    odd = [
        _labels(2).assign(round=[1.0, 2.0]),  # rounds as floats
        _labels(2).assign(strategy=[np.nan, "margin"]),
        _labels(2).assign(source=["human", "robot"]),
        _labels(2).assign(confidence=[0.5, 1.5]),
        _labels(2).assign(extra=["a", "b"]),
    ]
    got = []
    for table in tables + odd:
        try:
            got.append(lab.validate_labels(table))
        except SessionError as exc:
            got.append(str(exc))
    assert all(lab._small_valid_table(t) is not None for t in tables)
    assert all(lab._small_valid_table(t) is None for t in odd)
    monkeypatch.setattr(lab, "_FAST_ROWS", 0)  # the full check only
    for table, fast in zip(tables + odd, got, strict=True):
        try:
            full = lab.validate_labels(table)
        except SessionError as exc:
            assert fast == str(exc)
            continue
        pd.testing.assert_frame_equal(fast, full)
