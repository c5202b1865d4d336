"""Answers: what each line of a batch's results file makes of its request. Pure: a line in,
an `Answer` out (status, usage, cost, the results-file line); the store writes them.

A download is spooled to a temporary file first and read here only once complete (every
line parses, one per request), so a broken stream is simply fetched again: nothing is
half-written and nothing is counted twice. The answers are spooled in turn, a slice at a
time, and handed to the store a slice at a time: memory holds a slice, not a batch.
"""

from __future__ import annotations

import logging
import marshal
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from ..api import ResultDisposition, classify_result
from ..config import ResponseFormat, Settings
from ..cost.pricing import PriceTable, cost_usd
from ..errors import SettingsError
from ..store import RequestStatus
from ..store.requests import Answer, AnswerRow

__all__ = [
    "ANSWER_SLICE",
    "ENDED_UNANSWERED",
    "NOT_WHOLE_ERRORS",
    "IncompleteResults",
    "ReadResults",
    "answer_of",
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


ANSWER_SLICE = 5000  #: answers held in memory at a time, while read and while written
_SIZE_BYTES = 8  #: bytes of the size before each spooled slice


class ReadResults:
    """A whole results file, read: the answers to the chunk's requests, spooled to an
    anonymous temporary file a slice at a time (memory holds a slice, not a batch), and
    the input indexes of its requests the file did not answer (only after a mistaken
    reconcile). Close it to drop the spool."""

    def __init__(self, spool: BinaryIO, count: int, missing: list[int]) -> None:
        self._spool, self.count, self.missing = spool, count, missing

    def slices(self) -> Iterator[list[AnswerRow]]:
        """The answers as rows, in the order of the results file, `ANSWER_SLICE` at a time."""
        self._spool.seek(0)
        for _ in range(self._slices):
            size = int.from_bytes(self._spool.read(_SIZE_BYTES), "little")
            rows: list[AnswerRow] = marshal.loads(self._spool.read(size))
            yield rows

    @property
    def _slices(self) -> int:
        return -(-self.count // ANSWER_SLICE)

    def close(self) -> None:
        self._spool.close()

    def __enter__(self) -> ReadResults:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_answers(
    spool: Path,
    members: Mapping[str, tuple[int, int]],
    expected_lines: int,
    batch_id: str | None,
    settings: Settings,
    prices: PriceTable | None,
) -> ReadResults:
    """Every line of a downloaded results file as the answer it gives its request.
    `members` maps the chunk's custom_ids to (input index, attempts before this one).
    Lines for other custom_ids are left out: a reconciled batch is confirmed by its
    custom_ids. Raises one of `NOT_WHOLE_ERRORS` when the download is not whole, before
    the caller has written anything."""
    # closed by the caller through ReadResults, once the answers are written
    out = tempfile.TemporaryFile(prefix="abr-answers-")  # noqa: SIM115
    try:
        count, seen, lines = _spool_answers(spool, out, members, batch_id, settings, prices)
        if lines != expected_lines:
            raise IncompleteResults(f"{lines} result lines for {expected_lines} requests")
    except BaseException:
        out.close()
        raise
    missing = sorted(idx for idx, _ in members.values() if idx not in seen)
    return ReadResults(out, count, missing)


def _spool_answers(
    spool: Path,
    out: BinaryIO,
    members: Mapping[str, tuple[int, int]],
    batch_id: str | None,
    settings: Settings,
    prices: PriceTable | None,
) -> tuple[int, set[int], int]:
    """Write the answers to `out` as marshalled slices: (answers, indexes seen, lines)."""
    part: list[AnswerRow] = []
    seen: set[int] = set()
    count = lines = 0
    for line in _read(spool):
        lines += 1
        member = members.get(str(line.get("custom_id")))
        if member is None:
            continue
        idx, before = member
        part.append(_answer_row(line, idx, before + 1, batch_id, settings, prices))
        seen.add(idx)
        count += 1
        if len(part) == ANSWER_SLICE:
            _dump(part, out)
            part.clear()
    if part:
        _dump(part, out)
    return count, seen, lines


def _dump(part: list[AnswerRow], out: BinaryIO) -> None:
    # sized, so that a slice is read back with one read: marshal.load on a file reads
    # field by field
    data = marshal.dumps(part)
    out.write(len(data).to_bytes(_SIZE_BYTES, "little"))
    out.write(data)


def _read(path: Path) -> Iterator[dict[str, Any]]:
    with path.open("rb") as handle:
        for line in handle:
            if line.strip():
                yield orjson.loads(line)  # a cut line raises here


def answer_of(
    line: Mapping[str, Any],
    idx: int,
    attempts_made: int,
    batch_id: str | None,
    settings: Settings,
    prices: PriceTable | None = None,
) -> Answer:
    """The answer one result line gives request `idx`, on its attempt `attempts_made`."""
    row = _answer_row(line, idx, attempts_made, batch_id, settings, prices)
    return Answer(row[0], RequestStatus(row[1]), *row[2:])


def _answer_row(
    line: Mapping[str, Any],
    idx: int,
    attempts_made: int,
    batch_id: str | None,
    settings: Settings,
    prices: PriceTable | None,
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
    cost = _cost(usage, str(out.get("message", {}).get("model", "")), prices) if usage else None
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


def _cost(usage: dict[str, Any], model: str, prices: PriceTable | None) -> float | None:
    """What this answer cost at batch prices; None when the model has no known price."""
    if prices is None:
        return None
    try:
        return cost_usd(usage, model, prices, batch=True)
    except SettingsError:
        log.warning("no price for model %r: its cost is left out", model)
        return None


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
