"""The `/_admin` endpoints: statistics, faults, limits, expiry and reset. They need no API key.

- `GET /_admin/stats`: counts (add `?submissions=1` for every custom_id's count): batches,
  submissions, faults injected, `calls` per endpoint, `http_429_sent` by reason
  (rate_limit, queued_limit, fault), `queued_requests` and the current `limits`
- `GET /_admin/faults`: the current fault fractions
- `POST /_admin/faults` `{"http_500": 0.2, ...}`: change some, get them all back
- `GET /_admin/limits`: the current limits (see `limits`)
- `POST /_admin/limits` `{"rate_limit_per_window": 10, ...}`: change some, get them all back
- `POST /_admin/expire`: expire every unfinished batch now (`{"batch_id": …}`: just one)
- `POST /_admin/finish`: let every unfinished batch finish processing now (or just one)
- `POST /_admin/reset`: forget every batch, submission and cache entry
"""

from __future__ import annotations

from typing import Any

import orjson

from .state import EmulatorState
from .wire import ApiFailure, ErrorType, Reply, invalid

TRUE_WORDS = ("1", "true", "yes")


def _json_body(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise invalid("the body must be a JSON object") from None
    if not isinstance(value, dict):
        raise invalid("the body must be a JSON object")
    return value


def _set_faults(state: EmulatorState, body: bytes) -> Reply:
    try:
        return Reply(state.set_faults(_json_body(body)))
    except ValueError as error:
        raise invalid(str(error)) from None


def _set_limits(state: EmulatorState, body: bytes) -> Reply:
    try:
        return Reply(state.set_limits(_json_body(body)))
    except ValueError as error:
        raise invalid(str(error)) from None


def _batch_id(body: bytes) -> str | None:
    batch_id = _json_body(body).get("batch_id")
    if batch_id is not None and not isinstance(batch_id, str):
        raise invalid("batch_id: Input should be a valid string")
    return batch_id


def _reset(state: EmulatorState) -> Reply:
    state.reset()
    return Reply({"reset": True})


def handle_admin(
    state: EmulatorState, method: str, path: str, query: dict[str, list[str]], body: bytes
) -> Reply:
    """Answer an `/_admin` request."""
    route = (method, path.rstrip("/"))
    if route == ("GET", "/_admin/stats"):
        wanted = query.get("submissions", [""])[-1].lower() in TRUE_WORDS
        return Reply(state.stats(submissions=wanted))
    if route == ("GET", "/_admin/faults"):
        return Reply(state.faults.snapshot())
    if route == ("POST", "/_admin/faults"):
        return _set_faults(state, body)
    if route == ("GET", "/_admin/limits"):
        return Reply(state.limits.snapshot())
    if route == ("POST", "/_admin/limits"):
        return _set_limits(state, body)
    if route == ("POST", "/_admin/expire"):
        return Reply({"expired": state.expire(_batch_id(body))})
    if route == ("POST", "/_admin/finish"):
        return Reply({"finished": state.finish(_batch_id(body))})
    if route == ("POST", "/_admin/reset"):
        return _reset(state)
    raise ApiFailure(ErrorType.NOT_FOUND, "Not found")
