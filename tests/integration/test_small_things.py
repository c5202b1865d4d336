"""What a new user notices first: --version, help that says what an option does, a type
on every error, the cost in the CSV."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from anthropic_batch_request_util import __version__
from anthropic_batch_request_util.emulator import Emulator

from .helpers import read_results, run_abr, summary, write_original


def test_version_prints_the_version() -> None:
    completed = run_abr("--version")

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == f"abr {__version__}"


def test_cancel_help_says_what_no_wait_does_for_a_cancel() -> None:
    completed = run_abr("cancel", "--help")

    help_text = " ".join(completed.stdout.split())
    assert "Return once every batch is submitted" not in help_text
    assert "--no-wait Return once the cancel is asked for" in help_text


def test_every_line_that_did_not_succeed_has_an_error_with_a_type_and_csv_has_cost(
    emulator: Emulator, tmp_path: Path
) -> None:
    # Given a job whose requests partly expire, with no automatic retry
    emulator.set_faults(row_expired=0.5)
    source = write_original(tmp_path / "q.json", 10)
    done = run_abr("run", str(source), "--json", emulator=emulator, ABR_BATCH_MAX_ATTEMPTS="1")
    assert done.returncode == 0, done.stderr
    result = summary(done)
    assert result["counts"]["expired"] > 0

    # Then every line that did not succeed says why, with a type
    lines = read_results(Path(result["results_path"]))
    for line in lines:
        if line["status"] != "succeeded":
            assert line["error"]["type"] == line["status"] == "expired"
            assert line["error"]["message"]
    # and the CSV has each request's cost
    exported = run_abr("results", result["job_id"], "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert "cost_usd" in rows[0]
    by_id = {line["custom_id"]: line for line in lines}
    for row in rows:
        cost = by_id[row["custom_id"]]["cost_usd"]
        assert row["cost_usd"] == ("" if cost is None else str(cost))
    assert any(row["cost_usd"] for row in rows)
    assert {row["error_type"] for row in rows if row["status"] == "expired"} == {"expired"}


def test_the_readme_has_one_exit_code_table_and_documents_retry() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Exit codes and errors", 1)[1].split("###", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == ["0", "1", "2", "130"]
    # both ways --max-cost ends a run are in it
    assert "--max-cost" in rows[1] and "--max-cost" in rows[2]
    assert "abr: error:" in section
    assert "### Re-running what failed" in readme and "abr retry JOB" in readme
