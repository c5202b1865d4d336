"""Settings: typed, validated, and layered.

Where each setting comes from, lowest precedence first::

    1. defaults        config/settings.yaml inside the package (the file `abr init` writes)
    2. settings file   ./settings.yaml in the working directory when present, or else the
                       file passed as `config_path` (`--config`), which must exist
    3. environment     ABR_<SECTION>_<KEY>, e.g. ABR_MODEL_NAME, ABR_BATCH_CHUNK_SIZE,
                       ABR_STORAGE_SUBDIRS_RESULTS (plus the alias ABR_BROKER_URL);
                       read from .env in the working directory, then from the real
                       environment, which wins over .env
    4. overrides       dotted keys from command-line flags, e.g. "storage.base_dir"

A later layer replaces single keys, never whole sections. Each value is checked as it is
read, so every `SettingsError` names its source and key::

    settings.yaml: model.max_tokens: must be an integer, got "lots"
    ABR_BATCH_CHUNK_SIZE: must be an integer, got "x"

Paths: `load_settings` makes `storage.base_dir` absolute against the working directory, so
`results_dir`, `records_dir`, `logs_dir` and the default SQLite `database_url` do not depend
on where the process later runs.

The API key is not a setting: `load_api_key` reads it from the environment or `.env`, it
never enters `Settings`, and `mask_secret` is the only way it is ever shown.
"""

from __future__ import annotations

import difflib
import json
import logging
import math
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import date
from enum import StrEnum
from importlib import resources
from pathlib import Path, PurePath
from typing import Any, Final, get_args, get_origin, get_type_hints

import yaml
from dotenv import dotenv_values

from .errors import SettingsError
from .limits import API_MAX_BYTES, API_MAX_REQUESTS

__all__ = [
    "ENV_VARS",
    "ApiSettings",
    "BatchSettings",
    "CacheType",
    "CelerySettings",
    "ModelSettings",
    "ResponseFormat",
    "Settings",
    "StorageSettings",
    "StorageSubdirs",
    "database_url",
    "default_settings_text",
    "load_api_key",
    "load_base_url",
    "load_settings",
    "logs_dir",
    "mask_secret",
    "records_dir",
    "results_dir",
    "settings_from_dict",
    "settings_to_dict",
    "write_starter_files",
]

logger = logging.getLogger(__name__)

PACKAGE = "anthropic_batch_request_util"
SETTINGS_FILENAME = "settings.yaml"  #: the settings file, packaged and in the working directory
DOTENV_FILENAME = ".env"  #: secrets and ABR_* variables, read from the working directory
SQLITE_FILENAME = "abr.sqlite3"  #: the default job store, inside storage.base_dir
ENV_PREFIX = "ABR_"  #: prefix of every settings environment variable
API_KEY_VAR = "ANTHROPIC_API_KEY"
BASE_URL_VAR = "ANTHROPIC_BASE_URL"

DEFAULTS_LABEL = "defaults"  #: how errors name the packaged defaults
OVERRIDES_LABEL = "command line"  #: how errors name the `overrides` layer
NOT_SET = "(not set)"  #: what `mask_secret` shows for a missing secret

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
DEFAULT_CHUNK_SIZE = 1000  #: requests per chunk
DEFAULT_MAX_ATTEMPTS = 3  #: attempts per request for retryable results
DEFAULT_POLL_INTERVAL_S = 2.0  #: seconds before the first poll of a batch
DEFAULT_POLL_MAX_INTERVAL_S = 60.0  #: seconds between polls at most
DEFAULT_BASE_DIR = "output"
DEFAULT_BROKER_URL = "memory://"  #: the embedded in-process worker
DEFAULT_WORKER_CONCURRENCY = 4  #: threads or processes per worker
DEFAULT_RECONCILE_INTERVAL = 15.0  #: seconds between a worker's looks for stalled work
DEFAULT_STALE_AFTER = 60.0  #: seconds without progress after which work is queued again

MASK = "…"  #: stands for the hidden part of a secret
SECRET_VISIBLE_TAIL = 4  #: characters at the end of a secret that may be shown, at most
SECRET_MIN_LENGTH_FOR_TAIL = 16  #: shorter secrets show none of their characters
KNOWN_KEY_PREFIX = "sk-ant-"  #: the public prefix of Anthropic API keys, safe to show
SUGGESTION_CUTOFF = 0.6  #: similarity (0-1) for "did you mean" on unknown keys
NEAR_MISS_CUTOFF = 0.85  #: similarity (0-1) for warning about a mistyped ABR_* variable
SHOWN_VALUE_CHARS = 60  #: characters of a wrong value quoted in an error message


class ResponseFormat(StrEnum):
    """What each answer is expected to be: free text or one JSON document."""

    TEXT = "text"
    JSON = "json"


class CacheType(StrEnum):
    """The prompt-cache kinds the API offers for `cache_control`."""

    EPHEMERAL = "ephemeral"


@dataclass(frozen=True)
class ApiSettings:
    """How abr talks to the Anthropic API."""

    version: str = DEFAULT_API_VERSION
    beta_features: tuple[str, ...] = DEFAULT_BETA_FEATURES
    timeout: float = DEFAULT_TIMEOUT_S
    max_payload_size: int = DEFAULT_MAX_PAYLOAD_BYTES
    max_retries: int = DEFAULT_MAX_RETRIES


@dataclass(frozen=True)
class ModelSettings:
    """The model and sampling settings applied to every request that does not set its own."""

    name: str = DEFAULT_MODEL_NAME
    display_name: str = DEFAULT_DISPLAY_NAME
    max_tokens: int = DEFAULT_MAX_TOKENS
    temperature: float | None = DEFAULT_TEMPERATURE
    response_format: ResponseFormat = ResponseFormat.TEXT


@dataclass(frozen=True)
class BatchSettings:
    """How requests are cut into batches, retried and polled."""

    max_size: int = DEFAULT_BATCH_MAX_SIZE
    chunk_size: int = DEFAULT_CHUNK_SIZE
    enable_prompt_cache: bool = False
    cache_type: CacheType = CacheType.EPHEMERAL
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    poll_interval: float = DEFAULT_POLL_INTERVAL_S
    poll_max_interval: float = DEFAULT_POLL_MAX_INTERVAL_S


@dataclass(frozen=True)
class StorageSubdirs:
    """Folder names inside `StorageSettings.base_dir`."""

    requests: str = "batch_records"
    results: str = "results"
    logs: str = "logs"


@dataclass(frozen=True)
class StorageSettings:
    """Where output files go."""

    base_dir: str = DEFAULT_BASE_DIR
    subdirs: StorageSubdirs = field(default_factory=StorageSubdirs)


@dataclass(frozen=True)
class CelerySettings:
    """The task transport: memory:// runs an in-process worker, redis:// real workers."""

    broker_url: str = DEFAULT_BROKER_URL
    worker_concurrency: int = DEFAULT_WORKER_CONCURRENCY
    reconcile_interval: float = DEFAULT_RECONCILE_INTERVAL
    stale_after: float = DEFAULT_STALE_AFTER


@dataclass(frozen=True)
class Settings:
    """Every abr setting. Build it with `load_settings`; it holds no secrets."""

    api: ApiSettings = field(default_factory=ApiSettings)
    model: ModelSettings = field(default_factory=ModelSettings)
    batch: BatchSettings = field(default_factory=BatchSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    celery: CelerySettings = field(default_factory=CelerySettings)
    database_url: str | None = None
    pricing_file: str | None = None


# --- the schema, derived from the dataclasses ------------------------------------------


@dataclass(frozen=True)
class _Leaf:
    """One setting: its dotted key, its base type and whether null is allowed."""

    key: str
    kind: type
    nullable: bool

    @property
    def env_var(self) -> str:
        return ENV_PREFIX + self.key.replace(".", "_").upper()


def _is_section(hint: Any) -> bool:
    """Whether a field's type is a section (a nested settings dataclass)."""
    return isinstance(hint, type) and is_dataclass(hint)


def _walk(cls: type[Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Yield (dotted key, type) for every field, each section before its own fields."""
    hints = get_type_hints(cls)
    for item in fields(cls):
        hint = hints[item.name]
        yield prefix + item.name, hint
        if _is_section(hint):
            yield from _walk(hint, f"{prefix}{item.name}.")


def _leaf(key: str, hint: Any) -> _Leaf:
    args = [arg for arg in get_args(hint) if arg is not type(None)]
    nullable = len(args) < len(get_args(hint))
    base = args[0] if nullable else hint
    return _Leaf(key, get_origin(base) or base, nullable)


_SECTIONS: Final = frozenset(key for key, hint in _walk(Settings) if _is_section(hint))
_LEAVES: Final = {key: _leaf(key, hint) for key, hint in _walk(Settings) if not _is_section(hint)}
_ALIASES: Final = {"ABR_BROKER_URL": "celery.broker_url"}
#: every settings environment variable and the dotted key it sets; aliases come last
ENV_VARS: Final[Mapping[str, str]] = {leaf.env_var: key for key, leaf in _LEAVES.items()} | _ALIASES


# --- checking one value ----------------------------------------------------------------


class _Invalid(Exception):
    """A problem with a value, raised before its source is known."""


Check = Callable[[Any], str | None]


def _show(value: object) -> str:
    """Quote a value the way YAML would spell it, shortened."""
    if isinstance(value, date):
        return f"{value.isoformat()} (a date; put it in quotes)"
    text = json.dumps(value, ensure_ascii=False, default=str)
    if len(text) > SHOWN_VALUE_CHARS:
        return text[: SHOWN_VALUE_CHARS - 3] + "..."
    return text


def _positive(value: float) -> str | None:
    return None if value > 0 else f"must be greater than 0, got {_show(value)}"


def _not_negative(value: int) -> str | None:
    return None if value >= 0 else f"must be 0 or more, got {_show(value)}"


def _not_empty(value: str) -> str | None:
    return None if value.strip() else "must not be empty"


def _url(value: str) -> str | None:
    if "://" in value:
        return None
    return f"must be a URL such as memory:// or redis://localhost:6379/0, got {_show(value)}"


def _no_blank_items(value: tuple[str, ...]) -> str | None:
    return None if all(item.strip() for item in value) else "must not contain empty names"


def _at_most(limit: int, reason: str) -> Check:
    def check(value: int) -> str | None:
        return None if value <= limit else f"must be at most {limit} ({reason}), got {value}"

    return check


def _between(low: float, high: float) -> Check:
    def check(value: float) -> str | None:
        return None if low <= value <= high else f"must be {low:g} to {high:g}, got {value:g}"

    return check


def _one_of(choices: tuple[str, ...]) -> Check:
    def check(value: str) -> str | None:
        return (
            None if value in choices else f"must be one of {', '.join(choices)}, got {_show(value)}"
        )

    return check


#: the checks each value must pass after its type is right
_CHECKS: Final[dict[str, tuple[Check, ...]]] = {
    "api.version": (_one_of(SUPPORTED_API_VERSIONS),),
    "api.beta_features": (_no_blank_items,),
    "api.timeout": (_positive,),
    "api.max_payload_size": (_positive, _at_most(API_MAX_BYTES, "256 MiB, the API limit")),
    "api.max_retries": (_not_negative,),
    "model.name": (_not_empty,),
    "model.display_name": (_not_empty,),
    "model.max_tokens": (_positive,),
    "model.temperature": (_between(0.0, 1.0),),
    "batch.max_size": (_positive, _at_most(API_MAX_REQUESTS, "the API limit")),
    "batch.chunk_size": (_positive,),
    "batch.max_attempts": (_positive,),
    "batch.poll_interval": (_positive,),
    "batch.poll_max_interval": (_positive,),
    "storage.base_dir": (_not_empty,),
    "storage.subdirs.requests": (_not_empty,),
    "storage.subdirs.results": (_not_empty,),
    "storage.subdirs.logs": (_not_empty,),
    "celery.broker_url": (_url,),
    "celery.worker_concurrency": (_positive,),
    "celery.reconcile_interval": (_positive,),
    "celery.stale_after": (_positive,),
    "database_url": (_url,),
    "pricing_file": (_not_empty,),
}


def _as_bool(value: object) -> object:
    return value if isinstance(value, bool) else None


def _as_int(value: object) -> object:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _as_float(value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _as_str(value: object) -> object:
    return str(value) if isinstance(value, str | PurePath) else None


def _as_strings(value: object) -> object:
    if isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
        return tuple(value)
    return None


def _int_text(text: str) -> object:
    try:
        return int(text)
    except ValueError:
        return text


def _float_text(text: str) -> object:
    try:
        number = float(text)
    except ValueError:
        return text
    return number if math.isfinite(number) else text


def _bool_text(text: str) -> object:
    word = text.lower()
    return True if word in _TRUE_WORDS else False if word in _FALSE_WORDS else text


def _list_text(text: str) -> object:
    return [item.strip() for item in text.split(",") if item.strip()]


def _same_text(text: str) -> object:
    return text


@dataclass(frozen=True)
class _Kind:
    """How one field type is named in errors, checked, and spelled as text."""

    noun: str
    convert: Callable[[object], object]  #: the value as this type, or None if it is not one
    parse: Callable[[str], object]  #: the value a string spells, or the string unchanged


_TRUE_WORDS: Final = frozenset({"true", "1", "yes", "on"})
_FALSE_WORDS: Final = frozenset({"false", "0", "no", "off"})
_NULL_WORDS: Final = frozenset({"", "null"})  #: strings that mean null for nullable settings
_KINDS: Final[dict[type, _Kind]] = {
    bool: _Kind("true or false", _as_bool, _bool_text),
    int: _Kind("an integer", _as_int, _int_text),
    float: _Kind("a number", _as_float, _float_text),
    str: _Kind("a string", _as_str, _same_text),
    tuple: _Kind("a list of strings", _as_strings, _list_text),
}


def _enum_kind(kind: type[StrEnum]) -> _Kind:
    members = {member.value: member for member in kind}

    def convert(value: object) -> object:
        return members.get(value) if isinstance(value, str) else None

    return _Kind(f"one of {', '.join(members)}", convert, _same_text)


def _kind(kind: type) -> _Kind:
    """The `_Kind` of a field type; each StrEnum is its own."""
    return _enum_kind(kind) if issubclass(kind, StrEnum) else _KINDS[kind]


def _coerce(value: object, leaf: _Leaf) -> object:
    """Check a typed value (from YAML or code) against its setting; raise `_Invalid`."""
    if value is None and leaf.nullable:
        return None
    kind = _kind(leaf.kind)
    converted = kind.convert(value)
    if converted is None:
        nullable = " or null" if leaf.nullable else ""
        raise _Invalid(f"must be {kind.noun}{nullable}, got {_show(value)}")
    for check in _CHECKS.get(leaf.key, ()):
        problem = check(converted)
        if problem:
            raise _Invalid(problem)
    return converted


def _parse_text(text: str, leaf: _Leaf) -> object:
    """Turn a string into the value it spells; `_coerce` then checks it."""
    stripped = text.strip()
    if leaf.nullable and stripped.lower() in _NULL_WORDS:
        return None
    return _kind(leaf.kind).parse(stripped)


def _checked(raw: object, key: str, where: str, *, text: bool = False) -> object:
    """The valid value of setting `key`, or a `SettingsError` that begins with `where`."""
    leaf = _LEAVES[key]
    try:
        return _coerce(_parse_text(raw, leaf) if text and isinstance(raw, str) else raw, leaf)
    except _Invalid as problem:
        raise SettingsError(f"{where}: {problem}") from None


# --- the layers ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Value:
    """A checked value and how an error about it begins ("settings.yaml: model.name")."""

    value: Any
    where: str


_Layer = dict[str, _Value]


def _suggest(key: str) -> str | None:
    tail = key.rsplit(".", 1)[-1]
    same_tail = [known for known in _LEAVES if known.rsplit(".", 1)[-1] == tail]
    if len(same_tail) == 1:
        return same_tail[0]
    close = difflib.get_close_matches(key, [*_LEAVES, *_SECTIONS], n=1, cutoff=SUGGESTION_CUTOFF)
    return close[0] if close else None


def _unknown(label: str, key: str) -> SettingsError:
    guess = _suggest(key)
    hint = f" (did you mean {guess}?)" if guess else ""
    return SettingsError(f"{label}: {key}: unknown setting{hint}")


def _flatten(data: object, label: str, prefix: str = "") -> dict[str, object]:
    """Nested sections to {dotted key: raw value}; unknown keys are errors."""
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        where = f"{label}: {prefix[:-1]}" if prefix else label
        raise SettingsError(f"{where}: must be a mapping of settings, got {_show(data)}")
    flat: dict[str, object] = {}
    for name, value in data.items():
        key = f"{prefix}{name}"
        if key in _SECTIONS:
            flat.update(_flatten(value, label, key + "."))
        elif key in _LEAVES:
            flat[key] = value
        else:
            raise _unknown(label, key)
    return flat


def _mapping_layer(data: object, label: str) -> _Layer:
    layer: _Layer = {}
    for key, raw in _flatten(data, label).items():
        where = f"{label}: {key}"
        layer[key] = _Value(_checked(raw, key, where), where)
    return layer


def _yaml_layer(text: str, label: str) -> _Layer:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise SettingsError(f"{label}: not valid YAML: {' '.join(str(error).split())}") from None
    return _mapping_layer(data, label)


def default_settings_text() -> str:
    """The packaged settings.yaml: every key with its default, commented."""
    resource = resources.files(PACKAGE) / "config" / SETTINGS_FILENAME
    return resource.read_text(encoding="utf-8")


def _defaults_layer() -> _Layer:
    """The dataclass defaults, then the packaged settings.yaml (a test keeps them equal)."""
    code = _mapping_layer(settings_to_dict(Settings()), DEFAULTS_LABEL)
    return code | _yaml_layer(default_settings_text(), DEFAULTS_LABEL)


def _file_layer(config_path: Path | None, cwd: Path) -> _Layer:
    if config_path is None:
        path, label = cwd / SETTINGS_FILENAME, SETTINGS_FILENAME
        if not path.is_file():
            return {}
    else:
        path, label = cwd / config_path, str(config_path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SettingsError(f"{label}: settings file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise SettingsError(f"{label}: cannot read settings file: {error}") from None
    return _yaml_layer(text, label)


def _env_layer(env: Mapping[str, str], where: Callable[[str], str]) -> _Layer:
    layer: _Layer = {}
    for var, key in ENV_VARS.items():
        if var not in env:
            continue
        value = _Value(_checked(env[var], key, where(var), text=True), where(var))
        earlier = layer.get(key)
        if earlier is not None and earlier.value != value.value:
            raise SettingsError(f"{value.where}: disagrees with {earlier.where}; set only one")
        layer[key] = value
    _log_near_misses(env)
    return layer


def _log_near_misses(env: Mapping[str, str]) -> None:
    """Warn about ABR_* variables that look like a mistyped setting; others are ignored."""
    for var in env:
        if var.startswith(ENV_PREFIX) and var not in ENV_VARS:
            close = difflib.get_close_matches(var, list(ENV_VARS), n=1, cutoff=NEAR_MISS_CUTOFF)
            if close:
                logger.warning("%s is not an abr setting (did you mean %s?)", var, close[0])


def _dotenv_layer(cwd: Path) -> _Layer:
    return _env_layer(_read_dotenv(cwd / DOTENV_FILENAME), lambda var: f"{DOTENV_FILENAME}: {var}")


def _overrides_layer(overrides: Mapping[str, object]) -> _Layer:
    """Flags: None means "flag not given"; strings are parsed like environment values."""
    layer: _Layer = {}
    for key, raw in overrides.items():
        if raw is None:
            continue
        if key not in _LEAVES:
            raise _unknown(OVERRIDES_LABEL, key)
        where = f"{OVERRIDES_LABEL}: {key}"
        layer[key] = _Value(_checked(raw, key, where, text=isinstance(raw, str)), where)
    return layer


# --- assembling Settings ---------------------------------------------------------------


def _check_combinations(values: Mapping[str, _Value]) -> None:
    """Rules between settings, each blamed on the value the user should change."""
    version, temperature = values["api.version"], values["model.temperature"]
    if version.value in VERSIONS_WITHOUT_TEMPERATURE and temperature.value is not None:
        raise SettingsError(
            f"{temperature.where}: api.version {version.value} rejects temperature; "
            "set model.temperature to null"
        )
    chunk, max_size = values["batch.chunk_size"], values["batch.max_size"]
    if chunk.value > max_size.value:
        raise SettingsError(
            f"{chunk.where}: must be at most batch.max_size ({max_size.value}), got {chunk.value}"
        )
    first, most = values["batch.poll_interval"], values["batch.poll_max_interval"]
    if most.value < first.value:
        raise SettingsError(
            f"{most.where}: must be at least batch.poll_interval ({first.value:g}), "
            f"got {most.value:g}"
        )


def _build(cls: type[Any], flat: Mapping[str, Any], prefix: str = "") -> Any:
    hints = get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for item in fields(cls):
        key, hint = prefix + item.name, hints[item.name]
        kwargs[item.name] = _build(hint, flat, key + ".") if _is_section(hint) else flat[key]
    return cls(**kwargs)


def _assemble(layers: list[_Layer], cwd: Path) -> Settings:
    values: _Layer = {}
    for layer in layers:
        values.update(layer)
    _check_combinations(values)
    flat = {key: value.value for key, value in values.items()}
    base_dir = Path(flat["storage.base_dir"]).expanduser()
    flat["storage.base_dir"] = str(cwd.absolute() / base_dir)
    settings: Settings = _build(Settings, flat)
    return settings


def load_settings(
    config_path: Path | None = None,
    overrides: Mapping[str, object] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Settings:
    """Read every layer (see the module docstring) and return checked settings.

    `env` defaults to `os.environ` and `cwd` to the working directory; .env and
    ./settings.yaml are looked up in `cwd`. In `overrides`, None values are skipped (a flag
    not given); to set a nullable key to null pass the string "null".
    """
    cwd = Path.cwd() if cwd is None else cwd
    layers = [
        _defaults_layer(),
        _file_layer(config_path, cwd),
        _dotenv_layer(cwd),
        _env_layer(os.environ if env is None else env, str),
        _overrides_layer(overrides or {}),
    ]
    return _assemble(layers, cwd)


def settings_from_dict(
    data: Mapping[str, Any], *, source: str = "settings", cwd: Path | None = None
) -> Settings:
    """Settings from a nested dict such as `settings_to_dict` makes (e.g. from a job record).

    Missing keys take the packaged defaults; problems are `SettingsError`s naming `source`.
    """
    cwd = Path.cwd() if cwd is None else cwd
    return _assemble([_defaults_layer(), _mapping_layer(data, source)], cwd)


def _plain(value: object) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {item.name: _plain(getattr(value, item.name)) for item in fields(value)}
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, StrEnum):
        return value.value
    return value


def settings_to_dict(settings: Settings) -> dict[str, Any]:
    """A plain nested dict of YAML/JSON types, keyed like settings.yaml."""
    plain: dict[str, Any] = _plain(settings)
    return plain


# --- paths -----------------------------------------------------------------------------


def _storage_dir(settings: Settings, subdir: str) -> Path:
    return Path(settings.storage.base_dir) / subdir


def results_dir(settings: Settings) -> Path:
    """<base_dir>/<subdirs.results>: absolute when the settings come from `load_settings`."""
    return _storage_dir(settings, settings.storage.subdirs.results)


def records_dir(settings: Settings) -> Path:
    """<base_dir>/<subdirs.requests>: one record per job."""
    return _storage_dir(settings, settings.storage.subdirs.requests)


def logs_dir(settings: Settings) -> Path:
    """<base_dir>/<subdirs.logs>."""
    return _storage_dir(settings, settings.storage.subdirs.logs)


def database_url(settings: Settings) -> str:
    """The job store URL: the configured one, or the SQLite file under base_dir."""
    if settings.database_url is not None:
        return settings.database_url
    sqlite_path = (Path(settings.storage.base_dir) / SQLITE_FILENAME).absolute()
    return f"sqlite:///{sqlite_path.as_posix()}"


# --- secrets and starter files ---------------------------------------------------------


def _read_dotenv(path: Path) -> dict[str, str]:
    """The variables a .env file sets, without touching os.environ; {} when absent."""
    if not path.is_file():
        return {}
    try:
        values = dotenv_values(path, interpolate=False, encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise SettingsError(f"{path}: cannot read: {error}") from None
    return {name: value for name, value in values.items() if value is not None}


def _env_or_dotenv(
    name: str, env: Mapping[str, str] | None, dotenv_path: Path | None
) -> str | None:
    from_env = (os.environ if env is None else env).get(name, "").strip()
    if from_env:
        return from_env
    path = Path.cwd() / DOTENV_FILENAME if dotenv_path is None else dotenv_path
    return _read_dotenv(path).get(name, "").strip() or None


def load_api_key(
    *, env: Mapping[str, str] | None = None, dotenv_path: Path | None = None
) -> str | None:
    """ANTHROPIC_API_KEY from the environment, else from .env (./.env by default); None if blank."""
    return _env_or_dotenv(API_KEY_VAR, env, dotenv_path)


def load_base_url(
    *, env: Mapping[str, str] | None = None, dotenv_path: Path | None = None
) -> str | None:
    """ANTHROPIC_BASE_URL (e.g. the emulator) from the environment, else from .env; or None."""
    return _env_or_dotenv(BASE_URL_VAR, env, dotenv_path)


def mask_secret(value: str | None) -> str:
    """A secret made safe to show: "sk-ant-…f00d"; never more than its last 4 characters."""
    if value is None or not value.strip():
        return NOT_SET
    value = value.strip()
    prefix = KNOWN_KEY_PREFIX if value.startswith(KNOWN_KEY_PREFIX) else ""
    secret = value[len(prefix) :]
    tail = secret[-SECRET_VISIBLE_TAIL:] if len(secret) >= SECRET_MIN_LENGTH_FOR_TAIL else ""
    return f"{prefix}{MASK}{tail}"


#: the .env `abr init` writes; .env.example in the repository is the same text
ENV_TEMPLATE = """\
# abr secrets and local settings, read from .env in the working directory.
# Never commit .env. Variables in the real environment win over the ones here.

# Your Anthropic API key (https://console.anthropic.com/settings/keys), e.g. sk-ant-...
ANTHROPIC_API_KEY=

# Send every request to the built-in emulator (`abr emulator`) instead of the real API:
# ANTHROPIC_BASE_URL=http://127.0.0.1:8765

# Any setting can be set as ABR_<SECTION>_<KEY>; for workers on several machines:
# ABR_BROKER_URL=redis://localhost:6379/0
# ABR_DATABASE_URL=postgresql+psycopg://abr:secret@localhost:5432/abr
"""
DOTENV_MODE = 0o600  #: file mode of a written .env: readable by its owner only


def write_starter_files(directory: Path, *, force: bool = False) -> list[Path]:
    """`abr init`: write settings.yaml (the commented defaults) and a .env template.

    Refuses to overwrite an existing file unless `force`; writes nothing in that case.
    """
    files = {
        directory / SETTINGS_FILENAME: default_settings_text(),
        directory / DOTENV_FILENAME: ENV_TEMPLATE,
    }
    existing = [path for path in files if path.exists()]
    if existing and not force:
        raise SettingsError(f"{existing[0]}: already exists; use --force to overwrite it")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for path, text in files.items():
            path.write_text(text, encoding="utf-8")
        (directory / DOTENV_FILENAME).chmod(DOTENV_MODE)
    except OSError as error:
        raise SettingsError(f"{directory}: cannot write starter files: {error}") from None
    return list(files)
