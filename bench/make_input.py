"""Write a deterministic benchmark input of N requests in the original format.

    .venv/bin/python bench/make_input.py 100000 /tmp/bench-100k.json

The file is the original tool's single JSON object, keys in the original order::

    {"system_prompt": "...", "messages_list": [[{"role": "user", "content": "..."}], ...],
     "custom_id_prefix": "bench"}

One system prompt shared by every request; each user message is 100-300 characters, built
from a seeded word list, so the same N (and seed) always gives the same bytes. The file is
written as a stream: a million requests need no more memory than ten.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import orjson

SYSTEM_PROMPT = (
    "You are a careful assistant for a customer-support team. Answer in two short "
    "paragraphs, cite the policy section you rely on, and never invent order numbers."
)
CUSTOM_ID_PREFIX = "bench"
MIN_CHARS, MAX_CHARS = 100, 300  #: length of every user message, inclusive
WRITE_BYTES = 1 << 20  #: bytes buffered before each write

_WORD_TEXT = (
    "order parcel refund replacement courier screen battery charger invoice warranty "
    "delivery address signature box corner dented cracked missing late early payment "
    "card account password login subscription plan upgrade downgrade cancel renew "
    "discount coupon price tax receipt return label store branch manager support agent "
    "ticket email phone chat weekend holiday morning evening yesterday today tomorrow "
    "please kindly quickly urgently again still already never always sometimes "
    "broken working slow fast noisy quiet heavy light small large blue black white "
    "laptop tablet headphones keyboard mouse monitor cable adapter speaker camera"
)
WORDS = _WORD_TEXT.split()
OPENERS = (
    "Hello, ", "Hi team, ", "Good morning. ", "Quick question: ", "I need help: ",
    "Sorry to bother you, ", "", "Dear support, ",
)  # fmt: skip


def message(rng: random.Random, index: int) -> str:
    """One user message of MIN_CHARS..MAX_CHARS characters, different for every index."""
    target = rng.randint(MIN_CHARS, MAX_CHARS)
    text = f"{rng.choice(OPENERS)}request {index}: "
    words = rng.choices(WORDS, k=target // 4 + 8)  # always more than enough
    parts = [text]
    length = len(text)
    for word in words:
        if length + len(word) + 2 > target:
            break
        parts.append(word)
        parts.append(" ")
        length += len(word) + 1
    body = "".join(parts).rstrip()
    body = (body + "?" + "." * target)[:target]  # pad with dots to exactly `target`
    return body


def write_input(count: int, path: Path, seed: int = 0) -> int:
    """Write `count` requests to `path`; returns the bytes written."""
    rng = random.Random(seed)
    written = 0
    buffer: list[bytes] = []
    size = 0
    with path.open("wb") as handle:
        head = b'{"system_prompt":' + orjson.dumps(SYSTEM_PROMPT) + b',"messages_list":['
        buffer.append(head)
        for index in range(count):
            item = orjson.dumps([{"role": "user", "content": message(rng, index)}])
            if index:
                buffer.append(b",")
            buffer.append(item)
            size += len(item) + 1
            if size >= WRITE_BYTES:
                chunk = b"".join(buffer)
                handle.write(chunk)
                written += len(chunk)
                buffer.clear()
                size = 0
        buffer.append(b'],"custom_id_prefix":' + orjson.dumps(CUSTOM_ID_PREFIX) + b"}\n")
        chunk = b"".join(buffer)
        handle.write(chunk)
        written += len(chunk)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", type=int, help="requests to write (N)")
    parser.add_argument("file", type=Path, help="where to write the JSON input")
    parser.add_argument("--seed", type=int, default=0, help="seed of the messages (default 0)")
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error("count must be at least 1")
    size = write_input(args.count, args.file, args.seed)
    print(f"wrote {args.count:,} requests ({size / 1e6:.1f} MB) to {args.file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
