"""Results-file lines kept as segments (result_lines.py), on a real SQLite store: read back
in input order, whole, with later lines winning, for finished and unfinished jobs."""

from __future__ import annotations

import random
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa

from anthropic_batch_request_util.config import load_settings
from anthropic_batch_request_util.engine.ingest import ingest
from anthropic_batch_request_util.store import Store, result_lines
from anthropic_batch_request_util.store.requests import store_outputs
from anthropic_batch_request_util.store.schema import chunks

from .helpers import write_original


def _setup(tmp_path: Path, n: int, chunk_size: int) -> tuple[Store, int, list[int]]:
    settings = load_settings(overrides={"batch.chunk_size": str(chunk_size)})
    store = Store(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    found = ingest(store, write_original(tmp_path / "in.json", n), settings, tmp_path / "out")
    with store.begin() as conn:
        chunk_ids = list(
            conn.execute(
                sa.select(chunks.c.id).where(chunks.c.job_pk == found.job_pk).order_by(chunks.c.seq)
            ).scalars()
        )
    return store, found.job_pk, chunk_ids


def _answer(idx: int, text: str = "answer") -> bytes:
    return orjson.dumps({"custom_id": f"q{idx}", "status": "succeeded", "text": f"{text} {idx}"})


def _read(store: Store, job_pk: int) -> list[dict[str, object]]:
    with store.begin() as conn:
        blocks = list(result_lines.iter_blocks(conn, job_pk))
        lines = list(result_lines.iter_lines(conn, job_pk))
    assert b"".join(blocks).endswith(b"\n")
    assert b"".join(blocks) == b"".join(line + b"\n" for line in lines)
    return [orjson.loads(line) for line in lines]


def test_lines_stored_in_any_order_are_read_in_input_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given answers arriving out of order, stored in segments far smaller than a chunk
    monkeypatch.setattr(result_lines, "SEGMENT_MAX_BYTES", 150)
    store, job_pk, chunk_ids = _setup(tmp_path, 25, chunk_size=10)
    with store.begin() as conn:
        for n, chunk_id in enumerate(chunk_ids):
            idxs = list(range(n * 10, min(n * 10 + 10, 25)))
            random.Random(n).shuffle(idxs)
            result_lines.store_chunk_lines(conn, job_pk, chunk_id, [(i, _answer(i)) for i in idxs])
        assert conn.execute(sa.text("SELECT count(*) FROM result_lines")).scalar_one() > 3

    # Then the results are every answer, once, in input order
    assert [line["text"] for line in _read(store, job_pk)] == [f"answer {i}" for i in range(25)]
    store.close()


def test_a_later_line_wins_and_an_unanswered_request_says_where_it_stands(
    tmp_path: Path,
) -> None:
    store, job_pk, chunk_ids = _setup(tmp_path, 30, chunk_size=10)
    with store.begin() as conn:
        # chunk 1 answered, one request since answered again (a retry); chunk 2 answered
        # twice for one request, once not at all; chunk 3 not fetched yet
        result_lines.store_chunk_lines(
            conn, job_pk, chunk_ids[0], [(i, _answer(i, "first")) for i in range(10)]
        )
        store_outputs(conn, [(job_pk, 4, _answer(4, "retried"))])
        twice = [(i, _answer(i, "early")) for i in range(10, 19)] + [(12, _answer(12, "late"))]
        result_lines.store_chunk_lines(conn, job_pk, chunk_ids[1], twice)

    lines = _read(store, job_pk)

    assert len(lines) == 30
    assert lines[4]["text"] == "retried 4"
    assert [line["text"] for line in lines[:4]] == [f"first {i}" for i in range(4)]
    assert lines[12]["text"] == "late 12"
    assert lines[11]["text"] == "early 11"
    for line in [lines[19], *lines[20:]]:
        assert line["status"] == "queued" and "text" not in line
    assert lines[25]["custom_id"] == "q_25"
    store.close()


def test_lines_kept_a_row_each_are_read_as_before(tmp_path: Path) -> None:
    # Given a job whose lines are all rows of `outputs`, as stores kept them before segments
    store, job_pk, _ = _setup(tmp_path, 12, chunk_size=5)
    with store.begin() as conn:
        store_outputs(conn, [(job_pk, i, _answer(i, "row")) for i in reversed(range(12))])

    assert [line["text"] for line in _read(store, job_pk)] == [f"row {i}" for i in range(12)]
    store.close()


@pytest.mark.parametrize("shuffled", [False, True])
def test_lines_given_a_slice_at_a_time_are_stored_whole_and_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shuffled: bool
) -> None:
    # Given one chunk's answers handed over in slices (in order, or not), with a request
    # answered twice, in segments far smaller than the chunk
    monkeypatch.setattr(result_lines, "SEGMENT_MAX_BYTES", 200)
    store, job_pk, chunk_ids = _setup(tmp_path, 40, chunk_size=40)
    answers = [(i, _answer(i)) for i in range(40)]
    if shuffled:
        random.Random(7).shuffle(answers)
    answers.append((17, _answer(17, "again")))
    with store.begin() as conn:
        writer = result_lines.ChunkLineWriter(job_pk, chunk_ids[0])
        try:
            for start in range(0, len(answers), 6):
                writer.add(answers[start : start + 6])
            result_lines.insert_segments(conn, writer.segments())
        finally:
            writer.close()
        segments = conn.execute(sa.text("SELECT count(*) FROM result_lines")).scalar_one()

    # Then several segments hold every request's last answer, read back in input order
    assert segments > 3
    expected = [f"answer {i}" if i != 17 else "again 17" for i in range(40)]
    assert [line["text"] for line in _read(store, job_pk)] == expected
    store.close()
