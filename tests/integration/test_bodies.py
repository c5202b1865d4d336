"""Request bodies kept as segments (store/bodies.py), on a real SQLite store: what is sent
for a chunk is exactly what the input asked, for first-round chunks and retry chunks.
(Stores written before segments existed: test_migrations.py.)"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa

from anthropic_batch_request_util.config import load_settings
from anthropic_batch_request_util.engine.ingest import ingest
from anthropic_batch_request_util.engine.retry import cut_into_chunks
from anthropic_batch_request_util.inputs import read_requests, request_defaults
from anthropic_batch_request_util.inputs.chunking import batch_body
from anthropic_batch_request_util.store import Store, bodies
from anthropic_batch_request_util.store.db import Connection
from anthropic_batch_request_util.store.schema import chunks, requests

from .helpers import write_original


def _setup(tmp_path: Path, n: int, chunk_size: int) -> tuple[Store, int, dict[int, bytes]]:
    settings = load_settings(overrides={"batch.chunk_size": str(chunk_size)})
    path = write_original(tmp_path / "in.json", n)
    store = Store(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    found = ingest(store, path, settings, tmp_path / "out")
    expected = {r.index: r.body for r in read_requests(path, request_defaults(settings))}
    return store, found.job_pk, expected


def _chunk_bodies(store: Store, job_pk: int) -> dict[int, bytes]:
    with store.begin() as conn:
        rows = conn.execute(
            sa.select(chunks.c.id, chunks.c.request_count)
            .where(chunks.c.job_pk == job_pk)
            .order_by(chunks.c.seq)
        ).all()
        return {cid: _spooled(conn, cid, count) for cid, count in rows}


def _spooled(conn: Connection, chunk_id: int, count: int) -> bytes:
    """The body as sent: from the temporary file it is spooled to."""
    path = bodies.spool_chunk_body(conn, chunk_id, count)
    try:
        return path.read_bytes()
    finally:
        path.unlink()


def _members(store: Store, chunk_id: int) -> list[int]:
    with store.begin() as conn:
        return list(
            conn.execute(
                sa.select(requests.c.idx)
                .where(requests.c.chunk_id == chunk_id)
                .order_by(requests.c.idx)
            ).scalars()
        )


def test_a_chunk_sends_exactly_its_requests_even_across_segments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given segments far smaller than a chunk, so each chunk is stored as several
    monkeypatch.setattr(bodies, "SEGMENT_MAX_BYTES", 700)
    store, job_pk, expected = _setup(tmp_path, 23, chunk_size=10)

    # When each chunk's create body is built
    sent = _chunk_bodies(store, job_pk)

    # Then each is the create body of its members' bodies, in input order
    assert len(sent) == 3
    for chunk_id, body in sent.items():
        assert body == batch_body(expected[idx] for idx in _members(store, chunk_id))
    with store.begin() as conn:
        segments = conn.execute(sa.text("SELECT count(*) FROM bodies")).scalar_one()
        assert segments > len(sent)
    store.close()


def test_a_retry_chunk_gathers_its_bodies_from_the_segments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bodies, "SEGMENT_MAX_BYTES", 1000)
    store, job_pk, expected = _setup(tmp_path, 30, chunk_size=12)
    retried = [1, 2, 11, 12, 13, 29]

    # When scattered requests are cut into a new chunk, as retries are
    with store.begin() as conn:
        sizes = bodies.body_sizes(conn, job_pk, retried)
        (new_chunk,) = cut_into_chunks(conn, job_pk, 2, sizes, load_settings())
        body = bodies.chunk_body(conn, new_chunk, len(retried))
        assert _spooled(conn, new_chunk, len(retried)) == body
        found = dict(bodies.iter_bodies(conn, job_pk, retried))

    # Then sizes, bodies and the create body are those of the input
    assert sizes == [(idx, len(expected[idx])) for idx in retried]
    assert found == {idx: expected[idx] for idx in retried}
    assert body == batch_body(expected[idx] for idx in retried)
    sent = [r["custom_id"] for r in orjson.loads(body)["requests"]]
    assert sent == [orjson.loads(expected[idx])["custom_id"] for idx in retried]
    store.close()


def test_a_missing_body_is_an_error_not_a_wrong_body(tmp_path: Path) -> None:
    store, job_pk, _ = _setup(tmp_path, 5, chunk_size=10)
    with store.begin() as conn, pytest.raises(LookupError, match="request 7"):
        list(bodies.iter_bodies(conn, job_pk, [7]))
    store.close()
