"""``activepick session create``: a session from the command line (issue 21, item 13)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from activepick.cli import main
from activepick.io.formats import read_coordinates
from activepick.io.micrograph import list_micrographs, write_micrograph

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"


def _create(folder: Path, *extra: str) -> int:
    argv = ["session", "create", str(folder), "--micrographs", str(SAMPLE / "micrographs")]
    return main([*argv, "--diameter", "48", *extra])


def test_create_writes_the_micrographs_settings_and_labels_the_gui_opens(tmp_path, capsys):
    from activepick.active.workbench import Workbench

    folder = tmp_path / "run1"
    truth = SAMPLE / "ground_truth.csv"
    extra = ["--labels", str(truth), "--set", "strategy=entropy", "--set", "review_k=7"]
    assert _create(folder, *extra, "--set", "partial=true") == 0
    n_truth = len(read_coordinates(truth))
    assert capsys.readouterr().out.strip() == (
        f"created session {folder}: 6 micrograph(s), diameter 48 px, {n_truth} label(s), "
        f"strategy entropy; next: activepick round --session {folder}"
    )
    info = json.loads((folder / "session.json").read_text())
    assert [m["path"] for m in info["micrographs"]] == [
        str(p.resolve()) for p in list_micrographs(SAMPLE / "micrographs")
    ]
    settings = info["settings"]
    assert (settings["strategy"], settings["review_k"], settings["partial"]) == ("entropy", 7, True)
    assert settings["detector"]["diameter"] == 48.0
    assert settings["train_steps"] == 60  # untouched settings keep LearnerSettings' defaults
    with Workbench.open(folder) as wb:  # what 'activepick round' and the GUI do
        assert wb.learner.counts()["positive"] == n_truth
        assert wb.settings.review_k == 7 and wb.learner.strategy == "entropy"


def test_an_existing_session_is_replaced_only_with_force(tmp_path, capsys):
    folder = tmp_path / "run1"
    assert _create(folder) == 0
    capsys.readouterr()
    assert _create(folder, "--set", "review_k=3") == 2
    assert capsys.readouterr().err.strip() == (
        f"activepick session: error: {folder} already holds a session; open it (activepick round "
        f"--session {folder}) or pass --force to replace it"
    )
    assert json.loads((folder / "session.json").read_text())["settings"]["review_k"] == 20
    assert _create(folder, "--set", "review_k=3", "--force") == 0
    assert json.loads((folder / "session.json").read_text())["settings"]["review_k"] == 3


@pytest.mark.parametrize(
    "item, message",
    [
        ("nope=1", "unknown setting(s) ['nope']; known: "),
        ("strategy=guess", "--set: unknown strategy 'guess'; choose from"),
        ("review_k=0", "review_k must be >= 1, not 0"),
        ("review_k", "--set 'review_k': give NAME=VALUE, e.g. review_k=30"),
    ],
)
def test_a_bad_setting_is_one_line_and_no_session(tmp_path, capsys, item, message):
    folder = tmp_path / "run1"
    assert _create(folder, "--set", item) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("activepick session: error: ") and message in err
    assert "\n" not in err
    assert not (folder / "session.json").exists()


def test_a_micrograph_with_an_unreadable_header_is_named_and_no_session(tmp_path, capsys):
    mics = tmp_path / "mics"
    write_micrograph(mics / "a.mrc", np.zeros((64, 64), np.float32))
    (mics / "b.mrc").write_bytes(bytes(1024))
    folder = tmp_path / "run1"
    argv = ["session", "create", str(folder), "--micrographs", str(mics), "--diameter", "16"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"activepick session: error: {mics / 'b.mrc'}: ")
    assert not folder.exists()


def test_labels_on_no_micrograph_of_the_folder_are_refused(tmp_path, capsys):
    picks = tmp_path / "other.csv"
    picks.write_text("micrograph,x,y,diameter\nnot_here,10,10,48\n")
    assert _create(tmp_path / "run1", "--labels", str(picks)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (
        f"activepick session: error: {picks}: no picks on the micrographs of "
        f"{SAMPLE / 'micrographs'}"
    )
    assert "unknown micrograph 'not_here'" in err[0]
