"""The package's structure: no import cycles between genvec's modules, and a command line that starts without torch.

The import graph is read from the source (every `import` and `from ... import` anywhere in a module: at the top, in
functions and under `TYPE_CHECKING`), so a cycle hidden behind a function-level import is found too.
"""

import ast
import subprocess
import sys
from pathlib import Path

import genvec

PACKAGE_ROOT = Path(genvec.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """genvec module -> the genvec modules it imports (a package's `__init__` counts as the package)."""
    paths = sorted(PACKAGE_ROOT.rglob("*.py"))
    modules = {module_name(path): path for path in paths}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                for alias in node.names:  # `from genvec import model` names a module; `from genvec.x import f` not
                    targets.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
        owners = {_owner(target, modules) for target in targets if target.split(".")[0] == "genvec"}
        graph[name] = (owners | _parent_packages(owners, name, modules)) - {name}
    return graph


def _parent_packages(owners: set[str], importer: str, modules: dict) -> set[str]:
    """Importing `genvec.a.b` runs `genvec/a/__init__.py` first, unless the importer is inside `genvec.a` already.
    The root package is left out: it imports its public names lazily, on first use."""
    parents = set()
    for owner in owners:
        parts = owner.split(".")
        for depth in range(2, len(parts)):
            package = ".".join(parts[:depth])
            if package in modules and not importer.startswith(package + "."):
                parents.add(package)
    return parents


def _owner(target: str, modules: dict) -> str:
    while target not in modules:
        target = target.rpartition(".")[0]
    return target


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return path[path.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_import_graph_has_no_cycle():
    graph = import_graph()
    assert "genvec.model" in graph and "genvec.decode" in graph  # the walk found the package
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_root_package_is_imported_by_no_submodule():
    """Submodules import what they need from its own module (the version from `genvec.version`), so the order of
    lines in `genvec/__init__.py` cannot break `import genvec`."""
    importers = sorted(name for name, targets in import_graph().items() if "genvec" in targets and name != "genvec")
    assert importers == []


def test_importing_the_cli_imports_neither_torch_nor_transformers():
    code = "import sys, genvec.cli; print(sorted(m for m in ('torch', 'transformers', 'numpy') if m in sys.modules))"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "[]"


def test_version_and_help_run_without_torch():
    code = (
        "import sys, contextlib, io\n"
        "from genvec.cli import main\n"
        "for argv in (['--version'], ['--help'], ['train', '--help'], ['encode', '--help']):\n"
        "    with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "        try:\n"
        "            main(argv)\n"
        "        except SystemExit as stop:\n"
        "            assert stop.code == 0, (argv, stop.code)\n"
        "    assert out.getvalue(), argv\n"
        "print('torch' in sys.modules)\n"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "False"
