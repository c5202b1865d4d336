"""Shared fixtures: every test runs in its own directory with its own settings, store and
environment, so no test touches the user's files or another test's state."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from anthropic_batch_request_util.emulator import Emulator, EmulatorConfig

TEST_API_KEY = "sk-ant-test-0000000000000000secret"


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in an empty directory, with a dummy key and no ABR_* settings from outside."""
    for name in list(os.environ):
        if name.startswith("ABR_") or name.startswith("ANTHROPIC_"):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ANTHROPIC_API_KEY", TEST_API_KEY)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    """A running emulator with fast batches; the SDK is pointed at it."""
    config = EmulatorConfig(processing_seconds=0.2, seed=1, retry_after=0.0)
    with Emulator(config, host="127.0.0.1", port=0) as server:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)
        yield server
