"""Poll: look at a submitted batch; reschedule with a growing interval, or hand over to
fetch once it has ended."""

from __future__ import annotations

import anthropic
import orjson
from anthropic.types.messages import MessageBatch

from ..api import HttpFailure, classify_http_error, error_message, is_not_found, retry_after_seconds
from ..config import Settings
from ..store import ChunkStatus
from ..store import chunks as chunk_rows
from ..store import jobs as job_rows
from ..store.db import now
from .runtime import Action, Runtime, Step

__all__ = ["poll_batch"]

NOT_FOUND_GRACE_S = 60.0  #: seconds after create during which a 404 is taken as transient
POLL_GROWTH = 1.5  #: each unfinished poll waits this much longer, up to poll_max_interval
EARLY_POLL_S = 0.25  #: seconds of slack before next_poll_at within which a poll may run


def poll_batch(rt: Runtime, chunk_id: int) -> list[Action]:
    """Look at the batch once; reschedule with a growing interval, or hand over to fetch."""
    with chunk_rows.leased(rt.store, chunk_id, rt.worker_name(), [ChunkStatus.SUBMITTED]) as lease:
        if lease is None:
            return []
        with rt.store.begin() as conn:
            chunk = chunk_rows.get_chunk(conn, chunk_id)
        assert chunk is not None and chunk.batch_id is not None
        if chunk.next_poll_at and now() < chunk.next_poll_at - EARLY_POLL_S:
            return []  # a duplicate message; the chain that set next_poll_at goes on
        try:
            batch = rt.client(chunk.job_pk).messages.batches.retrieve(chunk.batch_id)
        except anthropic.APIError as error:
            return _poll_failed(rt, lease, chunk, error)
        return _record_poll(rt, lease, chunk, batch)


def _record_poll(
    rt: Runtime, lease: chunk_rows.Lease, chunk: chunk_rows.Chunk, batch: MessageBatch
) -> list[Action]:
    counts = orjson.dumps(batch.request_counts.model_dump())
    with rt.store.begin() as conn:
        if batch.processing_status == "ended":
            chunk_rows.transition(
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
        chunk_rows.update_fenced(
            conn,
            lease,
            processing_status=batch.processing_status,
            counts_json=counts,
            poll_interval=interval,
            next_poll_at=now() + interval,
        )
        return [Action(Step.POLL, chunk.id, interval)]


def _next_interval(settings: Settings, chunk: chunk_rows.Chunk) -> float:
    current = chunk.poll_interval or settings.batch.poll_interval
    return min(current * POLL_GROWTH, settings.batch.poll_max_interval)


def _poll_failed(
    rt: Runtime, lease: chunk_rows.Lease, chunk: chunk_rows.Chunk, error: anthropic.APIError
) -> list[Action]:
    fresh = chunk.submitted_at is not None and now() - chunk.submitted_at < NOT_FOUND_GRACE_S
    if classify_http_error(error) == HttpFailure.FATAL and not (is_not_found(error) and fresh):
        with rt.store.begin() as conn:
            job_rows.fail_job(
                conn, chunk.job_pk, f"polling {chunk.batch_id}: {error_message(error)}"
            )
        return []
    wait = max(retry_after_seconds(error, 1), rt.settings_for(chunk.job_pk).batch.poll_interval)
    with rt.store.begin() as conn:
        chunk_rows.update_fenced(conn, lease, next_poll_at=now() + wait)
    return [Action(Step.POLL, chunk.id, wait)]
