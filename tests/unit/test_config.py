"""Settings: defaults, the four layers, every validation message, secrets, starter files."""

from __future__ import annotations

import json
import logging
import os
import random
import stat
import string
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from anthropic_batch_request_util.config import (
    ENV_TEMPLATE,
    ENV_VARS,
    CacheType,
    ResponseFormat,
    Settings,
    database_url,
    default_settings_text,
    load_api_key,
    load_base_url,
    load_settings,
    logs_dir,
    mask_secret,
    records_dir,
    require_api_key,
    results_dir,
    settings_from_dict,
    settings_to_dict,
    uses_local_broker,
    write_starter_files,
)
from anthropic_batch_request_util.config import models as settings_models
from anthropic_batch_request_util.errors import MissingApiKeyError, SettingsError, UsageError

REPO_ROOT = Path(__file__).resolve().parents[2]

#: the documented defaults: the original tool's keys and values, plus the new keys
DOCUMENTED_DEFAULTS: dict[str, Any] = {
    "api": {
        "version": "2023-06-01",
        "beta_features": ["message-batches-2024-09-24", "prompt-caching-2024-07-31"],
        "timeout": 300,
        "max_payload_size": 104857600,
        "max_retries": 5,
        "requests_per_minute": None,
    },
    "model": {
        "name": "claude-3-5-haiku-20241022",
        "display_name": "haiku",
        "max_tokens": 8192,
        "temperature": 0.0,
        "response_format": "text",
    },
    "batch": {
        "max_size": 10000,
        "chunk_size": 10000,
        "enable_prompt_cache": False,
        "cache_type": "ephemeral",
        "max_attempts": 3,
        "poll_interval": 0.5,
        "poll_max_interval": 60.0,
    },
    "storage": {
        "base_dir": "output",
        "subdirs": {"requests": "batch_records", "results": "results", "logs": "logs"},
    },
    "celery": {
        "broker_url": "memory://",
        "worker_concurrency": 4,
        "reconcile_interval": 15.0,
        "stale_after": 60.0,
    },
    "database_url": None,
    "pricing_file": None,
}


def load(cwd: Path, env: dict[str, str] | None = None, **kwargs: Any) -> Settings:
    """load_settings isolated from the real environment and working directory."""
    return load_settings(env=env or {}, cwd=cwd, **kwargs)


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def loaded_defaults(cwd: Path) -> dict[str, Any]:
    """The documented defaults as load_settings returns them in `cwd`."""
    expected = json.loads(json.dumps(DOCUMENTED_DEFAULTS))
    expected["storage"]["base_dir"] = str(cwd / "output")
    return expected


# --- defaults --------------------------------------------------------------------------


def test_packaged_settings_yaml_documents_exactly_the_defaults() -> None:
    assert yaml.safe_load(default_settings_text()) == DOCUMENTED_DEFAULTS


def test_dataclass_defaults_match_the_documented_ones() -> None:
    assert settings_to_dict(Settings()) == DOCUMENTED_DEFAULTS


def test_loading_with_no_file_or_environment_gives_the_documented_defaults(
    tmp_path: Path,
) -> None:
    settings = load(tmp_path)

    assert settings_to_dict(settings) == loaded_defaults(tmp_path)
    assert settings.model.response_format is ResponseFormat.TEXT
    assert settings.batch.cache_type is CacheType.EPHEMERAL
    assert settings.api.beta_features == (
        "message-batches-2024-09-24",
        "prompt-caching-2024-07-31",
    )


def test_settings_are_frozen(tmp_path: Path) -> None:
    settings = load(tmp_path)
    with pytest.raises(ValidationError, match="frozen"):
        settings.model.name = "other"  # type: ignore[misc]


def test_settings_error_is_a_usage_error() -> None:
    assert issubclass(SettingsError, UsageError)


# --- precedence ------------------------------------------------------------------------

LAYERS = ["settings.yaml", ".env", "environment", "overrides"]


@pytest.mark.parametrize("top", range(len(LAYERS) + 1))
def test_each_layer_beats_every_layer_below_it(tmp_path: Path, top: int) -> None:
    # Given the same key set in the first `top` layers, each to its own value
    present = LAYERS[:top]
    env: dict[str, str] = {}
    overrides: dict[str, object] = {}
    if "settings.yaml" in present:
        write(tmp_path, "settings.yaml", "model:\n  name: from-file\n")
    if ".env" in present:
        write(tmp_path, ".env", "ABR_MODEL_NAME=from-dotenv\n")
    if "environment" in present:
        env["ABR_MODEL_NAME"] = "from-env"
    if "overrides" in present:
        overrides["model.name"] = "from-flag"

    # When the settings are loaded
    settings = load(tmp_path, env, overrides=overrides)

    # Then the highest layer present wins
    expected = {
        0: "claude-3-5-haiku-20241022",
        1: "from-file",
        2: "from-dotenv",
        3: "from-env",
        4: "from-flag",
    }[top]
    assert settings.model.name == expected


def test_layers_replace_single_keys_not_whole_sections(tmp_path: Path) -> None:
    write(tmp_path, "settings.yaml", "model:\n  name: from-file\n")
    settings = load(
        tmp_path, {"ABR_MODEL_MAX_TOKENS": "100"}, overrides={"model.display_name": "x"}
    )

    assert (settings.model.name, settings.model.max_tokens) == ("from-file", 100)
    assert settings.model.display_name == "x"
    assert settings.model.temperature == 0.0
    assert settings.batch.chunk_size == 10000


def test_empty_settings_file_and_empty_sections_change_nothing(tmp_path: Path) -> None:
    write(tmp_path, "settings.yaml", "# nothing yet\napi:\nmodel:\n")
    assert settings_to_dict(load(tmp_path)) == loaded_defaults(tmp_path)


def test_config_path_is_used_instead_of_the_working_directory_file(tmp_path: Path) -> None:
    write(tmp_path, "settings.yaml", "batch:\n  max_attempts: 9\n")
    other = write(tmp_path, "other.yaml", "model:\n  name: from-config-path\n")

    settings = load(tmp_path, config_path=other)

    assert settings.model.name == "from-config-path"
    assert settings.batch.max_attempts == 3


def test_relative_config_path_is_taken_from_cwd(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    write(tmp_path / "conf", "abr.yaml", "model:\n  max_tokens: 77\n")
    assert load(tmp_path, config_path=Path("conf/abr.yaml")).model.max_tokens == 77


def test_missing_config_path_is_a_settings_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"^nope\.yaml: settings file not found$"):
        load(tmp_path, config_path=Path("nope.yaml"))


def test_defaults_to_os_environ_and_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ABR_BATCH_CHUNK_SIZE", "42")
    write(tmp_path, "settings.yaml", "model:\n  name: here\n")

    settings = load_settings()

    assert (settings.model.name, settings.batch.chunk_size) == ("here", 42)
    assert settings.storage.base_dir == str(tmp_path / "output")


# --- validation ------------------------------------------------------------------------

YAML_ERRORS = [
    ("model:\n  max_tokens: lots\n", 'model.max_tokens: must be an integer, got "lots"'),
    ("model:\n  max_tokens: 0\n", "model.max_tokens: must be greater than 0, got 0"),
    ("model:\n  max_tokens: true\n", "model.max_tokens: must be an integer, got true"),
    ("model:\n  max_tokens: 1.5\n", "model.max_tokens: must be an integer, got 1.5"),
    ("model:\n  temperature: 1.5\n", "model.temperature: must be 0 to 1, got 1.5"),
    ("model:\n  temperature: -0.1\n", "model.temperature: must be 0 to 1, got -0.1"),
    ("model:\n  temperature: hot\n", 'model.temperature: must be a number or null, got "hot"'),
    ("model:\n  name: 3\n", "model.name: must be a string, got 3"),
    ("model:\n  name: ' '\n", "model.name: must not be empty"),
    (
        "model:\n  response_format: xml\n",
        'model.response_format: must be one of text, json, got "xml"',
    ),
    (
        "batch:\n  cache_type: persistent\n",
        'batch.cache_type: must be one of ephemeral, got "persistent"',
    ),
    (
        'api:\n  version: "2024-01-01"\n',
        'api.version: must be one of 2023-06-01, 2026-10-21, got "2024-01-01"',
    ),
    (
        "api:\n  version: 2023-06-01\n",
        "api.version: must be a string, got 2023-06-01 (a date; put it in quotes)",
    ),
    ("api:\n  beta_features: one\n", 'api.beta_features: must be a list of strings, got "one"'),
    ("api:\n  beta_features: [a, '']\n", "api.beta_features: must not contain empty names"),
    ("api:\n  timeout: 0\n", "api.timeout: must be greater than 0, got 0.0"),
    (
        "api:\n  max_payload_size: 268435457\n",
        "api.max_payload_size: must be at most 268435456 (256 MiB, the API limit), got 268435457",
    ),
    ("api:\n  max_retries: -1\n", "api.max_retries: must be 0 or more, got -1"),
    ("batch:\n  chunk_size: 0\n", "batch.chunk_size: must be greater than 0, got 0"),
    (
        "batch:\n  max_size: 100001\n",
        "batch.max_size: must be at most 100000 (the API limit), got 100001",
    ),
    (
        "batch:\n  chunk_size: 20000\n",
        "batch.chunk_size: must be at most batch.max_size (10000), got 20000",
    ),
    ("batch:\n  max_attempts: 0\n", "batch.max_attempts: must be greater than 0, got 0"),
    (
        "batch:\n  enable_prompt_cache: 'yes'\n",
        'batch.enable_prompt_cache: must be true or false, got "yes"',
    ),
    ("batch:\n  poll_interval: -2\n", "batch.poll_interval: must be greater than 0, got -2.0"),
    (
        "batch:\n  poll_interval: 5\n  poll_max_interval: 1\n",
        "batch.poll_max_interval: must be at least batch.poll_interval (5), got 1",
    ),
    ("storage:\n  base_dir: ''\n", "storage.base_dir: must not be empty"),
    ("storage:\n  subdirs:\n    results: ''\n", "storage.subdirs.results: must not be empty"),
    (
        "storage:\n  subdirs: results\n",
        'storage.subdirs: must be a mapping of settings, got "results"',
    ),
    (
        "celery:\n  broker_url: localhost\n",
        "celery.broker_url: must be a URL such as memory:// or redis://localhost:6379/0, "
        'got "localhost"',
    ),
    (
        "celery:\n  worker_concurrency: 0\n",
        "celery.worker_concurrency: must be greater than 0, got 0",
    ),
    ("database_url: 5\n", "database_url: must be a string or null, got 5"),
    ("model: 3\n", "model: must be a mapping of settings, got 3"),
]


@pytest.mark.parametrize(("text", "message"), YAML_ERRORS)
def test_a_wrong_value_in_settings_yaml_names_the_file_and_key(
    tmp_path: Path, text: str, message: str
) -> None:
    write(tmp_path, "settings.yaml", text)
    with pytest.raises(SettingsError) as caught:
        load(tmp_path)
    assert str(caught.value) == f"settings.yaml: {message}"


def test_a_settings_file_that_is_not_a_mapping_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, "settings.yaml", "- a\n")
    with pytest.raises(
        SettingsError, match=r'^settings\.yaml: must be a mapping of settings, got \["a"\]$'
    ):
        load(tmp_path)


def test_invalid_yaml_is_an_error_naming_the_file(tmp_path: Path) -> None:
    write(tmp_path, "settings.yaml", "model: [unclosed\n")
    with pytest.raises(SettingsError, match=r"^settings\.yaml: not valid YAML: .*line 2"):
        load(tmp_path)


def test_the_payload_limit_itself_is_allowed(tmp_path: Path) -> None:
    write(tmp_path, "settings.yaml", "api:\n  max_payload_size: 268435456\n")
    assert load(tmp_path).api.max_payload_size == 256 * 1024 * 1024


def test_errors_in_a_config_path_name_that_path(tmp_path: Path) -> None:
    path = write(tmp_path, "mine.yaml", "model:\n  max_tokens: lots\n")
    with pytest.raises(SettingsError) as caught:
        load(tmp_path, config_path=path)
    assert str(caught.value) == f'{path}: model.max_tokens: must be an integer, got "lots"'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("model:\n  nmae: x\n", "model.nmae: unknown setting (did you mean model.name?)"),
        ("chunk_size: 5\n", "chunk_size: unknown setting (did you mean batch.chunk_size?)"),
        ("modle:\n  name: x\n", "modle: unknown setting (did you mean model?)"),
        ("batch:\n  name: x\n", "batch.name: unknown setting (did you mean model.name?)"),
        (
            "storage:\n  subdirs:\n    result: r\n",
            "storage.subdirs.result: unknown setting (did you mean storage.subdirs.results?)",
        ),
        ("zzzzzz: 1\n", "zzzzzz: unknown setting"),
    ],
)
def test_an_unknown_key_is_an_error_with_a_suggestion(
    tmp_path: Path, text: str, message: str
) -> None:
    write(tmp_path, "settings.yaml", text)
    with pytest.raises(SettingsError) as caught:
        load(tmp_path)
    assert str(caught.value) == f"settings.yaml: {message}"


# --- API version rules -----------------------------------------------------------------

REJECTS_TEMPERATURE = (
    "model.temperature: api.version 2026-10-21 rejects temperature; set model.temperature to null"
)


def test_api_version_2026_rejects_a_temperature_from_the_same_file(tmp_path: Path) -> None:
    write(tmp_path, "settings.yaml", 'api:\n  version: "2026-10-21"\nmodel:\n  temperature: 0.5\n')
    with pytest.raises(SettingsError) as caught:
        load(tmp_path)
    assert str(caught.value) == f"settings.yaml: {REJECTS_TEMPERATURE}"


def test_api_version_2026_rejects_the_default_temperature(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as caught:
        load(tmp_path, {"ABR_API_VERSION": "2026-10-21"})
    assert str(caught.value) == f"defaults: {REJECTS_TEMPERATURE}"


def test_api_version_2026_accepts_a_null_temperature(tmp_path: Path) -> None:
    write(tmp_path, "settings.yaml", 'api:\n  version: "2026-10-21"\nmodel:\n  temperature: null\n')
    settings = load(tmp_path)
    assert (settings.api.version, settings.model.temperature) == ("2026-10-21", None)


def test_api_version_2023_accepts_a_null_temperature_too(tmp_path: Path) -> None:
    assert load(tmp_path, {"ABR_MODEL_TEMPERATURE": "null"}).model.temperature is None


# --- environment -----------------------------------------------------------------------


def test_every_setting_has_its_environment_variable() -> None:
    assert dict(ENV_VARS) == {
        "ABR_API_VERSION": "api.version",
        "ABR_API_BETA_FEATURES": "api.beta_features",
        "ABR_API_TIMEOUT": "api.timeout",
        "ABR_API_MAX_PAYLOAD_SIZE": "api.max_payload_size",
        "ABR_API_MAX_RETRIES": "api.max_retries",
        "ABR_API_REQUESTS_PER_MINUTE": "api.requests_per_minute",
        "ABR_MODEL_NAME": "model.name",
        "ABR_MODEL_DISPLAY_NAME": "model.display_name",
        "ABR_MODEL_MAX_TOKENS": "model.max_tokens",
        "ABR_MODEL_TEMPERATURE": "model.temperature",
        "ABR_MODEL_RESPONSE_FORMAT": "model.response_format",
        "ABR_BATCH_MAX_SIZE": "batch.max_size",
        "ABR_BATCH_CHUNK_SIZE": "batch.chunk_size",
        "ABR_BATCH_ENABLE_PROMPT_CACHE": "batch.enable_prompt_cache",
        "ABR_BATCH_CACHE_TYPE": "batch.cache_type",
        "ABR_BATCH_MAX_ATTEMPTS": "batch.max_attempts",
        "ABR_BATCH_POLL_INTERVAL": "batch.poll_interval",
        "ABR_BATCH_POLL_MAX_INTERVAL": "batch.poll_max_interval",
        "ABR_STORAGE_BASE_DIR": "storage.base_dir",
        "ABR_STORAGE_SUBDIRS_REQUESTS": "storage.subdirs.requests",
        "ABR_STORAGE_SUBDIRS_RESULTS": "storage.subdirs.results",
        "ABR_STORAGE_SUBDIRS_LOGS": "storage.subdirs.logs",
        "ABR_CELERY_BROKER_URL": "celery.broker_url",
        "ABR_CELERY_WORKER_CONCURRENCY": "celery.worker_concurrency",
        "ABR_CELERY_RECONCILE_INTERVAL": "celery.reconcile_interval",
        "ABR_CELERY_STALE_AFTER": "celery.stale_after",
        "ABR_DATABASE_URL": "database_url",
        "ABR_PRICING_FILE": "pricing_file",
        "ABR_BROKER_URL": "celery.broker_url",
    }


def value_at(settings: Settings, key: str) -> object:
    value: object = settings
    for part in key.split("."):
        value = getattr(value, part)
    return value


@pytest.mark.parametrize(
    ("var", "text", "expected"),
    [
        ("ABR_BATCH_CHUNK_SIZE", " 250 ", 250),
        ("ABR_API_TIMEOUT", "12.5", 12.5),
        ("ABR_API_TIMEOUT", "30", 30.0),
        ("ABR_BATCH_ENABLE_PROMPT_CACHE", "true", True),
        ("ABR_BATCH_ENABLE_PROMPT_CACHE", "TRUE", True),
        ("ABR_BATCH_ENABLE_PROMPT_CACHE", "1", True),
        ("ABR_BATCH_ENABLE_PROMPT_CACHE", "false", False),
        ("ABR_BATCH_ENABLE_PROMPT_CACHE", "0", False),
        ("ABR_API_BETA_FEATURES", "a, b,,c", ("a", "b", "c")),
        ("ABR_API_BETA_FEATURES", "", ()),
        ("ABR_MODEL_TEMPERATURE", "0.7", 0.7),
        ("ABR_MODEL_TEMPERATURE", "", None),
        ("ABR_MODEL_TEMPERATURE", "null", None),
        ("ABR_MODEL_RESPONSE_FORMAT", "json", ResponseFormat.JSON),
        ("ABR_STORAGE_SUBDIRS_RESULTS", "answers", "answers"),
        ("ABR_DATABASE_URL", "postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("ABR_DATABASE_URL", "null", None),
        ("ABR_CELERY_BROKER_URL", "redis://h:6379/1", "redis://h:6379/1"),
        ("ABR_BROKER_URL", "redis://h:6379/2", "redis://h:6379/2"),
    ],
)
def test_environment_strings_become_typed_values(
    tmp_path: Path, var: str, text: str, expected: object
) -> None:
    settings = load(tmp_path, {var: text})
    assert value_at(settings, ENV_VARS[var]) == expected


@pytest.mark.parametrize(
    ("var", "text", "message"),
    [
        ("ABR_BATCH_CHUNK_SIZE", "x", 'must be an integer, got "x"'),
        ("ABR_BATCH_CHUNK_SIZE", "0", "must be greater than 0, got 0"),
        ("ABR_MODEL_MAX_TOKENS", "null", 'must be an integer, got "null"'),
        ("ABR_API_TIMEOUT", "inf", 'must be a number, got "inf"'),
        ("ABR_BATCH_ENABLE_PROMPT_CACHE", "maybe", 'must be true or false, got "maybe"'),
        ("ABR_MODEL_TEMPERATURE", "2", "must be 0 to 1, got 2"),
        ("ABR_MODEL_RESPONSE_FORMAT", "xml", 'must be one of text, json, got "xml"'),
        ("ABR_API_VERSION", "latest", 'must be one of 2023-06-01, 2026-10-21, got "latest"'),
        ("ABR_STORAGE_BASE_DIR", "", "must not be empty"),
    ],
)
def test_a_wrong_environment_value_names_the_variable(
    tmp_path: Path, var: str, text: str, message: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        load(tmp_path, {var: text})
    assert str(caught.value) == f"{var}: {message}"


def test_alias_and_full_name_may_agree(tmp_path: Path) -> None:
    url = "redis://h:6379/0"
    env = {"ABR_BROKER_URL": url, "ABR_CELERY_BROKER_URL": url}
    assert load(tmp_path, env).celery.broker_url == url


def test_alias_and_full_name_must_not_disagree(tmp_path: Path) -> None:
    env = {"ABR_BROKER_URL": "redis://a/0", "ABR_CELERY_BROKER_URL": "redis://b/0"}
    with pytest.raises(SettingsError) as caught:
        load(tmp_path, env)
    assert str(caught.value) == "ABR_BROKER_URL: disagrees with ABR_CELERY_BROKER_URL; set only one"


def test_unknown_abr_variables_are_ignored_and_near_misses_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    env = {"ABR_BATCH_CHUNKSIZE": "5", "ABR_SOMETHING_ELSE": "1"}
    with caplog.at_level(logging.WARNING):
        settings = load(tmp_path, env)

    assert settings.batch.chunk_size == 10000
    assert "ABR_BATCH_CHUNKSIZE is not an abr setting (did you mean ABR_BATCH_CHUNK_SIZE?)" in (
        caplog.text
    )
    assert "ABR_SOMETHING_ELSE" not in caplog.text


def test_abr_variables_in_dotenv_apply_and_errors_name_the_file(tmp_path: Path) -> None:
    write(tmp_path, ".env", "ABR_DATABASE_URL=sqlite:////tmp/x.db\nABR_BATCH_CHUNK_SIZE=7\n")
    settings = load(tmp_path)
    assert (settings.database_url, settings.batch.chunk_size) == ("sqlite:////tmp/x.db", 7)

    write(tmp_path, ".env", "ABR_BATCH_CHUNK_SIZE=x\n")
    with pytest.raises(SettingsError) as caught:
        load(tmp_path)
    assert str(caught.value) == '.env: ABR_BATCH_CHUNK_SIZE: must be an integer, got "x"'


# --- overrides -------------------------------------------------------------------------


def test_overrides_accept_typed_values_and_strings(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        overrides={
            "storage.base_dir": tmp_path / "elsewhere",
            "batch.chunk_size": "5",
            "batch.max_attempts": 2,
            "model.temperature": "null",
        },
    )
    assert settings.storage.base_dir == str(tmp_path / "elsewhere")
    assert (settings.batch.chunk_size, settings.batch.max_attempts) == (5, 2)
    assert settings.model.temperature is None


def test_an_override_of_none_means_the_flag_was_not_given(tmp_path: Path) -> None:
    settings = load(tmp_path, {"ABR_MODEL_NAME": "env"}, overrides={"model.name": None})
    assert settings.model.name == "env"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"storage.basedir": "x"},
            "command line: storage.basedir: unknown setting (did you mean storage.base_dir?)",
        ),
        (
            {"batch.chunk_size": "many"},
            'command line: batch.chunk_size: must be an integer, got "many"',
        ),
        ({"batch.chunk_size": 2.5}, "command line: batch.chunk_size: must be an integer, got 2.5"),
    ],
)
def test_a_wrong_override_is_an_error_naming_the_key(
    tmp_path: Path, overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        load(tmp_path, overrides=overrides)
    assert str(caught.value) == message


# --- conversions, paths ----------------------------------------------------------------


def test_settings_to_dict_is_plain_data_that_round_trips(tmp_path: Path) -> None:
    settings = load(tmp_path, {"ABR_MODEL_RESPONSE_FORMAT": "json"})
    data = settings_to_dict(settings)

    assert json.loads(json.dumps(data)) == data
    assert yaml.safe_load(yaml.safe_dump(data)) == data
    assert settings_from_dict(data, cwd=tmp_path) == settings


def test_settings_from_dict_names_its_source(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"^record: model\.max_tokens: must be an integer"):
        settings_from_dict({"model": {"max_tokens": "x"}}, source="record", cwd=tmp_path)


def test_relative_base_dir_is_made_absolute_against_cwd(tmp_path: Path) -> None:
    write(tmp_path, "settings.yaml", "storage:\n  base_dir: out/run\n  subdirs:\n    logs: l\n")
    settings = load(tmp_path)

    base = tmp_path / "out" / "run"
    assert settings.storage.base_dir == str(base)
    assert results_dir(settings) == base / "results"
    assert records_dir(settings) == base / "batch_records"
    assert logs_dir(settings) == base / "l"
    assert database_url(settings) == f"sqlite:///{base}/abr.sqlite3"


def test_absolute_base_dir_is_kept(tmp_path: Path) -> None:
    target = tmp_path / "abs"
    settings = load(tmp_path / "somewhere", {"ABR_STORAGE_BASE_DIR": str(target)})
    assert results_dir(settings) == target / "results"


def test_an_explicit_database_url_is_used_as_is(tmp_path: Path) -> None:
    url = "postgresql+psycopg://abr@db/abr"
    assert database_url(load(tmp_path, {"ABR_DATABASE_URL": url})) == url


# --- URLs, the local broker, the request pace ------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:////var/abr/store.sqlite3",
        "sqlite:///relative/store.sqlite3",
        "postgresql://abr@db-host:5432/abr",
        "postgresql+psycopg://abr:secret@localhost/abr",
    ],
)
def test_supported_database_urls_are_accepted(tmp_path: Path, url: str) -> None:
    assert load(tmp_path, {"ABR_DATABASE_URL": url}).database_url == url


DATABASE_URL_ERRORS = [
    (
        "mysql://x",
        'unsupported database URL "mysql://x": use sqlite:///PATH or postgresql://USER@HOST/DB',
    ),
    (
        "postgresql+psycopg2://u@h/db",
        'unsupported database URL "postgresql+psycopg2://u@h/db": '
        "use sqlite:///PATH or postgresql://USER@HOST/DB",
    ),
    (
        "store.sqlite3",
        'unsupported database URL "store.sqlite3": use sqlite:///PATH or postgresql://USER@HOST/DB',
    ),
    ("sqlite://", 'malformed database URL "sqlite://": use sqlite:///PATH with a file path'),
    (
        "postgresql://u@h:port/db",
        'malformed database URL "postgresql://u@h:port/db": '
        "Port could not be cast to integer value as 'port'",
    ),
    ("postgresql://u@[::1/db", 'malformed database URL "postgresql://u@[::1/db": Invalid IPv6 URL'),
]


@pytest.mark.parametrize(("url", "message"), DATABASE_URL_ERRORS)
def test_a_wrong_database_url_is_one_line_naming_what_is_supported(
    tmp_path: Path, url: str, message: str
) -> None:
    write(tmp_path, "settings.yaml", f"database_url: {json.dumps(url)}\n")
    with pytest.raises(SettingsError) as caught:
        load(tmp_path)
    assert str(caught.value) == f"settings.yaml: database_url: {message}"


def test_a_postgresql_url_without_its_driver_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings_models, "has_postgres_driver", lambda: False)
    with pytest.raises(SettingsError) as caught:
        load(tmp_path, {"ABR_DATABASE_URL": "postgresql://abr@db/abr"})
    assert str(caught.value) == (
        "ABR_DATABASE_URL: PostgreSQL needs the psycopg driver: "
        "pip install 'anthropic-batch-request-util[postgres]'"
    )
    assert load(tmp_path, {"ABR_DATABASE_URL": "sqlite:///x.db"}).database_url == "sqlite:///x.db"


@pytest.mark.parametrize(
    "url", ["memory://", "redis://localhost:6379/0", "redis://h", "rediss://:pw@h:6380/2"]
)
def test_supported_broker_urls_are_accepted(tmp_path: Path, url: str) -> None:
    assert load(tmp_path, {"ABR_BROKER_URL": url}).celery.broker_url == url


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "amqp://x",
            'unsupported broker URL "amqp://x": '
            "use memory:// (in-process) or redis://HOST:PORT/DB (rediss:// for TLS)",
        ),
        (
            "redis://h:port/0",
            'malformed broker URL "redis://h:port/0": '
            "Port could not be cast to integer value as 'port'",
        ),
        (
            "redis://h:6379/zero",
            'malformed broker URL "redis://h:6379/zero": '
            "the database after the host must be a number",
        ),
    ],
)
def test_a_wrong_broker_url_is_one_line_naming_what_is_supported(
    tmp_path: Path, url: str, message: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        load(tmp_path, overrides={"celery.broker_url": url})
    assert str(caught.value) == f"command line: celery.broker_url: {message}"


@pytest.mark.parametrize(
    ("url", "local"),
    [("memory://", True), ("redis://localhost:6379/0", False), ("rediss://h:6380/0", False)],
)
def test_uses_local_broker_is_true_only_for_memory(tmp_path: Path, url: str, local: bool) -> None:
    assert uses_local_broker(load(tmp_path, {"ABR_BROKER_URL": url})) is local


@pytest.mark.parametrize(("text", "expected"), [("60", 60), ("null", None), ("", None)])
def test_requests_per_minute_is_a_positive_integer_or_null(
    tmp_path: Path, text: str, expected: int | None
) -> None:
    assert load(tmp_path).api.requests_per_minute is None
    settings = load(tmp_path, {"ABR_API_REQUESTS_PER_MINUTE": text})
    assert settings.api.requests_per_minute == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("api:\n  requests_per_minute: 0\n", "must be greater than 0, got 0"),
        ("api:\n  requests_per_minute: 1.5\n", "must be an integer or null, got 1.5"),
        ("api:\n  requests_per_minute: many\n", 'must be an integer or null, got "many"'),
    ],
)
def test_a_wrong_requests_per_minute_names_the_file_and_key(
    tmp_path: Path, text: str, message: str
) -> None:
    write(tmp_path, "settings.yaml", text)
    with pytest.raises(SettingsError) as caught:
        load(tmp_path)
    assert str(caught.value) == f"settings.yaml: api.requests_per_minute: {message}"


def test_the_json_schema_carries_the_limits_and_forbids_unknown_keys() -> None:
    schema = Settings.model_json_schema()
    api, batch = schema["$defs"]["ApiSettings"], schema["$defs"]["BatchSettings"]

    assert schema["additionalProperties"] is False
    assert api["additionalProperties"] is False
    assert api["properties"]["max_payload_size"]["maximum"] == 256 * 1024 * 1024
    assert api["properties"]["version"]["enum"] == ["2023-06-01", "2026-10-21"]
    assert batch["properties"]["max_size"]["maximum"] == 100_000


def test_the_rules_between_keys_also_hold_for_settings_built_in_code() -> None:
    with pytest.raises(ValidationError, match=r"must be at most batch\.max_size"):
        Settings(batch={"max_size": 10, "chunk_size": 20})  # type: ignore[arg-type]


# --- secrets ---------------------------------------------------------------------------


@pytest.fixture
def no_key_in_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)


def test_api_key_comes_from_the_environment_first(tmp_path: Path) -> None:
    dotenv = write(tmp_path, ".env", "ANTHROPIC_API_KEY=from-dotenv\n")
    key = load_api_key(env={"ANTHROPIC_API_KEY": " from-env "}, dotenv_path=dotenv)
    assert key == "from-env"


@pytest.mark.usefixtures("no_key_in_environ")
def test_api_key_is_read_from_dotenv_without_touching_os_environ(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a .env in the working directory and no key in the environment
    monkeypatch.chdir(tmp_path)
    write(tmp_path, ".env", "ANTHROPIC_API_KEY=sk-ant-secret\nANTHROPIC_BASE_URL=http://e:1\n")
    before = dict(os.environ)

    # When the key and base URL are loaded with the real environment
    key, base_url = load_api_key(), load_base_url()

    # Then they come from .env and os.environ is unchanged
    assert (key, base_url) == ("sk-ant-secret", "http://e:1")
    assert dict(os.environ) == before


@pytest.mark.parametrize("dotenv_text", [None, "ANTHROPIC_API_KEY=\n", "ANTHROPIC_API_KEY\n"])
def test_api_key_is_none_when_absent_or_blank(tmp_path: Path, dotenv_text: str | None) -> None:
    dotenv = tmp_path / ".env"
    if dotenv_text is not None:
        write(tmp_path, ".env", dotenv_text)
    assert load_api_key(env={"ANTHROPIC_API_KEY": "  "}, dotenv_path=dotenv) is None


def test_require_api_key_returns_the_key_or_says_it_is_missing(tmp_path: Path) -> None:
    dotenv = write(tmp_path, ".env", "ANTHROPIC_API_KEY=sk-ant-from-dotenv\n")
    assert require_api_key(env={}, dotenv_path=dotenv) == "sk-ant-from-dotenv"

    with pytest.raises(MissingApiKeyError, match=r"^ANTHROPIC_API_KEY is not set"):
        require_api_key(env={"ANTHROPIC_API_KEY": " "}, dotenv_path=tmp_path / "none")


@pytest.mark.usefixtures("no_key_in_environ")
def test_require_api_key_reads_the_real_environment_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(MissingApiKeyError):
        require_api_key()
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-real")
    assert require_api_key() == "sk-ant-real"


def test_mask_secret_shows_the_key_prefix_and_last_four_only() -> None:
    assert mask_secret("sk-ant-api03-" + "x" * 80 + "f00d") == "sk-ant-…f00d"
    assert mask_secret("abc") == "…"
    assert mask_secret(None) == "(not set)"
    assert mask_secret("  ") == "(not set)"


def test_mask_secret_never_reveals_more_than_four_characters() -> None:
    rng = random.Random(7)
    alphabet = string.ascii_letters + string.digits + "-_"
    for _ in range(500):
        prefix = rng.choice(["", "sk-ant-", "sk-ant-api03-"])
        secret = prefix + "".join(rng.choices(alphabet, k=rng.randint(1, 120)))
        masked = mask_secret(secret)

        shown = masked.removeprefix("sk-ant-").removeprefix("…")
        assert len(shown) <= 4
        assert secret.endswith(shown)
        body = secret.removeprefix("sk-ant-")
        assert not any(body[i : i + 5] in masked for i in range(len(body) - 4))


# --- starter files ---------------------------------------------------------------------


@pytest.mark.usefixtures("no_key_in_environ")
def test_starter_files_are_written_and_load_back_to_the_defaults(tmp_path: Path) -> None:
    # Given an empty project directory
    project = tmp_path / "project"

    # When `abr init` writes its files
    written = write_starter_files(project)

    # Then settings.yaml is the packaged file and loads to the defaults, and .env has no key
    assert written == [project / "settings.yaml", project / ".env"]
    assert (project / "settings.yaml").read_text(encoding="utf-8") == default_settings_text()
    assert settings_to_dict(load(project)) == loaded_defaults(project)
    dotenv_text = (project / ".env").read_text(encoding="utf-8")
    assert "\nANTHROPIC_API_KEY=\n" in dotenv_text
    assert "\n# ANTHROPIC_BASE_URL=http://127.0.0.1:8765\n" in dotenv_text
    assert load_api_key(env={}, dotenv_path=project / ".env") is None
    assert stat.S_IMODE((project / ".env").stat().st_mode) == 0o600


def test_starter_files_refuse_to_overwrite_and_write_nothing(tmp_path: Path) -> None:
    write(tmp_path, ".env", "ANTHROPIC_API_KEY=keep-me\n")

    with pytest.raises(SettingsError) as caught:
        write_starter_files(tmp_path)

    assert str(caught.value) == f"{tmp_path / '.env'}: already exists; use --force to overwrite it"
    assert (tmp_path / ".env").read_text(encoding="utf-8") == "ANTHROPIC_API_KEY=keep-me\n"
    assert not (tmp_path / "settings.yaml").exists()


def test_starter_files_overwrite_with_force(tmp_path: Path) -> None:
    write(tmp_path, "settings.yaml", "model:\n  name: old\n")
    write_starter_files(tmp_path, force=True)
    assert (tmp_path / "settings.yaml").read_text(encoding="utf-8") == default_settings_text()


def test_env_example_in_the_repository_is_the_init_template() -> None:
    assert (REPO_ROOT / ".env.example").read_text(encoding="utf-8") == ENV_TEMPLATE
