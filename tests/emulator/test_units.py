"""The emulator's pure parts: its public surface, answers, token rule and fault draws."""

from __future__ import annotations

import re
from collections import Counter

import orjson
import pytest

import anthropic_batch_request_util.emulator as emulator
from anthropic_batch_request_util.emulator import EmulatorConfig, reply_text
from anthropic_batch_request_util.emulator.faults import FaultSet, row_draw
from anthropic_batch_request_util.emulator.usage import PromptCache, measure_prompt, tokens_of
from anthropic_batch_request_util.emulator.wire import new_id, timestamp

from .helpers import params


def test_the_public_surface_is_pinned() -> None:
    assert emulator.__all__ == ["FAULTS", "Emulator", "EmulatorConfig", "Fault", "reply_text"]
    assert list(emulator.FAULTS) == [
        "http_429", "http_529", "http_500", "drop_before", "drop_after", "results_cut",
        "stream_error", "stream_cut",
        "row_api_error", "row_overloaded", "row_invalid", "row_expired",
    ]  # fmt: skip


def test_config_defaults_match_the_real_api() -> None:
    config = EmulatorConfig()
    assert config.max_requests_per_batch == 100_000
    assert config.max_batch_bytes == 256 * 1024 * 1024
    assert config.expire_after_seconds == 86_400
    assert config.faults == {} and config.min_cache_tokens == 0


@pytest.mark.parametrize(
    "bad",
    [
        {"faults": {"http_418": 0.1}},
        {"faults": {"http_500": -0.1}},
        {"processing_seconds": -1},
        {"max_requests_per_batch": 0},
        {"expire_after_seconds": 0},
    ],
)
def test_bad_config_values_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        EmulatorConfig(**bad)


def test_reply_text_is_a_pure_readable_function_of_the_request() -> None:
    text = reply_text(params("What is 2+2?"))
    assert re.fullmatch(r'Emulated answer to "What is 2\+2\?" \[[0-9a-f]{8}\]', text)
    assert reply_text(params("What is 2+2?")) == text
    assert reply_text(params("What is 2+2?", system="Be brief.")) != text
    assert reply_text(params("What is 2+2?", max_tokens=9, model="other")) == text


def test_reply_text_quotes_a_collapsed_snippet() -> None:
    long = "  Tell me\n\nabout   the history of the Roman empire in great detail please"
    text = reply_text(params(long))
    assert text.startswith('Emulated answer to "Tell me about the history of the Roman…" [')
    blocks = [
        {"type": "text", "text": "From"},
        {"type": "image"},
        {"type": "text", "text": "blocks"},
    ]
    assert reply_text(params(messages=[{"role": "user", "content": blocks}])).startswith(
        'Emulated answer to "From blocks" ['
    )


@pytest.mark.parametrize(
    "body",
    [params("Answer in JSON please"), params("Hi", system="Reply with a Json object.")],
)
def test_reply_text_is_json_when_json_is_asked_for(body: dict[str, object]) -> None:
    reply = orjson.loads(reply_text(body))
    assert set(reply) == {"answer", "question", "digest"}


def test_ids_and_timestamps_look_like_the_api() -> None:
    assert re.fullmatch(r"msgbatch_01[1-9A-HJ-NP-Za-km-z]{22}", new_id("msgbatch"))
    assert new_id("req") != new_id("req")
    assert timestamp(0.25) == "1970-01-01T00:00:00.250000Z"


def test_tokens_are_utf8_bytes_over_four_rounded_up() -> None:
    texts = ("", "a", "abcd", "abcde", "é", "ééé")
    assert [tokens_of(text) for text in texts] == [0, 1, 1, 2, 1, 2]


def test_a_prompt_counts_each_piece_and_at_least_one_token() -> None:
    assert measure_prompt(params("")).tokens == 1
    assert measure_prompt(params("abcdefgh", system="abc")).tokens == 3
    two_blocks = [{"type": "text", "text": "abcde"}, {"type": "text", "text": "abc"}]
    assert measure_prompt(params(messages=[{"role": "user", "content": two_blocks}])).tokens == 3


def test_the_prompt_cache_rule_by_hand() -> None:
    cache = PromptCache(min_tokens=0)
    marker = {"type": "ephemeral"}
    body = params("q" * 8, system=[{"type": "text", "text": "s" * 40, "cache_control": marker}])
    prompt = measure_prompt(body)

    assert tuple(cache.account(prompt, now=0.0)) == (2, 10, 0, 0)
    assert tuple(cache.account(prompt, now=299.0)) == (2, 0, 0, 10)  # read: lifetime restarts
    assert tuple(cache.account(prompt, now=598.0)) == (2, 0, 0, 10)
    assert tuple(cache.account(prompt, now=898.5)) == (2, 10, 0, 0)  # expired: written again


def test_fault_draws_are_reproducible_and_fresh_per_submission() -> None:
    assert row_draw(1, "a", 0) == row_draw(1, "a", 0)
    assert row_draw(1, "a", 0) != row_draw(1, "a", 1) != row_draw(2, "a", 0)


def test_each_row_fault_takes_its_fraction_of_2000_draws() -> None:
    faults = FaultSet({"row_api_error": 0.2, "row_overloaded": 0.2, "row_invalid": 0.2}, seed=3)
    drawn = Counter(faults.draw_row(f"id-{i}", 0) for i in range(2000))
    names = ("row_api_error", "row_overloaded", "row_invalid")
    for name in names:
        assert abs(drawn[name] - 400) < 90, drawn
    assert drawn[None] + sum(drawn[name] for name in names) == 2000


@pytest.mark.parametrize("fault", ["http_429", "http_529", "http_500", "drop_before", "drop_after"])
def test_each_http_fault_takes_its_fraction_of_2000_draws(fault: str) -> None:
    faults = FaultSet({fault: 0.2}, seed=4)
    fired = sum(faults.draw_http(results_download=False)[0] == fault for _ in range(2000))
    assert abs(fired - 400) < 90


def test_results_cut_takes_its_fraction_of_2000_downloads() -> None:
    faults = FaultSet({"results_cut": 0.2}, seed=5)
    cuts = sum(faults.draw_http(results_download=True)[1] for _ in range(2000))
    assert abs(cuts - 400) < 90
    assert not any(faults.draw_http(results_download=False)[1] for _ in range(200))
