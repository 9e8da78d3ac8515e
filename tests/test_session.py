"""The on-disk session: create / open, exact label round trips, backup, queue, rounds, crash safety."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import signal
import threading
import time
import warnings

import numpy as np
import pandas as pd
import pytest

from activepick.constants import LABEL_COLUMNS
from activepick.errors import SessionError
from activepick.io.labels import empty_labels, read_table, table_to_csv, validate_labels
from activepick.session import SESSION_VERSION, Session, SessionWarning


def _labels(n: int, seed: int = 0) -> pd.DataFrame:
    """A label table of ``n`` rows with awkward values: NaN, long floats, digit names, ""."""
    rng = np.random.default_rng(seed)
    status = np.array(["accepted", "moved", "added", "rejected", "imported"])[np.arange(n) % 5]
    conf = rng.random(n)
    conf[status == "added"] = np.nan
    pred_x = rng.uniform(0, 4096, n)
    pred_y = rng.uniform(0, 4096, n)
    pred_x[status != "moved"] = np.nan
    pred_y[status != "moved"] = np.nan
    df = pd.DataFrame(
        {
            "micrograph": [("0001", "mic,b", "a")[i % 3] for i in range(n)],
            "x": rng.uniform(0, 4096, n),
            "y": rng.uniform(0, 4096, n) / 3.0,
            "diameter": np.full(n, 64.0),
            "confidence": conf,
            "status": status,
            "round": np.arange(n, dtype=np.int64) % 4,
            "time": ["" if i % 2 else "2025-03-01T12:00:00+00:00" for i in range(n)],
            "pick_id": np.arange(n, dtype=np.int64) * 7,
            "strategy": ["" if s in ("added", "imported") else "entropy" for s in status],
            "source": ["import" if s == "imported" else "human" for s in status],
            "pred_x": pred_x,
            "pred_y": pred_y,
        }
    )
    # the canonical dtypes of a loaded table (pandas' string dtype for text)
    for c in ("micrograph", "status", "time", "strategy", "source"):
        df[c] = df[c].astype(str)
    return df


@pytest.fixture
def session(tmp_path, mics) -> Session:
    return Session.create(tmp_path / "sess", mics, {"diameter": 64, "strategy": "entropy"})


# ----------------------------------------------------------------------------- create / open


def test_create_then_open_restores_settings_and_micrographs(tmp_path, mics):
    folder = tmp_path / "s"
    assert not Session.exists(folder)
    Session.create(folder, mics, {"diameter": 64.5, "seed": np.int64(3), "arch": "light"})
    assert Session.exists(folder)
    s = Session.open(folder)
    assert s.settings == {"diameter": 64.5, "seed": 3, "arch": "light"}
    assert s.micrograph_paths == [p.resolve() for p in mics]
    info = json.loads((folder / "session.json").read_text())
    assert info["version"] == SESSION_VERSION
    assert [m["relative"] for m in info["micrographs"]] == [
        "../micrographs/0001.mrc",
        "../micrographs/mic,b.mrc",
        "../micrographs/a.tif",
    ]
    s.save_settings({**s.settings, "complete": ["0001"]})
    assert Session.open(folder).settings["complete"] == ["0001"]


def test_create_refuses_existing_session_missing_files_and_duplicate_names(tmp_path, mics):
    folder = tmp_path / "s"
    s = Session.create(folder, mics, {})
    s.save_labels(_labels(4))
    s.save_round(1, metrics={"f1": 0.5})
    with pytest.raises(SessionError, match="already exists"):
        Session.create(folder, mics, {})
    s2 = Session.create(folder, mics[:1], {"x": 1}, overwrite=True)
    assert len(s2.load_labels()) == 0 and s2.rounds() == [] and s2.history() == []
    with pytest.raises(SessionError, match=r"2 micrograph file\(s\) not found.*nope1.*nope2"):
        Session.create(
            tmp_path / "t", [tmp_path / "nope1.mrc", mics[0], tmp_path / "nope2.mrc"], {}
        )
    other = tmp_path / "other"
    other.mkdir()
    (other / "a.mrc").write_bytes(b"")
    with pytest.raises(SessionError, match="share the name 'a'"):
        Session.create(tmp_path / "t", [mics[2], other / "a.mrc"], {})


def test_a_pool_of_symlinks_to_one_file_keeps_each_links_name(tmp_path, mics):
    links = tmp_path / "links"
    links.mkdir()
    paths = []
    for i in range(3):  # three micrographs that are one file on disk
        paths.append(links / f"mic_{i:03d}.mrc")
        paths[-1].symlink_to(mics[0])
    s = Session.create(tmp_path / "s", paths, {})
    assert [p.stem for p in s.micrograph_paths] == ["mic_000", "mic_001", "mic_002"]
    s.close()
    again = Session.open(tmp_path / "s")
    assert again.micrograph_paths == paths and all(p.is_symlink() for p in paths)
    info = json.loads((tmp_path / "s" / "session.json").read_text())
    assert [m["relative"] for m in info["micrographs"]] == [
        "../links/mic_000.mrc",
        "../links/mic_001.mrc",
        "../links/mic_002.mrc",
    ]


def test_open_errors_name_the_file(tmp_path, session):
    with pytest.raises(SessionError, match="session.json not found"):
        Session.open(tmp_path / "nothing")
    path = session.folder / "session.json"
    info = json.loads(path.read_text())
    path.write_text(json.dumps({**info, "version": SESSION_VERSION + 1}))
    with pytest.raises(SessionError, match=r"session\.json: written by a newer activepick"):
        Session.open(session.folder)
    path.write_text('{"format": "activepick-session", "vers')
    with pytest.raises(SessionError, match=r"session\.json: not a readable JSON"):
        Session.open(session.folder)
    path.write_text(json.dumps({"hello": 1}))
    with pytest.raises(SessionError, match="not an activepick session"):
        Session.open(session.folder)


def test_missing_micrographs_are_listed_and_check_files_false_opens_anyway(session, mics):
    mics[0].unlink()
    mics[2].unlink()
    with pytest.raises(SessionError, match=r"2 micrograph file\(s\) not found.*0001\.mrc.*a\.tif"):
        Session.open(session.folder)
    session.save_labels(_labels(3))
    s = Session.open(session.folder, check_files=False)
    assert [p.name for p in s.micrograph_paths] == ["0001.mrc", "mic,b.mrc", "a.tif"]
    assert len(s.load_labels()) == 3


def test_copied_folder_uses_relative_paths_and_relocate_finds_by_name(tmp_path, session, mics):
    session.save_labels(_labels(5))
    # copy session + micrographs together to "another machine", remove the originals
    shutil.copytree(tmp_path / "sess", tmp_path / "moved" / "sess")
    shutil.copytree(tmp_path / "micrographs", tmp_path / "moved" / "micrographs")
    shutil.rmtree(tmp_path / "micrographs")
    s = Session.open(tmp_path / "moved" / "sess")
    assert s.micrograph_paths == [
        (tmp_path / "moved" / "micrographs" / p.name).resolve() for p in mics
    ]
    pd.testing.assert_frame_equal(s.load_labels(), _labels(5))

    # micrographs elsewhere (one in a sub-folder): relocate by file name
    new = tmp_path / "elsewhere"
    (new / "sub").mkdir(parents=True)
    shutil.move(tmp_path / "moved" / "micrographs" / "0001.mrc", new / "0001.mrc")
    shutil.move(tmp_path / "moved" / "micrographs" / "a.tif", new / "sub" / "a.tif")
    shutil.move(tmp_path / "moved" / "micrographs" / "mic,b.mrc", new / "mic,b.mrc")
    with pytest.raises(SessionError, match="0001.mrc"):
        Session.open(tmp_path / "moved" / "sess")
    s = Session.open(tmp_path / "moved" / "sess", check_files=False)
    (tmp_path / "partial").mkdir()
    with pytest.raises(SessionError, match=r"3 micrograph\(s\).*0001\.mrc \(not found\)"):
        s.relocate(tmp_path / "partial")
    s.relocate(new)
    expected = [
        (new / "0001.mrc").resolve(),
        (new / "mic,b.mrc").resolve(),
        (new / "sub" / "a.tif").resolve(),
    ]
    assert s.micrograph_paths == expected
    assert Session.open(tmp_path / "moved" / "sess").micrograph_paths == expected


# ----------------------------------------------------------------------------- labels


def test_labels_round_trip_is_exact(session):
    assert list(session.load_labels().columns) == list(LABEL_COLUMNS)
    assert len(session.load_labels()) == 0
    labels = _labels(500)
    labels.loc[3, "x"] = 0.1 + 0.2  # 0.30000000000000004
    labels.loc[4, "y"] = 5e-324  # smallest subnormal
    labels.loc[5, "x"] = 1234.5678901234567
    session.save_labels(labels)
    loaded = Session.open(session.folder).load_labels()
    pd.testing.assert_frame_equal(loaded, labels, check_exact=True)
    assert loaded.loc[0, "micrograph"] == "0001" and loaded.loc[1, "time"] == ""
    assert loaded["pick_id"].dtype == np.int64 and loaded["round"].dtype == np.int64
    # an empty table saves and loads as an empty table with the label columns
    session.save_labels(empty_labels())
    assert len(session.load_labels()) == 0
    assert list(session.load_labels().columns) == list(LABEL_COLUMNS)


def test_backup_holds_previous_labels_and_is_used_when_labels_are_corrupt(session):
    first, second = _labels(10, seed=1), _labels(12, seed=2)
    session.save_labels(first)
    assert not (session.folder / "labels.csv.bak").exists()
    session.save_labels(second)
    pd.testing.assert_frame_equal(read_table(session.folder / "labels.csv.bak").pipe(_canon), first)
    # a truncated file (half a line): the backup is loaded, with a warning naming the file
    path = session.folder / "labels.csv"
    text = path.read_text()
    path.write_text(text[: len(text) // 2])
    with pytest.warns(SessionWarning, match=r"labels\.csv.*labels\.csv\.bak"):
        loaded = session.load_labels()
    pd.testing.assert_frame_equal(loaded, first)
    # garbage in both: an error naming labels.csv and the backup
    path.write_bytes(b"\xff\xfe\x00garbage")
    (session.folder / "labels.csv.bak").write_text("micrograph,x\n")
    with pytest.raises(SessionError, match=r"labels\.csv: .*backup is not usable.*missing column"):
        session.load_labels()


def _canon(df: pd.DataFrame) -> pd.DataFrame:
    return validate_labels(df)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda df: df.drop(columns=["pred_x", "source"]),
            r"labels\.csv: missing column\(s\) source, pred_x",
        ),
        (
            lambda df: df.assign(status=["accepted", "maybe", "rejected"]),
            r"labels\.csv: unknown status.*maybe",
        ),
        (
            lambda df: df.assign(source=["human", "oracle", "robot"]),
            r"labels\.csv: unknown source.*robot",
        ),
        (lambda df: df.assign(pick_id=[1, 1, 2]), r"labels\.csv: duplicate pick_id"),
        (
            lambda df: df.assign(x=[1.0, np.nan, 3.0]),
            r"labels\.csv: 1 row\(s\) with NaN or infinite 'x'",
        ),
    ],
)
def test_invalid_labels_file_raises_session_error_naming_it(session, edit, message):
    (session.folder / "labels.csv").write_text(table_to_csv(edit(_labels(3))))
    with pytest.raises(SessionError, match=message):
        session.load_labels()


def test_failed_write_keeps_previous_labels_and_says_disk_full(session, monkeypatch, disk_full):
    session.save_labels(_labels(5))
    disk_full("labels.csv")
    with pytest.raises(SessionError, match=r"labels\.csv: disk full \(no space left on device\)"):
        session.save_labels(_labels(9))
    monkeypatch.undo()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # labels.csv still matches what session.json records
        pd.testing.assert_frame_equal(session.load_labels(), _labels(5))
    assert sorted(p.name for p in session.folder.iterdir()) == [
        "labels.csv",
        "labels.csv.bak",
        "session.json",
        "session.json.bak",
        "session.lock",
    ]
    session.save_labels(_labels(9))  # the next save succeeds
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pd.testing.assert_frame_equal(Session.open(session.folder).load_labels(), _labels(9))


def test_save_refuses_a_table_it_could_not_load_back(session):
    session.save_labels(_labels(3))
    with pytest.raises(SessionError, match=r"labels\.csv: unknown status value\(s\) \['maybe'\]"):
        session.save_labels(_labels(3).assign(status="maybe"))
    with pytest.raises(SessionError, match=r"missing column\(s\) pred_y"):
        session.save_labels(_labels(3).drop(columns="pred_y"))
    pd.testing.assert_frame_equal(session.load_labels(), _labels(3))


def test_saves_from_two_threads_leave_valid_files(session):
    tables = [_labels(n) for n in range(20, 60)]

    def save(part):
        for t in part:
            session.save_labels(t)
            session.save_queue(_queue(len(t) % 7 + 1), 0)

    threads = [threading.Thread(target=save, args=(tables[i::2],)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = session.load_labels()
        queue, _ = session.load_queue()
    pd.testing.assert_frame_equal(loaded, _labels(len(loaded)))
    assert len(loaded) in (58, 59)
    assert len(queue) == 58 % 7 + 1 or len(queue) == 59 % 7 + 1


def test_stale_temp_files_are_removed_on_open_recent_ones_kept(session):
    old = session.folder / ".labels.csv.abc123.tmp.csv"
    new = session.folder / ".labels.csv.def456.tmp.csv"
    old.write_text("partial")
    new.write_text("partial")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    Session.open(session.folder)
    assert not old.exists() and new.exists()


def test_temporary_files_left_by_a_kill_are_removed_when_the_session_reopens(session):
    """After a SIGKILL mid-write, ``.queue.json.*.tmp.json`` files stayed in 5 of 30
    sessions (recent files were kept: an hour had to pass). The reopening process holds
    the folder's lock, so no other process writes them: every one is removed."""
    folder = session.folder
    session.close()
    left = [
        folder / ".queue.json.k3j2h1.tmp.json",
        folder / ".labels.csv.x9y8z7.tmp.csv",
        folder / "rounds" / "round_001" / ".model.pt.q1w2e3.tmp.pt",
    ]
    for p in left:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("partial write of a killed process")
    reopened = Session.open(folder)
    try:
        assert [p for p in left if p.exists()] == []
    finally:
        reopened.close()


def test_a_folder_where_a_session_file_belongs_is_named(tmp_path, session):
    file = tmp_path / "a-file"
    file.write_text("x")
    with pytest.raises(SessionError, match=r"a-file: is a file, not a session folder$"):
        Session.open(file)
    other = tmp_path / "other"
    (other / "session.json").mkdir(parents=True)
    with pytest.raises(SessionError, match=r"session\.json: is a folder, not a file$"):
        Session.open(other)


# ----------------------------------------------------------------------------- queue


def _queue(n: int) -> pd.DataFrame:
    q = _labels(n)[["micrograph", "x", "y", "diameter", "confidence", "status", "round", "time"]]
    q = q.assign(status="predicted", confidence=np.linspace(0.05, 0.95, n))
    q["pick_id"] = np.arange(100, 100 + n, dtype=np.int64)
    q["uncertainty"] = np.abs(q["confidence"] - 0.4)
    q["rank"] = np.arange(n, dtype=np.int64)
    return q


def test_queue_round_trip_with_position(session):
    queue, position = session.load_queue()
    assert len(queue) == 0 and position == 0
    q = _queue(7)
    session.save_queue(q, 2)
    loaded, position = Session.open(session.folder).load_queue()
    assert position == 2
    pd.testing.assert_frame_equal(loaded, q, check_exact=True)
    # a position-only change rewrites queue.json, not queue.csv
    before = (session.folder / "queue.csv").stat().st_ino
    session.save_queue(q, 5)
    assert (session.folder / "queue.csv").stat().st_ino == before
    assert session.load_queue()[1] == 5
    session.save_queue(q.iloc[:3], 0)
    assert (session.folder / "queue.csv").stat().st_ino != before
    assert len(session.load_queue()[0]) == 3
    with pytest.raises(SessionError, match="position 4 outside the queue of 3"):
        session.save_queue(q.iloc[:3], 4)


def test_queue_position_restarts_when_queue_json_belongs_to_another_queue(session):
    session.save_queue(_queue(7), 4)
    (session.folder / "queue.csv").write_text(table_to_csv(_queue(5)))  # crash between the writes
    with pytest.warns(SessionWarning, match=r"queue\.json: does not belong to queue\.csv"):
        queue, position = session.load_queue()
    assert len(queue) == 5 and position == 0


# ----------------------------------------------------------------------------- rounds


def test_rounds_predictions_metrics_and_history(session):
    assert session.rounds() == [] and session.history() == []
    assert session.load_predictions() is None and session.load_detector() is None
    p1 = (
        _queue(4).drop(columns=["uncertainty", "rank"]).assign(disagreement=[0.1, 0.2, np.nan, 0.4])
    )
    session.save_round(1, metrics={"labels": 20, "f1": 0.25, "predict_s": None})
    session.save_round(1, predictions=p1, metrics={"labels": 20, "f1": 0.25, "predict_s": 1.5})
    session.save_round(2, metrics={"labels": 40, "f1": float("nan")})
    session.save_round(12, predictions=p1.iloc[:2])
    assert session.rounds() == [1, 2, 12]
    assert (session.folder / "rounds" / "round_012" / "predictions.csv").is_file()
    history = Session.open(session.folder).history()
    assert [h["round"] for h in history] == [1, 2]
    assert history[0] == {"labels": 20, "f1": 0.25, "predict_s": 1.5, "round": 1}
    assert np.isnan(history[1]["f1"])
    metrics = json.loads((session.folder / "rounds" / "round_001" / "metrics.json").read_text())
    assert metrics["predict_s"] == 1.5
    pd.testing.assert_frame_equal(session.load_predictions(1), p1, check_exact=True)
    assert len(session.load_predictions()) == 2  # latest round with predictions: 12
    assert len(session.load_predictions(1)) == 4
    with pytest.raises(SessionError, match=r"round_002.predictions\.csv: not found"):
        session.load_predictions(2)
    assert session.load_detector() is None
    with pytest.raises(SessionError, match=r"round_001.model\.pt: not found"):
        session.load_detector(1)


def test_save_round_and_load_detector_with_a_real_detector(session):
    import torch

    from activepick.detector import DetectorConfig, train_detector
    from activepick.io.picks import make_picks

    class _Image:
        def __init__(self, name, data):
            self.name, self.data = name, data

    rng = np.random.default_rng(0)
    images = [_Image("a", rng.normal(size=(64, 64)).astype(np.float32))]
    cfg = DetectorConfig(
        width=0.125, diameter=16.0, input_size=64, epochs=1, batch_size=1, device="cpu"
    )
    det = train_detector(images, make_picks("a", [20.0, 40.0], [20.0, 44.0], 16.0), cfg)
    session.save_round(3, detector=det, metrics={"f1": 0.1})
    assert (session.folder / "rounds" / "round_003" / "model.pt.json").is_file()
    loaded = Session.open(session.folder).load_detector()
    assert loaded.config.to_dict() == det.config.to_dict()
    for (k, v), (k2, v2) in zip(
        det.network.state_dict().items(), loaded.network.state_dict().items(), strict=True
    ):
        assert k == k2 and torch.equal(v.cpu(), v2.cpu())
    by_round = session.load_detector(3)  # the explicit round loads the same weights
    assert by_round.config.to_dict() == det.config.to_dict()
    for k, v in det.network.state_dict().items():
        assert torch.equal(v.cpu(), by_round.network.state_dict()[k].cpu())


# ----------------------------------------------------------------------------- crash safety

_BASE = _labels(40000, seed=5)


def _table(n: int) -> pd.DataFrame:
    """The n-th table the saver writes: the first 30 + 40 n rows of a fixed table."""
    return _BASE.iloc[: 30 + 40 * n].reset_index(drop=True)


def _saver(folder: str, start: int, counter) -> None:  # runs in the child process
    s = Session.open(folder, check_files=False)
    n = start
    while 30 + 40 * n <= len(_BASE):
        s.save_labels(_table(n))
        counter.value = n  # reported only after save_labels returned
        n += 1
    time.sleep(60)


def test_sigkill_during_saves_never_leaves_a_partial_table(session):
    ctx = multiprocessing.get_context("fork")
    rng = np.random.default_rng(0)
    session.save_labels(_table(0))
    session.close()  # one process at a time: the children take the lock in turn
    last = 0
    for _ in range(30):
        counter = ctx.Value("i", -1, lock=False)
        proc = ctx.Process(target=_saver, args=(str(session.folder), last + 1, counter))
        proc.start()
        deadline = time.monotonic() + 20
        while counter.value < last + 1 and time.monotonic() < deadline:
            time.sleep(0.002)
        time.sleep(rng.uniform(0.0, 0.03))
        os.kill(proc.pid, signal.SIGKILL)
        proc.join()
        reported = counter.value
        assert reported >= last + 1, "the child never saved"
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # labels.csv itself must be valid: no fallback
            with Session.open(session.folder, check_files=False) as s:
                labels = s.load_labels()
        n = (len(labels) - 30) // 40
        assert n in (reported, reported + 1), (n, reported)
        pd.testing.assert_frame_equal(labels, _table(n), check_exact=True)
        backup = _canon(read_table(session.folder / "labels.csv.bak"))
        m = (len(backup) - 30) // 40
        assert m in (n - 1, n)
        pd.testing.assert_frame_equal(backup, _table(m), check_exact=True)
        last = n
