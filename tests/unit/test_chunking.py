"""Chunking: limits, cutting by count and by bytes, the create body."""

from __future__ import annotations

import random
from pathlib import Path

import orjson
import pytest

from anthropic_batch_request_util.inputs import RequestDefaults, read_requests
from anthropic_batch_request_util.inputs.chunking import (
    API_MAX_BYTES,
    API_MAX_REQUESTS,
    ENVELOPE_BYTES,
    ChunkCutter,
    batch_body,
    effective_limits,
    largest_request,
)


def cut(cutter: ChunkCutter, bodies: list[bytes]) -> list[list[bytes]]:
    """The chunks `cutter` makes of `bodies`, in order."""
    chunks: list[list[bytes]] = []
    for body in bodies:
        number = cutter.place(len(body))
        if number == len(chunks):
            chunks.append([])
        assert number == len(chunks) - 1, "a chunk is filled before the next one starts"
        chunks[number].append(body)
    assert cutter.chunks == len(chunks)
    return chunks


def assert_tight(chunks: list[list[bytes]], max_count: int, max_bytes: int) -> None:
    """Each chunk is within the limits, and its successor's first request would not fit."""
    for chunk, following in zip(chunks, [*chunks[1:], None], strict=True):
        assert 1 <= len(chunk) <= max_count
        assert len(batch_body(chunk)) <= max_bytes
        if following is not None:
            grown = [*chunk, following[0]]
            assert len(grown) > max_count or len(batch_body(grown)) > max_bytes


# --- limits -------------------------------------------------------------------------------


def test_api_limits() -> None:
    assert API_MAX_REQUESTS == 100_000
    assert API_MAX_BYTES == 256 * 1024 * 1024
    assert ENVELOPE_BYTES == len(b'{"requests":[]}') == 15


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ((10_000, 1_000, 104_857_600), (1_000, 104_857_600)),
        ((500, 1_000, 1_000_000), (500, 1_000_000)),
        ((1_000_000, 200_000, 10**12), (API_MAX_REQUESTS, API_MAX_BYTES)),
    ],
)
def test_effective_limits_take_the_smallest(
    settings: tuple[int, int, int], expected: tuple[int, int]
) -> None:
    assert effective_limits(*settings) == expected


@pytest.mark.parametrize("settings", [(0, 1, 100), (1, 0, 100), (1, 1, 0), (-1, 1, 100)])
def test_effective_limits_refuse_non_positive_settings(settings: tuple[int, int, int]) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        effective_limits(*settings)


def test_largest_request_leaves_room_for_the_envelope() -> None:
    assert largest_request(1_000) == 1_000 - ENVELOPE_BYTES
    assert len(batch_body([b"x" * largest_request(1_000)])) == 1_000


# --- the create body ----------------------------------------------------------------------


def test_batch_body_joins_the_requests() -> None:
    bodies = [orjson.dumps({"custom_id": f"r{i}", "params": {"n": i}}) for i in range(3)]

    body = batch_body(iter(bodies))

    assert body == b'{"requests":[' + b",".join(bodies) + b"]}"
    assert orjson.loads(body) == {"requests": [orjson.loads(b) for b in bodies]}


def test_batch_body_of_nothing_is_the_envelope() -> None:
    assert batch_body([]) == b'{"requests":[]}'


# --- cutting ------------------------------------------------------------------------------


def test_no_chunk_before_the_first_request() -> None:
    assert ChunkCutter(10, 1_000).chunks == 0


def test_cuts_by_count() -> None:
    cutter = ChunkCutter(max_count=3, max_bytes=10_000)

    numbers = [cutter.place(10) for _ in range(10)]

    assert numbers == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3]
    assert cutter.chunks == 4


def test_cuts_by_bytes_at_the_exact_boundary() -> None:
    # Three 10-byte requests make a body of 15 + 3*10 + 2 commas = 47 bytes.
    bodies = [b"x" * 10] * 7

    exact = cut(ChunkCutter(max_count=100, max_bytes=47), bodies)
    one_short = cut(ChunkCutter(max_count=100, max_bytes=46), bodies)

    assert [len(c) for c in exact] == [3, 3, 1]
    assert len(batch_body(exact[0])) == 47
    assert [len(c) for c in one_short] == [2, 2, 2, 1]


def test_a_request_that_fits_alone_exactly_gets_its_own_chunk() -> None:
    cutter = ChunkCutter(max_count=100, max_bytes=100)

    assert [cutter.place(n) for n in (10, largest_request(100), 1)] == [0, 1, 2]


@pytest.mark.parametrize("size", [0, -1, largest_request(100) + 1])
def test_a_request_that_cannot_fit_is_refused(size: int) -> None:
    cutter = ChunkCutter(max_count=100, max_bytes=100)

    with pytest.raises(ValueError, match="cannot fit"):
        cutter.place(size)


@pytest.mark.parametrize(("max_count", "max_bytes"), [(0, 100), (1, ENVELOPE_BYTES)])
def test_impossible_limits_are_refused(max_count: int, max_bytes: int) -> None:
    with pytest.raises(ValueError):
        ChunkCutter(max_count, max_bytes)


@pytest.mark.parametrize("seed", range(5))
def test_every_chunk_is_full_by_count_or_bytes(seed: int) -> None:
    rng = random.Random(seed)
    max_count, max_bytes = rng.randint(1, 40), rng.randint(200, 3_000)
    bodies = [b"y" * rng.randint(1, largest_request(max_bytes)) for _ in range(500)]

    chunks = cut(ChunkCutter(max_count, max_bytes), bodies)

    assert [body for chunk in chunks for body in chunk] == bodies
    assert_tight(chunks, max_count, max_bytes)


def test_real_requests_make_create_bodies_within_the_limits(tmp_path: Path) -> None:
    # Given requests read from an input file
    conversations = [[{"role": "user", "content": "q" * (i * 37 % 300 + 1)}] for i in range(300)]
    path = tmp_path / "batch.json"
    path.write_bytes(orjson.dumps({"messages_list": conversations}))
    defaults = RequestDefaults("claude-test", 64, None, False, "ephemeral", largest_request(4_000))
    bodies = [request.body for request in read_requests(path, defaults)]

    # When they are cut
    chunks = cut(ChunkCutter(50, 4_000), bodies)

    # Then each create body is valid JSON within the limits, in input order
    assert_tight(chunks, 50, 4_000)
    ids = [r["custom_id"] for c in chunks for r in orjson.loads(batch_body(c))["requests"]]
    assert ids == [f"request_{i}" for i in range(300)]
