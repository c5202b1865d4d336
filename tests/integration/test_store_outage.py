"""A PostgreSQL job store that refuses connections mid-job, for real: the test's own
database is closed to connections and its sessions are ended while `abr run` works, then
opened again. The run waits it out, says so, and finishes by itself; nothing is sent twice.

Locally these skip when PostgreSQL is down; in CI (CI=true) they fail instead."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa

from anthropic_batch_request_util.emulator import Emulator, EmulatorConfig
from anthropic_batch_request_util.errors import StoreUnavailableError
from anthropic_batch_request_util.store import Store

from .helpers import (
    abr_command,
    abr_env,
    read_results,
    run_abr,
    wait_for_batches,
    write_original,
)

N = 60  #: requests per test job
CHUNK = "20"  #: requests per batch: three batches, so some are sent around the outage
OUTAGE_S = 6.0  #: seconds the database refuses connections
WAITING = "waiting for the job store"


@pytest.fixture
def slow_emulator() -> Iterator[Emulator]:
    """Batches that take a few seconds: time to close the store while they run."""
    config = EmulatorConfig(processing_seconds=3.0, seed=1, retry_after=0.0)
    with Emulator(config, host="127.0.0.1", port=0) as server:
        yield server


@contextmanager
def store_down(admin: sa.Engine, url: str) -> Iterator[None]:
    """The database of `url` refuses new connections and its open ones are ended, while
    the block runs (what a restart or a failover looks like to a client)."""
    name = url.rsplit("/", 1)[1]
    with admin.connect() as conn:
        conn.execute(sa.text(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false'))
        conn.execute(
            sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
            {"n": name},
        )
    try:
        yield
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true'))


def _job_id(url: str) -> str:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            return str(conn.execute(sa.text("SELECT id FROM jobs")).scalar_one())
    finally:
        engine.dispose()


def assert_unreachable(completed: subprocess.CompletedProcess[str]) -> None:
    """One line, exit 1, saying the store cannot be reached; no URL internals."""
    assert completed.returncode == 1, completed.stderr
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1, completed.stderr
    assert "cannot be reached" in lines[0], lines[0]
    assert "Traceback" not in completed.stderr
    assert "sqlalche" not in completed.stderr.lower()


def test_store_refusing_connections_mid_job_is_waited_out(
    slow_emulator: Emulator, pg_url: str, pg_admin: sa.Engine, tmp_path: Path
) -> None:
    # Given `abr run` (local workers) with its job store in PostgreSQL, batches running
    source = write_original(tmp_path / "questions.json", N)
    out = tmp_path / "out"
    env = {"ABR_DATABASE_URL": pg_url, "ABR_BATCH_CHUNK_SIZE": CHUNK}
    command = abr_command("run", str(source), "--output", str(out))
    with subprocess.Popen(
        command,
        env=abr_env(slow_emulator, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        wait_for_batches(slow_emulator, process=process)
        job_id = _job_id(pg_url)

        # When the database refuses connections for a few seconds, then takes them again
        with store_down(pg_admin, pg_url):
            started = time.monotonic()
            # Then `abr status` and `abr jobs` say in one line that it cannot be reached
            assert_unreachable(run_abr("status", job_id, emulator=slow_emulator, **env))
            assert_unreachable(run_abr("jobs", emulator=slow_emulator, **env))
            assert process.poll() is None, process.communicate()
            time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - started)))
            assert process.poll() is None, process.communicate()
        stdout, stderr = process.communicate(timeout=120)

    # Then the run said it was waiting, carried on by itself, and finished
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert "sqlalche" not in stderr.lower()
    waiting = [line for line in stderr.splitlines() if WAITING in line]
    assert waiting, stderr
    assert "retrying" in waiting[0]
    assert f"Job {job_id}: finished" in stdout

    # And every request has its answer, each sent exactly once
    lines = read_results(out / "results" / f"{job_id}.jsonl")
    assert [line["custom_id"] for line in lines] == [f"q_{i}" for i in range(N)]
    assert {line["status"] for line in lines} == {"succeeded"}
    sent: dict[str, int] = slow_emulator.stats(submissions=True)["submissions"]
    assert len(sent) == N
    assert set(sent.values()) == {1}
    status = run_abr("status", job_id, "--json", emulator=slow_emulator, **env)
    assert orjson.loads(status.stdout)["status"] == "finished"


def test_a_give_back_the_store_could_not_take_is_made_once_it_answers(tmp_path: Path) -> None:
    # Given a store, and a lease release that meets the store unreachable
    store = Store(f"sqlite:///{tmp_path / 'abr.sqlite3'}")
    tries: list[int] = []

    def release() -> None:
        tries.append(1)
        if len(tries) == 1:
            raise StoreUnavailableError("the job store cannot be reached")

    # When it is given back, then the store answers again
    store.give_back(release)
    assert len(tries) == 1
    with store.begin():
        pass

    # Then the release was made after that transaction, once
    assert len(tries) == 2
    with store.begin():
        pass
    assert len(tries) == 2
    store.close()
