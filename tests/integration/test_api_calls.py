"""How often a job calls the API: looks at its batches grow with time, not with their
number, and every call is paced by the limits the API states."""

from __future__ import annotations

import time
from pathlib import Path

from anthropic_batch_request_util.emulator import Emulator, EmulatorConfig

from .helpers import read_results, run_abr, write_original

POLL_S = 0.25  #: seconds between two looks at a job's batches in these tests


def _run(emulator: Emulator, tmp_path: Path, n: int, **env: str) -> float:
    """Run a job of `n` requests to the end; its wall time."""
    source = write_original(tmp_path / f"in-{n}.json", n)
    started = time.monotonic()
    done = run_abr(
        "run",
        str(source),
        emulator=emulator,
        timeout=180,
        ABR_BATCH_POLL_INTERVAL=str(POLL_S),
        ABR_BATCH_POLL_MAX_INTERVAL=str(POLL_S),
        ABR_STORAGE_BASE_DIR=str(tmp_path / "out"),
        **env,
    )
    assert done.returncode == 0, done.stderr
    results = read_results(next((tmp_path / "out" / "results").glob("*.jsonl")))
    assert len(results) == n
    return time.monotonic() - started


def test_fifty_batches_in_flight_are_watched_by_list_pages_not_one_call_each(
    tmp_path: Path,
) -> None:
    # Given a job of 50 batches that all stay in flight for a few seconds
    config = EmulatorConfig(processing_seconds=3.0, seed=2, retry_after=0.0)
    with Emulator(config, host="127.0.0.1", port=0) as emulator:
        # When it runs to the end
        wall = _run(emulator, tmp_path, 100, ABR_BATCH_CHUNK_SIZE="2")
        calls = emulator.stats()["calls"]

    # Then every batch was created and fetched once, and the looks at them were list
    # pages, as many as the time allows, not one per batch and look
    assert calls["create"] == 50 and calls["results"] == 50
    assert calls["retrieve"] == 0
    assert calls["list"] <= wall / POLL_S + 3
    assert calls["list"] < 50


def test_a_job_under_a_tight_per_minute_limit_is_paced_not_refused(tmp_path: Path) -> None:
    # Given an API that allows 6 calls to the batch endpoints per 2 seconds
    config = EmulatorConfig(
        processing_seconds=0.5,
        seed=3,
        retry_after=0.0,
        rate_limit_per_window=6,
        rate_limit_window_s=2.0,
    )
    with Emulator(config, host="127.0.0.1", port=0) as emulator:
        # When a job of 10 batches runs, looking at them 4 times a second if it could
        _run(emulator, tmp_path, 50, ABR_BATCH_CHUNK_SIZE="5")
        stats = emulator.stats(submissions=True)

    # Then its calls were spread out: a handful of 429s at most, each request sent once
    assert stats["http_429_sent"]["rate_limit"] <= 3
    assert stats["calls"]["create"] == 10
    assert set(stats["submissions"].values()) == {1}


def test_a_full_queue_is_waited_for_not_hammered(tmp_path: Path) -> None:
    # Given an API that queues at most 20 requests, and a job of 8 batches of 5
    config = EmulatorConfig(
        processing_seconds=1.0, seed=4, retry_after=0.0, queued_requests_limit=20
    )
    with Emulator(config, host="127.0.0.1", port=0) as emulator:
        # When it runs
        _run(emulator, tmp_path, 40, ABR_BATCH_CHUNK_SIZE="5")
        stats = emulator.stats(submissions=True)

    # Then creates waited for a batch to end: no batch was refused more than once
    refused = stats["http_429_sent"]["queued_limit"]
    assert refused <= 1, refused
    assert stats["calls"]["create"] == 8 + refused
    assert set(stats["submissions"].values()) == {1}
