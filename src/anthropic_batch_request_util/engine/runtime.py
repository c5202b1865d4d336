"""What every step runs with: the kinds of step, the actions a step asks for next, and the
runtime (store, API clients, settings and prices per job) a worker hands each step."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

import anthropic

from ..config import Settings, settings_from_dict
from ..cost.pricing import PriceTable, price_table_for
from ..store import Store
from ..store import jobs as job_rows

__all__ = ["Action", "ClientFactory", "Runtime", "Step"]


class Step(StrEnum):
    """The kinds of work a worker does."""

    SUBMIT = "submit_chunk"
    WATCH = "watch_batches"  #: on a job pk: one look at all of its batches in flight
    FETCH = "fetch_results"
    FINALIZE = "finalize_job"


@dataclass(frozen=True, slots=True)
class Action:
    """A step to run next, on a chunk id (or job pk for watch and finalize), after `delay`
    seconds."""

    step: Step
    target: int
    delay: float = 0.0


ClientFactory = Callable[[Settings], anthropic.Anthropic]


@dataclass
class Runtime:
    """What a worker needs to run steps: the store, a way to get API clients, its name."""

    store: Store
    client_factory: ClientFactory
    owner: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    #: queues actions at once, from inside a step: the local deployment's in-process queue.
    #: Without it (worker processes, tests) a step hands all its actions back when done.
    send: Callable[[list[Action]], None] | None = None
    #: lines up this process's creates before they ask the store for the submit lock
    create_gate: threading.Lock = field(default_factory=threading.Lock)
    #: requests in flight in this store when the API last refused a create for a full
    #: queue (None: no refusal to go by); creates that would pass it wait (submit.py)
    queue_ceiling: int | None = None
    _settings: dict[int, Settings] = field(default_factory=dict)
    _prices: dict[int, PriceTable] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def settings_for(self, job_pk: int) -> Settings:
        """The settings a job was created with (cached; they never change for a job)."""
        with self._lock:
            return self._settings_unlocked(job_pk)

    def _settings_unlocked(self, job_pk: int) -> Settings:
        if job_pk not in self._settings:
            with self.store.begin() as conn:
                job = job_rows.get_job_by_pk(conn, job_pk)
            self._settings[job_pk] = settings_from_dict(job.settings)
        return self._settings[job_pk]

    def prices_for(self, job_pk: int) -> PriceTable:
        """The price table of a job's settings (cached per job)."""
        with self._lock:
            if job_pk not in self._prices:
                pricing_file = self._settings_unlocked(job_pk).pricing_file
                self._prices[job_pk] = price_table_for(pricing_file)
            return self._prices[job_pk]

    def client(self, job_pk: int) -> anthropic.Anthropic:
        return self.client_factory(self.settings_for(job_pk))

    def worker_name(self) -> str:
        return f"{self.owner}:{threading.get_ident()}"
