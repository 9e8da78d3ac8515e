"""The benchmark: settings, initial sets, labels-to-95, and a tiny end-to-end CLI run with resume."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from activepick.active.benchmark import (
    BASELINE,
    PRESETS,
    BenchmarkError,
    benchmark_settings,
    initial_indices,
    labels_to_95,
)
from activepick.cli import main
from activepick.errors import MicrographError


def test_settings_layers_and_real_data_setting():
    s = benchmark_settings("thesis")
    assert (s["n_train"], s["particles"], s["iterations"], s["epochs"]) == (70, 40, 9, 10)
    assert (s["initial"], s["add"], s["tau"]) == (0.025, 0.025, 0.7)
    r = benchmark_settings("quick", setting="i15-a7.5")
    assert (r["initial"], r["add"], r["iterations"], r["tau"]) == (0.15, 0.075, 9, 0.3)
    assert benchmark_settings("quick", epochs=3, strategies=None)["epochs"] == 3
    assert benchmark_settings("quick")["epochs"] == PRESETS["quick"]["epochs"]
    with pytest.raises(BenchmarkError, match="unknown strategies"):
        benchmark_settings("quick", strategies=["psychic"])
    with pytest.raises(BenchmarkError, match="setting"):
        benchmark_settings("quick", setting="i99")


def test_initial_set_is_seeded_and_the_same_for_every_strategy():
    a = initial_indices(2800, 0.025, seed=0)
    assert len(a) == 70 and len(set(a)) == 70 and a.max() < 2800
    assert np.array_equal(a, initial_indices(2800, 0.025, seed=0))
    assert not np.array_equal(a, initial_indices(2800, 0.025, seed=1))
    assert len(initial_indices(10, 0.01, seed=0)) == 1  # at least one label


def test_labels_to_95_uses_seed_means_against_the_baseline():
    rows = [
        # baseline F1 mean 0.8 -> target 0.76
        {
            "strategy": BASELINE,
            "seed": 0,
            "partial": False,
            "round": 1,
            "labels": 100,
            "f1_topt": 0.7,
        },
        {
            "strategy": BASELINE,
            "seed": 1,
            "partial": False,
            "round": 1,
            "labels": 100,
            "f1_topt": 0.9,
        },
    ]
    for seed, f1s in ((0, [0.5, 0.74, 0.9]), (1, [0.6, 0.8, 0.8])):
        for r, f1 in enumerate(f1s, start=1):
            rows.append(
                {
                    "strategy": "a",
                    "seed": seed,
                    "partial": False,
                    "round": r,
                    "labels": 10 * r,
                    "f1_topt": f1,
                }
            )
            rows.append(
                {
                    "strategy": "b",
                    "seed": seed,
                    "partial": False,
                    "round": r,
                    "labels": 10 * r,
                    "f1_topt": 0.3,
                }
            )
    out = labels_to_95(pd.DataFrame(rows)).set_index("strategy")
    assert out.loc["a", "target_f1"] == pytest.approx(0.76)
    # seed means of a: 0.55, 0.77, 0.85 -> reached at round 2 with 20 labels
    assert out.loc["a", "labels"] == 20 and out.loc["a", "round"] == 2 and out.loc["a", "reached"]
    assert math.isnan(out.loc["b", "labels"]) and not out.loc["b", "reached"]


@pytest.mark.slow
def test_tiny_benchmark_cli_writes_every_output_and_resumes(tmp_path, capsys):
    out = tmp_path / "bench"
    args = [
        "benchmark", "--strategies", "random,low_confidence", "--seeds", "0",
        "--micrographs", "2,1,1", "--size", "96", "--particles", "5", "--snr", "1.0",
        "--diameter", "20", "--input-size", "96", "--epochs", "1", "--iterations", "2",
        "--initial", "0.2", "--add", "0.2", "--tau", "0.3", "--out", str(out),
    ]  # fmt: skip
    assert main(args) == 0
    for name in (
        "rounds.csv", "rounds.json", "summary.json", "labels_to_95.csv", "state.json",
        "distinct_particles.csv", "distinct_particles.png", "learning_f1_topt.png",
        "learning_pr_auc.png", "learning_mean_iou.png", "split.json", "report.md",
    ):  # fmt: skip
        assert (out / name).stat().st_size > 0, name
    rounds = pd.read_csv(out / "rounds.csv")
    n = 10  # 2 micrographs x 5 particles: 2 initial labels (0.2 x 10), K = 2
    assert len(rounds) == 2 * 2 + 1
    base = rounds[rounds["strategy"] == BASELINE]
    assert list(base["labels"]) == [n]
    for strategy in ("random", "low_confidence"):
        r = rounds[rounds["strategy"] == strategy].sort_values("round")
        assert list(r["round"]) == [1, 2]
        assert r["labels"].iloc[0] == 2
        assert 2 <= r["labels"].iloc[1] <= 4  # + up to K new labels (fewer if candidates ran out)
        assert r["reviews"].iloc[1] >= r["labels"].iloc[1] - 2
        assert r[["f1_topt", "pr_auc", "t_opt", "train_s"]].notna().all().all()
    state = json.loads((out / "state.json").read_text())
    runs = state["runs"]
    for strategy in ("random", "low_confidence"):
        info = runs[f"{strategy}__s0__partial-off"]
        assert info["rounds_done"] == 2
        r2 = rounds[(rounds["strategy"] == strategy) & (rounds["round"] == 2)]
        assert len(set(info["selected"])) == len(info["selected"]) == r2["labels"].iloc[0] - 2
    matrix = pd.read_csv(out / "distinct_particles.csv", index_col=0)
    assert list(matrix.index) == ["random", "low_confidence"]
    assert matrix.loc["random", "random"] == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rows"] == 5
    # resume: nothing left to do, the same rows come back
    mtime = (out / "state.json").stat().st_mtime_ns
    assert main(args) == 0
    assert (out / "state.json").stat().st_mtime_ns == mtime
    assert len(pd.read_csv(out / "rounds.csv")) == 5
    # a run stopped after round 1 continues from labels_round1.csv
    state["rows"] = [
        r for r in state["rows"] if not (r["strategy"] == "random" and r["round"] == 2)
    ]
    state["runs"]["random__s0__partial-off"]["rounds_done"] = 1
    (out / "state.json").write_text(json.dumps(state))
    assert main(args) == 0
    rounds2 = pd.read_csv(out / "rounds.csv")
    again = rounds2[(rounds2["strategy"] == "random") & (rounds2["round"] == 2)]
    before = rounds[(rounds["strategy"] == "random") & (rounds["round"] == 2)]
    assert len(rounds2) == 5 and again["labels"].iloc[0] == before["labels"].iloc[0]
    # another protocol in the same folder is refused with a message naming the file
    capsys.readouterr()
    assert main([*args[:-2], "--epochs", "2", "--out", str(out)]) == 2
    assert "state.json" in capsys.readouterr().err


def test_real_data_is_split_by_micrograph_with_its_cryoppp_truth(tmp_path):
    import mrcfile

    from activepick.active.benchmark import prepare_data

    mics, truth = tmp_path / "mics", tmp_path / "truth"
    mics.mkdir()
    truth.mkdir()
    for i in range(10):
        with mrcfile.new(mics / f"mic_{i:02d}.mrc") as mrc:
            mrc.set_data(np.zeros((64, 80), np.float32))
        # micrograph i has i + 1 particles, so every split's truth can be counted
        rows = "\n".join(f"{10 + 5 * j},{20},{224}" for j in range(i + 1))
        (truth / f"mic_{i:02d}.csv").write_text(
            "X-Coordinate,Y-Coordinate,Diameter\n" + rows + "\n"
        )
    settings = benchmark_settings(
        "quick", data=mics, truth=truth, diameter=16.0, setting="i5-a8.75", split_seed=3
    )
    assert (settings["initial"], settings["add"], settings["tau"]) == (0.05, 0.0875, 0.3)
    data = prepare_data(settings, tmp_path / "out")
    split = data.split
    assert len(split["val"]) == len(split["test"]) == 2 and len(split["train"]) == 6
    assert sorted(split["train"] + split["val"] + split["test"]) == [
        f"mic_{i:02d}" for i in range(10)
    ]
    for names, table in ((split["train"], data.train_truth), (split["test"], data.test_truth)):
        assert set(table["micrograph"]) == set(names)
        assert len(table) == sum(int(n[-2:]) + 1 for n in names)
    assert set(data.train_truth["diameter"]) == {16.0}  # --diameter overrides the file's
    assert prepare_data(settings, tmp_path / "out2").split == split  # seeded
    other = prepare_data({**settings, "split_seed": 4}, tmp_path / "out3").split
    assert other != split
    with pytest.raises(MicrographError, match="no micrographs"):
        prepare_data({**settings, "data": str(truth)}, tmp_path / "out4")
    alien = tmp_path / "alien"
    alien.mkdir()
    (alien / "other_00.csv").write_text("X-Coordinate,Y-Coordinate,Diameter\n10,20,224\n")
    with pytest.raises(BenchmarkError, match="no ground-truth pick matches"):
        prepare_data({**settings, "truth": str(alien)}, tmp_path / "out5")
