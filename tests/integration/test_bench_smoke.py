"""A smoke run of the benchmark (bench/run.py) at a small N: it completes, checks its
outputs and prints its tables. The real benchmark is not part of the test suite."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_make_input_is_deterministic_and_in_the_original_format(tmp_path: Path) -> None:
    # Given the same N written twice
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    for path in (first, second):
        subprocess.run(
            [sys.executable, str(BENCH / "make_input.py"), "50", str(path)],
            check=True,
            capture_output=True,
        )

    # Then the bytes are the same, and the requests vary within 100-300 characters
    assert first.read_bytes() == second.read_bytes()
    data = orjson.loads(first.read_bytes())
    assert list(data) == ["system_prompt", "messages_list", "custom_id_prefix"]
    contents = [conversation[0]["content"] for conversation in data["messages_list"]]
    assert len(contents) == len(set(contents)) == 50
    assert all(100 <= len(text) <= 300 for text in contents)


def test_bench_run_completes_and_prints_the_table(tmp_path: Path) -> None:
    # When the benchmark runs at N=200, once, with its side measurements
    report = tmp_path / "report.json"
    done = subprocess.run(
        [
            sys.executable, str(BENCH / "run.py"), "--sizes", "200", "--repeats", "1",
            "--poll-lag", "bench", "--workdir", str(tmp_path / "work"), "--json", str(report),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip

    # Then it succeeds and prints every table, each run checked complete
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert "| N | tool | wall median (s) |" in out
    for tool in ("abr", "abr-100k", "baseline", "plain"):
        assert f"| 200 | {tool} |" in out
    assert "## Ingestion" in out and "## Results file write" in out and "## Poll lag" in out
    assert "## Targets (issues 6 and 15)" in out
    figures = orjson.loads(report.read_bytes())
    tools = sorted(run["tool"] for run in figures["runs"])
    assert tools == ["abr", "abr-100k", "baseline", "plain"]
    assert all(run["wall_s"] > 0 and run["peak_mb"] > 0 for run in figures["runs"])
    # and each run's API calls are its own: the emulator is reset between runs
    for run in figures["runs"]:
        assert run["calls"]["create"] == 1 and run["calls"]["results"] == 1
        assert run["http_429"] == 0
    assert figures["ingest"][0]["n"] == 200
    assert figures["poll_lag"][0]["runs"][0]["lag_s"] < 30
    # and it leaves no run directories behind (inputs stay, for the next run)
    assert not [p for p in (tmp_path / "work").iterdir() if p.is_dir()]
