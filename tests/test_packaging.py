"""The npe2 manifest is one file, found from the editable install and from a built wheel."""

import subprocess
import sys
import zipfile
from importlib.metadata import entry_points
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_manifest_symlink_points_at_root_file():
    link = ROOT / "src" / "activepick" / "napari.yaml"
    assert link.is_symlink()
    assert link.resolve() == (ROOT / "napari.yaml").resolve()


def test_editable_install_exposes_manifest_entry_point():
    eps = [ep for ep in entry_points(group="napari.manifest") if ep.name == "napari-activepick"]
    assert [ep.value for ep in eps] == ["activepick:napari.yaml"]
    import npe2

    manifest = npe2.PluginManifest.from_distribution("napari-activepick")
    assert manifest.name == "napari-activepick"
    assert {c.id for c in manifest.contributions.commands} >= {
        "napari-activepick.widget",
        "napari-activepick.read_micrograph",
    }


def test_core_imports_without_qt_or_napari():
    code = (
        "import sys, activepick, activepick.io.picks, activepick.cli; "
        "import pkgutil, importlib\n"
        "for m in pkgutil.walk_packages(activepick.__path__, 'activepick.'):\n"
        "    if not m.name.startswith(('activepick.plugin', 'activepick.__main__')):\n"
        "        importlib.import_module(m.name)\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('napari', 'PyQt6', 'PyQt5', 'qtpy', 'PySide6', 'magicgui', 'superqt')]\n"
        "print(','.join(sorted(bad)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


@pytest.mark.slow
def test_wheel_ships_manifest_and_napari_finds_it(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--wheel",
            "--no-isolation",
            "--outdir",
            str(dist),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = dist.glob("napari_activepick-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        shipped = zf.read("activepick/napari.yaml").decode()
        names = set(zf.namelist())
        # the general model (issue 9) and its sidecar ship inside the package
        assert "activepick/detector/models/general_light.pt" in names
        assert "activepick/detector/models/general_light.pt.json" in names
        ep_files = [n for n in zf.namelist() if n.endswith("entry_points.txt")]
        eps = zf.read(ep_files[0]).decode()
    assert shipped == (ROOT / "napari.yaml").read_text()
    assert "napari-activepick = activepick:napari.yaml" in eps

    # Install the wheel alone into a scratch folder placed first on sys.path and let
    # npe2 resolve the manifest from that distribution.
    site = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(site),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    code = (
        "import activepick, npe2\n"
        "from importlib.metadata import distribution\n"
        "m = npe2.PluginManifest.from_distribution('napari-activepick')\n"
        "print(m.name, activepick.__file__, distribution('napari-activepick')._path)"
    )
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    name, module_file, dist_path = out.stdout.split()
    assert name == "napari-activepick"
    assert module_file.startswith(str(site))
    assert dist_path.startswith(str(site))
