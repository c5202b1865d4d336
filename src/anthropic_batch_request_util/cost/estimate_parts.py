"""Pieces of an estimate: calibrating the offline count on a sample, and the requests that
share a cached prefix.

Calibration (`Calibration`): requests counted by the API give pairs (x = the offline
approximation, y = the API's count). The rest of a model's requests are estimated as
``R * x`` with the ratio ``R = sum(y) / sum(x)`` of the sample. The uncertainty is the
usual one of a ratio estimator of a total, at about 95% confidence::

    margin = Z_95 * N * sqrt((1 - n / N) * s2 / n),   s2 = sum((y - R x)^2) / (n - 1)

with N the model's requests and n those counted. It assumes the sample is random, as
`abr estimate` draws it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Final

from .prompt_shape import PromptShape

__all__ = ["CacheGroup", "Calibration", "PrefixGroups"]

Z_95: Final = 1.96  #: standard normal quantile of a two-sided 95% interval
GROUP_IDS_SHOWN: Final = 5  #: custom_ids listed per shared prefix
GROUPS_SHOWN: Final = 20  #: shared prefixes listed, the most shared first
#: distinct prefixes followed for the report; past it new ones are left out of the list
MAX_GROUPS: Final = 100_000


@dataclass
class Calibration:
    """Sums over the requests the API counted, for the ratio estimator (module doc)."""

    n: int = 0
    sum_x: int = 0
    sum_y: int = 0
    sum_xx: int = 0
    sum_xy: int = 0
    sum_yy: int = 0

    def add(self, approximate: int, counted: int) -> None:
        """One request's offline approximation and the API's count."""
        self.n += 1
        self.sum_x += approximate
        self.sum_y += counted
        self.sum_xx += approximate * approximate
        self.sum_xy += approximate * counted
        self.sum_yy += counted * counted

    def merged(self, other: Calibration) -> Calibration:
        """Both samples together."""
        names = ("n", "sum_x", "sum_y", "sum_xx", "sum_xy", "sum_yy")
        return Calibration(*(getattr(self, k) + getattr(other, k) for k in names))

    @property
    def ratio(self) -> float:
        """API tokens per approximate token; 1 with no sample."""
        return self.sum_y / self.sum_x if self.sum_x else 1.0

    def margin(self, population: int, counted: int) -> int:
        """Half the ~95% interval of a total over `population` requests of which
        `counted` were counted by the API, in tokens (this sample's spread)."""
        n = max(counted, 1)
        if n >= population or self.n < 2:
            return 0
        r = self.ratio
        residual = self.sum_yy - 2 * r * self.sum_xy + r * r * self.sum_xx
        s2 = max(0.0, residual) / (self.n - 1)
        return math.ceil(Z_95 * population * math.sqrt((1 - n / population) * s2 / n))


@dataclass(frozen=True)
class CacheGroup:
    """Requests whose longest cacheable prefix is the same."""

    model: str
    ttl: str
    prefix_tokens: int  #: approximate
    requests: int
    custom_ids: list[str]  #: the first few, in file order


@dataclass
class _Group:
    model: str
    ttl: str
    prefix_tokens: int
    requests: int = 0
    custom_ids: list[str] = field(default_factory=list)


class PrefixGroups:
    """Which requests share a cached prefix: grouped by their longest prefix."""

    def __init__(self, limit: int = MAX_GROUPS) -> None:
        self._groups: dict[bytes, _Group] = {}
        self._limit = limit
        self.requests_with_prefix = 0  #: requests with a cacheable prefix
        self.untracked = 0  #: of those, requests left out once `limit` prefixes were seen

    def add(self, custom_id: str, model: str, shape: PromptShape) -> None:
        """Note one request's longest prefix, if it has one."""
        if not shape.prefixes:
            return
        self.requests_with_prefix += 1
        last = shape.prefixes[-1]
        group = self._groups.get(last.key)
        if group is None:
            if len(self._groups) >= self._limit:
                self.untracked += 1
                return
            group = self._groups[last.key] = _Group(model, last.ttl, last.tokens)
        group.requests += 1
        if len(group.custom_ids) < GROUP_IDS_SHOWN:
            group.custom_ids.append(custom_id)

    @property
    def prefixes(self) -> int:
        """Distinct longest prefixes followed."""
        return len(self._groups)

    @property
    def requests_sharing(self) -> int:
        """Requests whose longest prefix another request has too."""
        return sum(g.requests for g in self._groups.values() if g.requests > 1)

    def shared(self) -> list[CacheGroup]:
        """The prefixes more than one request has, the most shared first (at most a few)."""
        found = [g for g in self._groups.values() if g.requests > 1]
        found.sort(key=lambda g: -g.requests)
        return [
            CacheGroup(g.model, g.ttl, g.prefix_tokens, g.requests, list(g.custom_ids))
            for g in found[:GROUPS_SHOWN]
        ]
