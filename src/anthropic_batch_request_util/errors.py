"""The errors abr raises, as one tree.

Callers catch at the level they need; the command line turns an `AbrError` into one line
on stderr and the exit code it carries, never a traceback::

    AbrError                      exit 1: something failed that the user did not cause
    ├── UsageError                exit 2: the user can fix it; nothing was sent or paid for
    │   ├── SettingsError         a settings file, environment variable or flag is wrong
    │   ├── InputError            the input file has problems (each with its location)
    │   ├── MissingApiKeyError    no ANTHROPIC_API_KEY in the environment or .env
    │   └── JobNotFoundError      no job with that id in the store
    ├── ApiError                  the Anthropic API failed after the retries we allow
    ├── StoreError                the job store is damaged, foreign, unreachable or failing
    │   ├── StoreUnavailableError the store's server refuses connections (waited out)
    │   └── StoreFullError        no room to write the store (also a LocalFaultError)
    ├── LocalFaultError           a local file or folder cannot be written, and waiting will
    │                             not cure it: disk full, read-only, permission denied
    └── BudgetExceededError       spending would pass the configured budget

    KeyboardInterrupt
    └── JobInterrupted            Ctrl-C while waiting: the job goes on, and can be resumed

`JobInterrupted` is a `KeyboardInterrupt`, not an `AbrError`: an `except Exception` meant for
failures must not swallow a Ctrl-C.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "AbrError",
    "ApiError",
    "BudgetExceededError",
    "InputError",
    "JobInterrupted",
    "JobNotFoundError",
    "LocalFaultError",
    "MissingApiKeyError",
    "SettingsError",
    "StoreError",
    "StoreFullError",
    "StoreUnavailableError",
    "UsageError",
]


class AbrError(Exception):
    """Base of every error abr raises on purpose. The message is meant for the user."""

    exit_code = 1

    def __reduce__(self) -> tuple[Any, ...]:
        # rebuilt as it is, not through __init__ (whose arguments differ from `args`):
        # errors come back from the helper process pickled
        return _rebuild, (type(self), self.args, self.__dict__)


def _rebuild(cls: type[AbrError], args: tuple[Any, ...], state: dict[str, Any]) -> AbrError:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class UsageError(AbrError):
    """A mistake the user can fix: nothing was sent to the API."""

    exit_code = 2


class SettingsError(UsageError):
    """A setting has a wrong value, type or name."""


class InputError(UsageError):
    """The input file has problems; `problems` holds one located message each."""

    #: how many problems the one-line summary names before "and N more"
    SHOWN = 5

    def __init__(self, problems: Sequence[str], path: str = "") -> None:
        self.problems = list(problems)
        self.path = path
        shown = "; ".join(self.problems[: self.SHOWN])
        more = len(self.problems) - self.SHOWN
        suffix = f"; and {more} more" if more > 0 else ""
        where = f"{path}: " if path else ""
        super().__init__(f"{where}{shown}{suffix}")


class MissingApiKeyError(UsageError):
    """No API key was found."""

    def __init__(self) -> None:
        super().__init__(
            "ANTHROPIC_API_KEY is not set: put it in the environment or in a .env file "
            "(see .env.example)"
        )


class JobNotFoundError(UsageError):
    """The job id names no job in the store."""

    def __init__(self, job_id: str, detail: str = "") -> None:
        self.job_id = job_id
        why = f" {detail}" if detail else ""
        super().__init__(f"no job {job_id!r} in the job store{why} (see `abr jobs`)")


class ApiError(AbrError):
    """The Anthropic API did not answer as needed, after retries."""


class StoreError(AbrError):
    """The job store failed or holds something unexpected."""


class BudgetExceededError(AbrError):
    """Going on would spend more than the configured budget."""


class StoreUnavailableError(StoreError):
    """The store's server refuses connections for now (a restart, a failover): a run and
    its workers wait it out; a command that only reads says so. `reason` names the store
    and what its server said, without the advice the message adds."""

    def __init__(self, message: str, reason: str = "") -> None:
        self.reason = reason or message
        super().__init__(message)


class LocalFaultError(AbrError):
    """A local file or folder cannot be written and waiting will not cure it. `cause`
    says what failed where, without the advice the message may add."""

    def __init__(self, message: str, path: str = "", cause: str = "") -> None:
        self.path = path
        self.cause = cause or message
        super().__init__(message)


class StoreFullError(StoreError, LocalFaultError):
    """The disk (or quota) holding the job store is full."""


class JobInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped the waiting, not the job: its batches go on at the API and the store
    keeps its state. The message says how to carry on; `job_id` names the job."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(
            f"stopped waiting for job {job_id}; its batches go on at the API. Carry on with "
            f"abr.job({job_id!r}).resume() (or `abr resume {job_id}`), "
            f"or stop it with abr.job({job_id!r}).cancel()"
        )
