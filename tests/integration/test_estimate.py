"""The estimate behind `abr estimate`, against the emulator over real HTTP with the official SDK.

The emulator counts a prompt as the sum over its pieces (each tool, the system prompt or
each of its blocks, each message's content or each of its blocks) of
``ceil(utf8_bytes / 4)``, text blocks by their text and other pieces by their compact JSON.
Expected figures below are worked out by that rule and the batch prices per million tokens.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import orjson
import pytest

from anthropic_batch_request_util.api import make_client
from anthropic_batch_request_util.config import Settings, load_settings
from anthropic_batch_request_util.cost import estimate as estimate_module
from anthropic_batch_request_util.cost.estimate import (
    COUNT_TOKENS_PARAMS,
    Estimate,
    TokenBucket,
    approximate_input_tokens,
    estimate,
)
from anthropic_batch_request_util.cost.pricing import load_price_table
from anthropic_batch_request_util.emulator import Emulator
from anthropic_batch_request_util.errors import (
    ApiError,
    InputError,
    MissingApiKeyError,
    SettingsError,
    UsageError,
)

from ..conftest import TEST_API_KEY

TOLERANCE = 1e-9  #: USD
DEFAULT_MODEL = "claude-3-5-haiku-20241022"  #: the settings' default model
DEFAULT_MAX_TOKENS = 8192  #: the settings' default max_tokens
FAST = 1000.0  #: calls per second: a rate that does not slow a test down


def tokens(text: str) -> int:
    """The emulator's count of one text piece."""
    return math.ceil(len(text.encode()) / 4)


def write_original(path: Path, conversations: list[list[dict[str, Any]]], system: str) -> Path:
    data = {"system_prompt": system, "messages_list": conversations, "custom_id_prefix": "q"}
    path.write_bytes(orjson.dumps(data))
    return path


def write_jsonl(path: Path, lines: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    return path


def ask(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def varied_lines(n: int) -> list[dict[str, Any]]:
    """JSONL requests of every shape: strings, blocks, tools, cache_control, two models."""
    lines = []
    for i in range(n):
        params: dict[str, Any] = {
            "messages": ask(f"Question {i}: what is {i} * {i}? " * (1 + i % 7))
        }
        if i % 2:
            params["model"] = "claude-sonnet-4-5-20250929"
            params["max_tokens"] = 100 + i
        if i % 3 == 0:
            params["system"] = [
                {
                    "type": "text",
                    "text": "You are terse. " * 20,
                    "cache_control": {"type": "ephemeral"},
                }
            ]
        if i % 4 == 1:
            params["tools"] = [
                {
                    "name": "add",
                    "description": "Add two numbers",
                    "input_schema": {"type": "object"},
                }
            ]
            params["messages"] = [
                {"role": "user", "content": [{"type": "text", "text": f"Add {i} and ünïcödé"}]}
            ]
        if i % 5 == 2:
            params["stop_sequences"] = ["END"]
            params["metadata"] = {"user_id": "u1"}
        lines.append({"custom_id": f"r{i}", "params": params})
    return lines


class RecordingTransport(httpx2.BaseTransport):
    """Real HTTP, recorded: calls in flight, the most at once, and when each started."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.inner = httpx2.HTTPTransport()
        self.delay_s = delay_s
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.starts: list[float] = []
        self.paths: list[str] = []

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.starts.append(time.monotonic())
            self.paths.append(request.url.path)
        try:
            time.sleep(self.delay_s)  # a slow API, so that calls overlap
            return self.inner.handle_request(request)
        finally:
            with self.lock:
                self.in_flight -= 1

    def close(self) -> None:
        self.inner.close()


@pytest.fixture
def settings() -> Settings:
    return load_settings()


@pytest.fixture
def client(emulator: Emulator, settings: Settings) -> Iterator[anthropic.Anthropic]:
    """The client the CLI makes, pointed at the emulator by ANTHROPIC_BASE_URL."""
    with make_client(settings, TEST_API_KEY) as made:
        yield made


def recording_client(
    emulator: Emulator, settings: Settings, transport: RecordingTransport, max_retries: int = 2
) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        api_key=TEST_API_KEY,
        base_url=emulator.base_url,
        max_retries=max_retries,
        default_headers={"anthropic-version": settings.api.version},
        http_client=anthropic.DefaultHttpxClient(transport=transport),
    )


def emulator_counts(client: anthropic.Anthropic, lines: list[dict[str, Any]]) -> dict[str, int]:
    """The emulator's own count_tokens answers, asked one by one, summed per model."""
    totals: dict[str, int] = {}
    for line in lines:
        params = line["params"]
        model = params.get("model", DEFAULT_MODEL)
        asked = {k: v for k, v in params.items() if k in COUNT_TOKENS_PARAMS} | {"model": model}
        answer = client.messages.count_tokens(**asked).input_tokens
        totals[model] = totals.get(model, 0) + answer
    return totals


def http_calls(emulator: Emulator) -> int:
    """/v1 calls the emulator has seen since `http_500=1` was set: each one drew the fault."""
    return emulator.stats()["http_faults_injected"]["http_500"]


# --- online counts ----------------------------------------------------------------------


def test_online_input_tokens_are_the_sum_of_the_emulators_count_tokens_answers(
    tmp_path: Path, settings: Settings, client: anthropic.Anthropic
) -> None:
    # Given requests of every shape, for two models
    lines = varied_lines(40)
    path = write_jsonl(tmp_path / "mixed.jsonl", lines)
    # When the file is estimated online
    result = estimate(path, settings, client=client, rate_per_s=FAST)
    # Then each model's input tokens are what count_tokens answers for its requests
    expected = emulator_counts(client, lines)
    assert {m: b.input_tokens for m, b in result.model_breakdown.items()} == expected
    assert result.input_tokens == sum(expected.values())
    assert result.requests == 40 and not result.offline
    sonnet = result.model_breakdown["claude-sonnet-4-5-20250929"]
    assert sonnet.requests == 20
    assert sonnet.max_output_tokens == sum(100 + i for i in range(1, 40, 2))
    haiku = result.model_breakdown[DEFAULT_MODEL]
    assert (haiku.requests, haiku.max_output_tokens) == (20, 20 * DEFAULT_MAX_TOKENS)
    assert result.max_output_tokens == sonnet.max_output_tokens + haiku.max_output_tokens


def test_online_tokens_and_cost_of_the_original_format_by_hand(
    tmp_path: Path, settings: Settings, client: anthropic.Anthropic
) -> None:
    # Given three questions under one system prompt, with the default model (Haiku 3.5)
    texts = ["What is 2+2?", "What is the capital of France?", "Name a colour."]
    path = write_original(tmp_path / "in.json", [ask(t) for t in texts], "Be brief.")
    # When estimated
    result = estimate(path, settings, client=client, rate_per_s=FAST)
    # Then: "Be brief." is 9 bytes (3 tokens); the questions are 12, 30 and 14 bytes
    # (3 + 8 + 4 tokens): 3 * 3 + 15 = 24 input tokens.
    assert sum(tokens(t) for t in texts) + 3 * tokens("Be brief.") == 24
    assert result.input_tokens == 24
    assert result.max_output_tokens == 3 * 8192 == 24_576
    # Haiku 3.5 at batch prices: $0.40 in, $2.00 out per million tokens.
    # low = 24 * 0.40 / 1e6 = $0.0000096; high = low + 24,576 * 2 / 1e6 = $0.0491616.
    assert result.low_usd == pytest.approx(0.0000096, abs=TOLERANCE)
    assert result.high_usd == pytest.approx(0.0491616, abs=TOLERANCE)
    assert list(result.model_breakdown) == [DEFAULT_MODEL]


def test_cost_range_per_model_and_in_total_by_hand(
    tmp_path: Path, settings: Settings, client: anthropic.Anthropic
) -> None:
    # Given two Opus 4.7 requests and one Sonnet 4.5 request with known sizes
    lines = [
        {"custom_id": "a", "params": {"model": "claude-opus-4-7", "max_tokens": 1000,
                                      "messages": ask("x" * 400)}},   # 100 tokens
        {"custom_id": "b", "params": {"model": "claude-opus-4-7", "max_tokens": 3000,
                                      "messages": ask("y" * 40)}},    # 10 tokens
        {"custom_id": "c", "params": {"model": "claude-sonnet-4-5", "max_tokens": 2000,
                                      "system": "z" * 80,             # 20 tokens
                                      "messages": ask("w" * 200)}},   # 50 tokens
    ]  # fmt: skip
    path = write_jsonl(tmp_path / "two-models.jsonl", lines)
    # When estimated
    result = estimate(path, settings, client=client, rate_per_s=FAST)
    # Then, at batch prices (Opus 4.7 $2.50 / $12.50, Sonnet 4.5 $1.50 / $7.50 per million):
    opus = result.model_breakdown["claude-opus-4-7"]
    assert (opus.requests, opus.input_tokens, opus.max_output_tokens) == (2, 110, 4000)
    # low = 110 * 2.5 = 275 per million; high = 275 + 4000 * 12.5 = 50,275 per million
    assert opus.low_usd == pytest.approx(0.000275, abs=TOLERANCE)
    assert opus.high_usd == pytest.approx(0.050275, abs=TOLERANCE)
    sonnet = result.model_breakdown["claude-sonnet-4-5"]
    assert (sonnet.requests, sonnet.input_tokens, sonnet.max_output_tokens) == (1, 70, 2000)
    # low = 70 * 1.5 = 105 per million; high = 105 + 2000 * 7.5 = 15,105 per million
    assert sonnet.low_usd == pytest.approx(0.000105, abs=TOLERANCE)
    assert sonnet.high_usd == pytest.approx(0.015105, abs=TOLERANCE)
    assert (result.requests, result.input_tokens, result.max_output_tokens) == (3, 180, 6000)
    assert result.low_usd == pytest.approx(0.00038, abs=TOLERANCE)
    assert result.high_usd == pytest.approx(0.06538, abs=TOLERANCE)


def test_price_overrides_change_the_estimate(
    tmp_path: Path, settings: Settings, client: anthropic.Anthropic
) -> None:
    path = write_original(tmp_path / "in.json", [ask("x" * 400)], "")  # 100 tokens
    prices = load_price_table({DEFAULT_MODEL: {"input": 10, "output": 20}})
    result = estimate(path, settings, client=client, rate_per_s=FAST, prices=prices)
    # Batch: 100 * $5 = 500 per million; plus 8192 * $10 = 81,920 per million.
    assert result.low_usd == pytest.approx(0.0005, abs=TOLERANCE)
    assert result.high_usd == pytest.approx(0.08242, abs=TOLERANCE)


def test_only_the_fields_count_tokens_takes_are_sent(tmp_path: Path, emulator: Emulator) -> None:
    # Given API version 2026-10-21, which rejects temperature with a 400, and a request
    # that carries temperature, max_tokens, metadata and stop_sequences
    settings = load_settings(overrides={"api.version": "2026-10-21", "model.temperature": "null"})
    line = {
        "custom_id": "t",
        "params": {"messages": ask("abcd"), "temperature": 0.5, "max_tokens": 5,
                   "metadata": {"user_id": "u"}, "stop_sequences": ["x"]},
    }  # fmt: skip
    path = write_jsonl(tmp_path / "t.jsonl", [line])
    # When estimated, the count is made without them
    with make_client(settings, TEST_API_KEY) as client:
        result = estimate(path, settings, client=client)
    assert result.input_tokens == 1


def test_progress_is_reported_after_each_request_with_the_total(
    tmp_path: Path, settings: Settings, client: anthropic.Anthropic
) -> None:
    path = write_original(tmp_path / "in.json", [ask(f"q{i}") for i in range(25)], "s")
    seen: list[tuple[int, int]] = []
    estimate(
        path, settings, client=client, rate_per_s=FAST, on_progress=lambda d, t: seen.append((d, t))
    )
    assert seen == [(done, 25) for done in range(1, 26)]


def test_the_sdks_retries_are_honoured(
    tmp_path: Path, settings: Settings, client: anthropic.Anthropic, emulator: Emulator
) -> None:
    # Given an API that answers a quarter of the calls with 429
    lines = varied_lines(20)
    path = write_jsonl(tmp_path / "in.jsonl", lines)
    expected = emulator_counts(client, lines)
    emulator.set_faults(http_429=0.25)
    # When estimated
    result = estimate(path, settings, client=client, rate_per_s=FAST)
    # Then the SDK retried them and the counts are unchanged
    assert emulator.stats()["http_faults_injected"]["http_429"] > 0
    assert result.input_tokens == sum(expected.values())


def test_a_client_is_made_from_the_environment_when_none_is_given(
    tmp_path: Path, settings: Settings, emulator: Emulator
) -> None:
    path = write_original(tmp_path / "in.json", [ask("abcd")], "")
    assert estimate(path, settings).input_tokens == 1


def test_the_callers_client_stays_open(
    tmp_path: Path, settings: Settings, client: anthropic.Anthropic
) -> None:
    path = write_original(tmp_path / "in.json", [ask("abcd")], "")
    estimate(path, settings, client=client)
    assert not client.is_closed()
    assert client.messages.count_tokens(model=DEFAULT_MODEL, messages=ask("abcd")).input_tokens == 1


def test_as_dict_is_plain_json(
    tmp_path: Path, settings: Settings, client: anthropic.Anthropic
) -> None:
    path = write_original(tmp_path / "in.json", [ask("abcd")], "")
    data = orjson.loads(orjson.dumps(estimate(path, settings, client=client).as_dict()))
    assert data["requests"] == 1 and data["offline"] is False
    assert data["model_breakdown"][DEFAULT_MODEL]["input_tokens"] == 1


# --- bounded concurrency and rate -------------------------------------------------------


@pytest.mark.parametrize("concurrency", [1, 3])
def test_calls_in_flight_and_requests_read_ahead_stay_within_the_concurrency(
    tmp_path: Path,
    settings: Settings,
    emulator: Emulator,
    monkeypatch: pytest.MonkeyPatch,
    concurrency: int,
) -> None:
    # Given a slow API, more requests than calls allowed at once, and a reader that
    # counts the requests taken from the file in each pass
    path = write_original(tmp_path / "in.json", [ask(f"q{i}") for i in range(24)], "s")
    transport = RecordingTransport(delay_s=0.02)
    taken = [0]
    real_read_requests = estimate_module.read_requests

    def counting_read_requests(*args: Any, **kwargs: Any) -> Iterator[Any]:
        taken[0] = 0
        for request in real_read_requests(*args, **kwargs):
            taken[0] += 1
            yield request

    monkeypatch.setattr(estimate_module, "read_requests", counting_read_requests)
    ahead: list[int] = []

    def progress(done: int, total: int) -> None:
        ahead.append(taken[0] - done)

    # When estimated
    with recording_client(emulator, settings, transport) as client:
        result = estimate(
            path,
            settings,
            client=client,
            concurrency=concurrency,
            rate_per_s=FAST,
            on_progress=progress,
        )
    # Then the pool was used to the full but never beyond, and requests were read only as
    # calls finished: those in flight plus the one waiting for a free slot
    assert result.requests == 24 and len(transport.starts) == 24
    assert transport.max_in_flight == concurrency
    assert len(ahead) == 24 and max(ahead) <= concurrency + 1


def test_calls_are_paced_to_the_rate(
    tmp_path: Path, settings: Settings, emulator: Emulator
) -> None:
    # Given 11 requests and a rate of 40 calls a second
    path = write_original(tmp_path / "in.json", [ask(f"q{i}") for i in range(11)], "s")
    transport = RecordingTransport()
    # When estimated with room for 8 calls at once
    with recording_client(emulator, settings, transport) as client:
        estimate(path, settings, client=client, concurrency=8, rate_per_s=40.0)
    # Then the calls are spread over at least 10 intervals of 1/40 s
    assert len(transport.starts) == 11
    span = transport.starts[-1] - transport.starts[0]
    assert span >= 10 / 40 - 0.05  # less a margin for the first thread starting late


def test_token_bucket_spaces_calls_after_its_burst() -> None:
    now = [0.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    bucket = TokenBucket(10.0, burst=2, clock=lambda: now[0], sleep=sleep)
    for _ in range(5):
        bucket.acquire()
    # Two at once from the full bucket, then one every 0.1 s.
    assert sleeps == pytest.approx([0.1, 0.1, 0.1])
    now[0] += 5.0  # idle: the bucket refills, but only up to its burst
    sleeps.clear()
    for _ in range(3):
        bucket.acquire()
    assert sleeps == pytest.approx([0.1])


def test_token_bucket_rejects_a_rate_of_zero() -> None:
    with pytest.raises(ValueError, match="rate_per_s"):
        TokenBucket(0)


@pytest.mark.parametrize(("concurrency", "rate"), [(0, 1.0), (1, 0.0), (1, -5.0)])
def test_bad_limits_are_usage_errors(
    tmp_path: Path, settings: Settings, concurrency: int, rate: float
) -> None:
    path = write_original(tmp_path / "in.json", [ask("q")], "s")
    with pytest.raises(UsageError):
        estimate(path, settings, offline=True, concurrency=concurrency, rate_per_s=rate)


# --- nothing is sent for a bad file -----------------------------------------------------


@pytest.mark.parametrize(
    "bad_line", ["{not json", '{"custom_id": "x"}', '{"custom_id": "a b", "params": {}}']
)
def test_a_bad_jsonl_line_is_an_input_error_before_any_http_call(
    tmp_path: Path,
    settings: Settings,
    client: anthropic.Anthropic,
    emulator: Emulator,
    bad_line: str,
) -> None:
    # Given a file whose last line is wrong, and an API that counts every call it gets
    good = b"".join(orjson.dumps(line) + b"\n" for line in varied_lines(30))
    path = tmp_path / "bad.jsonl"
    path.write_bytes(good + bad_line.encode() + b"\n")
    emulator.set_faults(http_500=1.0)
    # When estimated
    with pytest.raises(InputError) as caught:
        estimate(path, settings, client=client)
    # Then the problem is located and nothing reached the API
    assert "line 31" in str(caught.value)
    assert http_calls(emulator) == 0


def test_a_bad_conversation_is_an_input_error_before_any_http_call(
    tmp_path: Path, settings: Settings, client: anthropic.Anthropic, emulator: Emulator
) -> None:
    conversations = [ask(f"q{i}") for i in range(20)] + [[{"role": "assistant", "content": "x"}]]
    path = write_original(tmp_path / "in.json", conversations, "s")
    emulator.set_faults(http_500=1.0)
    with pytest.raises(InputError, match=r"messages_list\[20\]\[0\]: role"):
        estimate(path, settings, client=client)
    assert http_calls(emulator) == 0


def test_a_missing_file_is_an_input_error(tmp_path: Path, settings: Settings) -> None:
    with pytest.raises(InputError, match="no such file"):
        estimate(tmp_path / "absent.jsonl", settings, offline=True)


def test_a_model_without_a_price_is_a_settings_error_before_any_http_call(
    tmp_path: Path, settings: Settings, client: anthropic.Anthropic, emulator: Emulator
) -> None:
    lines = varied_lines(10)
    lines[-1]["params"]["model"] = "claude-opus-4-8"
    path = write_jsonl(tmp_path / "in.jsonl", lines)
    emulator.set_faults(http_500=1.0)
    with pytest.raises(SettingsError, match="claude-opus-4-8"):
        estimate(path, settings, client=client)
    assert http_calls(emulator) == 0


def test_a_count_failing_after_the_sdks_retries_is_an_api_error(
    tmp_path: Path, settings: Settings, emulator: Emulator
) -> None:
    # The check above relies on every /v1 call drawing the http_500 fault: it does, and a
    # count that still fails after the SDK's retries is an ApiError naming the request.
    path = write_original(tmp_path / "in.json", [ask("q")], "s")
    emulator.set_faults(http_500=1.0)
    with (
        make_client(settings, TEST_API_KEY, max_retries=1) as client,
        pytest.raises(ApiError, match=r"'q_0' failed: HTTP 500"),
    ):
        estimate(path, settings, client=client, concurrency=1)
    assert http_calls(emulator) == 2  # the call and one retry


def test_a_request_the_api_rejects_is_an_api_error_naming_it(
    tmp_path: Path, settings: Settings, client: anthropic.Anthropic
) -> None:
    # The input checks let a non-text system block through; the API answers 400.
    line = {"custom_id": "odd", "params": {"messages": ask("q"), "system": [{"type": "image"}]}}
    path = write_jsonl(tmp_path / "in.jsonl", [line])
    with pytest.raises(ApiError, match=r"'odd' failed: HTTP 400: system\.0\.type"):
        estimate(path, settings, client=client)


def test_online_without_a_key_is_a_missing_key_error(
    tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    path = write_original(tmp_path / "in.json", [ask("q")], "s")
    with pytest.raises(MissingApiKeyError):
        estimate(path, settings)


# --- offline ----------------------------------------------------------------------------


def test_offline_is_close_to_the_online_count(
    tmp_path: Path, settings: Settings, client: anthropic.Anthropic
) -> None:
    lines = varied_lines(60)
    path = write_jsonl(tmp_path / "in.jsonl", lines)
    online = estimate(path, settings, client=client, rate_per_s=FAST)
    offline = estimate(path, settings, offline=True)
    assert offline.offline and offline.requests == online.requests
    assert offline.max_output_tokens == online.max_output_tokens
    # The emulator rounds each piece up, the approximation only the whole prompt: it may
    # be lower by less than one token per piece (at most 3 pieces here), never higher.
    assert online.input_tokens - 3 * 60 <= offline.input_tokens <= online.input_tokens
    assert offline.input_tokens == pytest.approx(online.input_tokens, rel=0.05)
    for model, part in offline.model_breakdown.items():
        assert part.input_tokens == pytest.approx(
            online.model_breakdown[model].input_tokens, rel=0.05
        )


def test_offline_sends_nothing_and_needs_no_key(
    tmp_path: Path, settings: Settings, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    emulator.set_faults(http_500=1.0)
    path = write_original(tmp_path / "in.json", [ask("What is 2+2?")], "Be brief.")
    result = estimate(path, settings, offline=True)
    # "Be brief." and "What is 2+2?": 9 + 12 = 21 bytes, ceil(21 / 4) = 6 tokens.
    assert (result.input_tokens, result.offline) == (6, True)
    assert http_calls(emulator) == 0


def test_offline_approximation_rule() -> None:
    params = {
        "tools": [{"name": "t", "cache_control": {"type": "ephemeral"}}],  # {"name":"t"}: 12
        "system": [{"type": "text", "text": "abcd"}],  # 4
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "é" * 4},  # 8 bytes
                {"type": "image", "source": {"type": "base64", "data": "A" * 10_000}},
            ]},
            {"role": "assistant", "content": "hi"},  # 2
        ],
    }  # fmt: skip
    # (12 + 4 + 8 + 2) = 26 bytes -> 7 tokens, plus one image.
    assert approximate_input_tokens(params) == 7 + estimate_module.IMAGE_TOKENS
    assert approximate_input_tokens({"messages": []}) == 1


def test_estimate_dataclass_fields_are_pinned() -> None:
    assert list(Estimate.__dataclass_fields__) == [
        "requests",
        "input_tokens",
        "max_output_tokens",
        "low_usd",
        "high_usd",
        "model_breakdown",
        "offline",
        "counting",
        "counted_requests",
        "input_tokens_margin",
        "margin_usd",
        "caching",
    ]
    assert estimate_module.__all__ == [
        "BYTES_PER_TOKEN",
        "COUNT_TOKENS_PARAMS",
        "DEFAULT_SAMPLE",
        "IMAGE_TOKENS",
        "CacheEstimate",
        "Estimate",
        "ModelEstimate",
        "TokenBucket",
        "approximate_input_tokens",
        "estimate",
    ]
