"""Helpers shared by the coordinate-format modules (not public API).

A format module reads one file into a *raw* frame with the columns
``micrograph, x, y, diameter, confidence`` (centres in pixels of the original
micrograph, x = column, y = row, origin top-left; NaN diameter = the format does
not store one; NaN confidence = not carried). :func:`activepick.io.formats.read_coordinates`
then checks the values and builds the pick table.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from ...constants import CONFIDENCE_EPS
from ...errors import CoordinateError
from ..atomic import atomic_path

RAW_COLUMNS = ("micrograph", "x", "y", "diameter", "confidence")

#: Figure of merit RELION writes for picks without a score (manual picks).
RELION_NO_FOM = -999.0


@dataclass
class WriteOptions:
    """Options every writer receives (see ``write_coordinates``)."""

    prefix: str = ""
    suffix: str = ".mrc"
    file_suffix: str = ""
    pixel_size: float | None = None
    shapes: dict[str, tuple[int, int]] | None = None
    names: list[str] = field(default_factory=list)

    def full_name(self, name: str) -> str:
        """The micrograph file name other tools should see: prefix + name + suffix."""
        return f"{self.prefix}{name}{self.suffix}"


def raw_frame(micrograph, x, y, diameter=np.nan, confidence=np.nan) -> pd.DataFrame:
    """A raw frame; numeric columns are coerced (bad values become NaN, caught later)."""
    x = pd.to_numeric(pd.Series(x, dtype=object), errors="coerce").astype(np.float64)
    n = len(x)

    def col(v, numeric=True):
        if np.ndim(v) == 0:
            v = [v] * n
        s = pd.Series(list(v), dtype=object)
        return pd.to_numeric(s, errors="coerce").astype(np.float64).to_numpy() if numeric else s

    return pd.DataFrame(
        {
            "micrograph": col(micrograph, numeric=False).astype(str).to_numpy(dtype=object),
            "x": x.to_numpy(),
            "y": col(y),
            "diameter": col(diameter),
            "confidence": col(confidence),
        }
    )


def empty_raw() -> pd.DataFrame:
    """A raw frame with no rows."""
    return raw_frame([], [], [])


def name_from_path(text: str) -> str:
    """Micrograph name from a path string as another tool wrote it (either slash)."""
    return PurePosixPath(str(text).replace("\\", "/")).stem


def numeric(df: pd.DataFrame, col: str) -> np.ndarray:
    """Column as float64, non-numbers -> NaN (flagged by the caller's checks)."""
    return pd.to_numeric(df[col], errors="coerce").astype(np.float64).to_numpy()


def require_columns(df: pd.DataFrame, cols, path: Path, what: str) -> None:
    """Raise CoordinateError when ``df`` lacks any of ``cols``."""
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise CoordinateError(f"{path}: {what} lacks column(s) {', '.join(missing)}")


def read_text(path: Path, what: str) -> str:
    """The file as UTF-8 text ("" for an empty file), checked for truncation.

    Every tool of the field ends its coordinate files with a line break; a
    non-empty file whose last line lacks one was cut short (a value cut at a
    token boundary still parses, off by some pixels), so it is refused, naming
    the last line. Bytes that are not UTF-8 are refused, naming their offset.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CoordinateError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CoordinateError(
            f"{path}: not a {what} (byte {exc.start} is not UTF-8 text)"
        ) from None
    if "\0" in text:
        raise CoordinateError(f"{path}: not a {what} (holds NUL bytes)")
    if text.strip() and not text.endswith(("\n", "\r")):
        lines = text.splitlines()
        raise CoordinateError(
            f"{path}: the last line ({len(lines)}: {lines[-1][:40]!r}) has no line break; "
            "the file looks truncated"
        )
    return text


def read_table(
    path: Path,
    what: str,
    *,
    sep: str | None,
    header: bool = True,
    comment: str | None = None,
    numeric: tuple[str, ...] = (),
) -> pd.DataFrame:
    """A delimited text file as a frame of strings, with every row checked.

    ``sep`` is one delimiter (quotes are honoured, as in CSV) or None for runs of
    whitespace. With ``header`` the first line names the columns: a duplicate
    name is refused, and so is a row with more or fewer fields than the header
    (pandas would shift the columns of a row with an extra field). Without a
    header every row must have as many fields as the first. Blank lines and,
    with ``comment``, lines starting with it are skipped. Error messages give
    the 1-based line number. Columns named in ``numeric`` may come back already as
    float64 (blank = NaN) when every value parses; callers convert the rest.
    """
    import csv

    text = read_text(path, what)
    plain = '"' not in text and "\r" not in text and text.isascii()
    if sep is not None and comment is None and plain:
        fast = _read_plain_table(text, path, what, sep, header, numeric)
        if fast is not None:
            return fast
    numbered = [
        (i, line)
        for i, line in enumerate(text.splitlines(), start=1)
        if line.strip() and not (comment and line.lstrip().startswith(comment))
    ]
    if sep is None:
        rows = [(i, line.split()) for i, line in numbered]
    else:
        reader = csv.reader([line for _, line in numbered], delimiter=sep)
        try:
            rows = [(i, fields) for (i, _), fields in zip(numbered, reader, strict=True)]
        except (csv.Error, ValueError) as exc:
            raise CoordinateError(f"{path}: not a readable {what} ({exc})") from None
    if not rows:
        return pd.DataFrame()
    if header:
        names = [c.strip() for c in rows[0][1]]
        dup = sorted({c for c in names if names.count(c) > 1})
        if dup:
            raise CoordinateError(f"{path}: {what} names column(s) {', '.join(dup)} twice")
        rows = rows[1:]
    else:
        names = list(range(len(rows[0][1])))
    for line_no, fields in rows:
        if len(fields) != len(names):
            raise CoordinateError(
                f"{path}: line {line_no} has {len(fields)} field(s) but the "
                f"{'header has' if header else 'first line has'} {len(names)}; "
                f"refusing a ragged {what}"
            )
    return pd.DataFrame([fields for _, fields in rows], columns=names, dtype=object)


#: ASCII whitespace bytes (what ``str.split()`` splits at, as far as plain tables go).
_SPACE = np.array([9, 10, 11, 12, 13, 32], dtype=np.uint8)


def _read_plain_table(
    text: str, path: Path, what: str, sep: str, header: bool, numeric: tuple[str, ...] = ()
) -> pd.DataFrame | None:
    """:func:`read_table` for large files without quotes: fields counted with numpy,
    parsed by pandas' C reader. None when the first line is not a plain header."""
    import io

    data = np.frombuffer(text.encode("utf-8"), np.uint8)
    if len(data) == 0:
        return pd.DataFrame()
    ends = np.flatnonzero(data == 10)  # read_text guarantees the final line break
    starts = np.r_[0, ends[:-1] + 1]
    seps = np.flatnonzero(data == ord(sep))
    fields = np.searchsorted(seps, ends) - np.searchsorted(seps, starts) + 1
    blank = ends == starts
    maybe = np.flatnonzero(~blank & np.isin(data[np.minimum(starts, len(data) - 1)], _SPACE))
    for i in maybe.tolist():  # ASCII text: byte offsets are character offsets
        blank[i] = not text[starts[i] : ends[i]].strip()
    lines = np.flatnonzero(~blank)  # non-blank, 0-based
    if len(lines) == 0:
        return pd.DataFrame()
    first = text[starts[lines[0]] : ends[lines[0]]].split(sep)
    names = [c.strip() for c in first] if header else list(range(len(first)))
    if header:
        dup = sorted({c for c in names if names.count(c) > 1})
        if dup:
            raise CoordinateError(f"{path}: {what} names column(s) {', '.join(dup)} twice")
    ragged = lines[fields[lines] != len(names)]
    if len(ragged):
        line = int(ragged[0])
        raise CoordinateError(
            f"{path}: line {line + 1} has {int(fields[line])} field(s) but the "
            f"{'header has' if header else 'first line has'} {len(names)}; "
            f"refusing a ragged {what}"
        )
    options = dict(
        sep=sep,
        header=0 if header else None,
        index_col=False,
        skip_blank_lines=True,
        quoting=3,  # csv.QUOTE_NONE: the text has no quotes
        engine="c",
        keep_default_na=False,
    )
    numbers = [c for c in numeric if c in names and header]
    if numbers:
        raw_names = [c for c in first]
        floats = {raw_names[names.index(c)]: [""] for c in numbers}
        try:  # numbers parsed in C; any non-number falls back to strings below
            df = pd.read_csv(
                io.StringIO(text),
                dtype={n: ("float64" if n in floats else object) for n in raw_names},
                na_values=floats,
                **options,
            )
            df.columns = names
            return df
        except (ValueError, TypeError):
            pass
    df = pd.read_csv(io.StringIO(text), dtype=object, na_filter=False, **options)
    df.columns = names
    return df


def read_star(path: Path) -> dict[str, pd.DataFrame | dict]:
    """All blocks of a STAR file as ``{name: DataFrame or dict}``; {} for an empty file.

    An empty (or comment-only) file is zero picks; any other file without a
    ``data_`` block, not UTF-8 or truncated (see :func:`read_text`) is refused.
    """
    import starfile

    text = read_text(path, "STAR file")
    lines = [ln.strip() for ln in text.splitlines()]
    if all(not ln or ln.startswith("#") for ln in lines):
        return {}  # an empty file: zero picks
    if not any(ln.startswith("data_") for ln in lines):
        raise CoordinateError(f"{path}: not a STAR file (no data_ block)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            blocks = starfile.read(
                path,
                always_dict=True,
                parse_as_string=["rlnMicrographName", "rlnImageName", "rlnMicrographCoordinates"],
            )
    except Exception as exc:  # starfile raises many kinds on malformed input
        raise CoordinateError(f"{path}: not a readable STAR file ({exc})") from None
    return dict(blocks)


def write_star(blocks: dict, path: Path) -> Path:
    """Write STAR blocks with starfile through an atomic temporary path."""
    import starfile

    with atomic_path(path) as tmp:
        starfile.write(blocks, tmp, float_format="%.6f")
    return path


def loop_block(blocks: dict, name: str, path: Path) -> pd.DataFrame:
    """A block as a DataFrame (a one-row simple block becomes a one-row frame)."""
    block = blocks[name]
    if isinstance(block, dict):
        return pd.DataFrame({k: [v] for k, v in block.items()})
    if not isinstance(block, pd.DataFrame):
        raise CoordinateError(f"{path}: block data_{name} is not a table")
    return block


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Logistic function (Topaz scores are logits)."""
    return 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=np.float64)))


def logit(p: np.ndarray) -> np.ndarray:
    """Inverse of :func:`sigmoid`, clipped to [eps, 1 - eps]."""
    p = np.clip(np.asarray(p, dtype=np.float64), CONFIDENCE_EPS, 1 - CONFIDENCE_EPS)
    return np.log(p) - np.log1p(-p)


def fom_to_confidence(fom: np.ndarray) -> np.ndarray:
    """RELION figure of merit -> confidence: kept when in [0, 1], else NaN (e.g. -999, LoG)."""
    fom = np.asarray(fom, dtype=np.float64)
    return np.where((fom >= 0) & (fom <= 1), fom, np.nan)


def confidence_to_fom(conf: np.ndarray) -> np.ndarray:
    """Confidence -> RELION figure of merit; NaN becomes RELION's -999."""
    conf = np.asarray(conf, dtype=np.float64)
    return np.where(np.isfinite(conf), conf, RELION_NO_FOM)


_RELION_PICK_SUFFIX = re.compile(r"_(autopick|manualpick)$")


def strip_relion_suffix(stem: str) -> str:
    """``mic_001_autopick`` -> ``mic_001`` (RELION's per-micrograph pick file names)."""
    return _RELION_PICK_SUFFIX.sub("", stem)


def per_micrograph_groups(picks: pd.DataFrame, opts: WriteOptions) -> dict[str, pd.DataFrame]:
    """``{name: rows}``; with shapes, every micrograph in shapes gets an entry (maybe empty)."""
    groups = {str(k): g.reset_index(drop=True) for k, g in picks.groupby("micrograph", sort=False)}
    if opts.shapes:
        empty = picks.iloc[:0]
        for name in opts.shapes:
            groups.setdefault(name, empty)
    return groups


def per_micrograph_targets(
    picks: pd.DataFrame,
    path: Path,
    groups: dict[str, pd.DataFrame],
    *,
    extensions: tuple[str, ...],
    what: str,
    file_suffix: str = "",
) -> list[tuple[Path, pd.DataFrame]]:
    """Where a per-micrograph format writes: ``[(file, rows)]``.

    ``path`` with one of ``extensions`` is a single file and may hold one micrograph
    only (CoordinateError naming ``path`` otherwise); any other ``path`` is a folder
    that gets ``<name><file_suffix><extensions[0]>`` per micrograph of ``groups``.
    """
    if path.suffix.lower() in extensions:
        if len(groups) > 1:
            raise CoordinateError(
                f"{path}: {len(groups)} micrographs cannot go into one {what}; give a folder"
            )
        return [(path, next(iter(groups.values())) if groups else picks)]
    return [
        (path / safe_file_name(f"{name}{file_suffix}", extensions[0], path, name), rows)
        for name, rows in groups.items()
    ]


def safe_file_name(stem: str, extension: str, folder: Path, micrograph: str) -> str:
    """``stem + extension`` when it names a file directly inside ``folder``, else CoordinateError.

    Micrograph names come from other tools' files (Topaz ``image_name``, our CSV):
    a name with a slash, a backslash or a NUL would write outside the output folder
    (``/elsewhere/x``, ``../../x``), and an empty one would make a hidden file, so
    they are refused, naming the micrograph.
    """
    if not stem.strip() or stem in (".", "..") or any(c in stem for c in "/\\\0"):
        raise CoordinateError(
            f"{folder}: micrograph name {micrograph!r} does not make a file name inside this "
            "folder (empty, or has a slash, backslash or NUL; check the names and --file-suffix)"
        )
    return stem + extension


def check_name_tokens(names, path: Path, what: str) -> None:
    """Refuse micrograph names a whitespace-separated format cannot hold.

    STAR and Topaz split rows at whitespace: a name with a space, tab or line
    break (or an empty one) would shift every column after it.
    """
    for name in dict.fromkeys(str(n) for n in names):
        if not name or any(c.isspace() for c in name):
            raise CoordinateError(
                f"{path}: micrograph name {name!r} is empty or holds whitespace, which {what} "
                "cannot store (rename the micrograph, or write another format such as .csv)"
            )


def remove_stale_files(
    folder: Path, written: list[Path], extensions: tuple[str, ...]
) -> list[Path]:
    """Delete files of ``extensions`` directly in ``folder`` that ``written`` does not list.

    A per-micrograph export replaces the folder's coordinate files as a whole: a
    micrograph of an earlier export that this one lacks must not be read back.
    Other files (other extensions, hidden files, sub-folders) are kept. Returns
    the removed paths.
    """
    keep = {p.resolve() for p in written}
    removed = []
    for p in sorted(folder.iterdir()):
        if (
            p.is_file()
            and not p.name.startswith(".")
            and p.suffix.lower() in extensions
            and p.resolve() not in keep
        ):
            p.unlink()
            removed.append(p)
    return removed


def fmt_float(v: float) -> str:
    """Compact but lossless-enough float text (10 significant digits)."""
    return format(float(v), ".10g")
