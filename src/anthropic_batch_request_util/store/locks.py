"""Store-wide locks with fencing tokens, the heartbeat that keeps a lock or lease alive, and
the reaper that frees what dead processes of this host held.

A lock row carries an owner, a token bumped at every take, and an expiry: a holder that
dies blocks nobody for longer than the lock's time to live, and a holder whose lock was
taken over can tell by its token.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from ..errors import StoreError
from .db import Connection, Store, now
from .schema import chunks, locks

__all__ = [
    "LEASE_S",
    "LOCK_S",
    "acquire",
    "heartbeat",
    "held_lock",
    "lock_expires_at",
    "pid_alive",
    "reap_dead_leases",
    "release",
    "renew",
    "try_lock",
]

log = logging.getLogger(__name__)

LEASE_S = 60.0  #: seconds a lease lasts unless renewed; a dead holder blocks no longer
RENEW_EVERY_S = LEASE_S / 4  #: seconds between renewals of a lease still in use
LOCK_S = LEASE_S  #: seconds a store-wide lock lasts unless renewed


def acquire(conn: Connection, name: str, owner: str, ttl_s: float = LOCK_S) -> int | None:
    """Take lock `name` in this transaction if it is free or expired; its token, or None."""
    t = now()
    exists = conn.execute(sa.select(locks.c.name).where(locks.c.name == name)).first()
    if exists is None:
        try:
            with conn.begin_nested():
                conn.execute(locks.insert().values(name=name, token=0))
        except sa.exc.IntegrityError:
            pass  # another process made the row first
    token = conn.execute(
        sa.update(locks)
        .where(
            locks.c.name == name,
            sa.or_(locks.c.expires_at.is_(None), locks.c.expires_at < t),
        )
        .values(owner=owner, token=locks.c.token + 1, expires_at=t + ttl_s)
        .returning(locks.c.token)
    ).scalar()
    return None if token is None else int(token)


def release(conn: Connection, name: str, token: int) -> None:
    """Give lock `name` back, if it is still the holder of `token`'s."""
    conn.execute(
        sa.update(locks)
        .where(locks.c.name == name, locks.c.token == token)
        .values(owner=None, expires_at=None)
    )


def renew(store: Store, name: str, token: int, ttl_s: float = LOCK_S) -> None:
    """Push the lock's expiry out, if `token` still holds it."""
    with store.begin() as conn:
        conn.execute(
            sa.update(locks)
            .where(locks.c.name == name, locks.c.token == token)
            .values(expires_at=now() + ttl_s)
        )


def lock_expires_at(store: Store, name: str) -> float | None:
    """When lock `name` is free again (None: it is free now, or never was taken)."""
    with store.begin() as conn:
        found = conn.execute(sa.select(locks.c.expires_at).where(locks.c.name == name)).scalar()
    return None if found is None else float(found)


def try_lock(store: Store, name: str, owner: str, ttl_s: float = LOCK_S) -> int | None:
    """Take lock `name` in a transaction of its own; its token, or None."""
    with store.begin() as conn:
        return acquire(conn, name, owner, ttl_s)


@contextmanager
def held_lock(store: Store, name: str, owner: str, ttl_s: float = LOCK_S) -> Iterator[bool]:
    """Hold lock `name` for the block, renewed while it runs: yields whether it was taken
    (False: someone else holds it). Given back on exit."""
    token = try_lock(store, name, owner, ttl_s)
    if token is None:
        yield False
        return
    try:
        with heartbeat(lambda: renew(store, name, token, ttl_s)):
            yield True
    finally:
        store.give_back(lambda: _release_now(store, name, token))


def _release_now(store: Store, name: str, token: int) -> None:
    with store.begin() as conn:
        release(conn, name, token)


@contextmanager
def heartbeat(renew: Callable[[], object], every_s: float = RENEW_EVERY_S) -> Iterator[None]:
    """Call `renew` every `every_s` seconds in the background while the block runs, so a
    long step (a big upload or download) keeps its lease and a dead one loses it soon."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(every_s):
            try:
                renew()
            except (sa.exc.SQLAlchemyError, StoreError):
                log.warning("could not renew a lease", exc_info=True)

    thread = threading.Thread(target=beat, name="abr-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def pid_alive(pid: int) -> bool:
    """Whether process `pid` of this machine still runs (a zombie does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def _dead_here(owner: str | None, prefix: str) -> bool:
    """Whether `owner` ("host:pid:thread") names a process of this host that is gone."""
    if not owner or not owner.startswith(prefix):
        return False
    pid = owner.removeprefix(prefix).split(":", 1)[0]
    return pid.isdigit() and not pid_alive(int(pid))


def reap_dead_leases(store: Store) -> int:
    """Free chunk leases and store locks held by processes of this host that no longer
    exist (a killed run or worker), so nobody waits for them to expire. Returns how many."""
    prefix = f"{socket.gethostname()}:"
    t = now()
    freed = 0
    with store.begin() as conn:
        held = conn.execute(
            sa.select(chunks.c.id, chunks.c.lease_owner, chunks.c.lease_token).where(
                chunks.c.lease_owner.startswith(prefix), chunks.c.lease_expires_at > t
            )
        ).all()
        for chunk_id, owner, token in held:
            if _dead_here(owner, prefix):
                freed += conn.execute(
                    sa.update(chunks)
                    .where(chunks.c.id == chunk_id, chunks.c.lease_token == token)
                    .values(lease_owner=None, lease_expires_at=None)
                ).rowcount
        for name, owner, token in conn.execute(
            sa.select(locks.c.name, locks.c.owner, locks.c.token).where(locks.c.expires_at > t)
        ).all():
            if _dead_here(owner, prefix):
                freed += conn.execute(
                    sa.update(locks)
                    .where(locks.c.name == name, locks.c.token == token)
                    .values(owner=None, expires_at=None)
                ).rowcount
    return freed
