"""abr — the Anthropic Batch Request utility.

Takes many Claude requests and gets every one answered through the Message Batches API:
chunked, retried, resumable, never paid for twice. From Python::

    import anthropic_batch_request_util as abr

    job = abr.run("requests.jsonl")            # or a dict, or any iterable of requests
    for result in job.results():
        print(result.custom_id, result.status, result.text)

`run` and `submit` start a job (or find the one the same requests already are); `job` and
`jobs` find jobs in the store; a `Job` waits, resumes, cancels, retries and reads its
`Result`s; `Settings` are the settings.yaml keys built in code. Errors form one tree under
`AbrError` (see `errors`); Ctrl-C while waiting raises `JobInterrupted`.
"""

from __future__ import annotations

from .config import Settings
from .errors import (
    AbrError,
    ApiError,
    BudgetExceededError,
    InputError,
    JobInterrupted,
    JobNotFoundError,
    LocalFaultError,
    MissingApiKeyError,
    SettingsError,
    StoreError,
    StoreFullError,
    StoreUnavailableError,
    UsageError,
)
from .jobs import Job, job, jobs, run, submit
from .views import Chunk, Result, Status, Usage

__version__ = "0.1.0"

__all__ = [
    "AbrError",
    "ApiError",
    "BudgetExceededError",
    "Chunk",
    "InputError",
    "Job",
    "JobInterrupted",
    "JobNotFoundError",
    "LocalFaultError",
    "MissingApiKeyError",
    "Result",
    "Settings",
    "SettingsError",
    "Status",
    "StoreError",
    "StoreFullError",
    "StoreUnavailableError",
    "Usage",
    "UsageError",
    "__version__",
    "job",
    "jobs",
    "run",
    "submit",
]
