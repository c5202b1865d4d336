"""Fixtures for the integration tests that need a service of their own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from .helpers import unavailable

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@pytest.fixture
def pg_admin() -> Iterator[sa.Engine]:
    """An autocommit connection pool to the PostgreSQL server's `postgres` database."""
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    yield admin
    admin.dispose()


@pytest.fixture
def pg_url(pg_admin: sa.Engine) -> Iterator[str]:
    """A PostgreSQL database of this test's own, dropped afterwards. Locally the test is
    skipped when PostgreSQL is down; in CI it fails."""
    name = f"abr_test_{uuid.uuid4().hex[:10]}"
    try:
        with pg_admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError:
        unavailable("PostgreSQL")
    yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    with pg_admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
