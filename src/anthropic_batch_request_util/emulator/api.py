"""The `/v1` endpoints: routing and one handler per endpoint."""

from __future__ import annotations

import re
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .faults import Fault
from .replies import message_json, reply_text, shape_reply, usage_json
from .results import result_chunks
from .state import EmulatorState
from .streaming import EVENT_STREAM, message_events, stream_of
from .usage import measure_prompt
from .validate import check_params, parse_object
from .wire import Reply, invalid, new_id

DEFAULT_LIMIT = 20  #: batches per list page when `limit` is not given
MAX_LIMIT = 1000  #: largest `limit` a list page accepts


@dataclass
class Call:
    """One API call, as a handler sees it."""

    state: EmulatorState
    batch_id: str
    query: dict[str, list[str]]
    body: bytes
    version: str
    base_url: str  #: where this client reaches the emulator (for `results_url`)
    cut_results: bool = False
    request_id: str = ""  #: the `request-id` of the answer

    def take_body(self) -> bytes:
        """The body, which this call then forgets (so a 256 MB body can be freed early)."""
        body, self.body = self.body, b""
        return body


Handler = Callable[[Call], Reply]


@dataclass(frozen=True)
class Route:
    """An endpoint: method, path pattern, handler and the largest body it takes."""

    name: str  #: as counted in the statistics (see `limits.ENDPOINTS`)
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    large_body: bool = False  #: a batch create (max_batch_bytes), else max_message_bytes
    results: bool = False  #: the results download (the results_cut fault applies)


def create_batch(call: Call) -> Reply:
    """`POST /v1/messages/batches`."""
    batch = call.state.create_batch(call.take_body(), call.version)
    return Reply(batch.to_json(time.time(), call.base_url))


def retrieve_batch(call: Call) -> Reply:
    """`GET /v1/messages/batches/{id}`."""
    return Reply(call.state.visible_batch(call.batch_id).to_json(time.time(), call.base_url))


def list_batches(call: Call) -> Reply:
    """`GET /v1/messages/batches`: newest first, paged by after_id / before_id."""
    limit = _limit(call.query.get("limit", [str(DEFAULT_LIMIT)])[-1])
    after_id = call.query.get("after_id", [None])[-1]
    before_id = call.query.get("before_id", [None])[-1]
    page, has_more = call.state.list_batches(limit, after_id, before_id)
    now = time.time()
    data = [batch.to_json(now, call.base_url) for batch in page]
    first = data[0]["id"] if data else None
    last = data[-1]["id"] if data else None
    return Reply({"data": data, "has_more": has_more, "first_id": first, "last_id": last})


def _limit(text: str) -> int:
    try:
        limit = int(text)
    except ValueError:
        raise invalid("limit: Input should be a valid integer") from None
    if limit < 1:
        raise invalid("limit: Input should be greater than or equal to 1")
    if limit > MAX_LIMIT:
        raise invalid(f"limit: Input should be less than or equal to {MAX_LIMIT}")
    return limit


def cancel_batch(call: Call) -> Reply:
    """`POST /v1/messages/batches/{id}/cancel`."""
    batch = call.state.cancel(call.batch_id)
    return Reply(batch.to_json(time.time(), call.base_url))


def delete_batch(call: Call) -> Reply:
    """`DELETE /v1/messages/batches/{id}`."""
    call.state.delete(call.batch_id)
    return Reply({"id": call.batch_id, "type": "message_batch_deleted"})


def batch_results(call: Call) -> Reply:
    """`GET /v1/messages/batches/{id}/results`: the JSONL stream."""
    batch = call.state.ended_batch(call.batch_id)
    chunks = result_chunks(batch, cut=call.cut_results)
    return Reply(stream=chunks, cut=call.cut_results)


def _message_params(call: Call, *, needs_max_tokens: bool) -> dict[str, Any]:
    params = parse_object(call.body)
    problem = check_params(params, call.version, in_batch=False, needs_max_tokens=needs_max_tokens)
    if problem is not None:
        raise invalid(problem)
    return params


def create_message(call: Call) -> Reply:
    """`POST /v1/messages`: the whole Message, or with `stream: true` its events."""
    params = _message_params(call, needs_max_tokens=True)
    reply = shape_reply(reply_text(params), params["max_tokens"])
    usage = call.state.account_prompt(measure_prompt(params))
    body = message_json(
        new_id("msg"), params["model"], reply, usage_json(usage, reply[2], "standard")
    )
    if params.get("stream") is not True:
        return Reply(body)
    fault = call.state.faults.draw_stream()
    events = stream_of(message_events(body), fault, call.request_id)
    return Reply(stream=events, content_type=EVENT_STREAM, cut=fault is Fault.STREAM_CUT)


def count_tokens(call: Call) -> Reply:
    """`POST /v1/messages/count_tokens`."""
    params = _message_params(call, needs_max_tokens=False)
    return Reply({"input_tokens": measure_prompt(params).tokens})


_BATCH = r"/v1/messages/batches/(?P<id>[^/]+)"
ROUTES = (
    Route("create", "POST", re.compile(r"/v1/messages/batches"), create_batch, large_body=True),
    Route("list", "GET", re.compile(r"/v1/messages/batches"), list_batches),
    Route("retrieve", "GET", re.compile(_BATCH), retrieve_batch),
    Route("delete", "DELETE", re.compile(_BATCH), delete_batch),
    Route("cancel", "POST", re.compile(_BATCH + "/cancel"), cancel_batch),
    Route("results", "GET", re.compile(_BATCH + "/results"), batch_results, results=True),
    Route("messages", "POST", re.compile(r"/v1/messages"), create_message),
    Route("count_tokens", "POST", re.compile(r"/v1/messages/count_tokens"), count_tokens),
)


def find_route(method: str, path: str) -> tuple[Route, str] | None:
    """The route for a request and the batch id in its path ('' if none)."""
    path = path.rstrip("/") or "/"
    for route in ROUTES:
        found = route.pattern.fullmatch(path)
        if found and route.method == method:
            return route, urllib.parse.unquote(found.groupdict().get("id") or "")
    return None
