"""`--max-cost`: refuse a job whose cheapest outcome is already over budget, and stop one
whose spending so far plus what the rest will cost would go over it.

Before launch the floor is the offline estimate's lower bound (input tokens only, at batch
prices): counting tokens online for a large file would take long, and the floor only has
to show that the job cannot fit. During the run the projection is the average actual
cost per answered request times the requests still open.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config import Settings
from ..errors import UsageError
from ..store import JobStatus, RequestStatus
from ..store.jobs import Snapshot
from .pricing import format_usd, price_table_for

__all__ = ["Budget", "check_before_launch"]


@dataclass
class Budget:
    """The budget of one run, and whether it has been hit."""

    limit_usd: float
    floor_per_request: float  #: the estimate's lower bound per request, before any answer
    note: str | None = None  #: set once the budget stopped the job

    def over(self, current: Snapshot) -> str | None:
        """A note when actual plus projected cost crosses the limit (once)."""
        if self.note is not None or current.job.status != JobStatus.RUNNING:
            return None
        actual = current.cost_usd or 0.0
        answered = current.counts.get(RequestStatus.SUCCEEDED)
        per_request = actual / answered if answered else self.floor_per_request
        remaining = current.job.total_requests - current.counts.final
        projected = actual + per_request * remaining
        if projected <= self.limit_usd:
            return None
        self.note = (
            f"--max-cost {format_usd(self.limit_usd)}: spent {format_usd(actual)}, "
            f"projected {format_usd(projected)}; the job's running batches were canceled"
        )
        return self.note


def check_before_launch(path: Path, settings: Settings, limit_usd: float) -> Budget:
    """Refuse, before anything is sent, a job whose lower-bound cost exceeds the limit."""
    from .estimate import estimate

    if limit_usd <= 0:
        raise UsageError("--max-cost must be above 0")
    floor = estimate(path, settings, offline=True, prices=price_table_for(settings.pricing_file))
    if floor.low_usd > limit_usd:
        raise UsageError(
            f"--max-cost {format_usd(limit_usd)}: the input alone costs at least "
            f"{format_usd(floor.low_usd)} (estimate); nothing was sent"
        )
    return Budget(limit_usd, floor.low_usd / max(floor.requests, 1))
