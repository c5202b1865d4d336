"""The helper process that reads results files and inputs: the same answers as in this
process, its errors and log records come back, and it is replaced or done without when it
is gone."""

from __future__ import annotations

import logging
import pickle
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa

import anthropic_batch_request_util as abr
from anthropic_batch_request_util.config import load_settings
from anthropic_batch_request_util.cost.pricing import load_price_table
from anthropic_batch_request_util.emulator import Emulator
from anthropic_batch_request_util.engine import runner
from anthropic_batch_request_util.engine.answers import NOT_WHOLE_ERRORS, read_answers
from anthropic_batch_request_util.engine.helper import Helper
from anthropic_batch_request_util.engine.helper import helper as process_helper
from anthropic_batch_request_util.engine.ingest import ingest_at
from anthropic_batch_request_util.errors import (
    AbrError,
    InputError,
    JobNotFoundError,
    LocalFaultError,
    MissingApiKeyError,
    StoreFullError,
    StoreUnavailableError,
)
from anthropic_batch_request_util.store import Store
from anthropic_batch_request_util.store.requests import AnswerRow, Members
from anthropic_batch_request_util.store.result_lines import SegmentRow

from .helpers import FAST_SETTINGS, write_original

JOB_PK, CHUNK_ID = 3, 7


@pytest.fixture
def helper() -> Iterator[Helper]:
    made = Helper()
    yield made
    made.close()


def _line(custom_id: str, model: str = "claude-haiku-4-5") -> bytes:
    message = {
        "id": f"msg_{custom_id}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": f"answer to {custom_id}"}],
        "usage": {"input_tokens": 10, "output_tokens": 5},
    }
    result = {"type": "succeeded", "message": message}
    return orjson.dumps({"custom_id": custom_id, "result": result})


def _results(tmp_path: Path, n: int, model: str = "claude-haiku-4-5") -> Path:
    # answered out of input order, as a results file may be
    path = tmp_path / "results.jsonl"
    path.write_bytes(b"\n".join(_line(f"r{i}", model) for i in reversed(range(n))) + b"\n")
    return path


Read = tuple[int, list[int], list[list[AnswerRow]], list[SegmentRow]]


def _read(helper: Helper | None, tmp_path: Path, spool: Path, n: int, name: str) -> Read:
    out = tmp_path / name
    out.mkdir()
    members = Members.of((f"r{i}", i, 0) for i in range(n))
    args = (spool, members, n, "msgbatch_1", load_settings(), load_price_table(), out)
    segments = (JOB_PK, CHUNK_ID)
    if helper is None:
        read = read_answers(*args, segments)
    else:
        read = helper.call("read_answers", *args, segments)
    return read.count, read.missing, list(read.slices()), list(read.segment_rows())


def test_the_helper_reads_what_this_process_reads(tmp_path: Path, helper: Helper) -> None:
    # Given a results file of 12,000 answers, out of input order
    spool = _results(tmp_path, 12_000)

    # When the helper process reads it, and this process does
    there = _read(helper, tmp_path, spool, 12_000, "there")
    here = _read(None, tmp_path, spool, 12_000, "here")

    # Then both give the same answers and the same segments, lines in input order
    assert there == here
    count, missing, slices, segments = there
    assert count == 12_000 and missing == []
    assert sum(len(part) for part in slices) == 12_000
    data = b"\n".join(row[6] for row in segments)
    texts = [orjson.loads(line)["text"] for line in data.split(b"\n")]
    assert texts == [f"answer to r{i}" for i in range(12_000)]
    assert helper._proc is not None and helper._answered == 1


def test_an_error_in_the_helper_is_raised_here(tmp_path: Path, helper: Helper) -> None:
    # Given a results file cut mid-line
    spool = tmp_path / "cut.jsonl"
    spool.write_bytes(_line("r0") + b"\n" + _line("r1")[:40])

    # When the helper reads it, Then the caller gets the error a cut download gives
    helper.start()
    assert helper._proc is not None
    pid = helper._proc.pid
    with pytest.raises(NOT_WHOLE_ERRORS):
        _read(helper, tmp_path, spool, 2, "out")

    # and the helper stays, for the next call
    assert helper._proc is not None and helper._proc.pid == pid and helper._proc.poll() is None


def test_the_helpers_log_records_are_logged_here(
    tmp_path: Path, helper: Helper, caplog: pytest.LogCaptureFixture
) -> None:
    # Given answers from a model without a price
    spool = _results(tmp_path, 3, model="no-such-model")

    # When the helper reads them
    with caplog.at_level(logging.WARNING):
        _read(helper, tmp_path, spool, 3, "out")

    # Then its warning is logged in this process, under the logger that wrote it
    said = [r for r in caplog.records if "no price for model" in r.getMessage()]
    assert said and said[0].name == "anthropic_batch_request_util.engine.answers"


def test_a_killed_helper_is_replaced(tmp_path: Path, helper: Helper) -> None:
    # Given a helper that has answered once, then was killed
    spool = _results(tmp_path, 50)
    first = _read(helper, tmp_path, spool, 50, "first")
    assert helper._proc is not None
    helper._proc.kill()
    helper._proc.wait()

    # When it is called again, Then a new one answers the same
    assert _read(helper, tmp_path, spool, 50, "second") == first
    assert helper._proc is not None and helper._proc.poll() is None


def test_without_a_helper_the_work_is_done_here(
    tmp_path: Path,
    helper: Helper,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a helper process that ends at once (an interpreter that cannot run it)
    monkeypatch.setattr("sys.executable", "/bin/false")
    spool = _results(tmp_path, 50)

    # When it is called, twice
    with caplog.at_level(logging.WARNING):
        first = _read(helper, tmp_path, spool, 50, "first")
        second = _read(helper, tmp_path, spool, 50, "second")

    # Then the answers are read here, once it is known not to work, without trying again
    assert first == second == _read(None, tmp_path, spool, 50, "here")
    assert helper._usable is False and helper._proc is None
    assert sum("its work runs in this process" in r.getMessage() for r in caplog.records) == 1


def test_an_input_is_ingested_there_as_here(tmp_path: Path, helper: Helper) -> None:
    # Given an input of 30 requests, and two stores
    source = write_original(tmp_path / "in.json", 30)
    settings = load_settings()
    urls = [f"sqlite:///{tmp_path / name}.sqlite3" for name in ("there", "here")]

    # When the helper ingests it into one, and this process into the other
    there = helper.call("ingest_at", urls[0], source, settings, tmp_path / "out")
    here = ingest_at(urls[1], source, settings, tmp_path / "out")

    # Then both made the same job, with every request stored
    assert there == here
    assert there.created and there.total == 30
    with Store(urls[0]) as store, store.begin() as conn:
        stored = conn.execute(sa.text("SELECT count(*) FROM requests")).scalar_one()
    assert stored == 30


def test_a_bad_input_read_there_is_the_same_error_here(tmp_path: Path, helper: Helper) -> None:
    # Given an input with a request that is not a list of messages
    source = tmp_path / "bad.json"
    source.write_bytes(b'{"messages_list": [[{"role": "user", "content": "hi"}], 7]}')
    url = f"sqlite:///{tmp_path / 'store.sqlite3'}"

    # When the helper ingests it
    with pytest.raises(InputError) as raised:
        helper.call("ingest_at", url, source, load_settings(), tmp_path / "out")

    # Then the caller gets the error as it was made: its problems, its path, its message
    error = raised.value
    assert error.path == str(source) and len(error.problems) == 1
    assert str(error).startswith(f"{source}: ") and error.exit_code == 2


@pytest.mark.parametrize(
    "error",
    [
        InputError(["line 3: no messages", "line 9: no model"], path="in.jsonl"),
        JobNotFoundError("job-1", "(finished jobs are kept)"),
        MissingApiKeyError(),
        StoreUnavailableError("the store is down: wait", reason="connection refused"),
        LocalFaultError("cannot write out/: read-only", path="out/", cause="EROFS"),
        StoreFullError("the disk is full", path="store.sqlite3", cause="ENOSPC"),
    ],
)
def test_errors_cross_processes_whole(error: AbrError) -> None:
    # Given an error with an exit code changed on the way, as ingest does for a full store
    error.exit_code = 3

    # When it is pickled and read back, as the helper sends it
    back = pickle.loads(pickle.dumps(error))

    # Then it is the same error: class, message, attributes
    assert type(back) is type(error) and str(back) == str(error)
    assert back.__dict__ == error.__dict__ and back.exit_code == 3


def test_relative_paths_mean_the_same_there(
    tmp_path: Path, helper: Helper, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a helper started in one folder, and a caller that has moved to another since
    helper.start()
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    monkeypatch.chdir(moved)
    write_original(moved / "in.json", 5)

    # When it ingests a relative path into a store at a relative URL
    found = helper.call(
        "ingest_at", "sqlite:///store.sqlite3", Path("in.json"), load_settings(), Path("out")
    )

    # Then both were found where the caller is
    assert found.total == 5 and (moved / "store.sqlite3").exists()


def test_a_run_reads_its_input_and_results_in_the_helper(
    tmp_path: Path, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a run whose input counts as large (read in the helper process)
    for name, value in FAST_SETTINGS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(runner, "HELPER_INPUT_BYTES", 0)
    monkeypatch.chdir(tmp_path)
    source = write_original(tmp_path / "in.json", 25)
    answered = process_helper._answered

    # When it runs in 3 batches
    job = abr.run(source, settings=abr.Settings(batch={"chunk_size": 10}), progress=False)

    # Then every request is answered in input order, the helper having read the input and
    # the three results files
    assert [r.custom_id for r in job.results()] == [f"q_{i}" for i in range(25)]
    assert all(r.ok for r in job.results())
    assert process_helper._answered - answered == 1 + 3


def test_ctrl_c_during_a_call_ends_the_helper(
    tmp_path: Path, helper: Helper, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a helper at work when Ctrl-C comes (while this process waits for its answer)
    spool = _results(tmp_path, 10)
    helper.start()
    proc = helper._proc
    assert proc is not None

    def interrupted(_stream: object) -> bytes:
        raise KeyboardInterrupt

    monkeypatch.setattr("anthropic_batch_request_util.engine.helper._receive", interrupted)

    # When the call is interrupted, Then the interrupt goes on, and the helper is ended
    # (a half-done ingest there rolls back, as it would here)
    with pytest.raises(KeyboardInterrupt):
        _read(helper, tmp_path, spool, 10, "out")
    assert proc.poll() is not None and helper._proc is None
