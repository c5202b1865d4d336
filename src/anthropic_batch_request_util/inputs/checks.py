"""What every input format shares: the request it yields, the defaults the settings add, and
the checks of custom ids, sizes and messages that locate each problem."""

from __future__ import annotations

import re
import stat
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import orjson

from ..errors import InputError
from .chunking import ENVELOPE_BYTES, chunk_limits, largest_request

if TYPE_CHECKING:
    from ..config import Settings

__all__ = [
    "BOM",
    "CUSTOM_ID_MAX_CHARS",
    "CUSTOM_ID_PATTERN",
    "DEFAULT_CUSTOM_ID_PREFIX",
    "NO_REQUESTS",
    "READ_BYTES",
    "InputFormat",
    "Problems",
    "Request",
    "RequestDefaults",
    "check_file",
    "content_problems",
    "message_problems",
    "open_input",
    "plainly_valid",
    "quote",
    "request_defaults",
    "size_problem",
    "validate_custom_id",
]

CUSTOM_ID_MAX_CHARS = 64  #: characters the API allows in a custom_id
#: What the API accepts as a custom_id. Use `fullmatch`: `$` alone also matches before a "\n".
CUSTOM_ID_PATTERN = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
DEFAULT_CUSTOM_ID_PREFIX = "request"  #: the original tool's prefix when the file names none

READ_BYTES = 64 * 1024  #: bytes read from the file at a time (larger reads parse slower)
QUOTED_CHARS = 70  #: characters of a user's value repeated in a problem message

NO_REQUESTS = "no requests in the file"
_ID_CHARS = re.compile(r"[a-zA-Z0-9_-]+")
BOM = b"\xef\xbb\xbf"  #: the UTF-8 byte order mark some editors write first


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


def request_defaults(settings: Settings) -> RequestDefaults:
    """What these settings add to each request, and the largest request they allow."""
    return RequestDefaults(
        model=settings.model.name,
        max_tokens=settings.model.max_tokens,
        temperature=settings.model.temperature,
        enable_prompt_cache=settings.batch.enable_prompt_cache,
        cache_type=settings.batch.cache_type,
        max_request_bytes=largest_request(chunk_limits(settings)[1]),
    )


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
        return f"custom_id {quote(value)} is longer than {CUSTOM_ID_MAX_CHARS} characters"
    return f"custom_id {quote(value)} does not match {CUSTOM_ID_PATTERN.pattern}"


def quote(value: object) -> str:
    """`value` as JSON, shortened, for a problem message."""
    text = orjson.dumps(value, default=repr).decode()
    return text if len(text) <= QUOTED_CHARS else text[: QUOTED_CHARS - 4] + '..."'


# --- the file and its format -------------------------------------------------------------


def check_file(path: Path) -> None:
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


def open_input(path: Path) -> BinaryIO:
    """Open `path` for reading bytes, past a UTF-8 byte order mark if it has one."""
    file = path.open("rb", buffering=READ_BYTES)
    if file.read(len(BOM)) != BOM:
        file.seek(0)
    return file


# --- reading ----------------------------------------------------------------------------


@dataclass(slots=True)
class Problems:
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


def size_problem(size: int, limit: int) -> str | None:
    """Why a request of `size` bytes is refused, or None when it fits."""
    if size <= limit:
        return None
    return (
        f"request is {size:,} bytes, over the {limit:,}-byte limit for one request: a batch "
        f"may hold {limit + ENVELOPE_BYTES:,} bytes (api.max_payload_size, at most the API's "
        f"limit), less {ENVELOPE_BYTES} for the create body around its requests"
    )


def plainly_valid(messages: list[Any]) -> bool:
    """True for the common shape, cheaply: user first, then user or assistant, plain text.

    Only a shortcut: whatever it does not accept goes through `message_problems`.
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


def message_problems(messages: list[Any]) -> list[str]:
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
        found.extend(f"[{number}].content{p}" for p in content_problems(message.get("content")))
    return found


def content_problems(content: object) -> list[str]:
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
