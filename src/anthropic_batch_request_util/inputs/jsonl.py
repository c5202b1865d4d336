"""JSONL input: one native batch request ``{"custom_id": ..., "params": {...}}`` per line.
``model`` and ``max_tokens`` come from the settings when a line leaves them out, and
``temperature`` too when the settings name one; everything else is sent as written."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from .checks import (
    NO_REQUESTS,
    Problems,
    Request,
    RequestDefaults,
    message_problems,
    open_input,
    plainly_valid,
    quote,
    size_problem,
    validate_custom_id,
)

__all__ = ["JSONL_KEYS", "item_request", "read_jsonl"]

JSONL_KEYS = frozenset({"custom_id", "params"})

# --- JSONL --------------------------------------------------------------------------------


def read_jsonl(path: Path, defaults: RequestDefaults, problems: Problems) -> Iterator[Request]:
    """Yield the requests of a JSONL file, one per non-blank line."""
    index = 0
    with open_input(path) as file:
        for number, line in enumerate(file, 1):
            if line.isspace():
                continue
            found = _jsonl_request(index, line, defaults)
            index += 1
            if isinstance(found, Request):
                yield found
                continue
            problems.items.extend(f"line {number}: {problem}" for problem in found)
            if problems.full:
                problems.stopped = any(not rest.isspace() for rest in file)
                return
    if index == 0:
        problems.items.append(NO_REQUESTS)


def _jsonl_request(index: int, line: bytes, defaults: RequestDefaults) -> Request | list[str]:
    """The request on one line, or its problems."""
    try:
        item = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return [f"not valid JSON ({exc.msg} at column {exc.colno})"]
    if type(item) is not dict:
        return ['must be a JSON object with "custom_id" and "params"']
    return item_request(index, item, defaults)


def item_request(
    index: int, item: dict[str, Any], defaults: RequestDefaults
) -> Request | list[str]:
    """The request one ``{"custom_id", "params"}`` object makes, or its problems (unlocated).
    Fills the settings' defaults into ``item["params"]``."""
    found = _line_problems(item)
    if found:
        return found
    params: dict[str, Any] = item["params"]
    _fill_params(params, defaults)
    try:
        body = orjson.dumps({"custom_id": item["custom_id"], "params": params})
    except orjson.JSONEncodeError as exc:
        return [f"params: cannot be serialized ({exc})"]
    too_big = size_problem(len(body), defaults.max_request_bytes)
    return [too_big] if too_big else Request(index, item["custom_id"], body)


def _line_problems(item: dict[str, Any]) -> list[str]:
    """What is wrong with one parsed JSONL line."""
    found = [f"unexpected key {quote(key)}" for key in item if key not in JSONL_KEYS]
    custom_id = item.get("custom_id")
    if custom_id is None:
        found.append("custom_id: missing")
    elif type(custom_id) is not str:
        found.append("custom_id: must be a string")
    elif (bad_id := validate_custom_id(custom_id)) is not None:
        found.append(bad_id)
    params = item.get("params")
    if params is None:
        found.append("params: missing")
    elif type(params) is not dict:
        found.append("params: must be an object")
    else:
        found.extend(_params_problems(params))
    return found


def _params_problems(params: dict[str, Any]) -> list[str]:
    """What is wrong with the params of one JSONL request (the API checks the rest)."""
    found: list[str] = []
    messages = params.get("messages")
    if type(messages) is not list or not messages:
        found.append("params.messages: must be a non-empty list")
    elif not plainly_valid(messages):
        found.extend(f"params.messages{problem}" for problem in message_problems(messages))
    if "model" in params and (type(params["model"]) is not str or not params["model"]):
        found.append("params.model: must be a non-empty string")
    max_tokens = params.get("max_tokens", 1)
    if type(max_tokens) is not int or max_tokens < 1:
        found.append("params.max_tokens: must be a positive integer")
    if params.get("stream"):
        found.append("params.stream: batches do not support streaming")
    if "system" in params and type(params["system"]) not in (str, list):
        found.append("params.system: must be a string or a list of text blocks")
    return found


def _fill_params(params: dict[str, Any], defaults: RequestDefaults) -> None:
    """Add the settings' model, max_tokens and temperature where the line has none."""
    if "model" not in params:
        params["model"] = defaults.model
    if "max_tokens" not in params:
        params["max_tokens"] = defaults.max_tokens
    if defaults.temperature is not None and "temperature" not in params:
        params["temperature"] = defaults.temperature
