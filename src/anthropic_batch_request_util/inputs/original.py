"""The original tool's input: one JSON object with a shared system prompt, a list of
conversations and a custom id prefix. Read in two passes with ijson's C backend (the header,
then the conversations), so memory does not grow with the file."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO

import ijson
import orjson

from .checks import (
    CUSTOM_ID_MAX_CHARS,
    CUSTOM_ID_PATTERN,
    DEFAULT_CUSTOM_ID_PREFIX,
    NO_REQUESTS,
    READ_BYTES,
    Problems,
    Request,
    RequestDefaults,
    message_problems,
    open_input,
    plainly_valid,
    quote,
    size_problem,
)

__all__ = ["read_original", "read_original_object"]

_ID_HEAD = b'{"custom_id":"'

# --- the original format: a header pass, then the conversations ----------------------------

_HEADER_KEYS = frozenset({"system_prompt", "custom_id_prefix", "messages_list"})


@dataclass(slots=True)
class _Header:
    """The top-level keys of an original-format file, as the first pass found them.

    `values` maps each key to the first parse event of its value, ``(event, value)``;
    a key met twice keeps its first value.
    """

    is_object: bool = True
    values: dict[str, tuple[str, Any]] = field(default_factory=dict)

    def kind(self, key: str) -> str:
        """The parse event that starts the value of `key`: "string", "start_array" ..."""
        return self.values.get(key, ("null", None))[0]

    def string(self, key: str) -> str | None:
        """The value of `key` if it is a string, else None."""
        event, value = self.values.get(key, ("null", None))
        return value if event == "string" else None


class _CountingReader:
    """A binary file that remembers where its last read started, to locate parse errors."""

    def __init__(self, file: BinaryIO) -> None:
        self._file = file
        self.start = file.tell()  #: offset of the bytes returned by the last read
        self._end = self.start

    def read(self, size: int) -> bytes:
        data = self._file.read(size)
        self.start, self._end = self._end, self._end + len(data)
        return data


def _scan_header(path: Path, problems: Problems) -> _Header | None:
    """Read the top-level keys; None (with the problem noted) if the file is not JSON.

    Stops once every key has been seen; otherwise reads the whole file, since
    "system_prompt" and "custom_id_prefix" may come after "messages_list".
    """
    header = _Header()
    expecting: str | None = None  # the top-level key whose value starts with the next event
    with open_input(path) as file:
        reader = _CountingReader(file)
        try:
            for prefix, event, value in ijson.parse(reader, buf_size=READ_BYTES):
                if expecting is not None:
                    if expecting in _HEADER_KEYS:
                        header.values.setdefault(expecting, (event, value))
                    if len(header.values) == len(_HEADER_KEYS):
                        return header
                    expecting = None
                elif prefix == "" and event == "map_key":
                    expecting = value
                elif prefix == "" and event not in ("start_map", "end_map"):
                    header.is_object = False
                    return header
        except ijson.JSONError as exc:
            blank = _is_blank(path)
            problems.items.append(NO_REQUESTS if blank else _json_problem(path, reader.start, exc))
            return None
    return header


def _is_blank(path: Path) -> bool:
    """True when the file holds nothing but whitespace."""
    with open_input(path) as file:
        return all(chunk.isspace() for chunk in iter(partial(file.read, READ_BYTES), b""))


def _json_problem(path: Path, offset: int, exc: ijson.JSONError) -> str:
    """A located message for a JSON syntax error met in the read that started at `offset`."""
    where, line = _locate_json_error(path, offset)
    text = exc.args[0] if exc.args else ""
    text = text.decode(errors="replace") if isinstance(text, bytes) else str(text)
    # yajl says "parse error: <reason>" then quotes the text around it: keep the reason.
    reason = text.split("\n", 1)[0].split(": ", 1)[-1].rstrip(".")
    return f"not valid JSON at byte {where:,} (line {line:,}): {reason}"


def _locate_json_error(path: Path, offset: int) -> tuple[int, int]:
    """The 0-based byte offset and the line of the JSON error in the read at `offset`.

    The parser only tells which read failed, so this rare path parses the file again up to
    that read, then byte by byte.
    """
    parser = ijson.basic_parse_coro(events := ijson.sendable_list())
    with open_input(path) as file:
        position, lines = file.tell(), 1
        while position < offset and (chunk := file.read(min(READ_BYTES, offset - position))):
            parser.send(chunk)
            del events[:]
            position, lines = position + len(chunk), lines + chunk.count(b"\n")
        for byte in iter(partial(file.read, 1), b""):
            try:
                parser.send(byte)
            except ijson.JSONError:
                break
            del events[:]
            position, lines = position + 1, lines + (byte == b"\n")
    return position, lines


def _header_problems(header: _Header) -> list[str]:
    """What is wrong with the top-level keys of an original-format file."""
    if not header.is_object:
        return ['must be one JSON object with "messages_list" (or JSONL: one request a line)']
    found = []
    if "messages_list" not in header.values:
        found.append("messages_list: missing")
    elif header.kind("messages_list") != "start_array":
        found.append("messages_list: must be a list")
    found.extend(
        f"{key}: must be a string"
        for key in ("system_prompt", "custom_id_prefix")
        if header.kind(key) not in ("string", "null")
    )
    prefix = header.string("custom_id_prefix")
    if prefix is not None and not CUSTOM_ID_PATTERN.fullmatch(prefix):
        found.append(
            f"custom_id_prefix: {quote(prefix)} does not match {CUSTOM_ID_PATTERN.pattern}"
        )
    elif prefix is not None and len(prefix) > CUSTOM_ID_MAX_CHARS - len("_0"):
        found.append(
            f'custom_id_prefix: {quote(prefix)} leaves no room for "_<index>" '
            f"within {CUSTOM_ID_MAX_CHARS} characters"
        )
    return found


@dataclass(frozen=True, slots=True)
class _BodyTemplate:
    """Builds original-format bodies from bytes made once: only the id and messages vary.

    `body` equals ``orjson.dumps({"custom_id": ..., "params": {<shared>, "messages": ...}})``.
    """

    id_prefix: str  #: custom_id_prefix + "_"
    params_head: bytes  #: '","params":{<shared params>,"messages":'

    @classmethod
    def build(cls, header: _Header, defaults: RequestDefaults) -> _BodyTemplate:
        params: dict[str, Any] = {"model": defaults.model, "max_tokens": defaults.max_tokens}
        system_prompt = header.string("system_prompt")
        if system_prompt:
            params["system"] = _system(system_prompt, defaults)
        if defaults.temperature is not None:
            params["temperature"] = defaults.temperature
        head = b'","params":' + orjson.dumps(params)[:-1] + b',"messages":'
        return cls(f"{header.string('custom_id_prefix') or DEFAULT_CUSTOM_ID_PREFIX}_", head)

    def body(self, custom_id: str, messages: list[Any]) -> bytes:
        dumped = orjson.dumps(messages)
        return b"".join((_ID_HEAD, custom_id.encode(), self.params_head, dumped, b"}}"))


def _system(system_prompt: str, defaults: RequestDefaults) -> str | list[dict[str, Any]]:
    """The system param: one cached text block with prompt caching on, else the prompt."""
    if not defaults.enable_prompt_cache:
        return system_prompt
    block = {"type": "text", "text": system_prompt, "cache_control": {"type": defaults.cache_type}}
    return [block]


def read_original(path: Path, defaults: RequestDefaults, problems: Problems) -> Iterator[Request]:
    """Yield the requests of an original-format file: a header pass, then the conversations.

    With a problem in the header, the conversations are still checked but none is yielded.
    """
    header = _scan_header(path, problems)
    if header is None:
        return
    problems.items.extend(_header_problems(header))
    if not header.is_object or header.kind("messages_list") != "start_array":
        return
    yield from _requests(header, _conversations(path, problems), defaults, problems)


def read_original_object(
    data: Mapping[str, Any], defaults: RequestDefaults, problems: Problems
) -> Iterator[Request]:
    """Yield the requests of the original format given as an object in memory (a dict with
    "system_prompt", "messages_list", "custom_id_prefix"), checked as a file would be."""
    header = _Header(values={k: (_event(v), v) for k, v in data.items() if k in _HEADER_KEYS})
    problems.items.extend(_header_problems(header))
    if header.kind("messages_list") != "start_array":
        return
    yield from _requests(header, iter(data["messages_list"]), defaults, problems)


def _event(value: object) -> str:
    """The parse event that would start `value` in a file (see `_Header`)."""
    if value is None:
        return "null"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "start_array"
    return "start_map" if isinstance(value, Mapping) else "number"


def _requests(
    header: _Header, conversations: Iterator[Any], defaults: RequestDefaults, problems: Problems
) -> Iterator[Request]:
    """The requests of a checked header's conversations, in order."""
    template = None if problems.items else _BodyTemplate.build(header, defaults)
    limit, count = defaults.max_request_bytes, 0
    for index, conversation in enumerate(conversations):
        count += 1
        # The common case stays inline, for speed; anything else takes the careful path.
        if template and type(conversation) is list and conversation and plainly_valid(conversation):
            custom_id = template.id_prefix + str(index)
            try:
                body = template.body(custom_id, conversation)
            except orjson.JSONEncodeError:
                pass  # the careful path says why
            else:
                if len(body) <= limit and len(custom_id) <= CUSTOM_ID_MAX_CHARS:
                    yield Request(index, custom_id, body)
                    continue
        request = _careful_request(index, conversation, template, defaults, problems)
        if request is not None:
            yield request
        elif problems.full:
            problems.stopped = True
            return
    if count == 0 and not problems.items:
        problems.items.append(NO_REQUESTS)


def _conversations(path: Path, problems: Problems) -> Iterator[Any]:
    """Yield the items of messages_list one by one, parsed in C a read at a time."""
    with open_input(path) as file:
        reader = _CountingReader(file)
        try:
            yield from ijson.items(
                reader, "messages_list.item", buf_size=READ_BYTES, use_float=True
            )
        except ijson.JSONError as exc:
            problems.items.append(_json_problem(path, reader.start, exc))


def _careful_request(
    index: int,
    conversation: object,
    template: _BodyTemplate | None,
    defaults: RequestDefaults,
    problems: Problems,
) -> Request | None:
    """The request for messages_list[index], or None with its problems noted."""
    found = _conversation_problems(conversation)
    if found or template is None or not isinstance(conversation, list):
        pass
    elif len(custom_id := template.id_prefix + str(index)) > CUSTOM_ID_MAX_CHARS:
        found = [f": custom_id {quote(custom_id)} is longer than {CUSTOM_ID_MAX_CHARS} characters"]
    else:
        try:
            body = template.body(custom_id, conversation)
        except orjson.JSONEncodeError as exc:
            found = [f": cannot be serialized ({exc})"]
        else:
            too_big = size_problem(len(body), defaults.max_request_bytes)
            if too_big is None:
                return Request(index, custom_id, body)
            found = [f": {too_big}"]
    problems.items.extend(f"messages_list[{index}]{problem}" for problem in found)
    return None


def _conversation_problems(conversation: object) -> list[str]:
    """What is wrong with one item of messages_list; locations relative to the item."""
    if type(conversation) is not list:
        return [": must be a list of messages"]
    if not conversation:
        return [": conversation is empty"]
    return message_problems(conversation)
