"""What README.md shows must work: every `abr` command (with the options it shows), every
`make` target, every `ABR_*` variable and emulator fault, every Python block (run against the
emulator), and the settings block must be the real defaults."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner, Result

from anthropic_batch_request_util.cli import app
from anthropic_batch_request_util.config import (
    ENV_VARS,
    default_settings_text,
    load_settings,
    settings_to_dict,
)
from anthropic_batch_request_util.emulator import FAULTS, Emulator

from .helpers import FAST_SETTINGS

REPO_ROOT = Path(__file__).resolve().parents[2]
README = REPO_ROOT / "README.md"
SHELL_LANGUAGES = {"", "bash", "sh", "shell", "console"}  #: fenced blocks read as commands

FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`([^`\n]+)`")
COMMAND_WORD = re.compile(r"[a-z][a-z-]*")
OPTION = re.compile(r"(?<![\w-])--[a-z][a-z-]*")


def readme_text() -> str:
    return README.read_text(encoding="utf-8")


def fenced_blocks() -> list[tuple[str, str]]:
    """(language, body) of every fenced code block."""
    return [(match[1], match[2]) for match in FENCE.finditer(readme_text())]


def code_snippets() -> list[str]:
    """Every command-like piece of code: shell block lines and inline code spans."""
    snippets = []
    for language, body in fenced_blocks():
        if language in SHELL_LANGUAGES:
            snippets += [line.split(" #", 1)[0] for line in body.splitlines()]
    prose = FENCE.sub("", readme_text())
    snippets += INLINE_CODE.findall(prose)
    return snippets


def invocations(program: str) -> list[tuple[tuple[str, ...], set[str]]]:
    """(command words, options) of every `program …` the README shows."""
    found = []
    for snippet in code_snippets():
        for match in re.finditer(rf"(?:^|\s){program}\s+(.+)", snippet):
            tokens = match[1].replace("\\|", "|").split()
            words: list[str] = []
            for token in tokens:
                if not COMMAND_WORD.fullmatch(token):
                    break
                words.append(token)
            if words:
                found.append((tuple(words), set(OPTION.findall(match[1]))))
    return found


GROUPS = ("config", "worker")  #: commands whose second word is a subcommand


def abr_commands() -> dict[tuple[str, ...], set[str]]:
    """README's `abr` commands (`("config", "show")`, `("run",)`) -> the options shown."""
    commands: dict[tuple[str, ...], set[str]] = {}
    for words, options in invocations("abr"):
        path = words[:2] if words[0] in GROUPS and len(words) > 1 else words[:1]
        commands.setdefault(path, set()).update(options)
    return commands


@cache
def help_texts() -> dict[tuple[str, ...], Result]:
    """`abr COMMAND --help` for every README command (in process: the entry point itself is
    run as a subprocess by test_cli.py)."""
    runner = CliRunner()
    return {
        path: runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
        for path in abr_commands()
    }


def test_the_readme_shows_the_main_commands() -> None:
    shown = set(abr_commands())

    for path in ("run", "status", "jobs", "results", "resume", "cancel", "init", "emulator"):
        assert (path,) in shown, path
    assert ("config", "show") in shown
    assert {("worker", "start"), ("worker", "stop")} <= shown


@pytest.mark.parametrize("path", sorted(abr_commands()), ids=" ".join)
def test_every_abr_command_in_the_readme_exists(path: tuple[str, ...]) -> None:
    completed = help_texts()[path]

    assert completed.exit_code == 0, (path, completed.output)
    assert completed.exception is None or isinstance(completed.exception, SystemExit)


@pytest.mark.parametrize("path", sorted(abr_commands()), ids=" ".join)
def test_every_option_the_readme_shows_is_in_the_commands_help(path: tuple[str, ...]) -> None:
    options = abr_commands()[path]
    help_text = help_texts()[path].output

    missing = sorted(option for option in options if option not in help_text)
    assert not missing, f"abr {' '.join(path)} --help lacks {missing}"


def makefile_targets() -> set[str]:
    """The targets `make help` lists: those with a `## description`."""
    text = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([a-zA-Z_-]+):.*##", text, re.MULTILINE))


def test_every_make_target_in_the_readme_is_a_documented_makefile_target() -> None:
    shown = {words[0] for words, _ in invocations("make")}

    assert {"demo", "test", "install", "run-batch", "lint", "help"} <= shown
    assert shown <= makefile_targets(), sorted(shown - makefile_targets())


def test_every_abr_variable_in_the_readme_is_a_setting() -> None:
    shown = set(re.findall(r"\bABR_[A-Z_]*[A-Z]\b", readme_text()))

    assert shown, "the README names some ABR_* variables"
    assert shown <= set(ENV_VARS), sorted(shown - set(ENV_VARS))


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def readme_settings() -> dict[str, Any]:
    blocks = [
        body for language, body in fenced_blocks() if language == "yaml" and body.startswith("api:")
    ]
    assert len(blocks) == 1, "the README shows one settings block"
    return flatten(yaml.safe_load(blocks[0]))


def test_the_readme_settings_block_is_the_packaged_defaults(tmp_path: Path) -> None:
    # Given the settings block of the README
    shown = readme_settings()

    # When the defaults are loaded with no settings file and no environment
    loaded = flatten(settings_to_dict(load_settings(env={}, cwd=tmp_path)))
    packaged = flatten(yaml.safe_load(default_settings_text()))

    # Then every key the README shows exists with the value it shows
    assert set(shown) <= set(loaded), sorted(set(shown) - set(loaded))
    assert Path(loaded.pop("storage.base_dir")) == tmp_path / shown["storage.base_dir"]
    assert {key: loaded[key] for key in shown if key in loaded} == {
        key: value for key, value in shown.items() if key in loaded
    }
    assert {key: packaged[key] for key in shown} == shown


def test_every_emulator_fault_in_the_readme_exists() -> None:
    shown = set(re.findall(r"--fault ([a-z_0-9]+)=", readme_text()))

    assert shown, "the README shows some faults"
    assert shown <= set(FAULTS), sorted(shown - set(FAULTS))


def python_blocks() -> list[str]:
    """The README's Python code blocks, in order."""
    return [body for language, body in fenced_blocks() if language == "python"]


def test_the_readme_shows_the_python_api() -> None:
    shown = "\n".join(python_blocks())

    for name in ("abr.run", "abr.submit", "abr.job(", "abr.jobs", "abr.Settings", ".results("):
        assert name in shown, name


def test_every_python_block_in_the_readme_runs(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the emulator and the fast polls the other tests use
    for name, value in FAST_SETTINGS.items():
        monkeypatch.setenv(name, value)
    namespace: dict[str, Any] = {}

    # When every block runs in order, in one namespace (as a notebook would)
    for number, block in enumerate(python_blocks()):
        try:
            exec(compile(block, f"README.md python block {number}", "exec"), namespace)
        except Exception as error:
            raise AssertionError(f"README python block {number} failed: {error!r}") from error

    # Then they printed answers, the located input error, and the jobs
    printed = capsys.readouterr().out
    assert "q0 succeeded" in printed
    assert 'requests[0]: custom_id "not ok!" does not match' in printed
    assert "5/5 done" in printed
