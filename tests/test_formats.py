"""Coordinate formats: hand-written files, round trips, empty files, bad input, flips, names."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import starfile

from activepick.errors import CoordinateError
from activepick.io.formats import FORMATS, guess_format, read_coordinates, write_coordinates
from activepick.io.picks import make_picks

DATA = Path(__file__).parent / "data" / "formats"
#: Non-square micrographs (H, W): x / y swaps show up as out-of-bounds or wrong values.
SHAPES = {"mic_a": (300, 500), "mic_b": (300, 500), "mic_c": (300, 500)}


def centres(df):
    return df[["x", "y"]].to_numpy().tolist()


def sample_picks():
    return make_picks(
        ["mic_a", "mic_a", "mic_b"],
        [10.25, 480.5, 70.125],
        [5.5, 290.0, 20.75],
        [64.0, 64.0, 32.0],
        confidence=[0.9, 0.25, 0.5],
    )


# --- hand-written files against hand-computed centres -------------------------------------


def test_box_centre_is_lower_left_corner_plus_half_the_box():
    df = read_coordinates(DATA / "mic_a.box")
    assert list(df["micrograph"]) == ["mic_a", "mic_a"]
    assert centres(df) == [[42.0, 52.0], [116.5, 23.0]]
    assert list(df["diameter"]) == [64.0, 32.0]
    assert df["confidence"].isna().all()
    assert set(df["status"]) == {"imported"}


def test_cbox_as_cryolo_writes_it_with_na():
    df = read_coordinates(DATA / "mic_a.cbox")
    assert centres(df) == [[1110.0, 2110.0], [100.5, 60.25]]
    assert list(df["diameter"]) == [220.0, 100.0]
    assert list(df["confidence"]) == [0.87, 0.125]


def test_relion31_particle_star_joins_optics_groups():
    df = read_coordinates(DATA / "particles_31.star")
    assert list(df["micrograph"]) == ["mic_a", "mic_a", "mic_b"]
    assert centres(df) == [[1210.5, 874.0], [300.0, 150.25], [64.0, 3000.0]]
    # group 1: 100 px box at 1 A/px; group 2: 64 px box at 2 A/px on a 1 A/px micrograph
    assert list(df["diameter"]) == [100.0, 100.0, 128.0]
    conf = df["confidence"].to_numpy()
    assert conf[0] == 0.75 and np.isnan(conf[1]) and conf[2] == 0.1  # -999 -> NaN


def test_relion5_index_reads_both_referenced_pick_files():
    df = read_coordinates(DATA / "relion5" / "AutoPick" / "job006" / "autopick.star", diameter=150)
    assert list(df["micrograph"]) == ["mic_a", "mic_a", "mic_b"]
    assert centres(df) == [[512.0, 100.0], [700.5, 1023.0], [20.0, 30.0]]
    assert list(df["diameter"]) == [150.0] * 3
    assert df["confidence"].iloc[:2].tolist() == [0.9, 0.4] and np.isnan(df["confidence"].iloc[2])


def test_relion_per_micrograph_file_strips_autopick_suffix():
    path = DATA / "relion5" / "AutoPick" / "job006" / "Movies" / "mic_b_autopick.star"
    df = read_coordinates(path, diameter=10)
    assert list(df["micrograph"]) == ["mic_b"]
    df = read_coordinates(path, diameter=10, micrograph="other")
    assert list(df["micrograph"]) == ["other"]


def test_topaz_scores_are_logits_and_names_stay_text():
    df = read_coordinates(DATA / "picks_topaz.txt", diameter=80)
    assert list(df["micrograph"]) == ["mic_a", "mic_a", "007"]
    assert centres(df) == [[100.0, 200.0], [300.0, 50.0], [12.0, 34.0]]
    np.testing.assert_allclose(
        df["confidence"], [0.5, 1 / (1 + np.exp(-2.5)), 1 / (1 + np.exp(1.0))], rtol=1e-12
    )


def test_cryoppp_folder_reads_one_micrograph_per_csv():
    df = read_coordinates(DATA / "cryoppp", "cryoppp")
    assert list(df["micrograph"]) == ["mic_c", "mic_c"]
    assert centres(df) == [[1500.0, 2200.0], [3710.0, 980.0]]
    assert list(df["diameter"]) == [224.0, 224.0]
    assert guess_format(DATA / "cryoppp" / "mic_c.csv") == "cryoppp"


def test_our_csv_keeps_status_round_and_time():
    df = read_coordinates(DATA / "pick_table.csv")
    assert list(df["status"]) == ["accepted", "added"]
    assert list(df["round"]) == [2, 3]
    assert df["time"].iloc[0] == "2026-01-01T00:00:00+00:00"
    assert df["confidence"].iloc[0] == 0.75 and np.isnan(df["confidence"].iloc[1])
    assert guess_format(DATA / "pick_table.csv") == "csv"


def write_cs(path, names, shapes, xfrac, yfrac):
    dtype = [
        ("uid", "<u8"),
        ("location/micrograph_path", "S64"),
        ("location/micrograph_shape", "<u4", (2,)),
        ("location/center_x_frac", "<f4"),
        ("location/center_y_frac", "<f4"),
    ]
    arr = np.zeros(len(names), dtype=dtype)
    arr["location/micrograph_path"] = [n.encode() for n in names]
    arr["location/micrograph_shape"] = shapes
    arr["location/center_x_frac"] = xfrac
    arr["location/center_y_frac"] = yfrac
    with open(path, "wb") as fh:  # np.save to a name would append .npy
        np.save(fh, arr)


def test_cryosparc_cs_fractions_scale_by_width_and_height(tmp_path):
    path = tmp_path / "picked.cs"
    names = ["J1/imported/012345678901234567890_mic_a.mrc", "S1/mics/mic_b.mrc"]
    write_cs(path, names, [(300, 500), (300, 500)], [0.5, 0.25], [0.25, 0.5])
    df = read_coordinates(path, diameter=40)
    assert list(df["micrograph"]) == ["mic_a", "mic_b"]  # cryoSPARC uid prefix removed
    assert centres(df) == [[250.0, 75.0], [125.0, 150.0]]  # x = frac * W, y = frac * H


# --- empty files are zero picks ----------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("empty.box", None),
        ("empty.cbox", None),
        ("empty.star", None),
        ("empty_topaz.txt", None),
        ("cryoppp/mic_d.csv", "cryoppp"),
        ("empty_pick_table.csv", None),
    ],
)
def test_empty_file_is_zero_picks(name, fmt):
    df = read_coordinates(DATA / name, fmt)
    assert len(df) == 0
    assert list(df.columns)[:3] == ["micrograph", "x", "y"]


def test_empty_cs_is_zero_picks(tmp_path):
    write_cs(tmp_path / "e.cs", [], np.zeros((0, 2)), [], [])
    assert len(read_coordinates(tmp_path / "e.cs")) == 0


def test_zero_byte_files_are_zero_picks(tmp_path):
    for ext in (".star", ".cbox", ".txt", ".csv"):
        (tmp_path / f"e{ext}").write_text("")
        assert len(read_coordinates(tmp_path / f"e{ext}")) == 0


# --- round trips ---------------------------------------------------------------------------

ROUND_TRIPS = [
    ("star", "out.star", True),
    ("relion", "relion_out", True),
    ("cbox", "cbox_out", True),
    ("box", "box_out", False),
    ("cs", "out.cs", False),
    ("topaz", "out.txt", True),
    ("cryoppp", "cryoppp_out", False),
    ("csv", "out.csv", True),
]


@pytest.mark.parametrize(("fmt", "name", "carries_confidence"), ROUND_TRIPS)
def test_round_trip_gives_the_same_centres(tmp_path, fmt, name, carries_confidence):
    picks = sample_picks()
    files = write_coordinates(picks, tmp_path / name, fmt, shapes=SHAPES)
    assert all(f.exists() for f in files)
    needs_diameter = fmt in ("star", "relion", "cs", "topaz")
    back = read_coordinates(
        tmp_path / name,
        fmt if fmt in ("relion", "cryoppp") else None,
        diameter=64.0 if needs_diameter else None,
        shapes=SHAPES,
    )
    back = back.sort_values(["micrograph", "x"]).reset_index(drop=True)
    tol = 1e-3 if fmt == "cs" else 1e-6  # .cs stores float32 fractions
    np.testing.assert_allclose(back[["x", "y"]], picks[["x", "y"]], atol=tol)
    assert list(back["micrograph"]) == ["mic_a", "mic_a", "mic_b"]
    if not needs_diameter:
        np.testing.assert_allclose(back["diameter"], picks["diameter"])
    if carries_confidence:
        np.testing.assert_allclose(back["confidence"], picks["confidence"], atol=1e-6)
    else:
        assert back["confidence"].isna().all()


def test_missing_confidence_survives_star_round_trip(tmp_path):
    picks = make_picks(["mic_a", "mic_a"], [1.0, 2.0], [3.0, 4.0], 10, confidence=[0.3, np.nan])
    write_coordinates(picks, tmp_path / "p.star")
    table = starfile.read(tmp_path / "p.star")
    assert table["rlnAutopickFigureOfMerit"].tolist() == [0.3, -999.0]
    back = read_coordinates(tmp_path / "p.star", diameter=10)
    assert back["confidence"].iloc[0] == 0.3 and np.isnan(back["confidence"].iloc[1])


def test_star_output_has_exact_relion_blocks_and_columns(tmp_path):
    picks = sample_picks()
    write_coordinates(
        picks, tmp_path / "p.star", prefix="MotionCorr/job003/Movies/", pixel_size=1.34
    )
    blocks = starfile.read(tmp_path / "p.star", always_dict=True)
    assert list(blocks) == ["optics", "particles"]
    optics = blocks["optics"]
    assert optics["rlnMicrographPixelSize"].iloc[0] == 1.34
    assert optics["rlnVoltage"].iloc[0] == 300.0
    assert optics["rlnSphericalAberration"].iloc[0] == 2.7
    assert optics["rlnAmplitudeContrast"].iloc[0] == 0.1
    particles = blocks["particles"]
    assert list(particles.columns) == [
        "rlnMicrographName",
        "rlnCoordinateX",
        "rlnCoordinateY",
        "rlnAutopickFigureOfMerit",
        "rlnOpticsGroup",
    ]
    assert particles["rlnMicrographName"].iloc[0] == "MotionCorr/job003/Movies/mic_a.mrc"
    # reading it back gives the user's names again
    assert list(read_coordinates(tmp_path / "p.star", diameter=64)["micrograph"]) == [
        "mic_a",
        "mic_a",
        "mic_b",
    ]


def test_relion_folder_writes_pick_files_and_an_index(tmp_path):
    picks = sample_picks()
    out = tmp_path / "picks"
    files = write_coordinates(
        picks, out, "relion", prefix="MotionCorr/job003/Movies/", file_suffix="_autopick"
    )
    assert sorted(f.name for f in files) == [
        "autopick.star",
        "mic_a_autopick.star",
        "mic_b_autopick.star",
    ]
    index = starfile.read(out / "autopick.star", always_dict=True)
    assert list(index) == ["coordinate_files"]
    assert index["coordinate_files"]["rlnMicrographName"].tolist() == [
        "MotionCorr/job003/Movies/mic_a.mrc",
        "MotionCorr/job003/Movies/mic_b.mrc",
    ]
    assert index["coordinate_files"]["rlnMicrographCoordinates"].tolist() == [
        "picks/mic_a_autopick.star",
        "picks/mic_b_autopick.star",
    ]
    pick_file = starfile.read(out / "mic_a_autopick.star")
    assert list(pick_file.columns) == [
        "rlnCoordinateX",
        "rlnCoordinateY",
        "rlnAutopickFigureOfMerit",
    ]
    # a folder holding an index reads the index only (no double counting)
    assert len(read_coordinates(out, diameter=64)) == 3


def test_cbox_output_has_cryolo_block_and_columns(tmp_path):
    write_coordinates(sample_picks(), tmp_path / "c", "cbox")
    blocks = starfile.read(tmp_path / "c" / "mic_b.cbox", always_dict=True)
    assert list(blocks["cryolo"].columns) == [
        "CoordinateX", "CoordinateY", "CoordinateZ", "Width", "Height", "Depth",
        "EstWidth", "EstHeight", "Confidence", "NumBoxes", "Angle",
    ]  # fmt: skip
    row = blocks["cryolo"].iloc[0]
    assert (row["CoordinateX"], row["CoordinateY"], row["Width"]) == (54.125, 4.75, 32.0)
    assert "<NA>" in (tmp_path / "c" / "mic_b.cbox").read_text()


def test_box_text_is_lower_left_corner(tmp_path):
    write_coordinates(sample_picks().iloc[2:], tmp_path / "b.box")
    assert (tmp_path / "b.box").read_text() == "54.125\t4.75\t32\t32\n"


def test_per_micrograph_formats_write_empty_files_for_micrographs_without_picks(tmp_path):
    files = write_coordinates(sample_picks(), tmp_path / "b", "box", shapes=SHAPES)
    assert sorted(f.name for f in files) == ["mic_a.box", "mic_b.box", "mic_c.box"]
    assert (tmp_path / "b" / "mic_c.box").read_text() == ""


@pytest.mark.parametrize(
    ("name", "fmt"), [("one.box", None), ("one.cbox", None), ("one.csv", "cryoppp")]
)
def test_several_micrographs_into_one_per_micrograph_file_is_an_error(tmp_path, name, fmt):
    with pytest.raises(
        CoordinateError, match=f"{name}: 2 micrographs cannot go into one .*give a folder"
    ):
        write_coordinates(sample_picks(), tmp_path / name, fmt)
    assert not (tmp_path / name).exists()


def test_cs_output_needs_shapes(tmp_path):
    with pytest.raises(CoordinateError, match="shapes"):
        write_coordinates(sample_picks(), tmp_path / "p.cs")


# --- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["particles_31.star", "picks_topaz.txt"])
def test_formats_without_diameter_ask_for_it(tmp_path, name):
    path = DATA / name
    if name == "particles_31.star":  # without the optics box size there is no diameter
        table = starfile.read(path)["particles"][
            ["rlnMicrographName", "rlnCoordinateX", "rlnCoordinateY"]
        ]
        path = tmp_path / "mics.star"
        starfile.write(table, path)
    with pytest.raises(CoordinateError, match="--diameter"):
        read_coordinates(path)


def test_bad_values_raise_naming_the_file_or_are_skipped_and_reported():
    with pytest.raises(CoordinateError, match=r"bad_values\.csv.*x.*y|bad_values\.csv.*y"):
        read_coordinates(DATA / "bad_values.csv")
    df = read_coordinates(DATA / "bad_values.csv", on_error="skip")
    assert centres(df) == [[5.0, 6.0]]
    assert len(df.attrs["skipped"]) == 2 and all("bad_values.csv" in s for s in df.attrs["skipped"])


def test_missing_columns_are_errors(tmp_path):
    with pytest.raises(CoordinateError, match=r"three_columns\.box.*4 columns"):
        read_coordinates(DATA / "three_columns.box")
    (tmp_path / "t.txt").write_text("image_name\tx_coord\nmic_a\t3\n")
    with pytest.raises(CoordinateError, match=r"t\.txt.*y_coord"):
        read_coordinates(tmp_path / "t.txt", diameter=10)


def test_non_numeric_topaz_score_is_an_error(tmp_path):
    (tmp_path / "t.txt").write_text("image_name\tx_coord\ty_coord\tscore\nmic_a\t3\t4\thigh\n")
    with pytest.raises(CoordinateError, match="score"):
        read_coordinates(tmp_path / "t.txt", diameter=10)


def test_bounds_and_unknown_micrographs_with_shapes():
    shapes = {"mic_a": (60, 120)}  # W=120, H=60: (116.5, 23) inside, (42, 52) inside
    assert len(read_coordinates(DATA / "mic_a.box", shapes=shapes)) == 2
    small = {"mic_a": (40, 120)}  # H=40: y = 52 is outside
    with pytest.raises(CoordinateError, match=r"mic_a\.box.*outside"):
        read_coordinates(DATA / "mic_a.box", shapes=small)
    df = read_coordinates(DATA / "mic_a.box", shapes=small, on_error="skip")
    assert centres(df) == [[116.5, 23.0]] and "outside" in df.attrs["skipped"][0]
    with pytest.raises(CoordinateError, match="unknown micrograph 'mic_a'"):
        read_coordinates(DATA / "mic_a.box", shapes={"mic_z": (500, 500)})


def test_unknown_extension_and_missing_file(tmp_path):
    (tmp_path / "p.xyz").write_text("1 2\n")
    with pytest.raises(CoordinateError, match=r"p\.xyz"):
        read_coordinates(tmp_path / "p.xyz")
    with pytest.raises(CoordinateError, match="no such file"):
        read_coordinates(tmp_path / "missing.box")
    with pytest.raises(CoordinateError, match="unknown coordinate format"):
        read_coordinates(DATA / "mic_a.box", "nope")


def test_malformed_star_is_a_coordinate_error(tmp_path):
    (tmp_path / "bad.star").write_text(
        "data_\nloop_\n_rlnCoordinateX #1\n_rlnCoordinateY #2\n1.0\n"
    )
    with pytest.raises(CoordinateError, match=r"bad\.star"):
        read_coordinates(tmp_path / "bad.star", diameter=10)


# --- y flip on a non-square micrograph ----------------------------------------------------


def test_flip_y_uses_height_on_non_square_micrograph(tmp_path):
    shapes = {"mic_a": (60, 120)}  # H = 60, W = 120
    df = read_coordinates(DATA / "mic_a.box", shapes=shapes, flip_y=True)
    # y -> H - 1 - y: 52 -> 7, 23 -> 36; x unchanged
    assert centres(df) == [[42.0, 7.0], [116.5, 36.0]]
    write_coordinates(df, tmp_path / "f.box", shapes=shapes, flip_y=True)
    assert centres(read_coordinates(tmp_path / "f.box")) == [[42.0, 52.0], [116.5, 23.0]]
    with pytest.raises(CoordinateError, match="shapes"):
        read_coordinates(DATA / "mic_a.box", flip_y=True)


def test_formats_registry_lists_every_format():
    assert set(FORMATS) == {"star", "relion", "cbox", "box", "cs", "topaz", "cryoppp", "csv"}
    assert guess_format(DATA / "relion5" / "AutoPick" / "job006") == "star"
    assert isinstance(read_coordinates(DATA / "mic_a.box"), pd.DataFrame)
