"""Tests of ``activepick evaluate`` through activepick.cli.main."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from activepick.cli import main
from activepick.io.picks import make_picks


def write_case(tmp_path):
    """The hand case of tests/test_metrics.py: predictions as our CSV, truth as EMAN .box
    files (lower-left corner = centre - 20 for diameter 40)."""
    pred = make_picks(
        ["a", "a", "a", "a", "b", "a"],
        [100, 210, 315, 600, 100, 102],
        [100] * 6,
        40.0,
        confidence=[0.9, 0.8, 0.6, 0.4, 0.2, 0.95],
        status="predicted",
    )
    pred_path = tmp_path / "pred.csv"
    pred.to_csv(pred_path, index=False)
    truth_dir = tmp_path / "truth"
    truth_dir.mkdir()
    (truth_dir / "a.box").write_text("80 80 40 40\n180 80 40 40\n280 80 40 40\n380 80 40 40\n")
    (truth_dir / "c.box").write_text("30 30 40 40\n")
    return pred_path, truth_dir


def test_evaluate_json(tmp_path, capsys):
    pred, truth = write_case(tmp_path)
    assert main(["evaluate", "--pred", str(pred), "--truth", str(truth), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["t_opt"] == pytest.approx(0.61)
    assert (out["recall_topt"], out["precision_topt"], out["f1_topt"]) == pytest.approx(
        (0.4, 2 / 3, 0.5)
    )
    assert (out["recall_03"], out["precision_03"], out["f1_03"]) == pytest.approx((0.4, 0.4, 0.4))
    assert out["pr_auc"] == pytest.approx(0.2 + 0.2 * 2 / 3)
    assert out["mean_iou"] == pytest.approx((1 + 0.520956) / 2, abs=1e-6)
    assert (out["tp"], out["fp"], out["fn"]) == (2, 1, 3)
    assert (out["tp_03"], out["fp_03"], out["fn_03"]) == (2, 3, 3)
    assert (out["n_pred"], out["n_truth"]) == (6, 5)


def test_evaluate_table_threshold_iou_and_curve(tmp_path, capsys):
    pred, truth = write_case(tmp_path)
    curve = tmp_path / "out" / "curve.csv"
    argv = ["evaluate", "--pred", str(pred), "--truth", str(truth)]
    argv += ["--threshold", "0.5", "--iou", "0.3", "--curve", str(curve)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    # at t = 0.5 with TP IoU > 0.3: p5, p0, p1, p2 kept; p0, p1, p2 match: 3 / 1 / 2
    assert "threshold = 0.50" in text
    assert "3/1/2" in text
    assert "circle IoU > 0.3" in text
    table = pd.read_csv(curve)
    assert len(table) == 1001
    assert table.loc[500, "tp"] == 3


def test_evaluate_errors(tmp_path, capsys):
    pred, truth = write_case(tmp_path)
    assert main(["evaluate", "--pred", str(tmp_path / "missing.csv"), "--truth", str(truth)]) == 2
    assert "missing.csv" in capsys.readouterr().err
    other = tmp_path / "other.csv"
    make_picks("zz", [1.0], [1.0], 40.0).to_csv(other, index=False)
    assert main(["evaluate", "--pred", str(other), "--truth", str(truth)]) == 2
    err = capsys.readouterr().err
    assert "no micrograph name in common" in err and "'zz'" in err


def test_evaluate_unscored_picks(tmp_path, capsys):
    _, truth = write_case(tmp_path)
    boxes = tmp_path / "boxes"
    boxes.mkdir()
    (boxes / "a.box").write_text("80 80 40 40\n500 500 40 40\n")
    assert main(["evaluate", "--pred", str(boxes), "--truth", str(truth), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["unscored"] == 2
    assert (out["tp"], out["fp"], out["fn"]) == (1, 1, 4)
    assert np.isclose(out["precision_topt"], 0.5)
