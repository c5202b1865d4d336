"""`abr emulator` / `python -m anthropic_batch_request_util.emulator`: serve the emulator."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any, NoReturn

from . import config as defaults
from .config import EmulatorConfig
from .faults import FAULTS
from .server import Emulator

PROG = "abr emulator"
DEFAULT_PORT = 8765  #: TCP port served when --port is not given


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """One line on stderr and exit 2, instead of argparse's usage block."""
        self.exit(2, f"{self.prog}: error: {message}\n")


def _number(kind: Callable[[str], Any], minimum: float) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, not {text}")
        return value

    return parse


def _fault(text: str) -> tuple[str, float]:
    name, equals, fraction = text.partition("=")
    if not equals or name not in FAULTS:
        raise argparse.ArgumentTypeError(
            f"expected NAME=FRACTION with NAME one of {', '.join(FAULTS)}, not {text!r}"
        )
    try:
        value = float(fraction)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{name}: not a fraction: {fraction!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{name}: the fraction must be in [0, 1], not {value}")
    return name, value


ADMIN_HELP = """admin endpoints (no API key needed):
  GET  /_admin/stats     batches, submissions, calls per endpoint, 429s by reason,
                         faults injected (?submissions=1: every custom_id's count)
  GET  /_admin/faults    the fault fractions; POST {"http_500": 0.2, ...} changes some
  GET  /_admin/limits    the limits; POST {"rate_limit_per_window": 50, ...} changes some
  POST /_admin/finish    let unfinished batches end now ({"batch_id": ...}: just one)
  POST /_admin/expire    expire unfinished batches now ({"batch_id": ...}: just one)
  POST /_admin/reset     forget every batch and count; faults and limits back to options
"""


def _optional_int(text: str) -> int | None:
    """A count >= 1, or 'none' for no limit."""
    if text.strip().lower() in ("none", "off"):
        return None
    parsed: int = _number(int, 1)(text)
    return parsed


def build_parser() -> argparse.ArgumentParser:
    """The command line's options."""
    parser = _Parser(
        prog=PROG,
        description="Serve a local emulator of the Anthropic API (Message Batches and\n"
        "Messages, streaming included) to try abr and the SDK for free.\n"
        "Point clients at it with ANTHROPIC_BASE_URL.",
        epilog=ADMIN_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    add("--port", type=_number(int, 0), default=DEFAULT_PORT,
        help="port to listen on, 0 picks a free one (default: %(default)s)")  # fmt: skip
    add("--processing-seconds", type=_number(float, 0), default=defaults.PROCESSING_S,
        help="seconds a batch takes to end (default: %(default)s)")  # fmt: skip
    add("--seed", type=int, default=0,
        help="seed of every fault draw and result order (default: %(default)s)")  # fmt: skip
    add("--retry-after", type=_number(float, 0), default=defaults.RETRY_AFTER_S,
        help="retry-after of injected and queued-limit 429s (default: %(default)s)")  # fmt: skip
    add("--max-requests", type=_number(int, 1), default=defaults.MAX_REQUESTS,
        help="requests allowed per batch (default: %(default)s)")  # fmt: skip
    add("--max-bytes", type=_number(int, 1), default=defaults.MAX_BATCH_BYTES,
        help="bytes allowed per batch create body (default: %(default)s)")  # fmt: skip
    add("--expire-after", type=_number(float, 0.001), default=defaults.EXPIRE_AFTER_S,
        help="seconds from create to expiry (default: %(default)s)")  # fmt: skip
    add("--cancel-seconds", type=_number(float, 0), default=defaults.CANCEL_S,
        help="seconds a canceled batch stays canceling (default: %(default)s)")  # fmt: skip
    add("--min-cache-tokens", type=_number(int, 0), default=defaults.MIN_CACHE_TOKENS,
        help="tokens a prefix needs to be cached (default: %(default)s)")  # fmt: skip
    add("--rate-limit", type=_optional_int, default=None, metavar="CALLS",
        help="calls to the batch endpoints per window, 429 beyond (default: none)")  # fmt: skip
    add("--rate-limit-window", type=_number(float, 0.001), default=defaults.RATE_LIMIT_WINDOW_S,
        metavar="SECONDS", help="the rate-limit window (default: %(default)s)")  # fmt: skip
    add("--queued-limit", type=_optional_int, default=None, metavar="REQUESTS",
        help="requests allowed in batches still processing; a create beyond gets a 429 "
        "(default: none)")  # fmt: skip
    add("--not-found-after-create", type=_number(float, 0), default=0.0, metavar="SECONDS",
        help="a new batch's retrieve/results 404 this long (default: %(default)s)")  # fmt: skip
    add("--latency", type=_number(float, 0), default=0.0, metavar="SECONDS",
        help="seconds added to every API call (default: %(default)s)")  # fmt: skip
    add("--fault", type=_fault, action="append", default=[], metavar="NAME=FRACTION",
        help=f"inject a fault, repeatable (default: none): {', '.join(FAULTS)}")  # fmt: skip
    add("--public-url",
        help="base of results_url when clients reach the emulator elsewhere (default: the "
        "request's Host)")  # fmt: skip
    add("--api-key", help="accept only this key (default: any non-empty key)")
    add("--no-shuffle", action="store_true",
        help="write results in request order (default: shuffled)")  # fmt: skip
    add("--verbose", action="store_true", help="log every request to stderr (default: off)")
    return parser


def config_from(args: argparse.Namespace) -> EmulatorConfig:
    """The emulator config the parsed options ask for."""
    return EmulatorConfig(
        processing_seconds=args.processing_seconds,
        seed=args.seed,
        max_requests_per_batch=args.max_requests,
        max_batch_bytes=args.max_bytes,
        retry_after=args.retry_after,
        expire_after_seconds=args.expire_after,
        cancel_seconds=args.cancel_seconds,
        min_cache_tokens=args.min_cache_tokens,
        shuffle_results=not args.no_shuffle,
        faults=dict(args.fault),
        public_url=args.public_url,
        api_key=args.api_key,
        rate_limit_per_window=args.rate_limit,
        rate_limit_window_s=args.rate_limit_window,
        queued_requests_limit=args.queued_limit,
        not_found_after_create_s=args.not_found_after_create,
        latency_s=args.latency,
    )


def _stop_on_sigterm() -> Any:
    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    try:
        return signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave signals alone
        return None


def main(argv: list[str] | None = None) -> int:
    """Parse the options, serve until Ctrl-C or SIGTERM, return the exit code."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as done:  # --help, or a bad option (already reported)
        return done.code if isinstance(done.code, int) else 0
    try:
        emulator = Emulator(config_from(args), args.host, args.port, verbose=args.verbose)
    except (OSError, ValueError) as error:
        print(f"{PROG}: error: cannot serve on {args.host}:{args.port}: {error}", file=sys.stderr)
        return 1
    url = emulator.base_url
    _say(f"{PROG} serving {url} — export ANTHROPIC_BASE_URL={url}")
    previous = _stop_on_sigterm()
    try:
        emulator.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        emulator.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    _say(f"{PROG}: stopped")
    return 0


def _say(line: str) -> None:
    """Print a line at once (a wrapper may be waiting for it), even on an ASCII terminal."""
    try:
        print(line, flush=True)
    except UnicodeEncodeError:
        print(line.replace("—", "-"), flush=True)


if __name__ == "__main__":
    sys.exit(main())
