"""Helpers for end-to-end tests: run `abr` as a user would, make inputs, read outputs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from anthropic_batch_request_util.emulator import Emulator

FAST_SETTINGS = {
    "ABR_BATCH_POLL_INTERVAL": "0.05",
    "ABR_BATCH_POLL_MAX_INTERVAL": "0.2",
    "ABR_API_MAX_RETRIES": "3",
}


def abr_env(emulator: Emulator | None, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(FAST_SETTINGS)
    if emulator is not None:
        env["ANTHROPIC_BASE_URL"] = emulator.base_url
    env.update(extra)
    return env


def abr_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "anthropic_batch_request_util", *args]


def run_abr(
    *args: str, emulator: Emulator | None = None, timeout: float = 120, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        abr_command(*args),
        env=abr_env(emulator, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def questions(n: int) -> list[list[dict[str, str]]]:
    return [
        [{"role": "user", "content": f"Question number {i}: what is {i} + {i}?"}] for i in range(n)
    ]


def write_original(path: Path, n: int, prefix: str = "q", system: str = "Be brief.") -> Path:
    data = {"system_prompt": system, "messages_list": questions(n), "custom_id_prefix": prefix}
    path.write_bytes(orjson.dumps(data))
    return path


def read_results(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def summary(completed: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The --json object printed last on stdout."""
    last = completed.stdout.strip().splitlines()[-1]
    result: dict[str, Any] = orjson.loads(last)
    return result


def unavailable(what: str) -> None:
    """A service a test needs is down: skipped locally, a failure in CI (CI=true)."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} is not reachable in CI")
    pytest.skip(f"{what} is not reachable")
