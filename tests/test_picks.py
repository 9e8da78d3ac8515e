"""The pick table: construction, validation, bounds checks."""

import numpy as np
import pandas as pd
import pytest

from activepick.constants import PICK_COLUMNS
from activepick.errors import CoordinateError
from activepick.io.picks import (
    check_bounds,
    empty_picks,
    make_picks,
    picks_by_micrograph,
    positive_picks,
    validate_picks,
)


def test_empty_picks_has_columns_and_no_rows():
    df = empty_picks()
    assert tuple(df.columns) == PICK_COLUMNS
    assert len(df) == 0
    assert df["x"].dtype == np.float64


def test_make_picks_broadcasts_scalars():
    df = make_picks("mic_01", [10.0, 20.0], [5.0, 6.0], 64, confidence=[0.2, 0.9])
    assert list(df["micrograph"]) == ["mic_01", "mic_01"]
    assert list(df["diameter"]) == [64.0, 64.0]
    assert list(df["status"]) == ["imported", "imported"]
    assert list(df["round"]) == [0, 0]
    assert df.loc[1, "confidence"] == pytest.approx(0.9)


def test_validate_fills_optional_columns():
    df = validate_picks(pd.DataFrame({"micrograph": ["a"], "x": [1], "y": [2], "diameter": [3]}))
    assert tuple(df.columns) == PICK_COLUMNS
    assert np.isnan(df.loc[0, "confidence"])
    assert df.loc[0, "status"] == "imported"


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({"micrograph": ["a"], "x": [1.0], "diameter": [3.0]}), "missing column"),
        (pd.DataFrame({"micrograph": ["a"], "x": [np.nan], "y": [1.0], "diameter": [3.0]}), "NaN"),
        (
            pd.DataFrame({"micrograph": ["a"], "x": ["abc"], "y": [1.0], "diameter": [3.0]}),
            "not numeric",
        ),
        (
            pd.DataFrame({"micrograph": ["a"], "x": [1.0], "y": [1.0], "diameter": [0.0]}),
            "positive",
        ),
        (
            pd.DataFrame(
                {
                    "micrograph": ["a"],
                    "x": [1.0],
                    "y": [1.0],
                    "diameter": [3.0],
                    "status": ["maybe"],
                }
            ),
            "unknown status",
        ),
        (
            pd.DataFrame(
                {
                    "micrograph": ["a"],
                    "x": [1.0],
                    "y": [1.0],
                    "diameter": [3.0],
                    "confidence": [1.5],
                }
            ),
            "[0, 1]",
        ),
    ],
)
def test_validate_rejects_bad_tables_naming_the_source(frame, message):
    with pytest.raises(CoordinateError) as info:
        validate_picks(frame, source="picks.csv")
    assert "picks.csv" in str(info.value)
    assert message in str(info.value)


def test_check_bounds_non_square_micrograph():
    # 300 px wide (x), 200 px high (y): (250, 150) is inside, (150, 250) is not.
    df = make_picks("m", [250.0, 150.0], [150.0, 250.0], 20)
    with pytest.raises(
        CoordinateError, match="1 pick\\(s\\) outside micrograph 'm' \\(300 x 200 px\\)"
    ):
        check_bounds(df, {"m": (200, 300)}, source="f.star")
    kept = check_bounds(df, {"m": (200, 300)}, on_error="drop")
    assert kept[["x", "y"]].to_numpy().tolist() == [[250.0, 150.0]]
    assert kept.attrs["skipped"] == ["pick table: 1 pick(s) outside micrograph 'm' (300 x 200 px)"]


def test_check_bounds_unknown_micrograph():
    df = make_picks(["m", "other"], [1.0, 1.0], [1.0, 1.0], 20)
    with pytest.raises(CoordinateError, match="unknown micrograph 'other'"):
        check_bounds(df, {"m": (10, 10)})
    assert len(check_bounds(df, {"m": (10, 10)}, on_error="drop")) == 1


def test_positive_picks_and_split():
    df = make_picks(
        ["a", "a", "b", "b"],
        [1, 2, 3, 4],
        [1, 2, 3, 4],
        10,
        status=["accepted", "rejected", "added", "predicted"],
    )
    assert list(positive_picks(df)["x"]) == [1.0, 3.0]
    parts = picks_by_micrograph(df)
    assert list(parts) == ["a", "b"]
    assert list(parts["b"]["status"]) == ["added", "predicted"]
