"""A helper process for CPU-bound work that would otherwise share one core with everything
else: reading a results file into answers and sorting its lines into segments
(answers.read_answers), and reading a run's input into the store (ingest.ingest_at).

A worker's threads share one core (Python runs one thread at a time); storing results is
mostly this reading, which runs on another core beside them while they create, watch and
write. A run reads its input there while it imports the SDK and Celery here.

The helper is a plain child process (`python -m` this module) fed over its stdin and
stdout, not `multiprocessing`, which would import a user's own script again in it. It
takes paths and plain values and gives back the same, so a call is cheap; it ends when its
parent does (its stdin closes). When it cannot be started, or ends mid-call, the work runs
in this process: the same function, only on the shared core. Ctrl-C here drops the call
there (the helper is killed: an ingest rolls back, as it would here).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import pickle
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import IO, Any

from .memory import give_back_freed, give_back_large_buffers

__all__ = ["Helper", "helper"]

log = logging.getLogger(__name__)

_SIZE_BYTES = 8  #: bytes of the size before each message


def _calls() -> dict[str, Callable[..., Any]]:
    """What the helper runs, by name: nothing else is accepted."""
    from .answers import read_answers
    from .ingest import ingest_at

    return {"ingest_at": ingest_at, "read_answers": read_answers}


class Helper:
    """One helper process, started on first use (or by `start`), one call at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._usable = True  #: False once a helper failed before answering anything
        self._answered = 0

    def start(self) -> None:
        """Start the helper now, so that its imports are done before the first call."""
        with self._lock:
            self._running()

    def call(self, name: str, *args: Any) -> Any:
        """`name`(*args) in the helper process, or here when it is not there."""
        with self._lock:
            proc = self._running()
            if proc is not None:
                try:
                    return self._ask(proc, name, args)
                except _Lost as lost:
                    self._lost(proc, lost)
        return _calls()[name](*args)

    def close(self) -> None:
        """End the helper process (it ends with this process otherwise)."""
        with self._lock:
            proc, self._proc = self._proc, None
            if proc is not None:
                _discard(proc)

    def _running(self) -> subprocess.Popen[bytes] | None:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        if self._proc is not None:
            self._drop(self._proc)
        if not self._usable or not sys.executable:
            return None
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", __name__],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C is for the parent; it ends us by closing stdin
            )
        except OSError as error:
            log.warning("no helper process (%s): its work runs in this process", error)
            self._usable = False
        return self._proc

    def _drop(self, proc: subprocess.Popen[bytes]) -> None:
        """End `proc` (at work or not) and forget it: the next call starts another."""
        proc.kill()
        _discard(proc)
        self._proc = None

    def _ask(self, proc: subprocess.Popen[bytes], name: str, args: tuple[Any, ...]) -> Any:
        assert proc.stdin is not None and proc.stdout is not None
        try:
            call = (name, args, _cwd())  # relative paths and URLs mean the same there
            _send(proc.stdin, pickle.dumps(call, pickle.HIGHEST_PROTOCOL))
            reply = _receive(proc.stdout)
        except (OSError, EOFError) as error:
            raise _Lost(str(error) or type(error).__name__) from error
        except BaseException:  # Ctrl-C mid-call: the call is dropped, as it would be here
            self._drop(proc)
            raise
        try:
            ok, value, records = pickle.loads(reply)
        except Exception as error:  # e.g. an error class that cannot be rebuilt
            raise RuntimeError(f"the helper's answer cannot be read: {error}") from error
        self._answered += 1
        for logger, level, message in records:
            logging.getLogger(logger).log(level, "%s", message)
        if not ok:
            raise value
        return value

    def _lost(self, proc: subprocess.Popen[bytes], lost: _Lost) -> None:
        self._drop(proc)
        if not self._answered:  # it never worked: it will not start to
            self._usable = False
            log.warning(
                "the helper process ended (exit code %s): its work runs in this process",
                proc.returncode,
            )
        else:
            log.warning("the helper process ended (%s): this call runs here", lost)


def _cwd() -> str | None:
    try:
        return os.getcwd()
    except OSError:  # removed since: relative paths mean nothing anyway
        return None


def _discard(proc: subprocess.Popen[bytes]) -> None:
    """Close a helper's pipes (it ends when its stdin closes) and wait for it to end."""
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            with contextlib.suppress(OSError):  # a broken pipe: it has ended already
                stream.close()
    proc.wait()


class _Lost(Exception):
    """The helper process ended or stopped answering."""


def _send(stream: IO[bytes], data: bytes) -> None:
    stream.write(len(data).to_bytes(_SIZE_BYTES, "little"))
    stream.write(data)
    stream.flush()


def _receive(stream: IO[bytes]) -> bytes:
    head = stream.read(_SIZE_BYTES)
    if len(head) < _SIZE_BYTES:
        raise EOFError("the helper process ended")
    size = int.from_bytes(head, "little")
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("the helper process ended mid-answer")
    return data


class _Records(logging.Handler):
    """The log records of one call, sent back to the parent to be logged there."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[tuple[str, int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.name, record.levelno, record.getMessage()))


def _serve(requests: IO[bytes], replies: IO[bytes]) -> None:
    give_back_large_buffers()
    calls = _calls()
    records = _Records()
    root = logging.getLogger()
    root.addHandler(records)
    root.setLevel(logging.INFO)
    while True:
        try:
            name, args, cwd = pickle.loads(_receive(requests))
        except EOFError:
            return  # the parent has ended
        records.records.clear()
        try:
            if cwd is not None:
                os.chdir(cwd)
            ok, value = True, calls[name](*args)
        except Exception as error:  # every error goes back to the caller
            ok, value = False, error
        try:
            data = pickle.dumps((ok, value, records.records), pickle.HIGHEST_PROTOCOL)
        except Exception as error:  # an answer that cannot be pickled
            said = value if not ok else error
            failure = RuntimeError(f"{type(said).__name__}: {said}")
            data = pickle.dumps((False, failure, records.records), pickle.HIGHEST_PROTOCOL)
        _send(replies, data)
        del args, value, data
        give_back_freed()  # the call's buffers and parsed rows, while the caller goes on


helper = Helper()  #: this process's helper
atexit.register(helper.close)

if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _serve(sys.stdin.buffer, sys.stdout.buffer)
