"""`abr emulator` / `python -m anthropic_batch_request_util.emulator` as a user runs it."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys

import httpx2
import pytest

from anthropic_batch_request_util.emulator.__main__ import build_parser, config_from, main

COMMAND = [sys.executable, "-m", "anthropic_batch_request_util.emulator"]


def start(*args: str) -> tuple[subprocess.Popen[str], str]:
    """The emulator in a child process, and the base URL it printed."""
    child = subprocess.Popen(
        [*COMMAND, "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    line = child.stdout.readline()
    found = re.fullmatch(
        r"abr emulator serving (http://127\.0\.0\.1:\d+) — export ANTHROPIC_BASE_URL=\1\n", line
    )
    assert found, line
    return child, found.group(1)


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_it_serves_until_a_signal_then_exits_cleanly(stop: signal.Signals) -> None:
    child, url = start("--processing-seconds", "0.1", "--fault", "http_500=0")
    try:
        stats = httpx2.get(f"{url}/_admin/stats", timeout=10).json()
        assert stats["batches_created"] == 0
    finally:
        child.send_signal(stop)
        out, err = child.communicate(timeout=20)
    assert child.returncode == 0
    assert "Traceback" not in err
    assert "stopped" in out


def test_options_become_the_config() -> None:
    args = build_parser().parse_args(
        [
            "--processing-seconds", "2.5", "--seed", "9", "--retry-after", "0",
            "--max-requests", "10", "--max-bytes", "5000", "--expire-after", "60",
            "--fault", "http_429=0.1", "--fault", "row_expired=0.05",
            "--public-url", "http://host:1", "--min-cache-tokens", "1024", "--no-shuffle",
        ]
    )  # fmt: skip
    config = config_from(args)
    assert (config.processing_seconds, config.seed, config.retry_after) == (2.5, 9, 0.0)
    assert (config.max_requests_per_batch, config.max_batch_bytes) == (10, 5000)
    assert config.expire_after_seconds == 60 and config.min_cache_tokens == 1024
    assert config.faults == {"http_429": 0.1, "row_expired": 0.05}
    assert config.public_url == "http://host:1" and config.shuffle_results is False


def test_limit_options_become_the_config() -> None:
    args = build_parser().parse_args(
        [
            "--rate-limit", "50", "--rate-limit-window", "6", "--queued-limit", "1000",
            "--not-found-after-create", "0.5", "--latency", "0.01",
        ]
    )  # fmt: skip
    config = config_from(args)
    assert (config.rate_limit_per_window, config.rate_limit_window_s) == (50, 6.0)
    assert config.queued_requests_limit == 1000
    assert (config.not_found_after_create_s, config.latency_s) == (0.5, 0.01)
    unlimited = config_from(build_parser().parse_args(["--rate-limit", "none"]))
    assert unlimited.rate_limit_per_window is None and unlimited.queued_requests_limit is None


def test_help_shows_every_default_and_the_admin_endpoints(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: abr emulator")
    assert "--fault NAME=FRACTION" in out
    options = re.findall(r"^  (--[a-z-]+)", out, flags=re.MULTILINE)
    assert len(options) >= 20
    helps = re.split(r"^  --", out.split("options:")[1].split("admin endpoints")[0], flags=re.M)
    assert all("(default:" in " ".join(text.split()) for text in helps[1:]), helps
    for path in ("stats", "faults", "limits", "finish", "expire", "reset"):
        assert f"/_admin/{path}" in out


@pytest.mark.parametrize(
    "argv",
    [
        ["--port", "eighty"],
        ["--processing-seconds", "-1"],
        ["--fault", "http_999=0.1"],
        ["--fault", "http_500=1.5"],
        ["--fault", "http_500"],
        ["--no-such-option"],
        ["--rate-limit", "0"],
        ["--latency", "-1"],
    ],
)
def test_a_bad_option_is_one_line_and_exit_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("abr emulator: error: ")


def test_a_busy_port_is_one_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["--port", str(port)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"127.0.0.1:{port}" in err
