"""Every batch endpoint through the async SDK client (`asyncio.run` in plain tests)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import anthropic
import pytest

from anthropic_batch_request_util.emulator import Emulator, reply_text

from .helpers import OLD_VERSION, async_client, requests, wait_ended_async


def test_async_create_retrieve_results_and_delete(emu: Emulator) -> None:
    sent = requests(8)

    async def run() -> None:
        async with async_client(emu) as client:
            batch = await client.messages.batches.create(requests=sent)
            assert batch.processing_status == "in_progress"
            ended = await wait_ended_async(client, batch.id)
            assert ended.request_counts.succeeded == 8
            assert ended.results_url and ended.results_url.startswith(emu.base_url)
            decoder = await client.messages.batches.results(batch.id)
            texts = {line.custom_id: line.result.message.content[0].text async for line in decoder}
            assert texts == {r["custom_id"]: reply_text(r["params"]) for r in sent}
            deleted = await client.messages.batches.delete(batch.id)
            assert deleted.type == "message_batch_deleted"
            with pytest.raises(anthropic.NotFoundError):
                await client.messages.batches.retrieve(batch.id)

    asyncio.run(run())


def test_async_list_pages_and_iterates(emu: Emulator) -> None:
    async def run() -> None:
        async with async_client(emu) as client:
            made = [
                (await client.messages.batches.create(requests=requests(1))).id for _ in range(3)
            ]
            first = await client.messages.batches.list(limit=2)
            assert [b.id for b in first.data] == made[::-1][:2] and first.has_more
            every = [b.id async for b in client.messages.batches.list(limit=2)]
            assert every == made[::-1]
            newer = await client.messages.batches.list(before_id=made[0], limit=1)
            assert [b.id for b in newer.data] == [made[1]]

    asyncio.run(run())


def test_async_cancel_ends_with_canceled_rows(make_emu: Callable[..., Emulator]) -> None:
    emu = make_emu(processing_seconds=5.0, cancel_seconds=0.05)

    async def run() -> None:
        async with async_client(emu) as client:
            batch = await client.messages.batches.create(requests=requests(4))
            canceling = await client.messages.batches.cancel(batch.id)
            assert canceling.processing_status == "canceling"
            ended = await wait_ended_async(client, batch.id)
            assert ended.request_counts.canceled == 4
            decoder = await client.messages.batches.results(batch.id)
            assert {line.result.type async for line in decoder} == {"canceled"}
            with pytest.raises(anthropic.BadRequestError):
                await client.messages.batches.cancel(batch.id)

    asyncio.run(run())


def test_async_client_with_the_older_api_version(emu: Emulator) -> None:
    async def run() -> int:
        async with async_client(emu, default_headers=OLD_VERSION) as client:
            body = requests(1, temperature=0.3)
            batch = await client.messages.batches.create(requests=body)
            ended = await wait_ended_async(client, batch.id)
            return ended.request_counts.succeeded

    assert asyncio.run(run()) == 1


def test_async_errors_map_to_sdk_exceptions(make_emu: Callable[..., Emulator]) -> None:
    emu = make_emu(max_requests_per_batch=2)

    async def run() -> None:
        async with async_client(emu) as client:
            with pytest.raises(anthropic.BadRequestError):
                await client.messages.batches.create(requests=requests(3))
            with pytest.raises(anthropic.NotFoundError):
                await client.messages.batches.delete("msgbatch_01unknown")

    asyncio.run(run())
