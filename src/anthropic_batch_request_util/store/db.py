"""Opening the job store: the SQL engine, SQLite's pragmas, URLs, and migrating on open.

SQLAlchemy Core over SQLite (default, WAL mode) or PostgreSQL. The broker only carries ids;
whatever should happen next can always be rebuilt from the store's tables.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from ..errors import StoreError
from .migrations import MIGRATIONS
from .schema import schema_migrations

__all__ = ["Connection", "Store", "now", "row_dict", "safe_url"]

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
            self.migrate()
        except sa.exc.SQLAlchemyError as error:
            raise StoreError(f"cannot open the job store {safe_url(url)}: {error}") from error

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """One transaction."""
        with self.engine.begin() as conn:
            yield conn

    def migrate(self) -> None:
        """Apply the migrations this store has not seen yet, in order."""
        with self.engine.begin() as conn:
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
