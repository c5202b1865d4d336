"""Reconcile: rebuild, from the store alone, the work that should be queued. What a lost
message (a flushed broker, a killed worker) left behind is found and queued again."""

from __future__ import annotations

from ..store import ACTIVE_JOB_STATUSES, ChunkStatus
from ..store import chunks as chunk_rows
from ..store import jobs as job_rows
from ..store.db import now
from ..store.locks import reap_dead_leases
from .runtime import Action, Runtime, Step

__all__ = ["advance_job", "reconcile"]


def advance_job(rt: Runtime, job_pk: int, stale_after: float | None = None) -> list[Action]:
    """The work due for a job. With `stale_after`, only chunks nobody has touched for that
    many seconds."""
    with rt.store.begin() as conn:
        job = job_rows.get_job_by_pk(conn, job_pk)
        if job.status not in ACTIVE_JOB_STATUSES:
            return []
        found = chunk_rows.job_chunks(conn, job_pk)
    t = now()
    first_pending = next((c.id for c in found if c.status == ChunkStatus.PENDING), None)
    due = [
        chunk
        for chunk in found
        if (stale_after is None or _is_stale(chunk, t, stale_after))
        # pending chunks are sent as a chain (submit.py): the chain starts at the first
        and (chunk.status != ChunkStatus.PENDING or chunk.id == first_pending)
    ]
    actions = [_due_action(chunk) for chunk in due]
    # one look covers all of the job's batches in flight (poll.py); a chain that is
    # alive holds the job's watch lock, and this message is then dropped
    submitted = [c.next_poll_at or 0.0 for c in due if c.status == ChunkStatus.SUBMITTED]
    if submitted:
        actions.append(Action(Step.WATCH, job_pk, max(0.0, min(submitted) - t)))
    return [action for action in actions if action is not None] + [Action(Step.FINALIZE, job_pk)]


def _due_action(chunk: chunk_rows.Chunk) -> Action | None:
    if chunk.status in (ChunkStatus.PENDING, ChunkStatus.SUBMITTING):
        return Action(Step.SUBMIT, chunk.id)
    if chunk.status == ChunkStatus.ENDED:
        return Action(Step.FETCH, chunk.id)
    return None


def _is_stale(chunk: chunk_rows.Chunk, t: float, stale_after: float) -> bool:
    if chunk.lease_expires_at is not None and chunk.lease_expires_at > t:
        return False  # someone holds it and keeps renewing
    if chunk.status == ChunkStatus.SUBMITTED:
        return (chunk.next_poll_at or 0.0) < t - stale_after
    return chunk.updated_at < t - stale_after


def reconcile(rt: Runtime, stale_after: float) -> list[Action]:
    """Re-queue the stale work of every active job in the store."""
    reap_dead_leases(rt.store)
    with rt.store.begin() as conn:
        active = job_rows.active_job_pks(conn)
    return [action for job_pk in active for action in advance_job(rt, job_pk, stale_after)]
