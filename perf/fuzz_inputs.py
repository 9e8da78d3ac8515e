"""Fuzz the command line with malformed inputs and classify what each command does.

    python perf/fuzz_inputs.py                 # the whole corpus (~10 min on 2 cores)
    python perf/fuzz_inputs.py --smoke         # a handful of cases (seconds)
    python perf/fuzz_inputs.py --only model    # cases whose name holds "model"

Builds a corpus of bad inputs in a temporary folder (truncated, zero, byte-swapped
and oversized MRC files, folders where files belong, empty and odd coordinate
files, huge coordinates, names with whitespace, bad checkpoints, broken sessions,
out-of-range arguments), runs ``python -m activepick COMMAND ...`` on each in a
subprocess with a timeout, and classifies the outcome:

- ``clean``: refused with a non-zero exit and one ``activepick ...`` / ``usage:`` line,
  or accepted (exit 0) where the input is usable (a mixed folder, NaN pixels);
- ``traceback``: a Python traceback reached the user;
- ``silent``: exit 0 on an input that must be refused;
- ``unclear``: refused, but the message lacks what the case expects (the file is a
  folder, no picks, torch's ``weights_only`` advice, ...) or is not one line;
- ``raw_warning``: a Python warning naming a source line reached the user;
- ``wrong_refusal``: a usable input was refused;
- ``hang``: the command ran past the timeout.

Prints a table (one row per class, then the cases that are not ``clean``) and writes
``perf/results/fuzz.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from _common import add_smoke_flag, machine_info, results_path, write_results

RESULTS = Path(__file__).parent / "results" / "fuzz.json"
CLASSES = ("clean", "traceback", "silent", "unclear", "raw_warning", "wrong_refusal", "hang")
#: A Python warning as ``warnings.showwarning`` prints it: ``file.py:12: SomeWarning: ...``.
_RAW_WARNING = re.compile(r"\.py:\d+: \w*Warning\b")
#: Cases of the smoke run (a check that the script works, not a fuzz).
SMOKE_CASES = ("predict-mics-zeros-1k", "convert-coords-empty.star", "predict-model-folder")
SIZE = 128  # px of the corpus's micrographs (small: each case runs in seconds)


@dataclass
class Case:
    """One command on one bad input. ``expect``: "refuse", "accept" or "any" (no
    traceback and no hang). ``says``: a regex the refusal must match (case-insensitive);
    ``never``: one it must not match."""

    name: str
    argv: list[str]
    expect: str = "refuse"
    says: str | None = None
    never: str | None = None


@dataclass
class Outcome:
    name: str
    command: str
    kind: str
    rc: int | None
    seconds: float
    stderr_tail: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- corpus files


def _mrc_bytes(data, *, big_endian_header: bool = False, mode: int = 2, nz: int = 1, **hdr):
    """An MRC file's bytes written by hand (so that every field can be wrong)."""
    import numpy as np

    data = np.asarray(data)
    ny, nx = data.shape[-2:]
    order = ">" if big_endian_header else "<"
    head = bytearray(1024)
    vals = dict(nx=nx, ny=ny, nz=nz, mode=mode, nsymbt=0)
    vals.update(hdr)
    struct.pack_into(f"{order}4i", head, 0, vals["nx"], vals["ny"], vals["nz"], vals["mode"])
    struct.pack_into(f"{order}3i", head, 28, nx, ny, nz)  # mx my mz
    struct.pack_into(f"{order}3f", head, 40, float(nx), float(ny), float(nz))  # cell
    struct.pack_into(f"{order}3i", head, 64, 1, 2, 3)  # mapc mapr maps
    struct.pack_into(f"{order}i", head, 92, vals["nsymbt"])
    head[208:212] = b"MAP "
    head[212:216] = b"\x11\x11\x00\x00" if big_endian_header else b"\x44\x44\x00\x00"
    return bytes(head) + data.tobytes()


def _write(path: Path, content: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    return path


def _good_image(seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    return rng.normal(size=(SIZE, SIZE)).astype(np.float32)


def build_fixtures(root: Path) -> dict[str, Path]:
    """The good inputs every case varies: two micrographs, their picks, a trained-looking
    model (a tiny untrained network with a training record: prediction runs, fast)."""
    import numpy as np
    import torch

    from activepick.detector import Detector, DetectorConfig, build_network, save_checkpoint
    from activepick.io.formats import write_coordinates
    from activepick.io.micrograph import write_micrograph
    from activepick.io.picks import make_picks

    mics = root / "good" / "mics"
    for i, name in enumerate(("a", "b")):
        write_micrograph(mics / f"{name}.mrc", _good_image(i), pixel_size=1.0)
    xs = np.array([30.0, 60.0, 90.0, 30.0, 60.0])
    picks = make_picks(["a", "a", "a", "b", "b"], xs, xs[::-1], 24.0, confidence=0.9)
    csv = root / "good" / "picks.csv"
    write_coordinates(picks, csv)
    star = root / "good" / "picks.star"
    write_coordinates(picks, star)
    torch.manual_seed(0)
    config = DetectorConfig(arch="light", width=0.125, input_size=128, diameter=24.0)
    net = build_network("light", width=0.125)
    model = root / "good" / "model.pt"
    save_checkpoint(Detector(net, config, {"steps": 10, "final_loss": 0.5}), model)
    return {"mics": mics, "csv": csv, "star": star, "model": model}


def micrograph_inputs(root: Path) -> dict[str, tuple[Path, str]]:
    """``{name: (folder, expect)}``: folders of micrographs, each with one flaw."""
    import numpy as np

    good = _good_image(3)
    out: dict[str, tuple[Path, str]] = {}

    def one(name: str, file: str, content: bytes | str, expect: str = "refuse") -> None:
        folder = root / "mics" / name
        _write(folder / file, content)
        out[name] = (folder, expect)

    one("zeros-1k", "x.mrc", bytes(1024))
    one("empty-0b", "x.mrc", b"")
    one("text", "x.mrc", "hello, not an MRC file\n")
    one("truncated", "x.mrc", _mrc_bytes(good)[: 1024 + good.nbytes // 2])
    one("byteswapped", "x.mrc", _mrc_bytes(good, big_endian_header=True))
    one("huge-dims", "x.mrc", _mrc_bytes(good, nx=2**30, ny=2**30))
    one("negative-dims", "x.mrc", _mrc_bytes(good, nx=-5))
    one("neg-ext-header", "x.mrc", _mrc_bytes(good, nsymbt=-1024))
    one("huge-ext-header", "x.mrc", _mrc_bytes(good, nsymbt=2**30))
    one("bad-mode", "x.mrc", _mrc_bytes(good, mode=77))
    one("complex", "x.mrc", _mrc_bytes(good.astype(np.complex64), mode=4))
    one("stack", "x.mrc", _mrc_bytes(np.stack([good] * 3), nz=3))
    one("all-nan", "x.mrc", _mrc_bytes(np.full((SIZE, SIZE), np.nan, np.float32)))
    one("all-inf", "x.mrc", _mrc_bytes(np.full((SIZE, SIZE), np.inf, np.float32)))
    some_nan = good.copy()
    some_nan[:4, :4] = np.nan
    one("some-nan", "x.mrc", _mrc_bytes(some_nan), expect="accept")
    one("constant", "x.mrc", _mrc_bytes(np.zeros((SIZE, SIZE), np.float32)), expect="any")
    one("one-pixel", "x.mrc", _mrc_bytes(np.ones((1, 1), np.float32)), expect="any")
    one("tiny-8px", "x.mrc", _mrc_bytes(np.ones((8, 8), np.float32)), expect="any")
    one("int8", "x.mrc", _mrc_bytes((good * 10).astype(np.int8), mode=0), expect="accept")
    one("garbage-png", "x.png", b"\x89PNG\r\n\x1a\n" + bytes(64))
    one("garbage-tif", "x.tif", b"II*\x00" + bytes(64))
    one("garbage-jpg", "x.jpg", b"\xff\xd8\xff" + bytes(16))
    one("whitespace-name", "a b.mrc", _mrc_bytes(good), expect="accept")
    folder = root / "mics" / "folder-named-mrc"
    (folder / "x.mrc").mkdir(parents=True)
    out["folder-named-mrc"] = (folder, "refuse")
    folder = root / "mics" / "empty-folder"
    folder.mkdir(parents=True)
    out["empty-folder"] = (folder, "refuse")
    folder = root / "mics" / "mixed"
    _write(folder / "a.mrc", _mrc_bytes(good))
    _write(folder / "z.mrc", bytes(1024))
    out["mixed"] = (folder, "accept")
    out["a-file"] = (_write(root / "mics" / "file.mrc", _mrc_bytes(good)), "refuse")
    out["missing"] = (root / "mics" / "no-such-folder", "refuse")
    return out


_STAR_HEAD = "data_\n\nloop_\n_rlnMicrographName #1\n_rlnCoordinateX #2\n_rlnCoordinateY #3\n"
_CSV_HEAD = "micrograph,x,y,diameter\n"


def coordinate_inputs(root: Path) -> dict[str, tuple[Path, str, str | None]]:
    """``{name: (file, expect, says)}``: coordinate files, each with one flaw."""
    d = root / "coords"
    out: dict[str, tuple[Path, str, str | None]] = {}

    def one(name, content, expect="refuse", says=None):
        out[name] = (_write(d / name, content), expect, says)

    one("empty.star", "", says="no picks|empty")
    one("empty.csv", "", says="no picks|empty")
    one("empty.box", "", says="no picks|empty")
    one("empty.cbox", "", says="no picks|empty")
    one("empty.txt", "", says="no picks|empty")
    one("header-only.star", _STAR_HEAD, says="no picks|empty")
    one("header-only.csv", _CSV_HEAD, says="no picks|empty")
    one("huge-1e300.csv", _CSV_HEAD + "a,1e300,10,24\n", says="beyond|outside")
    one("huge-1e12.csv", _CSV_HEAD + "a,10,1e12,24\n", says="beyond|outside")
    one("huge-diameter.csv", _CSV_HEAD + "a,10,10,1e300\n", says="beyond|diameter")
    one("nan.csv", _CSV_HEAD + "a,nan,10,24\n")
    one("inf.csv", _CSV_HEAD + "a,inf,10,24\n")
    one("text-x.csv", _CSV_HEAD + "a,ten,10,24\n")
    one("negative.csv", _CSV_HEAD + "a,-5,10,24\n")
    one("zero-diameter.csv", _CSV_HEAD + "a,10,10,0\n")
    one("confidence-5.csv", "micrograph,x,y,diameter,confidence\na,10,10,24,5\n")
    one("one-column.csv", "micrograph\na\n")
    one("no-name.csv", _CSV_HEAD + ",10,10,24\n")
    one("whitespace-name.csv", _CSV_HEAD + "a b,10,10,24\n", expect="any")
    one("binary.star", bytes(range(256)) * 4)
    one("binary.csv", bytes(range(256)) * 4)
    one("latin1.csv", _CSV_HEAD.encode() + b"\xe9\xe8,10,10,24\n")
    one("utf16.csv", (_CSV_HEAD + "a,10,10,24\n").encode("utf-16"), expect="any")
    one("three-cols.box", "10 10 24\n")
    one("garbage.cbox", "data_cryolo\nloop_\n_Nonsense #1\n1\n")
    one("garbage.cs", bytes(200))
    one("long-line.csv", _CSV_HEAD + "a," + "9" * 100_000 + ",10,24\n")
    folder = d / "folder.star"
    folder.mkdir(parents=True)
    out["folder.star"] = (folder, "refuse", None)
    out["missing.star"] = (d / "missing.star", "refuse", "no such|not found")
    return out


class _Hostile:
    """Pickled as a call of ``os.system``: what a malicious "checkpoint" holds."""

    def __reduce__(self):
        return (os.system, ("echo this checkpoint ran a command",))


def checkpoint_inputs(root: Path, model: Path) -> dict[str, tuple[Path, str | None]]:
    """``{name: (model path, says)}``: checkpoints that must be refused."""
    import torch

    d = root / "models"
    info = json.loads(model.with_name(model.name + ".json").read_text())
    out: dict[str, tuple[Path, str | None]] = {}

    def one(name, weights, sidecar, says=None):
        path = d / name / "model.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        if weights is not None:
            _write(path, weights)
        if sidecar is not None:
            side = path.with_name("model.pt.json")
            if sidecar == "FOLDER":
                side.mkdir()
            else:
                _write(side, sidecar if isinstance(sidecar, str) else json.dumps(sidecar))
        out[name] = (path, says)

    good_side = json.dumps(info)
    weights = model.read_bytes()
    one("empty-weights", b"", good_side)
    one("garbage-weights", bytes(range(256)) * 8, good_side)
    one("truncated-weights", weights[: len(weights) // 3], good_side)
    one("no-sidecar", weights, None, says="missing")
    one("garbage-sidecar", weights, "{not json")
    one("sidecar-folder", weights, "FOLDER", says="folder")
    one("sidecar-list", weights, "[1, 2]")
    one("sidecar-newer", weights, {**info, "version": 99})
    one(
        "sidecar-no-input-size", weights, {**info, "config": {**info["config"], "input_size": None}}
    )
    one("sidecar-full-arch", weights, {**info, "config": {**info["config"], "arch": "full"}})
    trained = {**info, "training": {"final_loss": float("nan"), "steps": 0}}
    one("nan-loss", weights, json.dumps(trained), says="loss")  # json writes NaN
    trained_null = {**info, "training": {"final_loss": None, "steps": 0}}
    one("null-loss", weights, trained_null, says="loss")

    hostile = d / "hostile" / "model.pt"
    hostile.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"conv.weight": _Hostile()}, hostile)  # runs a command when unpickled
    _write(hostile.with_name("model.pt.json"), good_side)
    out["hostile-pickle"] = (hostile, "posix.system|os.system|system")
    folder = d / "a-folder.pt"
    folder.mkdir(parents=True)
    _write(d / "a-folder.pt.json", good_side)
    out["folder"] = (folder, "folder")
    out["missing"] = (d / "missing.pt", "not found|no such")
    return out


def session_inputs(root: Path, mics: Path) -> dict[str, tuple[Path, str | None]]:
    """``{name: (session folder, says)}``: session folders that cannot be opened."""
    d = root / "sessions"
    out: dict[str, tuple[Path, str | None]] = {}

    def one(name, content, says=None):
        folder = d / name
        folder.mkdir(parents=True)
        if content == "FOLDER":
            (folder / "session.json").mkdir()
        elif content is not None:
            _write(folder / "session.json", content)
        out[name] = (folder, says)

    one("empty-folder", None, says="no session")
    one("garbage-json", "{oops")
    one("json-list", "[]")
    one("json-folder", "FOLDER", says="folder")
    one("newer", json.dumps({"format": "activepick-session", "version": 99}))
    mic = str(mics / "a.mrc")
    one(
        "missing-mics",
        json.dumps(
            {
                "format": "activepick-session",
                "version": 1,
                "settings": {},
                "micrographs": [{"name": "q", "path": mic + ".gone"}],
            }
        ),
    )
    out["a-file"] = (_write(d / "file-session", "x"), None)
    out["missing"] = (d / "no-such-session", "no session|not found|no such")
    return out


# ----------------------------------------------------------------------------- the cases


def build_cases(root: Path) -> list[Case]:
    fx = build_fixtures(root)
    model, mics, csv = str(fx["model"]), str(fx["mics"]), str(fx["csv"])
    out = root / "out"
    cases: list[Case] = []

    def o(name: str, ext: str) -> str:
        return str(out / name / f"out{ext}")

    for name, (folder, expect) in micrograph_inputs(root).items():
        says = None
        if name in ("zeros-1k", "empty-0b", "text", "truncated", "all-nan", "garbage-png"):
            says = "no micrograph could be read"
        if name == "byteswapped":
            says = "byte order|byte-swapped|endian"
        if name == "whitespace-name":
            cases.append(
                Case(f"predict-mics-{name}-star",
                     ["predict", "--model", model, "--micrographs", str(folder),
                      "--out", o(f"p-{name}-star", ".star")],
                     # refused before the work, not after predicting
                     "refuse", "whitespace", never=r"1/1 micrographs"))  # fmt: skip
        exp = "refuse" if name == "byteswapped" else expect
        cases.append(
            Case(f"predict-mics-{name}",
                 ["predict", "--model", model, "--micrographs", str(folder),
                  "--out", o(f"p-{name}", ".csv")], exp, says))  # fmt: skip
        cases.append(
            Case(f"train-mics-{name}",
                 ["train", "--micrographs", str(folder), "--coords", csv, "--diameter", "24",
                  "--steps", "1", "--out", o(f"t-{name}", ".pt")],
                 # the good picks are on a, b: other folders have no matching name
                 "any" if expect != "refuse" else "refuse"))  # fmt: skip
    for name, (path, expect, says) in coordinate_inputs(root).items():
        # --diameter only for formats that store none (it would replace a stored one)
        size = [] if path.suffix in (".csv", ".box", ".cbox") else ["--diameter", "24"]
        # an empty file converts to an empty one, and scores as nothing picked
        empty = name.startswith(("empty", "header-only"))
        cases.append(
            Case(f"convert-coords-{name}", ["convert", str(path), o(f"c-{name}", ".csv"), *size],
                 "any" if empty else expect, None if empty else says))  # fmt: skip
        cases.append(
            Case(f"evaluate-pred-{name}",
                 ["evaluate", "--pred", str(path), "--truth", csv, *size],
                 "any" if empty else expect, None if empty else says))  # fmt: skip
        cases.append(
            Case(f"train-coords-{name}",
                 ["train", "--micrographs", mics, "--coords", str(path), "--diameter", "24",
                  "--steps", "1", "--out", o(f"tc-{name}", ".pt")],
                 # train's --diameter replaces the stored one
                 "any" if "diameter" in name else "refuse", says))  # fmt: skip
    for name, (path, says) in checkpoint_inputs(root, fx["model"]).items():
        cases.append(
            Case(f"predict-model-{name}",
                 ["predict", "--model", str(path), "--micrographs", mics,
                  "--out", o(f"pm-{name}", ".csv")],
                 "refuse", says, never="weights_only=False"))  # fmt: skip
        if "loss" not in name:  # --init may fine-tune any readable checkpoint
            cases.append(
                Case(f"train-init-{name}",
                     ["train", "--micrographs", mics, "--coords", csv, "--diameter", "24",
                      "--steps", "1", "--init", str(path), "--out", o(f"ti-{name}", ".pt")],
                     "refuse", says, never="weights_only=False"))  # fmt: skip
    for name, (folder, says) in session_inputs(root, fx["mics"]).items():
        cases.append(Case(f"round-session-{name}", ["round", "--session", str(folder)],
                          "refuse", says))  # fmt: skip
    train = ["train", "--micrographs", mics, "--coords", csv, "--diameter", "24"]
    for flag, value, says in [
        ("--steps", "0", "at least 1|>= 1"),
        ("--epochs", "0", "at least 1|>= 1"),
        ("--steps", "-3", None),
        ("--batch-size", "0", None),
        ("--diameter", "0", None),
        ("--diameter", "-24", None),
        ("--diameter", "nan", None),
        ("--lr", "nan", None),
        ("--input-size", "3", None),
    ]:
        argv = [*train, "--out", o(f"ta{flag}{value}", ".pt")]
        if flag == "--diameter":
            argv[argv.index("--diameter") + 1] = value
        else:
            argv += [flag, value]
        if flag != "--steps" and flag != "--epochs":
            argv += ["--steps", "1"]
        cases.append(Case(f"train-arg{flag}={value}", argv, "refuse", says))
    predict = ["predict", "--model", model, "--micrographs", mics]
    for flag, value in [
        ("--threshold", "nan"),
        ("--threshold", "2"),
        ("--threshold", "-1"),
        ("--batch-size", "0"),
        ("--nms-iou", "5"),
        ("--nms-iou", "nan"),
        ("--workers", "-2"),
    ]:
        argv = [*predict, "--out", o(f"pa{flag}{value}", ".csv"), flag, value]
        cases.append(Case(f"predict-arg{flag}={value}", argv, "refuse"))
    cases.append(
        Case("predict-out-is-folder-with-star-name",
             [*predict, "--out", str(Path(mics))], "refuse"))  # fmt: skip
    evaluate = ["evaluate", "--pred", csv, "--truth", csv]
    for flag, value in [("--iou", "2"), ("--iou", "-1"), ("--beta", "0"), ("--beta", "nan"),
                        ("--diameter", "0"), ("--threshold", "nan")]:  # fmt: skip
        cases.append(Case(f"evaluate-arg{flag}={value}", [*evaluate, flag, value], "refuse"))
    cases.append(
        Case("evaluate-truth-missing", [*evaluate[:3], "--truth", str(root / "nope.star")],
             "refuse", "no such"))  # fmt: skip
    simulate = ["simulate", "--seed", "1"]
    for flag, value in [("--n", "0"), ("--n", "-1"), ("--size", "0"), ("--size", "-64"),
                        ("--particles", "-1"), ("--snr", "-1"), ("--snr", "nan"),
                        ("--diameter", "0"), ("--pixel-size", "-1")]:  # fmt: skip
        argv = [*simulate, "--out", str(out / f"s{flag}{value}"), "--size", "64", "--n", "1",
                "--particles", "2", "--diameter", "16", flag, value]  # fmt: skip
        cases.append(Case(f"simulate-arg{flag}={value}", argv, "refuse"))
    cases.append(Case("convert-out-unknown-ext", ["convert", csv, o("c-ext", ".xyz")], "refuse"))
    cases.append(
        Case("convert-folder-as-input-file", ["convert", str(root / "coords" / "folder.star"),
             o("c-folder", ".csv"), "--diameter", "24"], "refuse"))  # fmt: skip
    # a session reads headers only: pixels that a round cannot use are its business, and
    # a folder with an unreadable header is refused whole (naming the file)
    pixels_only = ("all-nan", "all-inf", "byteswapped", "stack")
    for name, (folder, expect) in micrograph_inputs(root / "session-create").items():
        expect = "refuse" if name == "mixed" else "any" if name in pixels_only else expect
        cases.append(
            Case(f"session-create-mics-{name}",
                 ["session", "create", str(out / f"sc-{name}"), "--micrographs", str(folder),
                  "--diameter", "24"], expect))  # fmt: skip
    for value in ("0", "-1", "nan"):
        cases.append(
            Case(f"session-create-diameter={value}",
                 ["session", "create", str(out / f"scd{value}"), "--micrographs", mics,
                  "--diameter", value], "refuse"))  # fmt: skip
    return cases


# ----------------------------------------------------------------------------- running


def classify(case: Case, rc: int | None, stderr: str) -> str:
    """The outcome class of one run (see the module docstring)."""
    if rc is None:
        return "hang"
    if "Traceback (most recent call last)" in stderr:
        return "traceback"
    if _RAW_WARNING.search(stderr):
        return "raw_warning"
    if rc == 0:
        return "silent" if case.expect == "refuse" else "clean"
    if case.expect == "accept":
        return "wrong_refusal"
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith(("activepick", "usage:"))]
    if not errors or not lines[-1].startswith("activepick"):
        return "unclear"
    if case.says and not re.search(case.says, stderr, re.IGNORECASE):
        return "unclear"
    if case.never and re.search(case.never, stderr):
        return "unclear"
    return "clean"


def run_case(case: Case, timeout: float, env: dict) -> Outcome:
    cmd = [sys.executable, "-m", "activepick", *case.argv]
    started = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, env=env, errors="replace"
        )
        rc, stderr = proc.returncode, proc.stderr
    except subprocess.TimeoutExpired as exc:
        rc, stderr = None, (exc.stderr or b"").decode("utf-8", "replace")
    kind = classify(case, rc, stderr)
    tail = [ln for ln in stderr.splitlines() if ln.strip()][-4:]
    return Outcome(
        case.name, " ".join(case.argv[:2]), kind, rc, time.perf_counter() - started, tail
    )


def known_commands(env: dict) -> set[str]:
    """The subcommands this activepick has (a case of another command is skipped)."""
    code = "from activepick.cli import SUBCOMMANDS; print(' '.join(SUBCOMMANDS))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    return set(out.stdout.split())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_smoke_flag(ap)  # three cases
    ap.add_argument("--only", default=None, help="run the cases whose name holds this")
    ap.add_argument("--jobs", type=int, default=2, help="cases run at once (default: 2)")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds per case")
    ap.add_argument("--keep", type=Path, default=None, help="build the corpus here and keep it")
    ap.add_argument(
        "--src",
        type=Path,
        default=None,
        help="fuzz the activepick of this src folder (e.g. another checkout's), not the installed",
    )
    args = ap.parse_args(argv)

    root = Path(tempfile.mkdtemp(prefix="activepick-fuzz-")) if args.keep is None else args.keep
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONWARNINGS": ""}
    if args.src is not None:
        src = str(args.src.resolve())
        sys.path.insert(0, src)  # the corpus's good files are written by that code too
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")]))
    try:
        cases = build_cases(root)
        commands = known_commands(env)
        skipped = [c.name for c in cases if c.argv[0] not in commands]
        cases = [c for c in cases if c.argv[0] in commands]
        if args.smoke:
            cases = [c for c in cases if c.name in SMOKE_CASES]
        if args.only:
            cases = [c for c in cases if args.only in c.name]
        started = time.perf_counter()
        with ThreadPoolExecutor(max(1, args.jobs)) as pool:
            outcomes = list(pool.map(lambda c: run_case(c, args.timeout, env), cases))
        seconds = time.perf_counter() - started
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    counts = {k: sum(o.kind == k for o in outcomes) for k in CLASSES}
    where = f" of {args.src}" if args.src else ""
    print(
        f"{len(outcomes)} case(s){where} in {seconds:.0f} s; {len(skipped)} skipped (command "
        "absent)"
    )
    print(f"{'outcome':<15}{'cases':>6}")
    for k in CLASSES:
        print(f"{k:<15}{counts[k]:>6}")
    for o in outcomes:
        if o.kind != "clean":
            last = o.stderr_tail[-1] if o.stderr_tail else ""
            print(f"  {o.kind:<13} rc={o.rc} {o.name}: {last[:150]}")
    record = {
        "machine": machine_info(),
        "src": str(args.src) if args.src else "installed",
        "cases": len(outcomes),
        "skipped": skipped,
        "counts": counts,
        "seconds": round(seconds, 1),
        "outcomes": [asdict(o) for o in outcomes],
    }
    write_results(results_path(RESULTS, args.smoke), record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
