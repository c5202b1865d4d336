"""The distributed deployment: real Redis, real `abr worker` processes, real PostgreSQL,
the emulator over HTTP. Each test has its own Redis database and PostgreSQL database.

Locally these skip when Redis or PostgreSQL is down; in CI (CI=true) they fail instead."""

from __future__ import annotations

import random
import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis

from anthropic_batch_request_util.emulator import Emulator, EmulatorConfig
from anthropic_batch_request_util.engine.worker import READY_LINE

from .helpers import (
    abr_command,
    abr_env,
    read_results,
    run_abr,
    summary,
    unavailable,
    wait_for_batches,
    write_original,
)

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
DISTRIBUTED = {
    "ABR_CELERY_RECONCILE_INTERVAL": "0.5",
    "ABR_CELERY_STALE_AFTER": "2",
    "ABR_CELERY_WORKER_CONCURRENCY": "3",
}


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A Redis database of this test's own, empty before and after."""
    db = random.randint(1, 15)
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db)
    try:
        client.ping()
    except redis.exceptions.ConnectionError:
        unavailable("Redis")
    client.flushdb()
    yield f"redis://{REDIS_HOST}:{REDIS_PORT}/{db}"
    client.flushdb()
    client.close()


@contextmanager
def worker(name: str, env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    """An `abr worker debug` process, once it says it is ready; stopped afterwards."""
    process = subprocess.Popen(
        abr_command("worker", "debug", "--name", name, "--loglevel", "WARNING"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    ready = threading.Event()

    def follow() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            if READY_LINE in line:
                ready.set()

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    try:
        assert ready.wait(30), f"worker {name} did not start"
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        reader.join(5)
        if process.stdout is not None:
            process.stdout.close()


def _sent(emulator: Emulator) -> dict[str, int]:
    result: dict[str, int] = emulator.stats(submissions=True)["submissions"]
    return result


def _check_paid_once_per_attempt(lines: list[dict[str, Any]], sent: dict[str, int]) -> None:
    for line in lines:
        assert sent[line["custom_id"]] == line["attempts"], line["custom_id"]


def test_two_workers_finish_a_job_of_several_chunks(
    tmp_path: Path, redis_url: str, pg_url: str
) -> None:
    # Given two workers on Redis with the store in PostgreSQL, and an API with some faults
    faults = {"http_429": 0.05, "http_500": 0.05, "row_api_error": 0.1, "row_expired": 0.05}
    config = EmulatorConfig(processing_seconds=0.3, seed=11, retry_after=0.0, faults=faults)
    source = write_original(tmp_path / "two.json", 60)
    with Emulator(config, host="127.0.0.1", port=0) as emulator:
        env = abr_env(emulator, ABR_BROKER_URL=redis_url, ABR_DATABASE_URL=pg_url, **DISTRIBUTED)
        with worker("w1", env), worker("w2", env):
            # When a job of six chunks is run
            completed = run_abr(
                "run",
                str(source),
                "--json",
                emulator=emulator,
                timeout=180,
                ABR_BROKER_URL=redis_url,
                ABR_DATABASE_URL=pg_url,
                ABR_BATCH_CHUNK_SIZE="10",
                **DISTRIBUTED,
            )
        sent = _sent(emulator)

    # Then it finishes with one line per request, each paid once per attempt
    assert completed.returncode == 0, completed.stderr
    lines = read_results(Path(summary(completed)["results_path"]))
    assert [line["custom_id"] for line in lines] == [f"q_{i}" for i in range(60)]
    _check_paid_once_per_attempt(lines, sent)


@contextmanager
def _background_run(source: Path, env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        abr_command("run", str(source), "--json"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


def test_killed_worker_loses_nothing_and_pays_nothing_twice(
    tmp_path: Path, redis_url: str, pg_url: str
) -> None:
    config = EmulatorConfig(processing_seconds=1.0, seed=12, retry_after=0.0)
    source = write_original(tmp_path / "kill.json", 50)
    with Emulator(config, host="127.0.0.1", port=0) as emulator, ExitStack() as stack:
        env = abr_env(
            emulator,
            ABR_BROKER_URL=redis_url,
            ABR_DATABASE_URL=pg_url,
            ABR_BATCH_CHUNK_SIZE="5",
            **DISTRIBUTED,
        )
        doomed = stack.enter_context(worker("doomed", env))
        stack.enter_context(worker("survivor", env))
        run = stack.enter_context(_background_run(source, env))
        # When one worker is killed -9 in the middle of the job
        wait_for_batches(emulator, 3, timeout=60.0)
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(10)
        # Then the job still finishes
        out, err = run.communicate(timeout=120)
        sent = _sent(emulator)

    assert run.returncode == 0, err
    lines = read_results(
        Path(summary(subprocess.CompletedProcess([], 0, out, err))["results_path"])
    )
    assert len(lines) == 50 and {line["status"] for line in lines} == {"succeeded"}
    assert set(sent.values()) == {1}, "nothing may be submitted twice"


def test_flushed_redis_only_delays_the_job(tmp_path: Path, redis_url: str, pg_url: str) -> None:
    config = EmulatorConfig(processing_seconds=1.0, seed=13, retry_after=0.0)
    source = write_original(tmp_path / "flush.json", 30)
    with Emulator(config, host="127.0.0.1", port=0) as emulator, ExitStack() as stack:
        env = abr_env(
            emulator,
            ABR_BROKER_URL=redis_url,
            ABR_DATABASE_URL=pg_url,
            ABR_BATCH_CHUNK_SIZE="5",
            **DISTRIBUTED,
        )
        stack.enter_context(worker("w1", env))
        run = stack.enter_context(_background_run(source, env))
        # When Redis loses every queued message in the middle of the job
        wait_for_batches(emulator, 2, timeout=60.0)
        redis.Redis.from_url(redis_url).flushdb()
        # Then the job still finishes, and nothing was sent twice
        out, err = run.communicate(timeout=120)
        sent = _sent(emulator)

    assert run.returncode == 0, err
    lines = read_results(
        Path(summary(subprocess.CompletedProcess([], 0, out, err))["results_path"])
    )
    assert len(lines) == 30 and {line["status"] for line in lines} == {"succeeded"}
    assert set(sent.values()) == {1}


def _comparable(lines: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """What must not depend on the store: ids, answers, statuses, attempts, errors."""
    return [
        (line["custom_id"], line["status"], line.get("text"), line["attempts"], line.get("error"))
        for line in lines
    ]


def test_postgres_and_sqlite_stores_give_identical_results(
    tmp_path: Path, redis_url: str, pg_url: str
) -> None:
    faults = {"row_api_error": 0.1, "row_invalid": 0.1, "row_expired": 0.05}
    source = write_original(tmp_path / "same.json", 40)
    results = {}
    for store, url in (("postgres", pg_url), ("sqlite", f"sqlite:///{tmp_path / 'other.sqlite3'}")):
        config = EmulatorConfig(processing_seconds=0.2, seed=21, retry_after=0.0, faults=faults)
        with Emulator(config, host="127.0.0.1", port=0) as emulator:
            env = abr_env(emulator, ABR_BROKER_URL=redis_url, ABR_DATABASE_URL=url, **DISTRIBUTED)
            with worker(store, env):
                completed = run_abr(
                    "run",
                    str(source),
                    "--json",
                    "--output",
                    str(tmp_path / store),
                    emulator=emulator,
                    timeout=120,
                    ABR_BROKER_URL=redis_url,
                    ABR_DATABASE_URL=url,
                    ABR_BATCH_CHUNK_SIZE="10",
                    **DISTRIBUTED,
                )
        assert completed.returncode == 0, completed.stderr
        results[store] = _comparable(read_results(Path(summary(completed)["results_path"])))

    assert results["postgres"] == results["sqlite"]
    assert {status for _, status, *_ in results["sqlite"]} >= {"succeeded", "errored"}
