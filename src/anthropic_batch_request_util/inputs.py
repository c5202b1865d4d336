"""Input files: read, validate and turn them into batch requests, streaming.

Two formats are read:

* ``original`` — the original tool's single JSON object::

      {"system_prompt": "...", "messages_list": [[{"role": "user", "content": "..."}], ...],
       "custom_id_prefix": "example_batch"}

  Request ``i`` gets the custom id ``f"{custom_id_prefix}_{i}"`` (prefix ``request`` when
  absent) and params built from the settings (model, max_tokens, temperature) and the file.
* ``jsonl`` — native batch requests, one ``{"custom_id": ..., "params": {...}}`` per line.
  ``model`` and ``max_tokens`` come from the settings when a line leaves them out, and
  ``temperature`` too when the settings name one; everything else is sent as written.

Both are read incrementally (the original format with ijson's C backend, JSONL line by line),
so memory does not grow with the file. Every problem is collected with its location, up to
a limit, and raised as one `InputError` after the valid requests have been yielded: the caller
stores requests as they come and rolls back on the error.

Custom ids are *not* checked for uniqueness here: doing so would hold every id in memory.
The engine checks it in the job store instead.
"""

from __future__ import annotations

import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO

import ijson
import orjson

from .errors import InputError

__all__ = [
    "CUSTOM_ID_MAX_CHARS",
    "CUSTOM_ID_PATTERN",
    "DEFAULT_CUSTOM_ID_PREFIX",
    "InputFormat",
    "Request",
    "RequestDefaults",
    "detect_format",
    "read_requests",
    "validate_custom_id",
]

CUSTOM_ID_MAX_CHARS = 64  #: characters the API allows in a custom_id
#: What the API accepts as a custom_id. Use `fullmatch`: `$` alone also matches before a "\n".
CUSTOM_ID_PATTERN = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
DEFAULT_CUSTOM_ID_PREFIX = "request"  #: the original tool's prefix when the file names none

READ_BYTES = 64 * 1024  #: bytes read from the file at a time (larger reads parse slower)
SNIFF_BYTES = 1024 * 1024  #: bytes of the first line looked at to tell the formats apart
QUOTED_CHARS = 70  #: characters of a user's value repeated in a problem message

_NO_REQUESTS = "no requests in the file"
_JSONL_SUFFIXES = frozenset({".jsonl", ".ndjson"})
_JSONL_KEYS = frozenset({"custom_id", "params"})
#: a first line too long to load still shows its format by its first key
_JSONL_START = re.compile(rb'\s*\{\s*"(?:custom_id|params)"\s*:')
_ID_CHARS = re.compile(r"[a-zA-Z0-9_-]+")
_ID_HEAD = b'{"custom_id":"'
_BOM = b"\xef\xbb\xbf"  #: the UTF-8 byte order mark some editors write first


class InputFormat(StrEnum):
    """The layout of an input file."""

    ORIGINAL = "original"  #: one JSON object with "messages_list", as the original tool read
    JSONL = "jsonl"  #: one native batch request {"custom_id", "params"} per line


@dataclass(frozen=True, slots=True)
class RequestDefaults:
    """What the settings add to each request."""

    model: str  #: settings model.name
    max_tokens: int  #: settings model.max_tokens
    temperature: float | None  #: None = do not send temperature
    enable_prompt_cache: bool  #: batch.enable_prompt_cache: cache the original system prompt
    cache_type: str  #: batch.cache_type, "ephemeral"
    max_request_bytes: int  #: a single serialized request above this is an input error


@dataclass(frozen=True, slots=True)
class Request:
    """One request, ready to be placed in a batch."""

    index: int  #: 0-based position in the input
    custom_id: str
    body: bytes  #: orjson bytes of {"custom_id": ..., "params": {...}} as sent in a batch


def validate_custom_id(value: str) -> str | None:
    """Return what is wrong with `value` as a custom_id, or None when the API accepts it."""
    if CUSTOM_ID_PATTERN.fullmatch(value):
        return None
    if len(value) > CUSTOM_ID_MAX_CHARS and _ID_CHARS.fullmatch(value):
        return f"custom_id {_quote(value)} is longer than {CUSTOM_ID_MAX_CHARS} characters"
    return f"custom_id {_quote(value)} does not match {CUSTOM_ID_PATTERN.pattern}"


def _quote(value: object) -> str:
    """`value` as JSON, shortened, for a problem message."""
    text = orjson.dumps(value, default=repr).decode()
    return text if len(text) <= QUOTED_CHARS else text[: QUOTED_CHARS - 4] + '..."'


# --- the file and its format -------------------------------------------------------------


def _check_file(path: Path) -> None:
    """Raise `InputError` unless `path` is a regular file (the original format reads it twice)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise InputError(["no such file"], path=str(path)) from None
    except OSError as exc:
        raise InputError([f"cannot be read ({exc.strerror})"], path=str(path)) from exc
    if stat.S_ISDIR(mode):
        raise InputError(["is a directory, not a file"], path=str(path))
    if not stat.S_ISREG(mode):
        raise InputError(["is not a regular file"], path=str(path))


def _open(path: Path) -> BinaryIO:
    """Open `path` for reading bytes, past a UTF-8 byte order mark if it has one."""
    file = path.open("rb", buffering=READ_BYTES)
    if file.read(len(_BOM)) != _BOM:
        file.seek(0)
    return file


def detect_format(path: Path) -> InputFormat:
    """Tell the format of `path`: by its suffix, else by its first non-blank line.

    ``.jsonl``/``.ndjson`` are JSONL and ``.json`` the original format. Otherwise a first
    line that is a JSON object with a "custom_id" or "params" key means JSONL.
    """
    suffix = path.suffix.lower()
    if suffix in _JSONL_SUFFIXES:
        return InputFormat.JSONL
    if suffix == ".json":
        return InputFormat.ORIGINAL
    _check_file(path)
    try:
        with _open(path) as file:
            for line in iter(partial(file.readline, SNIFF_BYTES), b""):
                if not line.isspace():
                    return _sniff_line(line)
    except OSError as exc:
        raise InputError([f"cannot be read ({exc.strerror})"], path=str(path)) from exc
    return InputFormat.ORIGINAL


def _sniff_line(line: bytes) -> InputFormat:
    """The format whose first line looks like `line` (possibly cut at `SNIFF_BYTES`)."""
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        # Cut short or broken: a request line still starts with one of its keys.
        return InputFormat.JSONL if _JSONL_START.match(line) else InputFormat.ORIGINAL
    if isinstance(value, dict) and not _JSONL_KEYS.isdisjoint(value):
        return InputFormat.JSONL
    return InputFormat.ORIGINAL


# --- reading ----------------------------------------------------------------------------


@dataclass(slots=True)
class _Problems:
    """Located problems, up to a limit after which reading stops."""

    limit: int
    items: list[str] = field(default_factory=list)
    stopped: bool = False  #: reading stopped at the limit, before the end of the file

    @property
    def full(self) -> bool:
        return len(self.items) >= self.limit

    def report(self) -> list[str]:
        """The problems to raise, and a last line when reading stopped before the end."""
        shown = self.items[: self.limit]
        if self.stopped:
            shown.append(f"stopped reading after {self.limit} problems")
        return shown


def read_requests(
    path: Path,
    defaults: RequestDefaults,
    *,
    max_problems: int = 50,
    input_format: InputFormat | None = None,
) -> Iterator[Request]:
    """Yield the requests of `path` in input order, then raise `InputError` if any was wrong.

    The format is detected unless `input_format` is given. Problems are collected, each
    with its location, until `max_problems`; reading then stops. A file without any
    request is an error too. Custom ids are not checked for uniqueness (see the module).
    """
    if max_problems < 1:
        raise ValueError(f"max_problems must be at least 1, not {max_problems}")
    fmt = input_format or detect_format(path)
    _check_file(path)
    problems = _Problems(max_problems)
    reader = _read_jsonl if fmt is InputFormat.JSONL else _read_original
    try:
        yield from reader(path, defaults, problems)
    except OSError as exc:
        raise InputError([f"cannot be read ({exc.strerror})"], path=str(path)) from exc
    if problems.items:
        raise InputError(problems.report(), path=str(path))


def _size_problem(size: int, limit: int) -> str | None:
    """Why a request of `size` bytes is refused, or None when it fits."""
    if size <= limit:
        return None
    return f"request is {size:,} bytes, over the {limit:,}-byte limit"


def _plainly_valid(messages: list[Any]) -> bool:
    """True for the common shape, cheaply: user first, then user or assistant, plain text.

    Only a shortcut: whatever it does not accept goes through `_message_problems`.
    """
    first = True
    for message in messages:
        if type(message) is not dict:
            return False
        role = message.get("role")
        content = message.get("content")
        if role != "user" and (first or role != "assistant"):
            return False
        if type(content) is not str or not content or content.isspace():
            return False
        first = False
    return True


def _message_problems(messages: list[Any]) -> list[str]:
    """What is wrong with a non-empty list of messages; locations relative to the list."""
    found: list[str] = []
    for number, message in enumerate(messages):
        if type(message) is not dict:
            found.append(f'[{number}]: must be an object with "role" and "content"')
            continue
        role = message.get("role")
        if role != "user" and (number == 0 or role != "assistant"):
            wanted = '"user"' if number == 0 else '"user" or "assistant"'
            found.append(f"[{number}]: role must be {wanted}")
        found.extend(f"[{number}].content{p}" for p in _content_problems(message.get("content")))
    return found


def _content_problems(content: object) -> list[str]:
    """What is wrong with one message's content; locations relative to the content."""
    if type(content) is str:
        if content and not content.isspace():
            return []
    elif type(content) is list and content:
        return [
            f'[{number}]: must be an object with a "type"'
            for number, block in enumerate(content)
            if type(block) is not dict or type(block.get("type")) is not str
        ]
    return [": must be a non-empty string or a list of content blocks"]


# --- JSONL --------------------------------------------------------------------------------


def _read_jsonl(path: Path, defaults: RequestDefaults, problems: _Problems) -> Iterator[Request]:
    """Yield the requests of a JSONL file, one per non-blank line."""
    index = 0
    with _open(path) as file:
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
        problems.items.append(_NO_REQUESTS)


def _jsonl_request(index: int, line: bytes, defaults: RequestDefaults) -> Request | list[str]:
    """The request on one line, or its problems."""
    try:
        item = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return [f"not valid JSON ({exc.msg} at column {exc.colno})"]
    if type(item) is not dict:
        return ['must be a JSON object with "custom_id" and "params"']
    found = _line_problems(item)
    if found:
        return found
    params: dict[str, Any] = item["params"]
    _fill_params(params, defaults)
    try:
        body = orjson.dumps({"custom_id": item["custom_id"], "params": params})
    except orjson.JSONEncodeError as exc:
        return [f"params: cannot be serialized ({exc})"]
    too_big = _size_problem(len(body), defaults.max_request_bytes)
    return [too_big] if too_big else Request(index, item["custom_id"], body)


def _line_problems(item: dict[str, Any]) -> list[str]:
    """What is wrong with one parsed JSONL line."""
    found = [f"unexpected key {_quote(key)}" for key in item if key not in _JSONL_KEYS]
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
    elif not _plainly_valid(messages):
        found.extend(f"params.messages{problem}" for problem in _message_problems(messages))
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


def _scan_header(path: Path, problems: _Problems) -> _Header | None:
    """Read the top-level keys; None (with the problem noted) if the file is not JSON.

    Stops once every key has been seen; otherwise reads the whole file, since
    "system_prompt" and "custom_id_prefix" may come after "messages_list".
    """
    header = _Header()
    expecting: str | None = None  # the top-level key whose value starts with the next event
    with _open(path) as file:
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
            problems.items.append(_NO_REQUESTS if blank else _json_problem(path, reader.start, exc))
            return None
    return header


def _is_blank(path: Path) -> bool:
    """True when the file holds nothing but whitespace."""
    with _open(path) as file:
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
    with _open(path) as file:
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
            f"custom_id_prefix: {_quote(prefix)} does not match {CUSTOM_ID_PATTERN.pattern}"
        )
    elif prefix is not None and len(prefix) > CUSTOM_ID_MAX_CHARS - len("_0"):
        found.append(
            f'custom_id_prefix: {_quote(prefix)} leaves no room for "_<index>" '
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


def _read_original(path: Path, defaults: RequestDefaults, problems: _Problems) -> Iterator[Request]:
    """Yield the requests of an original-format file: a header pass, then the conversations.

    With a problem in the header, the conversations are still checked but none is yielded.
    """
    header = _scan_header(path, problems)
    if header is None:
        return
    problems.items.extend(_header_problems(header))
    if not header.is_object or header.kind("messages_list") != "start_array":
        return
    template = None if problems.items else _BodyTemplate.build(header, defaults)
    limit, count = defaults.max_request_bytes, 0
    for index, conversation in enumerate(_conversations(path, problems)):
        count += 1
        # The common case stays inline, for speed; anything else takes the careful path.
        if (
            template
            and type(conversation) is list
            and conversation
            and _plainly_valid(conversation)
        ):
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
        problems.items.append(_NO_REQUESTS)


def _conversations(path: Path, problems: _Problems) -> Iterator[Any]:
    """Yield the items of messages_list one by one, parsed in C a read at a time."""
    with _open(path) as file:
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
    problems: _Problems,
) -> Request | None:
    """The request for messages_list[index], or None with its problems noted."""
    found = _conversation_problems(conversation)
    if found or template is None or not isinstance(conversation, list):
        pass
    elif len(custom_id := template.id_prefix + str(index)) > CUSTOM_ID_MAX_CHARS:
        found = [f": custom_id {_quote(custom_id)} is longer than {CUSTOM_ID_MAX_CHARS} characters"]
    else:
        try:
            body = template.body(custom_id, conversation)
        except orjson.JSONEncodeError as exc:
            found = [f": cannot be serialized ({exc})"]
        else:
            too_big = _size_problem(len(body), defaults.max_request_bytes)
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
    return _message_problems(conversation)
