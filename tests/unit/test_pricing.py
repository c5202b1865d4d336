"""Prices and costs: the packaged table, model id matching, overrides and exact arithmetic.

Every expected figure is worked out by hand in the test, from prices per million tokens.
"""

from __future__ import annotations

import math
from dataclasses import fields
from decimal import Decimal
from typing import Any

import pytest

from anthropic_batch_request_util.cost import pricing
from anthropic_batch_request_util.cost.pricing import (
    PRICE_FIELDS,
    ModelPrice,
    PriceTable,
    TokenCounts,
    UsageTotals,
    cost_usd,
    format_usd,
    load_price_table,
)
from anthropic_batch_request_util.errors import SettingsError

TOLERANCE = 1e-9  #: USD; the brief's bar, though most figures below are exact
MTOK = 1_000_000  #: tokens per priced unit


@pytest.fixture(scope="module")
def table() -> PriceTable:
    return load_price_table()


def test_public_names_are_pinned() -> None:
    assert pricing.__all__ == [
        "PRICE_FIELDS",
        "ModelPrice",
        "PriceTable",
        "TokenCounts",
        "UsageTotals",
        "batch_cost",
        "cost_usd",
        "format_usd",
        "load_price_table",
        "price_table_for",
        "usd_json",
    ]


def test_price_fields_name_the_dataclass_fields() -> None:
    assert tuple(f.name for f in fields(ModelPrice)) == PRICE_FIELDS
    assert tuple(f.name for f in fields(TokenCounts)) == PRICE_FIELDS


# --- the packaged table -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "input_price", "output_price"),
    [
        ("claude-opus-4-7", 5.0, 25.0),
        ("claude-opus-4-6", 5.0, 25.0),
        ("claude-opus-4-5", 5.0, 25.0),
        ("claude-opus-4-5-20251101", 5.0, 25.0),
        ("claude-opus-4-1", 15.0, 75.0),
        ("claude-opus-4-1-20250805", 15.0, 75.0),
        ("claude-opus-4-20250514", 15.0, 75.0),
        ("claude-opus-4-0", 15.0, 75.0),
        ("claude-sonnet-4-6", 3.0, 15.0),
        ("claude-sonnet-4-5-20250929", 3.0, 15.0),
        ("claude-sonnet-4-20250514", 3.0, 15.0),
        ("claude-sonnet-4-0", 3.0, 15.0),
        ("claude-3-7-sonnet-20250219", 3.0, 15.0),
        ("claude-haiku-4-5-20251001", 1.0, 5.0),
        ("claude-haiku-4-5", 1.0, 5.0),
        ("claude-3-5-haiku-20241022", 0.8, 4.0),
        ("claude-3-haiku-20240307", 0.25, 1.25),
    ],
)
def test_each_model_family_has_its_standard_price(
    table: PriceTable, model: str, input_price: float, output_price: float
) -> None:
    price = table.price_for(model)
    assert (price.input, price.output) == (input_price, output_price)


@pytest.mark.parametrize(
    ("model", "batch_input", "batch_output"),
    [
        ("claude-opus-4-7", "2.50", "12.50"),
        ("claude-opus-4-6", "2.50", "12.50"),
        ("claude-opus-4-5", "2.50", "12.50"),
        ("claude-opus-4-1", "7.50", "37.50"),
        ("claude-sonnet-4-6", "1.50", "7.50"),
        ("claude-sonnet-4-5", "1.50", "7.50"),
        ("claude-haiku-4-5", "0.50", "2.50"),
    ],
)
def test_batch_prices_match_the_published_batch_table(
    table: PriceTable, model: str, batch_input: str, batch_output: str
) -> None:
    price = table.price_for(model)
    discount = Decimal(str(table.batch_discount))
    assert Decimal(str(price.input)) * discount == Decimal(batch_input)
    assert Decimal(str(price.output)) * discount == Decimal(batch_output)


def test_batch_discount_is_half(table: PriceTable) -> None:
    assert table.batch_discount == 0.5


def test_cache_prices_are_the_documented_multiples_of_input_for_every_model(
    table: PriceTable,
) -> None:
    for model, price in table.prices.items():
        base = Decimal(str(price.input))
        assert Decimal(str(price.cache_write_5m)) == base * Decimal("1.25"), model
        assert Decimal(str(price.cache_write_1h)) == base * 2, model
        assert Decimal(str(price.cache_read)) == base * Decimal("0.1"), model


# --- model ids --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "family"),
    [
        ("claude-sonnet-4-5-20991231", "claude-sonnet-4-5"),  # a snapshot not listed
        ("claude-sonnet-4-5@20250929", "claude-sonnet-4-5"),  # the @-dated spelling
        ("claude-3-5-haiku-latest", "claude-3-5-haiku"),
        ("claude-3-7-sonnet-latest", "claude-3-7-sonnet"),
        ("claude-opus-4-7-20991231", "claude-opus-4-7"),
    ],
)
def test_dated_and_latest_ids_take_their_family_price(
    table: PriceTable, model: str, family: str
) -> None:
    assert table.price_for(model) == table.price_for(family)


def test_the_longest_family_wins_over_a_shorter_one(table: PriceTable) -> None:
    # claude-opus-4-5-… starts with claude-opus-4 too, which costs three times as much.
    assert table.price_for("claude-opus-4-5-20991231").input == 5.0
    assert table.price_for("claude-opus-4-20991231").input == 15.0


@pytest.mark.parametrize(
    "model", ["claude-opus-4-8", "claude-sonnet-5", "claude-sonnet", "gpt-4o", "", "claude"]
)
def test_an_unknown_model_is_a_settings_error_saying_how_to_price_it(
    table: PriceTable, model: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        table.price_for(model)
    message = str(caught.value)
    assert repr(model) in message
    assert "pricing_file" in message and "input: ..., output: ..." in message


# --- overrides --------------------------------------------------------------------------


def test_a_partial_override_replaces_only_the_fields_it_names(table: PriceTable) -> None:
    changed = load_price_table({"claude-sonnet-4-5": {"output": 20}}).price_for("claude-sonnet-4-5")
    assert changed == ModelPrice(3.0, 20.0, 3.75, 6.0, 0.3)


def test_an_override_of_input_moves_the_cache_prices_unless_they_are_given() -> None:
    prices = load_price_table(
        {
            "claude-sonnet-4-5": {"input": 4},
            "claude-haiku-4-5": {"input": 2, "cache_read": 0.5},
        }
    )
    assert prices.price_for("claude-sonnet-4-5") == ModelPrice(4.0, 15.0, 5.0, 8.0, 0.4)
    assert prices.price_for("claude-haiku-4-5") == ModelPrice(2.0, 5.0, 2.5, 4.0, 0.5)


def test_a_complete_override_is_taken_as_written() -> None:
    given = {
        "input": 1,
        "output": 2,
        "cache_write_5m": 3,
        "cache_write_1h": 4,
        "cache_read": 5,
    }
    prices = load_price_table({"claude-opus-4-7": given})
    assert prices.price_for("claude-opus-4-7") == ModelPrice(1.0, 2.0, 3.0, 4.0, 5.0)


def test_a_new_model_needs_input_and_output_and_gets_standard_cache_prices() -> None:
    prices = load_price_table({"claude-future-9": {"input": 2, "output": 10}})
    assert prices.price_for("claude-future-9") == ModelPrice(2.0, 10.0, 2.5, 4.0, 0.2)
    assert prices.price_for("claude-future-9-20991231").input == 2.0  # a family, too
    with pytest.raises(SettingsError, match=r"pricing\.claude-future-9: .*needs output"):
        load_price_table({"claude-future-9": {"input": 2}})


def test_an_override_of_a_family_reaches_its_dated_ids_but_one_of_a_dated_id_does_not() -> None:
    family = load_price_table({"claude-sonnet-4-5": {"output": 20}})
    assert family.price_for("claude-sonnet-4-5-20250929").output == 15.0  # listed as an alias
    assert family.price_for("claude-sonnet-4-5-20991231").output == 20.0
    dated = load_price_table({"claude-sonnet-4-5-20991231": {"output": 30}})
    assert dated.price_for("claude-sonnet-4-5-20991231").output == 30.0
    assert dated.price_for("claude-sonnet-4-5").output == 15.0


def test_overrides_leave_the_packaged_table_alone() -> None:
    load_price_table({"claude-sonnet-4-5": {"input": 99}})
    assert load_price_table().price_for("claude-sonnet-4-5").input == 3.0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"claude-sonnet-4-5": {"ouput": 1}}, r"pricing\.claude-sonnet-4-5\.ouput: .*output\?"),
        ({"claude-sonnet-4-5": {"speed": 1}}, r"not a price field \(known: input, output"),
        ({"claude-sonnet-4-5": {"input": -1}}, r"\.input: must be a finite number >= 0"),
        ({"claude-sonnet-4-5": {"input": math.nan}}, r"\.input: must be a finite number"),
        ({"claude-sonnet-4-5": {"input": "3"}}, r"\.input: must be a number"),
        ({"claude-sonnet-4-5": {"input": True}}, r"\.input: must be a number"),
        ({"claude-sonnet-4-5": 3}, r"pricing\.claude-sonnet-4-5: must be a mapping"),
        ({"": {"input": 1, "output": 1}}, r"pricing: model ids must be non-empty strings"),
        (["claude-sonnet-4-5"], r"pricing: must be a mapping"),
    ],
)
def test_bad_overrides_are_settings_errors_naming_the_key(overrides: Any, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_price_table(overrides)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"models": {}}, r"batch_discount: must be a number"),
        ({"batch_discount": 0, "models": {}}, r"batch_discount: must be in \(0, 1\]"),
        ({"batch_discount": 0.5}, r"must be a mapping with batch_discount and models"),
        (
            {"batch_discount": 0.5, "models": {"m": {"input": 1, "output": 2}}},
            r"models\.m: missing cache_write_5m, cache_write_1h, cache_read",
        ),
        (
            {
                "batch_discount": 0.5,
                "models": {
                    "a": dict.fromkeys(PRICE_FIELDS, 1),
                    "b": dict.fromkeys(PRICE_FIELDS, 1) | {"aliases": ["a"]},
                },
            },
            r"models\.b: id 'a' is listed twice",
        ),
    ],
)
def test_a_broken_price_file_is_reported_by_key(data: Any, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        pricing._table_from_data(data, "pricing.yaml")


# --- costs ------------------------------------------------------------------------------


def test_cost_of_input_and_output_at_batch_and_standard_rates(table: PriceTable) -> None:
    usage = {"input_tokens": 1000, "output_tokens": 500}
    # Sonnet 4.5: 1000 * $3 + 500 * $15 = $10,500 per million = $0.0105 standard.
    assert cost_usd(usage, "claude-sonnet-4-5", table, batch=False) == pytest.approx(
        0.0105, abs=TOLERANCE
    )
    assert cost_usd(usage, "claude-sonnet-4-5", table) == pytest.approx(0.00525, abs=TOLERANCE)
    assert cost_usd(usage, "claude-sonnet-4-5", table, batch=True) == pytest.approx(
        0.00525, abs=TOLERANCE
    )


def test_cost_with_5_minute_and_1_hour_cache_writes_and_reads(table: PriceTable) -> None:
    usage = {
        "input_tokens": 1000,
        "output_tokens": 500,
        "cache_creation_input_tokens": 3000,
        "cache_read_input_tokens": 4000,
        "cache_creation": {"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 2000},
    }
    # Opus 4.7, standard: 1000*5 + 500*25 + 1000*6.25 + 2000*10 + 4000*0.5
    #                   = 5000 + 12500 + 6250 + 20000 + 2000 = 45,750 per million.
    assert cost_usd(usage, "claude-opus-4-7", table, batch=False) == pytest.approx(
        0.04575, abs=TOLERANCE
    )
    assert cost_usd(usage, "claude-opus-4-7", table) == pytest.approx(0.022875, abs=TOLERANCE)


def test_cache_writes_without_a_split_are_charged_at_the_5_minute_rate(
    table: PriceTable,
) -> None:
    usage = {"input_tokens": 10, "output_tokens": 0, "cache_creation_input_tokens": 2000}
    # Haiku 4.5, standard: 10 * $1 + 2000 * $1.25 = 2510 per million.
    assert cost_usd(usage, "claude-haiku-4-5", table, batch=False) == pytest.approx(
        0.00251, abs=TOLERANCE
    )


def test_cache_writes_the_split_leaves_out_are_charged_at_the_5_minute_rate(
    table: PriceTable,
) -> None:
    usage = {
        "input_tokens": 0,
        "output_tokens": 0,
        "cache_creation_input_tokens": 3000,
        "cache_creation": {"ephemeral_1h_input_tokens": 1000},
    }
    # Haiku 4.5, standard: 1000 at 1h ($2) + the other 2000 at 5m ($1.25) = 4500 per million.
    counts = TokenCounts.from_usage(usage)
    assert (counts.cache_write_5m, counts.cache_write_1h) == (2000, 1000)
    assert cost_usd(usage, "claude-haiku-4-5", table, batch=False) == pytest.approx(
        0.0045, abs=TOLERANCE
    )


def test_missing_and_null_usage_fields_count_as_zero(table: PriceTable) -> None:
    usage = {
        "input_tokens": 7,
        "output_tokens": None,
        "cache_creation_input_tokens": None,
        "cache_read_input_tokens": None,
        "cache_creation": None,
        "service_tier": "batch",
    }
    assert TokenCounts.from_usage(usage) == TokenCounts(input=7)
    assert cost_usd({}, "claude-haiku-4-5", table) == 0.0


def test_arithmetic_is_exact_where_floats_would_drift(table: PriceTable) -> None:
    # Haiku 3 cache reads at $0.025: 7 tokens is exactly $0.000000175; in floats,
    # 7 * 0.025 / 1e6 is 1.7500000000000002e-07.
    usage = {"input_tokens": 0, "output_tokens": 0, "cache_read_input_tokens": 7}
    assert cost_usd(usage, "claude-3-haiku", table, batch=False) == 1.75e-07
    # Sonnet cache reads at $0.30: 7 tokens is exactly $0.0000021; in floats,
    # 7 * 0.3 / 1e6 is 2.1000000000000002e-06.
    usage = {"input_tokens": 0, "output_tokens": 0, "cache_read_input_tokens": 7}
    assert cost_usd(usage, "claude-sonnet-4-5", table, batch=False) == 2.1e-06


def test_cost_of_an_unknown_model_is_a_settings_error(table: PriceTable) -> None:
    with pytest.raises(SettingsError, match="claude-opus-4-8"):
        cost_usd({"input_tokens": 1}, "claude-opus-4-8", table)


def test_cost_uses_overridden_prices() -> None:
    prices = load_price_table({"claude-future-9": {"input": 2, "output": 10}})
    usage = {"input_tokens": 1_000_000, "output_tokens": 100_000}
    # (2 + 0.1 * 10) per million... = 2 + 1 = $3 standard, $1.50 batch.
    assert cost_usd(usage, "claude-future-9", prices) == pytest.approx(1.5, abs=TOLERANCE)


# --- totals and display -------------------------------------------------------------------


def test_usage_totals_cost_equals_the_sum_of_each_response(table: PriceTable) -> None:
    responses = [
        ({"input_tokens": 11, "output_tokens": 36}, "claude-opus-4-7"),
        ({"input_tokens": 5, "output_tokens": 7, "cache_read_input_tokens": 100}, "claude-3-haiku"),
        (
            {
                "input_tokens": 3,
                "output_tokens": 1,
                "cache_creation_input_tokens": 50,
                "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 50},
            },
            "claude-opus-4-7",
        ),
    ]
    totals = UsageTotals()
    for usage, model in responses:
        totals.add(usage, model)
    assert totals.by_model["claude-opus-4-7"] == TokenCounts(14, 37, 0, 50, 0)
    assert totals.total == TokenCounts(19, 44, 0, 50, 100)
    # Opus 4.7: 14*5 + 37*25 + 50*10 = 70 + 925 + 500 = 1495; Haiku 3: 5*0.25 + 7*1.25
    # + 100*0.025 = 1.25 + 8.75 + 2.5 = 12.5; together 1507.5 per million, halved.
    assert totals.cost_usd(table) == pytest.approx(0.00075375, abs=TOLERANCE)
    assert totals.cost_usd(table, batch=False) == pytest.approx(0.0015075, abs=TOLERANCE)
    each = sum(cost_usd(usage, model, table) for usage, model in responses)
    assert totals.cost_usd(table) == pytest.approx(each, abs=TOLERANCE)


def test_token_counts_price_exactly() -> None:
    counts = TokenCounts(input=1, output=1, cache_write_5m=1, cache_write_1h=1, cache_read=1)
    price = ModelPrice(0.1, 0.2, 0.3, 0.4, 0.5)
    assert counts.cost(price) == Decimal("1.5") / MTOK


@pytest.mark.parametrize(
    ("amount", "shown"),
    [(0.0, "$0.0000"), (0.000836, "$0.0008"), (0.0123, "$0.0123"), (3.277636, "$3.28"),
     (12345.678, "$12,345.68")],
)  # fmt: skip
def test_format_usd_rounds_for_display_only(amount: float, shown: str) -> None:
    assert format_usd(amount) == shown
