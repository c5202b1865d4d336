"""Estimates against what the emulator actually bills: a real job run with `abr run`, its
billed usage read back, compared with the cache-aware floor and ceiling and with the worst
case of each request; and sampled online counts."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import orjson
import pytest

from anthropic_batch_request_util.api import make_client
from anthropic_batch_request_util.config import load_settings
from anthropic_batch_request_util.cost import prompt_shape
from anthropic_batch_request_util.cost.bounds import worst_case_usd
from anthropic_batch_request_util.cost.estimate import COUNT_TOKENS_PARAMS, estimate
from anthropic_batch_request_util.cost.pricing import cost_usd, load_price_table
from anthropic_batch_request_util.emulator import Emulator

from ..conftest import TEST_API_KEY
from .helpers import read_results, run_abr, summary, write_original

HAIKU = "claude-3-5-haiku-20241022"
SYSTEM = "You answer every question in French, briefly and politely. " * 40  # ~600 tokens
SLACK = 1e-12  #: USD: float sums of exact figures


def billed_input_usd(lines: list[dict[str, Any]]) -> float:
    """What the job's input cost: each answer's usage without its output, at batch prices."""
    table = load_price_table()
    return sum(
        cost_usd(line["message"]["usage"] | {"output_tokens": 0}, line["message"]["model"], table)
        for line in lines
    )


def run_job(emulator: Emulator, source: Path, **env: str) -> list[dict[str, Any]]:
    completed = run_abr("run", str(source), "--json", emulator=emulator, **env)
    assert completed.returncode == 0, completed.stderr
    return read_results(Path(summary(completed)["results_path"]))


@pytest.mark.parametrize("offline", [False, True], ids=["online", "offline"])
@pytest.mark.parametrize("cache", [False, True], ids=["plain", "prompt-cache"])
def test_the_input_billed_lies_between_the_estimates_floor_and_ceiling(
    emulator: Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    cache: bool,
    offline: bool,
) -> None:
    # Given a job of 30 questions under one long system prompt, with and without caching
    source = write_original(tmp_path / "job.json", 30, system=SYSTEM)
    env = {"ABR_BATCH_ENABLE_PROMPT_CACHE": "true"} if cache else {}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    # When it is estimated, then run for real
    result = estimate(source, load_settings(), offline=offline)
    billed = billed_input_usd(run_job(emulator, source, **env))
    # Then floor <= billed input <= ceiling
    caching = result.caching
    if not cache:
        assert caching is None
        assert result.low_usd <= billed + SLACK
        assert billed <= result.low_usd + SLACK  # no caching: the input is known exactly
        return
    assert caching is not None
    assert caching.floor_input_usd <= billed <= caching.ceiling_input_usd
    assert result.low_usd == caching.floor_input_usd
    # and the floor is no longer the uncached price: the prefix is read 29 times of 30
    assert caching.floor_input_usd < caching.uncached_input_usd / 3
    assert caching.requests_sharing == 30 and caching.prefixes == 1
    assert caching.savings_usd == pytest.approx(
        caching.uncached_input_usd - caching.floor_input_usd
    )


def varied_cached_requests() -> list[dict[str, Any]]:
    """JSONL requests with every kind of breakpoint: tools, system blocks, 1h, top level."""
    tool = {"name": "add", "description": "Add two numbers", "input_schema": {"type": "object"}}
    lines = []
    for i in range(16):
        params: dict[str, Any] = {
            "model": HAIKU,
            "max_tokens": 1 + i % 4,
            "messages": [{"role": "user", "content": f"Question {i}: " + "why? " * (1 + i)}],
        }
        system_block = {"type": "text", "text": SYSTEM}
        if i % 4 == 0:
            params["tools"] = [tool | {"cache_control": {"type": "ephemeral"}}]
        if i % 3 == 0:
            system_block["cache_control"] = {"type": "ephemeral", "ttl": "1h"}
        elif i % 3 == 1:
            system_block["cache_control"] = {"type": "ephemeral"}
        params["system"] = [system_block]
        if i % 5 == 0:
            params["cache_control"] = {"type": "ephemeral"}
        lines.append({"custom_id": f"r{i}", "params": params})
    return lines


def test_the_worst_case_of_each_request_bounds_what_the_emulator_billed(
    emulator: Emulator, tmp_path: Path
) -> None:
    # Given requests with and without cacheable prefixes, run for real
    hi = [{"role": "user", "content": "Hi?"}]
    plain = {"model": HAIKU, "max_tokens": 3, "system": SYSTEM, "messages": hi}
    lines = [*varied_cached_requests(), {"custom_id": "plain", "params": plain}]
    source = tmp_path / "varied.jsonl"
    source.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    billed = {line["custom_id"]: line["cost_usd"] for line in run_job(emulator, source)}
    assert len(billed) == len(lines)
    table = load_price_table()
    settings = load_settings()
    # Then each request's worst case, offline or from the API's count, is at least its cost
    with make_client(settings, TEST_API_KEY) as client:
        for line in lines:
            params = line["params"]
            counted = _count(client, params)
            cost = Decimal(repr(billed[line["custom_id"]]))
            assert worst_case_usd(params, table) >= cost, line["custom_id"]
            assert worst_case_usd(params, table, input_tokens=counted) >= cost, line["custom_id"]


def _count(client: anthropic.Anthropic, params: dict[str, Any]) -> int:
    asked = {key: value for key, value in params.items() if key in COUNT_TOKENS_PARAMS}
    return client.messages.count_tokens(**asked).input_tokens


def test_a_sample_is_counted_and_the_rest_calibrated_on_it(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given 200 requests of varied length, and an offline rule that is twice the truth
    questions = [[{"role": "user", "content": "word " * (1 + i % 37)}] for i in range(200)]
    source = tmp_path / "big.json"
    source.write_bytes(orjson.dumps({"system_prompt": "Be brief.", "messages_list": questions}))
    settings = load_settings()
    exact = estimate(source, settings, sample=None)
    monkeypatch.setattr(prompt_shape, "BYTES_PER_TOKEN", 2)
    seen: list[tuple[int, int]] = []
    # When estimated with a sample of 40
    result = estimate(source, settings, sample=40, seed=3, on_progress=lambda *a: seen.append(a))
    # Then 40 were counted, and the calibrated total is within its margin of the exact count
    assert (result.counting, result.counted_requests) == ("sample", 40)
    assert seen[-1] == (40, 40) and len(seen) == 40
    assert exact.counting == "all" and exact.input_tokens_margin == 0
    assert result.input_tokens_margin > 0 and result.margin_usd > 0
    assert abs(result.input_tokens - exact.input_tokens) <= result.input_tokens_margin
    offline = estimate(source, settings, offline=True)
    assert offline.input_tokens > 1.5 * exact.input_tokens  # what calibration corrected


def test_cli_sample_and_all(emulator: Emulator, tmp_path: Path) -> None:
    source = write_original(tmp_path / "in.json", 12)
    sampled = run_abr("estimate", str(source), "--sample", "5", "--json", emulator=emulator)
    assert sampled.returncode == 0, sampled.stderr
    data = orjson.loads(sampled.stdout)
    assert (data["counting"], data["counted_requests"]) == ("sample", 5)
    every = run_abr("estimate", str(source), "--all", "--json", emulator=emulator)
    assert orjson.loads(every.stdout)["counting"] == "all"
    both = run_abr("estimate", str(source), "--all", "--sample", "5", emulator=emulator)
    assert both.returncode == 2 and "exclude" in both.stderr
    assert "Traceback" not in both.stderr


def test_usd_in_the_json_has_at_most_six_decimals(emulator: Emulator, tmp_path: Path) -> None:
    source = write_original(tmp_path / "in.json", 7, system="x" * 1001)
    completed = run_abr(
        "estimate", str(source), "--json", emulator=emulator, ABR_BATCH_ENABLE_PROMPT_CACHE="true"
    )
    data = orjson.loads(completed.stdout)
    figures = [data["low_usd"], data["high_usd"], *data["caching"].values()]
    for value in figures:
        if isinstance(value, float):
            assert round(value, 6) == value
