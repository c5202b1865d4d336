"""Worker heartbeats: who is working on jobs right now, kept as rows of the locks table.

An `abr worker` process beats as `worker:<owner>` (it takes work of every job); an
`abr run`/`resume` that runs its job on threads of its own beats as `job:<pk>:<owner>`.
A beat lasts `HEARTBEAT_TTL_S` unless renewed, and a clean exit removes it, so a job
nothing works on is seen within seconds of an interruption and at most that long after a
kill. Owners are "host:pid:…", so the lock reaper also frees the beats of dead processes.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import sqlalchemy as sa

from ..errors import StoreError
from .db import Connection, Store, now
from .locks import heartbeat
from .schema import locks

__all__ = [
    "HEARTBEAT_EVERY_S",
    "HEARTBEAT_TTL_S",
    "beat",
    "beating",
    "forget",
    "heartbeat_name",
    "nobody_working",
    "working_on",
]

HEARTBEAT_EVERY_S = 10.0  #: seconds between two beats of a live worker
HEARTBEAT_TTL_S = 3 * HEARTBEAT_EVERY_S  #: seconds a beat counts as alive without renewal
_WORKER = "worker:"
_JOB = "job:"


def heartbeat_name(job_pk: int | None = None) -> str:
    """This process's beat: for one job (`job_pk`), or for every job (a worker)."""
    owner = f"{socket.gethostname()}:{os.getpid()}"
    return f"{_WORKER}{owner}" if job_pk is None else f"{_JOB}{job_pk}:{owner}"


def beat(store: Store, name: str, ttl_s: float = HEARTBEAT_TTL_S) -> None:
    """Say that `name` is alive for `ttl_s` more seconds."""
    owner = name.split(":", 2)[-1] if name.startswith(_JOB) else name.removeprefix(_WORKER)
    values = {"owner": owner, "expires_at": now() + ttl_s}
    with store.begin() as conn:
        if conn.execute(sa.update(locks).where(locks.c.name == name).values(**values)).rowcount:
            return
        conn.execute(locks.insert().values(name=name, token=0, **values))


def forget(store: Store, name: str) -> None:
    """A clean exit: `name` no longer works on anything."""
    with store.begin() as conn:
        conn.execute(sa.delete(locks).where(locks.c.name == name))


def working_on(conn: Connection, job_pk: int) -> int:
    """How many live processes can move job `job_pk` on: workers, and a run of that job."""
    stmt = sa.select(sa.func.count()).where(
        locks.c.expires_at > now(),
        sa.or_(locks.c.name.startswith(_WORKER), locks.c.name.startswith(f"{_JOB}{job_pk}:")),
    )
    return int(conn.execute(stmt).scalar_one())


def nobody_working(store: Store, job_pk: int) -> bool:
    """Whether no live process can move the job on (no worker, no run of it)."""
    with store.begin() as conn:
        return working_on(conn, job_pk) == 0


@contextmanager
def beating(store: Store, name: str) -> Iterator[None]:
    """Beat as `name` while the block runs; gone from the store when it ends."""
    beat(store, name)
    try:
        with heartbeat(lambda: beat(store, name), HEARTBEAT_EVERY_S):
            yield
    finally:
        with suppress(sa.exc.SQLAlchemyError, StoreError):  # the beat expires on its own
            forget(store, name)
