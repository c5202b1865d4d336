"""The limits the Message Batches API states, in one place: settings check against them and
chunking cuts by them. Settings may lower them, never raise them."""

from __future__ import annotations

__all__ = ["API_MAX_BYTES", "API_MAX_REQUESTS"]

API_MAX_REQUESTS = 100_000  #: requests the API accepts in one batch
API_MAX_BYTES = 256 * 1024 * 1024  #: bytes the API accepts in one batch create body
