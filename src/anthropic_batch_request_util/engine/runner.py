"""Drive a job from the command line: ingest, hand the work to the workers, watch the store.

Locally (broker `memory://`) the workers are threads of this process and stop with it; the
store keeps everything, so a later `abr resume` (or the same `abr run`) carries on. With a
Redis broker the work goes to `abr worker` processes and this process only watches.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from ..config import (
    Settings,
    database_url,
    logs_dir,
    require_api_key,
    settings_from_dict,
    uses_local_broker,
)
from ..errors import ApiError, LocalFaultError, StoreUnavailableError, UsageError
from ..inputs import InputFormat, Request
from ..output import records_path, results_path, write_outputs, write_record
from ..store import ENDED_JOB_STATUSES, ChunkStatus, JobStatus, Store, exports
from ..store import jobs as job_rows
from ..store.jobs import Snapshot, snapshot
from ..store.locks import reap_dead_leases
from ..store.workers import beating, heartbeat_name, working_on
from .checks import check_before_creating
from .helper import helper
from .ingest import Ingested, ingest, ingest_stream
from .logs import setup_logging
from .preflight import preflight

if TYPE_CHECKING:
    from ..cost.budget import Canary, CanaryReport
    from .runtime import Runtime

# engine and tasks pull in the SDK and Celery (seconds of imports): they are imported only
# once there is work to drive, so a bad input or a --help answers at once.

__all__ = [
    "Outcome",
    "ProgressCallback",
    "cancel_job",
    "open_store",
    "resume_job",
    "retry_job",
    "run_job",
    "run_stream",
]

log = logging.getLogger(__name__)

WATCH_INTERVAL_S = 0.25  #: seconds between two looks at the store while waiting, at least
END_CHECK_S = 0.1  #: seconds between two checks of whether the job has ended (one row)
WATCH_COST_FACTOR = 20  #: wait this many times as long as the last look took
RECONCILE_INTERVAL_S = 30.0  #: seconds between re-queuing work the store says is due
STORE_WAIT_FIRST_S = 0.5  #: seconds before looking again at a store that cannot be reached
STORE_WAIT_MAX_S = 5.0  #: seconds between such looks at most (the wait doubles up to it)
#: inputs from this size on are read in the helper process (about 8,000 requests and 0.1 s
#: of reading): below it, starting the helper takes longer than the reading
HELPER_INPUT_BYTES = 4 << 20


@dataclass
class Outcome:
    """How a run ended."""

    snapshot: Snapshot
    created: bool = False
    interrupted: bool = False
    budget_note: str | None = None  #: set when --max-cost stopped the job
    canary: CanaryReport | None = None  #: set when the job paused after its canary

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


def _import_in_background() -> None:
    """Import the SDK and Celery (about a second) while the input is read: the reading
    waits on the disk and SQLite much of the time. A bad input still answers at once."""

    def load() -> None:
        from . import submit, tasks  # noqa: F401

    threading.Thread(target=load, name="abr-import", daemon=True).start()


def run_job(
    settings: Settings,
    path: Path,
    *,
    wait: bool = True,
    on_progress: ProgressCallback | None = None,
    on_ingested: Callable[[Ingested], None] | None = None,
    max_cost: float | None = None,
    canary: Canary | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> Outcome:
    """`abr run`: validate and store the input (or find its job), then drive it. With
    `max_cost`, refuse a job whose floor is over it and give the job that budget; with
    `canary`, send only that many requests first (the job pauses after them)."""
    from ..cost import budget

    api_key = require_api_key()  # before reading the input: nothing starts without a key
    check_before_creating(settings)
    _warn(preflight(settings, path), on_warning)
    helper.start()  # its imports go on while the input is checked
    if max_cost is not None:
        budget.check_before_launch(path, settings, max_cost)
    with open_store(settings) as store:
        _import_in_background()
        found = _ingest(store, path, settings)
        budget.apply_budget(store, found.job_pk, max_cost)
        if canary is not None:
            budget.hold_canary(store, found.job_pk, canary)
        return _drive_ingested(store, settings, api_key, found, wait, on_progress, on_ingested)


def _ingest(store: Store, path: Path, settings: Settings) -> Ingested:
    """Ingest a large input in the helper process while this one imports (or here, without
    a helper); a small one here at once, without waiting for the helper to start."""
    output_dir = Path(settings.storage.base_dir)
    try:
        small = path.stat().st_size < HELPER_INPUT_BYTES
    except OSError:
        small = True  # ingest says what is wrong with it
    if small:
        return ingest(store, path, settings, output_dir)
    found: Ingested = helper.call("ingest_at", store.url, path, settings, output_dir)
    return found


def run_stream(
    settings: Settings,
    requests: Iterable[Request],
    *,
    name: str,
    input_format: InputFormat = InputFormat.JSONL,
    wait: bool = True,
    on_progress: ProgressCallback | None = None,
    on_ingested: Callable[[Ingested], None] | None = None,
) -> Outcome:
    """`run_job` for requests that come from code (`inputs.iterable`), stored as they come."""
    api_key = require_api_key()
    check_before_creating(settings)
    _import_in_background()
    with open_store(settings) as store:
        found = ingest_stream(
            store,
            requests,
            settings,
            Path(settings.storage.base_dir),
            name=name,
            input_format=input_format,
        )
        return _drive_ingested(store, settings, api_key, found, wait, on_progress, on_ingested)


def _drive_ingested(
    store: Store,
    settings: Settings,
    api_key: str,
    found: Ingested,
    wait: bool,
    on_progress: ProgressCallback | None,
    on_ingested: Callable[[Ingested], None] | None,
) -> Outcome:
    """Drive a job ingest just made or found, saying which it was."""
    if on_ingested is not None:
        on_ingested(found)
    outcome = _drive(store, settings, api_key, found.job_pk, wait, on_progress)
    outcome.created = found.created
    return outcome


def resume_job(
    settings: Settings,
    job_id: str,
    *,
    wait: bool = True,
    on_progress: ProgressCallback | None = None,
    max_cost: float | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> Outcome:
    """`abr resume`: pick a job up where the store says it stands; requests a canary held
    back are sent now, and `max_cost` replaces the job's budget."""
    from ..cost import budget

    api_key = require_api_key()
    check_before_creating(settings)
    with open_store(settings, create=False) as store:
        with store.begin() as conn:
            job = job_rows.get_job(conn, job_id)
        _warn(preflight(settings, Path(job.input_path), store=False), on_warning)
        budget.apply_budget(store, job.pk, max_cost)
        budget.release_hold(store, job.pk)
        return _drive(store, settings, api_key, job.pk, wait, on_progress)


def _warn(warnings: list[str], on_warning: Callable[[str], None] | None) -> None:
    for warning in warnings:
        if on_warning is not None:
            on_warning(warning)


def retry_job(
    settings: Settings,
    job_id: str,
    *,
    statuses: str | None = None,
    max_cost: float | None = None,
    wait: bool = True,
    on_progress: ProgressCallback | None = None,
) -> tuple[int, Outcome]:
    """`abr retry`: send a finished job's requests that ended in `statuses` again, as a new
    round of the same job; how many were sent again, and how the job ended."""
    from ..cost import budget
    from .retry import parse_retry_statuses, requeue_ended

    choice = parse_retry_statuses(statuses)
    if max_cost is not None and max_cost <= 0:
        raise UsageError("--max-cost must be above 0")
    api_key = require_api_key()
    check_before_creating(settings)
    with open_store(settings, create=False) as store:
        with store.begin() as conn:
            job = job_rows.get_job(conn, job_id)
            count = requeue_ended(conn, job, choice, settings_from_dict(job.settings))
        if not count:
            return 0, Outcome(snapshot(store, job.pk))
        write_record(store, snapshot(store, job.pk).job)  # the record no longer says finished
        if max_cost is not None:  # it covers what this retry spends, on top of the job's
            spent = snapshot(store, job.pk).cost_usd or 0.0
            budget.apply_budget(store, job.pk, spent + max_cost)
        return count, _drive(store, settings, api_key, job.pk, wait, on_progress)


def cancel_job(
    settings: Settings,
    job_id: str,
    *,
    wait: bool = True,
    on_progress: ProgressCallback | None = None,
) -> tuple[list[str], Outcome]:
    """`abr cancel`: cancel the running batches, then collect what they finished."""
    from . import tasks
    from .cancel import cancel_job as cancel_batches
    from .runtime import Runtime as StepRuntime

    api_key = require_api_key()
    with open_store(settings, create=False) as store:
        with store.begin() as conn:
            job = job_rows.get_job(conn, job_id)
        rt = StepRuntime(store, tasks.client_factory(api_key))
        canceled = cancel_batches(rt, job.pk)
        return canceled, _drive(store, settings, api_key, job.pk, wait, on_progress)


def _drive(
    store: Store,
    settings: Settings,
    api_key: str,
    job_pk: int,
    wait: bool,
    on_progress: ProgressCallback | None,
) -> Outcome:
    with store.begin() as conn:  # running it again is how a user retries a stopped job
        job_rows.reopen_job(conn, job_pk)
        # each run chooses where the files go: a job stranded on a full disk ends elsewhere
        moved = exports.set_output_dir(conn, job_pk, Path(settings.storage.base_dir))
    if snapshot(store, job_pk).job.status == JobStatus.FINISHED:
        if moved:
            write_outputs(store, snapshot(store, job_pk).job)
        return Outcome(snapshot(store, job_pk))  # nothing to drive: answer at once

    from . import tasks
    from .reconcile import advance_job
    from .runtime import Runtime as StepRuntime

    # The SDK, Celery and pydantic leave ~200,000 long-lived objects: frozen, they are no
    # longer scanned by every full collection during the run and again at exit (~0.5 s).
    gc.freeze()
    setup_logging(logs_dir(settings))
    rt = StepRuntime(store, tasks.client_factory(api_key), send=tasks.enqueue)
    tasks.configure(settings, rt)
    reap_dead_leases(store)
    local = uses_local_broker(settings)
    worker = tasks.embedded_worker(settings.celery.worker_concurrency) if local else nullcontext()
    last: Snapshot | None = None
    # a run with its own workers is seen working on its job; otherwise `abr worker`s are
    alive = beating(store, heartbeat_name(job_pk)) if local else nullcontext()
    with worker, alive, _interruptible() as interrupted:
        tasks.enqueue(advance_job(rt, job_pk))
        last = _watch(store, rt, job_pk, wait, local, on_progress)
    done = last is not None
    # a job that has ended stays as it is: its last look is the answer
    result = (
        last
        if last is not None and last.job.status in ENDED_JOB_STATUSES
        else snapshot(store, job_pk)
    )
    if result.job.status == JobStatus.FINISHED and not local and not _written_here(result.job):
        write_outputs(store, result.job)  # the worker that finished it was on another machine
    elif interrupted.raised or not done or result.job.status == JobStatus.PAUSED:
        write_record(store, result.job)
    if result.job.status == JobStatus.FAILED:
        raise ApiError(f"job {result.job.id} stopped: {result.job.error}")
    return _paused(store, Outcome(result, interrupted=interrupted.raised))


def _paused(store: Store, outcome: Outcome) -> Outcome:
    """Why a paused job stopped: its budget's note, or its canary's report."""
    from ..cost import budget

    job = outcome.snapshot.job
    if job.status == JobStatus.PAUSED and job.stop_reason == budget.BUDGET:
        outcome.budget_note = budget.stop_note(store, job)
    elif job.status == JobStatus.PAUSED and job.stop_reason == budget.CANARY:
        outcome.canary = budget.canary_report(store, job)
    return outcome


def _written_here(job: job_rows.Job) -> bool:
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
) -> Snapshot | None:
    """Follow the job until it ends (or, with --no-wait, until every chunk is submitted);
    the last look at it, or None when it was left running. A store that cannot be reached
    is waited for, and said so; the job carries on when it is back."""
    from . import tasks
    from .reconcile import advance_job

    last_reconcile = time.monotonic()
    outage = _StoreWait(on_progress)
    while True:
        try:
            started = time.monotonic()
            current = _look(store, job_pk, local)
            looked = time.monotonic() - started
        except StoreUnavailableError as error:
            outage.wait(error)
            continue
        if outage.over(current):
            last_reconcile = -RECONCILE_INTERVAL_S  # steps may have been dropped meanwhile
        if on_progress is not None:
            on_progress(current)
        if current.job.status in ENDED_JOB_STATUSES:
            return current
        stopped = tasks.stranded(job_pk)
        if stopped is not None:
            raise LocalFaultError(f"job {current.job.id} stopped: {stopped}")
        if not wait and (not local or _all_sent(current)):
            return None
        with suppress(StoreUnavailableError):  # the next look waits for the store
            if time.monotonic() - last_reconcile > RECONCILE_INTERVAL_S:
                tasks.enqueue(advance_job(rt, job_pk))
                last_reconcile = time.monotonic()
            # a snapshot of a large job is several full counts: take them less often, so
            # that watching never takes more than a small share of the time the workers
            # need, but notice at once when the job ends
            _wait_unless_ended(store, job_pk, max(WATCH_INTERVAL_S, looked * WATCH_COST_FACTOR))


def _look(store: Store, job_pk: int, local: bool) -> Snapshot:
    current = snapshot(store, job_pk)
    if not local:  # the work is on `abr worker`s: say when there is none
        with store.begin() as conn:
            current.working = working_on(conn, job_pk)
    return current


@dataclass
class _StoreWait:
    """Waiting for a store that cannot be reached: backing off up to STORE_WAIT_MAX_S,
    showing the last look at the job with the reason."""

    on_progress: ProgressCallback | None
    last: Snapshot | None = None
    delay: float = 0.0

    def wait(self, error: StoreUnavailableError) -> None:
        if not self.delay:
            log.warning("waiting for the job store (%s)", error.reason)
        if self.on_progress is not None and self.last is not None:
            self.on_progress(replace(self.last, store_waiting=error.reason))
        self.delay = min(STORE_WAIT_MAX_S, max(STORE_WAIT_FIRST_S, self.delay * 2))
        time.sleep(self.delay)

    def over(self, current: Snapshot) -> bool:
        """Note a look that worked; whether it ends a wait."""
        self.last = current
        waited, self.delay = bool(self.delay), 0.0
        if waited:
            log.warning("the job store is back")
        return waited


def _wait_unless_ended(store: Store, job_pk: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        time.sleep(max(0.0, min(END_CHECK_S, deadline - time.monotonic())))
        if time.monotonic() >= deadline:
            return
        with store.begin() as conn:
            if job_rows.get_job_by_pk(conn, job_pk).status in ENDED_JOB_STATUSES:
                return


def _all_sent(current: Snapshot) -> bool:
    unsent = (ChunkStatus.PENDING, ChunkStatus.SUBMITTING)
    return not any(chunk.status in unsent for chunk in current.chunks)
