"""Streaming batch prediction (activepick.batch) and ``activepick predict`` on it:
parts, resume, unreadable micrographs, full disk, Dask workers and batch-job scripts."""

from __future__ import annotations

import errno
import os
import platform
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from activepick import batch
from activepick.cli import main
from activepick.detector import Detector, DetectorConfig, build_network, save_checkpoint
from activepick.io.formats import read_coordinates
from activepick.io.micrograph import write_micrograph


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Four 96 x 128 micrographs with bright discs, and an untrained tiny light model
    (fixed seed, 128 px input): enough picks at threshold 0 to compare runs."""
    root = tmp_path_factory.mktemp("batch")
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:96, 0:128]
    for i in range(4):
        image = rng.normal(0, 0.3, (96, 128)).astype(np.float32)
        for x, y in rng.uniform(12, 84, (4, 2)):
            image[(xx - x) ** 2 + (yy - y) ** 2 < 64] += 1
        write_micrograph(root / "mics" / f"mic_{i}.mrc", image)
    torch.manual_seed(0)
    cfg = DetectorConfig(arch="light", width=0.125, input_size=128, diameter=16.0, device="cpu")
    save_checkpoint(Detector(build_network("light", width=0.125), cfg), root / "model.pt")
    return root


def _predict(data, out, *extra):
    argv = ["predict", "--model", str(data / "model.pt"), "--micrographs", str(data / "mics")]
    return main(argv + ["--out", str(out), "--threshold", "0.0", "--device", "cpu", *extra])


def _sorted(picks: pd.DataFrame) -> pd.DataFrame:
    """Rows in a fixed order, without the wall-clock ``time`` column."""
    return picks.drop(columns=["time"]).sort_values(["micrograph", "x", "y"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "picks.csv"
    assert _predict(data, out) == 0
    return _sorted(read_coordinates(out))


def test_in_process_run_writes_combined_output_and_removes_parts(data, reference, tmp_path):
    assert len(reference) > 0
    assert set(reference["micrograph"]) == {f"mic_{i}" for i in range(4)}
    assert not batch.parts_folder(tmp_path / "picks.csv").exists()
    # an existing output needs --force
    out = tmp_path / "picks.csv"
    out.write_text("keep me")
    assert _predict(data, out) == 2
    assert out.read_text() == "keep me"
    assert _predict(data, out, "--force") == 0
    pd.testing.assert_frame_equal(_sorted(read_coordinates(out)), reference)


def test_resume_after_a_kill_finishes_the_rest_without_duplicates(
    data, reference, tmp_path, monkeypatch, capsys
):
    out = tmp_path / "picks.csv"
    real = batch.predict_group
    calls = []

    def killed_after_two(detector, paths, **kw):
        if len(calls) == 1:
            raise KeyboardInterrupt  # the kill, between two groups
        calls.append([p.name for p in paths])
        return real(detector, paths, **kw)

    monkeypatch.setattr(batch, "predict_group", killed_after_two)
    assert _predict(data, out, "--batch-size", "2") == 130
    assert not out.exists()
    assert batch.done_names(batch.parts_folder(out)) == {"mic_0", "mic_1"}

    capsys.readouterr()
    assert _predict(data, out, "--batch-size", "2") == 2  # neither --resume nor --force
    assert "from an earlier run; pass --resume" in capsys.readouterr().err
    assert batch.done_names(batch.parts_folder(out)) == {"mic_0", "mic_1"}  # nothing lost

    calls.clear()
    monkeypatch.setattr(
        batch, "predict_group", lambda d, p, **kw: calls.append(p) or real(d, p, **kw)
    )
    assert _predict(data, out, "--batch-size", "2", "--resume") == 0
    assert [[p.name for p in c] for c in calls] == [["mic_2.mrc", "mic_3.mrc"]]  # only the rest
    assert "2 done earlier" in capsys.readouterr().out
    picks = _sorted(read_coordinates(out))
    pd.testing.assert_frame_equal(picks, reference)  # no duplicates, nothing lost
    # resuming with other settings is refused with one line
    monkeypatch.setattr(batch, "predict_group", real)
    assert _predict(data, tmp_path / "b.csv", "--batch-size", "2") == 0
    parts = batch.parts_folder(tmp_path / "c.csv")
    batch.prepare_parts(parts, {"threshold": 0.5}, resume=False)
    assert _predict(data, tmp_path / "c.csv", "--resume") == 2
    assert "cannot resume" in capsys.readouterr().err


def test_unreadable_micrograph_mid_batch_is_reported_skipped_and_listed(data, tmp_path, capsys):
    mics = tmp_path / "mics"
    mics.mkdir()
    for i in range(4):
        (mics / f"mic_{i}.mrc").symlink_to(data / "mics" / f"mic_{i}.mrc")
    (mics / "mic_1b.mrc").write_bytes(b"\x00" * 100)  # truncated, sorts in the middle
    out = tmp_path / "picks.star"
    argv = ["predict", "--model", str(data / "model.pt"), "--micrographs", str(mics)]
    assert main(argv + ["--out", str(out), "--threshold", "0.0", "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    assert "skipped:" in captured.err and "mic_1b.mrc" in captured.err
    assert "1 failed to read: mic_1b" in captured.out
    # no terminal: a progress line for the log, with the rate and the time left
    assert "activepick predict: 5/5 micrographs; " in captured.err
    assert "micrograph/s, 0.0 min left" in captured.err
    assert set(read_coordinates(out, diameter=16.0)["micrograph"]) == {f"mic_{i}" for i in range(4)}


def test_full_disk_gives_one_line_and_keeps_finished_parts(data, tmp_path, monkeypatch, capsys):
    out = tmp_path / "picks.csv"
    real = batch.write_part
    written = []

    def full_after_one(parts, name, picks):
        if written:
            raise batch._write_failed(
                batch.part_path(parts, name), OSError(errno.ENOSPC, "No space left on device")
            )
        written.append(name)
        return real(parts, name, picks)

    monkeypatch.setattr(batch, "write_part", full_after_one)
    assert _predict(data, out, "--batch-size", "1") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "mic_1.csv: cannot write (disk full)" in err[0]
    assert "--resume" in err[0]
    assert batch.done_names(batch.parts_folder(out)) == {"mic_0"}
    assert not out.exists()


def test_write_part_turns_enospc_from_the_file_system_into_one_error(tmp_path, monkeypatch):
    import builtins

    def no_space(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    picks = pd.DataFrame({"micrograph": ["m"], "x": [1.0], "y": [2.0], "diameter": [8.0]})
    monkeypatch.setattr(builtins, "open", no_space)
    with pytest.raises(batch.ActivePickError, match=r"m\.csv: cannot write \(disk full\)"):
        batch.write_part(tmp_path, "m", picks)
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind


def test_workers_2_give_the_same_picks_as_in_process(data, reference, tmp_path):
    pytest.importorskip("distributed")
    out = tmp_path / "picks.csv"
    assert _predict(data, out, "--workers", "2", "--batch-size", "4") == 0
    picks = _sorted(read_coordinates(out))
    assert len(picks) == len(reference)
    pd.testing.assert_frame_equal(picks, reference, rtol=1e-5)


def test_dask_workers_load_the_model_once_each(data, reference, tmp_path, monkeypatch):
    pytest.importorskip("distributed")
    from activepick.cluster import local_client
    from activepick.io.micrograph import list_micrographs
    from activepick.progress import drive

    paths = list_micrographs(data / "mics")
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    client = local_client(2)
    try:
        summary = drive(
            batch.iter_predict_batch(
                paths,
                tmp_path / "parts",
                model=data / "model.pt",
                client=client,
                threshold=0.0,
                group_size=1,
            )  # fmt: skip
        )
        loads = client.run(lambda: batch._WORKER_LOADS[0])
        tuning = client.run(lambda: dict(batch._WORKER_TUNING))
        environ = client.run(
            lambda: [os.environ.get(k) for k in ("MALLOC_TRIM_THRESHOLD_", "OMP_NUM_THREADS")]
        )
        # a task failing on a worker (here: the model vanished) -> one line, parts kept
        gen = batch.iter_predict_batch(
            paths, tmp_path / "parts2", model=tmp_path / "gone.pt", client=client, group_size=2
        )
        with pytest.raises(batch.ActivePickError, match=r"task on mic_\d\.mrc, mic_\d\.mrc failed"):
            drive(gen)
    finally:
        client.close()
        client.cluster.close()
    assert summary["names"] == [f"mic_{i}" for i in range(4)] and summary["predicted"] == 4
    assert sorted(loads.values()) in ([1, 1], [0, 1])  # 4 tasks, at most one load per worker
    # a worker that predicted runs one torch thread and glibc's usual malloc thresholds:
    # no Dask MALLOC_TRIM_THRESHOLD_ in its environment, mallopt applied (Linux / glibc)
    glibc = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    worked = [t for t in tuning.values() if t]
    assert worked and all(
        t == {"threads": 1, "interop_threads": 1, "mallopt": glibc} for t in worked
    )
    assert all(v == [None, "1"] for v in environ.values())
    picks = _sorted(batch.combine_parts(tmp_path / "parts", summary["names"]))
    pd.testing.assert_frame_equal(picks, reference, rtol=1e-5)


def test_scheduler_joins_a_running_cluster(data, reference, tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        out = tmp_path / "picks.csv"
        assert _predict(data, out, "--scheduler", cluster.scheduler_address) == 0
        assert len(cluster.workers) == 1  # the command left the cluster running
    pd.testing.assert_frame_equal(_sorted(read_coordinates(out)), reference, rtol=1e-5)


def test_slurm_dry_run_prints_a_script_with_the_requested_resources(capsys):
    pytest.importorskip("dask_jobqueue")
    argv = ["predict", "--model", "m.pt", "--cluster", "slurm", "--dry-run", "--queue", "gpu"]
    argv += ["--cores", "8", "--memory", "32GB", "--walltime", "02:30:00", "--gpus", "1"]
    assert main(argv) == 0
    script = capsys.readouterr().out
    assert script.startswith("#!/usr/bin/env bash")
    for line in ("#SBATCH -p gpu", "#SBATCH --cpus-per-task=8", "#SBATCH --mem=30G"):
        assert line in script
    assert "#SBATCH -t 02:30:00" in script and "#SBATCH --gres=gpu:1" in script
    assert "--nthreads 1" in script and "--nworkers" not in script  # one worker owns the GPU


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("pbs", ["#PBS -q q", "#PBS -A acc", "#PBS -l select=1:ncpus=8:ngpus=1:mem=32GB"]),
        ("sge", ["#$ -q q", "#$ -P acc", "#$ -l gpu=1", "#$ -l h_rt=01:00:00"]),
    ],
)
def test_pbs_and_sge_dry_runs_ask_for_cores_and_gpus(kind, expected, capsys):
    pytest.importorskip("dask_jobqueue")
    argv = ["predict", "--model", "m.pt", "--cluster", kind, "--dry-run", "--queue", "q"]
    assert main(argv + ["--account", "acc", "--cores", "8", "--memory", "32GB", "--gpus", "1"]) == 0
    script = capsys.readouterr().out
    for line in expected:
        assert line in script
    assert "--nthreads 1" in script


def test_missing_extra_names_the_pip_command(data, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import raises ImportError
    assert _predict(data, tmp_path / "p.csv", "--workers", "2") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert 'pip install "napari-activepick[cluster]"' in err and "--workers" in err
    monkeypatch.setitem(sys.modules, "dask_jobqueue", None)
    assert main(["predict", "--model", "m.pt", "--cluster", "slurm", "--dry-run"]) == 2
    assert "napari-activepick[cluster]" in capsys.readouterr().err


def test_unreachable_scheduler_gives_one_clear_line(data, tmp_path, monkeypatch, capsys):
    pytest.importorskip("distributed")
    from activepick import cluster

    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT", 1.0)
    assert _predict(data, tmp_path / "p.csv", "--scheduler", "tcp://127.0.0.1:9") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in err
    assert not (tmp_path / "p.csv").exists()


# ------------------------------------------------------------------ issue 21: exit codes


def test_a_folder_where_no_micrograph_can_be_read_exits_non_zero(data, tmp_path, capsys):
    """A pipeline could not tell: a folder of one unreadable file gave a header-only STAR
    and exit 0. Now one line, exit 2, and nothing written."""
    mics = tmp_path / "mics"
    mics.mkdir()
    (mics / "x.mrc").write_bytes(bytes(1024))  # a header of zeros: an empty image
    out = tmp_path / "picks.star"
    argv = ["predict", "--model", str(data / "model.pt"), "--micrographs", str(mics)]
    assert main([*argv, "--out", str(out), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"activepick predict: error: {mics}: no micrograph could be read " + (
        "(1 skipped); nothing written"
    )
    assert any("skipped:" in line and "x.mrc" in line for line in err)
    assert not out.exists() and not batch.parts_folder(out).exists()


def test_a_name_with_whitespace_is_refused_before_predicting(data, tmp_path, capsys):
    """``rlnMicrographName`` cannot hold a space: the refusal came after prediction ran,
    and the picks were lost. Now before any work; a CSV output takes the name."""
    mics = tmp_path / "mics"
    mics.mkdir()
    (mics / "mic 0.mrc").symlink_to(data / "mics" / "mic_0.mrc")
    out = tmp_path / "picks.star"
    argv = ["predict", "--model", str(data / "model.pt"), "--micrographs", str(mics)]
    assert main([*argv, "--out", str(out), "--threshold", "0", "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"activepick predict: error: {out}: micrograph name 'mic 0' is empty or holds "
        "whitespace, which a STAR file cannot store (rename the micrograph, or write another "
        "format such as .csv)"
    )
    assert not batch.parts_folder(out).exists()  # nothing was predicted
    csv = tmp_path / "picks.csv"
    assert main([*argv, "--out", str(csv), "--threshold", "0", "--device", "cpu"]) == 0
    assert set(read_coordinates(csv)["micrograph"]) == {"mic 0"}


@pytest.mark.parametrize("loss", [float("nan"), None])
def test_predict_refuses_a_model_trained_without_a_finite_loss(data, tmp_path, capsys, loss):
    """``train --steps 0`` wrote such models (final loss NaN) and predict used them."""
    cfg = DetectorConfig(arch="light", width=0.125, input_size=128, diameter=16.0, device="cpu")
    meta = {"steps": 0, "final_loss": loss}
    model = save_checkpoint(
        Detector(build_network("light", width=0.125), cfg, meta), tmp_path / "m.pt"
    )
    argv = ["predict", "--model", str(model), "--micrographs", str(data / "mics")]
    assert main([*argv, "--out", str(tmp_path / "p.csv"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"activepick predict: error: {model}: the model's training ended without a finite loss "
        "(final loss None, 0 steps): it was never trained; train it again"
    )
    assert not (tmp_path / "p.csv").exists()


def test_an_output_of_unknown_format_is_refused_before_predicting(data, tmp_path, capsys):
    out = tmp_path / "picks.xyz"
    argv = ["predict", "--model", str(data / "model.pt"), "--micrographs", str(data / "mics")]
    assert main([*argv, "--out", str(out), "--device", "cpu"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"activepick predict: error: {out}: cannot tell the format to write from '.xyz'; "
        "give --format"
    )
    assert not batch.parts_folder(out).exists()
