"""Opening the job store: the SQL engine, SQLite's pragmas, URLs, and migrating on open.

SQLAlchemy Core over SQLite (default, WAL mode) or PostgreSQL. The broker only carries ids;
whatever should happen next can always be rebuilt from the store's tables.

A store that fails (a damaged or foreign file, a full disk, a server that refuses
connections) raises a `StoreError` of one line naming the file and what to do: never
SQLAlchemy's message, which holds the statement and a link.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from ..errors import StoreError, StoreFullError, StoreUnavailableError
from .migrations import MIGRATIONS
from .schema import schema_migrations

__all__ = ["Connection", "Store", "now", "row_dict", "safe_url", "store_path"]

SQLITE_BUSY_TIMEOUT_S = 60.0  #: seconds a SQLite writer waits for the lock
SQLITE_PAGE_BYTES = 16384  #: page size of a new SQLite store (fewer pages per blob)


def _sqlite_on_connect(dbapi_conn: sqlite3.Connection, _record: object) -> None:
    # WAL lets readers (status, progress) run while a worker writes.
    cursor = dbapi_conn.cursor()
    cursor.execute(f"PRAGMA page_size={SQLITE_PAGE_BYTES}")  # a new store only
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
    cursor.close()


def create_sql_engine(url: str) -> Engine:
    """An SQLAlchemy engine for `url`, tuned for the job store's access pattern."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            url,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False},
        )
        event.listen(engine, "connect", _sqlite_on_connect)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return sa.create_engine(url, pool_pre_ping=True)


class Store:
    """An open job store, migrated to the schema this version of abr knows."""

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            self.engine = create_sql_engine(url)
        except OSError as error:
            raise StoreError(
                f"cannot make the folder of the job store {store_path(url)}: "
                f"{error.strerror}: choose another --output, or set database_url"
            ) from error
        #: give-backs (of leases, locks) the store could not take when it was unreachable
        self._owed: list[Callable[[], object]] = []
        self._owed_lock = threading.Lock()
        with self.begin():  # a damaged file fails here, with its own message
            pass
        self.migrate()

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """One transaction. The store's own faults become a one-line `StoreError`; a
        broken constraint stays an `IntegrityError` for the caller that expects it."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except sa.exc.IntegrityError:
            raise
        except sa.exc.DBAPIError as error:
            raise store_fault(self.url, error) from error
        if self._owed:
            self._settle()

    def give_back(self, release: Callable[[], object]) -> None:
        """Run `release` (a lease or lock given back); if the store cannot be reached, run
        it after the next transaction that works, so that what this process held is free
        again as soon as the store is back, not when it expires. Releases are fenced by
        token: a late one frees nothing that was taken over meanwhile."""
        try:
            release()
        except StoreUnavailableError:
            with self._owed_lock:
                self._owed.append(release)

    def _settle(self) -> None:
        with self._owed_lock:
            owed, self._owed = self._owed, []
        for release in owed:
            self.give_back(release)

    def migrate(self) -> None:
        """Apply the migrations this store has not seen yet, in order."""
        with self.begin() as conn:
            _refuse_foreign(conn, self.url)
            schema_migrations.create(conn, checkfirst=True)
            done = set(conn.execute(sa.select(schema_migrations.c.name)).scalars())
            unknown = done - {name for name, _ in MIGRATIONS}
            if unknown:
                raise StoreError(
                    f"the job store {safe_url(self.url)} was made by a newer abr "
                    f"(schema {max(unknown)}): upgrade abr, or point database_url elsewhere"
                )
            for name, apply in MIGRATIONS:
                if name not in done:
                    apply(conn)
                    conn.execute(schema_migrations.insert().values(name=name, applied_at=now()))


def _refuse_foreign(conn: Connection, url: str) -> None:
    """A SQLite file made by another program is left alone: abr adds no tables to it."""
    if not url.startswith("sqlite"):
        return  # a server database may well hold other schemas' tables
    names = set(sa.inspect(conn).get_table_names())
    if names and schema_migrations.name not in names:
        raise StoreError(
            f"{store_path(url)} is not an abr job store (it holds other tables): "
            "point database_url elsewhere, or choose another --output"
        )


#: SQLite's primary result codes that say the file itself cannot be read as a store
_SQLITE_DAMAGED = {sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT}


def store_fault(url: str, error: sa.exc.DBAPIError) -> StoreError:
    """The one-line error a failing store operation is, from the driver's own error."""
    where = store_path(url)
    cause = str(error.orig).splitlines()[0] if error.orig is not None else type(error).__name__
    code = getattr(error.orig, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    if primary in _SQLITE_DAMAGED:
        return StoreError(
            f"{where} is not a readable abr job store ({cause}): restore it from a backup, "
            "or move it away (a new store is made), or point database_url elsewhere"
        )
    if primary == sqlite3.SQLITE_FULL:
        full = f"the job store {where} is full ({cause})"
        return StoreFullError(
            f"{full}: free space there, then run the same command again (what is stored stays)",
            where,
            full,
        )
    if not url.startswith("sqlite") and isinstance(error, sa.exc.OperationalError):
        reason = f"{where}: {_server_said(cause)}"
        return StoreUnavailableError(
            f"the job store cannot be reached ({reason}): start its server or let it take "
            "connections, then run the command again (a running job waits for it)",
            reason,
        )
    return StoreError(f"the job store {where} failed: {cause}")


def _server_said(cause: str) -> str:
    """The server's own words from a driver's message: 'connection to server at "…",
    port 5432 failed: FATAL:  database "x" is not currently accepting connections' gives
    'database "x" is not currently accepting connections'."""
    said = cause.rsplit("failed: ", 1)[-1].removeprefix("FATAL:")
    return " ".join(said.split())


def store_path(url: str) -> str:
    """How messages name a store: its file for SQLite, its URL without password otherwise."""
    if url.startswith("sqlite:///"):
        return url.removeprefix("sqlite:///")
    return safe_url(url)


def safe_url(url: str) -> str:
    """The URL with any password hidden, for messages."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<invalid database url>"


def now() -> float:
    return time.time()


def row_dict(row: Any) -> dict[str, Any]:
    return dict(row._mapping)
