"""The benchmark: settings, initial sets, labels-to-95, and a tiny end-to-end CLI run with resume."""

import json
import math
import re

import numpy as np
import pandas as pd
import pytest

from activepick.active.benchmark import (
    BASELINE,
    GENERAL,
    PRESETS,
    BenchmarkError,
    benchmark_settings,
    curve_area,
    initial_indices,
    labels_to_95,
    paired_tests,
    prepare_data,
    run_statistics,
    wilcoxon_p,
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


def test_curve_area_and_wilcoxon_by_hand():
    # trapezoid over [0, 20]: 0.5 * 10 * 1 + 10 * 1 = 15, mean 0.75; cut at 15: 10 / 15
    assert curve_area([0, 10, 20], [0, 1, 1], 20) == pytest.approx(0.75)
    assert curve_area([0, 10, 20], [0, 1, 1], 15) == pytest.approx(10 / 15)
    assert curve_area([5], [0.4], 5) == pytest.approx(0.4)
    assert math.isnan(curve_area([5, 10], [0.4, 0.5], 5 - 1))
    # six paired seeds all in favour: exact two-sided p = 2 / 2**6
    assert wilcoxon_p([1, 2, 3, 4, 5, 6]) == pytest.approx(2 / 64)
    assert wilcoxon_p([0.0, 0.0]) == 1.0
    assert math.isnan(wilcoxon_p([]))


def test_run_statistics_pairs_ranges_and_targets_per_seed():
    rows = []
    # seed 0: random reviews 0, 10, 20 with PR-AUC 0.2, 0.4, 0.6; b reaches 0.6 at 10 reviews
    # and stops at 16 reviews, so both areas span [0, 16]
    for strategy, reviews, pr in (
        ("random", [0, 10, 20], [0.2, 0.4, 0.6]),
        ("b", [0, 10, 16], [0.2, 0.6, 0.95]),
    ):
        for r, (n, p) in enumerate(zip(reviews, pr, strict=True), start=1):
            rows.append(
                {"strategy": strategy, "seed": 0, "partial": False, "round": r,
                 "labels": 5 * r, "reviews": n, "pr_auc": p, "f1_topt": p}
            )  # fmt: skip
    stats = run_statistics(pd.DataFrame(rows)).set_index("strategy")
    # random on [0, 16]: 0.5*10*(0.2+0.4) + 0.5*6*(0.4+0.52) = 3 + 2.76 = 5.76 -> 0.36
    assert stats.loc["random", "area_pr_auc_reviews"] == pytest.approx(0.36)
    # b on [0, 16]: 0.5*10*(0.2+0.6) + 0.5*6*(0.6+0.95) = 4 + 4.65 -> 8.65 / 16
    assert stats.loc["b", "area_pr_auc_reviews"] == pytest.approx(8.65 / 16)
    assert stats.loc["b", "reviews_to_ref"] == 10 and stats.loc["random", "reviews_to_ref"] == 20
    assert stats.loc["b", "labels_to_ref"] == 10
    assert stats.loc["b", "reviews_to_f1"] == 16 and math.isnan(
        stats.loc["random", "reviews_to_f1"]
    )
    tests = paired_tests(stats.reset_index())
    assert set(tests["seeds"]) == {1} and len(tests) == 4


class Killed(Exception):
    """Stands for a kill between a review's saved labels and its saved counts."""


TINY_HITL = [
    "benchmark", "--preset", "hitl", "--strategies", "random,low_confidence", "--seeds", "0,1",
    "--micrographs", "3,1,1", "--size", "96", "--particles", "3", "--input-size", "96",
    "--epochs", "1", "--train-steps", "4", "--iterations", "2", "--review-k", "4",
    "--initial", "0.25", "--tau", "0.3", "--decoys", "1",
]  # fmt: skip


@pytest.mark.slow
def test_tiny_hitl_cli_pairs_seeds_counts_reviews_and_resumes_after_a_kill(
    tmp_path, capsys, monkeypatch
):
    from activepick.active.engine import ActiveLearner
    from activepick.session import Session

    out = tmp_path / "hitl"
    args = [*TINY_HITL, "--out", str(out)]
    original = ActiveLearner.review_with

    def killed(self, oracle, **kwargs):
        original(self, oracle, **kwargs)  # the labels are saved ...
        raise Killed  # ... the decision counts are not

    monkeypatch.setattr(ActiveLearner, "review_with", killed)
    with pytest.raises(Killed):
        main(args)
    first = out / "runs" / "random__s0__partial-on"
    cols = ["pick_id", "micrograph", "x", "y", "status"]
    lost = Session.open(first).load_labels()
    lost = lost[lost["round"] == 1][cols].reset_index(drop=True)
    assert len(lost) > 0  # the review whose counts were never saved
    seen: dict = {}

    def spy(self, oracle, **kwargs):
        dec = original(self, oracle, **kwargs)
        seen.setdefault((self.strategy, self.seed), []).append(dec)
        return dec

    monkeypatch.setattr(ActiveLearner, "review_with", spy)
    assert main(args) == 0
    rounds = pd.read_csv(out / "rounds.csv")
    # a baseline and the 0-label general model per seed + strategies x seeds x rounds
    assert len(rounds) == 2 + 2 + 2 * 2 * 2
    assert (rounds["strategy"] == GENERAL).sum() == 2
    truth = pd.read_csv(out / "data" / "ground_truth.csv")
    base = rounds[rounds["strategy"] == BASELINE]
    assert list(base["reviews"]) == [len(truth[truth["micrograph"].isin(
        json.loads((out / "split.json").read_text())["train"])])] * 2  # fmt: skip
    initial = {}
    for strategy in ("random", "low_confidence"):
        for seed in (0, 1):
            session = Session.open(out / "runs" / f"{strategy}__s{seed}__partial-on")
            assert session.settings["detector"]["seed"] == seed
            labels = session.load_labels()
            init = labels[labels["source"] == "initial"][["micrograph", "x", "y"]]
            initial[strategy, seed] = sorted(map(tuple, init.to_numpy().tolist()))
            # the reviews counted are the oracle's decisions, each applied once
            decisions = pd.concat(seen[strategy, seed])
            r2 = rounds[(rounds["strategy"] == strategy) & (rounds["seed"] == seed)]
            assert list(r2["reviews"]) == [0, len(decisions)]
            assert 1 <= (decisions["action"] != "add").sum() <= 4  # review_k queries (+ adds)
            made = labels[labels["round"] == 1]
            for action, status in (
                ("accept", "accepted"),
                ("move", "moved"),
                ("reject", "rejected"),
                ("add", "added"),
            ):
                assert (made["status"] == status).sum() == (decisions["action"] == action).sum()
            positives = decisions["action"].isin(("accept", "move", "add")).sum()
            assert r2["labels"].iloc[1] == r2["labels"].iloc[0] + positives
    # the interrupted review was undone and the same batch reviewed again, once
    again = Session.open(first).load_labels()
    again = again[again["round"] == 1][cols].reset_index(drop=True)
    # (a particle the oracle added gets a fresh pick id: only decided predictions keep theirs)
    pd.testing.assert_frame_equal(again.drop(columns="pick_id"), lost.drop(columns="pick_id"))
    decided = lost["status"] != "added"
    assert again.loc[decided, "pick_id"].tolist() == lost.loc[decided, "pick_id"].tolist()
    for seed in (0, 1):  # paired: every strategy starts from the same labels at a seed
        assert initial["random", seed] == initial["low_confidence", seed]
        assert len(initial["random", seed]) == 2  # 0.25 x 9 pool particles
    report = (out / "report.md").read_text()
    assert re.search(r"low_confidence .*p = \d\.\d{3} over 2 paired seeds", report)
    assert "Wilcoxon signed-rank" in report
    tests = pd.read_csv(out / "paired_tests.csv")
    assert set(tests["area"]) == {"area_pr_auc_reviews", "area_f1_topt_reviews",
                                  "area_pr_auc_labels", "area_f1_topt_labels"}  # fmt: skip
    for name in ("learning_pr_auc_reviews.png", "learning_f1_topt.png", "runs.csv"):
        assert (out / name).stat().st_size > 0, name
    # a rerun has nothing to do: no review, the same rows
    seen.clear()
    mtime = (out / "summary.json").stat().st_mtime_ns
    assert main(args) == 0
    assert not seen and pd.read_csv(out / "rounds.csv").equals(rounds)
    assert (out / "summary.json").stat().st_mtime_ns == mtime
    # another protocol in the same folder is refused with a message naming the file
    capsys.readouterr()
    assert main([*args[:-2], "--epochs", "2", "--out", str(out)]) == 2
    assert "benchmark.json" in capsys.readouterr().err


@pytest.mark.slow
def test_tiny_quick_cli_adds_k_labels_per_round(tmp_path):
    out = tmp_path / "bench"
    args = [
        "benchmark", "--strategies", "random", "--seeds", "0",
        "--micrographs", "2,1,1", "--size", "96", "--particles", "5", "--snr", "1.0",
        "--diameter", "20", "--input-size", "96", "--epochs", "1", "--iterations", "2",
        "--initial", "0.2", "--add", "0.2", "--tau", "0.3", "--out", str(out),
    ]  # fmt: skip
    assert main(args) == 0
    rounds = pd.read_csv(out / "rounds.csv")
    assert list(rounds[rounds["strategy"] == BASELINE]["labels"]) == [10]
    r = rounds[rounds["strategy"] == "random"].sort_values("round")
    # 2 micrographs x 5 particles: 2 initial labels (0.2 x 10), then K = 2 new labels
    # (fewer only if the candidates ran out)
    assert list(r["round"]) == [1, 2] and r["labels"].iloc[0] == 2
    assert 2 <= r["labels"].iloc[1] <= 4
    assert r["reviews"].iloc[1] >= r["labels"].iloc[1] - 2
    assert r[["f1_topt", "pr_auc", "t_opt", "train_s"]].notna().all().all()


def test_real_data_is_split_by_micrograph_with_its_cryoppp_truth(tmp_path):
    import mrcfile

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


def _labelled_folder(tmp_path, n: int, *, truth_for: int | None = None):
    import mrcfile

    mics, truth = tmp_path / f"mics{n}", tmp_path / f"truth{n}"
    mics.mkdir()
    truth.mkdir()
    for i in range(n):
        with mrcfile.new(mics / f"mic_{i:02d}.mrc") as mrc:
            mrc.set_data(np.zeros((64, 80), np.float32))
        if truth_for is None or i < truth_for:
            (truth / f"mic_{i:02d}.csv").write_text(
                "X-Coordinate,Y-Coordinate,Diameter\n30,20,224\n"
            )
    return mics, truth


@pytest.mark.parametrize(
    ("n", "truth_for", "diameter", "message"),
    [
        (10, 8, "16", r"no ground truth for 2 of 10 micrograph\(s\) in .*mics10 \(e.g. mic_08\)"),
        (6, None, "40", r"a diameter of 40 px does not fit micrographs of 64-80 px"),
        (3, None, "16", r"found 3 micrograph\(s\); need >= 4 to split"),
    ],
)
def test_data_truth_errors_are_one_line(tmp_path, capsys, n, truth_for, diameter, message):
    mics, truth = _labelled_folder(tmp_path, n, truth_for=truth_for)
    args = ["benchmark", "--preset", "hitl", "--data", str(mics), "--truth", str(truth)]
    assert main([*args, "--diameter", diameter, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and re.search(message, err), err


def test_hitl_preset_and_real_data_use_the_train_defaults(tmp_path):
    from activepick.detector import DetectorConfig
    from activepick.detector.config import auto_input_size

    h = benchmark_settings("hitl")
    assert h["budget"] == "reviews" and len(h["seeds"]) >= 6 and "random" in h["strategies"]
    assert h["n_train"] >= 32 and h["n_test"] >= 8 and len(h["diameters"]) == 2
    assert h["n_train"] * h["particles"] * h["initial"] == pytest.approx(6, abs=0.5)
    assert h["decoys_max"] > 0 and 0 < h["decoy_scale"] < 1
    mics, truth = _labelled_folder(tmp_path, 6)
    s = benchmark_settings("hitl", data=mics, truth=truth, diameter=16.0)
    d = DetectorConfig()
    assert (s["arch"], s["epochs"], s["lr"], s["input_size"]) == (d.arch, d.epochs, d.lr, None)
    assert benchmark_settings("hitl", data=mics, truth=truth, epochs=3)["epochs"] == 3
    prepare_data(s, tmp_path / "out")
    assert s["input_size"] == auto_input_size(80, 16.0) == 256  # automatic, as activepick train


@pytest.mark.slow
def test_tiny_hitl_with_cheaper_review_actions_counts_what_they_cost(tmp_path, capsys):
    from activepick.active.benchmark.run import review_cost
    from activepick.session import Session

    out = tmp_path / "cheap"
    args = [*TINY_HITL[:5], "--seeds", "0", *TINY_HITL[7:], "--review-actions", "complete,bulk"]
    assert main([*args, "--out", str(out)]) == 0
    settings = json.loads((out / "benchmark.json").read_text())
    assert settings["review_actions"] == ["complete", "bulk"]
    rounds = pd.read_csv(out / "rounds.csv")
    for strategy in ("random", "low_confidence"):
        session = Session.open(out / "runs" / f"{strategy}__s0__partial-on")
        counts = session.settings["benchmark"]["decisions"]["1"]
        labels = session.load_labels()
        made = labels[labels["round"] == 1]
        # one region action per micrograph of the batch where a pick was reviewed: its
        # neighbourhoods are label rows of status complete, made by the oracle
        queued = set(made.loc[made["strategy"] == strategy, "micrograph"])
        assert counts["complete"] == len(queued)
        regions = made[made["status"] == "complete"]
        assert set(regions["micrograph"]) == queued and set(regions["source"]) == {"oracle"}
        bulk = made[made["strategy"] == "bulk_confirm"]
        assert (bulk["status"] == "accepted").sum() == counts["confirmed"]
        r = rounds[(rounds["strategy"] == strategy) & (rounds["seed"] == 0)]
        assert list(r["reviews"]) == [0, review_cost(counts)]
        assert review_cost(counts) == sum(counts.values()) - counts["confirmed"]
    capsys.readouterr()
    assert main([*args[:-1], "colour", "--out", str(tmp_path / "bad")]) == 2
    assert "unknown review action(s) ['colour']" in capsys.readouterr().err


def test_real_data_split_file_and_tiles(tmp_path, capsys):
    import mrcfile

    mics, truth = tmp_path / "mics", tmp_path / "truth"
    mics.mkdir()
    truth.mkdir()
    for i in range(6):
        with mrcfile.new(mics / f"mic_{i}.mrc") as mrc:
            mrc.set_data(np.arange(64 * 80, dtype=np.float32).reshape(64, 80) + i)
        # particles at (10, 20) and (50, 40): tiles of 32 px hold them at (10, 20) in
        # tile y0x0 and (18, 8) in tile y32x32
        (truth / f"mic_{i}.csv").write_text(
            "X-Coordinate,Y-Coordinate,Diameter\n10,20,9\n50,40,9\n"
        )
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": [f"mic_{i}" for i in range(4)], "test": ["mic_4"]}))
    settings = benchmark_settings("hitl", data=mics, truth=truth, diameter=12.0, split=split)
    data = prepare_data(settings, tmp_path / "out")
    # no "val" in the file: a seeded 15 % of train (1 of 4) validates; mic_5 is in no split
    assert data.split["test"] == ["mic_4"] and len(data.split["val"]) == 1
    assert sorted(data.split["train"] + data.split["val"]) == [f"mic_{i}" for i in range(4)]
    tiled = prepare_data({**settings, "tile": 32}, tmp_path / "out")
    # 64 x 80 px -> 2 x 2 tiles of 32 px (the last 16 columns are left out), same split
    assert tiled.split["test"] == ["mic_4__y0x0", "mic_4__y0x32", "mic_4__y32x0", "mic_4__y32x32"]
    assert {n.split("__")[0] for n in tiled.split["val"]} == set(data.split["val"])
    t = tiled.test_truth.set_index("micrograph")[["x", "y"]]
    assert t.loc["mic_4__y0x0"].tolist() == [10.0, 20.0]
    assert t.loc["mic_4__y32x32"].tolist() == [18.0, 8.0]
    assert len(tiled.test_truth) == 2
    tile = tiled.test[3]
    assert tile.shape == (32, 32) and tile.data[0, 0] == 32 * 80 + 32 + 4
    assert (tmp_path / "out" / "data" / "tiles" / "mic_4__y32x32.mrc").is_file()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"train": ["mic_0", "nope"], "test": ["mic_4"]}))
    with pytest.raises(BenchmarkError, match=r"bad.json: 1 train micrograph\(s\) not in .*nope"):
        prepare_data({**settings, "split": str(bad)}, tmp_path / "out2")
