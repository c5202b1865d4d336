"""The API's limits: calls per window on the batch endpoints, queued requests, the 404 of a
batch just created, latency; their statistics and their change at run time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime

import anthropic
import pytest

from anthropic_batch_request_util.emulator import Emulator

from .helpers import HEADERS, async_client, params, raw, requests, sync_client, wait_ended

HEADER = "anthropic-ratelimit-requests-"


def test_batch_calls_over_the_rate_limit_get_429_with_retry_after(
    make_emu: Callable[..., Emulator],
) -> None:
    # Given 3 batch calls allowed per 1.5 seconds
    emu = make_emu(rate_limit_per_window=3, rate_limit_window_s=1.5)
    with sync_client(emu) as client:
        # When four are made at once
        answers = [client.messages.batches.with_raw_response.list() for _ in range(3)]
        with pytest.raises(anthropic.RateLimitError) as refused:
            client.messages.batches.list()
        # Then the first three say what is left, and the fourth when to come back
        assert [a.headers[f"{HEADER}remaining"] for a in answers] == ["2", "1", "0"]
        assert {a.headers[f"{HEADER}limit"] for a in answers} == {"3"}
        reset = datetime.fromisoformat(answers[-1].headers[f"{HEADER}reset"])
        assert 0 < reset.timestamp() - time.time() <= 1.5
        headers = refused.value.response.headers
        retry_after = float(headers["retry-after"])
        assert 0 < retry_after <= 1.5 / 3 + 0.001 and headers[f"{HEADER}remaining"] == "0"
        assert refused.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
        # And once retry-after has passed, a call gets through again
        time.sleep(retry_after)
        client.messages.batches.list()
    stats = emu.stats()
    assert stats["http_429_sent"] == {"rate_limit": 1, "queued_limit": 0, "fault": 0}
    assert stats["calls"]["list"] == 5


def test_messages_calls_do_not_count_against_the_batch_rate_limit(
    make_emu: Callable[..., Emulator],
) -> None:
    emu = make_emu(rate_limit_per_window=1, rate_limit_window_s=60)
    with sync_client(emu) as client:
        for _ in range(3):
            answer = client.messages.with_raw_response.create(**params())
            assert f"{HEADER}limit" not in answer.headers
        client.messages.batches.list()
        with pytest.raises(anthropic.RateLimitError):
            client.messages.batches.create(requests=requests(1))
    assert emu.stats()["calls"]["messages"] == 3


def test_the_sdk_retries_honour_retry_after_and_get_through(
    make_emu: Callable[..., Emulator],
) -> None:
    emu = make_emu(rate_limit_per_window=2, rate_limit_window_s=0.2)
    with sync_client(emu, max_retries=5) as client:
        made = [client.messages.batches.create(requests=requests(1, f"b{i}")).id for i in range(5)]
    assert len(set(made)) == 5
    stats = emu.stats()
    assert stats["batches_created"] == 5
    assert stats["calls"]["create"] == 5 + stats["http_429_sent"]["rate_limit"]


def test_the_async_client_meets_the_same_rate_limit(make_emu: Callable[..., Emulator]) -> None:
    emu = make_emu(rate_limit_per_window=2, rate_limit_window_s=60)

    async def run() -> None:
        async with async_client(emu) as client:
            await client.messages.batches.create(requests=requests(1))
            page = await client.messages.batches.with_raw_response.list()
            assert page.headers[f"{HEADER}remaining"] == "0"
            with pytest.raises(anthropic.RateLimitError):
                await client.messages.batches.list()

    asyncio.run(run())
    assert emu.stats()["http_429_sent"]["rate_limit"] == 1


def test_a_create_over_the_queued_requests_limit_is_refused(
    make_emu: Callable[..., Emulator],
) -> None:
    # Given room for 5 queued requests, and batches that stay in progress
    emu = make_emu(queued_requests_limit=5, processing_seconds=3600)
    with sync_client(emu) as client:
        first = client.messages.batches.create(requests=requests(3)).id
        # When a batch would take the queue over the limit, it is refused; one that fits is not
        with pytest.raises(anthropic.RateLimitError, match="queue") as refused:
            client.messages.batches.create(requests=requests(3, "b"))
        assert "retry-after" in refused.value.response.headers
        client.messages.batches.create(requests=requests(2, "c"))
        assert emu.stats()["queued_requests"] == 5
        # Then once the queued batches end, there is room again
        emu.finish()
        wait_ended(client, first)
        client.messages.batches.create(requests=requests(5, "d"))
    stats = emu.stats()
    assert stats["http_429_sent"]["queued_limit"] == 1
    assert stats["batches_created"] == 3 and stats["requests_submitted"] == 10


def test_a_batch_just_created_is_not_found_for_a_while(make_emu: Callable[..., Emulator]) -> None:
    emu = make_emu(not_found_after_create_s=0.3)
    with sync_client(emu) as client:
        batch = client.messages.batches.create(requests=requests(1))
        with pytest.raises(anthropic.NotFoundError):
            client.messages.batches.retrieve(batch.id)
        with raw(emu) as http:
            results = http.get(f"/v1/messages/batches/{batch.id}/results", headers=HEADERS)
        assert results.status_code == 404
        assert [b.id for b in client.messages.batches.list()] == [batch.id]
        time.sleep(0.3)
        assert wait_ended(client, batch.id).request_counts.succeeded == 1
    assert emu.stats()["not_found_after_create"] == 2


def test_latency_is_added_to_every_call(make_emu: Callable[..., Emulator]) -> None:
    emu = make_emu(latency_s=0.15)
    with sync_client(emu) as client:
        started = time.monotonic()
        client.messages.batches.list()
        client.messages.count_tokens(model=params()["model"], messages=params()["messages"])
        elapsed = time.monotonic() - started
    assert elapsed >= 0.3


def test_stats_count_calls_per_endpoint(emu: Emulator, client: anthropic.Anthropic) -> None:
    batch = client.messages.batches.create(requests=requests(2))
    wait_ended(client, batch.id)
    list(client.messages.batches.results(batch.id))
    client.messages.batches.list()
    client.messages.batches.delete(batch.id)
    client.messages.create(**params())
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.cancel(batch.id)

    calls = emu.stats()["calls"]
    retrieves = calls.pop("retrieve")
    assert retrieves >= 2  # the polls, and the one results() makes
    assert calls == {
        "create": 1, "list": 1, "results": 1, "cancel": 1, "delete": 1,
        "messages": 1, "count_tokens": 0,
    }  # fmt: skip


def test_an_injected_429_is_counted_as_a_fault(make_emu: Callable[..., Emulator]) -> None:
    emu = make_emu(faults={"http_429": 1.0})
    with sync_client(emu) as client, pytest.raises(anthropic.RateLimitError):
        client.messages.batches.list()
    assert emu.stats()["http_429_sent"] == {"rate_limit": 0, "queued_limit": 0, "fault": 1}


def test_limits_change_while_running_and_reset_restores_them(emu: Emulator) -> None:
    with raw(emu) as http, sync_client(emu) as client:
        changed = http.post("/_admin/limits", json={"rate_limit_per_window": 1, "latency_s": 0})
        assert changed.status_code == 200
        assert changed.json() == http.get("/_admin/limits").json() == emu.stats()["limits"]
        assert changed.json()["rate_limit_per_window"] == 1
        client.messages.batches.list()
        with pytest.raises(anthropic.RateLimitError):
            client.messages.batches.list()
        assert emu.set_limits(rate_limit_per_window=None)["rate_limit_per_window"] is None
        client.messages.batches.list()
        for bad in ({"rate_limit_per_window": 0}, {"latency_s": -1}, {"nope": 1}):
            refused = http.post("/_admin/limits", json=bad)
            assert refused.status_code == 400, bad
            assert refused.json()["error"]["type"] == "invalid_request_error"
        emu.set_limits(queued_requests_limit=7)
        http.post("/_admin/reset")
    assert emu.stats()["limits"]["queued_requests_limit"] is None
    assert emu.stats()["calls"]["list"] == 0
