"""Waiting that tells the truth: the commands a message suggests work as printed, a run
that finds its input's job says so, and a job nothing is working on says what to run."""

from __future__ import annotations

import shlex
import signal
import subprocess
from pathlib import Path

import orjson
import pytest
import redis

from anthropic_batch_request_util.emulator import Emulator, EmulatorConfig

from .helpers import (
    abr_command,
    abr_env,
    interrupted_run,
    run_abr,
    summary,
    wait_for_batches,
    write_original,
)


def test_the_ctrl_c_hint_is_a_command_that_works_with_the_flags_given(tmp_path: Path) -> None:
    # Given a run into another output folder with its own config file, interrupted
    (tmp_path / "conf.yaml").write_text("batch:\n  chunk_size: 5\n")
    source = write_original(tmp_path / "slow.json", 6)
    config = EmulatorConfig(processing_seconds=30, seed=6, retry_after=0.0)
    with Emulator(config, host="127.0.0.1", port=0) as emulator:
        out = interrupted_run(emulator, str(source), "-o", "elsewhere", "--config", "conf.yaml")

        # Then the printed cancel command carries the same flags, and works as printed
        printed = out.split("Cancel with:", 1)[1].splitlines()[0].strip()
        assert printed.endswith(" -o elsewhere --config conf.yaml"), printed
        canceled = run_abr(*shlex.split(printed)[1:], "--json", emulator=emulator)

    assert canceled.returncode == 0, canceled.stderr
    assert summary(canceled)["status"] == "finished"


def test_running_a_file_again_says_which_job_its_requests_are(
    emulator: Emulator, tmp_path: Path
) -> None:
    # Given a file whose job finished
    source = write_original(tmp_path / "q.json", 3)
    first = run_abr("run", str(source), "--json", emulator=emulator)
    assert summary(first)["existing"] is False

    # When the same content runs again, under another name
    copy = tmp_path / "copy.json"
    copy.write_bytes(source.read_bytes())
    again = run_abr("run", str(copy), "--json", emulator=emulator)
    text = run_abr("run", str(copy), emulator=emulator)

    # Then both say it is the existing job, and when it finished
    assert summary(again)["existing"] is True
    assert summary(again)["job_id"] == summary(first)["job_id"]
    job_id = summary(first)["job_id"]
    assert f"This file's requests are job {job_id}, finished " in text.stdout
    assert " ago" in text.stdout


def test_status_of_an_interrupted_run_says_nothing_works_on_it_and_what_to_run(
    tmp_path: Path,
) -> None:
    # Given a run with the in-process broker
    source = write_original(tmp_path / "slow.json", 4)
    config = EmulatorConfig(processing_seconds=30, seed=6, retry_after=0.0)
    with Emulator(config, host="127.0.0.1", port=0) as emulator:
        process = subprocess.Popen(
            abr_command("run", str(source), "-o", "out"),
            env=abr_env(emulator),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_for_batches(emulator)

        # While it runs, the job has a live worker: nothing to say
        running = summary(run_abr("status", "--json", "-o", "out", emulator=emulator))
        assert running["working"] >= 1 and running["idle"] is None

        # When it is interrupted
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)

        # Then status says nothing is working on it, and the command that carries it on
        idle = summary(run_abr("status", "--json", "-o", "out", emulator=emulator))
        text = run_abr("status", "-o", "out", emulator=emulator)
    assert idle["status"] == "running" and idle["working"] == 0
    assert f"abr resume {idle['job_id']} -o out" in idle["idle"]
    assert "nothing is working on this job" in text.stdout


def test_a_run_on_a_redis_broker_without_workers_says_to_start_one(
    emulator: Emulator, tmp_path: Path
) -> None:
    try:
        redis.Redis(host="127.0.0.1", port=6379).ping()
    except redis.exceptions.ConnectionError:
        pytest.skip("Redis is not reachable")
    broker = "redis://127.0.0.1:6379/10"  # no worker ever consumes this database
    source = write_original(tmp_path / "q.json", 2)
    try:
        # Given a Redis broker and no `abr worker` running, when a run waits for its job
        with pytest.raises(subprocess.TimeoutExpired) as waited:
            subprocess.run(
                abr_command("run", str(source)),
                env=abr_env(emulator, ABR_BROKER_URL=broker),
                capture_output=True,
                text=True,
                timeout=8,
            )
        # Then its progress says nothing is working on the job, and what to run
        stderr = waited.value.stderr or b""
        text = stderr.decode() if isinstance(stderr, bytes) else stderr
        assert "nothing is working on it: start a worker: abr worker start" in text
        # and so does status
        status = summary(run_abr("status", "--json", emulator=emulator, ABR_BROKER_URL=broker))
        assert status["working"] == 0 and "abr worker start" in status["idle"]
    finally:
        redis.Redis.from_url(broker).flushdb()


def test_export_of_a_failed_job_says_what_its_lines_mean(tmp_path: Path) -> None:
    # Given a job that failed: the API refuses the key
    source = write_original(tmp_path / "q.json", 3)
    config = EmulatorConfig(processing_seconds=0.2, seed=1, retry_after=0.0, api_key="other")
    with Emulator(config, host="127.0.0.1", port=0) as emulator:
        failed = run_abr("run", str(source), emulator=emulator)
        assert failed.returncode == 1, failed.stderr
        job_id = run_abr("jobs", "--json").stdout
        job_id = orjson.loads(job_id)[0]["job_id"]

        # When its results are exported
        exported = run_abr("results", job_id)

    # Then the lines are there, and a note says they are not final and how to carry on
    assert exported.returncode == 0, exported.stderr
    assert [orjson.loads(line)["status"] for line in exported.stdout.splitlines()] == ["queued"] * 3
    assert f"job {job_id} is failed" in exported.stderr
    assert "3 of 3 requests have no final status" in exported.stderr
    assert f"abr resume {job_id}" in exported.stderr
