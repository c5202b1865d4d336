"""Helpers for end-to-end tests: run `abr` as a user would, make inputs, read outputs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
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


def wait_for_batches(
    emulator: Emulator,
    count: int = 1,
    *,
    process: subprocess.Popen[str] | None = None,
    timeout: float = 30.0,
) -> None:
    """Wait until `emulator` has created `count` batches; with `process`, fail at once
    (with its output) if it ends before that."""
    deadline = time.monotonic() + timeout
    while emulator.stats()["batches_created"] < count:
        if process is not None:
            assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"fewer than {count} batches in {timeout} s"
        time.sleep(0.05)


def interrupted_run(
    emulator: Emulator, *args: str, env: dict[str, str] | None = None, batches: int = 1
) -> str:
    """Start `abr run ARGS`, press Ctrl-C once `batches` of its batches are created; its
    stdout, once it has ended with 130."""
    process = subprocess.Popen(
        abr_command("run", *args),
        env=env if env is not None else abr_env(emulator),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for_batches(emulator, batches)
    time.sleep(0.3)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 130, err
    return out
