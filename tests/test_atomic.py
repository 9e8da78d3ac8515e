"""Atomic writes keep the previous file on failure."""

import pytest

from activepick.io.atomic import atomic_open, atomic_path, atomic_write_text


def test_atomic_write_replaces_content(tmp_path):
    target = tmp_path / "a.txt"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_failed_write_keeps_previous_version_and_leaves_no_temp(tmp_path):
    target = tmp_path / "a.txt"
    atomic_write_text(target, "good")
    with pytest.raises(RuntimeError), atomic_open(target) as fh:
        fh.write("half")
        raise RuntimeError("crash while writing")
    assert target.read_text() == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_atomic_path_keeps_suffix_for_libraries(tmp_path):
    with atomic_path(tmp_path / "x.star") as tmp:
        assert tmp.suffix == ".star"
        assert tmp.parent == tmp_path
        tmp.write_text("data_\n")
    assert (tmp_path / "x.star").read_text() == "data_\n"


def test_atomic_open_refuses_read_mode(tmp_path):
    with pytest.raises(ValueError), atomic_open(tmp_path / "a", "r"):
        pass


def test_atomic_files_get_ordinary_permissions(tmp_path):

    from activepick.io import atomic

    atomic_write_text(tmp_path / "shared.txt", "x")
    assert (tmp_path / "shared.txt").stat().st_mode & 0o777 == 0o666 & ~atomic._UMASK
    assert (tmp_path / "shared.txt").stat().st_mode & 0o044  # readable by group/others
