"""A message batch: its requests packed compactly, and its lifecycle read from timestamps.

Nothing runs per batch. A batch knows when it was created, when it was canceled or made
to expire, and how long processing takes; its status and counts follow from the clock:

- it ends `processing_seconds` after create, or `cancel_seconds` after a cancel, or at
  `expires_at`, whichever comes first;
- a cancel or an expiry *cuts* processing: the first ``n * elapsed / processing_seconds``
  requests (in request order) count as done and keep their outcome; the rest become
  `canceled` (cut by a cancel) or `expired` (cut by the expiry clock).

Requests are kept as one packed `bytes` blob per batch (outcome, usage, custom_id and the
parts of the reply), never as parsed params, so a million requests stay small; result
lines are rendered from them while streaming.
"""

from __future__ import annotations

import struct
from array import array
from dataclasses import dataclass, field
from enum import IntEnum
from json.encoder import encode_basestring
from typing import Any

import orjson

from .replies import DIGEST_CHARS, MAX_TOKENS, Prepared, ReplyParts, cut_to
from .usage import InputUsage
from .wire import ProcessingStatus, ResultType, timestamp

#: per-request header: model index, flags, custom_id length, input tokens, output tokens,
#: cache-write 5m tokens, cache-write 1h tokens, cache-read tokens, text length. The text is
#: the reply's digest and snippet (UTF-8) for a success, the error message for an error.
ROW = struct.Struct("<IBBIIIIII")
CUT_TO_MAX_TOKENS = 1  #: flag: the reply was cut at max_tokens
JSON_REPLY = 2  #: flag: the reply is a JSON object


class RowKind(IntEnum):
    """A request's outcome, decided as its batch is worked out (one byte per request)."""

    SUCCEEDED = 0
    INVALID = 1  #: errored: invalid_request_error (bad params or the row_invalid fault)
    API_ERROR = 2  #: errored: api_error (row_api_error fault)
    OVERLOADED = 3  #: errored: overloaded_error (row_overloaded fault)
    EXPIRED = 4  #: expired (row_expired fault)


NO_USAGE = InputUsage(0, 0, 0, 0)  #: the usage packed for a request that did not succeed
ERRORED_KINDS = (RowKind.INVALID, RowKind.API_ERROR, RowKind.OVERLOADED)
RESULT_TYPES = tuple(result.value for result in ResultType)


@dataclass(frozen=True, slots=True)
class Rows:
    """A batch's requests, packed: `blob[offsets[i]:]` starts request i's record."""

    blob: bytes
    offsets: array[int]
    kinds: bytes
    models: tuple[bytes, ...]  #: each model name as a JSON string

    def __len__(self) -> int:
        return len(self.kinds)

    def row(self, index: int) -> tuple[Any, ...]:
        """(model JSON, flags, custom_id, input, output, 5m, 1h, read, text)."""
        start = self.offsets[index]
        model, flags, id_len, *numbers, text_len = ROW.unpack_from(self.blob, start)
        at = start + ROW.size
        custom_id = self.blob[at : at + id_len]
        text = self.blob[at + id_len : at + id_len + text_len]
        return (self.models[model], flags, custom_id, *numbers, text)


class RowPacker:
    """Builds the `Rows` of a batch one request at a time."""

    def __init__(self) -> None:
        # One growing buffer rather than a list of parts: a million small parts would
        # scatter the few objects that outlive packing (the submission keys) over many
        # memory pages, which then could not be given back.
        self._blob = bytearray()
        self._offsets = array("I")  # 4 bytes each: a blob stays far below 4 GB
        self._kinds = bytearray()
        self._models: dict[str, int] = {}

    def add(
        self, kind: RowKind, custom_id: bytes, request: Prepared, usage: InputUsage | None
    ) -> None:
        """Append one request with its outcome (and usage when it succeeded)."""
        model = self._models.get(request.model)
        if model is None:
            model = self._models[request.model] = len(self._models)
        text, flags = _text_and_flags(kind, request)
        fresh, cache_5m, cache_1h, cache_read = usage or NO_USAGE
        header = ROW.pack(
            model, flags, len(custom_id), fresh,
            request.output_tokens, cache_5m, cache_1h, cache_read, len(text),
        )  # fmt: skip
        self._offsets.append(len(self._blob))
        self._kinds.append(kind)
        self._blob += header
        self._blob += custom_id
        self._blob += text

    def finish(self) -> Rows:
        """The packed rows."""
        models = tuple(orjson.dumps(name) for name in self._models)
        return Rows(bytes(self._blob), self._offsets, bytes(self._kinds), models)


#: error messages of rows failed by a fault
FAULT_MESSAGES = {
    RowKind.API_ERROR: "Internal server error (emulated row_api_error fault)",
    RowKind.OVERLOADED: "Overloaded (emulated row_overloaded fault)",
    RowKind.INVALID: "Invalid request (emulated row_invalid fault)",
}


def _text_and_flags(kind: RowKind, request: Prepared) -> tuple[bytes, int]:
    if kind is RowKind.SUCCEEDED and request.reply is not None:
        reply = request.reply
        flags = (request.stop_reason == MAX_TOKENS) * CUT_TO_MAX_TOKENS
        flags |= reply.as_json * JSON_REPLY
        snippet = encode_basestring(reply.snippet)[1:-1]  # JSON-escaped once, here
        return (reply.digest + snippet).encode(errors="replace"), flags
    if kind is RowKind.INVALID and request.error is not None:
        return request.error.encode(errors="replace"), 0
    return FAULT_MESSAGES.get(kind, "").encode(), 0


def reply_of(flags: int, output_tokens: int, text: bytes) -> str:
    """The reply text of a succeeded row."""
    snippet: str = orjson.loads(b'"%s"' % text[DIGEST_CHARS:])
    digest = text[:DIGEST_CHARS].decode()
    reply = ReplyParts(snippet, digest, bool(flags & JSON_REPLY)).text()
    return cut_to(reply, output_tokens) if flags & CUT_TO_MAX_TOKENS else reply


@dataclass(slots=True, eq=False)
class Batch:
    """One message batch and the times that decide its lifecycle (epoch seconds)."""

    id: str
    seq: int  #: creation order, for listing
    size: int  #: how many requests the batch holds
    created_at: float
    processing_s: float
    expires_at: float
    cancel_s: float
    shuffle_seed: int | None  #: None keeps results in request order
    rows: Rows | None = None  #: set once the requests are worked out (see `processing`)
    ready_at: float = 0.0  #: when `rows` was set
    cancel_at: float | None = None
    _tally: dict[str, int] | None = field(default=None, repr=False)

    def finish(self, rows: Rows, now: float) -> None:
        """Store the worked-out rows."""
        self.rows, self.ready_at = rows, now

    def cut(self) -> tuple[float, ResultType] | None:
        """When and why processing stopped short, if it did."""
        natural_end = self.created_at + self.processing_s
        stops = [(self.expires_at, ResultType.EXPIRED)]
        if self.cancel_at is not None:
            stops.insert(0, (self.cancel_at, ResultType.CANCELED))
        when, why = min(stops, key=lambda stop: stop[0])
        return (when, why) if when < natural_end else None

    def ended_at(self) -> float:
        """When processing ends (or ended), if the rows are ready by then."""
        ends = [self.created_at + self.processing_s, self.expires_at]
        if self.cancel_at is not None:
            ends.append(self.cancel_at + self.cancel_s)
        return max(min(ends), self.ready_at)

    def status(self, now: float) -> ProcessingStatus:
        """The processing status at `now`."""
        if self.rows is not None and now >= self.ended_at():
            return ProcessingStatus.ENDED
        if self.cancel_at is not None:
            return ProcessingStatus.CANCELING
        return ProcessingStatus.IN_PROGRESS

    def done_rows(self) -> int:
        """How many requests (in request order) were processed before any cut."""
        cut = self.cut()
        if cut is None or self.processing_s <= 0:
            return self.size
        elapsed = max(0.0, cut[0] - self.created_at)
        return min(self.size, int(self.size * elapsed / self.processing_s))

    def counts(self, status: ProcessingStatus) -> dict[str, int]:
        """`request_counts` in this status: all `processing` until ended, then the tally."""
        if status is not ProcessingStatus.ENDED:
            return {"processing": self.size, **dict.fromkeys(RESULT_TYPES, 0)}
        if self._tally is None:
            self._tally = self._count()
        return {"processing": 0, **self._tally}

    def _count(self) -> dict[str, int]:
        assert self.rows is not None  # the batch has ended
        done = self.done_rows()
        head = self.rows.kinds[:done]
        tally = {
            ResultType.SUCCEEDED.value: head.count(RowKind.SUCCEEDED),
            ResultType.ERRORED.value: sum(head.count(kind) for kind in ERRORED_KINDS),
            ResultType.CANCELED.value: 0,
            ResultType.EXPIRED.value: head.count(RowKind.EXPIRED),
        }
        cut = self.cut()
        if cut is not None:
            tally[cut[1].value] += self.size - done
        return tally

    def to_json(self, now: float, base_url: str) -> dict[str, Any]:
        """The MessageBatch object, as the API returns it."""
        status = self.status(now)  # once: the rows may be stored meanwhile by the worker
        ended = status is ProcessingStatus.ENDED
        return {
            "id": self.id,
            "type": "message_batch",
            "processing_status": status.value,
            "request_counts": self.counts(status),
            "ended_at": timestamp(self.ended_at()) if ended else None,
            "created_at": timestamp(self.created_at),
            "expires_at": timestamp(self.expires_at),
            "cancel_initiated_at": None if self.cancel_at is None else timestamp(self.cancel_at),
            "archived_at": None,
            "results_url": f"{base_url}/v1/messages/batches/{self.id}/results" if ended else None,
        }
