"""`abr estimate FILE`: what a file of requests will cost at batch prices, before launch.

The answer is a range, "input exact, output up to max_tokens", per model and in total::

    low  = input tokens                                   * batch input price
    high = input tokens * batch input price  +  sum of max_tokens * batch output price

Prompt caching is not modelled: cache reads can bring the real cost below `low` and the
first write of a cached prefix costs 1.25x (5-minute) or 2x (1-hour) its input price.

The file is read twice, streaming, so memory does not grow with it: the first pass
validates every request exactly as `abr run` does (an `InputError` or an unknown model's
`SettingsError` comes before any HTTP call) and tallies requests and max_tokens per model;
the second counts input tokens.

Token counts, online (the default): one ``POST /v1/messages/count_tokens`` per request,
through the official SDK and the caller's client (its key, base URL and retries). At most
`concurrency` calls are in flight and calls start at most `rate_per_s` a second (a token
bucket), so a million-request file neither floods the API nor queues a million futures.

Offline: an approximation, no network. A request's text (the system prompt, the text of
every message and the compact JSON of every tool and non-text block) is taken at
``BYTES_PER_TOKEN`` UTF-8 bytes a token, rounded up, plus ``IMAGE_TOKENS`` per image. Real
tokenizers differ by language and content; treat the figure as a rough guide.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

import anthropic
import orjson

from ..api import make_client
from ..config import Settings, require_api_key
from ..errors import ApiError, UsageError
from ..inputs import RequestDefaults, read_requests, request_defaults
from .pricing import PriceTable, TokenCounts, UsageTotals, cost_usd, load_price_table

__all__ = [
    "COUNT_TOKENS_PARAMS",
    "Estimate",
    "ModelEstimate",
    "TokenBucket",
    "approximate_input_tokens",
    "estimate",
]

DEFAULT_CONCURRENCY = 8  #: count_tokens calls in flight at most
DEFAULT_RATE_PER_S = 50.0  #: count_tokens calls started per second at most
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
BYTES_PER_TOKEN = 4  #: offline: UTF-8 bytes per token, a common rule of thumb for English
#: offline: tokens per image, about (width * height) / 750 at the ~1.15-megapixel size to
#: which the API scales large images
IMAGE_TOKENS = 1600

ProgressCallback = Callable[[int, int], None]  #: (requests counted, requests in the file)


@dataclass(frozen=True)
class ModelEstimate:
    """The estimate for the requests of one model."""

    requests: int
    input_tokens: int
    max_output_tokens: int  #: the sum of the requests' max_tokens
    low_usd: float  #: input only, at the batch input price
    high_usd: float  #: input plus max_output_tokens at the batch output price


@dataclass(frozen=True)
class Estimate:
    """What a file will cost at batch prices: input exact, output up to max_tokens."""

    requests: int
    input_tokens: int
    max_output_tokens: int
    low_usd: float
    high_usd: float
    model_breakdown: dict[str, ModelEstimate]  #: by model id, as the requests name it
    offline: bool  #: token counts are the offline approximation

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON types, for `--json`."""
        return asdict(self)


@dataclass
class _Tally:
    """What the passes over the file found for one model."""

    requests: int = 0
    max_output_tokens: int = 0
    input_tokens: int = 0


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
) -> Estimate:
    """Estimate what running `path` with `settings` costs (see the module doc).

    Online, `client` makes the count_tokens calls (the caller keeps it open and closes
    it); without one, a client is made from the settings and ANTHROPIC_API_KEY and closed
    here. `prices` defaults to the packaged table. `on_progress(done, total)` is called
    from the calling thread after each request's tokens are counted.

    Raises `InputError` for a bad file, `SettingsError` for a model without a price,
    `MissingApiKeyError`, and `ApiError` when a count fails after the SDK's retries.
    """
    _check_limits(concurrency, rate_per_s)
    table = load_price_table() if prices is None else prices
    defaults = request_defaults(settings)
    with ExitStack() as stack:
        if not offline and client is None:
            client = stack.enter_context(make_client(settings, require_api_key()))  # no HTTP yet
        tallies = _survey(path, defaults, table)
        progress = _Progress(sum(t.requests for t in tallies.values()), on_progress)
        if offline or client is None:  # client is None only offline
            _count_offline(path, defaults, tallies, progress)
        else:
            pacer = TokenBucket(rate_per_s)
            _count_online(client, path, defaults, tallies, progress, concurrency, pacer)
    return _summary(tallies, table, offline)


def _check_limits(concurrency: int, rate_per_s: float) -> None:
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise UsageError(f"concurrency must be a whole number of at least 1, not {concurrency}")
    if not rate_per_s > 0:
        raise UsageError(f"the rate must be above 0 calls per second, not {rate_per_s}")


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


def _count_offline(
    path: Path, defaults: RequestDefaults, tallies: dict[str, _Tally], progress: _Progress
) -> None:
    """Pass two, offline: approximate each request's input tokens."""
    for _, params in _params(path, defaults):
        tallies[params["model"]].input_tokens += approximate_input_tokens(params)
        progress.step()


def _count_online(
    client: anthropic.Anthropic,
    path: Path,
    defaults: RequestDefaults,
    tallies: dict[str, _Tally],
    progress: _Progress,
    concurrency: int,
    pacer: TokenBucket,
) -> None:
    """Pass two, online: count_tokens for each request, `concurrency` calls at a time.

    A new call is submitted only when one of the `concurrency` in flight has finished, so
    neither futures nor request bodies pile up.
    """
    pending: dict[Future[int], tuple[str, str]] = {}  # future -> (custom_id, model)

    def collect(done: set[Future[int]]) -> None:
        for future in done:
            custom_id, model = pending.pop(future)
            tallies[model].input_tokens += _result(future, custom_id)
            progress.step()

    pool = ThreadPoolExecutor(concurrency, thread_name_prefix="abr-count-tokens")
    try:
        for custom_id, params in _params(path, defaults):
            if len(pending) >= concurrency:
                collect(wait(pending, return_when=FIRST_COMPLETED).done)
            pacer.acquire()
            future = pool.submit(_count_tokens, client, _count_params(params))
            pending[future] = (custom_id, params["model"])
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


# --- the offline approximation --------------------------------------------------------


def approximate_input_tokens(params: Mapping[str, Any]) -> int:
    """A request's input tokens without asking the API (see the module doc); at least 1."""
    size, images = 0, 0
    for tool in _as_list(params.get("tools")):
        size += _json_bytes(tool)
    system = params.get("system")
    blocks = [system] if isinstance(system, str) else _as_list(system)
    for message in _as_list(params.get("messages")):
        content = message.get("content") if isinstance(message, dict) else None
        blocks += [content] if isinstance(content, str) else _as_list(content)
    for block in blocks:
        if isinstance(block, dict) and block.get("type") == "image":
            images += 1
        else:
            size += _block_bytes(block)
    return max(1, math.ceil(size / BYTES_PER_TOKEN) + images * IMAGE_TOKENS)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _block_bytes(block: Any) -> int:
    """UTF-8 bytes of a string or a text block's text; compact JSON for anything else."""
    if isinstance(block, str):
        return len(block.encode())
    if (
        isinstance(block, dict)
        and block.get("type") == "text"
        and isinstance(block.get("text"), str)
    ):
        return len(block["text"].encode())
    return _json_bytes(block)


def _json_bytes(value: Any) -> int:
    """Bytes of `value` as compact JSON, without its cache_control (not part of the prompt)."""
    if isinstance(value, dict) and "cache_control" in value:
        value = {key: item for key, item in value.items() if key != "cache_control"}
    return len(orjson.dumps(value))


# --- the figures ----------------------------------------------------------------------


def _summary(tallies: dict[str, _Tally], table: PriceTable, offline: bool) -> Estimate:
    """Prices the tallies: per model, and in total exactly (Decimal sums, one rounding)."""
    low, high = UsageTotals(), UsageTotals()
    breakdown: dict[str, ModelEstimate] = {}
    for model, tally in tallies.items():
        low.by_model[model] = TokenCounts(input=tally.input_tokens)
        high.by_model[model] = TokenCounts(input=tally.input_tokens, output=tally.max_output_tokens)
        breakdown[model] = ModelEstimate(
            requests=tally.requests,
            input_tokens=tally.input_tokens,
            max_output_tokens=tally.max_output_tokens,
            low_usd=cost_usd({"input_tokens": tally.input_tokens}, model, table),
            high_usd=cost_usd(
                {"input_tokens": tally.input_tokens, "output_tokens": tally.max_output_tokens},
                model,
                table,
            ),
        )
    return Estimate(
        requests=sum(t.requests for t in tallies.values()),
        input_tokens=sum(t.input_tokens for t in tallies.values()),
        max_output_tokens=sum(t.max_output_tokens for t in tallies.values()),
        low_usd=low.cost_usd(table),
        high_usd=high.cost_usd(table),
        model_breakdown=breakdown,
        offline=offline,
    )
