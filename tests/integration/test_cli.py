"""The command line beyond what test_run.py covers, driven as a user drives it: help, init,
config show, status, jobs, results, --no-wait and resume, --output, per-request params,
JSON answers, prompt caching and the API key — each a subprocess against the emulator.

An `abr run` costs seconds, so the runs that other tests only read are started once per
module, side by side (`SCENARIOS`, the `runs` fixture); each test then names its scenario.
"""

from __future__ import annotations

import csv
import io
import os
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from anthropic_batch_request_util.config import default_settings_text
from anthropic_batch_request_util.emulator import FAULTS, Emulator, EmulatorConfig

from ..conftest import TEST_API_KEY
from .helpers import (
    FAST_SETTINGS,
    abr_command,
    questions,
    read_results,
    run_abr,
    summary,
    write_original,
)

#: the part of the dummy key that must never be shown (mask_secret may show the last 4)
KEY_SECRET_PART = TEST_API_KEY.removeprefix("sk-ant-")[:-4]
QUICK_START_COMMANDS = ("run", "status", "jobs", "results", "resume", "cancel", "emulator")
FINAL_COUNTS = ("succeeded", "errored", "canceled", "expired")


def assert_one_error_line(
    completed: subprocess.CompletedProcess[str], codes: tuple[int, ...] = (2,)
) -> str:
    """The command failed with one of `codes` and one `abr: error:` line, no traceback."""
    assert completed.returncode in codes, (completed.stdout, completed.stderr)
    assert "Traceback" not in completed.stderr
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1, completed.stderr
    assert lines[0].startswith("abr: error:"), completed.stderr
    return lines[0]


def nothing_sent(emulator: Emulator) -> bool:
    stats = emulator.stats()
    return bool(stats["batches_created"] == 0 and stats["requests_submitted"] == 0)


def record_creates(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Collect every batch create body the emulator accepts, parsed, as it arrives."""
    bodies: list[dict[str, Any]] = []
    create = emulator.state.create_batch

    def recording(body: bytes, version: str) -> Any:
        bodies.append(orjson.loads(body))
        return create(body, version)

    monkeypatch.setattr(emulator.state, "create_batch", recording)
    return bodies


def sent_params(bodies: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """custom_id -> the params it was sent with."""
    return {r["custom_id"]: r["params"] for body in bodies for r in body["requests"]}


def files_under(directory: Path) -> list[Path]:
    return sorted(path for path in directory.rglob("*") if path.is_file())


# --- help ----------------------------------------------------------------------------------


def test_help_is_a_short_quick_start_naming_every_command() -> None:
    completed = run_abr("--help")

    assert completed.returncode == 0, completed.stderr
    text = completed.stdout
    for command in QUICK_START_COMMANDS:
        assert f"abr {command}" in text, command
    assert "abr init" in text
    assert len(text.splitlines()) <= 40


def test_help_quick_start_keeps_one_command_per_line() -> None:
    completed = run_abr("--help", COLUMNS="80")

    line_starts = [line.strip() for line in completed.stdout.splitlines()]
    for command in QUICK_START_COMMANDS:
        assert any(line.startswith(f"abr {command}") for line in line_starts), command


def test_run_help_lists_its_options() -> None:
    completed = run_abr("run", "--help")

    assert completed.returncode == 0, completed.stderr
    for option in ("--config", "--output", "--no-wait", "--json"):
        assert option in completed.stdout, option


def test_emulator_help_lists_its_options_and_every_fault() -> None:
    completed = run_abr("emulator", "--help")

    assert completed.returncode == 0, completed.stderr
    for option in ("--port", "--processing-seconds", "--fault", "--api-key"):
        assert option in completed.stdout, option
    for fault in FAULTS:
        assert fault in completed.stdout, fault


def test_an_unknown_command_exits_2() -> None:
    completed = run_abr("frobnicate")

    assert completed.returncode == 2
    assert "Traceback" not in completed.stderr


# --- init and config show ------------------------------------------------------------------


def test_init_writes_starter_files_and_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    # Given an empty directory
    settings, dotenv = tmp_path / "settings.yaml", tmp_path / ".env"

    # When abr init runs
    first = run_abr("init")

    # Then it writes the commented defaults and a private .env template
    assert first.returncode == 0, first.stderr
    assert settings.read_text(encoding="utf-8") == default_settings_text()
    assert "ANTHROPIC_API_KEY=" in dotenv.read_text(encoding="utf-8")
    assert dotenv.stat().st_mode & 0o077 == 0

    # When the user edits settings.yaml and runs abr init again
    settings.write_text("batch:\n  chunk_size: 5\n", encoding="utf-8")
    again = run_abr("init")

    # Then it refuses with one line and keeps the edit
    assert "--force" in assert_one_error_line(again)
    assert settings.read_text(encoding="utf-8") == "batch:\n  chunk_size: 5\n"

    # When --force is given, the defaults are written again
    forced = run_abr("init", "--force")
    assert forced.returncode == 0, forced.stderr
    assert settings.read_text(encoding="utf-8") == default_settings_text()


def shown_settings(completed: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert completed.returncode == 0, completed.stderr
    shown: dict[str, Any] = yaml.safe_load(completed.stdout)
    return shown


def test_config_show_prints_the_effective_settings_with_the_key_masked(tmp_path: Path) -> None:
    # Given settings.yaml, a --config file, ABR_* variables and --output
    (tmp_path / "settings.yaml").write_text("batch:\n  chunk_size: 5\n", encoding="utf-8")
    other = tmp_path / "other.yaml"
    other.write_text("model:\n  name: claude-from-file\n  max_tokens: 77\n", encoding="utf-8")

    from_cwd = run_abr("config", "show", ABR_MODEL_TEMPERATURE="null")
    layered = run_abr(
        "config", "show", "--config", str(other), "--output", "elsewhere", ABR_MODEL_MAX_TOKENS="99"
    )

    # Then ./settings.yaml and the environment apply, and `null` unsets a value
    settings = shown_settings(from_cwd)
    assert settings["batch"]["chunk_size"] == 5
    assert settings["model"]["temperature"] is None
    assert settings["model"]["name"] == "claude-3-5-haiku-20241022"
    # and --config replaces ./settings.yaml, ABR_* beats the file, --output sets base_dir
    settings = shown_settings(layered)
    assert settings["batch"]["chunk_size"] == 10000
    assert settings["model"]["name"] == "claude-from-file"
    assert settings["model"]["max_tokens"] == 99
    assert Path(settings["storage"]["base_dir"]) == tmp_path / "elsewhere"
    # and the key is shown masked, never in full
    for completed in (from_cwd, layered):
        assert "ANTHROPIC_API_KEY: sk-ant-…" in completed.stdout
        assert KEY_SECRET_PART not in completed.stdout + completed.stderr


def test_config_show_finds_the_key_in_dotenv_and_says_when_there_is_none(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f"ANTHROPIC_API_KEY={TEST_API_KEY}\n", encoding="utf-8")

    from_dotenv = run_abr("config", "show", ANTHROPIC_API_KEY="")
    (tmp_path / ".env").unlink()
    missing = run_abr("config", "show", ANTHROPIC_API_KEY="")

    assert from_dotenv.returncode == missing.returncode == 0
    assert "ANTHROPIC_API_KEY: sk-ant-…" in from_dotenv.stdout
    assert KEY_SECRET_PART not in from_dotenv.stdout
    assert "ANTHROPIC_API_KEY: (not set)" in missing.stdout


BAD_SETTINGS: list[tuple[str, dict[str, str], str | None, list[str], str]] = [
    # (name, environment, settings.yaml text, extra arguments, expected in the error)
    ("not an integer", {"ABR_BATCH_CHUNK_SIZE": "zero"}, None, [], "ABR_BATCH_CHUNK_SIZE"),
    (
        "unknown key",
        {},
        "batch:\n  chunk_sise: 5\n",
        [],
        "batch.chunk_sise: unknown setting (did you mean batch.chunk_size?)",
    ),
    (
        "2026 api with a temperature",
        {"ABR_API_VERSION": "2026-10-21"},
        None,
        [],
        "set model.temperature to null",
    ),
    ("missing --config file", {}, None, ["--config", "missing.yaml"], "missing.yaml"),
]


@pytest.mark.parametrize(
    ("name", "env", "settings_text", "extra", "expected"),
    BAD_SETTINGS,
    ids=[case[0] for case in BAD_SETTINGS],
)
@pytest.mark.parametrize("command", ["run", "config show"])
def test_a_bad_setting_exits_2_with_one_line_and_sends_nothing(
    emulator: Emulator,
    tmp_path: Path,
    command: str,
    name: str,
    env: dict[str, Any],
    settings_text: str | None,
    extra: list[str],
    expected: str,
) -> None:
    # Given a bad setting and a valid input file
    if settings_text is not None:
        (tmp_path / "settings.yaml").write_text(settings_text, encoding="utf-8")
    source = write_original(tmp_path / "q.json", 3)
    args = ["run", str(source)] if command == "run" else ["config", "show"]

    # When the command runs
    completed = run_abr(*args, *extra, emulator=emulator, **env)

    # Then it names the problem in one line, exits 2 and the API saw nothing
    assert expected in assert_one_error_line(completed), name
    assert nothing_sent(emulator)


# --- runs made once for this module, side by side ------------------------------------------

SYSTEM_TO_CACHE = "You are a careful assistant. " * 20
LONG_STEM = "customer_feedback_summaries_2024_q3"  #: job ids start with the input's stem
JSONL_LINES: list[dict[str, Any]] = [
    {
        "custom_id": "short",
        "params": {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3},
    },
    {
        "custom_id": "sonnet",
        "params": {
            "model": "claude-sonnet-4-5",
            "messages": [{"role": "user", "content": "Hello"}],
        },
    },
    {
        "custom_id": "opus",
        "params": {
            "model": "claude-opus-4-1",
            "max_tokens": 100,
            "temperature": 0.5,
            "system": "Be terse.",
            "messages": [{"role": "user", "content": "Hey"}],
        },
    },
]
JSON_QUESTIONS = {
    "system_prompt": "Be brief.",
    "messages_list": [
        [{"role": "user", "content": "Answer in JSON: what is 2+2?"}],
        [{"role": "user", "content": "What is 3+3?"}],
    ],
    "custom_id_prefix": "js",
}


def _original(n: int, prefix: str, system: str = "Be brief.") -> bytes:
    data = {"system_prompt": system, "messages_list": questions(n), "custom_id_prefix": prefix}
    return orjson.dumps(data)


@dataclass(frozen=True)
class Scenario:
    """One `abr run FILE --json` in a directory of its own, with its settings."""

    filename: str
    content: bytes
    env: Mapping[str, str] = field(default_factory=dict)
    args: tuple[str, ...] = ()  #: more arguments; `--output` is taken from the workdir
    api: str = "fast"  #: fast, slow (batches never end) or refusing (wants another key)


#: the emulators the scenarios talk to
APIS = {
    "fast": EmulatorConfig(processing_seconds=0.2, seed=2, retry_after=0.0),
    "slow": EmulatorConfig(processing_seconds=600.0, seed=2, retry_after=0.0),
    "refusing": EmulatorConfig(processing_seconds=0.2, seed=2, api_key="another-key"),
}


SCENARIOS: dict[str, Scenario] = {
    # 7 questions in chunks of 3, from a file with a long (job id) name, under --output
    "finished": Scenario(
        f"{LONG_STEM}.json",
        _original(7, "q"),
        {"ABR_BATCH_CHUNK_SIZE": "3"},
        ("--output", "chosen-output"),
    ),
    # JSONL lines with their own model / max_tokens / temperature, some left to the settings
    "jsonl": Scenario(
        "mixed.jsonl",
        b"\n".join(orjson.dumps(line) for line in JSONL_LINES) + b"\n",
        {"ABR_MODEL_NAME": "claude-default-model", "ABR_MODEL_MAX_TOKENS": "321"},
    ),
    # response_format json: one question asks for JSON, the other does not
    "json_answers": Scenario(
        "json-answers.json", orjson.dumps(JSON_QUESTIONS), {"ABR_MODEL_RESPONSE_FORMAT": "json"}
    ),
    # prompt caching on, 5 questions sharing a long system prompt, in chunks of 2
    "prompt_cache": Scenario(
        "cached.json",
        _original(5, "pc", system=SYSTEM_TO_CACHE),
        {"ABR_BATCH_ENABLE_PROMPT_CACHE": "true", "ABR_BATCH_CHUNK_SIZE": "2"},
    ),
    # the API refuses the key
    "refused_key": Scenario("refused.json", _original(3, "rk"), api="refusing"),
    # --no-wait against batches that stay in progress
    "submitted": Scenario("pending.json", _original(4, "nw"), args=("--no-wait",), api="slow"),
}


@dataclass(frozen=True)
class Run:
    """What a scenario's run printed, and what the API received from it."""

    workdir: Path
    completed: subprocess.CompletedProcess[str]
    sent: dict[str, dict[str, Any]]  #: custom_id -> params as the API received them
    api_stats: dict[str, Any]  #: the stats of the emulator the run talked to

    @property
    def summary(self) -> dict[str, Any]:
        return summary(self.completed)

    @property
    def job_id(self) -> str:
        job_id: str = self.summary["job_id"]
        return job_id

    @property
    def output(self) -> Path:
        chosen = self.workdir / "chosen-output"
        return chosen if chosen.exists() else self.workdir / "output"

    @property
    def results(self) -> list[dict[str, Any]]:
        return read_results(Path(self.summary["results_path"]))

    @property
    def record(self) -> dict[str, Any]:
        record: dict[str, Any] = orjson.loads(Path(self.summary["records_path"]).read_bytes())
        return record

    def abr(self, *args: str, **env: Any) -> subprocess.CompletedProcess[str]:
        """`abr ARGS --output DIR` for this run's output, typed from another directory."""
        return run_abr(*args, "--output", str(self.output), **env)


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment of a run: no ABR_*/ANTHROPIC_* from outside, the dummy key."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ABR_", "ANTHROPIC_"))}
    return env | FAST_SETTINGS | {"ANTHROPIC_API_KEY": TEST_API_KEY} | extra


def _start(workdir: Path, scenario: Scenario, emulator: Emulator) -> subprocess.Popen[str]:
    workdir.mkdir()
    source = workdir / scenario.filename
    source.write_bytes(scenario.content)
    args = ["run", str(source), "--json", *scenario.args]
    env = _clean_env(ANTHROPIC_BASE_URL=emulator.base_url, **scenario.env)
    return subprocess.Popen(
        abr_command(*args), cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def _kill_if_running(process: subprocess.Popen[str]) -> None:
    """Leave no run behind when the fixture fails half-way."""
    if process.poll() is None:
        process.kill()
        process.communicate()


def _finish(process: subprocess.Popen[str]) -> subprocess.CompletedProcess[str]:
    out, err = process.communicate(timeout=180)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Run]]:
    """Every scenario run once, side by side, against emulators that record what they get."""
    base = tmp_path_factory.mktemp("runs")
    with ExitStack() as stack:
        apis = {
            name: stack.enter_context(Emulator(config, host="127.0.0.1", port=0))
            for name, config in APIS.items()
        }
        bodies = record_creates(apis["fast"], stack.enter_context(pytest.MonkeyPatch.context()))
        started = {
            name: _start(base / name, scenario, apis[scenario.api])
            for name, scenario in SCENARIOS.items()
        }
        for process in started.values():
            stack.callback(_kill_if_running, process)
        completed = {name: _finish(process) for name, process in started.items()}
        stats = {name: api.stats() for name, api in apis.items()}
    sent = sent_params(bodies)
    yield {
        name: Run(base / name, completed[name], sent, stats[scenario.api])
        for name, scenario in SCENARIOS.items()
    }


@pytest.fixture(scope="module")
def finished(runs: dict[str, Run]) -> Run:
    run = runs["finished"]
    assert run.completed.returncode == 0, run.completed.stderr
    return run


@pytest.fixture(scope="module")
def submitted(runs: dict[str, Run]) -> Run:
    run = runs["submitted"]
    assert run.completed.returncode == 0, run.completed.stderr
    return run


# --- a finished job: its summary, --output, status, jobs, results --------------------------


def test_run_json_summary_has_the_documented_fields(finished: Run) -> None:
    result = finished.summary

    assert result["status"] == "finished"
    assert result["job_id"].startswith(f"{LONG_STEM}-")
    assert result["counts"] == {"succeeded": 7, "errored": 0, "canceled": 0, "expired": 0}
    assert set(result["usage"]) >= {
        "input_tokens",
        "output_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
    }
    assert Path(result["results_path"]).is_file() and Path(result["records_path"]).is_file()


def test_output_dir_holds_results_records_logs_and_the_store(finished: Run) -> None:
    out, job_id = finished.workdir / "chosen-output", finished.job_id

    assert Path(finished.summary["results_path"]) == out / "results" / f"{job_id}.jsonl"
    assert Path(finished.summary["records_path"]) == out / "batch_records" / f"{job_id}.json"
    assert (out / "abr.sqlite3").is_file()
    assert files_under(out / "logs"), "the run logs under <output>/logs"
    # and nothing goes to the working directory's default output/
    assert not (finished.workdir / "output").exists()


def test_status_json_agrees_with_the_results_file_and_the_record(finished: Run) -> None:
    completed = finished.abr("status", finished.job_id, "--json")

    assert completed.returncode == 0, completed.stderr
    status = orjson.loads(completed.stdout)
    lines = finished.results
    tally = {name: sum(line["status"] == name for line in lines) for name in FINAL_COUNTS}
    assert status["job_id"] == finished.job_id
    assert status["status"] == "finished"
    assert status["total"] == status["done"] == len(lines) == 7
    assert status["counts"] == tally
    # every chunk with its batch id and its counts, as the record and the results say
    chunks = status["chunks"]
    assert [c["requests"] for c in chunks] == [3, 3, 1]
    assert [c["batch_id"] for c in chunks] == [c["batch_id"] for c in finished.record["chunks"]]
    assert {c["batch_id"] for c in chunks} == {line["batch_id"] for line in lines}
    assert [c["request_counts"]["succeeded"] for c in chunks] == [3, 3, 1]


def test_status_without_a_job_shows_the_latest_one(finished: Run) -> None:
    completed = finished.abr("status")

    assert completed.returncode == 0, completed.stderr
    assert finished.job_id in completed.stdout
    assert "finished" in completed.stdout
    assert "7/7 done" in completed.stdout


def test_status_shows_every_full_batch_id_on_an_80_column_terminal(finished: Run) -> None:
    completed = finished.abr("status", COLUMNS="80")

    assert completed.returncode == 0, completed.stderr
    for chunk in finished.record["chunks"]:
        assert chunk["batch_id"] in completed.stdout


def test_jobs_lists_the_job_with_its_counts(finished: Run) -> None:
    as_json = finished.abr("jobs", "--json")
    as_table = finished.abr("jobs", COLUMNS="200")

    assert as_json.returncode == as_table.returncode == 0, as_json.stderr + as_table.stderr
    (listed,) = orjson.loads(as_json.stdout)
    assert (
        listed
        | {
            "job_id": finished.job_id,
            "status": "finished",
            "total": 7,
            "counts": finished.summary["counts"],
        }
        == listed
    )
    assert finished.job_id in as_table.stdout


def test_jobs_shows_the_full_job_id_on_an_80_column_terminal(finished: Run) -> None:
    completed = finished.abr("jobs", COLUMNS="80")

    assert completed.returncode == 0, completed.stderr
    assert finished.job_id in completed.stdout


def test_results_jsonl_export_is_the_results_file(finished: Run) -> None:
    completed = finished.abr("results", finished.job_id, "--format", "jsonl")

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.encode() == Path(finished.summary["results_path"]).read_bytes()


def test_results_csv_has_one_row_per_request_in_input_order(finished: Run, tmp_path: Path) -> None:
    # Given the finished job's results file
    lines = finished.results

    # When they are exported as CSV to stdout and to a file
    to_stdout = finished.abr("results", finished.job_id, "--format", "csv")
    target = tmp_path / "export.csv"
    to_file = finished.abr("results", finished.job_id, "--format", "csv", "--out", str(target))

    # Then there is one row per request, in input order, with the same answers
    assert to_stdout.returncode == to_file.returncode == 0, to_stdout.stderr + to_file.stderr
    rows = list(csv.DictReader(io.StringIO(to_stdout.stdout)))
    assert [row["custom_id"] for row in rows] == [f"q_{i}" for i in range(7)]
    assert [row["text"] for row in rows] == [line["text"] for line in lines]
    assert {row["status"] for row in rows} == {"succeeded"}
    assert [row["batch_id"] for row in rows] == [line["batch_id"] for line in lines]
    # and --out writes the same rows to the file instead of stdout
    assert to_file.stdout == ""
    assert list(csv.DictReader(io.StringIO(target.read_text(encoding="utf-8")))) == rows


def test_a_unique_prefix_of_a_job_id_names_the_job(finished: Run) -> None:
    prefix = finished.job_id[: len(LONG_STEM) + 4]

    status = finished.abr("status", prefix, "--json")
    exported = finished.abr("results", prefix)

    assert status.returncode == exported.returncode == 0, status.stderr + exported.stderr
    assert orjson.loads(status.stdout)["job_id"] == finished.job_id
    assert exported.stdout.encode() == Path(finished.summary["results_path"]).read_bytes()


@pytest.mark.parametrize("command", ["status", "results", "resume"])
def test_an_unknown_job_id_exits_2_with_one_clear_line(finished: Run, command: str) -> None:
    completed = finished.abr(command, "no-such-job")

    assert "no job 'no-such-job'" in assert_one_error_line(completed)


def test_results_rejects_an_unknown_format(finished: Run) -> None:
    completed = finished.abr("results", finished.job_id, "--format", "xml")

    assert "jsonl or csv" in assert_one_error_line(completed)


def test_results_out_into_a_missing_directory_is_one_clear_error(
    finished: Run, tmp_path: Path
) -> None:
    target = tmp_path / "no" / "x.csv"

    completed = finished.abr("results", finished.job_id, "--out", str(target))

    assert str(target) in assert_one_error_line(completed, codes=(1, 2))


def test_status_with_an_empty_store_says_how_to_start() -> None:
    completed = run_abr("status")

    assert "abr run FILE" in assert_one_error_line(completed)


def test_the_api_key_is_in_no_output_log_record_results_or_store_file(
    runs: dict[str, Run],
) -> None:
    for name, run in runs.items():
        written = files_under(run.output)
        assert any(path.suffix == ".sqlite3" for path in written), name
        assert any(path.parent.name == "logs" for path in written), name
        for path in written:
            assert KEY_SECRET_PART.encode() not in path.read_bytes(), path
        assert KEY_SECRET_PART not in run.completed.stdout + run.completed.stderr, name


# --- what is sent: per-request params, JSON answers, prompt caching ------------------------


def test_jsonl_lines_keep_their_own_params_and_take_missing_ones_from_settings(
    runs: dict[str, Run],
) -> None:
    # Given the JSONL lines of scenario "jsonl", run with model and max_tokens settings
    run = runs["jsonl"]
    assert run.completed.returncode == 0, run.completed.stderr

    # Then each request was sent with its own params, the missing ones from the settings
    short, sonnet, opus = (run.sent[custom_id] for custom_id in ("short", "sonnet", "opus"))
    assert (short["model"], short["max_tokens"]) == ("claude-default-model", 3)
    assert (sonnet["model"], sonnet["max_tokens"]) == ("claude-sonnet-4-5", 321)
    assert (opus["model"], opus["max_tokens"]) == ("claude-opus-4-1", 100)
    assert (opus["temperature"], opus["system"]) == (0.5, "Be terse.")
    assert short["temperature"] == 0.0
    # and each answer came from its own model, in input order
    results = run.results
    assert [r["custom_id"] for r in results] == ["short", "sonnet", "opus"]
    assert [r["message"]["model"] for r in results] == [
        "claude-default-model",
        "claude-sonnet-4-5",
        "claude-opus-4-1",
    ]
    assert results[0]["message"]["stop_reason"] == "max_tokens"
    assert results[0]["message"]["usage"]["output_tokens"] == 3


def test_json_response_format_parses_json_answers_and_keeps_the_rest_with_parse_error(
    runs: dict[str, Run],
) -> None:
    # Given scenario "json_answers": response_format json, only the first question asks for JSON
    run = runs["json_answers"]
    assert run.completed.returncode == 0, run.completed.stderr

    # Then the JSON answer is parsed, and the other is kept with its parse error
    assert run.summary["counts"]["succeeded"] == 2
    asked, plain = run.results
    assert asked["status"] == "succeeded"
    assert asked["parsed"] == orjson.loads(asked["text"])
    assert asked["parsed"]["question"] == "Answer in JSON: what is 2+2?"
    assert "parse_error" not in asked
    assert plain["status"] == "succeeded"
    assert plain["text"].startswith("Emulated answer to")
    assert plain["parsed"] is None
    assert isinstance(plain["parse_error"], str) and plain["parse_error"]


def test_prompt_cache_sends_a_cached_system_block_and_reports_cache_tokens(
    runs: dict[str, Run],
) -> None:
    # Given scenario "prompt_cache": 5 questions sharing a long system prompt, caching on
    run = runs["prompt_cache"]
    assert run.completed.returncode == 0, run.completed.stderr

    # Then every request carries the system prompt as a text block with cache_control
    cached = [{"type": "text", "text": SYSTEM_TO_CACHE, "cache_control": {"type": "ephemeral"}}]
    sent = [run.sent[f"pc_{i}"] for i in range(5)]
    assert all(params["system"] == cached for params in sent)
    # and the first request writes the cache, the four others read it
    system_tokens = (len(SYSTEM_TO_CACHE.encode()) + 3) // 4
    expected = {
        "cache_creation_input_tokens": system_tokens,
        "cache_read_input_tokens": 4 * system_tokens,
    }
    for usage in (run.summary["usage"], run.record["usage"]):
        assert {key: usage[key] for key in expected} == expected


def test_without_prompt_cache_the_system_prompt_is_sent_as_a_plain_string(
    runs: dict[str, Run],
) -> None:
    assert runs["finished"].sent["q_0"]["system"] == "Be brief."
    assert runs["finished"].summary["usage"]["cache_creation_input_tokens"] == 0


def test_a_refused_api_key_stops_with_one_line_and_creates_no_batch(runs: dict[str, Run]) -> None:
    # Given scenario "refused_key": the API accepts only another key
    run = runs["refused_key"]

    # Then abr stops with one line about the key (a failure the user fixes: 1 or 2), and no
    # batch was created
    assert "key" in assert_one_error_line(run.completed, codes=(1, 2))
    assert run.api_stats["batches_created"] == 0


# --- --no-wait and resume ------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_results_of_a_running_job_list_every_request_with_where_it_stands(
    submitted: Run, fmt: str
) -> None:
    # Given scenario "submitted": 4 requests in a batch still in progress after --no-wait
    # When its results are exported
    completed = submitted.abr("results", submitted.job_id, "--format", fmt)

    # Then every request has its line, in input order, none claiming a final status
    assert completed.returncode == 0, completed.stderr
    if fmt == "csv":
        rows: list[dict[str, Any]] = list(csv.DictReader(io.StringIO(completed.stdout)))
    else:
        rows = [orjson.loads(line) for line in completed.stdout.splitlines()]
    assert [row["custom_id"] for row in rows] == [f"nw_{i}" for i in range(4)]
    assert not {row["status"] for row in rows} & set(FINAL_COUNTS)


def finish_batches_now(emulator: Emulator) -> None:
    """Make every batch the emulator holds end now, as if Anthropic had just finished it."""
    with emulator.state.lock:
        for batch in emulator.state.batches.values():
            batch.processing_s = 0.0


def test_no_wait_returns_once_submitted_and_resume_finishes_the_job(tmp_path: Path) -> None:
    # Given batches that stay in progress at the API until the test says so
    config = EmulatorConfig(processing_seconds=600.0, seed=4, retry_after=0.0)
    source = write_original(tmp_path / "later.json", 5)
    with Emulator(config, host="127.0.0.1", port=0) as emulator:
        # When abr runs them with --no-wait
        submitted = run_abr(
            "run", str(source), "--no-wait", "--json", emulator=emulator, ABR_BATCH_CHUNK_SIZE="2"
        )

        # Then it returns with every batch submitted and still running
        assert submitted.returncode == 0, submitted.stderr
        early = summary(submitted)
        assert early["status"] == "running"
        assert emulator.stats()["batches_created"] == 3
        assert len(early["running_batches"]) == 3

        # And abr status shows the submitted batches
        status = run_abr("status", early["job_id"], "--json")
        assert status.returncode == 0, status.stderr
        shown = orjson.loads(status.stdout)
        assert shown["status"] == "running" and shown["done"] == 0 and shown["total"] == 5
        assert {c["status"] for c in shown["chunks"]} == {"submitted"}
        assert sorted(c["batch_id"] for c in shown["chunks"]) == sorted(early["running_batches"])

        # When the batches end at the API and the job is resumed
        finish_batches_now(emulator)
        resumed = run_abr("resume", early["job_id"], "--json", emulator=emulator)
        batches = emulator.stats()["batches_created"]

    # Then it finishes without sending anything again
    assert resumed.returncode == 0, resumed.stderr
    result = summary(resumed)
    assert result["status"] == "finished"
    assert result["counts"]["succeeded"] == 5
    assert batches == 3
    lines = read_results(Path(result["results_path"]))
    assert [line["custom_id"] for line in lines] == [f"q_{i}" for i in range(5)]
