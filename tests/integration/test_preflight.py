"""Settings that parse but cannot work are refused before anything is created or sent: a
broker nobody answers at, a pricing file that is not there; and `abr worker start` hands
the worker the settings it was given, and leaves nothing behind when the worker fails."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from anthropic_batch_request_util.config import load_settings
from anthropic_batch_request_util.emulator import Emulator
from anthropic_batch_request_util.engine import worker
from anthropic_batch_request_util.errors import UsageError
from anthropic_batch_request_util.store.locks import pid_alive

from .helpers import run_abr, write_original
from .test_cli import assert_one_error_line, nothing_sent

#: a Redis database no other test uses: a worker here only waits on an empty queue
BROKER_URL = "redis://127.0.0.1:6379/11"


def _require_redis() -> None:
    try:
        redis.Redis(host="127.0.0.1", port=6379).ping()
    except redis.exceptions.ConnectionError:
        if os.environ.get("CI"):
            pytest.fail("Redis is not reachable in CI")
        pytest.skip("Redis is not reachable")


def test_a_broker_nobody_answers_at_is_one_line_and_creates_no_job(
    emulator: Emulator, tmp_path: Path
) -> None:
    # Given a settings file naming a Redis broker where nothing listens
    (tmp_path / "settings.yaml").write_text(
        "celery:\n  broker_url: redis://:hunter2@127.0.0.1:1/0\n"
    )
    source = write_original(tmp_path / "q.json", 3)

    # When a run starts
    completed = run_abr("run", str(source), emulator=emulator)

    # Then it is one line naming the broker (not its password), and nothing exists
    line = assert_one_error_line(completed)
    assert "broker" in line and "127.0.0.1:1" in line and "hunter2" not in line
    assert "(new job)" not in completed.stdout
    assert not (tmp_path / "output").exists()
    assert nothing_sent(emulator)


def test_a_missing_pricing_file_is_one_line_and_creates_no_job(
    emulator: Emulator, tmp_path: Path
) -> None:
    (tmp_path / "settings.yaml").write_text("pricing_file: no-such-prices.yaml\n")
    source = write_original(tmp_path / "q.json", 3)

    completed = run_abr("run", str(source), emulator=emulator)

    line = assert_one_error_line(completed)
    assert "pricing_file" in line and "no-such-prices.yaml" in line
    assert not (tmp_path / "output").exists()
    assert nothing_sent(emulator)


def test_worker_start_gives_the_worker_the_config_file_it_was_given(tmp_path: Path) -> None:
    _require_redis()
    # Given a config file elsewhere naming a Redis broker, and no ./settings.yaml
    config = tmp_path / "elsewhere" / "abr.yaml"
    config.parent.mkdir()
    out = tmp_path / "elsewhere" / "out"
    config.write_text(f"celery:\n  broker_url: {BROKER_URL}\nstorage:\n  base_dir: {out}\n")

    # When a worker is started with --config
    started = run_abr("worker", "start", "--config", str(config), "--name", "cfg", emulator=None)

    # Then it reads the same settings: it starts, and its files are where they say
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        assert (out / "logs" / "celery-cfg.pid").exists()
        assert "abr worker ready: cfg" in (out / "logs" / "celery-cfg.log").read_text()
        # and it is seen alive in the job store the config names
        with sqlite3.connect(out / "abr.sqlite3") as db:
            beats = db.execute(
                "SELECT count(*) FROM locks WHERE name LIKE 'worker:%' AND expires_at > ?",
                (time.time(),),
            ).fetchone()[0]
        assert beats == 1
    finally:
        stopped = run_abr("worker", "stop", "--config", str(config))
    assert "cfg" in stopped.stdout


def test_a_worker_that_does_not_report_ready_is_stopped_and_its_pid_file_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _require_redis()
    # Given a start that never sees the worker's ready line within a short wait
    settings = load_settings(
        None, {"celery.broker_url": BROKER_URL, "storage.base_dir": str(tmp_path / "out")}
    )
    monkeypatch.setattr(worker, "READY_LINE", "a line no worker prints")
    monkeypatch.setattr(worker, "READY_TIMEOUT_S", 1.0)
    monkeypatch.setenv("ABR_BROKER_URL", BROKER_URL)
    monkeypatch.setenv("ABR_STORAGE_BASE_DIR", str(tmp_path / "out"))

    started: list[int] = []
    popen = worker.subprocess.Popen

    def recording(*args: Any, **kwargs: Any) -> Any:
        process = popen(*args, **kwargs)
        started.append(process.pid)
        return process

    monkeypatch.setattr(worker.subprocess, "Popen", recording)

    # When the worker is started
    with pytest.raises(UsageError, match="did not report ready"):
        worker.start_background(settings, name="slow", concurrency=1)

    # Then the worker process was stopped and its pid file removed
    assert len(started) == 1
    assert not pid_alive(started[0])
    assert not (tmp_path / "out" / "logs" / "celery-slow.pid").exists()
    assert not worker.list_workers(settings)
