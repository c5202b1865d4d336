"""Drive a job from the command line: ingest, hand the work to the workers, watch the store.

Locally (broker `memory://`) the workers are threads of this process and stop with it; the
store keeps everything, so a later `abr resume` (or the same `abr run`) carries on. With a
Redis broker the work goes to `abr worker` processes and this process only watches.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from . import chunks as chunk_store
from . import jobs as job_store
from .config import Settings, database_url, load_api_key, logs_dir
from .errors import ApiError, MissingApiKeyError, UsageError
from .ingest import Ingested, ingest
from .logs import setup_logging
from .output import records_path, results_path, write_outputs, write_record
from .store import ChunkStatus, JobStatus, Store

if TYPE_CHECKING:
    from .budget import Budget
    from .engine import Runtime

# engine and tasks pull in the SDK and Celery (seconds of imports): they are imported only
# once there is work to drive, so a bad input or a --help answers at once.

__all__ = ["Outcome", "Snapshot", "cancel_job", "open_store", "resume_job", "run_job", "snapshot"]

WATCH_INTERVAL_S = 0.25  #: seconds between two looks at the store while waiting, at least
END_CHECK_S = 0.1  #: seconds between two checks of whether the job has ended (one row)
WATCH_COST_FACTOR = 20  #: wait this many times as long as the last look took
RECONCILE_INTERVAL_S = 30.0  #: seconds between re-queuing work the store says is due


_ENDED = (JobStatus.FINISHED, JobStatus.FAILED)


@dataclass
class Snapshot:
    """The state of a job as the store has it at one moment."""

    job: job_store.Job
    counts: job_store.JobCounts
    usage: job_store.Usage
    chunks: list[chunk_store.Chunk] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    retrying: int = 0
    cost_usd: float | None = None
    taken_at: float = field(default_factory=time.time)

    @property
    def running_batches(self) -> list[str]:
        return [c.batch_id for c in self.chunks if c.status == ChunkStatus.SUBMITTED and c.batch_id]


@dataclass
class Outcome:
    """How a run ended."""

    snapshot: Snapshot
    created: bool = False
    interrupted: bool = False
    budget_note: str | None = None  #: set when --max-cost stopped the job

    @property
    def results_path(self) -> Path:
        return results_path(self.snapshot.job)

    @property
    def records_path(self) -> Path:
        return records_path(self.snapshot.job)


ProgressCallback = Callable[[Snapshot], None]


def open_store(settings: Settings, *, create: bool = True) -> Store:
    """The job store; with `create=False` (read-only commands) a missing SQLite file is
    reported instead of made."""
    url = database_url(settings)
    if (
        not create
        and url.startswith("sqlite:///")
        and not Path(url.removeprefix("sqlite:///")).exists()
    ):
        raise UsageError(
            f"no job store at {url.removeprefix('sqlite:///')}: no jobs yet (abr run FILE)"
        )
    return Store(url)


def snapshot(store: Store, job_pk: int) -> Snapshot:
    with store.begin() as conn:
        tally = job_store.job_tally(conn, job_pk)
        return Snapshot(
            job=job_store.get_job_by_pk(conn, job_pk),
            counts=tally.counts,
            usage=tally.usage,
            chunks=chunk_store.job_chunks(conn, job_pk),
            errors=job_store.error_counts(conn, job_pk),
            retrying=tally.retrying,
            cost_usd=tally.cost_usd,
        )


def _import_in_background() -> None:
    """Import the SDK and Celery (about a second) while the input is read: the reading
    waits on the disk and SQLite much of the time. A bad input still answers at once."""

    def load() -> None:
        from . import engine, tasks  # noqa: F401

    threading.Thread(target=load, name="abr-import", daemon=True).start()


def _api_key() -> str:
    key = load_api_key()
    if key is None:
        raise MissingApiKeyError()
    return key


def run_job(
    settings: Settings,
    path: Path,
    *,
    wait: bool = True,
    on_progress: ProgressCallback | None = None,
    on_ingested: Callable[[Ingested], None] | None = None,
    max_cost: float | None = None,
) -> Outcome:
    """`abr run`: validate and store the input (or find its job), then drive it."""
    from .budget import check_before_launch

    api_key = _api_key()  # before reading the input: nothing starts without a key
    budget = None if max_cost is None else check_before_launch(path, settings, max_cost)
    _import_in_background()
    with open_store(settings) as store:
        found = ingest(store, path, settings, Path(settings.storage.base_dir))
        if on_ingested is not None:
            on_ingested(found)
        outcome = _drive(store, settings, api_key, found.job_pk, wait, on_progress, budget)
        outcome.created = found.created
        return outcome


def resume_job(
    settings: Settings,
    job_id: str,
    *,
    wait: bool = True,
    on_progress: ProgressCallback | None = None,
) -> Outcome:
    """`abr resume`: pick a job up where the store says it stands."""
    api_key = _api_key()
    with open_store(settings, create=False) as store:
        with store.begin() as conn:
            job = job_store.get_job(conn, job_id)
        return _drive(store, settings, api_key, job.pk, wait, on_progress)


def cancel_job(
    settings: Settings,
    job_id: str,
    *,
    wait: bool = True,
    on_progress: ProgressCallback | None = None,
) -> tuple[list[str], Outcome]:
    """`abr cancel`: cancel the running batches, then collect what they finished."""
    from . import engine, tasks

    api_key = _api_key()
    with open_store(settings, create=False) as store:
        with store.begin() as conn:
            job = job_store.get_job(conn, job_id)
        rt = engine.Runtime(store, tasks.client_factory(api_key))
        canceled = engine.cancel_job(rt, job.pk)
        return canceled, _drive(store, settings, api_key, job.pk, wait, on_progress)


def _drive(
    store: Store,
    settings: Settings,
    api_key: str,
    job_pk: int,
    wait: bool,
    on_progress: ProgressCallback | None,
    budget: Budget | None = None,
) -> Outcome:
    with store.begin() as conn:  # running it again is how a user retries a stopped job
        job_store.set_status(conn, job_pk, JobStatus.RUNNING, only_from=(JobStatus.FAILED,))
    if snapshot(store, job_pk).job.status == JobStatus.FINISHED:
        return Outcome(snapshot(store, job_pk))  # nothing to drive: answer at once

    from . import engine, tasks

    # The SDK, Celery and pydantic leave ~200,000 long-lived objects: frozen, they are no
    # longer scanned by every full collection during the run and again at exit (~0.5 s).
    gc.freeze()
    setup_logging(logs_dir(settings))
    rt = engine.Runtime(store, tasks.client_factory(api_key), send=tasks.enqueue)
    tasks.configure(settings, rt)
    chunk_store.reap_dead_leases(store)
    local = settings.celery.broker_url.startswith("memory://")
    worker = tasks.embedded_worker(settings.celery.worker_concurrency) if local else nullcontext()
    last: Snapshot | None = None
    with worker, _interruptible() as interrupted:
        tasks.enqueue(engine.advance_job(rt, job_pk))
        last = _watch(store, rt, job_pk, wait, local, on_progress, budget)
    done = last is not None
    # a job that has ended stays as it is: its last look is the answer
    result = last if last is not None and last.job.status in _ENDED else snapshot(store, job_pk)
    if result.job.status == JobStatus.FINISHED and not local and not _written_here(result.job):
        write_outputs(store, result.job)  # the worker that finished it was on another machine
    elif interrupted.raised or not done:
        write_record(store, result.job)
    if result.job.status == JobStatus.FAILED:
        raise ApiError(f"job {result.job.id} stopped: {result.job.error}")
    note = budget.note if budget is not None else None
    return Outcome(result, interrupted=interrupted.raised, budget_note=note)


def _written_here(job: job_store.Job) -> bool:
    """Whether the finishing worker wrote the output files where this process sees them: its
    record, written last, says finished."""
    try:
        record = orjson.loads(records_path(job).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return False
    finished: bool = record.get("status") == JobStatus.FINISHED.value
    return finished and results_path(job).exists()


@dataclass
class _Flag:
    raised: bool = False


@contextmanager
def _interruptible() -> Iterator[_Flag]:
    """Ctrl-C stops the waiting, not the job: the state stays in the store."""
    flag = _Flag()
    try:
        yield flag
    except KeyboardInterrupt:
        flag.raised = True


def _watch(
    store: Store,
    rt: Runtime,
    job_pk: int,
    wait: bool,
    local: bool,
    on_progress: ProgressCallback | None,
    budget: Budget | None,
) -> Snapshot | None:
    """Follow the job until it ends (or, with --no-wait, until every chunk is submitted);
    the last look at it, or None when it was left running."""
    from . import engine, tasks

    last_reconcile = time.monotonic()
    while True:
        started = time.monotonic()
        current = snapshot(store, job_pk)
        looked = time.monotonic() - started
        if on_progress is not None:
            on_progress(current)
        if budget is not None and budget.over(current):
            engine.cancel_job(rt, job_pk)
        if current.job.status in _ENDED:
            return current
        if not wait and (not local or _all_sent(current)):
            return None
        if time.monotonic() - last_reconcile > RECONCILE_INTERVAL_S:
            tasks.enqueue(engine.advance_job(rt, job_pk))
            last_reconcile = time.monotonic()
        # a snapshot of a large job is several full counts: take them less often, so that
        # watching never takes more than a small share of the time the workers need, but
        # notice at once when the job ends
        _wait_unless_ended(store, job_pk, max(WATCH_INTERVAL_S, looked * WATCH_COST_FACTOR))


def _wait_unless_ended(store: Store, job_pk: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        time.sleep(max(0.0, min(END_CHECK_S, deadline - time.monotonic())))
        if time.monotonic() >= deadline:
            return
        with store.begin() as conn:
            if job_store.get_job_by_pk(conn, job_pk).status in _ENDED:
                return


def _all_sent(current: Snapshot) -> bool:
    unsent = (ChunkStatus.PENDING, ChunkStatus.SUBMITTING)
    return not any(chunk.status in unsent for chunk in current.chunks)
