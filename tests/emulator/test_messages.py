"""`POST /v1/messages` and `/v1/messages/count_tokens`, and the prompt-caching rule."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

import anthropic
import pytest

from anthropic_batch_request_util.emulator import Emulator, reply_text

from .helpers import HEADERS, OLD_VERSION, async_client, params, raw, sync_client, wait_ended

SYSTEM = "You answer questions about the solar system. " * 10  # 450 bytes: 113 tokens
CACHED_SYSTEM = [{"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}]


def usage_numbers(usage: Any) -> tuple[int, int, int, int, int]:
    """(input, cache written 5m, cache written 1h, cache read, written in total)."""
    created = usage.cache_creation
    return (
        usage.input_tokens,
        created.ephemeral_5m_input_tokens,
        created.ephemeral_1h_input_tokens,
        usage.cache_read_input_tokens,
        usage.cache_creation_input_tokens,
    )


def test_messages_create_answers_with_a_full_message(client: anthropic.Anthropic) -> None:
    body = params("Name a planet.")

    message = client.messages.create(**body)

    assert re.fullmatch(r"msg_01[1-9A-HJ-NP-Za-km-z]{22}", message.id)
    assert message.type == "message" and message.role == "assistant"
    assert message.model == body["model"]
    assert message.content[0].text == reply_text(body)
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    assert message.usage.service_tier == "standard"
    assert message.usage.input_tokens == 4  # ceil(14 / 4)
    assert message._request_id is not None


def test_async_messages_create_and_count_tokens(emu: Emulator) -> None:
    async def run() -> tuple[Any, Any]:
        async with async_client(emu) as client:
            message = await client.messages.create(**params("Name a moon."))
            count = await client.messages.count_tokens(
                model="claude-haiku-4-5", messages=[{"role": "user", "content": "abcdefgh"}]
            )
            return message, count

    message, count = asyncio.run(run())

    assert message.content[0].text == reply_text(params("Name a moon."))
    assert count.input_tokens == 2


def test_count_tokens_adds_system_messages_and_tools(client: anthropic.Anthropic) -> None:
    tool = {"name": "t", "input_schema": {"type": "object"}}
    count = client.messages.count_tokens(
        model="claude-haiku-4-5",
        system="12345678",
        messages=[{"role": "user", "content": [{"type": "text", "text": "abcd"}]}],
        tools=[tool],
    )
    tool_json = b'{"name":"t","input_schema":{"type":"object"}}'
    assert count.input_tokens == 2 + 1 + -(-len(tool_json) // 4)


def test_count_tokens_needs_model_and_messages(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError, match="messages: Field required"):
        client.messages.count_tokens(model="claude-haiku-4-5", messages=anthropic.omit)


def test_temperature_is_rejected_with_2026_10_21_and_accepted_with_2023_06_01(
    emu: Emulator,
) -> None:
    with sync_client(emu) as new, sync_client(emu, default_headers=OLD_VERSION) as old:
        with pytest.raises(anthropic.BadRequestError, match="temperature"):
            new.messages.create(**params(), extra_body={"temperature": 0.2})
        with pytest.raises(anthropic.BadRequestError, match="top_p"):
            new.messages.count_tokens(
                model="m", messages=[{"role": "user", "content": "hi"}], extra_body={"top_p": 1}
            )
        message = old.messages.create(**params(), extra_body={"temperature": 0.2})
    assert message.stop_reason == "end_turn"


def test_an_invalid_messages_request_is_400(emu: Emulator, client: anthropic.Anthropic) -> None:
    with raw(emu) as http:
        response = http.post("/v1/messages", json={"model": "m", "messages": []}, headers=HEADERS)
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "max_tokens: Field required"
    with pytest.raises(anthropic.BadRequestError, match=r"messages\.0\.content: Field required"):
        client.messages.create(**params(messages=[{"role": "user"}]))


def test_a_cached_system_prompt_is_written_once_then_read(client: anthropic.Anthropic) -> None:
    first = client.messages.create(**params("First?", system=CACHED_SYSTEM))
    second = client.messages.create(**params("Second one?", system=CACHED_SYSTEM))

    assert usage_numbers(first.usage) == (2, 113, 0, 0, 113)  # "First?": 6 bytes, 2 tokens
    assert usage_numbers(second.usage) == (3, 0, 0, 113, 0)  # "Second one?": 11 bytes


def test_a_one_hour_breakpoint_counts_under_its_ttl(client: anthropic.Anthropic) -> None:
    system = [{**CACHED_SYSTEM[0], "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
    message = client.messages.create(**params("Hi", system=system))
    assert usage_numbers(message.usage) == (1, 0, 113, 0, 113)


def test_top_level_cache_control_caches_the_whole_prompt(client: anthropic.Anthropic) -> None:
    body = params("abcdefgh", system="12345678", cache_control={"type": "ephemeral"})
    first = client.messages.create(**body)
    again = client.messages.create(**body)
    assert usage_numbers(first.usage) == (0, 4, 0, 0, 4)
    assert usage_numbers(again.usage) == (0, 0, 0, 4, 0)


def test_two_breakpoints_read_the_longest_cached_prefix(client: anthropic.Anthropic) -> None:
    def body(question: str) -> dict[str, Any]:
        turn = {"type": "text", "text": "a" * 40, "cache_control": {"type": "ephemeral"}}
        messages = [
            {"role": "user", "content": [turn]},
            {"role": "assistant", "content": "b" * 8},
            {"role": "user", "content": question},
        ]
        return params(system=CACHED_SYSTEM, messages=messages)

    first = client.messages.create(**body("one"))
    same_prefix = client.messages.create(**body("two"))
    other_turn = client.messages.create(**params("x", system=CACHED_SYSTEM))

    # system 113 + turn 10 + reply 2 + question 1
    assert usage_numbers(first.usage) == (3, 123, 0, 0, 123)
    assert usage_numbers(same_prefix.usage) == (3, 0, 0, 123, 0)
    assert usage_numbers(other_turn.usage) == (1, 0, 0, 113, 0)


def test_prefixes_under_min_cache_tokens_are_not_cached(
    make_emu: Callable[..., Emulator],
) -> None:
    emu = make_emu(min_cache_tokens=200)
    with sync_client(emu) as client:
        first = client.messages.create(**params("Hi", system=CACHED_SYSTEM))
        second = client.messages.create(**params("Hi", system=CACHED_SYSTEM))
    assert usage_numbers(first.usage) == usage_numbers(second.usage) == (114, 0, 0, 0, 0)


def test_the_cache_depends_on_the_model(client: anthropic.Anthropic) -> None:
    client.messages.create(**params("Hi", system=CACHED_SYSTEM))
    other = client.messages.create(**params("Hi", system=CACHED_SYSTEM, model="claude-opus-4-7"))
    assert usage_numbers(other.usage) == (1, 113, 0, 0, 113)


def test_batch_requests_share_the_cache_in_request_order(client: anthropic.Anthropic) -> None:
    sent = [
        {"custom_id": f"c{i}", "params": params(f"Question {i}", system=CACHED_SYSTEM)}
        for i in range(3)
    ]
    sent.insert(1, {"custom_id": "bad", "params": params(max_tokens=0, system=CACHED_SYSTEM)})
    batch = client.messages.batches.create(requests=sent)
    wait_ended(client, batch.id)

    usage = {
        line.custom_id: usage_numbers(line.result.message.usage)
        for line in client.messages.batches.results(batch.id)
        if line.result.type == "succeeded"
    }

    assert usage == {
        "c0": (3, 113, 0, 0, 113),
        "c1": (3, 0, 0, 113, 0),
        "c2": (3, 0, 0, 113, 0),
    }
