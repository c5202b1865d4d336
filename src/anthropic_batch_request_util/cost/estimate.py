"""`abr estimate FILE`: what a file of requests will cost at batch prices, before launch.

The answer is a range per model and in total, at batch prices::

    low  = the input's floor                        (see `cost_bounds`)
    high = the input's ceiling  +  sum of max_tokens * output price

Without prompt caching both price the input as fresh input tokens. With it (a request
carries `cache_control`, as every request does under ``batch.enable_prompt_cache``), the
floor prices each distinct cacheable prefix as one write and its repeats as cache reads,
the ceiling every prefix as a write; `Estimate.caching` says which requests share a
prefix and how much caching saves at best.

The file is read twice, streaming, so memory does not grow with it: the first pass
validates every request exactly as `abr run` does (an `InputError` or an unknown model's
`SettingsError` comes before any HTTP call) and tallies requests and max_tokens per model;
the second measures every prompt offline (`prompt_shape`) and counts input tokens.

Token counts (`Estimate.counting`):

* ``all``: one ``POST /v1/messages/count_tokens`` per request, through the official SDK
  and the caller's client. At most `concurrency` calls are in flight and calls start at
  most `rate_per_s` a second (a token bucket).
* ``sample``: a file with more requests than `sample` has a random `sample` of them
  counted so; the others are the offline approximation times the sample's ratio of
  counted to approximated tokens, per model (`estimate_parts.Calibration`), and
  `input_tokens_margin` is the ~95% uncertainty of the total.
* ``offline``: the approximation of `prompt_shape` for every request, no network.

A cacheable prefix's tokens are the approximation's, scaled to the request's count.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, Literal

import anthropic
import orjson

from ..api import make_client
from ..config import Settings, require_api_key
from ..errors import ApiError, UsageError
from ..inputs import RequestDefaults, read_requests, request_defaults
from .bounds import InputSplit, PrefixLedger, ceiling_counts, floor_counts
from .estimate_parts import CacheGroup, Calibration, PrefixGroups
from .pricing import PriceTable, TokenCounts, batch_cost, load_price_table, usd_json
from .prompt_shape import BYTES_PER_TOKEN, IMAGE_TOKENS, PromptShape, measure_prompt

__all__ = [
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

DEFAULT_CONCURRENCY = 8  #: count_tokens calls in flight at most
DEFAULT_RATE_PER_S = 50.0  #: count_tokens calls started per second at most
#: requests counted online when a file has more; at the default rate about 20 seconds
DEFAULT_SAMPLE = 1000
#: the request fields `messages.count_tokens` takes (SDK 2.14); the rest (max_tokens,
#: temperature, metadata, stop_sequences ...) do not change the input token count
COUNT_TOKENS_PARAMS: Final = frozenset(
    {
        "messages",
        "model",
        "system",
        "tools",
        "tool_choice",
        "thinking",
        "output_config",
        "cache_control",
        "speed",
    }
)

Counting = Literal["all", "sample", "offline"]
ProgressCallback = Callable[[int, int], None]  #: (requests counted, requests to count)


@dataclass(frozen=True)
class ModelEstimate:
    """The estimate for the requests of one model."""

    requests: int
    input_tokens: int
    max_output_tokens: int  #: the sum of the requests' max_tokens
    low_usd: float  #: the input's floor at batch prices
    high_usd: float  #: the input's ceiling plus max_output_tokens at the batch output price
    input_tokens_margin: int = 0  #: +- tokens at ~95% confidence (sampled counts only)


@dataclass(frozen=True)
class CacheEstimate:
    """What prompt caching does to the input's cost."""

    requests_with_prefix: int  #: requests with a cacheable prefix
    prefixes: int  #: distinct longest prefixes among them
    requests_sharing: int  #: requests whose longest prefix another request has too
    uncached_input_usd: float  #: the input, every token priced as fresh input
    floor_input_usd: float  #: the input's floor: one write per prefix, then reads
    ceiling_input_usd: float  #: the input's ceiling: every prefix written
    savings_usd: float  #: uncached minus floor: what caching saves at best
    shared: list[CacheGroup]  #: the most shared prefixes, with their first custom_ids
    complete: bool = True  #: False when too many distinct prefixes to follow them all


@dataclass(frozen=True)
class Estimate:
    """What a file will cost at batch prices: the input's floor to its ceiling plus output."""

    requests: int
    input_tokens: int
    max_output_tokens: int
    low_usd: float
    high_usd: float
    model_breakdown: dict[str, ModelEstimate]  #: by model id, as the requests name it
    offline: bool  #: token counts are the offline approximation
    counting: Counting = "all"  #: how input tokens were counted (see the module doc)
    counted_requests: int = 0  #: requests whose tokens the API counted
    input_tokens_margin: int = 0  #: +- tokens at ~95% confidence (sampled counts only)
    margin_usd: float = 0.0  #: +- USD: the token margin at the dearest input price
    caching: CacheEstimate | None = None  #: None when no request has a cacheable prefix

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON types, for `--json`; USD figures rounded by `usd_json`."""
        rounded: dict[str, Any] = _rounded(asdict(self))
        return rounded


def _rounded(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: usd_json(item) if key.endswith("_usd") else _rounded(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_rounded(item) for item in value]
    return value


@dataclass
class _Tally:
    """What the passes over the file found for one model."""

    requests: int = 0
    max_output_tokens: int = 0
    counted: InputSplit = field(default_factory=InputSplit)  #: in the API's tokens
    approximated: InputSplit = field(default_factory=InputSplit)  #: in approximate tokens
    calibration: Calibration = field(default_factory=Calibration)


class TokenBucket:
    """Paces calls: at most `rate_per_s` a second on average and `burst` at once.

    Kept as the time the next call would start at the steady rate (the "generic cell
    rate" form of a token bucket), so each `acquire` reads the clock once and sleeps at
    most once: no loop that float rounding could keep spinning. Thread-safe; `clock` and
    `sleep` are injectable for tests. An infinite rate never waits.
    """

    def __init__(
        self,
        rate_per_s: float,
        burst: float = 1.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not rate_per_s > 0 or not burst >= 1:
            raise ValueError(f"need rate_per_s > 0 and burst >= 1, not {rate_per_s}, {burst}")
        self.interval = 1.0 / rate_per_s  #: seconds between calls at the steady rate
        self.slack = (burst - 1) * self.interval  #: seconds a call may start ahead of it
        self._clock, self._sleep = clock, sleep
        self._due = clock()  #: when the next call is due at the steady rate
        self._lock = threading.Lock()

    def acquire(self) -> None:
        """Wait until one more call may start."""
        if self.interval == 0:
            return
        with self._lock:  # held while waiting: later callers queue behind, in order
            now = self._clock()
            start = max(now, self._due - self.slack)
            if start > now:
                self._sleep(start - now)
            self._due = max(self._due, now) + self.interval


def estimate(
    path: Path,
    settings: Settings,
    *,
    offline: bool = False,
    client: anthropic.Anthropic | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    rate_per_s: float = DEFAULT_RATE_PER_S,
    on_progress: ProgressCallback | None = None,
    prices: PriceTable | None = None,
    sample: int | None = DEFAULT_SAMPLE,
    seed: int | None = None,
) -> Estimate:
    """Estimate what running `path` with `settings` costs (see the module doc).

    Online, `client` makes the count_tokens calls (the caller keeps it open and closes
    it); without one, a client is made from the settings and ANTHROPIC_API_KEY and closed
    here. A file with more than `sample` requests has a random `sample` of them counted
    (`seed` makes the draw repeatable); `sample=None` counts every request. `prices`
    defaults to the packaged table. `on_progress(done, total)` is called from the calling
    thread after each request is counted (or approximated, offline).

    Raises `InputError` for a bad file, `SettingsError` for a model without a price,
    `MissingApiKeyError`, and `ApiError` when a count fails after the SDK's retries.
    """
    _check_limits(concurrency, rate_per_s, sample)
    table = load_price_table() if prices is None else prices
    defaults = request_defaults(settings)
    with ExitStack() as stack:
        if not offline and client is None:
            client = stack.enter_context(make_client(settings, require_api_key()))  # no HTTP yet
        walk = _Walk(_survey(path, defaults, table))
        total = sum(t.requests for t in walk.tallies.values())
        if offline or client is None:  # client is None only offline
            _count_offline(path, defaults, walk, _Progress(total, on_progress))
            return _summary(walk, table, "offline", 0)
        chosen = _draw(total, sample, seed)
        to_count = total if chosen is None else len(chosen)
        pacer = TokenBucket(rate_per_s)
        progress = _Progress(to_count, on_progress)
        _count_online(client, path, defaults, walk, progress, concurrency, pacer, chosen)
    return _summary(walk, table, "all" if chosen is None else "sample", to_count)


def _check_limits(concurrency: int, rate_per_s: float, sample: int | None) -> None:
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise UsageError(f"concurrency must be a whole number of at least 1, not {concurrency}")
    if not rate_per_s > 0:
        raise UsageError(f"the rate must be above 0 calls per second, not {rate_per_s}")
    if sample is not None and sample < 2:
        raise UsageError(f"the sample must be at least 2 requests, not {sample}")


def _draw(total: int, sample: int | None, seed: int | None) -> set[int] | None:
    """The indexes of the requests to count online; None for all of them."""
    if sample is None or total <= sample:
        return None
    return set(random.Random(seed).sample(range(total), sample))


# --- the passes over the file ---------------------------------------------------------


def _params(path: Path, defaults: RequestDefaults) -> Iterator[tuple[str, dict[str, Any]]]:
    """(custom_id, params) of each request, validated and completed as `abr run` sends it."""
    for request in read_requests(path, defaults):
        params: dict[str, Any] = orjson.loads(request.body)["params"]
        yield request.custom_id, params


def _survey(path: Path, defaults: RequestDefaults, table: PriceTable) -> dict[str, _Tally]:
    """Pass one: validate the whole file; tally requests and max_tokens by model.

    Pricing each new model here makes an unknown one fail before any token is counted.
    """
    tallies: dict[str, _Tally] = {}
    for _, params in _params(path, defaults):
        model = params["model"]
        tally = tallies.get(model)
        if tally is None:
            table.price_for(model)
            tally = tallies[model] = _Tally()
        tally.requests += 1
        tally.max_output_tokens += params["max_tokens"]
    return tallies


class _Progress:
    """Counts requests done and tells the caller."""

    def __init__(self, total: int, callback: ProgressCallback | None) -> None:
        self.total, self.done, self.callback = total, 0, callback

    def step(self) -> None:
        self.done += 1
        if self.callback is not None:
            self.callback(self.done, self.total)


class _Walk:
    """Pass two's state: the tallies, the prefixes seen (in file order) and their groups."""

    def __init__(self, tallies: dict[str, _Tally]) -> None:
        self.tallies = tallies
        self.ledger = PrefixLedger()
        self.groups = PrefixGroups()

    def measure(self, custom_id: str, params: Mapping[str, Any]) -> tuple[PromptShape, InputSplit]:
        """The next request's shape and its floor/ceiling split, in approximate tokens."""
        shape = measure_prompt(params)
        self.groups.add(custom_id, params["model"], shape)
        return shape, self.ledger.split(shape)

    def approximated(self, model: str, split: InputSplit) -> None:
        tally = self.tallies[model]
        tally.approximated += split

    def counted(self, model: str, shape: PromptShape, split: InputSplit, tokens: int) -> None:
        tally = self.tallies[model]
        tally.counted += split.scaled(tokens)
        tally.calibration.add(shape.tokens, tokens)


def _count_offline(path: Path, defaults: RequestDefaults, walk: _Walk, progress: _Progress) -> None:
    """Pass two, offline: approximate each request's input tokens."""
    for custom_id, params in _params(path, defaults):
        walk.approximated(params["model"], walk.measure(custom_id, params)[1])
        progress.step()


def _count_online(
    client: anthropic.Anthropic,
    path: Path,
    defaults: RequestDefaults,
    walk: _Walk,
    progress: _Progress,
    concurrency: int,
    pacer: TokenBucket,
    chosen: set[int] | None,
) -> None:
    """Pass two, online: count_tokens for each chosen request (None: all of them),
    `concurrency` calls at a time; the others are approximated.

    A new call is submitted only when one of the `concurrency` in flight has finished, so
    neither futures nor request bodies pile up.
    """
    pending: dict[Future[int], tuple[str, str, PromptShape, InputSplit]] = {}

    def collect(done: set[Future[int]]) -> None:
        for future in done:
            custom_id, model, shape, split = pending.pop(future)
            walk.counted(model, shape, split, _result(future, custom_id))
            progress.step()

    pool = ThreadPoolExecutor(concurrency, thread_name_prefix="abr-count-tokens")
    try:
        for index, (custom_id, params) in enumerate(_params(path, defaults)):
            shape, split = walk.measure(custom_id, params)
            if chosen is not None and index not in chosen:
                walk.approximated(params["model"], split)
                continue
            if len(pending) >= concurrency:
                collect(wait(pending, return_when=FIRST_COMPLETED).done)
            pacer.acquire()
            future = pool.submit(_count_tokens, client, _count_params(params))
            pending[future] = (custom_id, params["model"], shape, split)
        collect(wait(pending).done)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _count_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a request's params that count_tokens takes."""
    return {key: value for key, value in params.items() if key in COUNT_TOKENS_PARAMS}


def _count_tokens(client: anthropic.Anthropic, params: dict[str, Any]) -> int:
    """One count_tokens call; the SDK retries 429, 5xx and connection errors itself."""
    return client.messages.count_tokens(**params).input_tokens


def _result(future: Future[int], custom_id: str) -> int:
    try:
        return future.result()
    except anthropic.APIError as error:
        raise ApiError(f"counting the tokens of {custom_id!r} failed: {_describe(error)}") from (
            error
        )


def _describe(error: anthropic.APIError) -> str:
    """The API's own words for an SDK error, without the SDK's wrapping."""
    if isinstance(error, anthropic.APIStatusError):
        body = error.body if isinstance(error.body, dict) else {}
        inner = body.get("error")
        detail = inner.get("message") if isinstance(inner, dict) else None
        return f"HTTP {error.status_code}: {detail or error.message}"
    return str(error) or type(error).__name__


def approximate_input_tokens(params: Mapping[str, Any]) -> int:
    """A request's input tokens without asking the API (`prompt_shape`); at least 1."""
    return measure_prompt(params).tokens


# --- the figures ----------------------------------------------------------------------


@dataclass
class _Model:
    """One model's figures, exact."""

    split: InputSplit
    floor: Decimal  #: input
    ceiling: Decimal  #: input
    output: Decimal  #: max_tokens of every request
    uncached: Decimal  #: input, all fresh
    margin: int  #: tokens
    margin_usd: Decimal


def _model_figures(model: str, tally: _Tally, pooled: Calibration, table: PriceTable) -> _Model:
    """Prices one model's tallies; the approximated part is calibrated on the sample."""
    own = tally.calibration
    calibration = own if own.n >= 2 else pooled
    approximated = tally.approximated
    estimated = approximated.scaled(round(calibration.ratio * approximated.tokens))
    split = tally.counted + estimated
    price = table.price_for(model)
    margin = calibration.margin(tally.requests, own.n) if approximated.tokens else 0
    dearest = max(
        batch_cost(TokenCounts(**{name: margin}), model, table)
        for name in ("input", "cache_write_5m", "cache_write_1h")
    )
    return _Model(
        split=split,
        floor=batch_cost(floor_counts(split, price), model, table),
        ceiling=batch_cost(ceiling_counts(split, price), model, table),
        output=batch_cost(TokenCounts(output=tally.max_output_tokens), model, table),
        uncached=batch_cost(TokenCounts(input=split.tokens), model, table),
        margin=margin,
        margin_usd=dearest,
    )


def _summary(walk: _Walk, table: PriceTable, counting: Counting, counted: int) -> Estimate:
    """Prices the tallies: per model, and in total exactly (Decimal sums, one rounding)."""
    pooled = Calibration()
    for tally in walk.tallies.values():
        pooled = pooled.merged(tally.calibration)
    figures = {m: _model_figures(m, t, pooled, table) for m, t in walk.tallies.items()}
    breakdown = {
        model: ModelEstimate(
            requests=tally.requests,
            input_tokens=figures[model].split.tokens,
            max_output_tokens=tally.max_output_tokens,
            low_usd=float(figures[model].floor),
            high_usd=float(figures[model].ceiling + figures[model].output),
            input_tokens_margin=figures[model].margin,
        )
        for model, tally in walk.tallies.items()
    }
    parts = figures.values()
    return Estimate(
        requests=sum(t.requests for t in walk.tallies.values()),
        input_tokens=sum(f.split.tokens for f in parts),
        max_output_tokens=sum(t.max_output_tokens for t in walk.tallies.values()),
        low_usd=float(sum((f.floor for f in parts), Decimal(0))),
        high_usd=float(sum((f.ceiling + f.output for f in parts), Decimal(0))),
        model_breakdown=breakdown,
        offline=counting == "offline",
        counting=counting,
        counted_requests=counted,
        input_tokens_margin=sum(f.margin for f in parts),
        margin_usd=float(sum((f.margin_usd for f in parts), Decimal(0))),
        caching=_caching(walk, list(parts)),
    )


def _caching(walk: _Walk, parts: list[_Model]) -> CacheEstimate | None:
    """What caching does, or None when no request has a cacheable prefix."""
    groups = walk.groups
    if not groups.requests_with_prefix:
        return None
    uncached = sum((f.uncached for f in parts), Decimal(0))
    floor = sum((f.floor for f in parts), Decimal(0))
    return CacheEstimate(
        requests_with_prefix=groups.requests_with_prefix,
        prefixes=groups.prefixes,
        requests_sharing=groups.requests_sharing,
        uncached_input_usd=float(uncached),
        floor_input_usd=float(floor),
        ceiling_input_usd=float(sum((f.ceiling for f in parts), Decimal(0))),
        savings_usd=float(max(Decimal(0), uncached - floor)),
        shared=groups.shared(),
        complete=not groups.untracked and not walk.ledger.full,
    )
