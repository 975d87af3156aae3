"""The layout rules, checked by reading the source: layers import downwards only, no cycles.

Imports are read with ``ast``, at module level and inside functions alike (a lazy import
still ties two modules together); imports under ``if TYPE_CHECKING:`` do not count for
cycles, as they never run.
"""

from __future__ import annotations

import ast
from collections import deque
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Set, Tuple

ROOT = Path(__file__).resolve().parents[2]

Graph = Dict[str, Set[str]]


def _modules(root: Path, package: str) -> Dict[str, Tuple[Path, bool]]:
    """Every module of ``package`` under ``root``: dotted name -> (file, is a package)."""
    found: Dict[str, Tuple[Path, bool]] = {}
    for path in sorted((root / package).rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        parts = list(path.relative_to(root).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        found[".".join(parts)] = (path, is_package)
    return found


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def _import_nodes(node: ast.AST, typing_too: bool) -> Iterator[ast.AST]:
    """The import statements anywhere under ``node``; TYPE_CHECKING blocks only if asked."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child
        elif isinstance(child, ast.If) and _is_type_checking(child.test) and not typing_too:
            for other in child.orelse:  # the else branch of a TYPE_CHECKING test does run
                yield from _import_nodes(ast.Module(body=[other], type_ignores=[]), typing_too)
        else:
            yield from _import_nodes(child, typing_too)


def _imports(
    name: str, path: Path, is_package: bool, known: Set[str], typing_too: bool = False
) -> Set[str]:
    """The dotted modules ``name`` imports: ``from x import y`` is ``x.y`` when y is a module."""
    package = name if is_package else name.rpartition(".")[0]
    targets: Set[str] = set()
    for node in _import_nodes(ast.parse(path.read_text(encoding="utf-8")), typing_too):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
            continue
        assert isinstance(node, ast.ImportFrom)
        if node.level:
            parts = package.split(".")
            base_parts = parts[: len(parts) - (node.level - 1)]
            base = ".".join(base_parts + ([node.module] if node.module else []))
        else:
            base = node.module or ""
        for alias in node.names:
            submodule = f"{base}.{alias.name}"
            targets.add(submodule if submodule in known else base)
    targets.discard(name)
    return targets


def _ancestors(name: str) -> Set[str]:
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def _graph(root: Path, package: str, typing_too: bool = False) -> Graph:
    """Who imports whom among the modules of ``package`` (edges to other packages dropped).

    Importing ``a.b.c`` also runs ``a.b``'s ``__init__`` unless the importer is inside
    ``a.b`` (then it is already running), so that package counts as imported too.
    """
    modules = _modules(root, package)
    known = set(modules)
    graph: Graph = {}
    for name, (path, is_pkg) in modules.items():
        running = _ancestors(name) | ({name} if is_pkg else set())
        targets = _imports(name, path, is_pkg, known, typing_too)
        implied = {a for t in targets for a in _ancestors(t)} - running
        graph[name] = (targets | implied) & known - {name}
    return graph


def _all_imports(root: Path, package: str) -> Dict[str, Set[str]]:
    """Every module of ``package`` and all it imports, TYPE_CHECKING blocks included."""
    modules = _modules(root, package)
    return {
        name: _imports(name, path, is_pkg, set(modules), typing_too=True)
        for name, (path, is_pkg) in modules.items()
    }


def _cycles(graph: Graph) -> List[List[str]]:
    """One shortest cycle per strongly connected group of modules, as a path a -> ... -> a."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    groups: List[Set[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm; the graphs have a few dozen nodes
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group: Set[str] = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1 or node in graph.get(node, ()):
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_shortest_cycle(graph, group) for group in groups]


def _shortest_cycle(graph: Graph, group: Set[str]) -> List[str]:
    start = min(group)
    came_from: Dict[str, Optional[str]] = {start: None}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for nxt in sorted(graph[node] & group):
            if nxt == start:
                path: List[str] = []
                step: Optional[str] = node
                while step is not None:
                    path.append(step)
                    step = came_from[step]
                return [*reversed(path), start]
            if nxt not in came_from:
                came_from[nxt] = node
                queue.append(nxt)
    raise AssertionError(f"no cycle through {start} in {sorted(group)}")


def _describe(cycles: List[List[str]]) -> str:
    return "; ".join(" -> ".join(cycle) for cycle in cycles)


def _upward(package: str, above: Tuple[str, ...], root: Path = ROOT) -> List[str]:
    """``module imports target`` for every import of ``package`` from a layer in ``above``."""
    return sorted(
        f"{module} imports {target}"
        for module, targets in _all_imports(root, package).items()
        for target in targets
        if target.split(".")[0] in above
    )


def test_cometsync_never_imports_the_simulator_or_the_benchmarks() -> None:
    """The SDK is the bottom layer: no module of it imports simulator or benchmarks."""
    assert _upward("cometsync", ("simulator", "benchmarks")) == []


def test_simulator_never_imports_the_benchmarks() -> None:
    """The simulator sits below the benchmarks: no module of it imports benchmarks."""
    assert _upward("simulator", ("benchmarks",)) == []


def test_no_import_cycle_between_cometsync_modules() -> None:
    """No two modules of cometsync import each other, directly or through others."""
    graph = _graph(ROOT, "cometsync")
    assert "cometsync._flow" in graph["cometsync._client"]  # the reader resolves imports
    assert _cycles(graph) == [], _describe(_cycles(graph))


def test_no_import_cycle_between_simulator_modules() -> None:
    """No two modules of the simulator import each other, directly or through others."""
    graph = _graph(ROOT, "simulator")
    assert "simulator.core" in graph["simulator.server"]  # the reader resolves imports
    cycles = _cycles(graph)
    assert cycles == [], _describe(cycles)


def _write(root: Path, files: Dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_cycle_reader_finds_lazy_and_package_cycles_but_not_type_checking_ones(
    tmp_path: Path,
) -> None:
    """A function-level import closes a cycle, a TYPE_CHECKING one does not, packages resolve."""
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "from .a import A\n",
            "pkg/a.py": "from .sub import helper\nA = 1\n",
            "pkg/sub/__init__.py": "from . import deep\n",
            "pkg/sub/deep.py": "def f():\n    from ..a import A\n    return A\nhelper = f\n",
            "pkg/b.py": (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .c import C\n"
            ),
            "pkg/c.py": "from pkg import b\nC = 1\n",
        },
    )
    graph = _graph(tmp_path, "pkg")
    assert graph["pkg.sub"] == {"pkg.sub.deep"}
    assert graph["pkg.b"] == set()
    assert _cycles(graph) == [["pkg.a", "pkg.sub", "pkg.sub.deep", "pkg.a"]]
    assert "pkg.c" in _graph(tmp_path, "pkg", typing_too=True)["pkg.b"]


def test_layer_reader_sees_lazy_and_type_checking_imports_from_above(tmp_path: Path) -> None:
    """An upward import counts wherever it is written, even under TYPE_CHECKING."""
    _write(
        tmp_path,
        {
            "low/__init__.py": "",
            "low/a.py": "def f():\n    import simulator.core\n",
            "low/b.py": "import typing\nif typing.TYPE_CHECKING:\n    from benchmarks import x\n",
            "low/c.py": "from . import a\nimport simulatorish\n",
        },
    )
    assert _upward("low", ("simulator", "benchmarks"), tmp_path) == [
        "low.a imports simulator.core",
        "low.b imports benchmarks",
    ]
