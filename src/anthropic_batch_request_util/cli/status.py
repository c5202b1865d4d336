"""What `abr status` shows: a job as the store has it, once or live (`--watch`).

Every figure comes from one store snapshot, so the view never runs ahead of the truth: a
request counts as done only once its result is in the store, not when its batch ends.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import orjson
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ..cost.budget import budget_line
from ..store import ACTIVE_JOB_STATUSES, ENDED_JOB_STATUSES, FINAL_REQUEST_STATUSES, Store
from ..store.jobs import Snapshot
from ..views import eta_seconds, look, status_of

__all__ = [
    "attempts_line",
    "idle_note",
    "status_dict",
    "status_lines",
    "status_view",
    "watch",
]

WATCH_INTERVAL_S = 1.0  #: seconds between two refreshes of `abr status --watch`


def idle_note(current: Snapshot, hint: str) -> str | None:
    """What to say of an active job nothing is working on (no worker, no run of it):
    without one, it would wait forever while looking like it waits on Anthropic."""
    if current.working != 0 or current.job.status not in ACTIVE_JOB_STATUSES:
        return None
    return f"nothing is working on this job: {hint}" if hint else "nothing is working on this job"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def _cost(current: Snapshot) -> str:
    return "—" if current.cost_usd is None else f"${current.cost_usd:,.4f}"


def status_dict(current: Snapshot, hint: str = "") -> dict[str, Any]:
    """What `abr status --json` prints: the Python API's `Status`, and what to run when
    nothing is working on the job."""
    return status_of(current).as_dict() | {"idle": idle_note(current, hint)}


def attempts_line(current: Snapshot) -> str | None:
    """The answers so far by round, when any request needed more than one, or failed."""
    rounds: dict[int, list[str]] = {}
    for row in current.attempts:
        kind = row["outcome"] + (f" ({row['error_type']})" if row["error_type"] else "")
        rounds.setdefault(row["round"], []).append(f"{kind} {row['requests']}")
    plain = len(rounds) <= 1 and all(r["outcome"] == "succeeded" for r in current.attempts)
    if plain:
        return None
    return "attempts: " + "; ".join(
        f"round {n}: {', '.join(parts)}" for n, parts in sorted(rounds.items())
    )


def _summary_line(current: Snapshot) -> str:
    job = current.job
    finals = ", ".join(
        f"{status.value} {current.counts.get(status)}" for status in FINAL_REQUEST_STATUSES
    )
    return (
        f"{job.id}: {job.status.value} — {current.counts.final}/{job.total_requests} done "
        f"({finals}); retrying {current.retrying}; ETA {_duration(eta_seconds(current))}; "
        f"cost {_cost(current)}"
    )


def status_lines(current: Snapshot, hint: str = "") -> list[str]:
    """The plain-text view, for logs and pipes."""
    lines = [_summary_line(current)]
    budget = budget_line(current.job, current.cost_usd)
    if budget is not None:
        lines.append(budget)
    idle = idle_note(current, hint)
    if idle:
        lines.append(idle)
    if current.errors:
        lines.append(
            "errors: " + ", ".join(f"{kind} {n}" for kind, n in sorted(current.errors.items()))
        )
    history = attempts_line(current)
    if history:
        lines.append(history)
    for c in current.chunks:
        age = None if c.submitted_at is None else current.taken_at - c.submitted_at
        counts = " ".join(f"{k}={v}" for k, v in c.counts.items() if v)
        lines.append(
            f"chunk {c.seq} round {c.round}: {c.status.value} {c.batch_id or '-'} "
            f"{c.request_count} requests {counts} age {_duration(age)}".rstrip()
        )
    if current.job.error:
        lines.append(f"error: {current.job.error}")
    return lines


def status_view(current: Snapshot, hint: str = "") -> Group:
    """The Rich view: a header, the errors by type, and one row per chunk."""
    job = current.job
    header = Text(_summary_line(current), style="bold")
    parts: list[Any] = [header]
    budget = budget_line(job, current.cost_usd)
    if budget is not None:
        parts.append(Text(budget))
    idle = idle_note(current, hint)
    if idle:
        parts.append(Text(idle, style="yellow"))
    if current.errors:
        parts.append(
            Text("errors: " + ", ".join(f"{k} {n}" for k, n in sorted(current.errors.items())))
        )
    history = attempts_line(current)
    if history:
        parts.append(Text(history))
    if job.error:
        parts.append(Text(f"error: {job.error}", style="red"))
    table = Table("chunk", "round", "status", "batch", "requests", "counts", "age")
    for c in current.chunks:
        age = None if c.submitted_at is None else current.taken_at - c.submitted_at
        counts = ", ".join(f"{k} {v}" for k, v in c.counts.items() if v)
        table.add_row(
            str(c.seq),
            str(c.round),
            c.status.value,
            c.batch_id or "-",
            str(c.request_count),
            counts,
            _duration(age),
        )
    parts.append(table)
    return Group(*parts)


def show(current: Snapshot, *, as_json: bool, console: Console, hint: str = "") -> None:
    """One look; `hint` is what to run when nothing is working on the job."""
    if as_json:
        print(orjson.dumps(status_dict(current, hint)).decode(), flush=True)
    elif console.is_terminal:
        console.print(status_view(current, hint))
    else:
        print("\n".join(status_lines(current, hint)), flush=True)


def watch(
    store: Store,
    job_pk: int,
    *,
    as_json: bool,
    console: Console,
    interval: float = WATCH_INTERVAL_S,
    hint: str = "",
) -> Snapshot:
    """Refresh the view until the job ends (Ctrl-C stops watching, not the job)."""
    current = look(store, job_pk)
    if as_json or not console.is_terminal:
        return _watch_plain(store, job_pk, current, as_json=as_json, interval=interval, hint=hint)
    with Live(status_view(current, hint), console=console, refresh_per_second=4) as live:
        while current.job.status not in ENDED_JOB_STATUSES:
            time.sleep(interval)
            current = look(store, job_pk)
            live.update(status_view(current, hint))
    return current


def _watch_plain(
    store: Store,
    job_pk: int,
    current: Snapshot,
    *,
    as_json: bool,
    interval: float,
    hint: str,
) -> Snapshot:
    last = ""
    while True:
        if as_json:
            line = orjson.dumps(status_dict(current, hint)).decode()
        else:
            line = "\n".join([_summary_line(current), *filter(None, [idle_note(current, hint)])])
        if line != last:
            print(line, flush=True)
            last = line
        if current.job.status in ENDED_JOB_STATUSES:
            return current
        time.sleep(interval)
        current = look(store, job_pk)
        sys.stdout.flush()
