"""Submit: create a chunk's batch exactly once, as far as the API allows.

`batches.create` takes no idempotency key and a batch carries no metadata, so the store
makes up for it. The protocol, one function per step:

1. **Lease** (`submit_chunk`): the chunk's lease, with a fencing token; a worker whose lease
   was taken over writes nothing.
2. **Intent** (`_create_turn`): one create at a time per store (the submit lock), and for a
   chunk never sent before, the budget check (cost/budget.py: it may hold the chunk back
   or cut it shorter) and the submit intent (PENDING -> SUBMITTING, with its time) written
   in the transaction that takes the lock.
3. **Create** (`_create`): the HTTP call, retried by error type. An answer that may have
   been processed (a dropped connection, a 5xx) is reconciled before anything is sent again.
4. **Record** (`_record`): SUBMITTING -> SUBMITTED with the batch id, and the lock given back,
   in one transaction.
5. **Reconcile** (`reconcile_submission`): a chunk found SUBMITTING (a crash, a lost reply)
   looks for a batch created since its intent with its request count that no other chunk
   owns. Because creates are one at a time, such a batch can only be its own; the custom_ids
   of its results confirm it (fetch.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import anthropic
from anthropic.types.messages import MessageBatch

from ..api import (
    HttpFailure,
    classify_http_error,
    create_batch,
    error_message,
    error_type,
    queue_full,
    refuses_key,
    retry_after_seconds,
)
from ..cost import budget
from ..store import ChunkStatus, JobStatus, bodies, locks
from ..store import chunks as chunk_rows
from ..store import jobs as job_rows
from ..store import requests as request_rows
from ..store.db import now
from .cancel import cancel_batch
from .runtime import Action, Runtime, Step

__all__ = ["next_submit", "recheck_budget", "reconcile_submission", "submit_chunk"]

log = logging.getLogger(__name__)

RECONCILE_SKEW_S = 5.0  #: seconds of clock difference allowed between us and the API
SUBMIT_LOCK_RETRY_S = 0.2  #: seconds before a submit that found the lock taken tries again
SHORT_WAIT_S = 5.0  #: seconds; longer waits are rescheduled instead of slept in a task


def submit_chunk(rt: Runtime, chunk_id: int) -> list[Action]:
    """Step 1: under the chunk's lease, send it (or cancel it, if its job is canceling)."""
    owner = rt.worker_name()
    statuses = [ChunkStatus.PENDING, ChunkStatus.SUBMITTING]
    with chunk_rows.leased(rt.store, chunk_id, owner, statuses) as lease:
        if lease is None:
            return []
        chunk = _reload(rt, chunk_id)
        first = chunk.status == ChunkStatus.PENDING
        if first and job_rows.job_status(rt.store, chunk.job_pk) == JobStatus.CANCELING:
            return _cancel_unsent(rt, lease, chunk.job_pk)
        # read before our turn: the create before ours may still be in flight
        with rt.store.begin() as conn:
            body = bodies.spool_chunk_body(conn, chunk.id, chunk.request_count)
        try:
            with _create_turn(rt, lease, first=first) as turn:
                if turn is None:
                    return [Action(Step.SUBMIT, chunk_id, SUBMIT_LOCK_RETRY_S)]
                if turn.held:
                    return []  # the budget or a canary holds it back: answers ask again
                sent = _reload(rt, chunk_id)
                if sent.request_count != chunk.request_count:  # the budget cut it shorter
                    body.unlink(missing_ok=True)
                    with rt.store.begin() as conn:
                        body = bodies.spool_chunk_body(conn, sent.id, sent.request_count)
                return _send(rt, turn, sent, body, was_sent=not first)
        finally:
            body.unlink(missing_ok=True)


@dataclass
class _Turn:
    """This create's hold on the submit lock."""

    lease: chunk_rows.Lease
    token: int
    released: bool = False
    held: bool = False  #: the budget check held the chunk back; the lock is given back


@contextmanager
def _create_turn(rt: Runtime, lease: chunk_rows.Lease, *, first: bool) -> Iterator[_Turn | None]:
    """Step 2: the submit lock (and the intent of a first send), renewed while the create
    runs; given back on exit unless the batch id was recorded with it. This process's own
    submits line up at `rt.create_gate` instead of polling the store's lock."""
    with rt.create_gate:
        token = chunk_rows.take_create_turn(rt.store, lease, first=first, gate=budget.admit)
        if token is None:
            yield None
            return
        if token == chunk_rows.HELD_BACK:
            yield _Turn(lease, token, released=True, held=True)
            return
        turn = _Turn(lease, token)
        try:
            with locks.heartbeat(lambda: chunk_rows.renew_create_turn(rt.store, token)):
                yield turn
        finally:
            if not turn.released:
                rt.store.give_back(lambda: chunk_rows.end_create_turn(rt.store, token))


def _send(
    rt: Runtime, turn: _Turn, chunk: chunk_rows.Chunk, body: Path, *, was_sent: bool
) -> list[Action]:
    client = rt.client(chunk.job_pk).with_options(max_retries=0)
    if was_sent:  # an earlier try may have created the batch: look before sending again
        try:
            found = reconcile_submission(client, rt, chunk)
        except anthropic.APIError as error:
            return _unknown_outcome(rt, chunk, error)
        if found is not None:
            return _record(rt, turn, chunk, found, _NextSubmit(rt, chunk.job_pk))
    return _create(rt, turn, chunk, client, body, was_sent=was_sent)


def _create(
    rt: Runtime,
    turn: _Turn,
    chunk: chunk_rows.Chunk,
    client: anthropic.Anthropic,
    body: Path,
    *,
    was_sent: bool = False,
) -> list[Action]:
    """Step 3: the create call, retried by error type; not sent while the API's queue has
    no room for it."""
    settings = rt.settings_for(chunk.job_pk)
    if not _queue_has_room(rt, chunk):
        return _wait_for_room(rt, turn, chunk, was_sent=was_sent)
    next_submit_ = _NextSubmit(rt, chunk.job_pk)
    next_submit_.queue_early()
    for attempt in range(settings.api.max_retries + 1):
        try:
            batch = create_batch(client, body)
        except anthropic.APIError as error:
            kind = classify_http_error(error)
            if queue_full(error):
                with rt.store.begin() as conn:
                    rt.queue_ceiling = chunk_rows.in_flight_requests(conn)
                log.info("chunk %s waits for room in the API's queue", chunk.id)
                return _wait_for_room(rt, turn, chunk, was_sent=was_sent)
            if kind == HttpFailure.FATAL:
                return _refused(rt, turn, chunk, error, next_submit_)
            if kind == HttpFailure.AMBIGUOUS:
                try:
                    found = reconcile_submission(client, rt, chunk)
                except anthropic.APIError as list_error:
                    return _unknown_outcome(rt, chunk, list_error)
                if found is not None:
                    return _record(rt, turn, chunk, found, next_submit_)
            wait = retry_after_seconds(error, attempt)
            log.warning("create of chunk %s failed (%s); retrying in %.1fs", chunk.id, kind, wait)
            if wait > SHORT_WAIT_S:
                return [Action(Step.SUBMIT, chunk.id, wait)]
            time.sleep(wait)
        else:
            return _record(rt, turn, chunk, batch, next_submit_)
    # Still SUBMITTING: the next try reconciles before it sends anything.
    return [Action(Step.SUBMIT, chunk.id, settings.batch.poll_max_interval)]


def _queue_has_room(rt: Runtime, chunk: chunk_rows.Chunk) -> bool:
    """Whether the API's queue takes this chunk, as far as the last refusal tells: the
    requests in flight when it came fitted, so as many fit again."""
    ceiling = rt.queue_ceiling
    if ceiling is None:
        return True
    with rt.store.begin() as conn:
        in_flight = chunk_rows.in_flight_requests(conn)
    if in_flight == 0:
        rt.queue_ceiling = None  # nothing of ours is queued: the refusal says no more
        return True
    return in_flight + chunk.request_count <= ceiling


def _wait_for_room(
    rt: Runtime, turn: _Turn, chunk: chunk_rows.Chunk, *, was_sent: bool
) -> list[Action]:
    """Try again once a batch has ended. A chunk never sent goes back to PENDING, since
    no create was made for this intent; one sent before stays SUBMITTING, to reconcile."""
    if not was_sent:
        with rt.store.begin() as conn:
            chunk_rows.transition(
                conn, turn.lease, ChunkStatus.SUBMITTING, ChunkStatus.PENDING, intent_at=None
            )
    wait = rt.settings_for(chunk.job_pk).batch.poll_interval
    return [Action(Step.SUBMIT, chunk.id, wait)]


def _record(
    rt: Runtime,
    turn: _Turn,
    chunk: chunk_rows.Chunk,
    batch: MessageBatch,
    next_submit_: _NextSubmit,
) -> list[Action]:
    """Step 4: the batch id on record and the lock given back, in one write."""
    interval = rt.settings_for(chunk.job_pk).batch.poll_interval
    try:
        won = chunk_rows.record_batch(
            rt.store,
            turn.lease,
            turn.token,
            batch_id=batch.id,
            created_at=batch.created_at.timestamp(),
            processing_status=batch.processing_status,
            poll_interval=interval,
        )
    except chunk_rows.BatchTakenError:
        # Another chunk owns this batch: ours stays SUBMITTING and is reconciled again.
        log.error("chunk %s: batch %s already belongs to another chunk", chunk.id, batch.id)
        return [Action(Step.SUBMIT, chunk.id, interval)]
    turn.released = True
    log.info("chunk %s submitted as %s (%d requests)", chunk.id, batch.id, chunk.request_count)
    if not won:
        return []
    if job_rows.job_status(rt.store, chunk.job_pk) == JobStatus.CANCELING:
        cancel_batch(rt, chunk.job_pk, batch.id)  # created while the job was being canceled
    return [Action(Step.WATCH, chunk.job_pk, interval), *next_submit_.actions()]


def _unknown_outcome(rt: Runtime, chunk: chunk_rows.Chunk, error: BaseException) -> list[Action]:
    """We could not learn whether the create went through: stay SUBMITTING (so the next
    try reconciles before sending) and come back later."""
    wait = max(retry_after_seconds(error, 2), rt.settings_for(chunk.job_pk).batch.poll_interval)
    log.warning(
        "chunk %s: cannot check for a lost create (%s); again in %.1fs", chunk.id, error, wait
    )
    return [Action(Step.SUBMIT, chunk.id, wait)]


def _refused(
    rt: Runtime,
    turn: _Turn,
    chunk: chunk_rows.Chunk,
    error: anthropic.APIError,
    next_submit_: _NextSubmit,
) -> list[Action]:
    """The API rejected the create for good. Bad credentials stop the job; bad content ends
    the chunk's requests as errored, since sending them again would fail the same way."""
    message = error_message(error)
    lease = turn.lease
    with rt.store.begin() as conn:
        if refuses_key(error):
            chunk_rows.transition(conn, lease, ChunkStatus.SUBMITTING, ChunkStatus.PENDING)
            job_rows.fail_job(conn, chunk.job_pk, f"the API refused the key: {message}")
            return []
        if chunk_rows.transition(
            conn, lease, ChunkStatus.SUBMITTING, ChunkStatus.FAILED, error=message
        ):
            request_rows.fail_chunk_rows(conn, chunk.id, error_type(error), message)
    return [Action(Step.FINALIZE, chunk.job_pk), *next_submit_.actions()]


def reconcile_submission(
    client: anthropic.Anthropic, rt: Runtime, chunk: chunk_rows.Chunk
) -> MessageBatch | None:
    """Step 5: find the batch a lost create made: listed since the intent, same request
    count, and not owned by another chunk."""
    since = (chunk.intent_at or now()) - RECONCILE_SKEW_S
    candidates: list[MessageBatch] = []
    for batch in client.with_options(max_retries=4).messages.batches.list(limit=100):
        if batch.created_at.timestamp() < since:
            break  # newest first: everything after this is older still
        if _total(batch) == chunk.request_count:
            candidates.append(batch)
    with rt.store.begin() as conn:
        owned = chunk_rows.recorded_batch_ids(conn, (b.id for b in candidates))
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


class _NextSubmit:
    """Creates run one at a time, so a job's pending chunks are sent as a chain: each
    submit queues the next once. Where the worker allows (the local deployment), at once
    as this create starts, so that the next reads its body and waits at the gate meanwhile
    and creates follow each other without a gap; elsewhere with this create's outcome."""

    def __init__(self, rt: Runtime, job_pk: int) -> None:
        self.rt, self.job_pk, self.queued = rt, job_pk, False

    def queue_early(self) -> None:
        if self.rt.send is not None:
            self.rt.send(next_submit(self.rt, self.job_pk))
            self.queued = True

    def actions(self) -> list[Action]:
        return [] if self.queued else next_submit(self.rt, self.job_pk)


def next_submit(rt: Runtime, job_pk: int) -> list[Action]:
    """The submit of the job's first pending chunk, if any."""
    with rt.store.begin() as conn:
        found = chunk_rows.next_pending(conn, job_pk)
    return [] if found is None else [Action(Step.SUBMIT, found)]


def recheck_budget(rt: Runtime, job_pk: int) -> list[Action]:
    """Answers replaced worst cases by actual cost (or ended a canary): for a job with a
    budget or a hold, its first pending chunk is checked again."""
    with rt.store.begin() as conn:
        job = job_rows.get_job_by_pk(conn, job_pk)
    if job.max_cost_usd is None and job.hold_from_idx is None:
        return []
    return next_submit(rt, job_pk)


def _cancel_unsent(rt: Runtime, lease: chunk_rows.Lease, job_pk: int) -> list[Action]:
    with rt.store.begin() as conn:
        if chunk_rows.transition(conn, lease, ChunkStatus.PENDING, ChunkStatus.CANCELED):
            request_rows.cancel_chunk_rows(conn, lease.chunk_id)
    return [Action(Step.FINALIZE, job_pk), *next_submit(rt, job_pk)]


def _reload(rt: Runtime, chunk_id: int) -> chunk_rows.Chunk:
    with rt.store.begin() as conn:
        chunk = chunk_rows.get_chunk(conn, chunk_id)
    assert chunk is not None
    return chunk
