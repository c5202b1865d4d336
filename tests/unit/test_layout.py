"""The package's shape holds by test: SQL only in store/, no import cycles, modules small,
and every name one module takes from another is in that module's `__all__`."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import anthropic_batch_request_util

PACKAGE = Path(anthropic_batch_request_util.__file__).parent
NAME = "anthropic_batch_request_util"
MAX_LINES = 500  #: lines a module may have


def _modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join((NAME, *parts)), path


def _imports(module: str, path: Path) -> Iterator[tuple[str, list[str]]]:
    """(imported module, names taken from it) for every import in the file."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            yield base, [alias.name for alias in node.names]


def test_only_the_store_imports_sqlalchemy() -> None:
    offenders = [
        module
        for module, path in _modules()
        if not module.startswith(f"{NAME}.store")
        for imported, _ in _imports(module, path)
        if imported.split(".")[0] == "sqlalchemy"
    ]
    assert offenders == []


def _graph() -> dict[str, set[str]]:
    modules = dict(_modules())
    graph: dict[str, set[str]] = {module: set() for module in modules}
    for module, path in modules.items():
        for imported, names in _imports(module, path):
            for target in [imported, *(f"{imported}.{name}" for name in names)]:
                if target in modules and target != module:
                    graph[module].add(target)
    return graph


def test_the_package_has_no_import_cycles() -> None:
    graph = _graph()
    # a package's __init__ re-exporting its modules is not a cycle of the code
    for module in graph:
        graph[module] = {t for t in graph[module] if not module.startswith(t + ".")}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*trail[trail.index(nxt) :], nxt] if nxt in trail else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_no_module_is_over_the_size_limit() -> None:
    sizes = {module: len(path.read_text().splitlines()) for module, path in _modules()}
    assert {m: n for m, n in sizes.items() if n > MAX_LINES} == {}


def _exported(path: Path) -> set[str] | None:
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            return {ast.literal_eval(e) for e in node.value.elts}  # type: ignore[attr-defined]
    return None


def test_names_used_across_modules_are_in_their_all() -> None:
    modules = dict(_modules())
    missing: dict[str, set[str]] = {}
    for module, path in modules.items():
        for imported, names in _imports(module, path):
            if imported not in modules or imported == module:
                continue
            exported = _exported(modules[imported])
            public = {
                n for n in names if not n.startswith("_") and f"{imported}.{n}" not in modules
            }
            if exported is None:
                continue
            if public - exported:
                missing.setdefault(imported, set()).update(public - exported)
    assert missing == {}


def test_no_module_takes_a_private_name_from_another() -> None:
    modules = dict(_modules())
    taken = [
        f"{module}: {imported}.{name}"
        for module, path in modules.items()
        for imported, names in _imports(module, path)
        if imported in modules and imported != module
        for name in names
        if name.startswith("_") and name != "__version__"
    ]
    assert taken == []
