"""The job store's tables as they are today, and the statuses their rows move through.

These definitions are what queries use. Migrations (migrations.py) never import them: each
one carries its own frozen DDL, so changing a table here cannot change what an old
migration did.
"""

from __future__ import annotations

from enum import StrEnum

import sqlalchemy as sa

__all__ = [
    "ACTIVE_CHUNK_STATUSES",
    "ACTIVE_JOB_STATUSES",
    "ENDED_JOB_STATUSES",
    "FINAL_REQUEST_STATUSES",
    "ChunkStatus",
    "JobStatus",
    "RequestStatus",
    "attempts",
    "body_segments",
    "chunks",
    "exports",
    "jobs",
    "locks",
    "metadata",
    "outputs",
    "requests",
    "result_segments",
    "schema_migrations",
]


class JobStatus(StrEnum):
    """Where a job stands as a whole."""

    INGESTING = "ingesting"  #: the input is being read; not visible to workers yet
    RUNNING = "running"  #: chunks are being submitted, polled and fetched
    CANCELING = "canceling"  #: the user asked to cancel; waiting for batches to end
    FINISHED = "finished"  #: every request has a final status; output files written
    FAILED = "failed"  #: stopped by an error that needs the user (e.g. a rejected key)
    PAUSED = "paused"  #: stopped by its budget or after its canary; `abr resume` goes on


class ChunkStatus(StrEnum):
    """The life of one chunk: one Anthropic batch."""

    PENDING = "pending"  #: cut, not yet sent
    SUBMITTING = "submitting"  #: claimed, submit intent written, create may be in flight
    SUBMITTED = "submitted"  #: the batch id is known; polling
    ENDED = "ended"  #: the batch ended; results still to fetch
    DONE = "done"  #: results are in the store
    FAILED = "failed"  #: the API refused the batch for good; its requests are errored
    CANCELED = "canceled"  #: canceled before it was ever sent


class RequestStatus(StrEnum):
    """The status of one input request."""

    QUEUED = "queued"  #: in a chunk that has not finished
    RETRY = "retry"  #: failed retryably; waits for a new chunk
    SUCCEEDED = "succeeded"
    ERRORED = "errored"
    CANCELED = "canceled"
    EXPIRED = "expired"


FINAL_REQUEST_STATUSES = (
    RequestStatus.SUCCEEDED,
    RequestStatus.ERRORED,
    RequestStatus.CANCELED,
    RequestStatus.EXPIRED,
)
#: job statuses in which workers move a job on (and finalize it)
ACTIVE_JOB_STATUSES = (JobStatus.RUNNING, JobStatus.CANCELING)
#: job statuses in which nothing moves until the user acts
ENDED_JOB_STATUSES = (JobStatus.FINISHED, JobStatus.FAILED, JobStatus.PAUSED)
ACTIVE_CHUNK_STATUSES = (
    ChunkStatus.PENDING,
    ChunkStatus.SUBMITTING,
    ChunkStatus.SUBMITTED,
    ChunkStatus.ENDED,
)

metadata = sa.MetaData()

schema_migrations = sa.Table(
    "schema_migrations",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("applied_at", sa.Float, nullable=False),
)

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(64), unique=True, nullable=True),  # set once ingested
    sa.Column("fingerprint", sa.String(64), nullable=True, index=True),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("input_path", sa.Text, nullable=False),
    sa.Column("input_format", sa.String(20), nullable=False),
    sa.Column("settings_json", sa.LargeBinary, nullable=False),
    sa.Column("total_requests", sa.Integer, nullable=False, default=0),
    sa.Column("next_chunk_seq", sa.Integer, nullable=False, default=0),
    sa.Column("output_dir", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("finished_at", sa.Float, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("max_cost_usd", sa.Float, nullable=True),  # --max-cost; None: no budget
    # requests from this input index on are held back (a canary); None: none held
    sa.Column("hold_from_idx", sa.Integer, nullable=True),
    sa.Column("stop_reason", sa.String(20), nullable=True),  # why it is paused
)

chunks = sa.Table(
    "chunks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("job_pk", sa.Integer, sa.ForeignKey("jobs.pk"), nullable=False, index=True),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("round", sa.Integer, nullable=False),  # 1 = first submission, 2.. = retries
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("request_count", sa.Integer, nullable=False),
    sa.Column("body_bytes", sa.BigInteger, nullable=False),
    sa.Column("batch_id", sa.String(100), nullable=True, unique=True),
    sa.Column("intent_at", sa.Float, nullable=True),
    sa.Column("submitted_at", sa.Float, nullable=True),
    sa.Column("ended_at", sa.Float, nullable=True),
    sa.Column("fetched_at", sa.Float, nullable=True),
    sa.Column("processing_status", sa.String(20), nullable=True),
    sa.Column("counts_json", sa.LargeBinary, nullable=True),
    sa.Column("poll_interval", sa.Float, nullable=True),
    sa.Column("next_poll_at", sa.Float, nullable=True),
    sa.Column("lease_owner", sa.String(200), nullable=True),
    sa.Column("lease_token", sa.Integer, nullable=False, default=0),
    sa.Column("lease_expires_at", sa.Float, nullable=True),
    sa.Column("fetch_attempts", sa.Integer, nullable=False, default=0),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("updated_at", sa.Float, nullable=False),
    # its requests' worst cases summed, once the budget check let it go (or a budget was set)
    sa.Column("worst_usd", sa.Float, nullable=True),
    sa.UniqueConstraint("job_pk", "seq"),
)

requests = sa.Table(
    "requests",
    metadata,
    sa.Column("job_pk", sa.Integer, sa.ForeignKey("jobs.pk"), primary_key=True),
    sa.Column("idx", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("custom_id", sa.String(64), nullable=False),
    sa.Column("chunk_id", sa.Integer, nullable=True, index=True),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("error_type", sa.String(60), nullable=True),
    sa.Column("input_tokens", sa.BigInteger, nullable=False, default=0),
    sa.Column("output_tokens", sa.BigInteger, nullable=False, default=0),
    sa.Column("cache_creation_tokens", sa.BigInteger, nullable=False, default=0),
    sa.Column("cache_read_tokens", sa.BigInteger, nullable=False, default=0),
    sa.Column("cost_usd", sa.Float, nullable=True),  # what the last attempt cost
    sa.Column("worst_usd", sa.Float, nullable=True),  # the most it can cost; set with a budget
    # Everything progress and summaries count or sum, so that a look at a million-request
    # job reads this index alone (see migration 0004).
    sa.Index(
        "ix_requests_tally",
        "job_pk",
        "status",
        "idx",
        "error_type",
        "attempts",
        "input_tokens",
        "output_tokens",
        "cache_creation_tokens",
        "cache_read_tokens",
        "cost_usd",
    ),
)

#: The results-file line of a request answered in a retry, or ended without an answer: it
#: wins over a line stored with its first-round chunk (see result_lines.py).
outputs = sa.Table(
    "outputs",
    metadata,
    sa.Column("job_pk", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("idx", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("output", sa.LargeBinary, nullable=False),
)

#: Request bodies, a run of consecutive requests of one chunk per row (see bodies.py): the
#: bodies joined by commas as a create body holds them, and each one's end offset (uint32).
body_segments = sa.Table(
    "bodies",
    metadata,
    sa.Column("job_pk", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("first_idx", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("chunk_id", sa.Integer, nullable=False, index=True),
    sa.Column("request_count", sa.Integer, nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Column("ends", sa.LargeBinary, nullable=False),
)

#: The results-file lines of a first-round chunk, sorted by input index (see
#: result_lines.py): their indexes (uint32), end offsets (uint32) and the lines themselves,
#: joined by newlines.
result_segments = sa.Table(
    "result_lines",
    metadata,
    sa.Column("chunk_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("first_idx", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("job_pk", sa.Integer, nullable=False),
    sa.Column("request_count", sa.Integer, nullable=False),
    sa.Column("idxs", sa.LargeBinary, nullable=False),
    sa.Column("ends", sa.LargeBinary, nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
)

#: One row per answer a request got: which chunk (so which round and batch) and how it
#: ended. The request row keeps only the last; this is the history `abr status` sums up.
attempts = sa.Table(
    "attempts",
    metadata,
    sa.Column("chunk_id", sa.Integer, sa.ForeignKey("chunks.id"), primary_key=True),
    sa.Column("idx", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("outcome", sa.String(20), nullable=False),
    sa.Column("error_type", sa.String(60), nullable=True),
)

#: Every results file and record written for a job, and where: a job's output folder is
#: chosen again at each run, and `abr results --out` writes anywhere.
exports = sa.Table(
    "exports",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("job_pk", sa.Integer, nullable=False, index=True),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("written_at", sa.Float, nullable=False),
)

locks = sa.Table(
    "locks",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("owner", sa.String(200), nullable=True),
    sa.Column("token", sa.Integer, nullable=False, default=0),
    sa.Column("expires_at", sa.Float, nullable=True),
)
