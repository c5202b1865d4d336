"""`POST /v1/messages` with `stream: true`: the reply as server-sent events.

The events follow the API's documented order: `message_start` (the message with no
content yet), `content_block_start`, `ping`, one `content_block_delta` per piece of the
text, `content_block_stop`, `message_delta` (stop_reason and the cumulative usage) and
`message_stop`. Put together, they give the same Message as the non-streaming answer.

A stream fault strikes after the first text delta: `stream_error` sends an `error` event
(overloaded_error, as the API does when it fails mid-answer) and ends the stream;
`stream_cut` sends half of the next event and closes the connection.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

from .faults import Fault
from .wire import ErrorType, dumps, error_envelope

DELTA_CHARS = 16  #: characters of reply text per content_block_delta
EVENT_STREAM = "text/event-stream; charset=utf-8"  #: the content-type of a stream
START_OUTPUT_TOKENS = 1  #: output tokens reported in message_start, as the API does
STREAM_ERROR_MESSAGE = "Overloaded (emulated stream_error fault)"


def sse(event: str, data: dict[str, Any]) -> bytes:
    """One server-sent event."""
    return b"event: %s\ndata: %s\n\n" % (event.encode(), dumps(data))


def text_pieces(text: str) -> list[str]:
    """The text cut into the pieces sent as deltas (at least one, even for '')."""
    return [text[at : at + DELTA_CHARS] for at in range(0, len(text), DELTA_CHARS)] or [""]


def message_events(message: dict[str, Any]) -> list[bytes]:
    """The events that stream `message` (a full non-streaming Message object)."""
    start = copy.deepcopy(message) | {"content": [], "stop_reason": None, "stop_details": None}
    start["usage"]["output_tokens"] = START_OUTPUT_TOKENS
    block = {"type": "text", "text": "", "citations": None}
    block_start = {"type": "content_block_start", "index": 0, "content_block": block}
    return [
        sse("message_start", {"type": "message_start", "message": start}),
        sse("content_block_start", block_start),
        sse("ping", {"type": "ping"}),
        *(_text_delta(piece) for piece in text_pieces(message["content"][0]["text"])),
        sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
        _message_delta(message),
        sse("message_stop", {"type": "message_stop"}),
    ]


def _text_delta(piece: str) -> bytes:
    delta = {"type": "text_delta", "text": piece}
    return sse("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta})


def _message_delta(message: dict[str, Any]) -> bytes:
    """stop_reason and the usage totals (cumulative, as the API sends them)."""
    usage = message["usage"]
    totals = (
        "input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens",
    )  # fmt: skip
    delta = {
        "stop_reason": message["stop_reason"],
        "stop_sequence": None,
        "stop_details": None,
        "container": None,
    }
    body = {"type": "message_delta", "delta": delta, "usage": {k: usage[k] for k in totals}}
    return sse("message_delta", body)


def stream_of(events: list[bytes], fault: Fault | None, request_id: str) -> Iterator[bytes]:
    """The events as sent, with a stream fault (if any) after the first text delta."""
    strike = 4  #: message_start, content_block_start, ping, the first delta
    if fault is None:
        yield from events
        return
    yield from events[:strike]
    if fault is Fault.STREAM_ERROR:
        envelope = error_envelope(ErrorType.OVERLOADED.value, STREAM_ERROR_MESSAGE, request_id)
        yield sse("error", envelope)
    else:  # stream_cut: half an event, then the caller closes the connection
        yield events[strike][: len(events[strike]) // 2]
