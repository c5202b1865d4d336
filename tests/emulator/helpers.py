"""Helpers for the emulator's tests: request bodies, waiting for batches, raw HTTP."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import anthropic
import httpx2

from anthropic_batch_request_util.emulator import Emulator

MODEL = "claude-haiku-4-5"
KEY = "test-key"
#: the headers the 2.x SDK would send, for raw HTTP calls
HEADERS = {"authorization": f"Bearer {KEY}", "anthropic-version": "2026-10-21"}
OLD_VERSION = {"anthropic-version": "2023-06-01"}  #: what 0.x/1.x SDKs send
WAIT_S = 15.0  #: longest a test waits for a batch to end


def params(question: str = "What is 2+2?", **extra: Any) -> dict[str, Any]:
    """A valid Messages request body."""
    body: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 256,
        "messages": [{"role": "user", "content": question}],
    }
    return body | extra


def requests(count: int, prefix: str = "req", **extra: Any) -> list[dict[str, Any]]:
    """`count` batch requests with custom ids `<prefix>-0`, `<prefix>-1`, …"""
    return [
        {"custom_id": f"{prefix}-{i}", "params": params(f"Question number {i}?", **extra)}
        for i in range(count)
    ]


def sync_client(emu: Emulator, **options: Any) -> anthropic.Anthropic:
    """An SDK client on the emulator that does not retry (so faults show), unless told."""
    options = {"max_retries": 0} | options
    return anthropic.Anthropic(base_url=emu.base_url, api_key=KEY, **options)


def async_client(emu: Emulator, **options: Any) -> anthropic.AsyncAnthropic:
    """The async twin of `sync_client`."""
    return anthropic.AsyncAnthropic(base_url=emu.base_url, api_key=KEY, max_retries=0, **options)


def wait_ended(client: anthropic.Anthropic, batch_id: str) -> Any:
    """Poll a batch until it has ended; the ended MessageBatch."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        batch = client.messages.batches.retrieve(batch_id)
        if batch.processing_status == "ended":
            return batch
        time.sleep(0.02)
    raise AssertionError(f"batch {batch_id} did not end within {WAIT_S} s")


async def wait_ended_async(client: anthropic.AsyncAnthropic, batch_id: str) -> Any:
    """`wait_ended` for the async client."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        batch = await client.messages.batches.retrieve(batch_id)
        if batch.processing_status == "ended":
            return batch
        await asyncio.sleep(0.02)
    raise AssertionError(f"batch {batch_id} did not end within {WAIT_S} s")


def raw(emu: Emulator) -> httpx2.Client:
    """A plain HTTP client on the emulator, for what the SDK will not send."""
    return httpx2.Client(base_url=emu.base_url, timeout=30)
