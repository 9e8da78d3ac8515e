"""The micrograph browser: the Qt-free table and the napari table widget."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from activepick.active.browser import BROWSER_COLUMNS, micrograph_table
from activepick.io.picks import make_picks

NAMES = ["mic_a", "mic_b", "mic_c", "mic_d"]


def _predictions() -> pd.DataFrame:
    # mic_a: 0.9, 0.5, 0.2 | mic_b: 0.45 | mic_c: none | elsewhere: 0.99 (not in the pool)
    return make_picks(
        ["mic_a", "mic_a", "mic_a", "mic_b", "other"],
        [1, 2, 3, 4, 5],
        [1, 2, 3, 4, 5],
        20.0,
        [0.9, 0.5, 0.2, 0.45, 0.99],
        "predicted",
    )


def _labels() -> pd.DataFrame:
    return make_picks(
        ["mic_a", "mic_a", "mic_a", "mic_b", "mic_c", "mic_c"],
        [1, 2, 3, 4, 5, 6],
        [1, 2, 3, 4, 5, 6],
        20.0,
        np.nan,
        ["accepted", "moved", "rejected", "added", "rejected", "imported"],
    )


def test_counts_by_hand():
    table = micrograph_table(
        NAMES,
        predictions=_predictions(),
        labels=_labels(),
        t_opt=0.45,
        complete={"mic_d"},
        reviewed={"mic_b"},
    )
    assert tuple(table.columns) == BROWSER_COLUMNS
    assert table["micrograph"].tolist() == NAMES
    assert table["index"].tolist() == [0, 1, 2, 3]
    assert table["picks"].tolist() == [2, 1, 0, 0]  # >= 0.45: 0.9, 0.5 | 0.45
    assert table["labels"].tolist() == [2, 1, 1, 0]  # accepted+moved | added | imported
    assert table["rejections"].tolist() == [1, 0, 1, 0]
    assert table["reviewed"].tolist() == [True, True, True, True]
    assert table["complete"].tolist() == [False, False, False, True]


def test_threshold_none_counts_every_prediction_and_empty_tables():
    table = micrograph_table(NAMES, predictions=_predictions(), t_opt=None)
    assert table["picks"].tolist() == [3, 1, 0, 0]
    assert table["labels"].tolist() == [0, 0, 0, 0]
    assert table["reviewed"].tolist() == [False] * 4
    empty = micrograph_table(NAMES, predictions=_predictions().iloc[:0], labels=None, t_opt=0.5)
    assert empty["picks"].sum() == 0 and len(empty) == 4
    assert micrograph_table([]).empty


def test_duplicate_names_refused():
    with pytest.raises(ValueError, match="unique"):
        micrograph_table(["a", "a"])
