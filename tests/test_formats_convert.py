"""``activepick convert``: format conversion from the command line."""

from pathlib import Path

import numpy as np
import starfile

from activepick.cli import main
from activepick.io.formats import read_coordinates
from activepick.io.micrograph import write_micrograph

DATA = Path(__file__).parent / "data" / "formats"


def test_convert_box_to_star_with_prefix_and_suffix(tmp_path, capsys):
    out = tmp_path / "picks.star"
    rc = main(
        ["convert", str(DATA / "mic_a.box"), str(out), "--prefix", "Movies/", "--suffix", ".tiff"]
    )
    assert rc == 0
    table = starfile.read(out)
    assert table["rlnMicrographName"].tolist() == ["Movies/mic_a.tiff"] * 2
    assert table["rlnCoordinateX"].tolist() == [42.0, 116.5]
    assert "read 2 pick(s) on 1 micrograph(s)" in capsys.readouterr().out


def test_convert_star_needs_diameter_and_reports_the_error(tmp_path, capsys):
    rc = main(["convert", str(DATA / "particles_31.star"), str(tmp_path / "o.txt")])
    assert rc == 0  # particle STAR: the box size comes from the optics block
    rc = main(["convert", str(DATA / "picks_topaz.txt"), str(tmp_path / "o.star")])
    assert rc == 2
    assert "--diameter" in capsys.readouterr().err


def test_convert_to_cs_with_micrographs_and_skip_errors(tmp_path, capsys):
    mics = tmp_path / "mics"
    write_micrograph(mics / "mic_a.mrc", np.zeros((40, 120), np.float32))  # H=40: y=52 is outside
    out = tmp_path / "p.cs"
    assert main(["convert", str(DATA / "mic_a.box"), str(out), "--micrographs", str(mics)]) == 2
    assert "outside" in capsys.readouterr().err
    rc = main(
        ["convert", str(DATA / "mic_a.box"), str(out), "--micrographs", str(mics), "--skip-errors"]
    )
    assert rc == 0
    assert "skipped" in capsys.readouterr().err
    back = read_coordinates(out, diameter=64)
    np.testing.assert_allclose(back[["x", "y"]].to_numpy(), [[116.5, 23.0]], atol=1e-3)


def test_convert_folder_to_relion_index(tmp_path):
    out = tmp_path / "relion"
    assert (
        main(
            [
                "convert",
                str(DATA / "cryoppp"),
                str(out),
                "--from",
                "cryoppp",
                "--file-suffix",
                "_autopick",
            ]
        )
        == 0
    )
    assert (out / "autopick.star").exists() and (out / "mic_c_autopick.star").exists()
    back = read_coordinates(out / "autopick.star", diameter=224)
    assert back[["x", "y"]].to_numpy().tolist() == [[1500.0, 2200.0], [3710.0, 980.0]]
