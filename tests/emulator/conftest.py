"""Fixtures for the emulator's tests: an in-process emulator on a free port."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import pytest

from anthropic_batch_request_util.emulator import Emulator, EmulatorConfig

from .helpers import sync_client

#: fast settings for tests: short batches, no wait after a 429, quick cancels
FAST = {"processing_seconds": 0.1, "retry_after": 0.0, "cancel_seconds": 0.05, "seed": 7}


@pytest.fixture
def make_emu() -> Iterator[Callable[..., Emulator]]:
    """Start emulators with FAST settings overridden by keyword; all stop after the test."""
    started: list[Emulator] = []

    def make(**overrides: Any) -> Emulator:
        emu = Emulator(EmulatorConfig(**(FAST | overrides))).start()
        started.append(emu)
        return emu

    yield make
    for emu in started:
        emu.close()


@pytest.fixture
def emu(make_emu: Callable[..., Emulator]) -> Emulator:
    """A running emulator with FAST settings."""
    return make_emu()


@pytest.fixture
def client(emu: Emulator) -> Iterator[anthropic.Anthropic]:
    """A sync SDK client on `emu` (2.x: anthropic-version 2026-10-21), no retries."""
    with sync_client(emu) as sdk:
        yield sdk
