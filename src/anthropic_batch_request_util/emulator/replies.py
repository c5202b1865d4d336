"""The emulator's deterministic answers, and the Message objects that carry them.

`reply_text(params)` is a pure function of the request: a short digest of its system
prompt and messages plus a snippet of the last user message, e.g.
``Emulated answer to "What is 2+2?" [3f2a9c1b]``. When the system prompt or the last
user message mentions "json" (any case), the reply is a JSON object string instead:
``{"answer":"Emulated answer","question":"…","digest":"3f2a9c1b"}``.

The reply is cut to `max_tokens` (4 UTF-8 bytes per token, see `usage`), with
`stop_reason: "max_tokens"`; otherwise `stop_reason` is `"end_turn"`.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any, NamedTuple

import orjson

from .usage import InputUsage, Prompt, measure_prompt, tokens_of
from .validate import check_params

SNIPPET_CHARS = 40  #: characters of the last user message quoted in a reply
_SNIPPET_SCAN = 3 * SNIPPET_CHARS  #: characters of it looked at, so long prompts cost no more
PROSE = 'Emulated answer to "{snippet}" [{digest}]'  #: the reply, unless JSON is asked for
DIGEST_CHARS = 8  #: hex digits of the request digest in a reply
END_TURN, MAX_TOKENS = "end_turn", "max_tokens"


class ReplyParts(NamedTuple):
    """What a reply is made of (all a batch keeps of it, until its results are read)."""

    snippet: str  #: the start of the last user message, whitespace collapsed
    digest: str  #: DIGEST_CHARS hex digits identifying the request
    as_json: bool  #: answer with a JSON object

    def text(self) -> str:
        """The reply text."""
        if self.as_json:
            reply = {"answer": "Emulated answer", "question": self.snippet, "digest": self.digest}
            return orjson.dumps(reply).decode()
        return PROSE.format(snippet=self.snippet, digest=self.digest)


def reply_parts(params: Mapping[str, Any]) -> ReplyParts:
    """The parts of the reply to a request."""
    question = _last_user_text(params.get("messages"))
    as_json = _wants_json(params.get("system"), question)
    return ReplyParts(_snippet(question), _digest(params), as_json)


def reply_text(params: Mapping[str, Any]) -> str:
    """The exact reply text the emulator gives for a request's params."""
    return reply_parts(params).text()


def _digest(params: Mapping[str, Any]) -> str:
    """CRC-32 of the JSON of [system, messages] (keys sorted), as 8 hex digits."""
    seen = [params.get("system"), params.get("messages")]
    data = orjson.dumps(seen, option=orjson.OPT_SORT_KEYS, default=repr)
    return f"{zlib.crc32(data):0{DIGEST_CHARS}x}"


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    texts = (b.get("text") for b in content if isinstance(b, dict) and b.get("type") == "text")
    return " ".join(text for text in texts if isinstance(text, str))


def _last_user_text(messages: Any) -> str:
    if not isinstance(messages, list):
        return ""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return _text_of(message.get("content"))
    return ""


def _snippet(text: str) -> str:
    head = text[: SNIPPET_CHARS + 1]
    if head.isprintable() and "  " not in head and head[:1] != " " and head[-1:] != " ":
        words = head  # nothing to collapse in what is shown: skip the split (the usual case)
    else:
        words = " ".join(text.lstrip()[:_SNIPPET_SCAN].split())
    if len(words) <= SNIPPET_CHARS:
        return words
    return words[: SNIPPET_CHARS - 1].rstrip() + "…"


def _wants_json(system: Any, question: str) -> bool:
    return "json" in question.lower() or "json" in _text_of(system).lower()


def shape_reply(text: str, max_tokens: int) -> tuple[str, str, int]:
    """(text cut to max_tokens, stop_reason, output tokens)."""
    tokens = tokens_of(text)
    if tokens <= max_tokens:
        return text, END_TURN, tokens
    return cut_to(text, max_tokens), MAX_TOKENS, max_tokens


def cut_to(text: str, tokens: int) -> str:
    """The longest start of `text` that fits in `tokens` tokens (4 UTF-8 bytes each)."""
    return text.encode()[: tokens * 4].decode(errors="ignore")


class Prepared(NamedTuple):
    """One batch request worked out before the batch is stored; `error` if params are bad."""

    custom_id: str
    error: str | None
    model: str = ""
    reply: ReplyParts | None = None
    stop_reason: str = END_TURN
    output_tokens: int = 0
    prompt: Prompt | None = None


def prepare(custom_id: str, params: dict[str, Any], version: str) -> Prepared:
    """Validate a batch request's params and work out its reply (not its cache use)."""
    problem = check_params(params, version, in_batch=True)
    if problem is not None:
        return Prepared(custom_id, problem)
    parts = reply_parts(params)
    _, stop, output = shape_reply(parts.text(), params["max_tokens"])
    prompt = measure_prompt(params)
    return Prepared(custom_id, None, params["model"], parts, stop, output, prompt)


def usage_json(usage: InputUsage, output_tokens: int, service_tier: str) -> dict[str, Any]:
    """The `usage` object of a Message."""
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": usage.cache_5m + usage.cache_1h,
        "cache_read_input_tokens": usage.cache_read,
        "cache_creation": {
            "ephemeral_5m_input_tokens": usage.cache_5m,
            "ephemeral_1h_input_tokens": usage.cache_1h,
        },
        "server_tool_use": None,
        "service_tier": service_tier,
        "inference_geo": None,
    }


def message_json(
    message_id: str, model: str, reply: tuple[str, str, int], usage: dict[str, Any]
) -> dict[str, Any]:
    """A full Message object, as `POST /v1/messages` returns it."""
    text, stop_reason, _ = reply
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text, "citations": None}],
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "stop_details": None,
        "container": None,
        "usage": usage,
    }
