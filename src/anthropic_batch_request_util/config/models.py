"""The settings models: every key with its type, default and range, and the rules between keys.

Pydantic checks the types, ranges, enums and unknown keys; `config` reads the layers and
turns each pydantic error into one line that names the source and key. Checks pydantic
has no word for raise `PydanticCustomError("abr", ...)` with the finished message.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Mapping
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, Final
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, model_validator
from pydantic_core import PydanticCustomError

from ..limits import API_MAX_BYTES, API_MAX_REQUESTS

API_VERSION_2023 = "2023-06-01"
API_VERSION_2026 = "2026-10-21"
SUPPORTED_API_VERSIONS: Final = (API_VERSION_2023, API_VERSION_2026)
#: API versions that reject a temperature in a request
VERSIONS_WITHOUT_TEMPERATURE: Final = frozenset({API_VERSION_2026})

DEFAULT_API_VERSION = API_VERSION_2023
DEFAULT_BETA_FEATURES = ("message-batches-2024-09-24", "prompt-caching-2024-07-31")
DEFAULT_TIMEOUT_S = 300.0  #: seconds per HTTP request
DEFAULT_MAX_PAYLOAD_BYTES = 100 * 1024 * 1024  #: bytes per batch create body
DEFAULT_MAX_RETRIES = 5  #: HTTP-level retries per API call
DEFAULT_MODEL_NAME = "claude-3-5-haiku-20241022"
DEFAULT_DISPLAY_NAME = "haiku"
DEFAULT_MAX_TOKENS = 8192  #: output tokens per request
DEFAULT_TEMPERATURE = 0.0  #: 0 to 1
DEFAULT_BATCH_MAX_SIZE = 10_000  #: requests per batch
#: requests per chunk, the batch abr sends, watches and fetches: as large as max_size, so
#: that a default job makes few batches (fewer calls, less per-batch work)
DEFAULT_CHUNK_SIZE = DEFAULT_BATCH_MAX_SIZE
DEFAULT_MAX_ATTEMPTS = 3  #: attempts per request for retryable results
DEFAULT_POLL_INTERVAL_S = 0.5  #: seconds before the first poll of a batch
DEFAULT_POLL_MAX_INTERVAL_S = 60.0  #: seconds between polls at most
DEFAULT_BASE_DIR = "output"
LOCAL_BROKER_URL = "memory://"  #: the in-process deployment: an embedded worker
DEFAULT_BROKER_URL = LOCAL_BROKER_URL
DEFAULT_WORKER_CONCURRENCY = 4  #: threads or processes per worker
DEFAULT_RECONCILE_INTERVAL = 15.0  #: seconds between a worker's looks for stalled work
DEFAULT_STALE_AFTER = 60.0  #: seconds without progress after which work is queued again

#: why a limit is what it is, keyed by the limit; named in "must be at most" messages
LIMIT_REASONS: Final = {API_MAX_BYTES: "256 MiB, the API limit", API_MAX_REQUESTS: "the API limit"}
#: the validation context under which one layer is checked alone, before the rules between keys
PARTIAL: Final = "partial"

POSTGRES_EXTRA = "pip install 'anthropic-batch-request-util[postgres]'"
DATABASE_SCHEMES: Final = ("sqlite", "postgresql", "postgresql+psycopg")
BROKER_SCHEMES: Final = ("memory", "redis", "rediss")


class ResponseFormat(StrEnum):
    """What each answer is expected to be: free text or one JSON document."""

    TEXT = "text"
    JSON = "json"


class CacheType(StrEnum):
    """The prompt-cache kinds the API offers for `cache_control`."""

    EPHEMERAL = "ephemeral"


def _fail(message: str) -> PydanticCustomError:
    return PydanticCustomError("abr", "{message}", {"message": message})


def _url_parts(url: str, kind: str) -> tuple[str, str]:
    """(scheme, path) of `url`, or an error naming the URL as malformed (e.g. a bad port)."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # reading the port is what checks it
        return parts.scheme, parts.path
    except ValueError as error:
        raise _fail(f"malformed {kind} URL {json.dumps(url)}: {error}") from None


def has_postgres_driver() -> bool:
    """Whether psycopg is installed; found now, a missing driver is one line, not a traceback."""
    return importlib.util.find_spec("psycopg") is not None


def _database_url(url: str) -> str:
    scheme, path = _url_parts(url, "database")
    if scheme not in DATABASE_SCHEMES or "://" not in url:
        raise _fail(
            f"unsupported database URL {json.dumps(url)}: "
            "use sqlite:///PATH or postgresql://USER@HOST/DB"
        )
    if scheme == "sqlite" and not (url.startswith("sqlite:///") and path.strip("/")):
        raise _fail(
            f"malformed database URL {json.dumps(url)}: use sqlite:///PATH with a file path"
        )
    if scheme != "sqlite" and not has_postgres_driver():
        raise _fail(f"PostgreSQL needs the psycopg driver: {POSTGRES_EXTRA}")
    return url


def _broker_url(url: str) -> str:
    if "://" not in url:
        raise _fail(
            f"must be a URL such as memory:// or redis://localhost:6379/0, got {json.dumps(url)}"
        )
    scheme, path = _url_parts(url, "broker")
    if scheme not in BROKER_SCHEMES:
        raise _fail(
            f"unsupported broker URL {json.dumps(url)}: use memory:// (in-process) or "
            "redis://HOST:PORT/DB (rediss:// for TLS)"
        )
    if scheme != "memory" and path.strip("/") and not path.strip("/").isdigit():
        raise _fail(
            f"malformed broker URL {json.dumps(url)}: the database after the host must be a number"
        )
    return url


def _supported_version(value: str) -> str:
    if value not in SUPPORTED_API_VERSIONS:
        choices = ", ".join(SUPPORTED_API_VERSIONS)
        raise _fail(f"must be one of {choices}, got {json.dumps(value)}")
    return value


# Strings that must hold something other than spaces; the pattern also goes into the schema.
NonEmpty = Annotated[str, Field(pattern=r"\S")]
Positive = Annotated[int, Field(gt=0)]
Seconds = Annotated[float, Field(gt=0)]


class _Section(BaseModel):
    """Frozen, strict, no unknown keys; an empty YAML section (null) means "no changes"."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _empty_section(cls, data: Any) -> Any:
        return {} if data is None else data


def _whole(info: ValidationInfo) -> bool:
    """Whether all the settings are present, so rules between keys can be checked."""
    return not (isinstance(info.context, dict) and info.context.get(PARTIAL))


class ApiSettings(_Section):
    """How abr talks to the Anthropic API."""

    version: Annotated[
        str,
        Field(json_schema_extra={"enum": list(SUPPORTED_API_VERSIONS)}),
        AfterValidator(_supported_version),
    ] = DEFAULT_API_VERSION
    beta_features: tuple[NonEmpty, ...] = Field(default=DEFAULT_BETA_FEATURES, strict=False)
    timeout: Seconds = DEFAULT_TIMEOUT_S
    max_payload_size: Annotated[int, Field(gt=0, le=API_MAX_BYTES)] = DEFAULT_MAX_PAYLOAD_BYTES
    max_retries: Annotated[int, Field(ge=0)] = DEFAULT_MAX_RETRIES
    #: calls to the batch endpoints per minute at most; None paces by rate-limit headers only
    requests_per_minute: Positive | None = None


class ModelSettings(_Section):
    """The model and sampling settings applied to every request that does not set its own."""

    name: NonEmpty = DEFAULT_MODEL_NAME
    display_name: NonEmpty = DEFAULT_DISPLAY_NAME
    max_tokens: Positive = DEFAULT_MAX_TOKENS
    temperature: Annotated[float, Field(ge=0, le=1)] | None = DEFAULT_TEMPERATURE
    response_format: ResponseFormat = Field(default=ResponseFormat.TEXT, strict=False)


class BatchSettings(_Section):
    """How requests are cut into batches, retried and polled."""

    max_size: Annotated[int, Field(gt=0, le=API_MAX_REQUESTS)] = DEFAULT_BATCH_MAX_SIZE
    chunk_size: Positive = DEFAULT_CHUNK_SIZE
    enable_prompt_cache: bool = False
    cache_type: CacheType = Field(default=CacheType.EPHEMERAL, strict=False)
    max_attempts: Positive = DEFAULT_MAX_ATTEMPTS
    poll_interval: Seconds = DEFAULT_POLL_INTERVAL_S
    poll_max_interval: Seconds = DEFAULT_POLL_MAX_INTERVAL_S

    @model_validator(mode="after")
    def _sizes_and_intervals(self, info: ValidationInfo) -> BatchSettings:
        if not _whole(info):
            return self
        if self.chunk_size > self.max_size:
            raise _rule(
                "chunk_size",
                f"must be at most batch.max_size ({self.max_size}), got {self.chunk_size}",
            )
        if self.poll_max_interval < self.poll_interval:
            raise _rule(
                "poll_max_interval",
                f"must be at least batch.poll_interval ({self.poll_interval:g}), "
                f"got {self.poll_max_interval:g}",
            )
        return self


def _rule(key: str, message: str) -> PydanticCustomError:
    """A broken rule between keys, blamed on `key` (relative to the model that checks it)."""
    return PydanticCustomError("abr", "{message}", {"message": message, "key": key})


class StorageSubdirs(_Section):
    """Folder names inside `StorageSettings.base_dir`."""

    requests: NonEmpty = "batch_records"
    results: NonEmpty = "results"
    logs: NonEmpty = "logs"


class StorageSettings(_Section):
    """Where output files go."""

    base_dir: NonEmpty = DEFAULT_BASE_DIR
    subdirs: StorageSubdirs = StorageSubdirs()


class CelerySettings(_Section):
    """The task transport: memory:// runs an in-process worker, redis:// real workers."""

    broker_url: Annotated[str, AfterValidator(_broker_url)] = DEFAULT_BROKER_URL
    worker_concurrency: Positive = DEFAULT_WORKER_CONCURRENCY
    reconcile_interval: Seconds = DEFAULT_RECONCILE_INTERVAL
    stale_after: Seconds = DEFAULT_STALE_AFTER


class Settings(_Section):
    """Every abr setting. Build it with `load_settings`; it holds no secrets."""

    api: ApiSettings = ApiSettings()
    model: ModelSettings = ModelSettings()
    batch: BatchSettings = BatchSettings()
    storage: StorageSettings = StorageSettings()
    celery: CelerySettings = CelerySettings()
    database_url: Annotated[str, AfterValidator(_database_url)] | None = None
    pricing_file: NonEmpty | None = None

    if TYPE_CHECKING:
        # What type checkers see: a section may be given as a dict of its keys, as in
        # `Settings(model={"name": ...})`; pydantic checks either form the same way.
        def __init__(
            self,
            *,
            api: ApiSettings | Mapping[str, Any] = ...,
            model: ModelSettings | Mapping[str, Any] = ...,
            batch: BatchSettings | Mapping[str, Any] = ...,
            storage: StorageSettings | Mapping[str, Any] = ...,
            celery: CelerySettings | Mapping[str, Any] = ...,
            database_url: str | None = ...,
            pricing_file: str | None = ...,
        ) -> None: ...

    @model_validator(mode="after")
    def _temperature_allowed(self, info: ValidationInfo) -> Settings:
        version, temperature = self.api.version, self.model.temperature
        if _whole(info) and version in VERSIONS_WITHOUT_TEMPERATURE and temperature is not None:
            raise _rule(
                "model.temperature",
                f"api.version {version} rejects temperature; set model.temperature to null",
            )
        return self
