"""Cut a stream of requests into batches, by request count and by body bytes.

The API takes at most `API_MAX_REQUESTS` requests and `API_MAX_BYTES` of create body per
batch; the settings may lower both. A chunk is closed when the next request would pass
either limit, counting the ``{"requests":[...]}`` envelope and the commas exactly, so the
body `batch_body` builds for a chunk never exceeds the byte limit. Only sizes are tracked:
memory stays flat however many requests pass through.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from ..limits import API_MAX_BYTES, API_MAX_REQUESTS

if TYPE_CHECKING:
    from ..config import Settings

__all__ = [
    "API_MAX_BYTES",
    "API_MAX_REQUESTS",
    "ENVELOPE_BYTES",
    "ChunkCutter",
    "batch_body",
    "batch_body_parts",
    "chunk_limits",
    "effective_limits",
    "largest_request",
]

_BODY_HEAD = b'{"requests":['
_BODY_TAIL = b"]}"
ENVELOPE_BYTES = len(_BODY_HEAD + _BODY_TAIL)  #: bytes of a create body around the requests
_SEPARATOR_BYTES = len(b",")  #: bytes between two requests in a create body


def effective_limits(max_size: int, chunk_size: int, max_payload_size: int) -> tuple[int, int]:
    """The (requests, body bytes) one chunk may hold, from the settings and the API limits.

    `max_size` and `chunk_size` are the settings batch.max_size and batch.chunk_size (both
    cap requests per batch); `max_payload_size` is api.max_payload_size in bytes.
    """
    for name, value in (
        ("max_size", max_size),
        ("chunk_size", chunk_size),
        ("max_payload_size", max_payload_size),
    ):
        if value < 1:
            raise ValueError(f"{name} must be positive, not {value}")
    return min(chunk_size, max_size, API_MAX_REQUESTS), min(max_payload_size, API_MAX_BYTES)


def chunk_limits(settings: Settings) -> tuple[int, int]:
    """The (requests, body bytes) one chunk may hold under these settings."""
    batch = settings.batch
    return effective_limits(batch.max_size, batch.chunk_size, settings.api.max_payload_size)


def largest_request(max_bytes: int) -> int:
    """The largest request body, in bytes, that fits alone in a chunk of `max_bytes`."""
    return max_bytes - ENVELOPE_BYTES


class ChunkCutter:
    """Cuts a stream of requests into chunks by count and by serialized body bytes.

    Feed each request's body size to `place`, in input order; it answers the chunk the
    request goes to. A chunk is filled before the next one starts.
    """

    def __init__(self, max_count: int, max_bytes: int) -> None:
        if max_count < 1:
            raise ValueError(f"max_count must be positive, not {max_count}")
        if largest_request(max_bytes) < 1:
            raise ValueError(f"max_bytes must exceed the {ENVELOPE_BYTES}-byte envelope")
        self._max_count = max_count
        self._max_bytes = max_bytes
        self._chunks = 0
        self._count = 0  # requests in the current chunk
        self._bytes = 0  # create body bytes of the current chunk, envelope included

    def place(self, size: int) -> int:
        """The 0-based chunk for the next request, whose body is `size` bytes.

        Precondition: the request fits alone (`size <= largest_request(max_bytes)`); the
        input reader rejects larger ones first. A violation raises `ValueError`.
        """
        if not 0 < size <= largest_request(self._max_bytes):
            raise ValueError(
                f"a request of {size:,} bytes cannot fit in a batch of {self._max_bytes:,} bytes"
            )
        grown = self._bytes + _SEPARATOR_BYTES + size
        if self._count == 0 or self._count >= self._max_count or grown > self._max_bytes:
            self._chunks += 1
            self._count = 0
            grown = ENVELOPE_BYTES + size
        self._count += 1
        self._bytes = grown
        return self._chunks - 1

    @property
    def chunks(self) -> int:
        """Chunks started so far."""
        return self._chunks


def batch_body(bodies: Iterable[bytes]) -> bytes:
    """The batch create body holding `bodies`: ``{"requests":[body,body,...]}``."""
    return _BODY_HEAD + b",".join(bodies) + _BODY_TAIL


def batch_body_parts(bodies: Iterable[bytes]) -> Iterator[bytes]:
    """`batch_body(bodies)` in pieces, for a body written out as it is made, not held."""
    yield _BODY_HEAD
    for i, body in enumerate(bodies):
        if i:
            yield b","
        yield body
    yield _BODY_TAIL
