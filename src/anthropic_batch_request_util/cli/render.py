"""What the command line shows: progress, summaries, tables. Rich on a terminal, plain
lines otherwise. Nothing here decides anything; it only renders store snapshots."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import orjson
import rich.progress
import yaml
from rich.console import Console
from rich.table import Table

from .. import output
from ..cost.budget import CanaryReport, budget_line
from ..cost.pricing import format_usd
from ..errors import UsageError
from ..jobs import Job
from ..progress import RichBar, job_columns
from ..store import ACTIVE_JOB_STATUSES, JobStatus, RequestStatus
from ..views import Status

ACTIVE = {status.value for status in ACTIVE_JOB_STATUSES}  #: job statuses that move on
PLAIN_MIN_S = 1.0  #: seconds at least between two plain progress lines
PLAIN_HEARTBEAT_S = 30.0  #: seconds after which a plain line is printed even if unchanged

stdout = Console(highlight=False, soft_wrap=True)
stderr = Console(stderr=True, highlight=False, soft_wrap=True)


def error(message: str) -> None:
    print(f"abr: error: {message}", file=sys.stderr)


def warning(message: str) -> None:
    print(f"abr: warning: {message}", file=sys.stderr)


def _chunk_line(current: Status) -> str:
    states: dict[str, int] = {}
    for chunk in current.chunks:
        states[chunk.status] = states.get(chunk.status, 0) + 1
    return ", ".join(f"{n} {state}" for state, n in states.items())


def _counts_line(finals: dict[str, int], retrying: int = 0) -> str:
    parts = [f"{n} {status}" for status, n in finals.items() if n]
    if retrying:
        parts.append(f"{retrying} to retry")
    return ", ".join(parts) or "none done yet"


class _Bar(RichBar):
    """A Rich progress bar on stderr while the block runs, when stderr is a terminal."""

    def __init__(self, enabled: bool, *columns: rich.progress.ProgressColumn) -> None:
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        super().__init__(enabled and self.tty, stderr, *columns)


class Progress(_Bar):
    """Live progress of a job: a bar on a terminal, a line now and then otherwise."""

    def __init__(self, enabled: bool = True) -> None:
        super().__init__(enabled, *job_columns())
        self.last_line = ""
        self.last_time = 0.0
        self.waiting = False  #: the waiting line was shown and the store is not back yet

    def stored(self, job: Job) -> None:
        """The job the input's requests are (`on_stored`)."""
        if not self.enabled:
            return
        what = "a known job: carrying on where it stands" if job.existing else "new job"
        stderr.print(f"{job.id}: {job.total} requests ({what})")

    def update(self, current: Status) -> None:
        """One look at the job (the API's progress hook)."""
        if not self.enabled or self._store_waiting(current):
            return
        done, total = current.done, current.total
        detail = f"batches: {_chunk_line(current)}"
        if current.working == 0 and current.status in ACTIVE:
            detail += f" — nothing is working on it: {idle_hint(current.job_id, False)}"
        if self.bar is not None:
            self.show(current.job_id, done, total, detail=detail)
            return
        counts = _counts_line(current.counts, current.retrying)
        line = f"{current.job_id}: {done}/{total} done ({counts}); {detail}"
        elapsed = time.monotonic() - self.last_time
        changed = line != self.last_line and elapsed >= PLAIN_MIN_S
        if changed or elapsed >= PLAIN_HEARTBEAT_S:
            print(line, file=sys.stderr, flush=True)
            self.last_line, self.last_time = line, time.monotonic()

    def _store_waiting(self, current: Status) -> bool:
        """Say once per outage that the run waits for its store, and once that it is back;
        whether this look is one taken before the outage (nothing else to show)."""
        if current.store_waiting is None:
            if self.waiting:
                self.waiting = False
                self._line(f"{current.job_id}: the job store is back; carrying on")
            return False
        if not self.waiting:
            self.waiting = True
            self._line(
                f"{current.job_id}: waiting for the job store ({current.store_waiting}); retrying"
            )
        return True

    def _line(self, text: str) -> None:
        if self.bar is not None:
            self.bar.console.print(text, markup=False, highlight=False)
        else:
            print(text, file=sys.stderr, flush=True)


def outcome(job: Job, flags: str = "", *, found_again: bool = False) -> None:
    """How a run ended (`Job.summary`); `flags` (` -o DIR --config FILE`, as given) go into
    the commands it suggests, so that they find the same job store. `found_again`: the
    input's requests were a job already."""
    summary = job.summary()
    if found_again:
        stdout.print(f"This file's requests are job {job.id}, {_since(job)}.")
    ended = summary["status"] == "finished"
    retrying = 0 if ended else job.status().retrying
    stdout.print(f"Job {job.id}: {summary['status']} — {_counts_line(summary['counts'], retrying)}")
    if summary["cost_usd"] is not None:
        stdout.print(
            f"Cost:    {format_usd(summary['cost_usd'])} (batch prices, cache tokens included)"
        )
    budget = budget_line(summary["budget"])
    if budget is not None:
        stdout.print(f"Budget:  {budget}")
    if ended:
        stdout.print(f"Results: {summary['results_path']}")
        stdout.print(f"Record:  {summary['records_path']}")
        return
    running = summary["running_batches"]
    if running:
        stdout.print(f"Still running at Anthropic ({len(running)}): {', '.join(running)}")
    if summary["stop_note"] is None:
        stdout.print(f"Resume with:  abr resume {job.id}{flags}")
    stdout.print(f"Cancel with:  abr cancel {job.id}{flags}")


def _since(job: Job) -> str:
    """When a job found again was made or finished: "finished 2 h ago"."""
    finished_at = job.finished_at
    if finished_at is not None:
        return f"finished {_ago(time.time() - finished_at)}"
    return f"started {_ago(time.time() - job.created_at)}, {job.status().status}"


def _ago(seconds: float) -> str:
    if seconds < 90:
        return f"{max(0, int(seconds))} s ago"
    if seconds < 90 * 60:
        return f"{int(seconds // 60)} min ago"
    if seconds < 48 * 3600:
        return f"{int(seconds // 3600)} h ago"
    return f"{int(seconds // 86400)} days ago"


def idle_hint(job_id: str, local: bool, flags: str = "") -> str:
    """What to run when nothing is working on a job: a worker to take the work from the
    broker, or (with the in-process `memory://` broker) a resume that runs it here."""
    if local:
        return f"carry it on here with: abr resume {job_id}{flags}"
    return f"start a worker: abr worker start{flags}"


def retried(count: int, job_id: str) -> None:
    """What `abr retry` sent again (the outcome follows)."""
    if count:
        stdout.print(f"Sent {count:,} request(s) again as a new round of job {job_id}")
    else:
        stdout.print(f"Nothing to retry in job {job_id}")


def canary(report: CanaryReport, job: Job, *, to_stderr: bool = False) -> None:
    """What the canary showed: its answers' first lines, its cost and the projection."""
    console = stderr if to_stderr else stdout
    console.print(f"Canary of {job.id}: the first {report.size} requests")
    for line in report.first_lines:
        console.print(f"  {line}", markup=False)
    if report.size > len(report.first_lines):
        console.print(f"  … and {report.size - len(report.first_lines)} more")
    console.print(f"Canary cost: {format_usd(report.cost_usd)} for {report.answered} answers")
    if report.projected_usd is not None:
        console.print(
            f"Projected:   {format_usd(report.projected_usd)} for all {job.total} "
            "requests (the canary's cost per answer)"
        )


def canary_over_budget(report: CanaryReport, job: Job) -> str:
    projected = format_usd(report.projected_usd or 0.0)
    limit = format_usd((job.status().budget or {}).get("max_cost_usd") or 0.0)
    return (
        f"the canary projects {projected} for the whole job, over --max-cost "
        f"{limit}; the other {report.rest} requests were not "
        f"sent; continue with: abr resume {job.id} --max-cost USD"
    )


def ask_go_on(report: CanaryReport) -> bool:
    """Ask on the terminal whether to send the rest."""
    answer = input(f"Send the other {report.rest} requests? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def stopped_after_canary(job: Job, *, to_stderr: bool = False) -> None:
    console = stderr if to_stderr else stdout
    console.print(f"Stopped after the canary. Send the rest with:  abr resume {job.id}")


def canceled(batch_ids: list[str], summary: dict[str, Any]) -> None:
    if batch_ids:
        names = ", ".join(batch_ids)
        stdout.print(f"Asked Anthropic to cancel {len(batch_ids)} batch(es): {names}")
    elif summary["counts"].get(RequestStatus.CANCELED.value, 0) == 0:
        stdout.print("Nothing was left to cancel.")
    else:
        stdout.print("No batch was running; requests not yet sent are canceled.")


def jobs(found: list[Job], *, as_json: bool) -> None:
    """Every job with its status, size, progress, age and cost."""
    rows = [(job.created_at, job.status()) for job in found]
    if as_json:
        data = [
            {
                "job_id": status.job_id,
                "status": status.status,
                "total": status.total,
                "counts": status.counts,
                "created_at": output.iso(created_at),
                "cost_usd": status.cost_usd,
            }
            for created_at, status in rows
        ]
        print(orjson.dumps(data).decode())
        return
    if not rows:
        stdout.print("No jobs yet. Start one with: abr run FILE")
        return
    table = Table()
    # the id is what every other command takes: never shorten it
    table.add_column("job", no_wrap=True, min_width=max(len(s.job_id) for _, s in rows))
    for name in ("status", "requests", "done", "age", "cost"):
        table.add_column(name)
    for created_at, status in rows:
        table.add_row(
            status.job_id,
            status.status,
            str(status.total),
            str(status.done),
            _age(time.time() - created_at),
            "—" if status.cost_usd is None else format_usd(status.cost_usd),
        )
    stdout.print(table)


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def export(job: Job, fmt: str, out: Path | None) -> None:
    """`abr results`: the job's lines (or CSV rows) to `out` or stdout."""
    try:
        handle = out.open("w", newline="", encoding="utf-8") if out else sys.stdout
    except OSError as error:
        raise UsageError(f"cannot write {out}: {error.strerror}") from error
    try:
        job.write_results(handle, format=fmt)
    finally:
        if out:
            handle.close()
    _unfinished_note(job.status())


def _unfinished_note(status: Status) -> None:
    """An export of a job that has not finished says so: lines of requests without a
    final status carry `queued` or `retry`, and a failed job stays so until resumed."""
    if status.status == JobStatus.FINISHED.value:
        return
    open_ = status.total - status.done
    why = f"failed ({status.error})" if status.status == JobStatus.FAILED.value else status.status
    stderr.print(
        f"note: job {status.job_id} is {why}: {open_:,} of {status.total:,} requests have no "
        f"final status (their lines say queued or retry); carry it on with: "
        f"abr resume {status.job_id}"
    )


def settings_yaml(settings: dict[str, Any], masked_key: str) -> None:
    print(yaml.safe_dump(settings, sort_keys=False).rstrip())
    print(f"# ANTHROPIC_API_KEY: {masked_key}")


class Counter(_Bar):
    """A counter on stderr for long loops (token counting): a bar on a terminal only."""

    def __init__(self, label: str, enabled: bool = True) -> None:
        super().__init__(
            enabled,
            rich.progress.TextColumn(label),
            rich.progress.BarColumn(),
            rich.progress.MofNCompleteColumn(),
            rich.progress.TimeRemainingColumn(),
        )
        self.label = label

    def update(self, done: int, total: int) -> None:
        if self.bar is not None:
            self.show(self.label, done, total)


def estimate(result: Any) -> None:
    """`abr estimate`: tokens, how they were counted, the cost range, what caching does."""
    how = {
        "offline": "approximate (offline)",
        "all": "counted by the API",
        "sample": f"{result.counted_requests:,} counted by the API, the rest calibrated on them",
    }[result.counting]
    margin = f" ± {result.input_tokens_margin:,}" if result.input_tokens_margin else ""
    stdout.print(
        f"{result.requests} requests, {result.input_tokens:,}{margin} input tokens ({how})"
    )
    stdout.print(f"output: up to {result.max_output_tokens:,} tokens (the requests' max_tokens)")
    stdout.print(
        f"cost at batch prices: {format_usd(result.low_usd)} (the input at its least) "
        f"to {format_usd(result.high_usd)} (every answer at max_tokens)"
    )
    if result.margin_usd:
        stdout.print(f"  ± {format_usd(result.margin_usd)} for the sampled token count (~95%)")
    caching = result.caching
    if caching is not None:
        stdout.print(
            f"prompt caching: {caching.requests_sharing:,} of {caching.requests_with_prefix:,}"
            f" requests with a cacheable prefix share one ({caching.prefixes:,} distinct);"
            f" input {format_usd(caching.floor_input_usd)} to "
            f"{format_usd(caching.ceiling_input_usd)}, "
            f"{format_usd(caching.uncached_input_usd)} without caching, "
            f"saves up to {format_usd(caching.savings_usd)}"
        )
    if len(result.model_breakdown) > 1:
        for model, part in result.model_breakdown.items():
            stdout.print(
                f"  {model}: {part.requests} requests, {format_usd(part.low_usd)}"
                f" to {format_usd(part.high_usd)}"
            )
