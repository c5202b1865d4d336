"""Every answer a request got stays recorded: `abr status` and the batch record sum them up
by round, outcome and error type."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from anthropic_batch_request_util.emulator import Emulator, EmulatorConfig

from .helpers import run_abr, summary, write_original


@pytest.fixture
def flaky(monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    """Answers that fail with api_error one time in two: retried in later rounds."""
    config = EmulatorConfig(
        processing_seconds=0.2, seed=5, retry_after=0.0, faults={"row_api_error": 0.5}
    )
    with Emulator(config, host="127.0.0.1", port=0) as server:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)
        yield server


def test_status_and_record_show_every_attempt_by_round(flaky: Emulator, tmp_path: Path) -> None:
    # Given a job whose first answers fail half the time, retried up to 5 attempts
    source = write_original(tmp_path / "q.json", 30)
    done = run_abr("run", str(source), "--json", emulator=flaky, ABR_BATCH_MAX_ATTEMPTS="5")
    assert done.returncode == 0, done.stderr

    # When its status is asked for
    shown = run_abr("status", "--json", emulator=flaky)
    text = run_abr("status", emulator=flaky)

    # Then the attempts add up to every answer, round by round, errors named
    history = orjson.loads(shown.stdout)["attempts"]
    first = [row for row in history if row["round"] == 1]
    assert sum(row["requests"] for row in first) == 30
    assert {"outcome": "errored", "error_type": "api_error"}.items() <= next(
        row for row in first if row["outcome"] == "errored"
    ).items()
    assert max(row["round"] for row in history) >= 2
    retried = sum(row["requests"] for row in history if row["round"] == 2)
    errored_first = sum(row["requests"] for row in first if row["outcome"] == "errored")
    assert retried == errored_first
    assert "attempts: round 1: " in text.stdout

    # And the record holds the same history
    record = orjson.loads(Path(summary(done)["records_path"]).read_bytes())
    assert record["attempts"] == history
