"""Where a job's files go: the output folder each run chooses, and every file written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa

from .db import Connection, now
from .schema import exports, jobs

__all__ = ["add_export", "job_exports", "set_output_dir"]


def set_output_dir(conn: Connection, job_pk: int, output_dir: Path) -> bool:
    """Send the job's next output files to `output_dir`; whether it changed."""
    folder = str(output_dir.resolve())
    stmt = (
        sa.update(jobs)
        .where(jobs.c.pk == job_pk, jobs.c.output_dir != folder)
        .values(output_dir=folder, updated_at=now())
    )
    return conn.execute(stmt).rowcount == 1


def add_export(conn: Connection, job_pk: int, kind: str, path: Path) -> None:
    """Note that a file of `kind` (results, record, jsonl, csv) was written at `path`."""
    stmt = exports.insert().values(
        job_pk=job_pk, kind=kind, path=str(path.absolute()), written_at=now()
    )
    conn.execute(stmt)


def job_exports(conn: Connection, job_pk: int) -> list[dict[str, Any]]:
    """Every file written for the job, oldest first: the latest write per (kind, path)."""
    stmt = (
        sa.select(exports.c.kind, exports.c.path, sa.func.max(exports.c.written_at))
        .where(exports.c.job_pk == job_pk)
        .group_by(exports.c.kind, exports.c.path)
        .order_by(sa.func.max(exports.c.written_at))
    )
    return [{"kind": k, "path": p, "written_at": t} for k, p, t in conn.execute(stmt)]
