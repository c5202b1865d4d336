"""Token counts and prompt caching, by an exact rule a test can compute by hand.

Tokens. A prompt is a sequence of pieces, in the order the API caches them: each tool,
then the system prompt (a string, or each of its blocks), then each message's content
(a string, or each of its blocks). A text piece (a string, or a block of type `text`)
costs ``ceil(utf8_bytes(text) / 4)`` tokens; any other piece (a tool, an image or
tool_result block, …) costs the same of its compact JSON without `cache_control`
(``orjson.dumps``, keys in the order given). The prompt costs the sum, at least 1. Output
costs the same rule applied to the reply text, capped at `max_tokens`.

Caching. Each piece carrying `cache_control` ends a *breakpoint*; a top-level
`cache_control` adds one after the last piece. A breakpoint covers the prefix up to and
including its piece, for that model; prefixes shorter than `min_cache_tokens` are
ignored. For each request, in order:

1. the last breakpoint whose prefix is in the cache is a hit: its prefix tokens are
   `cache_read_input_tokens` (and its entry's lifetime starts again);
2. every later breakpoint writes its prefix to the cache; the tokens between the previous
   breakpoint (or the hit) and it are `cache_creation_input_tokens`, counted under
   `ephemeral_5m_input_tokens` or `ephemeral_1h_input_tokens` by its `ttl` (default 5m);
3. `input_tokens` is the rest: total - read - written.

A cache entry lives `ttl` (5 min or 1 h) after it was last written or read. With one
breakpoint this is: the first request with a prefix writes it, later ones read it. A
batch's requests touch the cache in request order as the batch is worked out, right after
it is accepted (batches in creation order); errored requests do not touch it, and neither
do requests later canceled or expired. `count_tokens` never touches it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson

#: seconds a cache entry lives after its last write or read, by `cache_control.ttl`
TTL_SECONDS = {"5m": 300.0, "1h": 3600.0}
DEFAULT_TTL = "5m"
CACHE_PRUNE_AT = 100_000  #: cache entries at which expired ones are dropped

Piece = tuple[str | bytes, Any, bytes]  #: (text or JSON, cache_control or None, role tag)
ROLE_TAGS: dict[Any, bytes] = {
    "user": b"user",
    "assistant": b"assistant",
}  #: what a message's role adds to a digest


def tokens_of(content: str | bytes) -> int:
    """ceil(UTF-8 bytes / 4): the emulator's token count of one piece of text."""
    if isinstance(content, str) and not content.isascii():
        content = content.encode()
    return (len(content) + 3) // 4


class InputUsage(NamedTuple):
    """How a prompt's tokens split between fresh input, cache writes and cache reads."""

    input_tokens: int
    cache_5m: int
    cache_1h: int
    cache_read: int


@dataclass(frozen=True, slots=True)
class Breakpoint:
    """A cacheable prefix: its tokens, its ttl and a digest of (model, prefix)."""

    tokens: int
    ttl: str
    key: bytes


@dataclass(frozen=True, slots=True)
class Prompt:
    """What caching needs to know of a request's prompt."""

    tokens: int
    breakpoints: tuple[Breakpoint, ...] = ()

    def uncached(self) -> InputUsage:
        """The usage when nothing is cached or written."""
        return InputUsage(self.tokens, 0, 0, 0)


def measure_prompt(params: Mapping[str, Any]) -> Prompt:
    """The prompt's token count and cache breakpoints, per the module's rule."""
    plain = _plain_tokens(params)
    if plain is not None:
        return Prompt(max(1, plain))
    pieces = _pieces(params)
    total = 0
    marks: list[tuple[int, int, str]] = []  # (piece index, prefix tokens, ttl)
    for index, (content, marker, _) in enumerate(pieces):
        total += tokens_of(content)
        if isinstance(marker, dict):
            marks.append((index, total, _ttl(marker)))
    top = params.get("cache_control")
    last = len(pieces) - 1
    if isinstance(top, dict) and pieces and (not marks or marks[-1][0] != last):
        marks.append((last, total, _ttl(top)))
    if not marks:
        return Prompt(max(1, total))
    return Prompt(max(1, total), _breakpoints(params.get("model"), pieces, marks))


def _plain_tokens(params: Mapping[str, Any]) -> int | None:
    """The tokens of a prompt of plain strings (the common case, counted fast), else None."""
    if "tools" in params or "cache_control" in params:
        return None
    system = params.get("system", "")
    messages = params.get("messages")
    if not isinstance(system, str) or not isinstance(messages, list):
        return None
    total = tokens_of(system)
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, str):
            return None
        total += tokens_of(content)
    return total


def _ttl(marker: Mapping[str, Any]) -> str:
    ttl = marker.get("ttl", DEFAULT_TTL)
    return ttl if ttl in TTL_SECONDS else DEFAULT_TTL


def _breakpoints(
    model: Any, pieces: list[Piece], marks: list[tuple[int, int, str]]
) -> tuple[Breakpoint, ...]:
    digest = hashlib.blake2b(str(model).encode() + b"\x00", digest_size=16)
    found: list[Breakpoint] = []
    start = 0
    for index, tokens, ttl in marks:
        for content, _, tag in pieces[start : index + 1]:
            data = content.encode() if isinstance(content, str) else content
            digest.update(b"%s\x00%d\x00" % (tag, len(data)))
            digest.update(data)
        start = index + 1
        found.append(Breakpoint(tokens, ttl, digest.copy().digest()))
    return tuple(found)


def _pieces(params: Mapping[str, Any]) -> list[Piece]:
    pieces: list[Piece] = [_json_piece(tool, b"tool") for tool in _as_list(params.get("tools"))]
    system = params.get("system")
    if isinstance(system, str):
        pieces.append((system, None, b"system"))
    else:
        pieces += [_block_piece(block, b"system") for block in _as_list(system)]
    for message in _as_list(params.get("messages")):
        if not isinstance(message, dict):
            continue
        role = ROLE_TAGS.get(message.get("role"), b"?")
        content = message.get("content")
        if isinstance(content, str):
            pieces.append((content, None, role))
        else:
            pieces += [_block_piece(block, role) for block in _as_list(content)]
    return pieces


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _block_piece(block: Any, tag: bytes) -> Piece:
    if isinstance(block, dict) and block.get("type") == "text":
        text = block.get("text")
        if isinstance(text, str):
            return text, block.get("cache_control"), tag
    return _json_piece(block, tag)


def _json_piece(value: Any, tag: bytes) -> Piece:
    if isinstance(value, dict) and "cache_control" in value:
        marker = value["cache_control"]
        value = {key: item for key, item in value.items() if key != "cache_control"}
        return orjson.dumps(value), marker, tag
    return orjson.dumps(value), None, tag


class PromptCache:
    """The emulator-wide prompt cache: prefix digest → (expiry, ttl seconds)."""

    def __init__(self, min_tokens: int) -> None:
        self.min_tokens = min_tokens
        self._entries: dict[bytes, tuple[float, float]] = {}

    def account(self, prompt: Prompt, now: float) -> InputUsage:
        """Split the prompt's tokens into input, writes and reads; update the cache."""
        marks = [mark for mark in prompt.breakpoints if mark.tokens >= self.min_tokens]
        if not marks:
            return prompt.uncached()
        hit = self._last_hit(marks, now)
        read = marks[hit].tokens if hit >= 0 else 0
        written = dict.fromkeys(TTL_SECONDS, 0)
        edge = read
        for mark in marks[hit + 1 :]:
            written[mark.ttl] += max(0, mark.tokens - edge)
            edge = max(edge, mark.tokens)
            self._store(mark.key, TTL_SECONDS[mark.ttl], now)
        fresh = prompt.tokens - read - written["5m"] - written["1h"]
        return InputUsage(fresh, written["5m"], written["1h"], read)

    def _last_hit(self, marks: list[Breakpoint], now: float) -> int:
        for index in range(len(marks) - 1, -1, -1):
            entry = self._entries.get(marks[index].key)
            if entry is not None and entry[0] > now:
                self._store(marks[index].key, entry[1], now)
                return index
        return -1

    def _store(self, key: bytes, ttl_s: float, now: float) -> None:
        if len(self._entries) >= CACHE_PRUNE_AT:
            self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
        self._entries[key] = (now + ttl_s, ttl_s)

    def clear(self) -> None:
        """Forget every entry."""
        self._entries.clear()
