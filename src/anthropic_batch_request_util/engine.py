"""The steps of a batch job, as plain functions over (store, API client).

    ingest ─► submit_chunk ─► poll_batch ─(ended)─► fetch_results ─► finalize_job
                  ▲              └─(not yet)─► poll_batch again, later
                  └──── retryable rows become a new chunk ◄──┘

Each step takes ids, reads what it needs from the store, does its part, and returns the
`Action`s that should follow. The Celery tasks only run a step and queue its actions; tests
run the same steps inline. Every step is safe to run twice: work on a chunk needs its lease,
and each write is a guarded transition.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import anthropic
import sqlalchemy as sa
from anthropic.types.messages import MessageBatch

from . import bodies
from . import chunks as chunk_store
from . import jobs as job_store
from . import results as result_rows
from .api import HttpFailure, classify_http_error, create_batch, retry_after_seconds
from .chunking import ChunkCutter, effective_limits
from .config import Settings, settings_from_dict
from .errors import ApiError, SettingsError
from .output import write_outputs, write_record
from .pricing import PriceTable, price_table_for
from .store import (
    ACTIVE_JOB_STATUSES,
    ChunkStatus,
    HeldLock,
    JobStatus,
    RequestStatus,
    Store,
    held_lock,
    now,
    requests,
)

__all__ = ["Action", "Runtime", "Step", "advance_job", "fetch_results", "finalize_job"]

log = logging.getLogger(__name__)

RECONCILE_SKEW_S = 5.0  #: seconds of clock difference allowed between us and the API
SUBMIT_LOCK = "submit"  #: the store-wide lock held around every batch create
FINALIZE_LOCK = "finalize"  #: held (per job) while a job's output files are written
SUBMIT_LOCK_RETRY_S = 0.2  #: seconds before a submit that found the lock taken tries again
NOT_FOUND_GRACE_S = 60.0  #: seconds after create during which a 404 is taken as transient
SHORT_WAIT_S = 5.0  #: seconds; longer waits are rescheduled instead of slept in a task
POLL_GROWTH = 1.5  #: each unfinished poll waits this much longer, up to poll_max_interval
EARLY_POLL_S = 0.25  #: seconds of slack before next_poll_at within which a poll may run


class Step(StrEnum):
    """The kinds of work a worker does."""

    SUBMIT = "submit_chunk"
    POLL = "poll_batch"
    FETCH = "fetch_results"
    FINALIZE = "finalize_job"


@dataclass(frozen=True, slots=True)
class Action:
    """A step to run next, on a chunk id (or job pk for finalize), after `delay` seconds."""

    step: Step
    target: int
    delay: float = 0.0


ClientFactory = Callable[[Settings], anthropic.Anthropic]


@dataclass
class Runtime:
    """What a worker needs to run steps: the store, a way to get API clients, its name."""

    store: Store
    client_factory: ClientFactory
    owner: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    #: queues actions at once, from inside a step: the local deployment's in-process queue,
    #: whose submits meet at this runtime's gate. Without it (worker processes, tests) a
    #: step hands all its actions back when it is done.
    send: Callable[[list[Action]], None] | None = None
    _settings: dict[int, Settings] = field(default_factory=dict)
    _prices: dict[int, PriceTable] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _submit_gate: threading.Lock = field(default_factory=threading.Lock)

    def settings_for(self, job_pk: int) -> Settings:
        """The settings a job was created with (cached; they never change for a job)."""
        with self._lock:
            return self._settings_unlocked(job_pk)

    def _settings_unlocked(self, job_pk: int) -> Settings:
        if job_pk not in self._settings:
            with self.store.begin() as conn:
                job = job_store.get_job_by_pk(conn, job_pk)
            self._settings[job_pk] = settings_from_dict(job.settings)
        return self._settings[job_pk]

    def prices_for(self, job_pk: int) -> PriceTable:
        """The price table of a job's settings (cached per job)."""
        with self._lock:
            if job_pk not in self._prices:
                pricing_file = self._settings_unlocked(job_pk).pricing_file
                self._prices[job_pk] = price_table_for(pricing_file)
            return self._prices[job_pk]

    def client(self, job_pk: int) -> anthropic.Anthropic:
        return self.client_factory(self.settings_for(job_pk))

    def worker_name(self) -> str:
        return f"{self.owner}:{threading.get_ident()}"


# ---------------------------------------------------------------- submit


def submit_chunk(rt: Runtime, chunk_id: int) -> list[Action]:
    """Create the chunk's batch exactly once: claim, write the intent, create, record the id."""
    owner = rt.worker_name()
    statuses = [ChunkStatus.PENDING, ChunkStatus.SUBMITTING]
    with chunk_store.leased(rt.store, chunk_id, owner, statuses) as lease:
        if lease is None:
            return []
        chunk = _reload(rt, chunk_id)
        if (
            chunk.status == ChunkStatus.PENDING
            and _job_status(rt, chunk.job_pk) == JobStatus.CANCELING
        ):
            return _cancel_unsent(rt, lease, chunk.job_pk)
        # read while the create before ours may still be in flight (see _send_next_now)
        with rt.store.begin() as conn:
            body = bodies.chunk_body(conn, chunk.id, chunk.request_count)
        # One create at a time per store: a batch that appears while our create was in
        # flight can then only be ours, which is what makes reconciling a lost reply exact.
        # The gate lines up this process's own submits without polling the store's lock.
        # A chunk not sent before gets its submit intent in the transaction that takes it.
        intent = _intent(lease) if chunk.status == ChunkStatus.PENDING else None
        with rt._submit_gate, held_lock(rt.store, SUBMIT_LOCK, owner, then=intent) as lock:
            if lock is None:
                return [Action(Step.SUBMIT, chunk_id, SUBMIT_LOCK_RETRY_S)]
            return _submit(rt, lease, chunk, body, lock)


def _intent(lease: chunk_store.Lease) -> Callable[[sa.Connection], object]:
    def write(conn: sa.Connection) -> object:
        return chunk_store.transition(
            conn, lease, ChunkStatus.PENDING, ChunkStatus.SUBMITTING, intent_at=now()
        )

    return write


def _job_status(rt: Runtime, job_pk: int) -> JobStatus:
    with rt.store.begin() as conn:
        return job_store.get_job_by_pk(conn, job_pk).status


def _submit(
    rt: Runtime, lease: chunk_store.Lease, chunk: chunk_store.Chunk, body: bytes, lock: HeldLock
) -> list[Action]:
    client = rt.client(chunk.job_pk).with_options(max_retries=0)
    if chunk.status == ChunkStatus.SUBMITTING:
        try:
            found = reconcile_submission(client, rt.store, chunk)
        except anthropic.APIError as error:
            return _retry_later(rt, chunk, error)
        if found is not None:
            return _record_submitted(rt, lease, chunk, found, lock)
    else:
        chunk = _reload(rt, chunk.id)  # the intent was written with the lock
    return _create_with_retries(rt, lease, chunk, client, body, lock)


def _reload(rt: Runtime, chunk_id: int) -> chunk_store.Chunk:
    with rt.store.begin() as conn:
        chunk = chunk_store.get_chunk(conn, chunk_id)
    assert chunk is not None
    return chunk


def _create_with_retries(
    rt: Runtime,
    lease: chunk_store.Lease,
    chunk: chunk_store.Chunk,
    client: anthropic.Anthropic,
    body: bytes,
    lock: HeldLock,
) -> list[Action]:
    settings = rt.settings_for(chunk.job_pk)
    chained = _send_next_now(rt, chunk.job_pk)
    for attempt in range(settings.api.max_retries + 1):
        try:
            batch = create_batch(client, body)
        except anthropic.APIError as error:
            kind = classify_http_error(error)
            if kind == HttpFailure.FATAL:
                return _refused(rt, lease, chunk, error, chained)
            if kind == HttpFailure.AMBIGUOUS:
                try:
                    found = reconcile_submission(client, rt.store, chunk)
                except anthropic.APIError as list_error:
                    return _retry_later(rt, chunk, list_error)
                if found is not None:
                    return _record_submitted(rt, lease, chunk, found, lock, chained)
            wait = retry_after_seconds(error, attempt)
            log.warning("create of chunk %s failed (%s); retrying in %.1fs", chunk.id, kind, wait)
            if wait > SHORT_WAIT_S:
                return [Action(Step.SUBMIT, chunk.id, wait)]
            time.sleep(wait)
        else:
            return _record_submitted(rt, lease, chunk, batch, lock, chained)
    # Still SUBMITTING: the next try reconciles before it sends anything.
    return [Action(Step.SUBMIT, chunk.id, settings.batch.poll_max_interval)]


def _retry_later(rt: Runtime, chunk: chunk_store.Chunk, error: BaseException) -> list[Action]:
    """We could not learn whether the create went through: stay SUBMITTING (so the next
    try reconciles before sending) and come back later."""
    wait = max(retry_after_seconds(error, 2), rt.settings_for(chunk.job_pk).batch.poll_interval)
    log.warning(
        "chunk %s: cannot check for a lost create (%s); again in %.1fs", chunk.id, error, wait
    )
    return [Action(Step.SUBMIT, chunk.id, wait)]


def _record_submitted(
    rt: Runtime,
    lease: chunk_store.Lease,
    chunk: chunk_store.Chunk,
    batch: MessageBatch,
    lock: HeldLock,
    chained: bool = False,
) -> list[Action]:
    interval = rt.settings_for(chunk.job_pk).batch.poll_interval

    def record(conn: sa.Connection) -> bool:  # its requests count the attempt once answered
        return chunk_store.transition(
            conn,
            lease,
            ChunkStatus.SUBMITTING,
            ChunkStatus.SUBMITTED,
            batch_id=batch.id,
            submitted_at=batch.created_at.timestamp(),
            processing_status=batch.processing_status,
            poll_interval=interval,
            next_poll_at=now() + interval,
        )

    try:
        # the next create may start once the batch id is in: both in one write
        won = lock.release_with(record)
    except sa.exc.IntegrityError:
        # Another chunk owns this batch: ours stays SUBMITTING and is reconciled again.
        log.error("chunk %s: batch %s already belongs to another chunk", chunk.id, batch.id)
        return [Action(Step.SUBMIT, chunk.id, interval)]
    log.info("chunk %s submitted as %s (%d requests)", chunk.id, batch.id, chunk.request_count)
    if won and _job_status(rt, chunk.job_pk) == JobStatus.CANCELING:
        _cancel_batch(rt, chunk.job_pk, batch.id)  # created while the job was being canceled
    if not won:
        return []
    return [Action(Step.POLL, chunk.id, interval), *_chain(rt, chunk.job_pk, chained)]


def _send_next_now(rt: Runtime, job_pk: int) -> bool:
    """Queue the next pending chunk's submit as this create starts, where the worker allows:
    it reads its body and waits at the gate meanwhile, so that creates follow each other
    without a gap. Whether it was queued (then this submit does not chain it again)."""
    if rt.send is None:
        return False
    rt.send(_next_submit(rt, job_pk))
    return True


def _chain(rt: Runtime, job_pk: int, chained: bool) -> list[Action]:
    return [] if chained else _next_submit(rt, job_pk)


def _next_submit(rt: Runtime, job_pk: int) -> list[Action]:
    """Creates run one at a time (the submit lock), so a job's pending chunks are sent as
    a chain: each submit, once done, queues the next. Queuing them all at once would only
    have them take turns failing to get the lock, each a write to the store."""
    with rt.store.begin() as conn:
        found = chunk_store.next_pending(conn, job_pk)
    return [] if found is None else [Action(Step.SUBMIT, found)]


def _cancel_batch(rt: Runtime, job_pk: int, batch_id: str) -> None:
    try:
        rt.client(job_pk).messages.batches.cancel(batch_id)
    except anthropic.APIError as error:  # it ended meanwhile, or the next poll sees it
        log.warning("could not cancel %s: %s", batch_id, _api_message(error))


def _refused(
    rt: Runtime,
    lease: chunk_store.Lease,
    chunk: chunk_store.Chunk,
    error: anthropic.APIError,
    chained: bool = False,
) -> list[Action]:
    """The API rejected the create for good. Bad credentials stop the job; bad content ends
    the chunk's requests as errored, since sending them again would fail the same way."""
    status = getattr(error, "status_code", 0)
    message = _api_message(error)
    with rt.store.begin() as conn:
        if status in (401, 403):
            chunk_store.transition(conn, lease, ChunkStatus.SUBMITTING, ChunkStatus.PENDING)
            job_store.fail_job(conn, chunk.job_pk, f"the API refused the key: {message}")
            return []
        error_type = getattr(error, "type", None) or "invalid_request_error"
        if chunk_store.transition(
            conn, lease, ChunkStatus.SUBMITTING, ChunkStatus.FAILED, error=message
        ):
            result_rows.fail_chunk_rows(conn, chunk.id, str(error_type), message)
    return [Action(Step.FINALIZE, chunk.job_pk), *_chain(rt, chunk.job_pk, chained)]


def _api_message(error: anthropic.APIError) -> str:
    body = getattr(error, "body", None)
    if isinstance(body, dict):
        inner = body.get("error")
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
    return f"HTTP {getattr(error, 'status_code', '?')}"


def reconcile_submission(
    client: anthropic.Anthropic, store: Store, chunk: chunk_store.Chunk
) -> MessageBatch | None:
    """Find the batch a lost create made: listed since the intent, same request count, and
    not owned by another chunk. Confirmed later by the custom_ids in its results."""
    since = (chunk.intent_at or now()) - RECONCILE_SKEW_S
    candidates: list[MessageBatch] = []
    for batch in client.with_options(max_retries=4).messages.batches.list(limit=100):
        if batch.created_at.timestamp() < since:
            break  # newest first: everything after this is older still
        if _total(batch) == chunk.request_count:
            candidates.append(batch)
    with store.begin() as conn:
        owned = chunk_store.recorded_batch_ids(conn, (b.id for b in candidates))
    free = [batch for batch in candidates if batch.id not in owned]
    if not free:
        return None
    found = min(free, key=lambda batch: batch.created_at)
    log.warning(
        "chunk %s: adopting batch %s created by a create whose reply was lost", chunk.id, found.id
    )
    return found


def _total(batch: MessageBatch) -> int:
    counts = batch.request_counts
    return counts.processing + counts.succeeded + counts.errored + counts.canceled + counts.expired


# ---------------------------------------------------------------- poll


def poll_batch(rt: Runtime, chunk_id: int) -> list[Action]:
    """Look at the batch once; reschedule with a growing interval, or hand over to fetch."""
    with chunk_store.leased(rt.store, chunk_id, rt.worker_name(), [ChunkStatus.SUBMITTED]) as lease:
        if lease is None:
            return []
        chunk = _reload(rt, chunk_id)
        if chunk.next_poll_at and now() < chunk.next_poll_at - EARLY_POLL_S:
            return []  # a duplicate message; the chain that set next_poll_at goes on
        assert chunk.batch_id is not None
        try:
            batch = rt.client(chunk.job_pk).messages.batches.retrieve(chunk.batch_id)
        except anthropic.APIError as error:
            return _poll_failed(rt, lease, chunk, error)
        return _record_poll(rt, lease, chunk, batch)


def _record_poll(
    rt: Runtime, lease: chunk_store.Lease, chunk: chunk_store.Chunk, batch: MessageBatch
) -> list[Action]:
    counts = result_rows.counts_json(batch)
    with rt.store.begin() as conn:
        if batch.processing_status == "ended":
            chunk_store.transition(
                conn,
                lease,
                ChunkStatus.SUBMITTED,
                ChunkStatus.ENDED,
                processing_status="ended",
                counts_json=counts,
                ended_at=now(),
            )
            return [Action(Step.FETCH, chunk.id)]
        interval = _next_interval(rt.settings_for(chunk.job_pk), chunk)
        chunk_store.update_fenced(
            conn,
            lease,
            processing_status=batch.processing_status,
            counts_json=counts,
            poll_interval=interval,
            next_poll_at=now() + interval,
        )
        return [Action(Step.POLL, chunk.id, interval)]


def _next_interval(settings: Settings, chunk: chunk_store.Chunk) -> float:
    current = chunk.poll_interval or settings.batch.poll_interval
    return min(current * POLL_GROWTH, settings.batch.poll_max_interval)


def _poll_failed(
    rt: Runtime, lease: chunk_store.Lease, chunk: chunk_store.Chunk, error: anthropic.APIError
) -> list[Action]:
    fresh = chunk.submitted_at is not None and now() - chunk.submitted_at < NOT_FOUND_GRACE_S
    kind = classify_http_error(error)
    if kind == HttpFailure.FATAL and not (isinstance(error, anthropic.NotFoundError) and fresh):
        with rt.store.begin() as conn:
            job_store.fail_job(
                conn, chunk.job_pk, f"polling {chunk.batch_id}: {_api_message(error)}"
            )
        return []
    wait = max(retry_after_seconds(error, 1), rt.settings_for(chunk.job_pk).batch.poll_interval)
    with rt.store.begin() as conn:
        chunk_store.update_fenced(conn, lease, next_poll_at=now() + wait)
    return [Action(Step.POLL, chunk.id, wait)]


# ---------------------------------------------------------------- fetch


def fetch_results(rt: Runtime, chunk_id: int) -> list[Action]:
    """Download the results into the store; retryable rows go into new chunks."""
    with chunk_store.leased(rt.store, chunk_id, rt.worker_name(), [ChunkStatus.ENDED]) as lease:
        if lease is None:
            return []
        chunk = _reload(rt, chunk_id)
        try:
            spool = result_rows.download(rt.client(chunk.job_pk), chunk)
        except result_rows.DOWNLOAD_ERRORS as error:
            return _fetch_failed(rt, lease, chunk, error)
        try:
            new_chunks = _apply_results(rt, lease, chunk, spool)
        except _LeaseLost:
            return []
        except result_rows.NOT_WHOLE_ERRORS as error:
            return _fetch_failed(rt, lease, chunk, error)  # nothing was written: fetch again
        finally:
            spool.unlink(missing_ok=True)
    return [Action(Step.SUBMIT, cid) for cid in new_chunks] + [Action(Step.FINALIZE, chunk.job_pk)]


def _apply_results(
    rt: Runtime, lease: chunk_store.Lease, chunk: chunk_store.Chunk, spool: Path
) -> list[int]:
    """One transaction: rows, attempts, the chunk's DONE and its retry chunks, or nothing."""
    settings = rt.settings_for(chunk.job_pk)
    with _APPLYING, rt.store.begin() as conn:
        result_rows.apply(conn, chunk, spool, settings, _prices_or_none(rt, chunk.job_pk))
        if not chunk_store.transition(
            conn, lease, ChunkStatus.ENDED, ChunkStatus.DONE, fetched_at=now()
        ):
            raise _LeaseLost
        return plan_retries(conn, chunk, settings)


def _prices_or_none(rt: Runtime, job_pk: int) -> PriceTable | None:
    """A broken pricing file must not stop results from being stored: cost is left out."""
    try:
        return rt.prices_for(job_pk)
    except SettingsError as error:
        log.warning("cost is not computed: %s", error)
        return None


#: One chunk's results applied at a time per process: parsing them is Python work that
#: threads could only take turns at, and the store writes one transaction at a time
#: anyway; two at once only held two chunks' parsed rows in memory.
_APPLYING = threading.Lock()


class _LeaseLost(Exception):
    """Another worker took the chunk over; this one's writes are rolled back."""


def _fetch_failed(
    rt: Runtime, lease: chunk_store.Lease, chunk: chunk_store.Chunk, error: BaseException
) -> list[Action]:
    """A download that broke off is fetched again (results stay for 29 days); only an
    answer that repeating cannot change (e.g. the batch is gone) stops the job."""
    tries = chunk.fetch_attempts + 1
    log.warning("results of %s broke off (%s); try %d", chunk.batch_id, error, tries)
    fatal = (
        isinstance(error, anthropic.APIError) and classify_http_error(error) == HttpFailure.FATAL
    )
    with rt.store.begin() as conn:
        chunk_store.update_fenced(conn, lease, fetch_attempts=tries)
        if fatal:
            job_store.fail_job(conn, chunk.job_pk, f"results of {chunk.batch_id}: {error}")
    if fatal:
        return []
    cap = rt.settings_for(chunk.job_pk).batch.poll_max_interval
    return [Action(Step.FETCH, chunk.id, min(retry_after_seconds(error, tries - 1), cap))]


def plan_retries(conn: sa.Connection, chunk: chunk_store.Chunk, settings: Settings) -> list[int]:
    """Cut this chunk's retryable rows into new chunks (same transaction as the fetch)."""
    idxs = conn.execute(
        sa.select(requests.c.idx)
        .where(requests.c.chunk_id == chunk.id, requests.c.status == RequestStatus.RETRY)
        .order_by(requests.c.idx)
    ).scalars()
    rows = bodies.body_sizes(conn, chunk.job_pk, [int(idx) for idx in idxs])
    if not rows:
        return []
    limits = effective_limits(
        settings.batch.max_size, settings.batch.chunk_size, settings.api.max_payload_size
    )
    return result_rows.cut_into_chunks(
        conn, chunk.job_pk, chunk.round + 1, rows, ChunkCutter(*limits)
    )


# ---------------------------------------------------------------- finalize


def finalize_job(rt: Runtime, job_pk: int) -> list[Action]:
    """Once every request has a final status, write the output files and finish the job."""
    with rt.store.begin() as conn:
        job = job_store.get_job_by_pk(conn, job_pk)
        if job.status not in ACTIVE_JOB_STATUSES:
            return []
        # chunks first: a handful of rows, and while any is active there is no need to
        # count a million requests
        if job_store.active_chunk_count(conn, job_pk) or job_store.unfinished_count(conn, job_pk):
            return []
    # Every fetch asks for a finalize: the last few may all find the job complete. One
    # writes the files; if it dies, its lock expires and the reconciler asks again.
    with held_lock(rt.store, f"{FINALIZE_LOCK}:{job_pk}", rt.worker_name()) as held:
        if held:
            _finalize(rt, job)
    return []


def _finalize(rt: Runtime, job: job_store.Job) -> None:
    job_pk = job.pk
    with rt.store.begin() as conn:  # again, under the lock: another may have just finished
        if job_store.get_job_by_pk(conn, job_pk).status not in ACTIVE_JOB_STATUSES:
            return
    write_outputs(rt.store, job)
    with rt.store.begin() as conn:
        job_store.set_status(conn, job_pk, JobStatus.FINISHED, only_from=ACTIVE_JOB_STATUSES)
    write_record(rt.store, _job(rt, job_pk))  # again, so the record says "finished"
    log.info("job %s finished", job.id)


def _job(rt: Runtime, job_pk: int) -> job_store.Job:
    with rt.store.begin() as conn:
        return job_store.get_job_by_pk(conn, job_pk)


# ---------------------------------------------------------------- reconcile / cancel


def advance_job(rt: Runtime, job_pk: int, stale_after: float | None = None) -> list[Action]:
    """Rebuild, from the store alone, the work that should be queued for a job.
    With `stale_after`, only chunks nobody has touched for that many seconds: what a lost
    message (a flushed broker, a killed worker) left behind."""
    with rt.store.begin() as conn:
        job = job_store.get_job_by_pk(conn, job_pk)
        if job.status not in ACTIVE_JOB_STATUSES:
            return []
        found = chunk_store.job_chunks(conn, job_pk)
    t = now()
    first_pending = next((c.id for c in found if c.status == ChunkStatus.PENDING), None)
    actions = [
        _due_action(chunk, t)
        for chunk in found
        if (stale_after is None or _is_stale(chunk, t, stale_after))
        # pending chunks follow each other (see _next_submit): the chain starts at the first
        and (chunk.status != ChunkStatus.PENDING or chunk.id == first_pending)
    ]
    return [action for action in actions if action is not None] + [Action(Step.FINALIZE, job_pk)]


def _due_action(chunk: chunk_store.Chunk, t: float) -> Action | None:
    if chunk.status in (ChunkStatus.PENDING, ChunkStatus.SUBMITTING):
        return Action(Step.SUBMIT, chunk.id)
    if chunk.status == ChunkStatus.SUBMITTED:
        return Action(Step.POLL, chunk.id, max(0.0, (chunk.next_poll_at or 0.0) - t))
    if chunk.status == ChunkStatus.ENDED:
        return Action(Step.FETCH, chunk.id)
    return None


def _is_stale(chunk: chunk_store.Chunk, t: float, stale_after: float) -> bool:
    if chunk.lease_expires_at is not None and chunk.lease_expires_at > t:
        return False  # someone holds it and keeps renewing
    if chunk.status == ChunkStatus.SUBMITTED:
        return (chunk.next_poll_at or 0.0) < t - stale_after
    return chunk.updated_at < t - stale_after


def reconcile(rt: Runtime, stale_after: float) -> list[Action]:
    """Re-queue the stale work of every active job in the store."""
    chunk_store.reap_dead_leases(rt.store)
    with rt.store.begin() as conn:
        active = job_store.active_job_pks(conn)
    return [action for job_pk in active for action in advance_job(rt, job_pk, stale_after)]


def cancel_job(rt: Runtime, job_pk: int) -> list[str]:
    """Ask the API to cancel the job's running batches; unsent work is canceled here.
    Returns the batch ids asked to cancel. Canceled rows are fetched like any result."""
    with rt.store.begin() as conn:
        job_store.set_status(
            conn, job_pk, JobStatus.CANCELING, only_from=(JobStatus.RUNNING, JobStatus.FAILED)
        )
        result_rows.cancel_waiting_rows(conn, job_pk)
        running = [
            c for c in chunk_store.job_chunks(conn, job_pk) if c.status == ChunkStatus.SUBMITTED
        ]
    client = rt.client(job_pk)
    canceled: list[str] = []
    for chunk in running:
        assert chunk.batch_id is not None
        try:
            client.messages.batches.cancel(chunk.batch_id)
            canceled.append(chunk.batch_id)
        except anthropic.BadRequestError:
            pass  # it ended meanwhile: its results are fetched as usual
        except anthropic.APIError as error:
            raise ApiError(f"could not cancel {chunk.batch_id}: {_api_message(error)}") from error
    return canceled


def _cancel_unsent(rt: Runtime, lease: chunk_store.Lease, job_pk: int) -> list[Action]:
    with rt.store.begin() as conn:
        if chunk_store.transition(conn, lease, ChunkStatus.PENDING, ChunkStatus.CANCELED):
            result_rows.cancel_chunk_rows(conn, lease.chunk_id)
    return [Action(Step.FINALIZE, job_pk), *_next_submit(rt, job_pk)]
