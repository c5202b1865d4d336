"""Worker processes for the distributed deployment: `abr worker start | debug | stop`.

A worker is a Celery worker on the threads pool (the work is waiting on HTTP, not CPU) fed
by the configured broker, with the job store at `database_url`. Every worker also runs a
reconciler: a loop that, under a store-wide lock so only one worker does it at a time,
re-queues work the store says is due but nobody has touched lately. A flushed or restarted
Redis, or a killed worker, therefore only delays a job.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from celery import signals

from ..config import Settings, database_url, logs_dir, require_api_key
from ..errors import StoreUnavailableError, UsageError
from ..store import Store
from ..store.locks import pid_alive, try_lock
from ..store.workers import beating, heartbeat_name
from . import tasks
from .checks import check_before_creating
from .logs import console_logging
from .reconcile import reconcile
from .runtime import Runtime

__all__ = [
    "WorkerProcess",
    "list_workers",
    "log_file_of",
    "run_foreground",
    "start_background",
    "stop_workers",
]

log = logging.getLogger(__name__)

RECONCILE_LOCK = "reconcile"
READY_TIMEOUT_S = 30.0  #: seconds `abr worker start` waits for the worker to say it is ready
STOP_TIMEOUT_S = 30.0  #: seconds `abr worker stop` waits before killing a worker
READY_LINE = "abr worker ready"


@dataclass(frozen=True)
class WorkerProcess:
    """A background worker this machine started: its name, pid and pid file."""

    name: str
    pid: int
    pid_file: Path


def _pid_file(settings: Settings, name: str) -> Path:
    return logs_dir(settings) / f"celery-{name}.pid"


def list_workers(settings: Settings) -> list[WorkerProcess]:
    found = []
    for pid_file in sorted(logs_dir(settings).glob("celery-*.pid")):
        text = pid_file.read_text().strip()
        if text.isdigit():
            name = pid_file.stem.removeprefix("celery-")
            found.append(WorkerProcess(name, int(text), pid_file))
    return found


class _Reconciler:
    """The loop inside each worker that re-queues stalled work from the store."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="abr-reconciler", daemon=True)

    def _loop(self) -> None:
        interval = self.settings.celery.reconcile_interval
        while not self.stop.wait(interval):
            try:
                self.run_once()
            except StoreUnavailableError as error:  # the next pass waits for it
                log.warning("reconciler: waiting for the job store (%s)", error.reason)
            except Exception:
                log.exception("reconciler pass failed")

    def run_once(self) -> None:
        rt = tasks.runtime()
        # the lock is left to expire: one pass per interval across all workers
        if try_lock(
            rt.store, RECONCILE_LOCK, rt.owner, self.settings.celery.reconcile_interval * 0.9
        ):
            tasks.enqueue(reconcile(rt, self.settings.celery.stale_after))


def run_foreground(settings: Settings, *, name: str, concurrency: int, loglevel: str) -> None:
    """`abr worker debug`: a worker in this process, logging to the console."""
    # the runtime is built from these settings (the --config/--output given), not re-read
    # from ./settings.yaml; a missing key is one line here, not a worker that never starts
    store = Store(database_url(settings))
    tasks.configure(settings, Runtime(store, tasks.client_factory(require_api_key())))
    console_logging()
    reconciler = _Reconciler(settings)
    alive = ExitStack()

    def ready(**_: Any) -> None:
        rt = tasks.runtime()  # fail early on a missing key or an unreachable store
        gc.freeze()  # the imports' long-lived objects: not scanned again by every collection
        reconciler.thread.start()
        alive.enter_context(beating(rt.store, heartbeat_name()))
        print(f"{READY_LINE}: {name} ({concurrency} threads)", flush=True)

    def shutdown(**_: Any) -> None:
        reconciler.stop.set()
        alive.close()

    signals.worker_ready.connect(ready, weak=False)
    signals.worker_shutdown.connect(shutdown, weak=False)

    tasks.app.worker_main(
        [
            "worker",
            "--pool=threads",
            f"--concurrency={concurrency}",
            f"--hostname={name}@%h",
            f"--loglevel={loglevel}",
            "--without-gossip",
            "--without-mingle",
            "--task-events",
        ]
    )


def start_background(
    settings: Settings,
    *,
    name: str,
    concurrency: int,
    config: Path | None = None,
    output: Path | None = None,
) -> WorkerProcess:
    """`abr worker start`: a detached worker logging to <logs>/celery-NAME.log, with a pid
    file. `config` and `output` are the flags the settings came from: the worker is given
    them too, so it reads the same settings from any folder."""
    pid_file = _pid_file(settings, name)
    for worker in list_workers(settings):
        if worker.name == name and pid_alive(worker.pid):
            raise UsageError(
                f"worker {name!r} already runs (pid {worker.pid}); `abr worker stop` first"
            )
    require_api_key()
    check_before_creating(settings)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    log_path = log_file_of(settings, name)
    command = [sys.executable, "-m", "anthropic_batch_request_util", "worker", "debug"]
    command += ["--name", name, "--concurrency", str(concurrency)]
    command += _settings_flags(config, output)
    with log_path.open("ab") as log_file:
        start_offset = log_file.tell()
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # survives the terminal that started it
        )
    pid_file.write_text(f"{process.pid}\n")
    try:
        _wait_ready(process, log_path, start_offset)
    except UsageError:
        _stop_child(process)  # a worker that is not ready is not left running
        pid_file.unlink(missing_ok=True)
        raise
    return WorkerProcess(name, process.pid, pid_file)


def log_file_of(settings: Settings, name: str) -> Path:
    """Where the background worker `name` logs: one file per worker, so every line in it
    is that worker's."""
    return logs_dir(settings) / f"celery-{name}.log"


def _settings_flags(config: Path | None, output: Path | None) -> list[str]:
    flags = []
    if config is not None:
        flags += ["--config", str(config.resolve())]
    if output is not None:
        flags += ["--output", str(output.resolve())]
    return flags


def _wait_ready(process: subprocess.Popen[bytes], log_path: Path, start_offset: int) -> None:
    """Wait for this worker's ready line, written after `start_offset` of its log."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise UsageError(
                f"the worker exited at start (code {process.returncode}); see {log_path}"
            )
        with log_path.open("rb") as handle:
            handle.seek(start_offset)
            if READY_LINE.encode() in handle.read():
                return
        time.sleep(0.1)
    raise UsageError(
        f"the worker did not report ready in {READY_TIMEOUT_S:.0f}s and was stopped; see {log_path}"
    )


def stop_workers(settings: Settings, timeout: float = STOP_TIMEOUT_S) -> list[WorkerProcess]:
    """`abr worker stop`: warm shutdown (running steps finish), then kill what lingers."""
    stopped = []
    for worker in list_workers(settings):
        if pid_alive(worker.pid):
            _terminate(worker.pid, timeout)
            stopped.append(worker)
        worker.pid_file.unlink(missing_ok=True)
    return stopped


def _stop_child(process: subprocess.Popen[bytes]) -> None:
    """Stop a worker this process started, and reap it."""
    process.terminate()
    try:
        process.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _terminate(pid: int, timeout: float) -> None:
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        time.sleep(0.1)
    os.killpg(os.getpgid(pid), signal.SIGKILL)
