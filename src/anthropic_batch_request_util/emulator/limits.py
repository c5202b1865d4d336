"""The API's limits and the traffic they watch: calls per endpoint and the 429s sent.

- **Rate limit**: the batch endpoints share `rate_limit_per_window` calls per
  `rate_limit_window_s`, as a token bucket (the API's "continuously replenished"
  capacity): it holds up to the limit and refills at limit / window per second. Every
  answer of a batch endpoint carries `anthropic-ratelimit-requests-{limit,remaining,reset}`
  (reset: when the bucket is full again, RFC 3339); a call that finds it empty is a 429
  `rate_limit_error` with `retry-after` (seconds until one call is allowed again). Calls
  refused with a 429 take nothing from the bucket.
- **Queued requests**: a create is refused with a 429 when the requests of the batches
  still processing plus its own would exceed `queued_requests_limit` (see `state`).
- **Not found after create** and **latency** are read by `state` and `server`.

All of them can be changed while the emulator runs (`POST /_admin/limits`).
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any

from .config import EmulatorConfig, check_limits
from .wire import ApiFailure, ErrorType, timestamp

#: the endpoints counted in the statistics; the first six share the batch rate limit
ENDPOINTS = (
    "create", "list", "retrieve", "results", "cancel", "delete", "messages", "count_tokens",
)  # fmt: skip
BATCH_ENDPOINTS = frozenset(ENDPOINTS[:6])
#: why a 429 was sent, as the statistics name it
REASONS = ("rate_limit", "queued_limit", "fault")
HEADER = "anthropic-ratelimit-requests-"  #: prefix of the rate-limit headers


def seconds_text(seconds: float) -> str:
    """Seconds for `retry-after`: whole when they are, else rounded up to the millisecond."""
    return format(math.ceil(seconds * 1000) / 1000, "g")


class Limits:
    """The current limits, the rate bucket and the traffic counts (thread-safe)."""

    def __init__(self, config: EmulatorConfig) -> None:
        self._lock = threading.Lock()
        self.values: dict[str, Any] = config.limits()
        self.calls: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()  #: 429s sent by reason (but faults)
        self.hidden = 0  #: 404s sent for batches created moments ago
        self._fill()

    def _fill(self) -> None:
        self._tokens = float(self.values["rate_limit_per_window"] or 0)
        self._stamp = time.monotonic()

    def update(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Set some limits (the rate bucket starts full again); return them all."""
        checked = check_limits(changes)
        with self._lock:
            self.values.update(checked)
            self._fill()
            return dict(self.values)

    def snapshot(self) -> dict[str, Any]:
        """The current limits."""
        with self._lock:
            return dict(self.values)

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def take(self, endpoint: str) -> dict[str, str]:
        """Count a call; for a batch endpoint, take a call from the bucket. The rate-limit
        headers to send; a 429 (with them) when the bucket is empty."""
        with self._lock:
            self.calls[endpoint] += 1
            limit = self.values["rate_limit_per_window"]
            if endpoint not in BATCH_ENDPOINTS or limit is None:
                return {}
            rate = limit / self.values["rate_limit_window_s"]  # calls per second
            now = time.monotonic()
            self._tokens = min(limit, self._tokens + (now - self._stamp) * rate)
            self._stamp = now
            allowed = self._tokens >= 1
            self._tokens -= allowed
            full_in = (limit - self._tokens) / rate
            headers = {
                f"{HEADER}limit": str(limit),
                f"{HEADER}remaining": str(math.floor(self._tokens)),
                f"{HEADER}reset": timestamp(time.time() + full_in),
            }
            if allowed:
                return headers
            self.refused["rate_limit"] += 1
            headers["retry-after"] = seconds_text((1 - self._tokens) / rate)
        window = self.values["rate_limit_window_s"]
        message = (
            f"Number of requests to the Message Batches API has exceeded your rate limit "
            f"({limit} per {window:g} s)"
        )
        raise ApiFailure(ErrorType.RATE_LIMIT, message, headers)

    def refuse_queued(self, queued: int, asked: int, retry_after: float) -> ApiFailure:
        """Count a create refused by the queued-requests limit; the 429 to answer with."""
        with self._lock:
            self.refused["queued_limit"] += 1
            limit = self.values["queued_requests_limit"]
        message = (
            f"Number of batch requests in the processing queue would exceed your limit "
            f"({limit}): {queued} queued, {asked} in this batch"
        )
        return ApiFailure(ErrorType.RATE_LIMIT, message, {"retry-after": seconds_text(retry_after)})

    def count_hidden(self) -> None:
        """Count a 404 sent for a batch created moments ago."""
        with self._lock:
            self.hidden += 1

    def traffic(self, fault_429s: int) -> dict[str, Any]:
        """Calls per endpoint, 429s per reason and the 404s of just-created batches."""
        with self._lock:
            return {
                "calls": {endpoint: self.calls[endpoint] for endpoint in ENDPOINTS},
                "http_429_sent": {
                    "rate_limit": self.refused["rate_limit"],
                    "queued_limit": self.refused["queued_limit"],
                    "fault": fault_429s,
                },
                "not_found_after_create": self.hidden,
            }
