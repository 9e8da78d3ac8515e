"""The npe2 manifest is one file, found from the editable install and from a built wheel."""

import ast
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


# --------------------------------------------------------------------------- import circles


def _module_names(root: Path, skip: str = "plugin") -> dict[str, Path]:
    """Dotted name -> file of every module of the package in ``root``, outside ``skip``."""
    names = {}
    for path in sorted(root.rglob("*.py")):
        parts = [root.name, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        if len(parts) > 1 and parts[1] == skip:
            continue
        names[".".join(parts)] = path
    return names


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_imports(node: ast.AST, type_checking: bool = False):
    """Every import statement at module level or in functions, except under ``if
    TYPE_CHECKING:`` (included with ``type_checking``)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child
        elif isinstance(child, ast.If) and _is_type_checking(child.test) and not type_checking:
            for stmt in child.orelse:
                yield from _runtime_imports(ast.Module(body=[stmt], type_ignores=[]))
        else:
            yield from _runtime_imports(child, type_checking)


def import_graph(
    root: Path, skip: str = "plugin", *, type_checking: bool = False
) -> dict[str, set[str]]:
    """Module -> the modules of the package in ``root`` (outside ``skip``) its imports run.

    ``from P import n`` runs P, and P.n when n is a submodule; ``import a.b.c`` runs
    a.b.c. Either also runs the packages above the target, except those above the
    importer (they ran before it), unless a name is taken from one of them. So a package ``__init__`` that re-exports its own
    submodules is no circle, but a submodule that takes a name from its package's
    ``__init__`` (``from . import name``) while the ``__init__`` imports it is.
    """
    modules = _module_names(root, skip)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        own_parents = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        targets: set[str] = set()
        explicit: set[str] = set()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in _runtime_imports(tree, type_checking):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
                continue
            if node.level:
                base = package.split(".")[: package.count(".") + 2 - node.level]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            targets.add(source)
            targets.update(f"{source}.{alias.name}" for alias in node.names)
            if any(f"{source}.{alias.name}" not in modules for alias in node.names):
                explicit.add(source)  # a name defined in ``source`` itself
        graph[name] = explicit & set(modules) - {name}
        graph[name] |= {
            module
            for target in targets
            for module in (".".join(target.split(".")[:i]) for i in range(1, target.count(".") + 2))
            if module in modules and module != name and module not in own_parents
        }
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles: strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(components)


def test_import_circle_check_finds_circles_and_only_circles(tmp_path):
    files = {
        "__init__.py": "from .a import f\n",  # a package re-exporting its own submodule
        "a.py": "from .b import g\ndef f(): pass\n",
        "b.py": "def g():\n    from .a import f\n",  # function level: still a circle
        "c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .d import X\n",
        "d.py": "from .c import Y\n",  # c only needs d for type hints: no circle
        "x.py": "import pkg.y\n",
        "y.py": "from pkg import x\n",  # absolute imports
        "sub/__init__.py": "from .e import h\nhelper = 1\n",
        "sub/e.py": "from . import helper\ndef h(): pass\n",  # a name from its package
        "sub/f.py": "from . import e\nfrom .. import c\n",  # submodules: no circle
        "plugin/__init__.py": "",
        "plugin/w.py": "from ..a import f\n",  # skipped
        "plugin/v.py": "from .w import z\n",
    }
    root = tmp_path / "pkg"
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    (root / "a.py").write_text("from .plugin.v import k\n" + files["a.py"])  # plugin not walked
    graph = import_graph(root)
    assert not {"pkg.plugin", "pkg.plugin.v", "pkg.plugin.w"} & set(graph)
    assert graph["pkg.a"] == {"pkg.b"}
    assert graph["pkg"] == {"pkg.a"} and graph["pkg.c"] == set() and graph["pkg.d"] == {"pkg.c"}
    assert graph["pkg.sub.f"] == {"pkg.sub.e", "pkg.c"}
    assert find_cycles(graph) == [["pkg.a", "pkg.b"], ["pkg.sub", "pkg.sub.e"], ["pkg.x", "pkg.y"]]


def test_no_import_circles_outside_plugin():
    graph = import_graph(ROOT / "src" / "activepick")
    assert len(graph) > 50 and not any(name.startswith("activepick.plugin") for name in graph)
    # the walk sees lazy (function-level) imports, and skips TYPE_CHECKING ones
    assert "activepick.simulate.aspire" in graph["activepick.simulate.dataset"]
    assert "activepick.detector.networks" in graph["activepick.detector.predict"]
    assert find_cycles(graph) == []


def test_no_import_circles_even_through_type_hints():
    """Issue 21: ``Detector.predict`` imported detector/predict.py, which needs
    ``networks.Detector`` (for type hints then): the house's one circle. A module's
    type hints name what it depends on too."""
    graph = import_graph(ROOT / "src" / "activepick", type_checking=True)
    assert "activepick.detector.predict" not in graph["activepick.detector.networks"]
    assert find_cycles(graph) == []


#: The house limit of a module's length (STYLE: no module over 600 lines).
MAX_MODULE_LINES = 600


def test_no_module_of_the_package_is_over_600_lines():
    """``session/_session.py`` had grown to 610 lines (issue 21, item 15)."""
    long = {
        str(p.relative_to(ROOT)): n
        for p in sorted((ROOT / "src" / "activepick").rglob("*.py"))
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}
