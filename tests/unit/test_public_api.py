"""The package's public surface: `__all__` is pinned so it cannot drift silently, every name
in it imports, and the error tree keeps the shape and exit codes errors.py documents."""

from __future__ import annotations

import importlib.metadata
import inspect

import pytest

import anthropic_batch_request_util as abr
from anthropic_batch_request_util import errors

PUBLIC_NAMES = [
    "AbrError",
    "ApiError",
    "BudgetExceededError",
    "Chunk",
    "InputError",
    "Job",
    "JobInterrupted",
    "JobNotFoundError",
    "LocalFaultError",
    "MissingApiKeyError",
    "Result",
    "Settings",
    "SettingsError",
    "Status",
    "StoreError",
    "StoreFullError",
    "StoreUnavailableError",
    "Usage",
    "UsageError",
    "__version__",
    "job",
    "jobs",
    "run",
    "submit",
]

#: error class -> (its parents, the exit code the command line gives it)
ERROR_TREE: dict[str, tuple[str, int]] = {
    "UsageError": ("AbrError", 2),
    "SettingsError": ("UsageError", 2),
    "InputError": ("UsageError", 2),
    "MissingApiKeyError": ("UsageError", 2),
    "JobNotFoundError": ("UsageError", 2),
    "ApiError": ("AbrError", 1),
    "StoreError": ("AbrError", 1),
    "StoreUnavailableError": ("StoreError", 1),
    "StoreFullError": ("StoreError LocalFaultError", 1),
    "LocalFaultError": ("AbrError", 1),
    "BudgetExceededError": ("AbrError", 1),
}


def test_all_is_pinned() -> None:
    assert abr.__all__ == PUBLIC_NAMES, "update PUBLIC_NAMES (and the docs) on purpose"


@pytest.mark.parametrize("name", PUBLIC_NAMES)
def test_every_public_name_imports(name: str) -> None:
    namespace: dict[str, object] = {}
    exec(f"from anthropic_batch_request_util import {name}", namespace)

    assert namespace[name] is getattr(abr, name)


def test_star_import_gives_exactly_the_public_names() -> None:
    namespace: dict[str, object] = {}
    exec("from anthropic_batch_request_util import *", namespace)

    assert sorted(set(namespace) - {"__builtins__"}) == sorted(PUBLIC_NAMES)


def test_version_is_the_installed_distribution_version() -> None:
    assert abr.__version__ == importlib.metadata.version("anthropic-batch-request-util")


@pytest.mark.parametrize(("name", "parent_and_code"), ERROR_TREE.items())
def test_error_tree_keeps_its_parents_and_exit_codes(
    name: str, parent_and_code: tuple[str, int]
) -> None:
    parent, exit_code = parent_and_code
    error_class = getattr(abr, name)

    assert error_class.__bases__ == tuple(getattr(abr, name) for name in parent.split())
    assert error_class.exit_code == exit_code
    assert getattr(errors, name) is error_class


def test_every_public_error_is_an_abr_error() -> None:
    public_errors = [getattr(abr, name) for name in PUBLIC_NAMES if name.endswith("Error")]

    assert all(issubclass(error, abr.AbrError) for error in public_errors)
    assert abr.AbrError.exit_code == 1
    assert set(errors.__all__) == {
        name for name in PUBLIC_NAMES if name.endswith("Error") or name == "JobInterrupted"
    }


def test_ctrl_c_is_a_keyboard_interrupt_not_an_error() -> None:
    # an `except Exception` meant for failures must not swallow a Ctrl-C
    assert abr.JobInterrupted.__bases__ == (KeyboardInterrupt,)
    assert "abr resume job-1" in str(abr.JobInterrupted("job-1"))


def public_members() -> list[tuple[str, object]]:
    """Every public name, and every public method and property of the public classes."""
    found: list[tuple[str, object]] = []
    for name in PUBLIC_NAMES:
        value = getattr(abr, name)
        if name.startswith("__"):
            continue
        found.append((name, value))
        if inspect.isclass(value) and value.__module__.startswith(abr.__name__):
            found += [
                (f"{name}.{member}", attribute)
                for member, attribute in vars(value).items()
                if not member.startswith("_")
                and (inspect.isfunction(attribute) or isinstance(attribute, property))
            ]
    return found


@pytest.mark.parametrize(("name", "value"), public_members(), ids=[n for n, _ in public_members()])
def test_every_public_name_has_a_docstring(name: str, value: object) -> None:
    assert inspect.getdoc(value), f"{name} has no docstring"
