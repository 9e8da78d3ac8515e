"""The ``activepick`` entry point: cheap to import, one-line errors, no silent overwrites."""

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
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
        "session",
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


# ------------------------------------------------------------------ issue 21: bad input


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--steps", "0"], "argument --steps: must be at least 1, not 0"),
        (["train", "--epochs", "0"], "argument --epochs: must be at least 1, not 0"),
        (["train", "--diameter", "nan"], "argument --diameter: must be a finite number"),
        (["predict", "--batch-size", "0"], "argument --batch-size: must be at least 1, not 0"),
        (["predict", "--threshold", "2"], "argument --threshold: must lie in [0, 1], not 2"),
        (["predict", "--nms-iou", "nan"], "argument --nms-iou: must be a finite number"),
        (["evaluate", "--iou", "-1"], "argument --iou: must lie in [0, 1], not -1"),
        (["evaluate", "--beta", "0"], "argument --beta: must be greater than 0, not 0"),
        (["simulate", "--particles", "-1"], "argument --particles: must be at least 0, not -1"),
        (["simulate", "--diameter", "0"], "argument --diameter: must be greater than 0, not 0"),
        (["simulate", "--n", "0"], "argument --n: must be at least 1, not 0"),
        (["convert", "--diameter", "-5"], "argument --diameter: must be greater than 0, not -5"),
    ],
)
def test_an_out_of_range_number_is_refused_in_one_line_before_any_work(argv, message, capsys):
    """``train --steps 0`` once trained for no step and wrote a NaN loss; ``predict
    --batch-size 0`` and ``simulate --particles -1`` / ``--diameter 0`` gave tracebacks;
    the others ran with a threshold of 2, an IoU of -1, 0 micrographs..."""
    required = {
        "train": ["--micrographs", "M", "--coords", "C", "--out", "o.pt", "--diameter", "64"],
        "predict": ["--model", "m.pt", "--micrographs", "M", "--out", "o.star"],
        "evaluate": ["--pred", "P", "--truth", "T"],
        "simulate": ["--out", "S"],
        "convert": ["IN", "OUT"],
    }[argv[0]]
    with pytest.raises(SystemExit) as info:
        main([argv[0], *required, *argv[1:]])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"activepick {argv[0]}: error: {message}" in err
    assert "Traceback" not in err


def test_train_names_its_own_format_flag_when_the_format_is_unknown(tmp_path, capsys):
    from activepick.io.micrograph import write_micrograph

    write_micrograph(tmp_path / "mics" / "a.mrc", np.zeros((32, 32), np.float32))
    coords = tmp_path / "picks.xyz"
    coords.write_text("a 10 10\n")
    argv = ["train", "--micrographs", str(tmp_path / "mics"), "--coords", str(coords)]
    assert main([*argv, "--diameter", "8", "--out", str(tmp_path / "m.pt")]) == 2
    err = capsys.readouterr().err
    assert "cannot tell the coordinate format" in err and "give --format (one of" in err
    assert "--from" not in err  # convert's flag, which train does not have


EMPTY_STAR = "data_\n\nloop_\n_rlnMicrographName #1\n_rlnCoordinateX #2\n_rlnCoordinateY #3\n"


@pytest.mark.parametrize("content", ["", EMPTY_STAR])
def test_train_on_an_empty_coordinate_file_says_no_picks(tmp_path, capsys, content):
    from activepick.io.micrograph import write_micrograph

    write_micrograph(tmp_path / "mics" / "a.mrc", np.zeros((32, 32), np.float32))
    coords = tmp_path / "picks.star"
    coords.write_text(content)
    argv = ["train", "--micrographs", str(tmp_path / "mics"), "--coords", str(coords)]
    assert main([*argv, "--diameter", "8", "--out", str(tmp_path / "m.pt")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"activepick train: error: {coords}: no picks in this file (empty); nothing to train on"
    )


def test_a_warning_of_the_core_is_one_activepick_line(tmp_path, capsys):
    """A NaN pixel's warning reached the user as ``batch.py:173: NonFinitePixelsWarning:
    ...`` plus a source line; the CLI prints one ``activepick COMMAND: warning:`` line."""
    from activepick.detector import Detector, DetectorConfig, build_network, save_checkpoint
    from activepick.io.micrograph import write_micrograph

    image = np.ones((64, 64), np.float32)
    image[0, :3] = np.nan
    mic = write_micrograph(tmp_path / "mics" / "a.mrc", image)
    config = DetectorConfig(arch="light", width=0.125, input_size=64, diameter=16.0)
    detector = Detector(build_network("light", width=0.125), config, {"final_loss": 0.5})
    model = save_checkpoint(detector, tmp_path / "model.pt")
    argv = ["predict", "--model", str(model), "--micrographs", str(mic.parent)]
    assert main([*argv, "--out", str(tmp_path / "p.csv"), "--device", "cpu"]) == 0
    err = capsys.readouterr().err.splitlines()
    warned = [line for line in err if "warning" in line.lower()]
    assert warned == [
        f"activepick predict: warning: {mic}: 3 NaN or infinite pixel(s) replaced by the mean "
        "of the others (1)"
    ]
    assert not [line for line in err if ".py:" in line]
    with pytest.warns(UserWarning, match="after the command"):  # the hook was the command's
        warnings.warn("after the command", UserWarning, stacklevel=1)


def test_train_on_names_that_match_no_micrograph_lists_them(tmp_path, capsys):
    """With the micrograph shapes given to the reader, picks on unknown names were dropped
    first, and the error listed no name: '(coordinate names: )'."""
    from activepick.io.micrograph import write_micrograph

    write_micrograph(tmp_path / "mics" / "a.mrc", np.zeros((32, 32), np.float32))
    coords = tmp_path / "picks.csv"
    coords.write_text("micrograph,x,y,diameter\nelsewhere,10,10,8\nother,5,5,8\n")
    argv = ["train", "--micrographs", str(tmp_path / "mics"), "--coords", str(coords)]
    assert main([*argv, "--diameter", "8", "--out", str(tmp_path / "m.pt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (
        f"activepick train: error: {coords}: no micrograph name matches a file in "
        f"{tmp_path / 'mics'} (coordinate names: elsewhere, other)"
    )
    assert f"{coords}: 2 pick(s) on 2 micrograph name(s) with no file in" in err[0]
