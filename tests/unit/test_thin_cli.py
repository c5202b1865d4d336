"""The command line is thin: it drives jobs only through the Python API (`jobs`), never
through the engine's runner functions or the store's writing functions."""

from __future__ import annotations

import ast
from pathlib import Path

import anthropic_batch_request_util

CLI = Path(anthropic_batch_request_util.__file__).parent / "cli"
#: what the CLI may still take from the runner: nothing; every command goes through the API
RUNNER_READS: set[str] = set()
STORE_WRITES = {"exports", "bodies", "segments", "locks", "migrations", "worst_cases"}


def _uses(path: Path) -> set[str]:
    """What a module takes: ``module:name`` per import (relative, as written), and
    ``runner.attr`` per use of the runner module."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            found |= {f"{base}:{alias.name}" for alias in node.names}
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "runner"
        ):
            found.add(f"runner.{node.attr}")
    return found


def _forbidden(used: str) -> bool:
    module, _, name = used.partition(":")
    if module == "..engine.runner":
        return True
    if used.startswith("runner."):
        return used.removeprefix("runner.") not in RUNNER_READS
    store_module = name if module == "..store" else module.removeprefix("..store.")
    return module.startswith("..store") and store_module in STORE_WRITES


def test_the_cli_drives_jobs_only_through_the_python_api() -> None:
    offenders = [
        (path.name, used)
        for path in sorted(CLI.glob("*.py"))
        for used in _uses(path)
        if _forbidden(used)
    ]

    assert offenders == []
