"""The Python API: the same jobs as the command line, from a script or a notebook.

    import anthropic_batch_request_util as abr

    job = abr.run([("q1", {"messages": [{"role": "user", "content": "Hi"}]})])
    for result in job.results():
        print(result.custom_id, result.text)

`run` is `abr run`, `submit` is `abr run --no-wait`, `job` and `jobs` find jobs already in
the store; a `Job` is a handle on one job by its id, and every method reads the store
afresh, so two handles (or a handle and the command line) never disagree.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .config import Settings
from .cost import budget
from .cost.budget import CanaryReport
from .engine import runner
from .engine.ingest import Ingested
from .errors import BudgetExceededError, JobInterrupted
from .output import export_csv, results_path
from .progress import ProgressOption, ProgressShown
from .sources import RequestsInput, SettingsInput, launch, settings_for
from .store import JobStatus, Store, result_lines
from .store import jobs as job_rows
from .views import Result, Status, Usage, look, result_of, status_of, summary_of, usage_of

__all__ = ["PANDAS_EXTRA", "RESULT_FORMATS", "Job", "WarningHook", "job", "jobs", "run", "submit"]

PANDAS_EXTRA = "pip install 'anthropic-batch-request-util[pandas]'"
RESULT_FORMATS = ("jsonl", "csv")  #: what `Job.write_results` writes

#: a function given each warning about the settings or the input (default: none shown)
WarningHook = Callable[[str], None]


def run(
    requests: RequestsInput,
    *,
    settings: SettingsInput = None,
    max_cost: float | None = None,
    progress: ProgressOption = True,
    name: str | None = None,
    canary: int | str | None = None,
    on_warning: WarningHook | None = None,
    on_stored: Callable[[Job], object] | None = None,
) -> Job:
    """Answer every request and return the finished job: ``abr run`` from Python.

    `requests` is a path (the original JSON format or JSONL), the original format as a dict
    (``system_prompt``, ``messages_list``, ``custom_id_prefix``), or any iterable, a
    generator too, of ``{"custom_id": ..., "params": {...}}`` dicts or ``(custom_id,
    params)`` pairs, stored as it is read. Everything is checked before anything is sent: a
    problem raises `InputError` with each location. The same requests and settings find
    the job they already are instead of paying twice. `max_cost` (USD) refuses a job whose
    estimate is over it, and sends a batch only while spent + the worst case of everything
    in flight and of that batch fits; a job that can go no further raises
    `BudgetExceededError`, its unsent requests pending (`Job.resume(max_cost=...)`).
    `progress` is True (a bar on a terminal or in Jupyter), False, or a function called
    with each new `Status`. `name` begins the id of a job from code (default "requests").
    `canary` (a count, or a percentage like "5%") sends only that many requests first: the
    job pauses after them (`Job.canary` tells what they showed; `Job.resume` sends the
    rest). `on_warning` is given each warning about the settings or the input; `on_stored`
    the `Job` once its requests are stored, before anything is sent.

    Ctrl-C raises `JobInterrupted`: the batches go on at the API and `resume` carries on.
    """
    hooks = _Hooks(canary, on_warning, on_stored)
    return _start(requests, settings, max_cost, progress, name, hooks, wait=True)


def submit(
    requests: RequestsInput,
    *,
    settings: SettingsInput = None,
    max_cost: float | None = None,
    progress: ProgressOption = True,
    name: str | None = None,
    canary: int | str | None = None,
    on_warning: WarningHook | None = None,
    on_stored: Callable[[Job], object] | None = None,
) -> Job:
    """Store and submit every request, and return once every batch is submitted (``abr run
    --no-wait``); `Job.wait` collects the answers. Arguments as for `run`."""
    hooks = _Hooks(canary, on_warning, on_stored)
    return _start(requests, settings, max_cost, progress, name, hooks, wait=False)


def job(job_id: str, *, settings: SettingsInput = None) -> Job:
    """The job with this id (or a unique prefix of it, six characters or more) in the
    store the settings name; `JobNotFoundError` when there is none."""
    resolved = settings_for(settings)
    with runner.open_store(resolved, create=False) as store, store.begin() as conn:
        found = job_rows.get_job(conn, job_id)
    return Job(found.id, settings=resolved)


def jobs(*, settings: SettingsInput = None) -> list[Job]:
    """Every job in the store the settings name, newest first (``abr jobs``)."""
    resolved = settings_for(settings)
    with runner.open_store(resolved, create=False) as store, store.begin() as conn:
        found = job_rows.list_jobs(conn)
    return [Job(row.id, settings=resolved) for row in found]


@dataclass(frozen=True)
class _Hooks:
    canary: int | str | None
    on_warning: WarningHook | None
    on_stored: Callable[[Job], object] | None


def _start(
    requests: RequestsInput,
    settings: SettingsInput,
    max_cost: float | None,
    progress: ProgressOption,
    name: str | None,
    hooks: _Hooks,
    *,
    wait: bool,
) -> Job:
    resolved = settings_for(settings)
    first = None if hooks.canary is None else budget.parse_canary(str(hooks.canary))
    stored: list[Job] = []

    def on_ingested(found: Ingested) -> None:
        # the handle the hook gets is the one that ends up knowing how the run ended
        stored.append(Job(found.job_id, settings=resolved, existing=not found.created))
        if hooks.on_stored is not None:
            hooks.on_stored(stored[0])

    with ProgressShown(progress) as shown:
        outcome = launch(
            requests,
            resolved,
            name=name,
            wait=wait,
            max_cost=max_cost,
            on_progress=shown.update,
            on_ingested=on_ingested,
            canary=first,
            on_warning=hooks.on_warning,
        )
    found = stored[0] if stored else Job(outcome.snapshot.job.id, settings=resolved)
    return found._ended(outcome)


class _TimedOut(Exception):
    """Raised from the progress hook to stop waiting."""


class Job:
    """A handle on one job in the store: get one from `run`, `submit`, `job` or `jobs`.

    Every method reads the store afresh. Those that drive the job (`wait`, `resume`,
    `cancel`, `retry`) take `progress` as `run` does and raise `JobInterrupted` on Ctrl-C;
    the handle keeps how that drive ended (`summary`).
    """

    def __init__(
        self, job_id: str, *, settings: SettingsInput = None, existing: bool | None = None
    ) -> None:
        self._id = job_id
        self._settings = settings if isinstance(settings, Settings) else settings_for(settings)
        self._existing = existing
        self._outcome: runner.Outcome | None = None
        self._extra: dict[str, Any] = {}

    @property
    def id(self) -> str:
        """The job id, as `abr status` and the file names show it."""
        return self._id

    @property
    def existing(self) -> bool:
        """Whether `run` or `submit` found its requests were this job already (and carried
        it on instead of making a new one); False for a handle from `job` or `jobs`."""
        return bool(self._existing)

    def __repr__(self) -> str:
        return f"Job({self._id!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Job) and other._id == self._id

    def __hash__(self) -> int:
        return hash(self._id)

    def _store(self) -> Store:
        return runner.open_store(self._settings, create=False)

    def _row(self) -> job_rows.Job:
        with self._store() as store, store.begin() as conn:
            return job_rows.get_job(conn, self._id)

    def _snapshot(self) -> job_rows.Snapshot:
        with self._store() as store:
            with store.begin() as conn:
                pk = job_rows.get_job(conn, self._id).pk
            return look(store, pk)

    def _ended(self, outcome: runner.Outcome, **extra: Any) -> Job:
        """Keep how a drive ended; an interrupted or over-budget one raises, as the CLI exits."""
        self._outcome, self._extra = outcome, extra
        if outcome.interrupted:
            raise JobInterrupted(self._id)
        if outcome.budget_note:
            raise BudgetExceededError(outcome.budget_note)
        return self

    def status(self) -> Status:
        """Where the job stands now: what ``abr status --json`` prints, typed."""
        return status_of(self._snapshot())

    @property
    def total(self) -> int:
        """How many requests the job has."""
        return self._row().total_requests

    @property
    def created_at(self) -> float:
        """When the job was made (seconds since the epoch)."""
        return self._row().created_at

    @property
    def finished_at(self) -> float | None:
        """When the job last finished (seconds since the epoch); None while it has not."""
        return self._row().finished_at

    @property
    def cost_usd(self) -> float | None:
        """What the answers so far cost at batch prices; None before any priced answer."""
        return self._snapshot().cost_usd

    @property
    def usage(self) -> Usage:
        """Tokens used by the succeeded requests so far."""
        return usage_of(self._snapshot())

    @property
    def results_path(self) -> Path:
        """The results file, written once the job finishes: one line per request."""
        return results_path(self._row())

    def summary(self) -> dict[str, Any]:
        """How the last drive of this handle ended (or, before any, the job now): what
        ``abr run --json`` prints. Counts, usage, cost, budget, the files, the batches still
        running, `stop_note` (why a budget stopped it), `interrupted` (Ctrl-C); and
        `existing` after `run`/`submit`, `retried` after `retry`, `canceled` (the batch ids)
        after `cancel`."""
        if self._outcome is not None:
            last = self._outcome
            current, note, interrupted = last.snapshot, last.budget_note, last.interrupted
        else:
            with self._store() as store:
                current = look(store, self._row().pk)
                note = _budget_note(store, current.job)
            interrupted = False
        started = {} if self._existing is None else {"existing": self._existing}
        summary = summary_of(current, stop_note=note, interrupted=interrupted)
        return summary | started | self._extra

    def canary(self) -> CanaryReport | None:
        """What the canary showed, when the job is paused after it (``run(canary=...)``):
        its answers' first lines, its cost, the projection for the whole job; else None."""
        if self._outcome is not None and self._outcome.canary is not None:
            return self._outcome.canary
        with self._store() as store:
            found = self._row()
            paused = found.status == JobStatus.PAUSED and found.stop_reason == budget.CANARY
            return budget.canary_report(store, found) if paused else None

    def wait(self, timeout: float | None = None, *, progress: ProgressOption = True) -> Job:
        """Drive the job until it ends (answers fetched, results file written); returns
        the job. With `timeout` (seconds), raises `TimeoutError` if it has not ended by
        then; like Ctrl-C, that stops the waiting, not the job."""
        if self.status().ended:
            return self
        deadline = None if timeout is None else time.monotonic() + timeout
        shown = ProgressShown(progress)

        def watch(current: job_rows.Snapshot) -> None:
            shown.update(current)
            if deadline is not None and time.monotonic() > deadline:
                raise _TimedOut

        try:
            with shown:
                outcome = runner.resume_job(self._settings, self._id, on_progress=watch)
        except _TimedOut:
            raise TimeoutError(
                f"job {self._id} has not ended after {timeout:g} s; it goes on at the API: "
                "wait() again to collect it"
            ) from None
        return self._ended(outcome)

    def resume(
        self,
        *,
        wait: bool = True,
        progress: ProgressOption = True,
        max_cost: float | None = None,
        on_warning: WarningHook | None = None,
    ) -> Job:
        """Carry on from where the store says the job stands (``abr resume``): after
        Ctrl-C, a crash, a failure or a budget reached. `max_cost` (USD) replaces the job's
        budget. With ``wait=False``, returns once all is submitted. `on_warning` as for
        `run`."""
        with ProgressShown(progress) as shown:
            outcome = runner.resume_job(
                self._settings,
                self._id,
                wait=wait,
                on_progress=shown.update,
                max_cost=max_cost,
                on_warning=on_warning,
            )
        return self._ended(outcome)

    def cancel(self, *, wait: bool = True, progress: ProgressOption = True) -> list[str]:
        """Cancel the running batches and collect what they had finished (``abr cancel``);
        the ids of the batches asked to cancel."""
        with ProgressShown(progress) as shown:
            canceled, outcome = runner.cancel_job(
                self._settings, self._id, wait=wait, on_progress=shown.update
            )
        self._ended(outcome, canceled=canceled)
        return canceled

    def retry(
        self,
        statuses: str | Iterable[str] | None = None,
        *,
        max_cost: float | None = None,
        wait: bool = True,
        progress: ProgressOption = True,
    ) -> int:
        """Send a finished job's requests that ended in `statuses` again, as a new round
        (``abr retry``): by default the errored (except invalid requests), expired and
        canceled ones. Returns how many were sent again."""
        chosen = statuses if statuses is None or isinstance(statuses, str) else ",".join(statuses)
        with ProgressShown(progress) as shown:
            count, outcome = runner.retry_job(
                self._settings,
                self._id,
                statuses=chosen,
                max_cost=max_cost,
                wait=wait,
                on_progress=shown.update,
            )
        self._ended(outcome, retried=count)
        return count

    def results(self, status: str | Iterable[str] | None = None) -> Iterator[Result]:
        """The answers in input order, one `Result` per request that has ended so far (all
        of them once the job is finished), read from the store as they are iterated;
        `status` keeps only those (e.g. "errored", or ["errored", "expired"])."""
        wanted = None if status is None else {status} if isinstance(status, str) else set(status)
        with self._store() as store, store.begin() as conn:
            pk = job_rows.get_job(conn, self._id).pk
            for line in result_lines.iter_ended_lines(conn, pk):
                result = result_of(line)
                if wanted is None or result.status in wanted:
                    yield result

    def write_results(self, handle: IO[str], *, format: str = "jsonl") -> None:
        """Write one line per request of the job, in input order, to `handle` (``abr
        results``): "jsonl" copies the results file's lines as stored (a request without
        a final status says queued or retry), "csv" has a header and one row each."""
        if format not in RESULT_FORMATS:
            raise ValueError(f"format must be jsonl or csv, not {format!r}")
        with self._store() as store:
            found = self._row()
            if format == "csv":
                export_csv(store, found, handle)
                return
            with store.begin() as conn:
                for line in result_lines.iter_lines(conn, found.pk):
                    handle.write(line.decode() + "\n")

    def to_pandas(self, status: str | Iterable[str] | None = None) -> Any:
        """The results as a ``pandas.DataFrame``, one row per `Result` (needs pandas:
        the ``pandas`` extra)."""
        try:
            import pandas
        except ImportError:
            raise ImportError(f"Job.to_pandas needs pandas: {PANDAS_EXTRA}") from None
        columns = list(Result.__dataclass_fields__)
        rows = [result.as_dict() for result in self.results(status)]
        return pandas.DataFrame.from_records(rows, columns=columns)


def _budget_note(store: Store, found: job_rows.Job) -> str | None:
    """The note of a job its budget stopped; None otherwise."""
    if found.status == JobStatus.PAUSED and found.stop_reason == budget.BUDGET:
        return budget.stop_note(store, found)
    return None
