"""Finalize: once every request of a job has a final status, write the results file and the
batch record, and mark the job finished."""

from __future__ import annotations

import logging

from .. import output
from ..store import ACTIVE_JOB_STATUSES, JobStatus
from ..store import jobs as job_rows
from ..store.locks import held_lock
from .runtime import Action, Runtime

__all__ = ["finalize_job"]

log = logging.getLogger(__name__)

FINALIZE_LOCK = "finalize"  #: held (per job) while a job's output files are written


def finalize_job(rt: Runtime, job_pk: int) -> list[Action]:
    """Write the output files of a job whose requests have all ended, once."""
    if not _complete(rt, job_pk):
        return []
    # Every fetch asks for a finalize: the last few may all find the job complete. One
    # writes the files; if it dies, its lock expires and the reconciler asks again.
    with held_lock(rt.store, f"{FINALIZE_LOCK}:{job_pk}", rt.worker_name()) as held:
        if held and _complete(rt, job_pk):  # again, under the lock: another may have finished
            _finalize(rt, job_pk)
    return []


def _complete(rt: Runtime, job_pk: int) -> bool:
    with rt.store.begin() as conn:
        if job_rows.get_job_by_pk(conn, job_pk).status not in ACTIVE_JOB_STATUSES:
            return False
        # chunks first: a handful of rows, and while any is active there is no need to
        # count a million requests
        busy = job_rows.active_chunk_count(conn, job_pk) or job_rows.unfinished_count(conn, job_pk)
    return not busy


def _finalize(rt: Runtime, job_pk: int) -> None:
    record = output.write_outputs(rt.store, _job(rt, job_pk))
    with rt.store.begin() as conn:
        job_rows.set_status(conn, job_pk, JobStatus.FINISHED, only_from=ACTIVE_JOB_STATUSES)
    job = _job(rt, job_pk)
    output.write_record(rt.store, job, record)  # again, so the record says "finished"
    log.info("job %s finished", job.id)


def _job(rt: Runtime, job_pk: int) -> job_rows.Job:
    with rt.store.begin() as conn:
        return job_rows.get_job_by_pk(conn, job_pk)
