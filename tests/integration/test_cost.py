"""Cost you can trust: actual cost from the usage the API reports, priced by hand here
and compared with what abr wrote; and `--max-cost` refusing a run up front (the budget
during a run: test_budget.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from anthropic_batch_request_util.emulator import Emulator

from .helpers import read_results, run_abr, summary, write_original

# claude-3-5-haiku-20241022, standard USD per million tokens (the default model)
INPUT, OUTPUT, CACHE_WRITE_5M, CACHE_READ = 0.80, 4.00, 1.00, 0.08
BATCH = 0.5


def hand_priced(usage: dict[str, Any]) -> float:
    tokens = (
        usage["input_tokens"] * INPUT
        + usage["output_tokens"] * OUTPUT
        + (usage.get("cache_creation_input_tokens") or 0) * CACHE_WRITE_5M
        + (usage.get("cache_read_input_tokens") or 0) * CACHE_READ
    )
    return tokens / 1_000_000 * BATCH


@pytest.mark.parametrize("cache", [False, True], ids=["plain", "prompt-cache"])
def test_cost_matches_the_usage_priced_by_hand(
    emulator: Emulator, tmp_path: Path, cache: bool
) -> None:
    # Given a job with a long shared system prompt, with and without prompt caching
    source = write_original(tmp_path / "priced.json", 12, system="You answer in French. " * 40)
    env = {"ABR_BATCH_ENABLE_PROMPT_CACHE": "true"} if cache else {}

    completed = run_abr("run", str(source), "--json", emulator=emulator, **env)

    # Then every line's cost is its usage at batch prices, and the job's is their sum
    assert completed.returncode == 0, completed.stderr
    result = summary(completed)
    lines = read_results(Path(result["results_path"]))
    for line in lines:
        assert line["cost_usd"] == pytest.approx(hand_priced(line["message"]["usage"]), rel=1e-9)
    total = sum(hand_priced(line["message"]["usage"]) for line in lines)
    assert result["cost_usd"] == pytest.approx(total, rel=1e-9)
    record = orjson.loads(Path(result["records_path"]).read_bytes())
    assert record["cost_usd"] == pytest.approx(total, rel=1e-9)
    cached = (
        result["usage"]["cache_creation_input_tokens"] + result["usage"]["cache_read_input_tokens"]
    )
    assert (cached > 0) == cache


def test_max_cost_below_the_floor_refuses_and_sends_nothing(
    emulator: Emulator, tmp_path: Path
) -> None:
    source = write_original(tmp_path / "dear.json", 50)

    completed = run_abr("run", str(source), "--max-cost", "0.0000001", emulator=emulator)

    assert completed.returncode == 2, completed.stderr
    assert "--max-cost" in completed.stderr and "nothing was sent" in completed.stderr
    assert emulator.stats()["requests_submitted"] == 0


def _floor(source: Path, emulator: Emulator) -> float:
    completed = run_abr("estimate", str(source), "--offline", "--json", emulator=emulator)
    assert completed.returncode == 0, completed.stderr
    low: float = orjson.loads(completed.stdout)["low_usd"]
    return low
