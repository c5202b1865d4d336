"""Requests from code rather than a file: any iterable of ``{"custom_id": ..., "params":
{...}}`` dicts or ``(custom_id, params)`` pairs, or the original format as a dict.

Read one item at a time, so a generator of a million requests never sits in memory whole.
Each item is checked as a JSONL line is, with the same messages, located by its position
(``requests[3]: params.messages: must be a non-empty list``); the problems are raised as one
`InputError` after the valid requests have been yielded, as `read_requests` does. The
caller's dicts are not changed: the settings' defaults go into a copy of ``params``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from ..errors import InputError
from .checks import Problems, Request, RequestDefaults
from .jsonl import item_request
from .original import read_original_object

__all__ = ["ITERABLE_LABEL", "NO_ITEMS", "read_iterable", "read_mapping"]

ITERABLE_LABEL = "requests"  #: how problem messages name the iterable ("requests[3]: ...")
MAX_PROBLEMS = 50  #: problems collected before reading stops, as for files
PAIR_LENGTH = 2  #: a (custom_id, params) pair
NO_ITEMS = "no requests: the iterable is empty"
_NOT_AN_ITEM = 'must be a {"custom_id": ..., "params": {...}} dict or a (custom_id, params) pair'


def read_iterable(
    items: Iterable[object], defaults: RequestDefaults, *, max_problems: int = MAX_PROBLEMS
) -> Iterator[Request]:
    """Yield the requests of `items` in order, then raise `InputError` if any was wrong."""
    problems = Problems(max_problems)
    index = -1
    iterator = iter(items)
    for index, item in enumerate(iterator):
        found = _item(index, item, defaults)
        if isinstance(found, Request):
            yield found
            continue
        problems.items.extend(f"{ITERABLE_LABEL}[{index}]: {problem}" for problem in found)
        if problems.full:
            problems.stopped = next(iterator, _END) is not _END
            break
    if index < 0:
        problems.items.append(NO_ITEMS)
    if problems.items:
        raise InputError(problems.report())


def read_mapping(
    data: Mapping[str, Any], defaults: RequestDefaults, *, max_problems: int = MAX_PROBLEMS
) -> Iterator[Request]:
    """Yield the requests of the original format given as a dict, then raise `InputError`
    if any was wrong (with the file's messages: ``messages_list[2]: ...``)."""
    problems = Problems(max_problems)
    yield from read_original_object(data, defaults, problems)
    if problems.items:
        raise InputError(problems.report())


_END = object()


def _item(index: int, item: object, defaults: RequestDefaults) -> Request | list[str]:
    """The request one item makes, or its problems."""
    if isinstance(item, Mapping):
        copy = dict(item)
    elif isinstance(item, tuple | list) and len(item) == PAIR_LENGTH:
        copy = {"custom_id": item[0], "params": item[1]}
    else:
        return [_NOT_AN_ITEM]
    if isinstance(copy.get("params"), Mapping):
        copy["params"] = dict(copy["params"])
    return item_request(index, copy, defaults)
