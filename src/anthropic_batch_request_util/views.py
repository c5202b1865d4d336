"""What the Python API hands back: typed, read-only views of what the store holds.

`Result` is one line of the results file; `Status` is what `abr status --json` prints, with
a `Chunk` per batch; `Usage` is the tokens a job's answers used. Each is a frozen dataclass
made from the store's own rows, so the views never run ahead of the store.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import orjson

from .cost.budget import budget_dict
from .output import records_path, results_path
from .store import ENDED_JOB_STATUSES, Store
from .store.jobs import Snapshot, attempt_history, snapshot
from .store.workers import working_on

__all__ = [
    "Chunk",
    "Result",
    "Status",
    "Usage",
    "eta_seconds",
    "look",
    "result_of",
    "status_of",
    "summary_of",
    "usage_of",
]


@dataclass(frozen=True, slots=True)
class Result:
    """One request's answer, as its line in the results file says.

    `status` is ``succeeded``, ``errored``, ``canceled`` or ``expired``. A succeeded request
    has `text` (its text blocks joined), `message` (the whole Message as the API sent it)
    and, with ``model.response_format: json``, `parsed` or `parse_error`; an errored one has
    `error` (``{"type": ..., "message": ...}``).
    """

    custom_id: str
    status: str
    text: str | None = None
    parsed: Any = None  #: the text read as JSON (``model.response_format: json``)
    parse_error: str | None = None  #: why the text is not JSON, when it is not
    message: dict[str, Any] | None = None  #: the Message, for a succeeded request
    error: dict[str, str] | None = None  #: ``{"type", "message"}``, for an errored request
    attempts: int = 0  #: how many times the request was sent
    batch_id: str | None = None  #: the batch that gave this answer
    cost_usd: float | None = None  #: at batch prices; None when the model has no price

    @property
    def ok(self) -> bool:
        """Whether the request succeeded."""
        return self.status == "succeeded"

    def as_dict(self) -> dict[str, Any]:
        """The result as a plain dict (one row of `Job.to_pandas`)."""
        return asdict(self)


def result_of(line: bytes) -> Result:
    """The `Result` a results-file line holds."""
    data: dict[str, Any] = orjson.loads(line)
    return Result(
        custom_id=str(data.get("custom_id")),
        status=str(data.get("status")),
        text=data.get("text"),
        parsed=data.get("parsed"),
        parse_error=data.get("parse_error"),
        message=data.get("message"),
        error=data.get("error"),
        attempts=int(data.get("attempts") or 0),
        batch_id=data.get("batch_id"),
        cost_usd=data.get("cost_usd"),
    )


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens used by a job's succeeded requests."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0


def usage_of(current: Snapshot) -> Usage:
    """The usage a snapshot sums."""
    used = current.usage
    return Usage(
        used.input_tokens,
        used.output_tokens,
        used.cache_creation_input_tokens,
        used.cache_read_input_tokens,
    )


@dataclass(frozen=True, slots=True)
class Chunk:
    """One batch of a job (a chunk of its requests) as `abr status` shows it."""

    seq: int
    round: int  #: 1 for the input's own chunks, 2 and on for retries
    status: str
    batch_id: str | None
    requests: int
    request_counts: dict[str, int]  #: the API's counts for the batch, by result type
    age_s: float | None  #: seconds since it was submitted; None before


@dataclass(frozen=True, slots=True)
class Status:
    """Where a job stands: the figures `abr status --json` prints, taken at one moment."""

    job_id: str
    status: str  #: ``running``, ``canceling``, ``finished`` or ``failed``
    total: int  #: requests in the job
    done: int  #: requests with a final status
    counts: dict[str, int]  #: requests by final status
    retrying: int  #: requests waiting for, or in, another attempt
    errors: dict[str, int]  #: requests not succeeded, by error type
    eta_s: float | None  #: seconds left at the pace so far; None when unknown or ended
    cost_usd: float | None  #: spent so far; None before any priced answer
    error: str | None  #: why a failed job stopped
    budget: dict[str, Any] | None  #: with a budget: its limit, the spend, why it stopped
    working: int | None  #: live processes moving the job on (workers, a run of it)
    attempts: tuple[dict[str, Any], ...]  #: answers so far by round, outcome, error type
    chunks: tuple[Chunk, ...]
    #: while the job store cannot be reached: why (this is the last look before it went)
    store_waiting: str | None = None

    @property
    def ended(self) -> bool:
        """Whether nothing moves until someone acts (finished, or failed)."""
        return self.status in {status.value for status in ENDED_JOB_STATUSES}

    def as_dict(self) -> dict[str, Any]:
        """The status as a plain dict: the object `abr status --json` prints."""
        data = asdict(self)
        data["chunks"] = [asdict(chunk) for chunk in self.chunks]
        data["attempts"] = list(self.attempts)
        return data


def eta_seconds(current: Snapshot) -> float | None:
    done, total = current.counts.final, current.job.total_requests
    elapsed = current.taken_at - current.job.created_at
    if done == 0 or elapsed <= 0 or current.job.status in ENDED_JOB_STATUSES:
        return None
    return (total - done) / (done / elapsed)


def look(store: Store, job_pk: int) -> Snapshot:
    """A full look at a job: its snapshot, how many live processes move it on, and the
    history of its answers (what `abr status` and `Job.status` show)."""
    current = snapshot(store, job_pk)
    with store.begin() as conn:
        current.working = working_on(conn, job_pk)
        current.attempts = attempt_history(conn, job_pk)
    return current


def status_of(current: Snapshot) -> Status:
    """The `Status` a store snapshot shows."""
    job = current.job
    return Status(
        job_id=job.id,
        status=job.status.value,
        total=job.total_requests,
        done=current.counts.final,
        counts=current.counts.finals(),
        retrying=current.retrying,
        errors=dict(current.errors),
        eta_s=eta_seconds(current),
        cost_usd=current.cost_usd,
        error=job.error,
        budget=budget_dict(job, current.cost_usd),
        working=current.working,
        attempts=tuple(current.attempts),
        chunks=tuple(
            Chunk(
                seq=c.seq,
                round=c.round,
                status=c.status.value,
                batch_id=c.batch_id,
                requests=c.request_count,
                request_counts=dict(c.counts),
                age_s=None if c.submitted_at is None else current.taken_at - c.submitted_at,
            )
            for c in current.chunks
        ),
        store_waiting=current.store_waiting,
    )


def summary_of(current: Snapshot, *, stop_note: str | None, interrupted: bool) -> dict[str, Any]:
    """How a run of a job ended, as ``abr run --json`` prints it (`Job.summary`)."""
    usage = current.usage
    return {
        "job_id": current.job.id,
        "status": current.job.status.value,
        "counts": current.counts.finals(),
        "total": current.job.total_requests,
        "results_path": str(results_path(current.job)),
        "records_path": str(records_path(current.job)),
        "usage": {
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "cache_creation_input_tokens": usage.cache_creation_input_tokens,
            "cache_read_input_tokens": usage.cache_read_input_tokens,
        },
        "cost_usd": current.cost_usd,
        "budget": budget_dict(current.job, current.cost_usd),
        "stop_note": stop_note,
        "running_batches": current.running_batches,
        "interrupted": interrupted,
    }
