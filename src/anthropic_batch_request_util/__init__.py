"""abr — the Anthropic Batch Request utility.

Takes a file of many Claude requests and gets every one answered through the Message
Batches API: chunked, retried, resumable, never paid for twice.
"""

from __future__ import annotations

from .errors import (
    AbrError,
    ApiError,
    BudgetExceededError,
    InputError,
    JobNotFoundError,
    LocalFaultError,
    MissingApiKeyError,
    SettingsError,
    StoreError,
    StoreFullError,
    StoreUnavailableError,
    UsageError,
)

__version__ = "0.1.0"

__all__ = [
    "AbrError",
    "ApiError",
    "BudgetExceededError",
    "InputError",
    "JobNotFoundError",
    "LocalFaultError",
    "MissingApiKeyError",
    "SettingsError",
    "StoreError",
    "StoreFullError",
    "StoreUnavailableError",
    "UsageError",
    "__version__",
]
