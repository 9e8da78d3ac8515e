"""The README's "Command line" block runs top to bottom in an empty folder (issue 21).

The block is read out of README.md, so the two cannot drift apart. It runs as written
except for sizes, through :data:`SMALL` (each substitution must match, so a changed
README line fails here instead of running at full size): 256 px micrographs, fewer of
them; and every fine-tuning run (``train --init general``, the session's round) is
held to 2 optimiser steps: the step budget's floor
(``activepick.detector.budget.MIN_STEPS``, 60) is set to 2 for the test, and the
session gets ``--set train_steps=2``.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from activepick.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"
#: ``(README text, what the test runs instead, how many times it must occur)``.
SMALL = [
    ("--size 1024", "--size 256", 2),
    ("--n 10", "--n 2", 1),
    ("--n 4", "--n 1", 1),
    ("--particles 40", "--particles 4", 2),
    # a session's rounds train at least its train_steps (60 by default)
    ("--set strategy=entropy", "--set strategy=entropy --set train_steps=2", 1),
]
#: Optimiser steps of every fine-tuning run of the test (the budget's floor).
SMALL_STEPS = 2


def command_line_block(text: str) -> str:
    """The first ```bash block after the "## Command line" heading."""
    section = text[text.index("\n## Command line\n") :]
    found = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert found, "README.md: no ```bash block under '## Command line'"
    return found.group(1)


def commands(block: str) -> list[list[str]]:
    """The block's commands as argv lists (``\\``-continued lines joined, comments dropped)."""
    joined = block.replace("\\\n", " ")
    return [argv for line in joined.splitlines() if (argv := shlex.split(line, comments=True))]


def test_the_block_is_runnable_as_written():
    """No placeholders a newcomer would have to fill in ([OPTIONS], DIR, ...), every line
    an activepick command, and neither the GUI nor the long benchmark."""
    argvs = commands(command_line_block(README.read_text(encoding="utf-8")))
    assert len(argvs) >= 8
    for argv in argvs:
        assert argv[0] == "activepick", argv
        assert argv[1] not in ("gui", "benchmark"), argv
        assert not any(re.search(r"[\[\]|]|^[A-Z]+$", a) for a in argv), argv
    names = [argv[1] for argv in argvs]
    assert {"simulate", "train", "predict", "evaluate", "convert", "session", "round"} <= set(names)


@pytest.mark.slow
def test_the_readme_command_line_block_runs_top_to_bottom(tmp_path, monkeypatch, capsys):
    block = command_line_block(README.read_text(encoding="utf-8"))
    for text, small, count in SMALL:
        assert block.count(text) == count, f"README block: {text!r} occurs {block.count(text)}x"
        block = block.replace(text, small)
    from activepick.detector import budget

    monkeypatch.setattr(budget, "MIN_STEPS", SMALL_STEPS)
    monkeypatch.chdir(tmp_path)  # an empty folder
    for argv in commands(block):
        rc = main(argv[1:])
        out = capsys.readouterr()
        assert rc == 0, f"{shlex.join(argv)} exited {rc}:\n{out.err[-2000:]}"
        if argv[1] == "evaluate":
            assert "F1" in out.out
    assert (tmp_path / "my_picks.star").is_file() and (tmp_path / "model.pt").is_file()
    assert json.loads((tmp_path / "model.pt.json").read_text())["training"]["steps"] == 2
    assert (tmp_path / "picks.star").is_file()
    assert (tmp_path / "my_session" / "rounds" / "round_001" / "model.pt").is_file()
    assert (tmp_path / "my_session" / "queue.csv").is_file()
    history = json.loads((tmp_path / "my_session" / "history.json").read_text())
    assert history[-1]["train_steps"] == 2
