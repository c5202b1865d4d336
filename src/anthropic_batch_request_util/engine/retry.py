"""Retry: a chunk's requests that failed retryably (api_error, overloaded_error, expired,
while attempts remain) are cut into new chunks of the next round, in the transaction that
stores the chunk's results. `abr retry` does the same for a finished job's requests that
ended in the statuses the user names: one more attempt each, in a new round."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..config import Settings
from ..errors import UsageError
from ..inputs.chunking import ChunkCutter, chunk_limits
from ..store import Connection, JobStatus, RequestStatus, bodies
from ..store import chunks as chunk_rows
from ..store import jobs as job_rows
from ..store import requests as request_rows

__all__ = [
    "RETRYABLE_STATUSES",
    "RetryChoice",
    "cut_into_chunks",
    "parse_retry_statuses",
    "plan_retries",
    "requeue_ended",
]

#: the final statuses `abr retry` can send again (a succeeded answer is kept)
RETRYABLE_STATUSES = (RequestStatus.ERRORED, RequestStatus.EXPIRED, RequestStatus.CANCELED)
#: left out by default: the API refused the request itself, so sending it again cannot
#: succeed (and is only worth it after editing it, which makes a new job anyway)
NOT_RETRIED_BY_DEFAULT = ("invalid_request_error",)


@dataclass(frozen=True, slots=True)
class RetryChoice:
    """Which ended requests `abr retry` sends again."""

    statuses: tuple[RequestStatus, ...] = RETRYABLE_STATUSES
    skip_error_types: tuple[str, ...] = NOT_RETRIED_BY_DEFAULT


def parse_retry_statuses(text: str | None) -> RetryChoice:
    """`--status errored,expired,canceled` as a choice; None is the default (errored
    except invalid_request_error, expired, canceled). Naming statuses takes them whole."""
    if text is None:
        return RetryChoice()
    names = [name.strip() for name in text.split(",") if name.strip()]
    allowed = [status.value for status in RETRYABLE_STATUSES]
    wrong = [name for name in names if name not in allowed]
    if wrong or not names:
        raise UsageError(
            f"--status takes a comma-separated list of {', '.join(allowed)}"
            + (f", not {wrong[0]!r}" if wrong else "")
        )
    return RetryChoice(tuple(RequestStatus(name) for name in dict.fromkeys(names)), ())


def requeue_ended(
    conn: Connection, job: job_rows.Job, choice: RetryChoice, settings: Settings
) -> int:
    """Put the finished job's requests the choice picks into new chunks of the next round
    and set the job running again; how many were put. Only a finished job: one still
    running would race its own workers, and a failed one is resumed first."""
    if job.status != JobStatus.FINISHED:
        hint = f"abr resume {job.id}" if job.status == JobStatus.FAILED else "wait for it"
        raise UsageError(f"job {job.id} is {job.status.value}, not finished: {hint} first")
    idxs = request_rows.ended_rows(conn, job.pk, choice.statuses, choice.skip_error_types)
    if not idxs:
        return 0
    rows = bodies.body_sizes(conn, job.pk, idxs)
    cut_into_chunks(conn, job.pk, chunk_rows.last_round(conn, job.pk) + 1, rows, settings)
    if not job_rows.set_status(conn, job.pk, JobStatus.RUNNING, only_from=(JobStatus.FINISHED,)):
        raise UsageError(f"job {job.id} changed while the retry was planned: try again")
    return len(idxs)


def plan_retries(conn: Connection, chunk: chunk_rows.Chunk, settings: Settings) -> list[int]:
    """New pending chunks for the chunk's requests to retry; their ids."""
    rows = bodies.body_sizes(conn, chunk.job_pk, request_rows.retry_rows(conn, chunk.id))
    if not rows:
        return []
    return cut_into_chunks(conn, chunk.job_pk, chunk.round + 1, rows, settings)


def cut_into_chunks(
    conn: Connection,
    job_pk: int,
    round_: int,
    rows: Sequence[tuple[int, int]],
    settings: Settings,
) -> list[int]:
    """Put the rows (idx, body size) into new pending chunks of round `round_`, cut by the
    same limits as at ingest."""
    cutter = ChunkCutter(*chunk_limits(settings))
    groups: list[list[int]] = []
    sizes: list[int] = []
    for idx, size in rows:
        seq = cutter.place(int(size))
        if seq == len(groups):
            groups.append([])
            sizes.append(0)
        groups[seq].append(int(idx))
        sizes[seq] += int(size)
    made = []
    for idxs, size in zip(groups, sizes, strict=True):
        chunk_id = chunk_rows.add_chunk(conn, job_pk, round_, len(idxs), size)
        request_rows.assign(conn, job_pk, idxs, chunk_id)
        made.append(chunk_id)
    return made
