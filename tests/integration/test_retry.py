"""`abr retry` end to end: a finished job's failed requests are sent again as a new round
of the same job; the results file keeps one line per request, and every attempt stays in
the store."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from anthropic_batch_request_util.emulator import Emulator

from .helpers import read_results, run_abr, summary, write_original

ONE_ATTEMPT = {"ABR_BATCH_MAX_ATTEMPTS": "1", "ABR_BATCH_CHUNK_SIZE": "10"}


def _failed_run(emulator: Emulator, tmp_path: Path) -> dict[str, Any]:
    """A finished job of 30 requests, some expired and some refused as invalid."""
    emulator.set_faults(row_expired=0.3, row_invalid=0.2)
    source = write_original(tmp_path / "q.json", 30)
    completed = run_abr("run", str(source), "--json", emulator=emulator, **ONE_ATTEMPT)
    assert completed.returncode == 0, completed.stderr
    emulator.set_faults(row_expired=0.0, row_invalid=0.0)
    return summary(completed)


def _attempt_rows(store: Path) -> dict[int, int]:
    with sqlite3.connect(store) as db:
        return dict(db.execute("SELECT idx, count(*) FROM attempts GROUP BY idx").fetchall())


def test_retry_sends_failed_requests_again_and_keeps_one_line_each(
    emulator: Emulator, tmp_path: Path
) -> None:
    # Given a finished job whose requests partly expired or were refused as invalid
    first = _failed_run(emulator, tmp_path)
    before = {line["custom_id"]: line for line in read_results(Path(first["results_path"]))}
    expired = {cid for cid, line in before.items() if line["status"] == "expired"}
    invalid = {cid for cid, line in before.items() if line["status"] == "errored"}
    assert expired and invalid

    # When the user retries it with the default statuses
    completed = run_abr("retry", first["job_id"], "--json", emulator=emulator, **ONE_ATTEMPT)

    # Then the expired ones were sent again and succeeded; the invalid ones were not sent
    assert completed.returncode == 0, completed.stderr
    result = summary(completed)
    assert result["job_id"] == first["job_id"] and result["status"] == "finished"
    assert result["retried"] == len(expired)
    lines = read_results(Path(result["results_path"]))
    assert [line["custom_id"] for line in lines] == [f"q_{i}" for i in range(30)]
    for line in lines:
        if line["custom_id"] in expired:
            assert (line["status"], line["attempts"]) == ("succeeded", 2)
        else:
            assert line == before[line["custom_id"]]
    sent = emulator.stats(submissions=True)["submissions"]
    assert {cid for cid, n in sent.items() if n == 2} == expired
    # And every attempt is recorded: two rows for each retried request, one for the others
    attempts = _attempt_rows(tmp_path / "output" / "abr.sqlite3")
    assert sorted(attempts.values()).count(2) == len(expired)
    assert sum(attempts.values()) == 30 + len(expired)


def test_retry_with_status_errored_sends_invalid_requests_too(
    emulator: Emulator, tmp_path: Path
) -> None:
    # Given a finished job with requests refused as invalid
    first = _failed_run(emulator, tmp_path)
    lines = read_results(Path(first["results_path"]))
    invalid = {line["custom_id"] for line in lines if line["status"] == "errored"}

    # When the user names the errored status alone
    completed = run_abr(
        "retry", first["job_id"], "--status", "errored", "--json", emulator=emulator, **ONE_ATTEMPT
    )

    # Then exactly those are sent again, and the expired ones stay as they were
    assert completed.returncode == 0, completed.stderr
    assert summary(completed)["retried"] == len(invalid)
    after = read_results(Path(first["results_path"]))
    assert {line["custom_id"] for line in after if line["status"] == "errored"} == set()
    assert sum(line["status"] == "expired" for line in after) == first["counts"]["expired"]


def test_retry_of_a_job_with_nothing_failed_says_so_and_sends_nothing(
    emulator: Emulator, tmp_path: Path
) -> None:
    source = write_original(tmp_path / "q.json", 5)
    first = summary(run_abr("run", str(source), "--json", emulator=emulator))
    created = emulator.stats()["batches_created"]

    completed = run_abr("retry", first["job_id"], emulator=emulator)

    assert completed.returncode == 0, completed.stderr
    assert "Nothing to retry" in completed.stdout
    assert emulator.stats()["batches_created"] == created


def test_retry_rejects_an_unknown_status_with_one_line(emulator: Emulator, tmp_path: Path) -> None:
    source = write_original(tmp_path / "q.json", 3)
    first = summary(run_abr("run", str(source), "--json", emulator=emulator))

    completed = run_abr("retry", first["job_id"], "--status", "succeeded", emulator=emulator)

    assert completed.returncode == 2
    assert completed.stderr.strip().count("\n") == 0
    assert "--status" in completed.stderr and "'succeeded'" in completed.stderr


def test_retry_max_cost_must_be_above_zero_and_changes_nothing(
    emulator: Emulator, tmp_path: Path
) -> None:
    first = _failed_run(emulator, tmp_path)
    created = emulator.stats()["batches_created"]

    completed = run_abr("retry", first["job_id"], "--max-cost", "0", emulator=emulator)

    assert completed.returncode == 2
    assert completed.stderr.strip() == "abr: error: --max-cost must be above 0"
    assert emulator.stats()["batches_created"] == created
    assert run_abr("status", first["job_id"], "--json").stdout.count('"finished"') == 1


def test_retry_within_its_max_cost_runs_to_the_end(emulator: Emulator, tmp_path: Path) -> None:
    first = _failed_run(emulator, tmp_path)

    completed = run_abr(
        "retry", first["job_id"], "--max-cost", "100", "--json", emulator=emulator, **ONE_ATTEMPT
    )

    assert completed.returncode == 0, completed.stderr
    assert summary(completed)["status"] == "finished"
    assert summary(completed)["counts"]["expired"] == 0
