"""The engine steps driven inline (no Celery) against the emulator and a SQLite store:
the exactly-once rules, one step at a time."""

from __future__ import annotations

import time
from pathlib import Path

import sqlalchemy as sa

from anthropic_batch_request_util.config import load_settings
from anthropic_batch_request_util.emulator import Emulator
from anthropic_batch_request_util.engine import fetch as engine_fetch
from anthropic_batch_request_util.engine import finalize as engine_finalize
from anthropic_batch_request_util.engine import poll as engine_poll
from anthropic_batch_request_util.engine import submit as engine
from anthropic_batch_request_util.engine.ingest import ingest
from anthropic_batch_request_util.engine.runtime import Action, Runtime, Step
from anthropic_batch_request_util.engine.tasks import client_factory
from anthropic_batch_request_util.store import ChunkStatus, JobStatus, Store
from anthropic_batch_request_util.store import chunks as chunk_store
from anthropic_batch_request_util.store.schema import chunks, jobs

from .helpers import write_original

STEPS = {
    Step.SUBMIT: engine.submit_chunk,
    Step.WATCH: engine_poll.watch_batches,
    Step.FETCH: engine_fetch.fetch_results,
    Step.FINALIZE: engine_finalize.finalize_job,
}


def drive(rt: Runtime, actions: list[Action], timeout: float = 30) -> None:
    """Run actions inline, each when it is due, until none are left."""
    queue = [(time.monotonic() + a.delay, a) for a in actions]
    deadline = time.monotonic() + timeout
    while queue:
        assert time.monotonic() < deadline, "the job did not settle"
        queue.sort(key=lambda item: item[0])
        due, action = queue.pop(0)
        time.sleep(max(0.0, due - time.monotonic()))
        queue += [(time.monotonic() + a.delay, a) for a in STEPS[action.step](rt, action.target)]


def setup(tmp_path: Path, n: int) -> tuple[Runtime, int, int]:
    settings = load_settings(
        overrides={"batch.poll_interval": "0.05", "batch.poll_max_interval": "0.1"}
    )
    store = Store(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    found = ingest(store, write_original(tmp_path / "in.json", n), settings, tmp_path / "out")
    with store.begin() as conn:
        chunk_id = conn.execute(
            sa.select(chunks.c.id).where(chunks.c.job_pk == found.job_pk)
        ).scalar_one()
    return Runtime(store, client_factory("sk-ant-test-key")), found.job_pk, chunk_id


def test_a_create_whose_reply_was_lost_is_adopted_not_sent_again(
    emulator: Emulator, tmp_path: Path
) -> None:
    rt, job_pk, chunk_id = setup(tmp_path, 5)

    # Given a create that the API carries out but whose reply never arrives
    emulator.set_faults(drop_after=1.0)
    follow_up = engine.submit_chunk(rt, chunk_id)
    assert emulator.stats()["batches_created"] == 1
    with rt.store.begin() as conn:
        assert chunk_store.get_chunk(conn, chunk_id).status == ChunkStatus.SUBMITTING  # type: ignore[union-attr]

    # When the submit step runs again once the API answers
    emulator.set_faults(drop_after=0.0)
    drive(rt, follow_up)

    # Then the batch that was made is adopted, nothing is created twice, the job finishes
    stats = emulator.stats(submissions=True)
    assert stats["batches_created"] == 1
    assert set(stats["submissions"].values()) == {1}
    with rt.store.begin() as conn:
        assert (
            conn.execute(sa.select(jobs.c.status).where(jobs.c.pk == job_pk)).scalar_one()
            == JobStatus.FINISHED
        )
    rt.store.close()


def test_a_stale_lease_cannot_write_after_another_worker_took_over(
    emulator: Emulator, tmp_path: Path
) -> None:
    rt, _, chunk_id = setup(tmp_path, 2)

    # Given a worker whose lease expired and a second worker that took the chunk over
    first = chunk_store.claim(rt.store, chunk_id, "host:1:1", [ChunkStatus.PENDING], lease_s=-1)
    second = chunk_store.claim(rt.store, chunk_id, "host:2:1", [ChunkStatus.PENDING])
    assert first is not None and second is not None and second.token > first.token

    # When the first worker tries to move the chunk on
    with rt.store.begin() as conn:
        moved = chunk_store.transition(conn, first, ChunkStatus.PENDING, ChunkStatus.SUBMITTING)

    # Then nothing is written, and the submit step of a third worker finds the chunk taken
    assert not moved
    assert engine.submit_chunk(rt, chunk_id) == []
    assert emulator.stats()["batches_created"] == 0
    rt.store.close()


def test_a_failed_job_is_final_steps_queued_before_change_nothing(
    emulator: Emulator, tmp_path: Path
) -> None:
    from anthropic_batch_request_util.engine.tasks import job_moves_on
    from anthropic_batch_request_util.store import jobs as job_store
    from anthropic_batch_request_util.store.jobs import snapshot

    # Given a job whose batch has ended, its results not fetched yet
    rt, job_pk, chunk_id = setup(tmp_path, 5)
    engine.submit_chunk(rt, chunk_id)
    deadline = time.monotonic() + 30
    while _chunk_status(rt, chunk_id) != ChunkStatus.ENDED:
        assert time.monotonic() < deadline
        engine_poll.watch_batches(rt, job_pk)
        time.sleep(0.05)

    # When the job fails, and the fetch queued before that runs
    with rt.store.begin() as conn:
        assert job_store.fail_job(conn, job_pk, "stopped for a test")
    engine_fetch.fetch_results(rt, chunk_id)

    # Then nothing changed: no answer stored, and no step of it is run any more
    current = snapshot(rt.store, job_pk)
    assert current.job.status == JobStatus.FAILED
    assert current.counts.final == 0
    assert not job_moves_on(rt, Step.FETCH, chunk_id)
    assert not job_moves_on(rt, Step.FINALIZE, job_pk)


def _chunk_status(rt: Runtime, chunk_id: int) -> ChunkStatus:
    with rt.store.begin() as conn:
        chunk = chunk_store.get_chunk(conn, chunk_id)
    assert chunk is not None
    return chunk.status
