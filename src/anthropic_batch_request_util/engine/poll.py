"""Poll: watch all of a job's submitted batches with `list` pages, not one call per batch.

One look (`watch_batches`) lists the account's batches newest first, up to 1,000 a page,
until it has seen every batch the job has in flight or has gone past the oldest of them.
Each batch seen updates its chunk; an ended one moves SUBMITTED -> ENDED (a guarded update:
only one look wins) and is handed to fetch. `retrieve` is used only for the few batches a
list did not show. So the calls grow with time, not with the number of batches.

Exactly one chain of looks runs per job: a look holds the job's watch lock in the store
until just before the next look is due, so a second message (from a submit, the
reconciler, a redelivery) finds it taken and is dropped. A lost chain leaves the lock to
expire; the reconciler then starts a new one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import anthropic
import orjson
from anthropic.types.messages import MessageBatch

from ..api import HttpFailure, classify_http_error, error_message, retry_after_seconds
from ..config import Settings
from ..store import ACTIVE_JOB_STATUSES, locks
from ..store import chunks as chunk_rows
from ..store import jobs as job_rows
from ..store.db import now
from .runtime import Action, Runtime, Step

__all__ = ["watch_batches", "watch_lock"]

log = logging.getLogger(__name__)

NOT_FOUND_GRACE_S = 60.0  #: seconds after create during which a batch may be missing
POLL_GROWTH = 1.5  #: each look that sees nothing end waits this much longer, up to the max
#: seconds a look that finds the watch lock about to free waits for it: a chain's own
#: next message may run a moment before the lock it set expires
EARLY_S = 0.25
LIST_PAGE = 1000  #: batches per list page (the API's most)
MAX_LIST_PAGES = 20  #: pages one look reads at most; older batches are retrieved instead
MAX_RETRIEVES = 5  #: batches a look retrieves one by one at most
CREATED_SKEW_S = 5.0  #: seconds of clock difference allowed between us and the API


def watch_lock(job_pk: int) -> str:
    """The name of the store lock held by a job's chain of looks."""
    return f"watch:{job_pk}"


def watch_batches(rt: Runtime, job_pk: int) -> list[Action]:
    """Look once at all of the job's batches in flight; schedule the next look."""
    name = watch_lock(job_pk)
    token = _take_watch_lock(rt, name)
    if token is None:
        return []  # another look runs, or is due later: its chain goes on
    try:
        with locks.heartbeat(lambda: locks.renew(rt.store, name, token)):
            actions, interval = _look(rt, job_pk)
    except BaseException:
        _unlock(rt, name, token)
        raise
    if interval is None:
        _unlock(rt, name, token)
        # a submit that queued a look while this one held the lock must not go unwatched
        return actions + _restart_if_submitted(rt, job_pk)
    # held until the next look is due, so that duplicate messages are dropped
    locks.renew(rt.store, name, token, ttl_s=interval)
    return [*actions, Action(Step.WATCH, job_pk, interval)]


def _take_watch_lock(rt: Runtime, name: str) -> int | None:
    token = locks.try_lock(rt.store, name, rt.worker_name())
    if token is not None:
        return token
    expires = locks.lock_expires_at(rt.store, name)
    wait = None if expires is None else expires - now()
    if wait is None or wait > EARLY_S:
        return None
    time.sleep(max(wait, 0.0) + 0.001)
    return locks.try_lock(rt.store, name, rt.worker_name())


def _unlock(rt: Runtime, name: str, token: int) -> None:
    with rt.store.begin() as conn:
        locks.release(conn, name, token)


def _restart_if_submitted(rt: Runtime, job_pk: int) -> list[Action]:
    with rt.store.begin() as conn:
        if job_rows.get_job_by_pk(conn, job_pk).status not in ACTIVE_JOB_STATUSES:
            return []
        watched = chunk_rows.watched_chunks(conn, job_pk)
    interval = rt.settings_for(job_pk).batch.poll_interval
    return [Action(Step.WATCH, job_pk, interval)] if watched else []


def _look(rt: Runtime, job_pk: int) -> tuple[list[Action], float | None]:
    """The fetches due and the seconds until the next look (None: nothing left to watch)."""
    with rt.store.begin() as conn:
        if job_rows.get_job_by_pk(conn, job_pk).status not in ACTIVE_JOB_STATUSES:
            return [], None
        watched = {c.batch_id: c for c in chunk_rows.watched_chunks(conn, job_pk)}
    if not watched:
        return [], None
    settings = rt.settings_for(job_pk)
    client = rt.client(job_pk)
    try:
        found = _list_watched(client, watched)
        found += _retrieve_missing(client, watched, {b.id for b in found})
    except anthropic.APIError as error:
        return _look_failed(rt, job_pk, error)
    interval = _next_interval(settings, watched, found)
    actions = _record(rt, job_pk, watched, found, interval)
    return actions, None if _all_ended(watched, found) else interval


def _list_watched(
    client: anthropic.Anthropic, watched: dict[str, chunk_rows.Watched]
) -> list[MessageBatch]:
    """The watched batches a newest-first list shows, read until all are seen or the list
    is older than the oldest of them."""
    oldest = min(c.submitted_at for c in watched.values()) - CREATED_SKEW_S
    found: list[MessageBatch] = []
    for page_number, page in enumerate(_pages(client)):
        found += [batch for batch in page.data if batch.id in watched]
        older = bool(page.data) and page.data[-1].created_at.timestamp() < oldest
        if len(found) == len(watched) or older or page_number + 1 >= MAX_LIST_PAGES:
            break
    return found


def _pages(client: anthropic.Anthropic) -> Iterator[anthropic.pagination.SyncPage[MessageBatch]]:
    page = client.messages.batches.list(limit=LIST_PAGE)
    yield page
    while page.has_next_page():
        page = page.get_next_page()
        yield page


def _retrieve_missing(
    client: anthropic.Anthropic, watched: dict[str, chunk_rows.Watched], seen: set[str]
) -> list[MessageBatch]:
    """Retrieve the few batches the list did not show and that are old enough that it
    should have (a batch moments old may not be listed yet)."""
    t = now()
    missing = [
        c.batch_id
        for c in watched.values()
        if c.batch_id not in seen and t - c.submitted_at > NOT_FOUND_GRACE_S
    ]
    return [client.messages.batches.retrieve(batch_id) for batch_id in missing[:MAX_RETRIEVES]]


def _record(
    rt: Runtime,
    job_pk: int,
    watched: dict[str, chunk_rows.Watched],
    found: list[MessageBatch],
    interval: float,
) -> list[Action]:
    """One transaction: ended batches move their chunk to ENDED (a fetch each), the others
    their counts, and every watched chunk its next look."""
    ended: list[Action] = []
    progress: list[tuple[int, str, bytes]] = []
    with rt.store.begin() as conn:
        for batch in found:
            chunk_id = watched[batch.id].id
            counts = orjson.dumps(batch.request_counts.model_dump())
            if batch.processing_status != "ended":
                progress.append((chunk_id, batch.processing_status, counts))
            elif chunk_rows.mark_ended(conn, chunk_id, counts):
                ended.append(Action(Step.FETCH, chunk_id))
        chunk_rows.note_watched(conn, progress, job_pk, interval)
    return ended


def _next_interval(
    settings: Settings, watched: dict[str, chunk_rows.Watched], found: list[MessageBatch]
) -> float:
    """Back to the shortest wait when something ended or a batch was just submitted
    (its chunk starts at the shortest); otherwise a little longer each time."""
    base = settings.batch.poll_interval
    if any(batch.processing_status == "ended" for batch in found):
        return base
    current = min((c.poll_interval or base) for c in watched.values())
    return min(current * POLL_GROWTH, settings.batch.poll_max_interval)


def _all_ended(watched: dict[str, chunk_rows.Watched], found: list[MessageBatch]) -> bool:
    ended = {batch.id for batch in found if batch.processing_status == "ended"}
    return ended >= watched.keys()


def _look_failed(
    rt: Runtime, job_pk: int, error: anthropic.APIError
) -> tuple[list[Action], float | None]:
    """A refused key or a batch gone for good (only batches past the grace time are
    retrieved) stops the job; anything else waits."""
    if classify_http_error(error) == HttpFailure.FATAL:
        with rt.store.begin() as conn:
            job_rows.fail_job(conn, job_pk, f"watching batches: {error_message(error)}")
        return [], None
    wait = max(retry_after_seconds(error, 1), rt.settings_for(job_pk).batch.poll_interval)
    log.warning("watching job %s failed (%s); again in %.1fs", job_pk, error, wait)
    return [], wait
