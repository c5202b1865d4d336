"""Token prices, and what a request's usage costs in US dollars.

Prices live in ``data/pricing.yaml`` inside the package: for each model, USD per million
tokens at *standard* rates for input, output, cache writes (5-minute and 1-hour) and cache
reads, plus one ``batch_discount`` (0.5: Message Batches usage is billed at half price,
cache tokens included). Settings may override or add models (`load_price_table`).

Which price a model id gets (`PriceTable.price_for`): its exact entry; else the entry of
its family, i.e. the id without a trailing snapshot date or ``latest``
(``claude-sonnet-4-5-20250929`` → ``claude-sonnet-4-5``). A bare prefix is not enough on
purpose: ``claude-opus-4-8`` must be an unknown model, not Opus 4 at three times the price.

The cost of one response (`cost_usd`), from its Messages ``usage``::

      input_tokens                      * input
    + output_tokens                     * output
    + cache_creation 5-minute tokens    * cache_write_5m
    + cache_creation 1-hour tokens      * cache_write_1h
    + cache_read_input_tokens           * cache_read
    ───────────────────────────────────────────────── / 1,000,000
    * batch_discount                    (when billed as a batch)

Cache writes are split by ``usage.cache_creation.ephemeral_5m_input_tokens`` and
``ephemeral_1h_input_tokens`` when the response has them; ``cache_creation_input_tokens``
the split does not account for (all of it, for responses without a split) is charged at
the 5-minute rate, the default TTL. Server-tool fees (web search and the like) are not
token usage and are not counted.

Arithmetic is exact: prices enter as the decimals they were written as (``0.3`` is 3/10,
not the nearest binary float), token counts are integers, and every product and sum is a
`Decimal`. The one rounding is the conversion of the final figure to a float; rounding for
display is `format_usd`'s job (for people) and `usd_json`'s (for JSON, ``USD_JSON_DECIMALS``
decimals), and never happens inside a sum.
"""

from __future__ import annotations

import difflib
import functools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Final

import yaml

from ..errors import SettingsError

__all__ = [
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

PACKAGE = "anthropic_batch_request_util"
PRICING_FILE = "pricing.yaml"  #: in the package's data directory; also how errors name it
SETTINGS_KEY = "pricing"  #: the settings section that overrides prices

TOKENS_PER_PRICE_UNIT: Final = Decimal(1_000_000)  #: prices are USD per million tokens
CACHE_WRITE_5M_FACTOR: Final = Decimal("1.25")  #: * input price, for a 5-minute cache write
CACHE_WRITE_1H_FACTOR: Final = Decimal(2)  #: * input price, for a 1-hour cache write
CACHE_READ_FACTOR: Final = Decimal("0.1")  #: * input price, for a cache read

#: the price fields of a model, in the order of `ModelPrice`
PRICE_FIELDS: Final = ("input", "output", "cache_write_5m", "cache_write_1h", "cache_read")
_REQUIRED_FOR_NEW_MODEL: Final = ("input", "output")
_MODEL_INFO_FIELDS: Final = frozenset({"name", "aliases"})  #: non-price keys in pricing.yaml
#: what may follow a family's id in a model id: a snapshot date or "latest"
_SNAPSHOT_SUFFIX = re.compile(r"[-@](?:\d{8}|latest)$")
SUGGESTION_CUTOFF = 0.6  #: similarity (0-1) for "did you mean" on a mistyped price field
USD_CENT_DISPLAY_FROM = 1.0  #: dollars from which `format_usd` shows cents only
#: decimals of a USD figure in JSON output: a millionth of a dollar, finer than any one
#: token's price at batch rates (Haiku 3 input: $0.000000125) summed over a few tokens
USD_JSON_DECIMALS: Final = 6
_USD_JSON_QUANTUM: Final = Decimal(1).scaleb(-USD_JSON_DECIMALS)


@dataclass(frozen=True)
class ModelPrice:
    """A model's standard prices, in USD per million tokens."""

    input: float
    output: float
    cache_write_5m: float  #: writing a prompt prefix to the 5-minute cache
    cache_write_1h: float  #: writing a prompt prefix to the 1-hour cache
    cache_read: float  #: reading a cached prompt prefix

    @classmethod
    def from_input(cls, input: float, output: float) -> ModelPrice:
        """Prices with the cache rates at the standard multiples of `input`."""
        base = _decimal(input)
        return cls(
            input=input,
            output=output,
            cache_write_5m=float(base * CACHE_WRITE_5M_FACTOR),
            cache_write_1h=float(base * CACHE_WRITE_1H_FACTOR),
            cache_read=float(base * CACHE_READ_FACTOR),
        )


@dataclass(frozen=True)
class PriceTable:
    """Prices by model id or family id, and the batch discount."""

    prices: Mapping[str, ModelPrice]  #: every id and alias, each to its model's prices
    batch_discount: float = 0.5  #: fraction of the standard price billed for batch usage

    def price_for(self, model: str) -> ModelPrice:
        """The prices of `model`: its own entry, else its family's (see the module doc).

        Raises `SettingsError` naming the model and how to add a price for it.
        """
        price = self.prices.get(model)
        if price is None:
            price = self.prices.get(_SNAPSHOT_SUFFIX.sub("", model))
        if price is None:
            raise SettingsError(
                f"no price for model {model!r}: add it to the YAML file named by the "
                f"pricing_file setting as  {model}: {{input: ..., output: ...}}  "
                "(USD per million tokens at standard rates)"
            )
        return price


@dataclass(frozen=True)
class TokenCounts:
    """Tokens by how they are priced."""

    input: int = 0
    output: int = 0
    cache_write_5m: int = 0
    cache_write_1h: int = 0
    cache_read: int = 0

    @classmethod
    def from_usage(cls, usage: Mapping[str, Any]) -> TokenCounts:
        """The counts of a Messages `usage` object (missing or null fields count 0)."""
        written = _count(usage, "cache_creation_input_tokens")
        split = usage.get("cache_creation")
        split = split if isinstance(split, Mapping) else {}
        one_hour = _count(split, "ephemeral_1h_input_tokens")
        # Tokens the split leaves out are charged at the default (5-minute) rate.
        five_min = max(_count(split, "ephemeral_5m_input_tokens"), written - one_hour)
        return cls(
            input=_count(usage, "input_tokens"),
            output=_count(usage, "output_tokens"),
            cache_write_5m=five_min,
            cache_write_1h=one_hour,
            cache_read=_count(usage, "cache_read_input_tokens"),
        )

    def __add__(self, other: TokenCounts) -> TokenCounts:
        return TokenCounts(*(getattr(self, name) + getattr(other, name) for name in PRICE_FIELDS))

    def cost(self, price: ModelPrice) -> Decimal:
        """The exact standard-rate cost of these tokens at `price`, in USD."""
        total = sum(
            (getattr(self, name) * _decimal(getattr(price, name)) for name in PRICE_FIELDS),
            Decimal(0),
        )
        return total / TOKENS_PER_PRICE_UNIT


def _count(usage: Mapping[str, Any], key: str) -> int:
    value = usage.get(key)
    return int(value) if value else 0


@functools.lru_cache(maxsize=1024)
def _decimal(value: float) -> Decimal:
    """A price as the decimal it was written as: repr gives the shortest exact spelling."""
    return Decimal(repr(float(value)))


def _discount(table: PriceTable, batch: bool) -> Decimal:
    return _decimal(table.batch_discount) if batch else Decimal(1)


def cost_usd(
    usage: Mapping[str, Any], model: str, table: PriceTable, *, batch: bool = True
) -> float:
    """What a response with this `usage` from `model` costs, in USD (see the module doc)."""
    return _priced(TokenCounts.from_usage(usage), table.price_for(model), _discount(table, batch))


@functools.lru_cache(maxsize=8192)
def _priced(counts: TokenCounts, price: ModelPrice, discount: Decimal) -> float:
    # answers of one job repeat the same few token counts: each is priced exactly once
    return float(counts.cost(price) * discount)


@dataclass
class UsageTotals:
    """Token counts summed per model, for the cost of many responses at once.

    The sum of the counts priced once equals the sum of each response's cost, exactly,
    since the cost is linear in the counts.
    """

    by_model: dict[str, TokenCounts] = field(default_factory=dict)

    def add(self, usage: Mapping[str, Any], model: str) -> None:
        """Count one response's `usage`."""
        counts = TokenCounts.from_usage(usage)
        self.by_model[model] = self.by_model.get(model, TokenCounts()) + counts

    @property
    def total(self) -> TokenCounts:
        """The counts of every model together."""
        return sum(self.by_model.values(), TokenCounts())

    def cost_usd(self, table: PriceTable, *, batch: bool = True) -> float:
        """What every counted response costs together, in USD."""
        total = sum(
            (counts.cost(table.price_for(model)) for model, counts in self.by_model.items()),
            Decimal(0),
        )
        return float(total * _discount(table, batch))


def batch_cost(counts: TokenCounts, model: str, table: PriceTable) -> Decimal:
    """The exact cost of `counts` of `model` at batch prices, in USD."""
    return counts.cost(table.price_for(model)) * _discount(table, True)


def usd_json(value: Decimal | float | None) -> float | None:
    """A USD figure for JSON output: rounded half-even to ``USD_JSON_DECIMALS`` decimals.

    Floats are taken as the decimal they print as, so ``0.13375999999998367`` becomes
    ``0.13376``; None (no figure) stays None.
    """
    if value is None:
        return None
    exact = value if isinstance(value, Decimal) else Decimal(repr(float(value)))
    return float(exact.quantize(_USD_JSON_QUANTUM, rounding=ROUND_HALF_EVEN))


def format_usd(amount: float) -> str:
    """Dollars for people: cents from $1 up, four decimals below ("$0.0123")."""
    decimals = 2 if abs(amount) >= USD_CENT_DISPLAY_FROM else 4
    return f"${amount:,.{decimals}f}"


# --- loading ----------------------------------------------------------------------------


def load_price_table(overrides: Mapping[str, Mapping[str, float]] | None = None) -> PriceTable:
    """The packaged prices, with `overrides` (settings ``pricing``) applied.

    `overrides` maps a model id to some or all of its price fields (`PRICE_FIELDS`). A
    field not given keeps the table's value, except that the cache prices follow a new
    `input` at the standard multiples unless given too. A model not in the table needs
    `input` and `output`. An override for a family id (``claude-sonnet-4-5``) applies to
    its dated ids too; one for a dated id, to that id only. Problems are `SettingsError`s.
    """
    base = _packaged_table()
    if not overrides:
        return base
    if not isinstance(overrides, Mapping):
        raise SettingsError(f"{SETTINGS_KEY}: must be a mapping of model id to prices")
    prices = dict(base.prices)
    for model, given in overrides.items():
        prices[_checked_model_id(model)] = _overridden(base, model, given)
    return PriceTable(prices, base.batch_discount)


def price_table_for(pricing_file: str | None) -> PriceTable:
    """The prices a job uses: packaged, overridden by the settings' `pricing_file`."""
    if pricing_file is None:
        return load_price_table()
    try:
        data = yaml.safe_load(Path(pricing_file).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise SettingsError(f"pricing_file: cannot read {pricing_file}: {error}") from error
    return load_price_table(data or {})


def _checked_model_id(model: object) -> str:
    if not isinstance(model, str) or not model.strip():
        raise SettingsError(f"{SETTINGS_KEY}: model ids must be non-empty strings, got {model!r}")
    return model


def _overridden(base: PriceTable, model: str, given: object) -> ModelPrice:
    """The price of `model` with the fields in `given` replaced (see `load_price_table`)."""
    where = f"{SETTINGS_KEY}.{model}"
    values = _price_values(given, where)
    try:
        old: ModelPrice | None = base.price_for(model)
    except SettingsError:
        old = None
    if old is None:
        missing = [name for name in _REQUIRED_FOR_NEW_MODEL if name not in values]
        if missing:
            raise SettingsError(
                f"{where}: {model!r} is not a known model, so it needs "
                f"{' and '.join(missing)} (USD per million tokens)"
            )
        old = ModelPrice.from_input(values["input"], values["output"])
    elif "input" in values:
        old = ModelPrice.from_input(values["input"], old.output)  # cache prices follow input
    return ModelPrice(**{name: values.get(name, getattr(old, name)) for name in PRICE_FIELDS})


def _price_values(given: object, where: str) -> dict[str, float]:
    """The price fields of one model's entry, checked: names known, numbers >= 0."""
    if not isinstance(given, Mapping):
        raise SettingsError(f"{where}: must be a mapping of price fields, got {given!r}")
    values: dict[str, float] = {}
    for name, value in given.items():
        if name not in PRICE_FIELDS:
            raise SettingsError(f"{where}.{name}: {_unknown_field(name)}")
        values[name] = _checked_price(value, f"{where}.{name}")
    return values


def _unknown_field(name: object) -> str:
    close = difflib.get_close_matches(str(name), PRICE_FIELDS, n=1, cutoff=SUGGESTION_CUTOFF)
    hint = f"did you mean {close[0]}?" if close else f"known: {', '.join(PRICE_FIELDS)}"
    return f"not a price field ({hint})"


def _checked_price(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SettingsError(f"{where}: must be a number (USD per million tokens), got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise SettingsError(f"{where}: must be a finite number >= 0, got {value!r}")
    return float(value)


@cache
def _packaged_table() -> PriceTable:
    """The table in data/pricing.yaml, read and checked once per process."""
    resource = resources.files(PACKAGE) / "data" / PRICING_FILE
    try:
        data = yaml.safe_load(resource.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise SettingsError(f"{PRICING_FILE}: not valid YAML: {error}") from None
    return _table_from_data(data, PRICING_FILE)


def _table_from_data(data: object, label: str) -> PriceTable:
    """A price table from the parsed pricing.yaml; `SettingsError` names what is wrong."""
    if not isinstance(data, Mapping) or not isinstance(data.get("models"), Mapping):
        raise SettingsError(f"{label}: must be a mapping with batch_discount and models")
    discount = _checked_price(data.get("batch_discount"), f"{label}: batch_discount")
    if not 0 < discount <= 1:
        raise SettingsError(f"{label}: batch_discount: must be in (0, 1], got {discount!r}")
    prices: dict[str, ModelPrice] = {}
    for model, entry in data["models"].items():
        where = f"{label}: models.{model}"
        price, ids = _packaged_model(model, entry, where)
        for model_id in ids:
            if model_id in prices:
                raise SettingsError(f"{where}: id {model_id!r} is listed twice")
            prices[model_id] = price
    return PriceTable(prices, discount)


def _packaged_model(model: object, entry: object, where: str) -> tuple[ModelPrice, list[str]]:
    """One model of pricing.yaml: its prices (all five required) and all its ids."""
    if not isinstance(entry, Mapping):
        raise SettingsError(f"{where}: must be a mapping")
    aliases = entry.get("aliases") or []
    if not isinstance(aliases, list):
        raise SettingsError(f"{where}.aliases: must be a list of model ids")
    ids = [_checked_model_id(item) for item in (model, *aliases)]
    values = _price_values({k: v for k, v in entry.items() if k not in _MODEL_INFO_FIELDS}, where)
    missing = [name for name in PRICE_FIELDS if name not in values]
    if missing:
        raise SettingsError(f"{where}: missing {', '.join(missing)}")
    return ModelPrice(**values), ids
