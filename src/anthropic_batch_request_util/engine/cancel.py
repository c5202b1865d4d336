"""Cancel: ask the API to cancel a job's running batches; what they finished is fetched as
usual, and work never sent is canceled here (submit.py, as its turn comes)."""

from __future__ import annotations

import logging

import anthropic

from ..api import error_message
from ..errors import ApiError
from ..store import ChunkStatus, JobStatus
from ..store import chunks as chunk_rows
from ..store import jobs as job_rows
from ..store import requests as request_rows
from .runtime import Runtime

__all__ = ["cancel_batch", "cancel_job"]

log = logging.getLogger(__name__)


def cancel_job(rt: Runtime, job_pk: int) -> list[str]:
    """Move the job to canceling and ask the API to cancel its running batches; the batch
    ids asked. Rows waiting for a retry are canceled at once: they will not be sent."""
    with rt.store.begin() as conn:
        job_rows.set_status(
            conn,
            job_pk,
            JobStatus.CANCELING,
            only_from=(JobStatus.RUNNING, JobStatus.FAILED, JobStatus.PAUSED),
        )
        request_rows.cancel_waiting_rows(conn, job_pk)
        running = [
            c for c in chunk_rows.job_chunks(conn, job_pk) if c.status == ChunkStatus.SUBMITTED
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
            raise ApiError(f"could not cancel {chunk.batch_id}: {error_message(error)}") from error
    return canceled


def cancel_batch(rt: Runtime, job_pk: int, batch_id: str) -> None:
    """Best effort: a batch that ended meanwhile is fetched as usual by its next poll."""
    try:
        rt.client(job_pk).messages.batches.cancel(batch_id)
    except anthropic.APIError as error:
        log.warning("could not cancel %s: %s", batch_id, error_message(error))
