"""The least and the most a request's input can be billed under prompt caching, and the
worst case of one request for a budget.

Prices per token, cheapest first (standard multiples of the input price): a cache read
(0.1x), fresh input (1x), a 5-minute cache write (1.25x), a 1-hour write (2x). The tokens
after a request's last breakpoint are always fresh input; those up to it are a read, a
write or, for a prefix shorter than the model's minimum cacheable length, fresh input.

Floor (`PrefixLedger.split`, priced by `floor_counts`): each distinct prefix is written
once and read by every later request that has it, as if the cache never expired and
requests were worked out in file order. That one write is priced at the cheaper of a
write and fresh input, so the floor holds too when the API does not cache a prefix that
is too short. A prefix still cached from an earlier job could be cheaper yet (a read
where the floor has a write); that gap is one prefix per job.

Ceiling (`ceiling_counts`): every prefix of every request written, at the dearer of a
write and fresh input, since the cache may expire between any two requests.

Worst case of one request (`worst_case_usd`): the ceiling of its input, from token counts
that are upper bounds (`PromptShape.bound_tokens`) unless the caller has the API's count,
plus ``max_tokens`` of output, at batch prices. A prefix the caller saw written is still
priced as a write: the cache may expire before this request is worked out (batches take
up to 24 hours; entries live 5 minutes or 1 hour), so no earlier write makes a read
certain.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Any, Final

from .pricing import ModelPrice, PriceTable, TokenCounts, batch_cost
from .prompt_shape import Prefix, PromptShape, measure_prompt

__all__ = [
    "InputSplit",
    "PrefixLedger",
    "ceiling_counts",
    "floor_counts",
    "worst_case_usd",
]

#: distinct prefixes the floor remembers; past it, a new prefix counts as already cached,
#: which keeps the floor a floor while memory stays bounded
MAX_TRACKED_PREFIXES: Final = 100_000
_WRITE_FIELD: Final = {"5m": "cache_write_5m", "1h": "cache_write_1h"}


@dataclass(frozen=True, slots=True)
class InputSplit:
    """How input tokens are priced in the floor and in the ceiling (sums add up)."""

    tokens: int = 0  #: input tokens in all
    read: int = 0  #: floor: read from the cache
    first_5m: int = 0  #: floor: the one write of a 5-minute prefix
    first_1h: int = 0  #: floor: the one write of a 1-hour prefix
    write_5m: int = 0  #: ceiling: every 5-minute prefix, written
    write_1h: int = 0  #: ceiling: every 1-hour prefix, written

    def __add__(self, other: InputSplit) -> InputSplit:
        return InputSplit(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    @property
    def cached(self) -> bool:
        """Whether any token is in a cacheable prefix."""
        return bool(self.write_5m or self.write_1h)

    def scaled(self, tokens: int) -> InputSplit:
        """The split for `tokens` input tokens in all, each part in proportion.

        Parts are rounded up and then capped, so that a prefix is never counted smaller
        than in proportion: a larger prefix lowers the floor and raises the ceiling.
        """
        if self.tokens == 0 or tokens == self.tokens:
            return InputSplit(tokens) if self.tokens == 0 else self
        ratio = tokens / self.tokens
        read = min(math.ceil(self.read * ratio), tokens)
        first_5m = min(math.ceil(self.first_5m * ratio), tokens - read)
        first_1h = min(math.ceil(self.first_1h * ratio), tokens - read - first_5m)
        write_5m = min(math.ceil(self.write_5m * ratio), tokens)
        write_1h = min(math.ceil(self.write_1h * ratio), tokens - write_5m)
        return InputSplit(tokens, read, first_5m, first_1h, write_5m, write_1h)


class PrefixLedger:
    """The prefixes seen so far in a job, for the floor (see the module doc)."""

    def __init__(self, limit: int = MAX_TRACKED_PREFIXES) -> None:
        self._seen: set[bytes] = set()
        self._limit = limit

    @property
    def full(self) -> bool:
        """Whether new prefixes are no longer remembered (and count as cached)."""
        return len(self._seen) >= self._limit

    def split(self, shape: PromptShape) -> InputSplit:
        """The floor and ceiling split of the next request's approximate tokens."""
        marks = shape.prefixes
        if not marks:
            return InputSplit(shape.tokens)
        hit = next((i for i in range(len(marks) - 1, -1, -1) if self._known(marks[i])), -1)
        floor = _writes(marks, hit)
        ceiling = _writes(marks, -1)
        for mark in marks[hit + 1 :]:
            if not self.full:
                self._seen.add(mark.key)
        read = marks[hit].tokens if hit >= 0 else 0
        return InputSplit(
            shape.tokens, read, floor["5m"], floor["1h"], ceiling["5m"], ceiling["1h"]
        )

    def _known(self, mark: Prefix) -> bool:
        return mark.key in self._seen or self.full


def _writes(marks: tuple[Prefix, ...], hit: int) -> dict[str, int]:
    """Tokens written by ttl when `marks[hit]` is read (-1: none) and later ones written."""
    written = {"5m": 0, "1h": 0}
    edge = marks[hit].tokens if hit >= 0 else 0
    for mark in marks[hit + 1 :]:
        written[mark.ttl] += max(0, mark.tokens - edge)
        edge = max(edge, mark.tokens)
    return written


def floor_counts(split: InputSplit, price: ModelPrice) -> TokenCounts:
    """The floor's tokens by price: reads, one write per prefix (or fresh, if cheaper)."""
    counts = {"input": split.tokens - split.read - split.first_5m - split.first_1h}
    counts["cache_read"] = split.read
    for ttl, tokens in (("5m", split.first_5m), ("1h", split.first_1h)):
        name = _WRITE_FIELD[ttl]
        cheaper = name if getattr(price, name) < price.input else "input"
        counts[cheaper] = counts.get(cheaper, 0) + tokens
    return TokenCounts(**counts)


def ceiling_counts(split: InputSplit, price: ModelPrice, output: int = 0) -> TokenCounts:
    """The ceiling's tokens by price: every prefix written (or fresh, if dearer)."""
    counts = {"input": split.tokens - split.write_5m - split.write_1h, "output": output}
    for ttl, tokens in (("5m", split.write_5m), ("1h", split.write_1h)):
        name = _WRITE_FIELD[ttl]
        dearer = name if getattr(price, name) > price.input else "input"
        counts[dearer] = counts.get(dearer, 0) + tokens
    return TokenCounts(**counts)


def worst_case_usd(
    params: Mapping[str, Any], table: PriceTable, *, input_tokens: int | None = None
) -> Decimal:
    """The most one request can be billed, in USD at batch prices (see the module doc).

    `params` are the request's complete params (model and max_tokens set). Give
    `input_tokens` when the API counted them (count_tokens); without, the bound of
    `PromptShape.bound_tokens` is used. Raises `SettingsError` for a model without a price.
    """
    shape = measure_prompt(params)
    total = shape.bound_tokens if input_tokens is None else input_tokens
    bounded = PromptShape(shape.bound_tokens, shape.bound_tokens, _bound_prefixes(shape))
    split = PrefixLedger().split(bounded)
    write_1h = min(split.write_1h, total)  # the dearer write keeps its tokens first
    capped = InputSplit(total, write_5m=min(split.write_5m, total - write_1h), write_1h=write_1h)
    model = str(params["model"])
    counts = ceiling_counts(capped, table.price_for(model), int(params["max_tokens"]))
    return batch_cost(counts, model, table)


def _bound_prefixes(shape: PromptShape) -> tuple[Prefix, ...]:
    return tuple(Prefix(p.bound_tokens, p.bound_tokens, p.ttl, p.key) for p in shape.prefixes)
