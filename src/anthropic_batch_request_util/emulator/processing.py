"""Working out a new batch's requests in the background, as the API validates them.

A create answers as soon as the batch envelope is checked and the batch is registered;
one worker thread (for all batches, in creation order) then validates each request's
params, works out its reply, usage and outcome, and packs the rows. A batch cannot end
before its rows are packed.

Only one parsed create body is alive at a time: a create waits for the `slot` before
parsing (and before reading a large body), and the worker gives it back when the job is
done. That keeps memory flat when clients send many large batches back to back.

Submissions are counted, row faults drawn and the prompt cache touched when the rows are
packed, in creation order; `stats` waits for the worker first, so it is never behind.
"""

from __future__ import annotations

import gc
import queue
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from .batches import Batch


@dataclass
class Job:
    """A registered batch whose requests still have to be worked out."""

    batch: Batch
    requests: list[tuple[str, Any]] | None  #: (custom_id, params), dropped once prepared
    version: str  #: the create's anthropic-version
    generation: int  #: the state's generation at create (a reset drops the job)


class Worker:
    """One daemon thread running jobs in order, holding at most one parsed body."""

    def __init__(self, run: Callable[[Job], None], name: str) -> None:
        self._run = run
        self._name = name
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._slot = threading.Semaphore(1)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @contextmanager
    def slot(self) -> Iterator[Callable[[Job], None]]:
        """Hold the parse slot; call the yielded `submit(job)` to hand it to the worker."""
        self._slot.acquire()
        submitted = False

        def submit(job: Job) -> None:
            nonlocal submitted
            self._start()
            self._jobs.put(job)
            submitted = True

        try:
            yield submit
        finally:
            if not submitted:
                self._slot.release()

    def wait_idle(self) -> None:
        """Wait until no job is queued or running."""
        with self._slot:
            pass

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                with gc_paused():
                    self._run(job)
            except Exception:  # keep serving; the traceback says what went wrong
                traceback.print_exc()
            finally:
                del job
                self._slot.release()

    def close(self) -> None:
        """Finish the queued jobs and stop the thread."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._jobs.put(None)
            thread.join()


_gc_lock = threading.Lock()
_gc_pausers = 0  #: code paths running with the cyclic garbage collector paused
_gc_was_enabled = True


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while handling a big body: otherwise the collector rescans the
    parsed requests (which hold no cycles) over and over, doubling the time taken."""
    global _gc_pausers, _gc_was_enabled
    with _gc_lock:
        if _gc_pausers == 0:
            _gc_was_enabled = gc.isenabled()
        _gc_pausers += 1
        gc.disable()
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pausers -= 1
            if _gc_pausers == 0 and _gc_was_enabled:
                gc.enable()
