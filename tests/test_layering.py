"""The module boundaries, read from the code's imports with `ast` (nothing is imported or run):
no import cycle among the modules of flywheel/ and assets/ (an import inside a function counts:
it hides a cycle, it does not remove it), and no module takes a private (`_`-prefixed) name from
another module of flywheel/ or assets/. The rule that flywheel/ never imports dagster is
`test_definitions.py::test_flywheel_library_never_imports_dagster`.

Known violations that others must fix are listed below with who; an entry whose import is gone
fails the test until it is removed, so the lists only shrink.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("flywheel", "assets")

# Imports known to close an import cycle, as (importer, imported). None now: the last one, the
# catalog <-> {outcomes,signals,failures}/views loop, ended when `View` and every view moved to the
# table registry (flywheel/tables.py), which imports no module that builds or reads a table.
KNOWN_CYCLE_IMPORTS: frozenset[tuple[str, str]] = frozenset()

# Private names known to be taken across modules, as (importer, "module._name"). None now.
KNOWN_PRIVATE_IMPORTS: frozenset[tuple[str, str]] = frozenset()


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the packages (a package is its __init__)."""
    out: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


MODULES = _modules()


def _absolute(module: str, node: ast.ImportFrom) -> str:
    """The absolute module name `from ... import` names in `module` (resolving relative imports)."""
    if not node.level:
        return node.module or ""
    is_package = MODULES[module].name == "__init__.py"
    base = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(module: str) -> list[tuple[str, str | None, int]]:
    """(imported module, name taken from it or None, line) for every import in `module`, at any
    depth (module level, functions, classes, conditional blocks); only modules of the packages."""
    out: list[tuple[str, str | None, int]] = []
    for node in ast.walk(ast.parse(MODULES[module].read_text(), str(MODULES[module]))):
        if isinstance(node, ast.Import):
            out += [(alias.name, None, node.lineno) for alias in node.names if alias.name in MODULES]
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(module, node)
            for alias in node.names:
                if f"{source}.{alias.name}" in MODULES:  # `from package import module`
                    out.append((f"{source}.{alias.name}", None, node.lineno))
                elif source in MODULES:
                    out.append((source, alias.name, node.lineno))
    return out


def import_graph() -> dict[str, dict[str, int]]:
    """Importer -> {imported module: line of the first such import}."""
    graph: dict[str, dict[str, int]] = {m: {} for m in MODULES}
    for module in MODULES:
        for target, _, line in _imports(module):
            if target != module:
                graph[module].setdefault(target, line)
    return graph


def find_cycle(graph: dict[str, dict[str, int]]) -> list[str] | None:
    """One import cycle of `graph` as [a, b, ..., a], or None if it has none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def _describe(cycle: list[str], graph: dict[str, dict[str, int]]) -> str:
    return "\n".join(f"  {a} -> {b}  ({MODULES[a].relative_to(ROOT)}:{graph[a][b]})" for a, b in zip(cycle, cycle[1:]))


def private_imports() -> dict[tuple[str, str], str]:
    """(importer, "module._name") -> where, for every private name one module of the packages
    takes from another: `from m import _name`, or `m._name` on a name bound to module m."""
    out: dict[tuple[str, str], str] = {}
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(), str(path))
        bound: dict[str, str] = {}  # local name -> module it is bound to
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname and alias.name in MODULES:
                        bound[alias.asname] = alias.name
                    elif not alias.asname:
                        bound[alias.name.split(".")[0]] = alias.name.split(".")[0]
            elif isinstance(node, ast.ImportFrom):
                source = _absolute(module, node)
                for alias in node.names:
                    if f"{source}.{alias.name}" in MODULES:
                        bound[alias.asname or alias.name] = f"{source}.{alias.name}"
                    elif source in MODULES and source != module and _private(alias.name):
                        out[(module, f"{source}.{alias.name}")] = f"{path.relative_to(ROOT)}:{node.lineno}"
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and _private(node.attr):
                chain, value = [], node.value
                while isinstance(value, ast.Attribute):
                    chain.append(value.attr)
                    value = value.value
                if isinstance(value, ast.Name) and value.id in bound:
                    owner = ".".join([bound[value.id], *reversed(chain)])
                    if owner in MODULES and owner != module:
                        out[(module, f"{owner}.{node.attr}")] = f"{path.relative_to(ROOT)}:{node.lineno}"
    return out


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def test_the_graph_sees_imports_inside_functions_and_relative_ones(tmp_path, monkeypatch):
    """The checker itself, on a made-up package: a cycle closed by an import inside a function,
    a relative import, and private names taken both ways are all found."""
    pkg = tmp_path / "flywheel"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from flywheel.sub import b\n\ndef f():\n    return b.g()\n")
    (pkg / "sub" / "b.py").write_text("def g():\n    from ..a import f\n    return f\n")
    (pkg / "c.py").write_text("import flywheel.sub.b as bee\nfrom flywheel.a import _hidden\n\nx = bee._inner\n")
    this = sys.modules[__name__]
    monkeypatch.setattr(this, "ROOT", tmp_path)
    monkeypatch.setattr(this, "PACKAGES", ("flywheel",))
    monkeypatch.setattr(this, "MODULES", _modules())
    graph = import_graph()
    assert graph["flywheel.a"] == {"flywheel.sub.b": 1} and graph["flywheel.sub.b"] == {"flywheel.a": 2}
    assert find_cycle(graph) == ["flywheel.a", "flywheel.sub.b", "flywheel.a"]
    assert set(private_imports()) == {("flywheel.c", "flywheel.a._hidden"), ("flywheel.c", "flywheel.sub.b._inner")}
    del graph["flywheel.sub.b"]["flywheel.a"]
    assert find_cycle(graph) is None


def test_no_import_cycles():
    graph = import_graph()
    stale = sorted(edge for edge in KNOWN_CYCLE_IMPORTS if edge[1] not in graph.get(edge[0], {}))
    assert not stale, f"these imports are gone: remove them from KNOWN_CYCLE_IMPORTS: {stale}"
    for importer, imported in KNOWN_CYCLE_IMPORTS:
        del graph[importer][imported]
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle:\n" + _describe(cycle, graph)


def test_known_cycle_imports_still_close_a_cycle():
    """An allow-listed import that no longer closes a cycle is no longer a known violation."""
    graph = import_graph()
    for importer, imported in sorted(KNOWN_CYCLE_IMPORTS):
        others = {m: dict(targets) for m, targets in graph.items()}
        for a, b in KNOWN_CYCLE_IMPORTS - {(importer, imported)}:
            others[a].pop(b, None)
        cycle = find_cycle(others)
        assert cycle is not None and (importer, imported) in zip(cycle, cycle[1:]), \
            f"{importer} -> {imported} closes no cycle any more: remove it from KNOWN_CYCLE_IMPORTS"


def test_no_private_names_across_modules():
    found = private_imports()
    stale = sorted(KNOWN_PRIVATE_IMPORTS - set(found))
    assert not stale, f"these are gone: remove them from KNOWN_PRIVATE_IMPORTS: {stale}"
    new = {key: where for key, where in found.items() if key not in KNOWN_PRIVATE_IMPORTS}
    assert not new, "private names taken from another module (make them public or move them):\n" + "\n".join(
        f"  {where}: {importer} uses {name}" for (importer, name), where in sorted(new.items(), key=lambda kv: kv[1]))
