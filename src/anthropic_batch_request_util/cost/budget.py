"""`--max-cost`: a budget that holds by construction, and `--canary`: a few requests first.

Before launch (`check_before_launch`), a job whose cheapest outcome (the offline
estimate's floor) is over budget is refused: exit 2, nothing sent.

During the run (`admit`), a chunk is sent only when

    spent + worst(in flight) + worst(chunk) <= max_cost

where `spent` is the actual cost of every answer so far (from the usage the API reports),
and a worst case is its requests' `bounds.worst_case_usd` summed: the input at the dearest
price it can be billed (prompt caching included) plus `max_tokens` of output, at batch
prices. The check runs in the transaction that takes the store's submit lock and writes the
chunk's submit intent, so two workers never claim the same room. Fetching a batch's results
replaces its worst case with its actual cost, and asks the check again (`recheck`). When
only the first requests of a chunk fit, it is cut after them; when none fits, the chunk
waits for what is in flight, and with nothing in flight the job is paused: its unsent
requests stay pending, and `abr resume JOB --max-cost Y` carries on.

A canary holds back every request from input index N on (`hold_canary`) until the user
says go (`release_hold`); the job pauses once the first N have ended.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from pathlib import Path
from typing import Any

import orjson

from ..config import Settings, settings_from_dict
from ..errors import UsageError
from ..store import (
    ChunkStatus,
    Connection,
    JobStatus,
    RequestStatus,
    Store,
    bodies,
    result_lines,
    worst_cases,
)
from ..store import chunks as chunk_rows
from ..store import jobs as job_rows
from ..store import requests as request_rows
from .bounds import worst_case_usd
from .pricing import format_usd, price_table_for, usd_json

__all__ = [
    "BUDGET",
    "CANARY",
    "Canary",
    "CanaryReport",
    "admit",
    "apply_budget",
    "budget_dict",
    "budget_line",
    "canary_report",
    "check_before_launch",
    "hold_canary",
    "parse_canary",
    "release_hold",
    "stop_note",
]

BUDGET = "budget"  #: stop reason: nothing more fits in --max-cost
CANARY = "canary"  #: stop reason: the canary has ended; the rest waits for the user
FILL_BATCH = 5000  #: worst cases written per statement
CANARY_LINES_SHOWN = 10  #: canary answers whose first line is printed
FIRST_LINE_CHARS = 100  #: characters of an answer's first line printed
_CANARY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(%?)\s*$")


def check_before_launch(path: Path, settings: Settings, limit_usd: float) -> None:
    """Refuse, before anything is sent, a job whose lower-bound cost exceeds the limit."""
    from .estimate import estimate

    if not limit_usd > 0:
        raise UsageError("--max-cost must be above 0")
    floor = estimate(path, settings, offline=True, prices=price_table_for(settings.pricing_file))
    if floor.low_usd > limit_usd:
        raise UsageError(
            f"--max-cost {format_usd(limit_usd)}: the input alone costs at least "
            f"{format_usd(floor.low_usd)} (estimate); nothing was sent"
        )


def apply_budget(store: Store, job_pk: int, limit_usd: float | None) -> None:
    """Give the job its budget (replacing any earlier one), and each of its requests and
    unfinished chunks its worst case, once, so that the check is a few sums."""
    if limit_usd is not None and not limit_usd > 0:
        raise UsageError("--max-cost must be above 0")
    with store.begin() as conn:
        job = job_rows.get_job_by_pk(conn, job_pk)
        if limit_usd is not None:
            job_rows.set_budget(conn, job_pk, limit_usd)
        if (limit_usd is None and job.max_cost_usd is None) or job.status == JobStatus.FINISHED:
            return
        table = price_table_for(settings_from_dict(job.settings).pricing_file)
        rows: list[tuple[int, float]] = []
        missing = request_rows.missing_worst(conn, job_pk)
        for idx, body in bodies.iter_bodies(conn, job_pk, missing):
            rows.append((idx, _up(worst_case_usd(orjson.loads(body)["params"], table))))
            if len(rows) >= FILL_BATCH:
                request_rows.set_worst(conn, job_pk, rows)
                rows.clear()
        request_rows.set_worst(conn, job_pk, rows)
        worst_cases.sum_worst(conn, job_pk)


def _up(value: Decimal) -> float:
    """A float no smaller than `value`: a bound must not shrink on the way to the store."""
    near = float(value)
    return near if Decimal(near) >= value else math.nextafter(near, math.inf)


def admit(conn: Connection, chunk_id: int) -> bool:
    """The budget check of a chunk about to be sent (see the module doc): whether it may
    go now, perhaps cut shorter. Holding it back may pause the job."""
    chunk = chunk_rows.get_chunk(conn, chunk_id)
    assert chunk is not None
    job = job_rows.get_job_by_pk(conn, chunk.job_pk)
    if job.status == JobStatus.PAUSED:
        return False
    hold = job.hold_from_idx
    if hold is not None and (worst_cases.first_idx(conn, chunk_id) or 0) >= hold:
        canary_left, _ = request_rows.unfinished_worst(conn, job.pk, below_idx=hold)
        if not canary_left:
            job_rows.pause_job(conn, job.pk, CANARY)
        return False
    if job.max_cost_usd is None:
        return True
    figures = job_rows.budget_figures(conn, job.pk)
    room = job.max_cost_usd - figures.spent - figures.in_flight
    count, worst = worst_cases.fitting_prefix(conn, chunk_id, room)
    if count == 0:
        if not figures.in_flight_chunks:
            job_rows.pause_job(conn, job.pk, BUDGET)
        return False
    if count < chunk.request_count:
        worst_cases.split_chunk(conn, chunk_id, count)
    worst_cases.set_worst(conn, chunk_id, worst)
    return True


def stop_note(store: Store, job: job_rows.Job) -> str:
    """The one line a run stopped by its budget ends with."""
    with store.begin() as conn:
        tally = job_rows.job_tally(conn, job.pk)
        unsent, rest = request_rows.unfinished_worst(conn, job.pk)
    spent = tally.cost_usd or 0.0
    answered = tally.counts.final
    enough = Decimal(repr(spent + rest)).quantize(Decimal("0.0001"), rounding=ROUND_CEILING)
    return (
        f"--max-cost {_usd6(job.max_cost_usd or 0.0)} reached: spent {_usd6(spent)} (from usage); "
        f"{answered} requests answered, {unsent} never sent (pending in the store); "
        f"continue with: abr resume {job.id} --max-cost {enough}"
    )


def _usd6(amount: float) -> str:
    """Dollars to the JSON's 6 decimals, trailing zeros past the cents dropped."""
    whole, _, part = f"{usd_json(amount):.6f}".partition(".")
    return f"${whole}.{part.rstrip('0').ljust(2, '0')}"


def budget_dict(job: job_rows.Job, spent: float | None) -> dict[str, Any] | None:
    """The budget in JSON (status, summary, record); None for a job without one."""
    if job.max_cost_usd is None:
        return None
    return {
        "max_cost_usd": usd_json(job.max_cost_usd),
        "spent_usd": usd_json(spent or 0.0),
        "stopped": job.stop_reason if job.status == JobStatus.PAUSED else None,
    }


def budget_line(budget: dict[str, Any] | None) -> str | None:
    """A `budget_dict` for people; None for a job without a budget."""
    if budget is None:
        return None
    line = f"budget {format_usd(budget['max_cost_usd'])}, spent {format_usd(budget['spent_usd'])}"
    if budget["stopped"] == BUDGET:
        line += " — stopped: nothing more fits (abr resume JOB --max-cost USD goes on)"
    elif budget["stopped"] == CANARY:
        line += " — paused after the canary (abr resume JOB sends the rest)"
    return line


# --- the canary -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Canary:
    """`--canary`: a count of requests, or a percentage of the job."""

    value: float
    percent: bool

    def count(self, total: int) -> int:
        wanted = math.ceil(total * self.value / 100) if self.percent else int(self.value)
        return max(1, min(wanted, total))


def parse_canary(text: str) -> Canary:
    """`--canary N` or `--canary P%`; `UsageError` for anything else."""
    found = _CANARY.match(text)
    value = float(found.group(1)) if found else 0.0
    percent = bool(found and found.group(2))
    if not found or value <= 0 or (percent and value > 100) or (not percent and value % 1):
        raise UsageError(f"--canary must be a count or a percentage like 5%, not {text!r}")
    return Canary(value, percent)


def hold_canary(store: Store, job_pk: int, canary: Canary) -> int | None:
    """Hold back every request after the canary's first ones, on a job nothing of which was
    sent yet; the canary's size, or None (a job already under way has no canary)."""
    with store.begin() as conn:
        job = job_rows.get_job_by_pk(conn, job_pk)
        found = chunk_rows.job_chunks(conn, job_pk)
        if any(c.status != ChunkStatus.PENDING for c in found):
            return None
        size = canary.count(job.total_requests)
        if size < job.total_requests:
            worst_cases.cut_before(conn, job_pk, size)
            job_rows.set_hold(conn, job_pk, size)
        return size


def release_hold(store: Store, job_pk: int) -> None:
    """The user said go: nothing is held back any more."""
    with store.begin() as conn:
        job_rows.set_hold(conn, job_pk, None)


@dataclass(frozen=True, slots=True)
class CanaryReport:
    """What the canary showed."""

    size: int
    first_lines: list[str]  #: each answer's first line (or its status)
    cost_usd: float
    answered: int  #: canary requests with an answer that cost something
    projected_usd: float | None  #: the whole job at the canary's cost per answer
    rest: int  #: requests held back
    over_budget: bool = False  #: the projection passes the job's budget: the rest stays


def canary_report(store: Store, job: job_rows.Job) -> CanaryReport:
    """The canary's answers, its actual cost and the projection for the whole job."""
    size = job.hold_from_idx or job.total_requests
    lines: list[str] = []
    with store.begin() as conn:
        tally = job_rows.job_tally(conn, job.pk)
        for raw in result_lines.iter_lines(conn, job.pk):
            if len(lines) >= min(size, CANARY_LINES_SHOWN):
                break
            lines.append(_first_line(orjson.loads(raw)))
    answered = tally.counts.final - tally.counts.get(RequestStatus.CANCELED)
    cost = tally.cost_usd or 0.0
    projected = cost / answered * job.total_requests if answered else None
    over = job.max_cost_usd is not None and (projected or 0.0) > job.max_cost_usd
    return CanaryReport(size, lines, cost, answered, projected, job.total_requests - size, over)


def _first_line(line: dict[str, Any]) -> str:
    text = str(line.get("text") or "")
    first = text.splitlines()[0] if text.strip() else f"({line.get('status')})"
    return f"{line.get('custom_id')}: {first[:FIRST_LINE_CHARS]}"
