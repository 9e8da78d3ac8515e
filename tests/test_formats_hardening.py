"""Bad coordinate input that used to get through (issue 12, "Bad input that gets through").

Each test writes the malformed file by hand and checks the one-line
CoordinateError (or the corrected behaviour); every one of them failed before.
"""

from pathlib import Path

import numpy as np
import pytest

from activepick.errors import CoordinateError
from activepick.io.formats import read_coordinates, write_coordinates
from activepick.io.picks import make_picks, validate_picks


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def one_line(exc_info) -> str:
    msg = str(exc_info.value)
    assert "\n" not in msg
    return msg


# --- 1. path traversal in output names -------------------------------------------------


@pytest.mark.parametrize("name", ["/elsewhere/x", "../../x", "a\\b", "", "  "])
@pytest.mark.parametrize("fmt", ["box", "cbox", "relion", "cryoppp"])
def test_per_micrograph_names_cannot_leave_the_folder(tmp_path, fmt, name):
    picks = make_picks([name], [10.0], [10.0], 8.0)
    out = tmp_path / "out" / "folder"
    with pytest.raises(CoordinateError) as info:
        write_coordinates(picks, out, fmt)
    assert repr(name) in one_line(info)
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written == []


def test_file_suffix_cannot_leave_the_folder(tmp_path):
    picks = make_picks(["mic"], [10.0], [10.0], 8.0)
    with pytest.raises(CoordinateError, match="file-suffix"):
        write_coordinates(picks, tmp_path / "f", "box", file_suffix="/../../X")
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


def test_topaz_name_with_a_slash_is_refused_only_where_it_becomes_a_file(tmp_path):
    src = write(tmp_path / "p.txt", "image_name\tx_coord\ty_coord\n../../evil\t5\t6\n")
    picks = read_coordinates(src, diameter=10)
    assert picks["micrograph"].tolist() == ["../../evil"]  # kept exactly as read
    write_coordinates(picks, tmp_path / "t.star")  # a table format: the name is just text
    with pytest.raises(CoordinateError, match="evil"):
        write_coordinates(picks, tmp_path / "boxes", "box")
    assert not (tmp_path.parent / "evil.box").exists()


# --- 3. ragged rows ------------------------------------------------------------------


def test_topaz_row_with_an_extra_field_is_refused_naming_the_line(tmp_path):
    # pandas read this row as micrograph "2" (the extra field shifted the columns)
    src = write(
        tmp_path / "p.txt",
        "image_name\tx_coord\ty_coord\tscore\nmic\t1\t2\t0.5\nmic\t3\t4\t0.5\t9\n",
    )
    with pytest.raises(CoordinateError) as info:
        read_coordinates(src, diameter=10)
    msg = one_line(info)
    assert "line 3" in msg and "5 field(s)" in msg and "header has 4" in msg


def test_csv_and_cryoppp_ragged_rows_are_refused(tmp_path):
    csv = write(tmp_path / "p.csv", "micrograph,x,y,diameter\nmic,1,2,10\nmic,1,2,10,extra\n")
    with pytest.raises(CoordinateError, match="line 3"):
        read_coordinates(csv)
    ppp = write(tmp_path / "m.csv", "X-Coordinate,Y-Coordinate,Diameter\n1,2,10\n3,4\n")
    with pytest.raises(CoordinateError, match="line 3 has 2 field"):
        read_coordinates(ppp, "cryoppp")


def test_box_rows_of_different_lengths_are_refused(tmp_path):
    src = write(tmp_path / "m.box", "10 20 64 64\n30 40 64\n")
    with pytest.raises(CoordinateError, match="line 2 has 3 field"):
        read_coordinates(src)


# --- 4. / 5. STAR and CBOX structure ----------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        b"\x89\xfe\x00\x12random bytes\n",  # binary
        "caf\xe9 au lait\n".encode("latin-1"),  # not UTF-8
        b"10 20 64 64\n30 40 64 64\n",  # BOX content named .star
        b"# only a comment\nloop_\n_rlnCoordinateX\n",
    ],
)
@pytest.mark.parametrize("ext", [".star", ".cbox"])
def test_star_and_cbox_without_a_data_block_are_errors(tmp_path, content, ext):
    src = write(tmp_path / f"mic{ext}", content)
    with pytest.raises(CoordinateError) as info:
        read_coordinates(src, diameter=10)
    assert str(src) in one_line(info)


def test_empty_star_and_cbox_files_are_still_zero_picks(tmp_path):
    for ext in (".star", ".cbox"):
        assert len(read_coordinates(write(tmp_path / f"e{ext}", ""), diameter=10)) == 0


def test_every_coordinate_block_of_a_star_file_is_read(tmp_path):
    src = write(
        tmp_path / "mic_autopick.star",
        "data_a\nloop_\n_rlnCoordinateX #1\n_rlnCoordinateY #2\n10 20\n30 40\n\n"
        "data_b\nloop_\n_rlnCoordinateX #1\n_rlnCoordinateY #2\n50 60\n",
    )
    picks = read_coordinates(src, diameter=10)
    assert picks[["x", "y"]].to_numpy().tolist() == [[10, 20], [30, 40], [50, 60]]
    assert set(picks["micrograph"]) == {"mic"}


# --- 7. accepted garbage -----------------------------------------------------------------


def test_negative_centres_are_refused_without_shapes(tmp_path):
    cases = {
        "m.box": "-40 10 20 20\n",  # centre x = -30
        "p.txt": "image_name\tx_coord\ty_coord\nmic\t-5\t10\n",
        "p.csv": "micrograph,x,y,diameter\nmic,5,-1,10\n",
        "m_autopick.star": "data_\nloop_\n_rlnCoordinateX\n_rlnCoordinateY\n-3 4\n",
    }
    for name, text in cases.items():
        with pytest.raises(CoordinateError, match="negative") as info:
            read_coordinates(write(tmp_path / name, text), diameter=10)
        one_line(info)
    ok = read_coordinates(write(tmp_path / "z.box", "-10 -10 20 20\n"))  # centre (0, 0)
    assert ok[["x", "y"]].to_numpy().tolist() == [[0, 0]]


def test_negative_centres_are_dropped_with_skip(tmp_path):
    src = write(tmp_path / "m.box", "-40 10 20 20\n10 10 20 20\n")
    picks = read_coordinates(src, on_error="skip")
    assert picks[["x", "y"]].to_numpy().tolist() == [[20, 20]]
    assert any("negative" in s for s in picks.attrs["skipped"])


def test_empty_micrograph_names_are_refused(tmp_path):
    src = write(tmp_path / "p.txt", "image_name\tx_coord\ty_coord\nmic\t1\t2\n\t3\t4\n")
    with pytest.raises(CoordinateError, match="empty micrograph name"):
        read_coordinates(src, diameter=10)
    csv = write(tmp_path / "p.csv", 'micrograph,x,y,diameter\n" ",1,2,10\n')
    with pytest.raises(CoordinateError, match="empty micrograph name"):
        read_coordinates(csv)


def test_a_round_that_is_not_an_integer_is_refused(tmp_path):
    src = write(
        tmp_path / "p.csv",
        "micrograph,x,y,diameter,confidence,status,round,time\nmic,1,2,10,,accepted,three,\n",
    )
    with pytest.raises(CoordinateError, match="round") as info:
        read_coordinates(src)
    assert "three" in one_line(info)
    with pytest.raises(CoordinateError, match="round"):
        validate_picks(make_picks(["m"], [1.0], [2.0], 3.0).assign(round=[1.5]))
    blank = write(
        tmp_path / "b.csv",
        "micrograph,x,y,diameter,confidence,status,round,time\nmic,1,2,10,,accepted,,\n",
    )
    assert read_coordinates(blank)["round"].tolist() == [0]


def test_a_duplicate_column_is_refused(tmp_path):
    src = write(tmp_path / "p.csv", "micrograph,x,y,x,diameter\nmic,1,2,99,10\n")
    with pytest.raises(CoordinateError, match="names column.s. x twice"):
        read_coordinates(src)


# --- 8. truncated text files -------------------------------------------------------------


@pytest.mark.parametrize(
    "name, text",
    [
        ("m.box", "10 20 64 64\n30 4"),  # y cut from 45 to 4 at a token boundary
        ("p.txt", "image_name\tx_coord\ty_coord\nmic\t1\t2"),
        ("p.csv", "micrograph,x,y,diameter\nmic,1,2,1"),
        ("m.cbox", "data_cryolo\nloop_\n_CoordinateX\n_CoordinateY\n_Width\n_Height\n1 2 3 3"),
        ("m_autopick.star", "data_\nloop_\n_rlnCoordinateX\n_rlnCoordinateY\n10 2"),
    ],
)
def test_a_file_without_its_final_line_break_is_refused_as_truncated(tmp_path, name, text):
    with pytest.raises(CoordinateError, match="truncated") as info:
        read_coordinates(write(tmp_path / name, text), diameter=10)
    one_line(info)


# --- 12. output failures and stale files -------------------------------------------------


def test_star_writer_refuses_a_name_with_a_tab(tmp_path):
    picks = make_picks(["a\tb"], [1.0], [2.0], 10.0)
    with pytest.raises(CoordinateError, match="whitespace") as info:
        write_coordinates(picks, tmp_path / "p.star")
    one_line(info)
    with pytest.raises(CoordinateError, match="whitespace"):
        write_coordinates(picks, tmp_path / "p.txt")
    assert not (tmp_path / "p.star").exists()


def test_writing_under_a_regular_file_is_one_line(tmp_path):
    (tmp_path / "f").write_text("x")
    picks = make_picks(["m"], [1.0], [2.0], 10.0)
    with pytest.raises(CoordinateError, match="is a file") as info:
        write_coordinates(picks, tmp_path / "f" / "p.star")
    one_line(info)


@pytest.mark.parametrize("fmt, ext", [("box", ".box"), ("cbox", ".cbox"), ("relion", ".star")])
def test_a_folder_export_leaves_no_stale_files(tmp_path, fmt, ext):
    out = tmp_path / "picks"
    two = make_picks(["mic_a", "mic_b"], [10.0, 20.0], [10.0, 20.0], 8.0)
    write_coordinates(two, out, fmt)
    (out / "notes.txt").write_text("mine")
    one = make_picks(["mic_a"], [15.0], [15.0], 8.0)
    written = write_coordinates(one, out, fmt)
    back = read_coordinates(out, fmt, diameter=8)
    assert back[["x", "y"]].to_numpy().tolist() == [[15.0, 15.0]]  # read back 2 before
    assert not (out / f"mic_b{ext}").exists()
    assert (out / "notes.txt").read_text() == "mine"
    assert set(written) <= set(out.iterdir())
    np.testing.assert_equal(len(back), 1)


# --- 6. cryoSPARC .cs ----------------------------------------------------------------------

CS_DTYPE = [
    ("location/micrograph_path", "S20"),
    ("location/micrograph_shape", "<u4", (2,)),
    ("location/center_x_frac", "<f4"),
    ("location/center_y_frac", "<f4"),
]


def cs_file(path: Path, rows) -> Path:
    arr = np.array(rows, dtype=CS_DTYPE)
    with open(path, "wb") as fh:
        np.save(fh, arr)
    return path


def test_cs_reads_a_good_row(tmp_path):
    src = cs_file(tmp_path / "p.cs", [(b"J1/mic_a.mrc", (100, 200), 0.5, 0.25)])
    picks = read_coordinates(src, diameter=10)
    assert picks[["micrograph", "x", "y"]].to_numpy().tolist() == [["mic_a", 100.0, 25.0]]


@pytest.mark.parametrize(
    "row, message",
    [
        ((b"J1/caf\xe9.mrc", (100, 200), 0.5, 0.5), "not UTF-8"),
        ((b"J1/mic.mrc", (0, 0), 0.5, 0.5), "shape < 1 px"),
        ((b"J1/mic.mrc", (100, 200), 1.5, 0.5), r"outside \[0, 1\]"),
        ((b"J1/mic.mrc", (100, 200), 0.5, -0.1), r"outside \[0, 1\]"),
    ],
)
def test_cs_defects_are_one_line_errors(tmp_path, row, message):
    src = cs_file(tmp_path / "p.cs", [row])
    with pytest.raises(CoordinateError, match=message) as info:
        read_coordinates(src, diameter=10)
    one_line(info)


def test_cs_zero_dimensional_array_is_refused(tmp_path):
    arr = np.array((b"J1/mic.mrc", (100, 200), 0.5, 0.5), dtype=CS_DTYPE)  # shape ()
    src = tmp_path / "p.cs"
    with open(src, "wb") as fh:
        np.save(fh, arr)
    with pytest.raises(CoordinateError, match="one row per particle"):
        read_coordinates(src, diameter=10)


def test_a_folder_format_onto_a_regular_file_is_one_line(tmp_path):
    target = tmp_path / "picks"
    target.write_text("a file")
    picks = make_picks(["m"], [1.0], [2.0], 10.0)
    with pytest.raises(CoordinateError, match="is a file") as info:
        write_coordinates(picks, target, "box")
    one_line(info)
    assert target.read_text() == "a file"


# ------------------------------------------------------------------ issue 21, item 3


@pytest.mark.parametrize(
    "row, col, value",
    [("a,1e300,10,24", "x", "1e+300"), ("a,10,-2e12,24", "y", "-2e+12"),
     ("a,10,10,1e300", "diameter", "1e+300")],
)  # fmt: skip
def test_a_coordinate_beyond_any_micrograph_is_refused_by_the_reader(tmp_path, row, col, value):
    """``convert`` kept x = 1e300 while ``evaluate`` refused it: the bound is the readers'."""
    path = write(tmp_path / "p.csv", f"micrograph,x,y,diameter\na,5,5,24\n{row}\n")
    with pytest.raises(CoordinateError) as info:
        read_coordinates(path)
    assert one_line(info) == (
        f"{path}: 1 row(s) with {col} beyond any micrograph (first: row 1, {col} = {value}; "
        f"|{col}| <= 1e+09 px)"
    )
    kept = read_coordinates(path, on_error="skip")
    assert kept[["x", "y"]].to_numpy().tolist() == [[5.0, 5.0]]
    assert "beyond any micrograph" in kept.attrs["skipped"][0]


def test_convert_refuses_a_huge_coordinate_in_one_line(tmp_path, capsys):
    from activepick.cli import main

    path = write(tmp_path / "p.csv", "micrograph,x,y,diameter\na,1e300,10,24\n")
    assert main(["convert", str(path), str(tmp_path / "out.star")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("activepick convert: error:") and "beyond any micrograph" in err
    assert not (tmp_path / "out.star").exists()
