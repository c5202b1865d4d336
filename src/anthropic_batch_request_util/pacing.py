"""Pace the calls to the batch endpoints by the limits the API states.

The batch endpoints share one per-minute limit, a token bucket the API refills
continuously. Every answer says where it stands (`anthropic-ratelimit-requests-limit`,
`-remaining`, and `-reset`: when the bucket is full again); a 429 says how long to wait
(`retry-after`). A `Pacer` keeps a copy of that bucket for one API host, shared by every
client and thread of the process: a call waits until the copy holds a token, so calls
are spread out instead of refused. `api.requests_per_minute`, when set, adds a bucket of
our own of that size.

`event_hooks` gives the hooks for an httpx client: the SDK sends every call, its own
retries included, through them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx2

__all__ = ["BATCH_PATH", "HEADER", "Pacer", "calls_exhausted", "event_hooks", "pacer_for"]

BATCH_PATH = "/v1/messages/batches"  #: the endpoints the shared limit covers
HEADER = "anthropic-ratelimit-requests-"  #: prefix of the rate-limit headers
MAX_WAIT_S = 60.0  #: seconds one wait lasts at most before the bucket is looked at again
SECONDS_PER_MINUTE = 60.0


class _Bucket:
    """A token bucket: `capacity` tokens, refilled at `rate` per second."""

    def __init__(self, capacity: float, rate: float, tokens: float) -> None:
        self.capacity, self.rate, self.tokens = capacity, rate, tokens
        self.stamp = time.monotonic()

    def refill(self, t: float) -> None:
        self.tokens = min(self.capacity, self.tokens + (t - self.stamp) * self.rate)
        self.stamp = t

    def wait(self) -> float:
        """Seconds until a token is there (after `refill`)."""
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate


class Pacer:
    """Where one API host's batch limit stands, as far as this process can tell."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._api: _Bucket | None = None  #: the API's bucket as its headers describe it
        self._own: _Bucket | None = None  #: api.requests_per_minute, when set
        self._blocked_until = 0.0  #: monotonic time before which nothing is sent (a 429)

    def before(self, per_minute: int | None) -> None:
        """Wait until a call may be sent, then count it as sent."""
        while True:
            with self._lock:
                wait = self._wait(time.monotonic(), per_minute)
                if wait <= 0:
                    for bucket in (self._api, self._own):
                        if bucket is not None:
                            bucket.tokens -= 1
                    return
            time.sleep(min(wait, MAX_WAIT_S))

    def _wait(self, t: float, per_minute: int | None) -> float:
        if per_minute is not None and (self._own is None or self._own.capacity != per_minute):
            self._own = _Bucket(per_minute, per_minute / SECONDS_PER_MINUTE, per_minute)
        elif per_minute is None:
            self._own = None
        wait = self._blocked_until - t
        for bucket in (self._api, self._own):
            if bucket is not None:
                bucket.refill(t)
                wait = max(wait, bucket.wait())
        return wait

    def after(self, status: int, headers: httpx2.Headers) -> None:
        """Learn from an answer: the bucket's state, and a 429's retry-after."""
        t = time.monotonic()
        with self._lock:
            self._learn(t, headers)
            if status == 429 and (calls_exhausted(headers) or _remaining(headers) is None):
                self._blocked_until = max(self._blocked_until, t + _retry_after(headers))
                if self._api is not None:
                    self._api.tokens = min(self._api.tokens, 0.0)

    def _learn(self, t: float, headers: httpx2.Headers) -> None:
        limit = _number(headers.get(f"{HEADER}limit"))
        remaining = _number(headers.get(f"{HEADER}remaining"))
        if limit is None or remaining is None or limit <= 0:
            return
        full_in = _seconds_until(headers.get(f"{HEADER}reset"))
        if self._api is None:
            self._api = _Bucket(limit, limit / SECONDS_PER_MINUTE, remaining)
        self._api.capacity = limit
        if full_in is not None and full_in > 0 and remaining < limit:
            self._api.rate = (limit - remaining) / full_in
        self._api.refill(t)
        # our own count already took the calls sent since; the API's caps it
        self._api.tokens = min(self._api.tokens, remaining)


def calls_exhausted(headers: httpx2.Headers) -> bool:
    """Whether an answer says no call is left this minute: a 429 that says so is the
    per-minute limit, not another limit such as the queued requests."""
    remaining = _remaining(headers)
    return remaining is not None and remaining < 1


def _remaining(headers: httpx2.Headers) -> float | None:
    return _number(headers.get(f"{HEADER}remaining"))


def _retry_after(headers: httpx2.Headers) -> float:
    return max(0.0, min(_number(headers.get("retry-after")) or 1.0, MAX_WAIT_S))


def _number(text: str | None) -> float | None:
    try:
        return None if text is None else float(text)
    except ValueError:
        return None


def _seconds_until(text: str | None) -> float | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.timestamp() - time.time()


_pacers: dict[str, Pacer] = {}
_pacers_lock = threading.Lock()


def pacer_for(url: httpx2.URL) -> Pacer:
    """The process's pacer for the API host of `url`."""
    key = f"{url.scheme}://{url.host}:{url.port}"
    with _pacers_lock:
        return _pacers.setdefault(key, Pacer())


def event_hooks(per_minute: int | None) -> dict[str, list[Callable[[Any], None]]]:
    """httpx event hooks that pace every call to the batch endpoints."""

    def on_request(request: httpx2.Request) -> None:
        if request.url.path.startswith(BATCH_PATH):
            pacer_for(request.url).before(per_minute)

    def on_response(response: httpx2.Response) -> None:
        if response.request.url.path.startswith(BATCH_PATH):
            pacer_for(response.request.url).after(response.status_code, response.headers)

    return {"request": [on_request], "response": [on_response]}
