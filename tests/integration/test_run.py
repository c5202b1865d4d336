"""`abr run` end to end, as a user runs it, against the emulator (real HTTP, official SDK,
the in-process Celery worker, a SQLite store)."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest

from anthropic_batch_request_util.emulator import Emulator, EmulatorConfig, reply_text

from .helpers import (
    abr_command,
    abr_env,
    interrupted_run,
    questions,
    read_results,
    run_abr,
    summary,
    wait_for_batches,
    write_original,
)

MODEL = "claude-3-5-haiku-20241022"


def expected_text(conversation: list[dict[str, str]], system: str = "Be brief.") -> str:
    params: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 8192,
        "messages": conversation,
        "system": system,
        "temperature": 0.0,
    }
    return reply_text(params)


def submissions(emulator: Emulator) -> dict[str, int]:
    stats = emulator.stats(submissions=True)
    result: dict[str, int] = stats["submissions"]
    return result


def test_run_writes_one_line_per_request_in_input_order(emulator: Emulator, tmp_path: Path) -> None:
    # Given 25 questions cut into chunks of 10
    source = write_original(tmp_path / "questions.json", 25)

    # When abr runs them
    completed = run_abr("run", str(source), "--json", emulator=emulator, ABR_BATCH_CHUNK_SIZE="10")

    # Then every request has exactly one succeeded line, in input order, with its own answer
    assert completed.returncode == 0, completed.stderr
    result = summary(completed)
    assert result["status"] == "finished"
    assert result["counts"] == {"succeeded": 25, "errored": 0, "canceled": 0, "expired": 0}
    lines = read_results(Path(result["results_path"]))
    assert [line["custom_id"] for line in lines] == [f"q_{i}" for i in range(25)]
    for line, conversation in zip(lines, questions(25), strict=True):
        assert line["status"] == "succeeded"
        assert line["text"] == expected_text(conversation)
        assert line["attempts"] == 1
        assert line["batch_id"].startswith("msgbatch_")
    assert result["usage"]["input_tokens"] > 0 and result["usage"]["output_tokens"] > 0

    # And the record names three batches, each sent once
    record = orjson.loads(Path(result["records_path"]).read_bytes())
    assert [c["request_count"] for c in record["chunks"]] == [10, 10, 5]
    assert len({c["batch_id"] for c in record["chunks"]}) == 3
    assert "sk-ant" not in Path(result["records_path"]).read_text()
    assert set(submissions(emulator).values()) == {1}
    assert emulator.stats()["batches_created"] == 3


def test_faults_leave_every_request_final_and_nothing_paid_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an emulator that fails in every way it knows
    faults = {
        "http_429": 0.1,
        "http_500": 0.1,
        "http_529": 0.05,
        "drop_before": 0.05,
        "drop_after": 0.1,
        "row_api_error": 0.1,
        "row_overloaded": 0.05,
        "row_invalid": 0.05,
        "row_expired": 0.1,
        "results_cut": 0.3,
    }
    config = EmulatorConfig(processing_seconds=0.1, seed=3, retry_after=0.0, faults=faults)
    n = 80
    source = write_original(tmp_path / "many.json", n)
    with Emulator(config, host="127.0.0.1", port=0) as emulator:
        # When abr runs through them
        completed = run_abr(
            "run", str(source), "--json", emulator=emulator, ABR_BATCH_CHUNK_SIZE="10", timeout=240
        )
        sent = submissions(emulator)

    # Then every input request has exactly one final line
    assert completed.returncode == 0, completed.stderr
    lines = read_results(Path(summary(completed)["results_path"]))
    assert [line["custom_id"] for line in lines] == [f"q_{i}" for i in range(n)]
    assert {line["status"] for line in lines} <= {"succeeded", "errored", "expired"}
    for line, conversation in zip(lines, questions(n), strict=True):
        # each answer belongs to its request; each request was sent exactly as often as
        # its attempts needed, never more, even when a create reply was lost
        if line["status"] == "succeeded":
            assert line["text"] == expected_text(conversation)
        assert sent[line["custom_id"]] == line["attempts"]
        if line["status"] == "errored" and line["error"]["type"] == "invalid_request_error":
            assert line["attempts"] == 1, "invalid requests are never resubmitted"
        assert 1 <= line["attempts"] <= 3
    retried = [line for line in lines if line["attempts"] > 1]
    assert retried, "with these fault rates some rows must have been retried"


BAD_INPUTS: list[tuple[str, str, bytes, str]] = [
    (
        "malformed",
        "bad.json",
        b'{"messages_list": [[{"role": "user", "content": "hi"}]',
        "not valid JSON",
    ),
    ("missing list", "bad.json", b'{"system_prompt": "x"}', "messages_list"),
    ("empty conversation", "bad.json", b'{"messages_list": [[]]}', "messages_list[0]"),
    (
        "bad role",
        "bad.json",
        b'{"messages_list": [[{"role": "user", "content": "a"}],'
        b' [{"role": "robot", "content": "b"}]]}',
        "messages_list[1][0]",
    ),
    (
        "bad custom_id",
        "bad.jsonl",
        b'{"custom_id": "has space", "params": {"messages": [{"role": "user", "content": "a"}]}}\n',
        "line 1",
    ),
    (
        "duplicate custom_id",
        "bad.jsonl",
        b'{"custom_id": "a", "params": {"messages": [{"role": "user", "content": "x"}]}}\n'
        b'{"custom_id": "a", "params": {"messages": [{"role": "user", "content": "y"}]}}\n',
        "'a'",
    ),
    ("no requests", "bad.json", b'{"messages_list": []}', "no requests"),
]


@pytest.mark.parametrize(
    ("name", "filename", "content", "expected"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS]
)
def test_bad_input_exits_2_with_one_clear_line_and_sends_nothing(
    emulator: Emulator, tmp_path: Path, name: str, filename: str, content: bytes, expected: str
) -> None:
    source = tmp_path / filename
    source.write_bytes(content)

    completed = run_abr("run", str(source), emulator=emulator)

    assert completed.returncode == 2, (name, completed.stdout, completed.stderr)
    assert expected in completed.stderr
    assert "Traceback" not in completed.stderr
    assert completed.stderr.startswith("abr: error:")
    assert emulator.stats()["requests_submitted"] == 0


def test_oversized_request_and_missing_key_exit_2_and_send_nothing(
    emulator: Emulator, tmp_path: Path
) -> None:
    big = write_original(tmp_path / "big.json", 3, system="x" * 5000)
    too_big = run_abr("run", str(big), emulator=emulator, ABR_API_MAX_PAYLOAD_SIZE="2000")
    no_key = run_abr("run", str(big), emulator=emulator, ANTHROPIC_API_KEY="")

    assert too_big.returncode == 2 and "bytes" in too_big.stderr, too_big.stderr
    assert no_key.returncode == 2 and "ANTHROPIC_API_KEY" in no_key.stderr, no_key.stderr
    assert "Traceback" not in too_big.stderr + no_key.stderr
    assert emulator.stats()["requests_submitted"] == 0


def test_running_the_same_file_again_resumes_its_job(emulator: Emulator, tmp_path: Path) -> None:
    source = write_original(tmp_path / "again.json", 5)
    first = run_abr("run", str(source), "--json", emulator=emulator)
    second = run_abr("run", str(source), "--json", emulator=emulator)

    assert first.returncode == second.returncode == 0, second.stderr
    assert summary(first)["job_id"] == summary(second)["job_id"]
    assert emulator.stats()["batches_created"] == 1


def test_sigkilled_run_resumes_without_resubmitting(tmp_path: Path) -> None:
    # Given a run whose batches take a while
    config = EmulatorConfig(processing_seconds=1.5, seed=5, retry_after=0.0)
    source = write_original(tmp_path / "killed.json", 30)
    with Emulator(config, host="127.0.0.1", port=0) as emulator:
        env = abr_env(emulator, ABR_BATCH_CHUNK_SIZE="10")
        process = subprocess.Popen(
            abr_command("run", str(source)),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # When it is killed -9 after its first batch was created
        wait_for_batches(emulator)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        # Then running it again finishes the job
        completed = run_abr(
            "run", str(source), "--json", emulator=emulator, ABR_BATCH_CHUNK_SIZE="10"
        )
        sent = submissions(emulator)
        batches = emulator.stats()["batches_created"]

    assert completed.returncode == 0, completed.stderr
    lines = read_results(Path(summary(completed)["results_path"]))
    assert len(lines) == 30 and {line["status"] for line in lines} == {"succeeded"}
    # without sending any request twice
    assert set(sent.values()) == {1}
    assert batches == 3


def test_ctrl_c_says_what_still_runs_and_cancel_finishes_the_job(tmp_path: Path) -> None:
    config = EmulatorConfig(processing_seconds=30, seed=6, retry_after=0.0)
    source = write_original(tmp_path / "slow.json", 12)
    with Emulator(config, host="127.0.0.1", port=0) as emulator:
        env = abr_env(emulator, ABR_BATCH_CHUNK_SIZE="6")
        out = interrupted_run(emulator, str(source), env=env, batches=2)
        assert "Still running at Anthropic (2)" in out
        assert "msgbatch_" in out
        job_id = out.split("abr resume ", 1)[1].split()[0]
        assert f"abr cancel {job_id}" in out

        canceled = run_abr("cancel", job_id, "--json", emulator=emulator)

    assert canceled.returncode == 0, canceled.stderr
    result = summary(canceled)
    assert result["status"] == "finished"
    assert sum(result["counts"].values()) == 12
    assert result["counts"]["canceled"] >= 1
