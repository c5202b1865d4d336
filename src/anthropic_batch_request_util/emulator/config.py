"""The emulator's settings, with defaults that behave like the real API (only faster)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .faults import check_faults

PROCESSING_S = 1.0  #: seconds a batch takes from create to ended
CANCEL_S = 0.1  #: seconds a canceled batch spends in `canceling` before it ends
EXPIRE_AFTER_S = 86_400.0  #: seconds from create to `expires_at` (the API's 24 h window)
RETRY_AFTER_S = 1.0  #: seconds sent in `retry-after` with an injected 429
MAX_REQUESTS = 100_000  #: requests allowed in one batch
MAX_BATCH_BYTES = 256 * 1024 * 1024  #: bytes allowed in one batch create body (256 MB)
MAX_MESSAGE_BYTES = 32 * 1024 * 1024  #: bytes allowed in any other request body (32 MB)
MIN_CACHE_TOKENS = 0  #: tokens a prompt prefix needs before a cache breakpoint counts


@dataclass
class EmulatorConfig:
    """How the emulator behaves. Every field has a default; tests lower the limits.

    `faults` maps fault names (see `faults.FAULTS`) to fractions in [0, 1].
    `public_url` is the base of `results_url` when clients reach the emulator through
    another address (a proxy, a container port); by default the request's Host is used.
    `api_key`, when set, is the only key accepted; by default any non-empty key is.
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

    def __post_init__(self) -> None:
        self.faults = check_faults(self.faults)
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
