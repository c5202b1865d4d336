"""Answers: what each line of a batch's results file makes of its request. Pure: a line in,
an `AnswerRow` out (status, usage, cost, the results-file line); the store writes them.

A download is spooled to a temporary file first and read here only once complete (every
line parses, one per request), so a broken stream is simply fetched again: nothing is
half-written and nothing is counted twice. The answers are written to files in turn, a
slice at a time, and handed to the store a slice at a time: memory holds a slice, not a
batch. Reading a results file takes only paths and plain values, and gives files and plain
values back, so that it can run in the helper process (helper.py).
"""

from __future__ import annotations

import logging
import marshal
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from ..config import ResponseFormat, Settings
from ..cost.pricing import PriceTable, cost_usd
from ..errors import SettingsError
from ..store import RequestStatus
from ..store.requests import AnswerRow, Members
from ..store.result_lines import ChunkLineWriter, SegmentRow

__all__ = [
    "ANSWER_SLICE",
    "ENDED_UNANSWERED",
    "NOT_WHOLE_ERRORS",
    "RETRYABLE_RESULT_ERRORS",
    "IncompleteResults",
    "ReadResults",
    "ResultDisposition",
    "classify_result",
    "read_answers",
]

log = logging.getLogger(__name__)


class IncompleteResults(ValueError):
    """The downloaded results do not cover the chunk: fetch them again."""


#: what `read_answers` raises for a download that is not whole: a cut line, lines missing
NOT_WHOLE_ERRORS = (orjson.JSONDecodeError, IncompleteResults)
#: the error message of a results line that ended without an answer or an API error
ENDED_UNANSWERED = {
    "expired": "the batch ended (after 24 hours) before this request was processed",
    "canceled": "the batch was canceled before this request was processed",
}
RETRYABLE_RESULT_ERRORS = frozenset({"api_error", "overloaded_error"})


class ResultDisposition(StrEnum):
    """What to do with one result row of a batch."""

    FINAL = "final"  #: the request has its answer (or an error retrying cannot fix)
    RETRY = "retry"  #: send it again in a new chunk, while attempts remain


def classify_result(result_type: str, error_type: str | None) -> ResultDisposition:
    """Retry by error type: server trouble and expiry are retried; bad requests never."""
    if result_type == "expired":
        return ResultDisposition.RETRY
    if result_type == "errored" and error_type in RETRYABLE_RESULT_ERRORS:
        return ResultDisposition.RETRY
    return ResultDisposition.FINAL


ANSWER_SLICE = 5000  #: answers held in memory at a time, while read and while written
_SIZE_BYTES = 8  #: bytes of the size before each marshalled part


@dataclass(frozen=True)
class ReadResults:
    """A whole results file, read: the answers to the chunk's requests in a file of
    marshalled slices; with `segments`, their lines apart, sorted into the chunk's
    segments (store/result_lines.py) in a file of their own, the answers' lines left
    empty; and the input indexes of its requests the file did not answer (only after a
    mistaken reconcile). The caller owns the files."""

    answers: Path
    count: int
    missing: list[int]
    segments: Path | None = None

    def slices(self) -> Iterator[list[AnswerRow]]:
        """The answers as rows, in the order of the results file, `ANSWER_SLICE` at a time."""
        yield from _parts(self.answers)

    def segment_rows(self) -> Iterator[SegmentRow]:
        """The chunk's lines as segment rows, in input order (none without `segments`)."""
        if self.segments is not None:
            yield from _parts(self.segments)


def read_answers(
    spool: Path,
    members: Members,
    expected_lines: int,
    batch_id: str | None,
    settings: Settings,
    prices: PriceTable | None,
    out_dir: Path,
    segments_of: tuple[int, int] | None = None,
) -> ReadResults:
    """Every line of a downloaded results file as the answer it gives its request, written
    to files in `out_dir`. `members` are the chunk's requests. Lines for other custom_ids
    are left out: a reconciled batch is confirmed by its custom_ids. With `segments_of` =
    (job pk, chunk id), a first-round chunk's, the lines go apart, as the chunk's segments.
    Raises one of `NOT_WHOLE_ERRORS` when the download is not whole, before the caller has
    written anything."""
    answers = out_dir / "answers"
    segments = out_dir / "segments" if segments_of is not None else None
    lines = ChunkLineWriter(*segments_of) if segments_of is not None else None
    table = members.table()
    try:
        with answers.open("wb") as out:
            count, seen, read = _spool_answers(spool, out, table, batch_id, settings, prices, lines)
        if read != expected_lines:
            raise IncompleteResults(f"{read} result lines for {expected_lines} requests")
        if lines is not None and segments is not None:
            with segments.open("wb") as out:
                for row in lines.segments():
                    _dump(row, out)
    finally:
        if lines is not None:
            lines.close()
    missing = sorted(idx for idx, _ in table.values() if idx not in seen)
    return ReadResults(answers, count, missing, segments)


def _spool_answers(
    spool: Path,
    out: BinaryIO,
    members: Mapping[str, tuple[int, int]],
    batch_id: str | None,
    settings: Settings,
    prices: PriceTable | None,
    lines: ChunkLineWriter | None,
) -> tuple[int, set[int], int]:
    """Write the answers to `out` as marshalled slices: (answers, indexes seen, lines);
    with `lines`, each answer's line goes there instead."""
    part: list[AnswerRow] = []
    costs: dict[tuple[Any, ...], float | None] = {}  # answers repeat the same few usages
    seen: set[int] = set()
    count = read = 0
    for line in _read(spool):
        read += 1
        member = members.get(str(line.get("custom_id")))
        if member is None:
            continue
        idx, before = member
        part.append(_answer_row(line, idx, before + 1, batch_id, settings, prices, costs))
        seen.add(idx)
        count += 1
        if len(part) == ANSWER_SLICE:
            _flush(part, out, lines)
    if part:
        _flush(part, out, lines)
    return count, seen, read


def _flush(part: list[AnswerRow], out: BinaryIO, lines: ChunkLineWriter | None) -> None:
    if lines is not None:
        lines.add([(row[0], row[10]) for row in part])
        part[:] = [(*row[:10], b"") for row in part]
    _dump(part, out)
    part.clear()


def _dump(value: Any, out: BinaryIO) -> None:
    # sized, so that a part is read back with one read: marshal.load on a file reads
    # field by field
    data = marshal.dumps(value)
    out.write(len(data).to_bytes(_SIZE_BYTES, "little"))
    out.write(data)


def _parts(path: Path) -> Iterator[Any]:
    with path.open("rb") as handle:
        while size := int.from_bytes(handle.read(_SIZE_BYTES), "little"):
            yield marshal.loads(handle.read(size))


def _read(path: Path) -> Iterator[dict[str, Any]]:
    with path.open("rb") as handle:
        for line in handle:
            if line.strip():
                yield orjson.loads(line)  # a cut line raises here


def _answer_row(
    line: Mapping[str, Any],
    idx: int,
    attempts_made: int,
    batch_id: str | None,
    settings: Settings,
    prices: PriceTable | None,
    costs: dict[tuple[Any, ...], float | None],
) -> AnswerRow:
    result = line.get("result") or {}
    kind = str(result.get("type", "errored"))
    out: dict[str, Any] = {"custom_id": line.get("custom_id"), "status": kind}
    usage: dict[str, Any] = {}
    error_type: str | None = None
    if kind == "succeeded":
        message = result.get("message") or {}
        usage = message.get("usage") or {}
        out.update(_text_of(message, settings.model.response_format))
        out["message"] = message
    elif kind == "errored":
        error_type, text = _error_of(result)
        out["error"] = {"type": error_type, "message": text}
    else:  # every line that did not succeed says why, with a type, as errored ones do
        out["error"] = {"type": kind, "message": ENDED_UNANSWERED.get(kind, kind)}
    disposition = classify_result(kind, error_type)
    retry = disposition == ResultDisposition.RETRY and attempts_made < settings.batch.max_attempts
    model = str(out.get("message", {}).get("model", ""))
    cost = _cost(usage, model, prices, costs) if usage else None
    out.update(attempts=attempts_made, batch_id=batch_id, cost_usd=cost)
    status = RequestStatus.RETRY if retry else RequestStatus(kind)  # an unknown kind raises
    return (
        idx,
        status.value,
        kind,
        error_type,
        int(usage.get("input_tokens") or 0),
        int(usage.get("output_tokens") or 0),
        int(usage.get("cache_creation_input_tokens") or 0),
        int(usage.get("cache_read_input_tokens") or 0),
        cost,
        attempts_made,
        orjson.dumps(out),
    )


def _cost(
    usage: dict[str, Any],
    model: str,
    prices: PriceTable | None,
    costs: dict[tuple[Any, ...], float | None],
) -> float | None:
    """What this answer cost at batch prices; None when the model has no known price.
    `costs` remembers the cost of each usage already priced (one results file's worth)."""
    if prices is None:
        return None
    key = _usage_key(usage, model)
    if key is not None and key in costs:
        return costs[key]
    try:
        cost: float | None = cost_usd(usage, model, prices, batch=True)
    except SettingsError:
        log.warning("no price for model %r: its cost is left out", model)
        cost = None
    if key is not None and len(costs) < _COSTS_KEPT:
        costs[key] = cost
    return cost


_COSTS_KEPT = 65536  #: distinct usages remembered per results file at most


def _usage_key(usage: dict[str, Any], model: str) -> tuple[Any, ...] | None:
    """What the cost of `usage` depends on, hashable; None for a usage unlike the rest."""
    split = usage.get("cache_creation")
    if split is not None and not isinstance(split, dict):
        return None
    key = (
        model,
        usage.get("input_tokens"),
        usage.get("output_tokens"),
        usage.get("cache_creation_input_tokens"),
        usage.get("cache_read_input_tokens"),
        None if split is None else split.get("ephemeral_5m_input_tokens"),
        None if split is None else split.get("ephemeral_1h_input_tokens"),
    )
    try:
        hash(key)
    except TypeError:  # a field that is not a number: priced, not remembered
        return None
    return key


def _error_of(result: Mapping[str, Any]) -> tuple[str, str]:
    """`result.error` is the whole error envelope: {"type":"error","error":{type,message}}."""
    envelope: dict[str, Any] = result.get("error") or {}
    nested = envelope.get("error")
    inner: dict[str, Any] = nested if isinstance(nested, dict) else envelope
    return str(inner.get("type") or "api_error"), str(inner.get("message") or "")


def _text_of(message: Mapping[str, Any], response_format: ResponseFormat) -> dict[str, Any]:
    text = "".join(
        str(block.get("text", ""))
        for block in message.get("content") or []
        if block.get("type") == "text"
    )
    answer: dict[str, Any] = {"text": text}
    if response_format == ResponseFormat.JSON:
        try:
            answer["parsed"] = orjson.loads(_strip_fence(text))
        except orjson.JSONDecodeError as error:
            answer["parsed"] = None
            answer["parse_error"] = str(error)
    return answer


def _strip_fence(text: str) -> str:
    """Models often wrap JSON in a ```json fence; the JSON inside is what was asked for."""
    body = text.strip()
    if body.startswith("```") and body.endswith("```"):
        body = body[3:-3]
        body = body.split("\n", 1)[1] if "\n" in body else body
    return body
