"""Everything the emulator remembers: batches, submissions, the prompt cache, statistics.

One lock guards it all. Work that needs no shared state (parsing a create body, working
out each reply) is done outside it.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Mapping
from typing import Any

from .batches import Batch, RowKind, RowPacker, Rows
from .config import EmulatorConfig
from .faults import Fault, FaultSet
from .limits import Limits
from .processing import Job, Worker, gc_paused
from .replies import Prepared, prepare
from .usage import InputUsage, Prompt, PromptCache
from .validate import batch_requests, parse_object
from .wire import ApiFailure, ErrorType, ProcessingStatus, invalid, new_id

#: the row outcome each row fault gives
FAULT_KINDS = {
    Fault.ROW_API_ERROR: RowKind.API_ERROR,
    Fault.ROW_OVERLOADED: RowKind.OVERLOADED,
    Fault.ROW_INVALID: RowKind.INVALID,
    Fault.ROW_EXPIRED: RowKind.EXPIRED,
}


class EmulatorState:
    """The emulator's memory, safe to use from many handler threads."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.lock = threading.Lock()
        self.faults = FaultSet(config.faults, config.seed)
        self.limits = Limits(config)
        self.worker = Worker(self._process, "abr-emulator-batches")
        self.generation = 0  #: bumped by a reset, so that a job queued before it is dropped
        self._forget()

    def _forget(self) -> None:
        self.generation += 1
        self.batches: dict[str, Batch] = {}  #: live batches, oldest first
        self.seq_of: dict[str, int] = {}  #: creation order of every batch ever made
        #: custom_id (UTF-8, copied out of the parsed body so that the parser's memory can
        #: be given back) → times submitted in a batch
        self.submissions: dict[bytes, int] = {}
        self.resubmitted: dict[str, int] = {}  #: the custom_ids submitted more than once
        self.max_submissions = 0
        self.requests_submitted = 0
        self.cache = PromptCache(self.config.min_cache_tokens)

    def reset(self) -> None:
        """Forget every batch, submission, cache entry and count; faults and limits go back
        to the config's."""
        with self.lock:
            self._forget()
            self.faults = FaultSet(self.config.faults, self.config.seed)
            self.limits = Limits(self.config)

    # -- batches ---------------------------------------------------------------------------

    def create_batch(self, body: bytes, version: str) -> Batch:
        """Register a batch from a create body (a 400 if its envelope is wrong); its
        requests are worked out in the background (see `processing`)."""
        with self.worker.slot() as submit:
            with gc_paused():
                requests = batch_requests(parse_object(body), self.config.max_requests_per_batch)
            del body
            with self.lock:
                self._check_queue(len(requests))
                batch = self._register(len(requests))
                submit(Job(batch, requests, version, self.generation))
        return batch

    def _check_queue(self, size: int) -> None:
        """A 429 when this batch would take the queued requests over their limit."""
        limit = self.limits["queued_requests_limit"]
        if limit is None:
            return
        queued = self._queued(time.time())
        if queued + size > limit:
            raise self.limits.refuse_queued(queued, size, self.config.retry_after)

    def _queued(self, now: float) -> int:
        """Requests in batches still processing (in_progress or canceling)."""
        ended = ProcessingStatus.ENDED
        return sum(b.size for b in self.batches.values() if b.status(now) is not ended)

    def _register(self, size: int) -> Batch:
        config, now, seq = self.config, time.time(), len(self.seq_of)
        shuffle_seed = config.seed * 1_000_003 + seq if config.shuffle_results else None
        batch = Batch(
            new_id("msgbatch"), seq, size, now, config.processing_seconds,
            now + config.expire_after_seconds, config.cancel_seconds, shuffle_seed,
        )  # fmt: skip
        self.batches[batch.id] = batch
        self.seq_of[batch.id] = seq
        return batch

    def _process(self, job: Job) -> None:
        """Work out a batch's requests (on the worker thread) and store its rows."""
        requests, job.requests = job.requests or [], None
        try:
            prepared = [prepare(custom_id, params, job.version) for custom_id, params in requests]
        except Exception as error:  # a bug: fail every request rather than hang the batch
            traceback.print_exc()
            prepared = [
                Prepared(custom_id, f"emulator error: {error}") for custom_id, _ in requests
            ]
        del requests  # the parsed body: gone before the rows are packed, to keep the peak low
        with self.lock:
            if job.generation == self.generation:
                job.batch.finish(self._pack(prepared), time.time())

    def _pack(self, prepared: list[Prepared]) -> Rows:
        packer, clock = RowPacker(), time.monotonic()
        row_faults = self.faults.any_row_faults()  # no draw needed when none can fire
        for request in prepared:
            custom_id = request.custom_id.encode()
            kind = self._outcome(request, self._count_submission(custom_id), row_faults)
            packer.add(kind, custom_id, request, self._cache_use(kind, request.prompt, clock))
        return packer.finish()

    def close(self) -> None:
        """Stop the background worker (after the jobs queued)."""
        self.worker.close()

    def _count_submission(self, custom_id: bytes) -> int:
        prior = self.submissions.get(custom_id, 0)
        count = prior + 1
        self.submissions[custom_id] = count
        self.requests_submitted += 1
        if count > 1:
            self.resubmitted[custom_id.decode()] = count
        self.max_submissions = max(self.max_submissions, count)
        return prior

    def _outcome(self, request: Prepared, prior: int, row_faults: bool) -> RowKind:
        if request.error is not None:
            return RowKind.INVALID
        fault = self.faults.draw_row(request.custom_id, prior) if row_faults else None
        return RowKind.SUCCEEDED if fault is None else FAULT_KINDS[fault]

    def _cache_use(self, kind: RowKind, prompt: Prompt | None, clock: float) -> InputUsage | None:
        if kind is not RowKind.SUCCEEDED or prompt is None:
            return None  # only a request that is answered reads or writes the cache
        return self.cache.account(prompt, clock)

    def account_prompt(self, prompt: Prompt) -> InputUsage:
        """The cache use of a Messages request answered now."""
        with self.lock:
            return self.cache.account(prompt, time.monotonic())

    def batch(self, batch_id: str) -> Batch:
        """The live batch with this id, or a 404."""
        found = self.batches.get(batch_id)
        if found is None:
            raise ApiFailure(ErrorType.NOT_FOUND, f"No message batch with id '{batch_id}'")
        return found

    def visible_batch(self, batch_id: str) -> Batch:
        """The batch, unless it was created less than `not_found_after_create_s` ago: then
        a 404, as the API sometimes answers right after a create."""
        batch = self.batch(batch_id)
        if time.time() - batch.created_at < self.limits["not_found_after_create_s"]:
            self.limits.count_hidden()
            raise ApiFailure(ErrorType.NOT_FOUND, f"No message batch with id '{batch_id}'")
        return batch

    def list_batches(
        self, limit: int, after_id: str | None, before_id: str | None
    ) -> tuple[list[Batch], bool]:
        """A page of batches, newest first, and whether more lie in the page direction."""
        with self.lock:
            after = self._cursor("after_id", after_id)
            before = self._cursor("before_id", before_id)
            newest_first = reversed(self.batches.values())
            matching = [b for b in newest_first if (after is None or b.seq < after)]
            matching = [b for b in matching if (before is None or b.seq > before)]
        if before is not None and after is None:
            return matching[-limit:], len(matching) > limit
        return matching[:limit], len(matching) > limit

    def _cursor(self, name: str, batch_id: str | None) -> int | None:
        if batch_id is None:
            return None
        if batch_id not in self.seq_of:
            raise invalid(f"{name}: No message batch with id '{batch_id}'")
        return self.seq_of[batch_id]

    def cancel(self, batch_id: str) -> Batch:
        """Start canceling a batch; a batch already canceling is left as it is."""
        with self.lock:
            batch = self.batch(batch_id)
            now = time.time()
            status = batch.status(now)
            if status is ProcessingStatus.ENDED:
                raise invalid(f"Message batch '{batch_id}' has already ended; cannot cancel it")
            if status is ProcessingStatus.IN_PROGRESS:
                batch.cancel_at = now
            return batch

    def delete(self, batch_id: str) -> None:
        """Forget an ended batch; a 400 while it is still processing."""
        with self.lock:
            batch = self.batch(batch_id)
            status = batch.status(time.time())
            if status is not ProcessingStatus.ENDED:
                raise invalid(
                    f"Message batch '{batch_id}' is {status.value}; batches can only be "
                    "deleted once they have ended (cancel it first)"
                )
            del self.batches[batch_id]

    def ended_batch(self, batch_id: str) -> Batch:
        """The batch, once it has ended; a 400 before."""
        with self.lock:
            batch = self.visible_batch(batch_id)
            if batch.status(time.time()) is not ProcessingStatus.ENDED:
                raise invalid(
                    f"Message batch '{batch_id}' has not ended yet; results are available "
                    "once processing_status is 'ended'"
                )
            return batch

    def expire(self, batch_id: str | None = None) -> list[str]:
        """Make unfinished batches (all, or just this one) reach `expires_at` now."""
        with self.lock:
            now = time.time()
            expiring = self._unfinished(batch_id, now)
            for batch in expiring:
                batch.expires_at = now
            return [batch.id for batch in expiring]

    def finish(self, batch_id: str | None = None) -> list[str]:
        """Make unfinished batches (all, or just this one) finish processing now."""
        with self.lock:
            now = time.time()
            finishing = self._unfinished(batch_id, now)
            for batch in finishing:
                batch.processing_s = min(batch.processing_s, now - batch.created_at)
            return [batch.id for batch in finishing]

    def _unfinished(self, batch_id: str | None, now: float) -> list[Batch]:
        targets = [self.batch(batch_id)] if batch_id else list(self.batches.values())
        return [batch for batch in targets if batch.status(now) is not ProcessingStatus.ENDED]

    # -- statistics ------------------------------------------------------------------------

    def stats(self, submissions: bool = False) -> dict[str, Any]:
        """What `GET /_admin/stats` returns, once every accepted batch has been counted."""
        self.worker.wait_idle()
        with self.lock:
            now = time.time()
            by_status = dict.fromkeys((s.value for s in ProcessingStatus), 0)
            for batch in self.batches.values():
                by_status[batch.status(now).value] += 1
            report: dict[str, Any] = {
                "batches_created": len(self.seq_of),
                "requests_submitted": self.requests_submitted,
                "distinct_custom_ids": len(self.submissions),
                "max_submissions": self.max_submissions,
                "submissions_over_1": dict(self.resubmitted),
                "faults": self.faults.snapshot(),
                "http_faults_injected": self.faults.http_counts(),
                "row_faults_injected": self.faults.row_counts(),
                "batches_by_status": by_status,
                "queued_requests": self._queued(now),
                "limits": self.limits.snapshot(),
                **self.limits.traffic(self.faults.http_counts()[Fault.HTTP_429]),
            }
            if submissions:
                report["submissions"] = {k.decode(): n for k, n in self.submissions.items()}
            return report

    def set_faults(self, fractions: Mapping[str, float]) -> dict[str, float]:
        """Change some fault fractions; return them all."""
        return self.faults.update(fractions)

    def set_limits(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Change some limits; return them all."""
        return self.limits.update(values)


def request_id() -> str:
    """A fresh `request-id`."""
    return new_id("req")
