"""Prompt shapes, cache-aware floors and ceilings, the worst case of one request, the
sample calibration and USD in JSON. Figures are worked out by hand from prices per
million tokens (Haiku 3.5: input $0.80, output $4, 5-minute write $1, 1-hour write $1.60,
read $0.08; batch: half of each)."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import pytest

from anthropic_batch_request_util.cost.bounds import (
    InputSplit,
    PrefixLedger,
    ceiling_counts,
    floor_counts,
    worst_case_usd,
)
from anthropic_batch_request_util.cost.estimate import approximate_input_tokens
from anthropic_batch_request_util.cost.estimate_parts import Calibration, PrefixGroups
from anthropic_batch_request_util.cost.pricing import TokenCounts, load_price_table, usd_json
from anthropic_batch_request_util.cost.prompt_shape import (
    WORST_CASE_TOKENS_PER_PIECE,
    WORST_CASE_TOOL_USE_TOKENS,
    measure_prompt,
)

HAIKU = "claude-3-5-haiku-20241022"
CACHED = {"type": "ephemeral"}


def cached_system(text: str, **marker: str) -> list[dict[str, Any]]:
    return [{"type": "text", "text": text, "cache_control": CACHED | marker}]


def request(system: Any, question: str, max_tokens: int = 10) -> dict[str, Any]:
    return {
        "model": HAIKU,
        "max_tokens": max_tokens,
        "system": system,
        "messages": [{"role": "user", "content": question}],
    }


# --- the offline approximation ----------------------------------------------------------


def test_approximating_twice_gives_the_same_count_and_leaves_the_params_alone() -> None:
    params = request(cached_system("s" * 400), "q" * 12)
    before = copy.deepcopy(params)
    first = approximate_input_tokens(params)
    second = approximate_input_tokens(params)
    assert first == second == 100 + 3
    assert params == before


def test_a_prompt_has_one_prefix_per_breakpoint_and_one_for_top_level_cache_control() -> None:
    params = request(cached_system("s" * 400, ttl="1h"), "q" * 40)
    params["cache_control"] = CACHED
    shape = measure_prompt(params)
    assert [(p.tokens, p.ttl) for p in shape.prefixes] == [(100, "1h"), (110, "5m")]
    # bound: one token a byte plus the markers of each piece
    assert shape.bound_tokens == 440 + 2 * WORST_CASE_TOKENS_PER_PIECE
    assert [p.bound_tokens for p in shape.prefixes] == [416, shape.bound_tokens]


def test_same_prefix_same_key_whatever_follows_but_not_across_models() -> None:
    one = measure_prompt(request(cached_system("shared"), "a")).prefixes[0]
    two = measure_prompt(request(cached_system("shared"), "b" * 90)).prefixes[0]
    other = request(cached_system("shared"), "a") | {"model": "claude-sonnet-4-5"}
    assert one.key == two.key
    assert measure_prompt(other).prefixes[0].key != one.key


def test_tools_add_the_tool_use_allowance_to_the_bound() -> None:
    params = request("s", "q") | {"tools": [{"name": "t", "input_schema": {}}]}
    plain = measure_prompt(request("s", "q")).bound_tokens
    assert measure_prompt(params).bound_tokens > plain + WORST_CASE_TOOL_USE_TOKENS


# --- floor and ceiling ------------------------------------------------------------------


def test_the_floor_writes_a_shared_prefix_once_and_the_ceiling_every_time() -> None:
    ledger = PrefixLedger()
    first = ledger.split(measure_prompt(request(cached_system("s" * 400), "q" * 40)))
    second = ledger.split(measure_prompt(request(cached_system("s" * 400), "r" * 40)))
    assert first == InputSplit(110, read=0, first_5m=100, write_5m=100)
    assert second == InputSplit(110, read=100, first_5m=0, write_5m=100)


def test_a_longer_cached_prefix_reads_the_shorter_one_and_writes_the_rest() -> None:
    ledger = PrefixLedger()
    ledger.split(measure_prompt(request(cached_system("s" * 400), "q")))
    longer = request(cached_system("s" * 400), "q")
    longer["messages"] = [
        {"role": "user", "content": [{"type": "text", "text": "m" * 80, "cache_control": CACHED}]}
    ]
    split = ledger.split(measure_prompt(longer))
    assert (split.read, split.first_5m, split.write_5m) == (100, 20, 120)


def test_floor_and_ceiling_prices() -> None:
    price = load_price_table().price_for(HAIKU)
    split = InputSplit(1000, read=300, first_5m=100, first_1h=50, write_5m=400, write_1h=50)
    # the floor's one write is fresh input, cheaper than a write
    assert floor_counts(split, price) == TokenCounts(input=700, cache_read=300)
    assert ceiling_counts(split, price, 7) == TokenCounts(
        input=550, output=7, cache_write_5m=400, cache_write_1h=50
    )


def test_scaling_a_split_keeps_prefixes_at_least_in_proportion_and_within_the_total() -> None:
    split = InputSplit(100, read=50, first_5m=25, write_5m=75).scaled(11)
    assert split == InputSplit(11, read=6, first_5m=3, write_5m=9)
    assert InputSplit(10, read=10, write_5m=10).scaled(3) == InputSplit(3, read=3, write_5m=3)


# --- the worst case of one request ------------------------------------------------------


def test_worst_case_prices_the_prefix_as_a_write_and_max_tokens_as_output() -> None:
    table = load_price_table()
    params = request(cached_system("s" * 400), "q" * 40, max_tokens=1000)
    # counted: 110 tokens, of which the 416-token bound of the prefix covers all, as writes
    # 110 * $1 + 1000 * $4 = 4110 per million, halved
    assert worst_case_usd(params, table, input_tokens=110) == Decimal("0.002055")
    # offline: 416 + 56 bound tokens: 416 written at $1, 56 fresh at $0.80, plus output
    expected = (Decimal(416) * 1 + Decimal(56) * Decimal("0.8") + 4000) / 2_000_000
    assert worst_case_usd(params, table) == expected


def test_worst_case_of_a_one_hour_prefix_uses_the_one_hour_write_price() -> None:
    table = load_price_table()
    params = request(cached_system("s" * 400, ttl="1h"), "q" * 40, max_tokens=1)
    # 110 tokens at $1.60 + 1 at $4, halved
    assert worst_case_usd(params, table, input_tokens=110) == Decimal("0.00009")


def test_worst_case_without_caching_is_input_plus_max_tokens() -> None:
    table = load_price_table()
    params = request("s" * 400, "q" * 40, max_tokens=1000)
    assert worst_case_usd(params, table, input_tokens=110) == Decimal("0.002044")


# --- calibration and groups -------------------------------------------------------------


def test_calibration_ratio_and_margin() -> None:
    calibration = Calibration()
    for x, y in [(100, 210), (200, 390), (50, 100), (120, 240)]:
        calibration.add(x, y)
    assert calibration.ratio == pytest.approx(940 / 470)
    assert calibration.margin(4, 4) == 0  # all counted: exact
    assert calibration.margin(1000, 4) > 0
    assert Calibration().ratio == 1.0


def test_prefix_groups_say_which_requests_share_a_prefix() -> None:
    groups = PrefixGroups()
    for i in range(7):
        system = cached_system("shared" if i < 6 else "alone")
        groups.add(f"r{i}", HAIKU, measure_prompt(request(system, f"q{i}")))
    groups.add("plain", HAIKU, measure_prompt(request("s", "q")))
    assert (groups.requests_with_prefix, groups.prefixes, groups.requests_sharing) == (7, 2, 6)
    [shared] = groups.shared()
    assert shared.requests == 6 and shared.custom_ids == ["r0", "r1", "r2", "r3", "r4"]


# --- USD in JSON ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (0.13375999999998367, 0.13376),
        (Decimal("0.0000005"), 0.0),  # half-even
        (Decimal("0.0000015"), 0.000002),
        (Decimal("12.3456789"), 12.345679),
        (None, None),
    ],
)
def test_usd_json_rounds_to_six_decimals(value: Decimal | float | None, shown: float) -> None:
    assert usd_json(value) == shown
