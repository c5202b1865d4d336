"""The one door to the Anthropic API: client factory, raw calls and error classification.

Only the official `anthropic` SDK talks to the API. `ANTHROPIC_BASE_URL` is honoured as the
SDK honours it, which is how tests, benchmarks and the demo reach the built-in emulator.
The API key is handed to the SDK and never stored, logged or put in a task message.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import Any

import anthropic
import orjson
from anthropic.types.messages import MessageBatch

from .config import Settings

__all__ = [
    "HttpFailure",
    "ResultDisposition",
    "classify_http_error",
    "classify_result",
    "create_batch",
    "make_client",
    "retry_after_seconds",
    "stream_results",
]

RETRYABLE_RESULT_ERRORS = frozenset({"api_error", "overloaded_error"})
#: seconds to wait after an HTTP failure when the server gives no retry-after
BACKOFF_BASE_S = 0.5
BACKOFF_MAX_S = 60.0  #: seconds; the longest wait between two HTTP attempts


class HttpFailure(StrEnum):
    """What an exception from the SDK means for the caller."""

    RETRY = "retry"  #: not processed (429 and the like): wait, then send again
    AMBIGUOUS = "ambiguous"  #: may have been processed (dropped connection, 5xx, timeout)
    FATAL = "fatal"  #: will not succeed if repeated (400, 401, 403, 404, 413)


class ResultDisposition(StrEnum):
    """What to do with one result row of a batch."""

    FINAL = "final"  #: the request has its answer (or an error retrying cannot fix)
    RETRY = "retry"  #: send it again in a new chunk, while attempts remain


def make_client(
    settings: Settings, api_key: str, *, max_retries: int | None = None
) -> anthropic.Anthropic:
    """An SDK client speaking the configured API version and betas."""
    headers = {"anthropic-version": settings.api.version}
    if settings.api.beta_features:
        headers["anthropic-beta"] = ",".join(settings.api.beta_features)
    return anthropic.Anthropic(
        api_key=api_key,
        timeout=float(settings.api.timeout),
        max_retries=settings.api.max_retries if max_retries is None else max_retries,
        default_headers=headers,
    )


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


def classify_result(result_type: str, error_type: str | None) -> ResultDisposition:
    """Retry by error type: server trouble and expiry are retried; bad requests never."""
    if result_type == "expired":
        return ResultDisposition.RETRY
    if result_type == "errored" and error_type in RETRYABLE_RESULT_ERRORS:
        return ResultDisposition.RETRY
    return ResultDisposition.FINAL


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


def create_batch(client: anthropic.Anthropic, body: bytes) -> MessageBatch:
    """`batches.create` with a body serialized once, by us, instead of re-encoded by the SDK."""
    return client.post(
        "/v1/messages/batches",
        content=body,
        cast_to=MessageBatch,
        options={"headers": {"content-type": "application/json"}},
    )


@contextmanager
def stream_results(
    client: anthropic.Anthropic, batch_id: str
) -> Iterator[Iterator[dict[str, Any]]]:
    """The results of an ended batch as decoded JSON lines, streamed (not held in memory)."""
    with client.messages.batches.with_streaming_response.results(batch_id) as response:
        yield (orjson.loads(line) for line in response.iter_lines() if line)
