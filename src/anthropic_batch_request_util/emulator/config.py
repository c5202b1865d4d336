"""The emulator's settings, with defaults that behave like the real API (only faster)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .faults import check_faults

PROCESSING_S = 1.0  #: seconds a batch takes from create to ended
CANCEL_S = 0.1  #: seconds a canceled batch spends in `canceling` before it ends
EXPIRE_AFTER_S = 86_400.0  #: seconds from create to `expires_at` (the API's 24 h window)
RETRY_AFTER_S = 1.0  #: seconds sent in `retry-after` with an injected 429
MAX_REQUESTS = 100_000  #: requests allowed in one batch
MAX_BATCH_BYTES = 256 * 1024 * 1024  #: bytes allowed in one batch create body (256 MB)
MAX_MESSAGE_BYTES = 32 * 1024 * 1024  #: bytes allowed in any other request body (32 MB)
MIN_CACHE_TOKENS = 0  #: tokens a prompt prefix needs before a cache breakpoint counts
RATE_LIMIT_WINDOW_S = 60.0  #: seconds in which `rate_limit_per_window` calls are allowed

#: the limits that can also be changed while the emulator runs (`POST /_admin/limits`)
LIMIT_FIELDS = (
    "rate_limit_per_window",
    "rate_limit_window_s",
    "queued_requests_limit",
    "not_found_after_create_s",
    "latency_s",
)
_OPTIONAL_COUNTS = ("rate_limit_per_window", "queued_requests_limit")


def check_limits(values: Mapping[str, Any]) -> dict[str, Any]:
    """The limits as a checked dict; ValueError names an unknown limit or a bad value."""
    checked: dict[str, Any] = {}
    for name, value in values.items():
        if name not in LIMIT_FIELDS:
            raise ValueError(f"unknown limit {name!r} (known: {', '.join(LIMIT_FIELDS)})")
        if name in _OPTIONAL_COUNTS:
            if value is not None and (type(value) is not int or value < 1):
                raise ValueError(f"{name} must be an integer >= 1 or null, not {value!r}")
        elif isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ValueError(f"{name} must be a number >= 0, not {value!r}")
        elif name == "rate_limit_window_s" and value <= 0:
            raise ValueError(f"rate_limit_window_s must be > 0, not {value!r}")
        checked[name] = value if name in _OPTIONAL_COUNTS else float(value)
    return checked


@dataclass
class EmulatorConfig:
    """How the emulator behaves. Every field has a default; tests lower the limits.

    `faults` maps fault names (see `faults.FAULTS`) to fractions in [0, 1].
    `public_url` is the base of `results_url` when clients reach the emulator through
    another address (a proxy, a container port); by default the request's Host is used.
    `api_key`, when set, is the only key accepted; by default any non-empty key is.

    The API's limits (see `limits`): `rate_limit_per_window` calls to the batch endpoints
    per `rate_limit_window_s` (None: no limit); `queued_requests_limit` requests in batches
    still processing (None: no limit); for `not_found_after_create_s` after its create, a
    batch's retrieve and results answer 404; `latency_s` is added to every `/v1` call.
    """

    processing_seconds: float = PROCESSING_S
    seed: int = 0
    max_requests_per_batch: int = MAX_REQUESTS
    max_batch_bytes: int = MAX_BATCH_BYTES
    max_message_bytes: int = MAX_MESSAGE_BYTES
    retry_after: float = RETRY_AFTER_S
    expire_after_seconds: float = EXPIRE_AFTER_S
    cancel_seconds: float = CANCEL_S
    min_cache_tokens: int = MIN_CACHE_TOKENS
    shuffle_results: bool = True
    faults: dict[str, float] = field(default_factory=dict)
    public_url: str | None = None
    api_key: str | None = None
    rate_limit_per_window: int | None = None
    rate_limit_window_s: float = RATE_LIMIT_WINDOW_S
    queued_requests_limit: int | None = None
    not_found_after_create_s: float = 0.0
    latency_s: float = 0.0

    def __post_init__(self) -> None:
        self.faults = check_faults(self.faults)
        for name, value in check_limits(self.limits()).items():
            setattr(self, name, value)
        for name in ("processing_seconds", "retry_after", "cancel_seconds", "min_cache_tokens"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, not {getattr(self, name)}")
        for name in ("max_requests_per_batch", "max_batch_bytes", "max_message_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, not {getattr(self, name)}")
        if self.expire_after_seconds <= 0:
            raise ValueError(f"expire_after_seconds must be > 0, not {self.expire_after_seconds}")
        if self.public_url is not None:
            self.public_url = self.public_url.rstrip("/")

    def limits(self) -> dict[str, Any]:
        """The limit fields and their values."""
        return {name: getattr(self, name) for name in LIMIT_FIELDS}
