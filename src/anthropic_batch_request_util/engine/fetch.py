"""Fetch: download an ended batch's results once, store every answer, and cut what is to
be retried into new chunks, all in one transaction (or nothing, to fetch again)."""

from __future__ import annotations

import logging
import tempfile
import threading
from pathlib import Path

import anthropic

from ..api import (
    DOWNLOAD_ERRORS,
    HttpFailure,
    classify_http_error,
    download_results,
    retry_after_seconds,
)
from ..cost.pricing import PriceTable
from ..errors import SettingsError
from ..store import ACTIVE_JOB_STATUSES, ChunkStatus, result_lines
from ..store import chunks as chunk_rows
from ..store import jobs as job_rows
from ..store import requests as request_rows
from ..store.db import now
from .answers import NOT_WHOLE_ERRORS, ReadResults
from .helper import helper
from .retry import plan_retries
from .runtime import Action, Runtime, Step
from .submit import recheck_budget

__all__ = ["fetch_results"]

log = logging.getLogger(__name__)

#: One chunk's answers written at a time per process: the store writes one transaction at
#: a time anyway. Reading the next chunk's results (in the helper process) goes on meanwhile.
_WRITING = threading.Lock()


class _LeaseLost(Exception):
    """Another worker took the chunk over; this one's writes are rolled back."""


def fetch_results(rt: Runtime, chunk_id: int) -> list[Action]:
    """Download the results into the store; retryable rows go into new chunks."""
    with chunk_rows.leased(rt.store, chunk_id, rt.worker_name(), [ChunkStatus.ENDED]) as lease:
        if lease is None:
            return []
        with rt.store.begin() as conn:
            chunk = chunk_rows.get_chunk(conn, chunk_id)
        assert chunk is not None and chunk.batch_id is not None
        try:
            spool = download_results(rt.client(chunk.job_pk), chunk.batch_id)
        except DOWNLOAD_ERRORS as error:
            return _fetch_failed(rt, lease, chunk, error)
        try:
            new_chunks = _store_results(rt, lease, chunk, spool)
        except _LeaseLost:
            return []
        except NOT_WHOLE_ERRORS as error:
            return _fetch_failed(rt, lease, chunk, error)  # nothing was written: fetch again
        finally:
            spool.unlink(missing_ok=True)
    return [
        *(Action(Step.SUBMIT, cid) for cid in new_chunks),
        Action(Step.FINALIZE, chunk.job_pk),
        *recheck_budget(rt, chunk.job_pk),
    ]


def _store_results(
    rt: Runtime, lease: chunk_rows.Lease, chunk: chunk_rows.Chunk, spool: Path
) -> list[int]:
    """One transaction: rows, attempts, the chunk's DONE and its retry chunks, or nothing.
    Every line is read, in the helper process (helper.py), before the first write:
    SQLite's one write lock, taken at the first write, is then held while rows are
    written, not while they are parsed. Answers are read and written a slice at a time, so
    memory does not grow with the batch."""
    settings = rt.settings_for(chunk.job_pk)
    with rt.store.begin() as conn:
        members = request_rows.members(conn, chunk.id)
    first_round = chunk.round == 1
    with tempfile.TemporaryDirectory(prefix="abr-answers-") as work:
        read: ReadResults = helper.call(
            "read_answers",
            spool,
            members,
            chunk.request_count,
            chunk.batch_id,
            settings,
            _prices(rt, chunk),
            Path(work),
            (chunk.job_pk, chunk.id) if first_round else None,
        )
        del members
        with _WRITING, rt.store.begin() as conn:
            if job_rows.get_job_by_pk(conn, chunk.job_pk).status not in ACTIVE_JOB_STATUSES:
                raise _LeaseLost  # a failed job stays as it stopped; a resume fetches again
            for part in read.slices():  # a retry's lines replace earlier ones row by row
                request_rows.record_answer_rows(
                    conn, chunk.job_pk, chunk.id, part, own_lines=not first_round
                )
            result_lines.insert_segments(conn, read.segment_rows())
            request_rows.retry_missing(conn, chunk.job_pk, read.missing)
            if not chunk_rows.transition(
                conn, lease, ChunkStatus.ENDED, ChunkStatus.DONE, fetched_at=now()
            ):
                raise _LeaseLost
            return plan_retries(conn, chunk, settings)


def _prices(rt: Runtime, chunk: chunk_rows.Chunk) -> PriceTable | None:
    """A broken pricing file must not stop results from being stored: cost is left out."""
    try:
        return rt.prices_for(chunk.job_pk)
    except SettingsError as error:
        log.warning("cost is not computed: %s", error)
        return None


def _fetch_failed(
    rt: Runtime, lease: chunk_rows.Lease, chunk: chunk_rows.Chunk, error: BaseException
) -> list[Action]:
    """A download that broke off is fetched again (results stay for 29 days); only an
    answer that repeating cannot change (e.g. the batch is gone) stops the job."""
    tries = chunk.fetch_attempts + 1
    log.warning("results of %s broke off (%s); try %d", chunk.batch_id, error, tries)
    fatal = (
        isinstance(error, anthropic.APIError) and classify_http_error(error) == HttpFailure.FATAL
    )
    with rt.store.begin() as conn:
        chunk_rows.update_fenced(conn, lease, fetch_attempts=tries)
        if fatal:
            job_rows.fail_job(conn, chunk.job_pk, f"results of {chunk.batch_id}: {error}")
    if fatal:
        return []
    cap = rt.settings_for(chunk.job_pk).batch.poll_max_interval
    return [Action(Step.FETCH, chunk.id, min(retry_after_seconds(error, tries - 1), cap))]
