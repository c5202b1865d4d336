"""What a request's prompt looks like to pricing, without asking the API: its tokens and
its cacheable prefixes.

A prompt is a sequence of pieces, in the order the API caches them: each tool, then the
system prompt (a string, or each of its blocks), then each message's content (a string,
or each of its blocks). A piece is text (a string or a ``text`` block's text), an image,
or anything else, taken as its compact JSON without `cache_control`.

Tokens, approximately (`PromptShape.tokens`): each piece at ``BYTES_PER_TOKEN`` UTF-8
bytes a token, rounded up (a tokenizer starts each block afresh), and ``IMAGE_TOKENS``
per image. Real tokenizers differ by language and content; it is a rough guide.

Tokens at most (`PromptShape.bound_tokens`), for worst cases that must hold whatever the
tokenizer: a byte-level tokenizer never spends more than one token on a byte, so each
piece counts its bytes (``WORST_CASE_BYTES_PER_TOKEN``), plus
``WORST_CASE_TOKENS_PER_PIECE`` for the markers the API wraps around it, plus
``WORST_CASE_TOOL_USE_TOKENS`` when the request has tools (the API's tool-use system
prompt), plus ``IMAGE_TOKENS`` per image (the API scales images down to about that).

Cacheable prefixes (`PromptShape.prefixes`): each piece carrying `cache_control` ends a
breakpoint, and a top-level `cache_control` adds one after the last piece. A breakpoint
covers the prompt up to and including its piece; two requests share it when model and
prefix are the same (`Prefix.key`, a digest).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

__all__ = [
    "BYTES_PER_TOKEN",
    "IMAGE_TOKENS",
    "Prefix",
    "PromptShape",
    "measure_prompt",
]

BYTES_PER_TOKEN: Final = 4  #: UTF-8 bytes per token, a common rule of thumb for English
#: tokens per image, about (width * height) / 750 at the ~1.15-megapixel size to which the
#: API scales large images
IMAGE_TOKENS: Final = 1600
#: worst case: UTF-8 bytes a token covers at least (a byte-level tokenizer: one)
WORST_CASE_BYTES_PER_TOKEN: Final = 1
#: worst case: tokens the API may add around one piece (role and block markers)
WORST_CASE_TOKENS_PER_PIECE: Final = 16
#: worst case: tokens of the API's tool-use system prompt, added when a request has tools
#: (a few hundred for current models)
WORST_CASE_TOOL_USE_TOKENS: Final = 1000
DEFAULT_TTL: Final = "5m"  #: the cache lifetime when `cache_control` names none
CACHE_TTLS: Final = frozenset({"5m", "1h"})  #: the lifetimes the API offers
_DIGEST_BYTES = 16


@dataclass(frozen=True, slots=True)
class Prefix:
    """A cacheable prefix of a prompt: up to and including a `cache_control` breakpoint."""

    tokens: int  #: approximate tokens of the prefix (the rule of `PromptShape.tokens`)
    bound_tokens: int  #: tokens of the prefix at most (the rule of `PromptShape.bound_tokens`)
    ttl: str  #: "5m" or "1h"
    key: bytes  #: digest of (model, prefix): equal keys, same cached prefix


@dataclass(frozen=True, slots=True)
class PromptShape:
    """A prompt's approximate and maximal token counts, and its cacheable prefixes."""

    tokens: int  #: approximate input tokens, at least 1
    bound_tokens: int  #: input tokens at most
    prefixes: tuple[Prefix, ...] = ()  #: in prompt order, each longer than the last


@dataclass(frozen=True, slots=True)
class _Piece:
    data: bytes  #: text as UTF-8, or compact JSON
    marker: Any  #: its cache_control, or None
    tag: bytes  #: where it sits: tool, system or a message role
    image: bool = False


def measure_prompt(params: Mapping[str, Any]) -> PromptShape:
    """The shape of the prompt `params` send (see the module doc)."""
    pieces = list(_pieces(params))
    tools = bool(_as_list(params.get("tools")))
    tokens = 0
    bound = WORST_CASE_TOOL_USE_TOKENS if tools else 0
    digest = hashlib.blake2b(str(params.get("model")).encode() + b"\x00", digest_size=_DIGEST_BYTES)
    prefixes: list[Prefix] = []
    for index, piece in enumerate(pieces):
        tokens += _tokens(piece)
        bound += _bound_tokens(piece)
        digest.update(b"%s\x00%d\x00" % (piece.tag, len(piece.data)))
        digest.update(piece.data)
        marker = piece.marker
        last = index == len(pieces) - 1
        if not isinstance(marker, Mapping) and last:
            marker = params.get("cache_control")  # the top-level breakpoint
        if isinstance(marker, Mapping):
            prefixes.append(Prefix(tokens, bound, _ttl(marker), digest.copy().digest()))
    return PromptShape(max(1, tokens), max(1, bound), tuple(prefixes))


def _tokens(piece: _Piece) -> int:
    return IMAGE_TOKENS if piece.image else math.ceil(len(piece.data) / BYTES_PER_TOKEN)


def _bound_tokens(piece: _Piece) -> int:
    if piece.image:
        return IMAGE_TOKENS + WORST_CASE_TOKENS_PER_PIECE
    return math.ceil(len(piece.data) / WORST_CASE_BYTES_PER_TOKEN) + WORST_CASE_TOKENS_PER_PIECE


def _ttl(marker: Mapping[str, Any]) -> str:
    ttl = marker.get("ttl", DEFAULT_TTL)
    return ttl if ttl in CACHE_TTLS else DEFAULT_TTL


def _pieces(params: Mapping[str, Any]) -> Iterator[_Piece]:
    for tool in _as_list(params.get("tools")):
        yield _json_piece(tool, b"tool")
    system = params.get("system")
    if isinstance(system, str):
        yield _Piece(system.encode(), None, b"system")
    else:
        for block in _as_list(system):
            yield _block_piece(block, b"system")
    for message in _as_list(params.get("messages")):
        if not isinstance(message, Mapping):
            continue
        role = str(message.get("role")).encode()
        content = message.get("content")
        if isinstance(content, str):
            yield _Piece(content.encode(), None, role)
        else:
            for block in _as_list(content):
                yield _block_piece(block, role)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _block_piece(block: Any, tag: bytes) -> _Piece:
    if isinstance(block, Mapping) and block.get("type") == "text":
        text = block.get("text")
        if isinstance(text, str):
            return _Piece(text.encode(), block.get("cache_control"), tag)
    piece = _json_piece(block, tag)
    if isinstance(block, Mapping) and block.get("type") == "image":
        return _Piece(piece.data, piece.marker, tag, image=True)
    return piece


def _json_piece(value: Any, tag: bytes) -> _Piece:
    """Compact JSON of `value`, without its cache_control (not part of the prompt)."""
    if isinstance(value, Mapping) and "cache_control" in value:
        marker = value["cache_control"]
        rest = {key: item for key, item in value.items() if key != "cache_control"}
        return _Piece(orjson.dumps(rest), marker, tag)
    return _Piece(orjson.dumps(value), None, tag)
