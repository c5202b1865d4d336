"""`POST /v1/messages` with `stream: true`: the documented events, the same final message,
and faults in the middle of a stream."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import anthropic
import httpx2
import pytest

from anthropic_batch_request_util.emulator import Emulator, reply_text

from .helpers import HEADERS, async_client, params, raw, sync_client

#: what `Message.model_dump` holds that must match between a streamed and a whole answer
SAME = {"id"}  # excluded: every answer has a fresh id


def whole(message: Any) -> dict[str, Any]:
    """A Message without its id."""
    return dict(message.model_dump(exclude=SAME))


def test_a_raw_stream_sends_the_documented_events_in_order(emu: Emulator) -> None:
    body = params("Tell me about the weather in Paris today")
    with raw(emu) as http:
        response = http.post("/v1/messages", json=body | {"stream": True}, headers=HEADERS)
    events = [line[7:] for line in response.text.splitlines() if line.startswith("event: ")]

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert events[:3] == ["message_start", "content_block_start", "ping"]
    assert events[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    deltas = events[3:-3]
    assert len(deltas) >= 3 and set(deltas) == {"content_block_delta"}


def test_the_sync_helper_gives_the_non_streaming_message(client: anthropic.Anthropic) -> None:
    body = params("How long is the Seine?")
    answer = client.messages.create(**body)

    with client.messages.stream(**body) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()

    assert len(pieces) > 1 and "".join(pieces) == reply_text(body)
    assert whole(final) == whole(answer)
    assert final.usage.output_tokens == answer.usage.output_tokens > 1


def test_create_stream_true_gives_the_same_events_the_helper_reads(
    client: anthropic.Anthropic,
) -> None:
    body = params("What is a river?")
    events = list(client.messages.create(**body, stream=True))

    kinds = [event.type for event in events]
    text = "".join(e.delta.text for e in events if e.type == "content_block_delta")
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert text == reply_text(body)
    stop = next(e for e in events if e.type == "message_delta")
    assert stop.delta.stop_reason == "end_turn" and stop.usage.input_tokens is not None


def test_a_stream_cut_at_max_tokens_says_so(client: anthropic.Anthropic) -> None:
    body = params("A question long enough to be cut short by max_tokens", max_tokens=3)
    with client.messages.stream(**body) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "max_tokens" and final.usage.output_tokens == 3
    assert whole(final) == whole(client.messages.create(**body))


def test_the_async_client_streams_the_same_message(emu: Emulator) -> None:
    body = params("Where is Lyon?")

    async def run() -> tuple[Any, Any, str]:
        async with async_client(emu) as client:
            answer = await client.messages.create(**body)
            async with client.messages.stream(**body) as stream:
                final = await stream.get_final_message()
            text = ""
            async for event in await client.messages.create(**body, stream=True):
                if event.type == "content_block_delta" and event.delta.type == "text_delta":
                    text += event.delta.text
            return answer, final, text

    answer, final, text = asyncio.run(run())
    assert whole(final) == whole(answer)
    assert text == reply_text(body)


def test_a_stream_error_fault_sends_an_error_event_mid_stream(
    make_emu: Callable[..., Emulator],
) -> None:
    emu = make_emu(faults={"stream_error": 1.0})
    seen: list[str] = []
    with sync_client(emu) as client, pytest.raises(anthropic.APIStatusError) as raised:
        for event in client.messages.create(**params(), stream=True):
            seen.append(event.type)

    assert "content_block_delta" in seen and "message_stop" not in seen
    assert raised.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]
    assert emu.stats()["http_faults_injected"]["stream_error"] == 1


def test_a_stream_cut_fault_closes_the_connection_mid_event(
    make_emu: Callable[..., Emulator],
) -> None:
    emu = make_emu(faults={"stream_cut": 1.0})
    with raw(emu) as http:
        body = params() | {"stream": True}
        with http.stream("POST", "/v1/messages", json=body, headers=HEADERS) as response:
            received = b""
            with pytest.raises(httpx2.TransportError):
                for piece in response.iter_bytes():
                    received += piece

    whole_events, partial = received.rsplit(b"\n\n", 1)
    assert whole_events.endswith(b"}}")
    assert partial.startswith(b"event: content_block_delta\ndata: {")  # cut inside an event
    assert b"message_stop" not in received
    assert emu.stats()["http_faults_injected"]["stream_cut"] == 1


def test_stream_faults_fire_at_their_fractions(make_emu: Callable[..., Emulator]) -> None:
    emu = make_emu(faults={"stream_error": 0.3})
    errors = 0
    with sync_client(emu) as client:
        for _ in range(200):
            try:
                list(client.messages.create(**params(), stream=True))
            except anthropic.APIStatusError:
                errors += 1
    assert abs(errors - 60) < 35  # about 5 standard deviations
    assert emu.stats()["http_faults_injected"]["stream_error"] == errors
