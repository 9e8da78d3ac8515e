"""The ``activepick`` entry point: cheap to import, one-line errors, no silent overwrites."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from activepick.cli import build_parser, main

DATA = Path(__file__).parent / "data" / "formats"
HEAVY = ("torch", "napari", "pandas", "qtpy", "magicgui", "scipy", "importlib.metadata")


def test_building_the_parser_imports_no_heavy_package():
    """``activepick --help`` must not pay for torch / napari / pandas (issue 12: 3.3 s)."""
    code = (
        "import json, sys\n"
        "import activepick.cli as cli\n"
        "cli.build_parser()\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out) == []


def test_every_subcommand_is_registered():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) == {
        "simulate",
        "train",
        "predict",
        "evaluate",
        "benchmark",
        "convert",
        "round",
        "gui",
    }


def test_coordinate_format_names_match_the_registry():
    from activepick.constants import COORDINATE_FORMATS
    from activepick.io.formats import FORMATS

    assert tuple(FORMATS) == COORDINATE_FORMATS


def test_convert_refuses_an_existing_output_without_force(tmp_path, capsys):
    out = tmp_path / "picks.star"
    out.write_text("keep me\n")
    assert main(["convert", str(DATA / "mic_a.box"), str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{out} already exists" in err and "--force" in err
    assert len(err.strip().splitlines()) == 1
    assert out.read_text() == "keep me\n"
    assert main(["convert", str(DATA / "mic_a.box"), str(out), "--force"]) == 0
    assert "_rlnCoordinateX" in out.read_text()


def test_convert_into_a_folder_with_files_needs_force(tmp_path, capsys):
    out = tmp_path / "boxes"
    out.mkdir()
    (out / "old.box").write_text("1 2 3 3\n")
    assert main(["convert", str(DATA / "mic_a.box"), str(out), "--to", "box"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["convert", str(DATA / "mic_a.box"), str(out), "--to", "box", "--force"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["mic_a.box"]  # no stale old.box


def test_evaluate_curve_refuses_an_existing_file(tmp_path, capsys):
    curve = tmp_path / "curve.csv"
    curve.write_text("old\n")
    args = ["evaluate", "--pred", str(DATA / "mic_a.box"), "--truth", str(DATA / "mic_a.box")]
    assert main([*args, "--curve", str(curve)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert curve.read_text() == "old\n"
    assert main([*args, "--curve", str(curve), "--force"]) == 0
    assert curve.read_text().startswith("threshold,")


def test_train_refuses_an_existing_checkpoint_before_training(tmp_path, capsys):
    model = tmp_path / "model.pt"
    model.write_bytes(b"old")
    rc = main(
        [
            "train",
            "--micrographs",
            str(tmp_path / "no_such_folder"),
            "--coords",
            str(DATA / "mic_a.box"),
            "--diameter",
            "64",
            "--out",
            str(model),
        ]
    )
    assert rc == 2
    assert "already exists" in capsys.readouterr().err
    assert model.read_bytes() == b"old"


@pytest.mark.parametrize(
    "argv",
    [
        ["convert", "IN", "{tmp}/file.txt/sub/out.star"],  # output under a regular file
        ["convert", "IN", "{tmp}/file.txt/sub", "--to", "box"],  # a folder under a file
        ["evaluate", "--pred", "IN", "--truth", "IN", "--curve", "{tmp}/file.txt/c.csv"],
    ],
)
def test_output_under_a_regular_file_is_one_line(tmp_path, capsys, argv):
    (tmp_path / "file.txt").write_text("x")
    argv = [a.replace("IN", str(DATA / "mic_a.box")).replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "file.txt" in err


def test_version_is_read_only_when_asked(capsys):
    import activepick

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out == f"activepick {activepick.__version__}\n"
