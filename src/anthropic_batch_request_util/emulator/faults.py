"""Fault injection: which faults exist and how each request draws one.

Every fault is a fraction in [0, 1]. Faults of one family share a single draw and take
disjoint slices of it in the order listed, so each fires at its own fraction (while the
family's fractions sum to at most 1):

- HTTP faults: one draw per `/v1` request, from a `random.Random(seed)` in arrival order.
  `results_cut` takes a second draw of its own on every results download, and the
  stream faults (`stream_error`, `stream_cut`) one on every streamed Messages answer.
- Row faults: one draw per submitted request, a pure function of
  (seed, custom_id, how many times that custom_id was submitted before), so a resubmitted
  request gets a fresh draw and the same run twice gives the same outcomes.
"""

from __future__ import annotations

import hashlib
import random
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from enum import StrEnum


class Fault(StrEnum):
    """A fault the emulator can inject, by the name used in config, CLI and admin API."""

    HTTP_429 = "http_429"  #: 429 rate_limit_error with retry-after
    HTTP_529 = "http_529"  #: 529 overloaded_error
    HTTP_500 = "http_500"  #: 500 api_error
    DROP_BEFORE = "drop_before"  #: close the connection without doing anything
    DROP_AFTER = "drop_after"  #: do the request, then close without answering
    RESULTS_CUT = "results_cut"  #: cut the results stream mid-line
    STREAM_ERROR = "stream_error"  #: an `error` event in the middle of a streamed answer
    STREAM_CUT = "stream_cut"  #: a streamed answer cut mid-event (the connection closes)
    ROW_API_ERROR = "row_api_error"  #: errored row with api_error
    ROW_OVERLOADED = "row_overloaded"  #: errored row with overloaded_error
    ROW_INVALID = "row_invalid"  #: errored row with invalid_request_error
    ROW_EXPIRED = "row_expired"  #: expired row


#: faults drawn once per /v1 request, in slice order
HTTP_FAULTS = (Fault.HTTP_429, Fault.HTTP_529, Fault.HTTP_500, Fault.DROP_BEFORE, Fault.DROP_AFTER)
#: faults drawn once per streamed Messages answer, in slice order
STREAM_FAULTS = (Fault.STREAM_ERROR, Fault.STREAM_CUT)
#: faults drawn once per submitted batch request, in slice order
ROW_FAULTS = (Fault.ROW_API_ERROR, Fault.ROW_OVERLOADED, Fault.ROW_INVALID, Fault.ROW_EXPIRED)
FAULTS = tuple(Fault)
_TWO_64 = float(2**64)


def check_faults(fractions: Mapping[str, float]) -> dict[str, float]:
    """The fractions as a checked dict; ValueError names an unknown fault or a bad fraction."""
    checked: dict[str, float] = {}
    for name, value in fractions.items():
        if name not in FAULTS:
            raise ValueError(f"unknown fault {name!r} (known: {', '.join(FAULTS)})")
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise ValueError(f"fault {name} must be a fraction in [0, 1], not {value!r}")
        checked[str(name)] = float(value)
    return checked


def pick(draw: float, family: Sequence[Fault], fractions: Mapping[str, float]) -> Fault | None:
    """The fault whose slice of [0, 1) holds `draw`, or None."""
    edge = 0.0
    for fault in family:
        edge += fractions[fault]
        if draw < edge:
            return fault
    return None


def row_draw(seed: int, custom_id: str, prior_submissions: int) -> float:
    """A uniform number in [0, 1) fixed by seed, custom_id and earlier submissions."""
    key = f"{seed}\x00{custom_id}\x00{prior_submissions}".encode()
    digest = hashlib.blake2b(key, digest_size=8).digest()
    return int.from_bytes(digest, "big") / _TWO_64


class FaultSet:
    """The current fault fractions, the seeded HTTP draw and what has been injected."""

    def __init__(self, fractions: Mapping[str, float], seed: int) -> None:
        self.seed = seed
        self.fractions = dict.fromkeys(map(str, FAULTS), 0.0) | check_faults(fractions)
        self.http_injected: Counter[str] = Counter()
        self.row_injected: Counter[str] = Counter()  #: guarded by the state lock
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def update(self, changes: Mapping[str, float]) -> dict[str, float]:
        """Set the given fractions (others keep their value); return the whole set."""
        checked = check_faults(changes)
        with self._lock:
            self.fractions.update(checked)
            return dict(self.fractions)

    def snapshot(self) -> dict[str, float]:
        """The current fractions."""
        with self._lock:
            return dict(self.fractions)

    def draw_http(self, results_download: bool) -> tuple[Fault | None, bool]:
        """This request's HTTP fault (or None) and whether its results stream is cut."""
        with self._lock:
            fault = pick(self._rng.random(), HTTP_FAULTS, self.fractions)
            cut = results_download and self._rng.random() < self.fractions[Fault.RESULTS_CUT]
            cut = cut and fault is None
            if fault is not None or cut:
                self.http_injected[fault or Fault.RESULTS_CUT] += 1
            return fault, cut

    def draw_stream(self) -> Fault | None:
        """This streamed answer's fault (or None)."""
        with self._lock:
            fault = pick(self._rng.random(), STREAM_FAULTS, self.fractions)
            if fault is not None:
                self.http_injected[fault] += 1
            return fault

    def any_row_faults(self) -> bool:
        """Whether any row fault can fire."""
        return any(self.fractions[fault] > 0 for fault in ROW_FAULTS)

    def draw_row(self, custom_id: str, prior_submissions: int) -> Fault | None:
        """This submission's row fault (or None); the caller holds the state lock."""
        draw = row_draw(self.seed, custom_id, prior_submissions)
        fault = pick(draw, ROW_FAULTS, self.fractions)
        if fault is not None:
            self.row_injected[fault] += 1
        return fault

    def http_counts(self) -> dict[str, int]:
        """How many of each HTTP fault (and results cut) were injected."""
        with self._lock:
            return {
                fault.value: self.http_injected[fault]
                for fault in (*HTTP_FAULTS, Fault.RESULTS_CUT, *STREAM_FAULTS)
            }

    def row_counts(self) -> dict[str, int]:
        """How many of each row fault were injected; the caller holds the state lock."""
        return {fault.value: self.row_injected[fault] for fault in ROW_FAULTS}
