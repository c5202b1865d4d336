"""The helper process that reads results files: the same answers as in this process, its
errors and log records come back, and it is replaced or done without when it is gone."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from anthropic_batch_request_util.config import load_settings
from anthropic_batch_request_util.cost.pricing import load_price_table
from anthropic_batch_request_util.engine.answers import NOT_WHOLE_ERRORS, read_answers
from anthropic_batch_request_util.engine.helper import Helper
from anthropic_batch_request_util.store.requests import AnswerRow
from anthropic_batch_request_util.store.result_lines import SegmentRow

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
    members = {f"r{i}": (i, 0) for i in range(n)}
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
    with pytest.raises(NOT_WHOLE_ERRORS):
        _read(helper, tmp_path, spool, 2, "out")


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
    assert sum("results are read in this process" in r.getMessage() for r in caplog.records) == 1
