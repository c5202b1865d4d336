"""What the emulator puts on the wire: ids, timestamps, statuses and the error envelope."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import orjson

#: the Bitcoin base58 alphabet the API's ids are written in
BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
ID_DIGITS = 22  #: base58 digits after the `01` of an id (58**22 > 2**128)

#: `anthropic-version` values the API accepts
API_VERSIONS = frozenset({"2023-01-01", "2023-06-01", "2026-10-21"})
#: the version that removed `temperature`, `top_p` and `top_k`
VERSION_WITHOUT_SAMPLING = "2026-10-21"

_ids = random.SystemRandom()


class ProcessingStatus(StrEnum):
    """Where a message batch stands: `processing_status` of a MessageBatch."""

    IN_PROGRESS = "in_progress"
    CANCELING = "canceling"
    ENDED = "ended"


class ResultType(StrEnum):
    """How one request of a batch ended: `result.type` of a results line."""

    SUCCEEDED = "succeeded"
    ERRORED = "errored"
    CANCELED = "canceled"
    EXPIRED = "expired"


class ErrorType(StrEnum):
    """`error.type` of the error envelope, one per HTTP status the emulator sends."""

    INVALID_REQUEST = "invalid_request_error"
    AUTHENTICATION = "authentication_error"
    NOT_FOUND = "not_found_error"
    REQUEST_TOO_LARGE = "request_too_large"
    RATE_LIMIT = "rate_limit_error"
    API = "api_error"
    OVERLOADED = "overloaded_error"


#: the HTTP status each error type is sent with
STATUS_OF = {
    ErrorType.INVALID_REQUEST: 400,
    ErrorType.AUTHENTICATION: 401,
    ErrorType.NOT_FOUND: 404,
    ErrorType.REQUEST_TOO_LARGE: 413,
    ErrorType.RATE_LIMIT: 429,
    ErrorType.API: 500,
    ErrorType.OVERLOADED: 529,
}


class ApiFailure(Exception):
    """An API error answer: raised by a handler, sent as the error envelope."""

    def __init__(
        self, error_type: ErrorType, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.headers = headers or {}  #: sent with the error (e.g. `retry-after`)

    @property
    def status(self) -> int:
        """The HTTP status this error is sent with."""
        return STATUS_OF[self.error_type]


def invalid(message: str) -> ApiFailure:
    """A 400 `invalid_request_error` with this message."""
    return ApiFailure(ErrorType.INVALID_REQUEST, message)


def base58(number: int, digits: int) -> str:
    """`number` in base58, left-padded with the zero digit to `digits` characters."""
    out = []
    for _ in range(digits):
        number, digit = divmod(number, 58)
        out.append(BASE58[digit])
    return "".join(reversed(out))


def new_id(prefix: str) -> str:
    """A fresh random id shaped like the API's: `<prefix>_01` + 22 base58 characters."""
    return f"{prefix}_01{base58(_ids.getrandbits(128), ID_DIGITS)}"


def timestamp(epoch_seconds: float) -> str:
    """RFC 3339, UTC, microseconds and `Z`, as the API writes times."""
    moment = datetime.fromtimestamp(epoch_seconds, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def error_envelope(error_type: str, message: str, request_id: str | None) -> dict[str, Any]:
    """The API's error body: `{"type":"error","error":{type,message},"request_id":…}`."""
    return {
        "type": "error",
        "error": {"type": error_type, "message": message},
        "request_id": request_id,
    }


def dumps(value: Any) -> bytes:
    """Compact JSON, as the API sends it."""
    return orjson.dumps(value)


@dataclass
class Reply:
    """What a handler answers: a JSON body, or a stream of byte chunks.

    `cut` stops the stream without its end (the connection is cut); `drop` closes the
    connection without answering at all.
    """

    body: Any = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    stream: Iterator[bytes] | None = None
    content_type: str = "application/binary"  #: of a stream
    cut: bool = False
    drop: bool = False
