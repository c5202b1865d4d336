"""The Celery app and its tasks: thin wrappers that run one engine step and queue the next.

Messages carry ids only. The same tasks run in both deployments: on an in-process worker
over the `memory://` broker (the default), and on `abr worker` processes fed by Redis.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import anthropic
from celery import Celery
from celery.utils.timer2 import Timer

from ..api import make_client
from ..config import Settings, database_url, load_settings, require_api_key, uses_local_broker
from ..errors import LocalFaultError, StoreError, StoreUnavailableError
from ..output import local_fault
from ..store import ACTIVE_JOB_STATUSES, Connection, Store
from ..store import chunks as chunk_rows
from ..store import jobs as job_rows
from .fetch import fetch_results
from .finalize import finalize_job
from .helper import helper
from .poll import watch_batches
from .runtime import Action, Runtime, Step
from .submit import submit_chunk

__all__ = ["app", "configure", "embedded_worker", "enqueue", "job_moves_on", "stranded"]

log = logging.getLogger(__name__)

#: seconds Redis waits before handing an unacknowledged task to another worker; longer than
#: any task and any countdown we schedule, so a slow task is not run twice for nothing
VISIBILITY_TIMEOUT_S = 3600
MEMORY_POLL_S = 0.01  #: seconds between looks at the in-process queue
STEP_RETRY_S = 2.0  #: seconds before a step that raised unexpectedly runs again
STORE_RETRY_MAX_S = 30.0  #: seconds at most between tries of a step while the store is down
#: tries of a step that meets a local fault waiting cannot cure (a full disk, a read-only
#: folder) before the job is stopped for the user: STEP_RETRY_S apart, so seconds in all
LOCAL_FAULT_TRIES = 3
WORKER_JOIN_S = 0.1  #: seconds to wait for the stopped worker's consumer thread

app = Celery("abr", set_as_current=False)
app.conf.update(
    broker_url="memory://",
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    task_acks_late=True,  # steps are idempotent: a crash mid-step means run it again
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    broker_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT_S},
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    worker_redirect_stdouts=False,
)

_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


def configure(settings: Settings, runtime: Runtime | None = None) -> None:
    """Point the app at the configured broker, and (optionally) give it a ready runtime."""
    global _runtime
    app.conf.broker_url = settings.celery.broker_url
    options: dict[str, float] = {"visibility_timeout": VISIBILITY_TIMEOUT_S}
    if uses_local_broker(settings):
        # the in-process queue is polled; its default (1 s) would add a second per step
        options["polling_interval"] = MEMORY_POLL_S
    app.conf.broker_transport_options = options
    if runtime is not None:
        _runtime = runtime
        helper.start()  # its imports overlap the first batches' wait, not their results


def client_factory(api_key: str) -> Callable[[Settings], anthropic.Anthropic]:
    """One SDK client per distinct settings, shared by the worker's threads."""
    cache: dict[int, anthropic.Anthropic] = {}
    lock = threading.Lock()

    def factory(settings: Settings) -> anthropic.Anthropic:
        with lock:
            key = id(settings)
            if key not in cache:
                cache[key] = make_client(settings, api_key)
            return cache[key]

    return factory


def runtime() -> Runtime:
    """The process's runtime; a worker process builds it from its own settings."""
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            settings = load_settings()
            _runtime = Runtime(Store(database_url(settings)), client_factory(require_api_key()))
        return _runtime


def enqueue(actions: Iterable[Action]) -> None:
    for action in actions:
        task = TASKS[action.step]
        task.apply_async((action.target,), countdown=action.delay if action.delay > 0 else None)


def _make_task(step: Step, function: Callable[[Runtime, int], list[Action]]) -> Any:
    """A Celery task that runs one engine step and queues what it says comes next.
    A step that fails unexpectedly is tried again later; its lease was given back. A store
    that cannot be reached is waited for, backing off; nothing is marked (the step, found
    where the store says it stands, is simply run again). A local fault that waiting
    cannot cure stops the job after LOCAL_FAULT_TRIES tries instead."""

    @app.task(name=f"abr.{step.value}", bind=True, max_retries=None)
    def task(self: Any, target: int) -> None:
        try:
            if not job_moves_on(runtime(), step, target):
                return  # a failed (or finished) job stays as it is until the user acts
            actions = _run_step(step, function, target)
        except StoreUnavailableError as error:
            wait = _store_backoff(self.request.retries)
            log.warning("%s(%s): %s; trying again in %ss", step.value, target, error.reason, wait)
            raise self.retry(exc=error, countdown=wait) from error
        except Exception as error:
            log.exception("%s(%s) failed; trying again in %ss", step.value, target, STEP_RETRY_S)
            raise self.retry(exc=error, countdown=STEP_RETRY_S) from error
        enqueue(actions)

    return task


def _store_backoff(retries: int) -> float:
    """Seconds before the next try of a step the store was unreachable for: doubling from
    STEP_RETRY_S, at most STORE_RETRY_MAX_S, so a store that comes back is used soon."""
    return float(min(STORE_RETRY_MAX_S, STEP_RETRY_S * 2 ** min(retries, 8)))


def _run_step(
    step: Step, function: Callable[[Runtime, int], list[Action]], target: int
) -> list[Action]:
    """Run the step; on a lasting local fault, try again here a few times (the disk may
    have been freed meanwhile), then stop the job and ask for nothing more."""
    for tries in range(1, LOCAL_FAULT_TRIES + 1):
        try:
            return function(runtime(), target)
        except Exception as error:
            fault = _lasting_fault(error)
            if fault is None:
                raise
            if tries == LOCAL_FAULT_TRIES:
                _stop_job(runtime(), step, target, fault)
                return []
            log.warning("%s(%s): %s; trying again in %ss", step.value, target, fault, STEP_RETRY_S)
            time.sleep(STEP_RETRY_S)
    return []


def _lasting_fault(error: BaseException) -> LocalFaultError | None:
    if isinstance(error, LocalFaultError):
        return error
    return local_fault(error)


#: jobs stopped by a local fault whose stop the store could not take (it is the full
#: disk): job pk -> the message; the local runner watches this too
_stranded: dict[int, str] = {}


def stranded(job_pk: int) -> str | None:
    """Why this process stopped the job, when the store could not be told (said once)."""
    return _stranded.pop(job_pk, None)


def _stop_job(rt: Runtime, step: Step, target: int, fault: LocalFaultError) -> None:
    """Stop the job with one line for the user: what failed where, and what to run."""
    try:
        with rt.store.begin() as conn:
            job_pk = target if step in _JOB_STEPS else _job_of_chunk(conn, target)
            job_id = job_rows.get_job_by_pk(conn, job_pk).id
    except StoreError:
        log.exception("%s(%s): %s; the store cannot be read either", step.value, target, fault)
        return
    message = (
        f"{fault.cause}: free space there (or make it writable), then `abr resume {job_id}`; "
        f"or finish elsewhere with `abr resume {job_id} --output DIR` "
        f"or `abr results {job_id} --out FILE`"
    )
    log.error("%s(%s) stopped job %s: %s", step.value, target, job_id, fault.cause)
    try:
        with rt.store.begin() as conn:
            job_rows.fail_job(conn, job_pk, message)
    except StoreError:
        _stranded[job_pk] = message


def _job_of_chunk(conn: Connection, chunk_id: int) -> int:
    chunk = chunk_rows.get_chunk(conn, chunk_id)
    if chunk is None:
        raise StoreError(f"no chunk {chunk_id} in the job store")
    return chunk.job_pk


#: the steps whose target is a job pk; the others act on a chunk id
_JOB_STEPS = (Step.WATCH, Step.FINALIZE)


def job_moves_on(rt: Runtime, step: Step, target: int) -> bool:
    """Whether the job a step acts on is active: steps queued before a job failed (or
    finished) do nothing, so that a failed job is final until `abr resume`."""
    with rt.store.begin() as conn:
        if step in _JOB_STEPS:
            job_pk = target
        else:
            chunk = chunk_rows.get_chunk(conn, target)
            if chunk is None:
                return False
            job_pk = chunk.job_pk
        return job_rows.get_job_by_pk(conn, job_pk).status in ACTIVE_JOB_STATUSES


TASKS: dict[Step, Any] = {
    Step.SUBMIT: _make_task(Step.SUBMIT, submit_chunk),
    Step.WATCH: _make_task(Step.WATCH, watch_batches),
    Step.FETCH: _make_task(Step.FETCH, fetch_results),
    Step.FINALIZE: _make_task(Step.FINALIZE, finalize_job),
}


class _PromptTimer(Timer):  # type: ignore[misc]
    """Celery's timer thread, when idle, looks at its stop flag once a second: stopping it
    also wakes it, so that a finished local run exits at once instead of up to 1 s later."""

    def stop(self) -> None:
        # Celery has no public way to wake an idle timer, and waking it before its stop
        # flag is set would let it sleep again: so the flag Timer.stop sets is set here
        # first. tests/unit/test_timer.py fails if Celery renames it.
        self._Timer__is_shutdown.set()
        with self.not_empty:
            self.not_empty.notify_all()
        super().stop()


@contextmanager
def embedded_worker(concurrency: int) -> Iterator[None]:
    """A Celery worker on the threads pool inside this process (the local deployment)."""
    worker = app.WorkController(
        pool="threads",
        concurrency=concurrency,
        loglevel="WARNING",
        hostname=f"abr-local-{threading.get_ident()}@localhost",
        without_heartbeat=True,
        without_mingle=True,
        without_gossip=True,
        ready_callback=None,
        timer_cls=_PromptTimer,
    )
    thread = threading.Thread(target=worker.start, name="abr-worker", daemon=True)
    thread.start()
    try:
        yield
    finally:
        # stop() returns once the pool has finished the running steps; the consumer
        # thread notices only at its next 2-second drain timeout, and as a daemon
        # thread it need not be waited for
        worker.stop(in_sighandler=False)
        thread.join(WORKER_JOIN_S)
