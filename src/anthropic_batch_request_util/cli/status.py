"""What `abr status` shows: a job's `Status` (what the Python API's `Job.status()` gives),
once or live (`--watch`).

Every figure comes from one look at the store, so the view never runs ahead of the truth:
a request counts as done only once its result is in the store, not when its batch ends.
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
from ..jobs import Job
from ..store import ACTIVE_JOB_STATUSES, FINAL_REQUEST_STATUSES
from ..views import Status

__all__ = [
    "attempts_line",
    "idle_note",
    "show",
    "status_dict",
    "status_lines",
    "status_view",
    "watch",
]

WATCH_INTERVAL_S = 1.0  #: seconds between two refreshes of `abr status --watch`
_ACTIVE = frozenset(status.value for status in ACTIVE_JOB_STATUSES)


def idle_note(current: Status, hint: str) -> str | None:
    """What to say of an active job nothing is working on (no worker, no run of it):
    without one, it would wait forever while looking like it waits on Anthropic."""
    if current.working != 0 or current.status not in _ACTIVE:
        return None
    return f"nothing is working on this job: {hint}" if hint else "nothing is working on this job"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def _cost(current: Status) -> str:
    return "—" if current.cost_usd is None else f"${current.cost_usd:,.4f}"


def status_dict(current: Status, hint: str = "") -> dict[str, Any]:
    """What `abr status --json` prints: the Python API's `Status`, and what to run when
    nothing is working on the job."""
    return current.as_dict() | {"idle": idle_note(current, hint)}


def attempts_line(current: Status) -> str | None:
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


def _summary_line(current: Status) -> str:
    finals = ", ".join(
        f"{status.value} {current.counts.get(status.value, 0)}" for status in FINAL_REQUEST_STATUSES
    )
    return (
        f"{current.job_id}: {current.status} — {current.done}/{current.total} done "
        f"({finals}); retrying {current.retrying}; ETA {_duration(current.eta_s)}; "
        f"cost {_cost(current)}"
    )


def _notes(current: Status, hint: str) -> list[tuple[str, str]]:
    """The lines under the summary, with the style each gets on a terminal."""
    notes = [
        (budget_line(current.budget), ""),
        (idle_note(current, hint), "yellow"),
        (_errors_line(current), ""),
        (attempts_line(current), ""),
    ]
    return [(text, style) for text, style in notes if text]


def _errors_line(current: Status) -> str | None:
    if not current.errors:
        return None
    return "errors: " + ", ".join(f"{kind} {n}" for kind, n in sorted(current.errors.items()))


def status_lines(current: Status, hint: str = "") -> list[str]:
    """The plain-text view, for logs and pipes."""
    lines = [_summary_line(current), *(text for text, _ in _notes(current, hint))]
    for c in current.chunks:
        counts = " ".join(f"{k}={v}" for k, v in c.request_counts.items() if v)
        lines.append(
            f"chunk {c.seq} round {c.round}: {c.status} {c.batch_id or '-'} "
            f"{c.requests} requests {counts} age {_duration(c.age_s)}".rstrip()
        )
    if current.error:
        lines.append(f"error: {current.error}")
    return lines


def status_view(current: Status, hint: str = "") -> Group:
    """The Rich view: a header, the notes, and one row per chunk."""
    parts: list[Any] = [Text(_summary_line(current), style="bold")]
    parts += [Text(text, style=style) for text, style in _notes(current, hint)]
    if current.error:
        parts.append(Text(f"error: {current.error}", style="red"))
    table = Table("chunk", "round", "status", "batch", "requests", "counts", "age")
    for c in current.chunks:
        counts = ", ".join(f"{k} {v}" for k, v in c.request_counts.items() if v)
        table.add_row(
            str(c.seq),
            str(c.round),
            c.status,
            c.batch_id or "-",
            str(c.requests),
            counts,
            _duration(c.age_s),
        )
    parts.append(table)
    return Group(*parts)


def show(current: Status, *, as_json: bool, console: Console, hint: str = "") -> None:
    """One look; `hint` is what to run when nothing is working on the job."""
    if as_json:
        print(orjson.dumps(status_dict(current, hint)).decode(), flush=True)
    elif console.is_terminal:
        console.print(status_view(current, hint))
    else:
        print("\n".join(status_lines(current, hint)), flush=True)


def watch(
    job: Job,
    *,
    as_json: bool,
    console: Console,
    interval: float = WATCH_INTERVAL_S,
    hint: str = "",
) -> Status:
    """Refresh the view until the job ends (Ctrl-C stops watching, not the job)."""
    current = job.status()
    if as_json or not console.is_terminal:
        return _watch_plain(job, current, as_json=as_json, interval=interval, hint=hint)
    with Live(status_view(current, hint), console=console, refresh_per_second=4) as live:
        while not current.ended:
            time.sleep(interval)
            current = job.status()
            live.update(status_view(current, hint))
    return current


def _watch_plain(job: Job, current: Status, *, as_json: bool, interval: float, hint: str) -> Status:
    last = ""
    while True:
        if as_json:
            line = orjson.dumps(status_dict(current, hint)).decode()
        else:
            line = "\n".join([_summary_line(current), *filter(None, [idle_note(current, hint)])])
        if line != last:
            print(line, flush=True)
            last = line
        if current.ended:
            return current
        time.sleep(interval)
        current = job.status()
        sys.stdout.flush()
