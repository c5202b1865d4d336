"""Reading an input file: tell its format, then yield its requests in input order.

Two formats are read:

* ``original`` — the original tool's single JSON object::

      {"system_prompt": "...", "messages_list": [[{"role": "user", "content": "..."}], ...],
       "custom_id_prefix": "example_batch"}

  Request ``i`` gets the custom id ``f"{custom_id_prefix}_{i}"`` (prefix ``request`` when
  absent) and params built from the settings (model, max_tokens, temperature) and the file.
* ``jsonl`` — native batch requests, one ``{"custom_id": ..., "params": {...}}`` per line.
  ``model`` and ``max_tokens`` come from the settings when a line leaves them out, and
  ``temperature`` too when the settings name one; everything else is sent as written.

Both are read incrementally (the original format with ijson's C backend, JSONL line by line),
so memory does not grow with the file. Every problem is collected with its location, up to
a limit, and raised as one `InputError` after the valid requests have been yielded: the caller
stores requests as they come and rolls back on the error.

Custom ids are *not* checked for uniqueness here: doing so would hold every id in memory.
The engine checks it in the job store instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import orjson

from ..errors import InputError
from .checks import InputFormat, Problems, Request, RequestDefaults, check_file, open_input
from .jsonl import JSONL_KEYS, read_jsonl
from .original import read_original

__all__ = ["detect_format", "read_requests"]

SNIFF_BYTES = 1024 * 1024  #: bytes of the first line looked at to tell the formats apart
_JSONL_SUFFIXES = frozenset({".jsonl", ".ndjson"})
#: a first line too long to load still shows its format by its first key
_JSONL_START = re.compile(rb'\s*\{\s*"(?:custom_id|params)"\s*:')


def detect_format(path: Path) -> InputFormat:
    """Tell the format of `path`: by its suffix, else by its first non-blank line.

    ``.jsonl``/``.ndjson`` are JSONL and ``.json`` the original format. Otherwise a first
    line that is a JSON object with a "custom_id" or "params" key means JSONL.
    """
    suffix = path.suffix.lower()
    if suffix in _JSONL_SUFFIXES:
        return InputFormat.JSONL
    if suffix == ".json":
        return InputFormat.ORIGINAL
    check_file(path)
    try:
        with open_input(path) as file:
            for line in iter(partial(file.readline, SNIFF_BYTES), b""):
                if not line.isspace():
                    return _sniff_line(line)
    except OSError as exc:
        raise InputError([f"cannot be read ({exc.strerror})"], path=str(path)) from exc
    return InputFormat.ORIGINAL


def _sniff_line(line: bytes) -> InputFormat:
    """The format whose first line looks like `line` (possibly cut at `SNIFF_BYTES`)."""
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        # Cut short or broken: a request line still starts with one of its keys.
        return InputFormat.JSONL if _JSONL_START.match(line) else InputFormat.ORIGINAL
    if isinstance(value, dict) and not JSONL_KEYS.isdisjoint(value):
        return InputFormat.JSONL
    return InputFormat.ORIGINAL


def read_requests(
    path: Path,
    defaults: RequestDefaults,
    *,
    max_problems: int = 50,
    input_format: InputFormat | None = None,
) -> Iterator[Request]:
    """Yield the requests of `path` in input order, then raise `InputError` if any was wrong.

    The format is detected unless `input_format` is given. Problems are collected, each
    with its location, until `max_problems`; reading then stops. A file without any
    request is an error too. Custom ids are not checked for uniqueness (see the module).
    """
    if max_problems < 1:
        raise ValueError(f"max_problems must be at least 1, not {max_problems}")
    fmt = input_format or detect_format(path)
    check_file(path)
    problems = Problems(max_problems)
    reader = read_jsonl if fmt is InputFormat.JSONL else read_original
    try:
        yield from reader(path, defaults, problems)
    except OSError as exc:
        raise InputError([f"cannot be read ({exc.strerror})"], path=str(path)) from exc
    if problems.items:
        raise InputError(problems.report(), path=str(path))
