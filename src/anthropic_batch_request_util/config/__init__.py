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

The keys, their types, defaults and ranges are the pydantic models in `config.models`;
`config.messages` words each pydantic error as above.

Paths: `load_settings` makes `storage.base_dir` absolute against the working directory, so
`results_dir`, `records_dir`, `logs_dir` and the default SQLite `database_url` do not depend
on where the process later runs.

The API key is not a setting: `load_api_key` reads it from the environment or `.env`, it
never enters `Settings`, and `mask_secret` is the only way it is ever shown.
"""

from __future__ import annotations

import difflib
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path, PurePath
from typing import Any, Final

import yaml
from dotenv import dotenv_values
from pydantic import ValidationError

from ..errors import MissingApiKeyError, SettingsError
from .messages import LEAVES, SECTIONS, settings_error, unknown_setting
from .models import (
    LOCAL_BROKER_URL,
    PARTIAL,
    ApiSettings,
    BatchSettings,
    CacheType,
    CelerySettings,
    ModelSettings,
    ResponseFormat,
    Settings,
    StorageSettings,
    StorageSubdirs,
)

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
    "require_api_key",
    "results_dir",
    "settings_from_dict",
    "settings_to_dict",
    "uses_local_broker",
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

MASK = "…"  #: stands for the hidden part of a secret
SECRET_VISIBLE_TAIL = 4  #: characters at the end of a secret that may be shown, at most
SECRET_MIN_LENGTH_FOR_TAIL = 16  #: shorter secrets show none of their characters
KNOWN_KEY_PREFIX = "sk-ant-"  #: the public prefix of Anthropic API keys, safe to show
NEAR_MISS_CUTOFF = 0.85  #: similarity (0-1) for warning about a mistyped ABR_* variable


_ALIASES: Final = {"ABR_BROKER_URL": "celery.broker_url"}
#: every settings environment variable and the dotted key it sets; aliases come last
ENV_VARS: Final[Mapping[str, str]] = {
    ENV_PREFIX + key.replace(".", "_").upper(): key for key in LEAVES
} | _ALIASES


# --- the layers ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Value:
    """A checked value and how an error about it begins ("settings.yaml: model.name")."""

    value: Any
    where: str


_Layer = dict[str, _Value]


def _flat(data: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for name, value in data.items():
        if prefix + name in SECTIONS:
            yield from _flat(value, f"{prefix}{name}.")
        else:
            yield prefix + name, value


def _nested(flat: Mapping[str, object]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        *sections, name = key.split(".")
        place = nested
        for section in sections:
            place = place.setdefault(section, {})
        place[name] = value
    return nested


def _layer(
    data: object, label: str, where: Callable[[str], str] | None = None, *, text: bool = False
) -> _Layer:
    """Check one layer alone (typed values strictly, `text` ones as pydantic parses strings)."""
    where = where or (lambda key: f"{label}: {key}")
    try:
        model = Settings.model_validate(
            data, strict=False if text else None, context={PARTIAL: True}
        )
    except ValidationError as error:
        raise settings_error(error.errors()[0], data, label, where) from None
    given = model.model_dump(exclude_unset=True)
    return {key: _Value(value, where(key)) for key, value in _flat(given)}


def _yaml_layer(text: str, label: str) -> _Layer:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise SettingsError(f"{label}: not valid YAML: {' '.join(str(error).split())}") from None
    return _layer(data, label)


def default_settings_text() -> str:
    """The packaged settings.yaml: every key with its default, commented."""
    resource = resources.files(PACKAGE) / "config" / SETTINGS_FILENAME
    return resource.read_text(encoding="utf-8")


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


def _env_layer(env: Mapping[str, str], prefix: str = "") -> _Layer:
    """ABR_* variables; errors name the variable, after `prefix` (".env: ")."""
    texts: dict[str, object] = {}
    names: dict[str, str] = {}
    for var, key in ENV_VARS.items():
        if var not in env:
            continue
        value = LEAVES[key].parse(env[var])
        if key in names and texts[key] != value:
            raise SettingsError(f"{prefix}{var}: disagrees with {names[key]}; set only one")
        texts[key], names[key] = value, names.get(key, f"{prefix}{var}")
    _log_near_misses(env)
    return _layer(_nested(texts), prefix.rstrip(": "), lambda key: names[key], text=True)


def _log_near_misses(env: Mapping[str, str]) -> None:
    """Warn about ABR_* variables that look like a mistyped setting; others are ignored."""
    for var in env:
        if var.startswith(ENV_PREFIX) and var not in ENV_VARS:
            close = difflib.get_close_matches(var, list(ENV_VARS), n=1, cutoff=NEAR_MISS_CUTOFF)
            if close:
                logger.warning("%s is not an abr setting (did you mean %s?)", var, close[0])


def _overrides_layer(overrides: Mapping[str, object]) -> _Layer:
    """Flags: None means "flag not given"; strings are parsed like environment values."""
    texts: dict[str, object] = {}
    typed: dict[str, object] = {}
    for key, raw in overrides.items():
        if raw is None:
            continue
        if key not in LEAVES:
            raise unknown_setting(OVERRIDES_LABEL, key)
        if isinstance(raw, str):
            texts[key] = LEAVES[key].parse(raw)
        else:
            typed[key] = str(raw) if isinstance(raw, PurePath) else raw
    return _layer(_nested(texts), OVERRIDES_LABEL, text=True) | _layer(
        _nested(typed), OVERRIDES_LABEL
    )


# --- assembling Settings ---------------------------------------------------------------


def _assemble(layers: list[_Layer], cwd: Path) -> Settings:
    """Merge the layers key by key, then check the rules between keys on the whole."""
    values: _Layer = {}
    for layer in layers:
        values.update(layer)
    flat = {key: value.value for key, value in values.items()}
    base_dir = Path(flat.get("storage.base_dir", StorageSettings().base_dir)).expanduser()
    flat["storage.base_dir"] = str(cwd.absolute() / base_dir)
    data = _nested(flat)

    def where(key: str) -> str:
        return values[key].where if key in values else f"{DEFAULTS_LABEL}: {key}"

    try:
        return Settings.model_validate(data)
    except ValidationError as error:
        raise settings_error(error.errors()[0], data, DEFAULTS_LABEL, where) from None


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
        _yaml_layer(default_settings_text(), DEFAULTS_LABEL),
        _file_layer(config_path, cwd),
        _env_layer(_read_dotenv(cwd / DOTENV_FILENAME), f"{DOTENV_FILENAME}: "),
        _env_layer(os.environ if env is None else env),
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
    defaults = _yaml_layer(default_settings_text(), DEFAULTS_LABEL)
    return _assemble([defaults, _layer(data, source)], cwd)


def settings_to_dict(settings: Settings) -> dict[str, Any]:
    """A plain nested dict of YAML/JSON types, keyed like settings.yaml."""
    return settings.model_dump(mode="json")


def uses_local_broker(settings: Settings) -> bool:
    """Whether the tasks run in this process (the `memory://` broker), not on `abr worker`s."""
    return settings.celery.broker_url.startswith(LOCAL_BROKER_URL)


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


def require_api_key(
    *, env: Mapping[str, str] | None = None, dotenv_path: Path | None = None
) -> str:
    """The API key as `load_api_key` finds it, or `MissingApiKeyError` when there is none."""
    key = load_api_key(env=env, dotenv_path=dotenv_path)
    if key is None:
        raise MissingApiKeyError()
    return key


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
