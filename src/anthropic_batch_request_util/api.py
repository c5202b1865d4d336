"""The one door to the Anthropic API: client factory, raw calls, the results download, and
error classification (the only place that looks at HTTP statuses or SDK error bodies).

Only the official `anthropic` SDK talks to the API. `ANTHROPIC_BASE_URL` is honoured as the
SDK honours it, which is how tests, benchmarks and the demo reach the built-in emulator.
The API key is handed to the SDK and never stored, logged or put in a task message.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO

import anthropic
import httpx2
from anthropic.types.messages import MessageBatch

from .config import Settings
from .pacing import calls_exhausted, event_hooks

__all__ = [
    "DOWNLOAD_ERRORS",
    "HttpFailure",
    "classify_http_error",
    "create_batch",
    "download_results",
    "error_message",
    "error_type",
    "is_not_found",
    "make_client",
    "queue_full",
    "refuses_key",
    "retry_after_seconds",
]

DOWNLOAD_CHUNK_BYTES = 1 << 16  #: bytes read from the results stream at a time
#: bytes of a create body read from its file and sent at a time: few, large sends, since
#: each takes the GIL back, which another busy thread may hold for up to 5 ms
UPLOAD_CHUNK_BYTES = 4 << 20
#: what a broken download can raise: API errors, a cut stream, a full disk
DOWNLOAD_ERRORS = (anthropic.AnthropicError, httpx2.HTTPError, OSError)

#: seconds to wait after an HTTP failure when the server gives no retry-after
BACKOFF_BASE_S = 0.5
BACKOFF_MAX_S = 60.0  #: seconds; the longest wait between two HTTP attempts


class HttpFailure(StrEnum):
    """What an exception from the SDK means for the caller."""

    RETRY = "retry"  #: not processed (429 and the like): wait, then send again
    AMBIGUOUS = "ambiguous"  #: may have been processed (dropped connection, 5xx, timeout)
    FATAL = "fatal"  #: will not succeed if repeated (400, 401, 403, 404, 413)


def make_client(
    settings: Settings, api_key: str, *, max_retries: int | None = None
) -> anthropic.Anthropic:
    """An SDK client speaking the configured API version and betas, its calls to the batch
    endpoints paced by the API's limits (pacing.py)."""
    headers = {"anthropic-version": settings.api.version}
    if settings.api.beta_features:
        headers["anthropic-beta"] = ",".join(settings.api.beta_features)
    return anthropic.Anthropic(
        api_key=api_key,
        timeout=float(settings.api.timeout),
        max_retries=settings.api.max_retries if max_retries is None else max_retries,
        default_headers=headers,
        # every call to the batch endpoints, the SDK's retries included, is paced
        http_client=_PacedHttpClient(event_hooks=event_hooks(settings.api.requests_per_minute)),
    )


class _PacedHttpClient(anthropic.DefaultHttpxClient):
    """The SDK's default HTTP client, closed (its sockets too) when it is collected, as
    the SDK does for the client it makes itself."""

    def __del__(self) -> None:
        if not self.is_closed:
            with contextlib.suppress(Exception):  # nothing to report to at collection time
                self.close()


def classify_http_error(error: BaseException) -> HttpFailure:
    """One table for every failure the SDK can raise; never by message text."""
    if isinstance(error, anthropic.APITimeoutError | anthropic.APIConnectionError):
        return HttpFailure.AMBIGUOUS
    if isinstance(error, anthropic.APIStatusError):
        status = error.status_code
        if status in (408, 409, 429):
            return HttpFailure.RETRY
        if status == 529:
            return HttpFailure.RETRY  # overloaded: rejected before processing
        if status >= 500:
            return HttpFailure.AMBIGUOUS
        return HttpFailure.FATAL
    return HttpFailure.AMBIGUOUS


def retry_after_seconds(error: BaseException, attempt: int) -> float:
    """How long to wait before attempt `attempt + 1`: the server's word, else backoff."""
    if isinstance(error, anthropic.APIStatusError):
        value = error.response.headers.get("retry-after")
        try:
            if value is not None and float(value) >= 0:
                return min(float(value), BACKOFF_MAX_S)
        except ValueError:
            pass
    return float(min(BACKOFF_BASE_S * 2**attempt, BACKOFF_MAX_S))


def create_batch(client: anthropic.Anthropic, body: bytes | Path) -> MessageBatch:
    """`batches.create` with a body serialized once, by us, instead of re-encoded by the SDK.
    A body in a file is streamed from it (its length sent as Content-Length), 64 KB at a
    time, so that a 256 MB body costs no memory; the file is opened afresh for each call."""
    if isinstance(body, bytes):
        return _post_batch(client, body)
    with body.open("rb") as handle:
        return _post_batch(client, _BodyFile(handle))


class _BodyFile:
    """A body file as httpx reads it (its length from tell/seek, for Content-Length), read
    `UPLOAD_CHUNK_BYTES` at a time instead of httpx's 64 KB."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle

    def read(self, size: int = -1) -> bytes:
        return self._handle.read(max(size, UPLOAD_CHUNK_BYTES))

    def tell(self) -> int:
        return self._handle.tell()

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._handle.seek(offset, whence)

    def __iter__(self) -> Iterator[bytes]:
        while data := self.read():
            yield data


def _post_batch(client: anthropic.Anthropic, content: bytes | _BodyFile) -> MessageBatch:
    return client.post(
        "/v1/messages/batches",
        content=content,
        cast_to=MessageBatch,
        options={"headers": {"content-type": "application/json"}},
    )


def download_results(client: anthropic.Anthropic, batch_id: str) -> Path:
    """Stream an ended batch's results into a temporary file (not held in memory); the
    caller checks they are whole and removes the file.

    The documented results URL is asked for directly: the SDK's `results` would first
    retrieve the batch for it, one more call per batch against the rate limit."""
    fd, name = tempfile.mkstemp(prefix=f"abr-{batch_id}-", suffix=".jsonl")
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            response = client.get(
                f"/v1/messages/batches/{batch_id}/results",
                cast_to=httpx2.Response,
                options={"headers": {"Accept": "application/binary"}},
                stream=True,
            )
            try:
                for data in response.iter_bytes(DOWNLOAD_CHUNK_BYTES):
                    handle.write(data)
            finally:
                response.close()
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


def queue_full(error: BaseException) -> bool:
    """Whether a 429 on create may be the queued-requests limit: unless the API says no
    call was left this minute, sending again must wait for a batch to end, not a moment."""
    if not isinstance(error, anthropic.RateLimitError):
        return False
    return not calls_exhausted(error.response.headers)


def refuses_key(error: BaseException) -> bool:
    """Whether the API refused the credentials (401, 403): nothing works until the user acts."""
    return isinstance(error, anthropic.AuthenticationError | anthropic.PermissionDeniedError)


def is_not_found(error: BaseException) -> bool:
    return isinstance(error, anthropic.NotFoundError)


def error_message(error: BaseException) -> str:
    """The API's own message for a failed call, else its HTTP status."""
    body = getattr(error, "body", None)
    if isinstance(body, dict):
        inner = body.get("error")
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
    status = getattr(error, "status_code", None)
    return f"HTTP {status}" if status is not None else str(error) or type(error).__name__


def error_type(error: BaseException, default: str = "invalid_request_error") -> str:
    """The API's error type for a failed call (e.g. invalid_request_error)."""
    body = getattr(error, "body", None)
    if isinstance(body, dict):
        inner = body.get("error")
        if isinstance(inner, dict) and inner.get("type"):
            return str(inner["type"])
    return str(getattr(error, "type", None) or default)
