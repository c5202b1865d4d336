"""Result rows: download a batch's results, turn each line into the request's final row,
and cut the rows to retry into new chunks.

A download is spooled to a temporary file first and applied only once complete (every
line parses, one per request), so a broken stream is simply fetched again: nothing is
half-written and nothing is counted twice.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import orjson
import sqlalchemy as sa
from anthropic.types.messages import MessageBatch
from sqlalchemy.engine import Connection

from . import chunks as chunk_store
from . import result_lines
from .api import ResultDisposition, classify_result
from .chunking import ChunkCutter
from .config import ResponseFormat, Settings
from .errors import SettingsError
from .pricing import PriceTable, cost_usd
from .store import (
    ChunkStatus,
    RequestStatus,
    chunks,
    insert_rows,
    jobs,
    now,
    requests,
    store_outputs,
    update_rows,
)

__all__ = ["apply", "build_output", "cut_into_chunks", "download"]

log = logging.getLogger(__name__)

DOWNLOAD_CHUNK_BYTES = 1 << 16  #: bytes read from the results stream at a time

#: what storing an answer sets in its request row, found by _ANSWER_KEYS
_ANSWER_COLUMNS = (
    "status",
    "error_type",
    "input_tokens",
    "output_tokens",
    "cache_creation_tokens",
    "cache_read_tokens",
    "cost_usd",
    "attempts",
)
_ANSWER_KEYS = ("job_pk", "idx", "chunk_id")
_ATTEMPT_COLUMNS = ("chunk_id", "idx", "outcome", "error_type")


class IncompleteResults(ValueError):
    """The downloaded results do not cover the chunk: fetch them again."""


#: what a broken download can raise: API errors, a cut stream, a full disk
DOWNLOAD_ERRORS = (anthropic.AnthropicError, httpx2.HTTPError, OSError)
#: what `apply` raises for a download that is not whole: a cut line, lines missing
NOT_WHOLE_ERRORS = (orjson.JSONDecodeError, IncompleteResults)


def counts_json(batch: MessageBatch) -> bytes:
    return orjson.dumps(batch.request_counts.model_dump())


def download(client: anthropic.Anthropic, chunk: chunk_store.Chunk) -> Path:
    """Stream the batch's results into a temporary file; `apply` checks they are whole."""
    assert chunk.batch_id is not None
    fd, name = tempfile.mkstemp(prefix=f"abr-{chunk.batch_id}-", suffix=".jsonl")
    path = Path(name)
    try:
        with (
            os.fdopen(fd, "wb") as handle,
            client.messages.batches.with_streaming_response.results(chunk.batch_id) as response,
        ):
            for data in response.iter_bytes(DOWNLOAD_CHUNK_BYTES):
                handle.write(data)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


def _read(path: Path) -> Iterator[dict[str, Any]]:
    with path.open("rb") as handle:
        for line in handle:
            if line.strip():
                yield orjson.loads(line)  # a cut line raises here


def apply(
    conn: Connection,
    chunk: chunk_store.Chunk,
    spool: Path,
    settings: Settings,
    prices: PriceTable | None = None,
) -> None:
    """Write every result line into its request row and record the attempt, in the caller's
    transaction. Raises `ValueError` (a cut line, a line too few or too many) when the
    download is not whole: the caller rolls back and fetches again.

    Every line is parsed before the first write: SQLite has one writer at a time, and its
    lock, taken at the first write, is then held while rows are written, not while they
    are parsed (which kept creates waiting half a second behind a fetch)."""
    members = chunk_store.members(conn, chunk.id)
    # a first-round chunk's lines are stored together once all are in (result_lines.py);
    # a retry's go row by row, to replace the earlier answers they follow
    together: list[tuple[int, bytes]] | None = [] if chunk.round == 1 else None
    seen: set[int] = set()
    updates: list[tuple[Any, ...]] = []
    lines_out: list[tuple[int, int, bytes]] = []
    tries: list[tuple[Any, ...]] = []
    lines = 0
    for line in _read(spool):
        lines += 1
        member = members.get(str(line.get("custom_id")))
        if member is None:
            continue  # not ours: a reconciled batch is confirmed by its custom_ids
        idx, before = member
        n = before + 1  # this answer's attempt
        row = build_output(line, n, chunk.batch_id, settings, prices)
        updates.append(
            (
                row["status"].value,
                row["error_type"],
                row["input_tokens"],
                row["output_tokens"],
                row["cache_creation_tokens"],
                row["cache_read_tokens"],
                row["cost_usd"],
                n,
                chunk.job_pk,
                idx,
                chunk.id,
            )
        )
        if together is None:
            lines_out.append((chunk.job_pk, idx, row["output"]))
        else:
            together.append((idx, row["output"]))
        tries.append((chunk.id, idx, row["outcome"], row["error_type"]))
        seen.add(idx)
    if lines != chunk.request_count:
        raise IncompleteResults(f"{lines} result lines for {chunk.request_count} requests")
    _write(conn, updates, lines_out, tries)
    if together:
        result_lines.store_chunk_lines(conn, chunk.job_pk, chunk.id, together)
    missing = [(cid, idx) for cid, (idx, _) in members.items() if idx not in seen]
    _retry_missing(conn, chunk, missing)


def _write(
    conn: Connection,
    updates: list[tuple[Any, ...]],
    lines_out: list[tuple[int, int, bytes]],
    tries: list[tuple[Any, ...]],
) -> None:
    update_rows(conn, "requests", _ANSWER_COLUMNS, _ANSWER_KEYS, updates)
    if lines_out:
        store_outputs(conn, lines_out)
    insert_rows(conn, "attempts", _ATTEMPT_COLUMNS, tries)


def _retry_missing(
    conn: Connection, chunk: chunk_store.Chunk, missing: Sequence[tuple[str, int]]
) -> None:
    """Requests of the chunk its batch did not answer (only after a mistaken reconcile)."""
    for _cid, idx in missing:
        conn.execute(
            sa.update(requests)
            .where(requests.c.job_pk == chunk.job_pk, requests.c.idx == idx)
            .values(status=RequestStatus.RETRY, error_type="missing_result")
        )


def build_output(
    line: dict[str, Any],
    attempts_made: int,
    batch_id: str | None,
    settings: Settings,
    prices: PriceTable | None = None,
) -> dict[str, Any]:
    """The store row values and results-file line for one result line."""
    result = line.get("result") or {}
    kind = str(result.get("type", "errored"))
    out: dict[str, Any] = {"custom_id": line.get("custom_id"), "status": kind}
    usage: dict[str, Any] = {}
    error_type: str | None = None
    if kind == "succeeded":
        message = result.get("message") or {}
        usage = message.get("usage") or {}
        out.update(_answer(message, settings.model.response_format))
        out["message"] = message
    elif kind == "errored":
        error_type, text = _error_of(result)
        out["error"] = {"type": error_type, "message": text}
    disposition = classify_result(kind, error_type)
    retry = disposition == ResultDisposition.RETRY and attempts_made < settings.batch.max_attempts
    cost = _cost(usage, str(out.get("message", {}).get("model", "")), prices) if usage else None
    out.update(attempts=attempts_made, batch_id=batch_id, cost_usd=cost)
    return {
        "status": RequestStatus.RETRY if retry else RequestStatus(kind),
        "outcome": kind,
        "error_type": error_type,
        "input_tokens": int(usage.get("input_tokens") or 0),
        "output_tokens": int(usage.get("output_tokens") or 0),
        "cache_creation_tokens": int(usage.get("cache_creation_input_tokens") or 0),
        "cache_read_tokens": int(usage.get("cache_read_input_tokens") or 0),
        "output": orjson.dumps(out),
        "cost_usd": cost,
    }


def _cost(usage: dict[str, Any], model: str, prices: PriceTable | None) -> float | None:
    """What this answer cost at batch prices; None when the model has no known price."""
    if prices is None:
        return None
    try:
        return cost_usd(usage, model, prices, batch=True)
    except SettingsError:
        log.warning("no price for model %r: its cost is left out", model)
        return None


def _error_of(result: dict[str, Any]) -> tuple[str, str]:
    """`result.error` is the whole error envelope: {"type":"error","error":{type,message}}."""
    envelope: dict[str, Any] = result.get("error") or {}
    nested = envelope.get("error")
    inner: dict[str, Any] = nested if isinstance(nested, dict) else envelope
    return str(inner.get("type") or "api_error"), str(inner.get("message") or "")


def _answer(message: dict[str, Any], response_format: ResponseFormat) -> dict[str, Any]:
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


def cut_into_chunks(
    conn: Connection,
    job_pk: int,
    round_: int,
    rows: Sequence[Any],
    cutter: ChunkCutter,
) -> list[int]:
    """Put the rows (idx, body size) into new pending chunks of round `round_`."""
    groups: list[list[int]] = []
    sizes: list[int] = []
    for idx, size in rows:
        seq = cutter.place(int(size))
        if seq == len(groups):
            groups.append([])
            sizes.append(0)
        groups[seq].append(int(idx))
        sizes[seq] += int(size)
    return [
        _new_chunk(conn, job_pk, round_, group, size)
        for group, size in zip(groups, sizes, strict=True)
    ]


def next_seq(conn: Connection, job_pk: int) -> int:
    """The job's next chunk number; the row update serializes concurrent callers."""
    stmt = (
        sa.update(jobs)
        .where(jobs.c.pk == job_pk)
        .values(next_chunk_seq=jobs.c.next_chunk_seq + 1)
        .returning(jobs.c.next_chunk_seq)
    )
    return int(conn.execute(stmt).scalar_one()) - 1


def _new_chunk(conn: Connection, job_pk: int, round_: int, idxs: list[int], body_size: int) -> int:
    t = now()
    chunk_id = conn.execute(
        chunks.insert()
        .values(
            job_pk=job_pk,
            seq=next_seq(conn, job_pk),
            round=round_,
            status=ChunkStatus.PENDING,
            request_count=len(idxs),
            body_bytes=body_size,
            fingerprint=hashlib.sha256(b"".join(b"%d," % idx for idx in idxs)).hexdigest(),
            lease_token=0,
            fetch_attempts=0,
            updated_at=t,
        )
        .returning(chunks.c.id)
    ).scalar_one()
    conn.execute(
        sa.update(requests)
        .where(requests.c.job_pk == job_pk, requests.c.idx == sa.bindparam("b_idx"))
        .values(chunk_id=chunk_id, status=RequestStatus.QUEUED),
        [{"b_idx": idx} for idx in idxs],
    )
    return int(chunk_id)


def _canceled_line(custom_id: str, attempts_made: int) -> bytes:
    return orjson.dumps(
        {"custom_id": custom_id, "status": "canceled", "attempts": attempts_made, "batch_id": None}
    )


def _end_rows(
    conn: Connection,
    where: Any,
    status: RequestStatus,
    line_of: Callable[[str, int], bytes],
    error_type: str | None = None,
) -> None:
    """End the requests `where` picks with `status` (and `error_type`, when given) without
    an answer: each gets the results-file line `line_of(custom_id, attempts)`."""
    rows = conn.execute(
        sa.select(
            requests.c.job_pk, requests.c.idx, requests.c.custom_id, requests.c.attempts
        ).where(where)
    ).all()
    columns: tuple[str, ...] = ("status",)
    values: tuple[str, ...] = (status.value,)
    if error_type is not None:
        columns, values = ("status", "error_type"), (status.value, error_type)
    update_rows(
        conn, "requests", columns, ("job_pk", "idx"), [(*values, pk, idx) for pk, idx, _, _ in rows]
    )
    store_outputs(conn, [(pk, idx, line_of(cid, n)) for pk, idx, cid, n in rows])


def _cancel_rows(conn: Connection, where: Any) -> None:
    _end_rows(conn, where, RequestStatus.CANCELED, _canceled_line)


def fail_chunk_rows(conn: Connection, chunk_id: int, error_type: str, message: str) -> None:
    """The API refused the whole chunk for good: its requests end errored."""
    error = {"type": error_type, "message": message}

    def line_of(custom_id: str, attempts_made: int) -> bytes:
        return orjson.dumps(
            {"custom_id": custom_id, "status": "errored", "error": error, "attempts": attempts_made}
        )

    _end_rows(conn, requests.c.chunk_id == chunk_id, RequestStatus.ERRORED, line_of, error_type)


def cancel_waiting_rows(conn: Connection, job_pk: int) -> None:
    """Rows waiting for a retry are canceled: they will not be sent again."""
    _cancel_rows(
        conn, sa.and_(requests.c.job_pk == job_pk, requests.c.status == RequestStatus.RETRY)
    )


def cancel_chunk_rows(conn: Connection, chunk_id: int) -> None:
    """The rows of a chunk that was never sent are canceled."""
    _cancel_rows(conn, requests.c.chunk_id == chunk_id)
