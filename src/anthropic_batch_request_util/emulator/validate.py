"""Request validation, with the API's pydantic-style messages (`path.to.field: problem`).

The batch envelope (the `requests` list, custom ids) is checked when a batch is created
and fails the whole create; each request's `params` is checked as the batch is processed
and fails only that request (an `errored` row), as the API does.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from .wire import VERSION_WITHOUT_SAMPLING, invalid

CUSTOM_ID_PATTERN = "^[a-zA-Z0-9_-]{1,64}$"
CUSTOM_ID_MAX = 64  #: characters allowed in a custom_id
SAMPLING_PARAMS = ("temperature", "top_p", "top_k")  #: removed by anthropic-version 2026-10-21
ROLES = ("user", "assistant")
_CUSTOM_ID = re.compile(CUSTOM_ID_PATTERN[1:-1])  # used with fullmatch


def parse_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or a 400 saying why it is not one."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise invalid(f"There was an issue with your request body: {error}") from None
    if not isinstance(value, dict):
        raise invalid("Input should be a valid dictionary")
    return value


def batch_requests(body: dict[str, Any], max_requests: int) -> list[tuple[str, Any]]:
    """(custom_id, params) of each request of a create body; a 400 for any envelope fault."""
    requests = body.get("requests")
    if requests is None:
        raise invalid("requests: Field required")
    if not isinstance(requests, list):
        raise invalid("requests: Input should be a valid list")
    if not requests:
        raise invalid("requests: List should have at least 1 item after validation, not 0")
    if len(requests) > max_requests:
        raise invalid(
            f"requests: List should have at most {max_requests} items after validation, "
            f"not {len(requests)}"
        )
    return _unique_requests(requests)


def _unique_requests(requests: list[Any]) -> list[tuple[str, Any]]:
    found = [_request(index, item) for index, item in enumerate(requests)]
    if len({custom_id for custom_id, _ in found}) < len(found):
        _raise_duplicate(found)
    return found


def _raise_duplicate(found: list[tuple[str, Any]]) -> None:
    seen: dict[str, int] = {}
    for index, (custom_id, _) in enumerate(found):
        first = seen.setdefault(custom_id, index)
        if first != index:
            raise invalid(
                f"requests.{index}.custom_id: Duplicate custom_id {custom_id!r} "
                f"(also used by requests.{first}); custom_id must be unique within a batch"
            )


def _request(index: int, item: Any) -> tuple[str, Any]:
    if type(item) is dict:  # the usual case, checked in one go
        custom_id, params = item.get("custom_id"), item.get("params")
        if type(custom_id) is str and type(params) is dict and _CUSTOM_ID.fullmatch(custom_id):
            return custom_id, params
    return _bad_request(index, item)


def _bad_request(index: int, item: Any) -> tuple[str, Any]:
    if not isinstance(item, dict):
        raise invalid(f"requests.{index}: Input should be a valid dictionary")
    custom_id = item.get("custom_id")
    if type(custom_id) is not str or not _CUSTOM_ID.fullmatch(custom_id):
        raise invalid(f"requests.{index}.custom_id: {_custom_id_problem(custom_id)}")
    params = item.get("params")
    if params is None:
        raise invalid(f"requests.{index}.params: Field required")
    if not isinstance(params, dict):
        raise invalid(f"requests.{index}.params: Input should be a valid dictionary")
    return custom_id, params


def _custom_id_problem(custom_id: Any) -> str:
    if custom_id is None:
        return "Field required"
    if not isinstance(custom_id, str):
        return "Input should be a valid string"
    if not custom_id:
        return "String should have at least 1 character"
    if len(custom_id) > CUSTOM_ID_MAX:
        return f"String should have at most {CUSTOM_ID_MAX} characters"
    return f"String should match pattern '{CUSTOM_ID_PATTERN}'"


def check_params(
    params: dict[str, Any], version: str, *, in_batch: bool, needs_max_tokens: bool = True
) -> str | None:
    """The first problem of a Messages request body, or None when it is valid."""
    if _plainly_valid(params, version, in_batch, needs_max_tokens):
        return None
    return (
        _check_model(params)
        or (_check_max_tokens(params) if needs_max_tokens else None)
        or _check_messages(params.get("messages"))
        or _check_system(params.get("system"))
        or _check_stream(params, in_batch)
        or _check_sampling(params, version)
    )


def _plainly_valid(
    params: dict[str, Any], version: str, in_batch: bool, needs_max_tokens: bool
) -> bool:
    """A quick yes for the usual request (strings only); False means: check in full."""
    model, max_tokens = params.get("model"), params.get("max_tokens")
    messages, system = params.get("messages"), params.get("system")
    if type(model) is not str or not model or type(messages) is not list or not messages:
        return False
    if needs_max_tokens and (type(max_tokens) is not int or max_tokens < 1):
        return False
    if (system is not None and type(system) is not str) or (in_batch and "stream" in params):
        return False
    for message in messages:
        if type(message) is not dict or type(message.get("content")) is not str:
            return False
        if message.get("role") not in ROLES:
            return False
    return version != VERSION_WITHOUT_SAMPLING or not any(p in params for p in SAMPLING_PARAMS)


def _check_model(params: dict[str, Any]) -> str | None:
    model = params.get("model")
    if model is None:
        return "model: Field required"
    if not isinstance(model, str):
        return "model: Input should be a valid string"
    return None if model else "model: String should have at least 1 character"


def _check_max_tokens(params: dict[str, Any]) -> str | None:
    max_tokens = params.get("max_tokens")
    if max_tokens is None:
        return "max_tokens: Field required"
    if type(max_tokens) is not int:
        return "max_tokens: Input should be a valid integer"
    return None if max_tokens >= 1 else "max_tokens: Input should be greater than or equal to 1"


def _check_messages(messages: Any) -> str | None:
    if messages is None:
        return "messages: Field required"
    if not isinstance(messages, list):
        return "messages: Input should be a valid list"
    if not messages:
        return "messages: List should have at least 1 item after validation, not 0"
    for index, message in enumerate(messages):
        problem = _check_message(f"messages.{index}", message)
        if problem:
            return problem
    return None


def _check_message(path: str, message: Any) -> str | None:
    if not isinstance(message, dict):
        return f"{path}: Input should be a valid dictionary"
    if message.get("role") not in ROLES:
        return f"{path}.role: Input should be 'user' or 'assistant'"
    content = message.get("content")
    if isinstance(content, str):
        return None
    if content is None:
        return f"{path}.content: Field required"
    if not isinstance(content, list):
        return f"{path}.content: Input should be a valid string"
    return _check_blocks(f"{path}.content", content, text_only=False)


def _check_system(system: Any) -> str | None:
    if system is None or isinstance(system, str):
        return None
    if not isinstance(system, list):
        return "system: Input should be a valid string"
    return _check_blocks("system", system, text_only=True)


def _check_blocks(path: str, blocks: list[Any], *, text_only: bool) -> str | None:
    if not blocks and not text_only:
        return f"{path}: List should have at least 1 item after validation, not 0"
    for index, block in enumerate(blocks):
        where = f"{path}.{index}"
        if not isinstance(block, dict):
            return f"{where}: Input should be a valid dictionary"
        kind = block.get("type")
        if not isinstance(kind, str):
            return f"{where}.type: Field required"
        if text_only and kind != "text":
            return f"{where}.type: Input should be 'text'"
        if kind == "text" and not isinstance(block.get("text"), str):
            return f"{where}.text: Input should be a valid string"
    return None


def _check_stream(params: dict[str, Any], in_batch: bool) -> str | None:
    if in_batch and params.get("stream") is True:
        return "stream: Streaming is not supported in the Message Batches API"
    return None


def _check_sampling(params: dict[str, Any], version: str) -> str | None:
    if version != VERSION_WITHOUT_SAMPLING:
        return None
    for name in SAMPLING_PARAMS:
        if name in params:
            return f"{name}: This parameter is not supported with anthropic-version {version}"
    return None
