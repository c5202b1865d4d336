"""abr against the bare SDK and a plain client, same inputs, same run, alternating.

    .venv/bin/python bench/run.py                                  # N = 10k, 100k, 1M; 3 runs each
    .venv/bin/python bench/run.py --sizes 10000,100000 --repeats 3
    .venv/bin/python bench/run.py --sizes 100000,1000000 --repeats 1 --no-extras \\
        --rate-limited 100000
    .venv/bin/python bench/run.py --sizes 1000000 --repeats 1 --workers-redis
    .venv/bin/python bench/run.py --sizes 100000 --repeats 0 --profile 100000 --no-extras

What it does:

1. starts `abr emulator --processing-seconds 0.5` (`--processing-seconds`) on a free port, in
   its own process;
2. writes each input once (bench/make_input.py: original format, 100-300 character messages);
3. for each N runs, `--repeats` times each, rotating which goes first:
   - `abr`: `abr run FILE --json` with abr's default settings (fresh output directory);
   - `abr-100k`: the same with 100,000-request batches (`--abr-configs` picks these two);
   - `baseline`: bench/baseline_sdk.py, the official SDK as a user would write it;
   - `plain`: bench/plain_client.py, stdlib HTTP and orjson, no checks: the floor;
   the emulator is reset between runs so its memory and its call counts do not carry over;
   after each run its `stats()` give the API calls by endpoint and the 429s it sent;
4. checks every output: one line per request, every one succeeded (abr: in input order), so
   a fast but wrong run cannot count;
5. measures, besides: ingestion (read + validate + store, `ingest()` on a fresh SQLite
   store), the results-file write rate (`write_outputs()` on a finished job's store), and the
   poll lag (results file on disk vs the batch's `ended_at`, on an emulator whose batches
   take 1 s);
6. optionally: abr with 2 `abr worker` processes on Redis at the largest N
   (`--workers-redis`), a py-spy profile of one abr run (`--profile N`), and abr (default
   settings) at N requests on an emulator enforcing a per-minute limit on the batch
   endpoints (`--rate-limited N`, `--rate-limit CALLS/SECONDS`, default 30/10).

Wall time is from the process start to its exit (interpreter start and imports included).
Peak RSS is the larger of (a) the sum of VmRSS over the whole process tree (the process,
its children, and for the distributed mode the two workers and theirs), sampled every 20 ms
from /proc, and (b) the kernel's high-water mark of the main process (`wait4` ru_maxrss;
exact for a single process, which abr is in the local mode: its Celery worker is threads).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Self

import orjson

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from emulator_bench import cpu_name  # noqa: E402
from make_input import CUSTOM_ID_PREFIX, write_input  # noqa: E402

PYTHON = sys.executable
ABR_BIN = Path(PYTHON).parent / "abr"
ABR = [str(ABR_BIN)] if ABR_BIN.exists() else [PYTHON, "-m", "anthropic_batch_request_util"]
BASELINE = [PYTHON, str(BENCH_DIR / "baseline_sdk.py")]
PLAIN = [PYTHON, str(BENCH_DIR / "plain_client.py")]
API_KEY = "sk-ant-bench-not-a-real-key"
MB = 1024 * 1024
PAGE = os.sysconf("SC_PAGE_SIZE")
SAMPLE_S = 0.02  #: seconds between two RSS samples
DEFAULT_SIZES = "10000,100000,1000000"

#: the settings abr runs with, by name: its defaults (nothing set), and batches of the
#: API's 100,000 requests and 256 MB
ABR_CONFIGS: dict[str, dict[str, str]] = {
    "abr": {},
    "abr-100k": {
        "ABR_BATCH_CHUNK_SIZE": "100000",
        "ABR_BATCH_MAX_SIZE": "100000",
        "ABR_API_MAX_PAYLOAD_SIZE": str(256 * MB),
    },
}
#: abr polling about as often as the baseline (0.05 s, slowing to 0.25 s): the poll lag
#: measurement's "bench" polling, and the distributed runs
ABR_SETTINGS = {
    "ABR_BATCH_POLL_INTERVAL": "0.05",
    "ABR_BATCH_POLL_MAX_INTERVAL": "0.25",
}
PROCESSING_S = 0.5  #: seconds the bench emulator takes to end a batch
RATE_LIMIT = "30/10"  #: calls to the batch endpoints per window of seconds, --rate-limited
WORKER_SETTINGS = {"ABR_CELERY_WORKER_CONCURRENCY": "4"}
POLL_LAG_REQUESTS = 100
POLL_LAG_PROCESSING_S = 1.0

# Targets of issues 6 and 15
TARGET_RATIO = 0.6  #: abr (defaults) / the bare SDK, at 100k and 1M
TARGET_PLAIN_RATIO = 2.5  #: abr (defaults) / the plain client, at 100k
TARGET_RSS_MB = 300.0  #: peak RSS at 1M, any batch size
TARGET_RSS_GROWTH = 1.3
TARGET_INGEST_RPS = 100_000
TARGET_WRITE_MBPS = 50.0
TARGET_POLL_LAG_S = 2.0
VERSION = "unknown"  #: the commit measured, set by main()


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def loadavg() -> float:
    return os.getloadavg()[0]


# ---------------------------------------------------------------- processes and memory


def tree_pids(root: int) -> list[int]:
    """`root` and every descendant, from /proc/<pid>/task/<tid>/children."""
    pids, i = [root], 0
    while i < len(pids):
        pid = pids[i]
        i += 1
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/children") as handle:
                    pids.extend(int(child) for child in handle.read().split())
            except OSError:
                pass
    return pids


def rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as handle:
            return int(handle.read().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process and of its reaped children."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    # after the ")": state is field 3, so utime/stime/cutime/cstime (14-17) are [11:15]
    return sum(int(value) for value in fields[11:15]) / TICKS


class Watcher:
    """A thread that runs `_loop` for the duration of a `with` block; `_loop` ends when
    `_stop` is set."""

    def __init__(self, name: str) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def _loop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class TreeSampler(Watcher):
    """Samples the summed RSS of some process trees every SAMPLE_S seconds; keeps the peak."""

    def __init__(self, roots: Callable[[], Sequence[int]]) -> None:
        super().__init__("rss-sampler")
        self.roots = roots
        self.peak = 0
        self.samples = 0

    def _loop(self) -> None:
        while not self._stop.is_set():
            pids = {pid for root in self.roots() for pid in tree_pids(root)}
            total = sum(rss_bytes(pid) for pid in pids)
            self.peak = max(self.peak, total)
            self.samples += 1
            self._stop.wait(SAMPLE_S)


@dataclass
class Timed:
    """One measured process run."""

    wall_s: float
    returncode: int
    peak_tree_mb: float  #: sampled sum of the tree's RSS
    maxrss_mb: float  #: the kernel's high-water mark of the main process (wait4)
    started_at: float  #: time.time() at the start
    stdout: str
    stderr: str
    cpu_s: float = 0.0  #: user + system CPU seconds of the process (and of `extra_roots`)
    other_cpu_s: float = 0.0  #: CPU seconds the `watch_cpu` processes (the emulator) used

    @property
    def peak_mb(self) -> float:
        return max(self.peak_tree_mb, self.maxrss_mb)


def run_measured(
    command: Sequence[str],
    env: dict[str, str],
    cwd: Path,
    extra_roots: Sequence[int] = (),
    timeout: float = 7200,
    watch_cpu: Sequence[int] = (),
) -> Timed:
    """Run `command` to its end: wall time, peak RSS, CPU time, output."""
    out_path, err_path = cwd / "stdout.txt", cwd / "stderr.txt"
    extra_before = sum(cpu_seconds(pid) for pid in extra_roots)
    other_before = sum(cpu_seconds(pid) for pid in watch_cpu)
    with out_path.open("wb") as out, err_path.open("wb") as err:
        started_at = time.time()
        started = time.perf_counter()
        process = subprocess.Popen(command, env=env, cwd=cwd, stdout=out, stderr=err)
        roots = [process.pid, *extra_roots]
        with TreeSampler(lambda: roots) as sampler:
            deadline = time.monotonic() + timeout
            while True:
                pid, status, usage = os.wait4(process.pid, os.WNOHANG)
                if pid:
                    break
                if time.monotonic() > deadline:
                    process.kill()
                time.sleep(0.005)
            wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
    extra_cpu = sum(cpu_seconds(pid) for pid in extra_roots) - extra_before
    return Timed(
        wall_s=wall,
        returncode=process.returncode,
        peak_tree_mb=sampler.peak / MB,
        maxrss_mb=usage.ru_maxrss / 1024,
        started_at=started_at,
        stdout=out_path.read_text(errors="replace"),
        stderr=err_path.read_text(errors="replace"),
        cpu_s=usage.ru_utime + usage.ru_stime + extra_cpu,
        other_cpu_s=sum(cpu_seconds(pid) for pid in watch_cpu) - other_before,
    )


def base_env(base_url: str, **extra: str) -> dict[str, str]:
    """The environment of every run: ours, without outside ABR_*/ANTHROPIC_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ABR_", "ANTHROPIC_"))}
    env.update(ANTHROPIC_BASE_URL=base_url, ANTHROPIC_API_KEY=API_KEY, **extra)
    return env


# ---------------------------------------------------------------- the emulator


@dataclass
class EmulatorProcess:
    process: subprocess.Popen[str]
    url: str

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.url}/_admin/reset", data=b"{}", method="POST")
        with urllib.request.urlopen(request, timeout=60) as response:
            response.read()

    def batch(self, batch_id: str) -> dict[str, Any]:
        request = urllib.request.Request(
            f"{self.url}/v1/messages/batches/{batch_id}",
            headers={"x-api-key": API_KEY, "anthropic-version": "2023-06-01"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            found: dict[str, Any] = orjson.loads(response.read())
            return found

    def rss_mb(self) -> float:
        return rss_bytes(self.process.pid) / MB

    def stats(self) -> dict[str, Any]:
        """The emulator's traffic since its last reset: `calls` by endpoint, 429s sent."""
        with urllib.request.urlopen(f"{self.url}/_admin/stats", timeout=60) as response:
            found: dict[str, Any] = orjson.loads(response.read())
            return found


@contextmanager
def emulator(processing_s: float, *extra: str) -> Iterator[EmulatorProcess]:
    """`abr emulator` on a free port, in its own process; `extra` are more of its flags."""
    command = [*ABR, "emulator", "--port", "0", "--processing-seconds", str(processing_s), *extra]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert process.stdout is not None
        found = re.search(r"serving (\S+)", process.stdout.readline())
        if not found:
            raise RuntimeError("the emulator did not report its URL")
        yield EmulatorProcess(process, found.group(1))
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# ---------------------------------------------------------------- checking outputs


class Incomplete(AssertionError):
    """An output that does not hold one succeeded line per request."""


def last_json_line(text: str) -> dict[str, Any]:
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            value: dict[str, Any] = orjson.loads(line)
            return value
    raise Incomplete("no JSON summary on stdout")


def verify_abr(timed: Timed, n: int) -> dict[str, Any]:
    """abr's summary says finished with n succeeded; its results file has them in order."""
    if timed.returncode != 0:
        raise Incomplete(f"abr exited {timed.returncode}: {timed.stderr.strip()[-500:]}")
    summary = last_json_line(timed.stdout)
    counts = summary.get("counts", {})
    if summary.get("status") != "finished" or counts.get("succeeded") != n:
        raise Incomplete(f"abr summary: {summary.get('status')} {counts}")
    path = Path(summary["results_path"])
    lines = 0
    with path.open("rb") as handle:
        for index, raw in enumerate(handle):
            row = orjson.loads(raw)
            if row.get("custom_id") != f"{CUSTOM_ID_PREFIX}_{index}":
                raise Incomplete(f"line {index + 1}: custom_id {row.get('custom_id')!r}")
            if row.get("status") != "succeeded" or not row.get("text"):
                raise Incomplete(f"line {index + 1}: status {row.get('status')!r}")
            lines += 1
    if lines != n:
        raise Incomplete(f"{lines} result lines for {n} requests")
    return {"results_path": str(path), "results_bytes": path.stat().st_size}


def verify_baseline(timed: Timed, path: Path, n: int) -> dict[str, Any]:
    """One line per request, each custom_id exactly once, every result succeeded."""
    if timed.returncode != 0:
        raise Incomplete(f"baseline exited {timed.returncode}: {timed.stderr.strip()[-500:]}")
    seen = bytearray(n)
    lines = 0
    with path.open("rb") as handle:
        for raw in handle:
            row = orjson.loads(raw)
            index = int(str(row["custom_id"]).rsplit("_", 1)[1])
            result = row.get("result") or {}
            if result.get("type") != "succeeded" or not result["message"]["content"]:
                raise Incomplete(f"{row['custom_id']}: {result.get('type')!r}")
            if seen[index]:
                raise Incomplete(f"{row['custom_id']} twice")
            seen[index] = 1
            lines += 1
    if lines != n or seen.count(1) != n:
        raise Incomplete(f"{lines} result lines for {n} requests")
    return {"results_path": str(path), "results_bytes": path.stat().st_size}


# ---------------------------------------------------------------- abr's own timeline


def abr_milestones(store_path: Path, started_at: float, wall_s: float) -> dict[str, float]:
    """Seconds from the process start to each step, read from the job store."""
    with sqlite3.connect(store_path) as conn:
        created, finished = conn.execute(
            "SELECT created_at, finished_at FROM jobs ORDER BY pk DESC LIMIT 1"
        ).fetchone()
        rows = conn.execute(
            "SELECT MIN(intent_at), MAX(submitted_at), MAX(ended_at), MAX(fetched_at),"
            " SUM(fetched_at - ended_at), COUNT(*) FROM chunks"
        ).fetchone()
    first_intent, last_submitted, last_ended, last_fetched, fetch_sum, chunk_count = rows

    def rel(t: float | None) -> float:
        return round((t or 0.0) - started_at, 3)

    return {
        "job_created": rel(created),  # imports and settings done, ingest starts
        "first_create_sent": rel(first_intent),  # ingest done, the first chunk claimed
        "last_batch_created": rel(last_submitted),
        "last_batch_ended": rel(last_ended),  # as abr's poll saw it
        "last_results_stored": rel(last_fetched),
        "job_finished": rel(finished),  # results file written
        "exit": round(wall_s, 3),
        "fetch_apply_s_total": round(fetch_sum or 0.0, 3),
        "chunks": int(chunk_count),
    }


# ---------------------------------------------------------------- one run of each tool


@dataclass
class RunRecord:
    tool: str  #: abr | baseline | abr-redis
    n: int
    repeat: int
    wall_s: float
    peak_mb: float
    peak_tree_mb: float
    maxrss_mb: float
    load_before: float
    results_bytes: int = 0
    milestones: dict[str, float] = field(default_factory=dict)
    cpu_s: float = 0.0  #: CPU seconds of the tool (abr-redis: abr run + the workers)
    emulator_cpu_s: float = 0.0  #: CPU seconds the emulator used meanwhile
    calls: dict[str, int] = field(default_factory=dict)  #: API calls by endpoint
    http_429: int = 0  #: 429s the emulator sent (rate limit, queued limit, faults)

    @property
    def rps(self) -> float:
        return self.n / self.wall_s


def run_abr(
    emu: EmulatorProcess,
    input_path: Path,
    n: int,
    run_dir: Path,
    repeat: int,
    extra_env: dict[str, str] | None = None,
    extra_roots: Sequence[int] = (),
    tool: str = "abr",
    store: Path | None = None,
) -> RunRecord:
    run_dir.mkdir(parents=True)
    env = base_env(emu.url, **{**ABR_CONFIGS.get(tool, {}), **(extra_env or {})})
    load = loadavg()
    command = [*ABR, "run", str(input_path), "--json", "--output", str(run_dir / "output")]
    timed = run_measured(command, env, run_dir, extra_roots, watch_cpu=[emu.process.pid])
    checked = verify_abr(timed, n)
    store = store or run_dir / "output" / "abr.sqlite3"
    milestones = abr_milestones(store, timed.started_at, timed.wall_s) if store.exists() else {}
    record = _record(tool, n, repeat, timed, load, checked["results_bytes"], milestones)
    return _with_traffic(record, emu)


def run_script(
    tool: str, emu: EmulatorProcess, input_path: Path, n: int, run_dir: Path, repeat: int
) -> RunRecord:
    """bench/baseline_sdk.py (`baseline`) or bench/plain_client.py (`plain`)."""
    run_dir.mkdir(parents=True)
    out = run_dir / "results.jsonl"
    load = loadavg()
    command = [*(BASELINE if tool == "baseline" else PLAIN), str(input_path), str(out)]
    timed = run_measured(command, base_env(emu.url), run_dir, watch_cpu=[emu.process.pid])
    checked = verify_baseline(timed, out, n)
    record = _record(tool, n, repeat, timed, load, checked["results_bytes"], {})
    return _with_traffic(record, emu)


def _with_traffic(record: RunRecord, emu: EmulatorProcess) -> RunRecord:
    """The run's API calls by endpoint and the 429s it got, from the emulator's stats
    (reset before each run)."""
    stats = emu.stats()
    record.calls = {k: int(v) for k, v in stats.get("calls", {}).items() if v}
    record.http_429 = sum(int(v) for v in stats.get("http_429_sent", {}).values())
    return record


def _record(
    tool: str,
    n: int,
    repeat: int,
    timed: Timed,
    load: float,
    results_bytes: int,
    milestones: dict[str, float],
) -> RunRecord:
    return RunRecord(
        tool=tool,
        n=n,
        repeat=repeat,
        wall_s=timed.wall_s,
        peak_mb=timed.peak_mb,
        peak_tree_mb=timed.peak_tree_mb,
        maxrss_mb=timed.maxrss_mb,
        load_before=load,
        results_bytes=results_bytes,
        milestones=milestones,
        cpu_s=timed.cpu_s,
        emulator_cpu_s=timed.other_cpu_s,
    )


# ---------------------------------------------------------------- extras


INGEST_SCRIPT = r"""
import json, sys, time
from pathlib import Path
t0 = time.perf_counter()
from anthropic_batch_request_util.config import database_url, load_settings
from anthropic_batch_request_util.engine.ingest import ingest
from anthropic_batch_request_util.inputs import request_defaults
from anthropic_batch_request_util.inputs import read_requests
from anthropic_batch_request_util.store import Store
path, base = Path(sys.argv[1]), Path(sys.argv[2])
settings = load_settings(None, {"storage.base_dir": str(base)})
t1 = time.perf_counter()
count = sum(1 for _ in read_requests(path, request_defaults(settings)))
t2 = time.perf_counter()
with Store(database_url(settings)) as store:
    t3 = time.perf_counter()
    found = ingest(store, path, settings, base)
    t4 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "read_validate_s": t2 - t1, "read_count": count,
                  "ingest_s": t4 - t3, "ingested": found.total}))
"""

WRITE_SCRIPT = r"""
import json, sys, time
from pathlib import Path
from anthropic_batch_request_util.store import jobs as job_store
from anthropic_batch_request_util.output import results_path, write_outputs
from anthropic_batch_request_util.store import Store
with Store("sqlite:///" + sys.argv[1]) as store:
    with store.begin() as conn:
        job = job_store.latest_job(conn)
    t0 = time.perf_counter()
    write_outputs(store, job)
    seconds = time.perf_counter() - t0
print(json.dumps({"seconds": seconds, "bytes": results_path(job).stat().st_size,
                  "requests": job.total_requests}))
"""


def measure_ingest(input_path: Path, n: int, work: Path, repeats: int) -> dict[str, Any]:
    """`ingest()` (read + validate + store) on a fresh SQLite store, in a fresh process."""
    runs = []
    for repeat in range(repeats):
        base = work / f"ingest-{n}-{repeat}"
        base.mkdir(parents=True)
        env = base_env("http://127.0.0.1:9", **ABR_SETTINGS)
        done = subprocess.run(
            [PYTHON, "-c", INGEST_SCRIPT, str(input_path), str(base)],
            env=env,
            cwd=base,
            capture_output=True,
            text=True,
            check=True,
        )
        found = orjson.loads(done.stdout.strip().splitlines()[-1])
        if found["ingested"] != n or found["read_count"] != n:
            raise Incomplete(f"ingest stored {found['ingested']} of {n}")
        runs.append(found)
        shutil.rmtree(base, ignore_errors=True)
    ingest_s = statistics.median(r["ingest_s"] for r in runs)
    read_s = statistics.median(r["read_validate_s"] for r in runs)
    return {
        "n": n,
        "ingest_s": round(ingest_s, 3),
        "ingest_rps": round(n / ingest_s),
        "read_validate_s": round(read_s, 3),
        "read_validate_rps": round(n / read_s),
        "runs": runs,
    }


def measure_write(store_path: Path, cwd: Path, repeats: int) -> dict[str, Any]:
    """`write_outputs()` again on a finished job, `repeats` times in fresh processes: the
    results file from the store. The first one may read the store from a cold page cache."""
    runs = []
    for _ in range(max(1, repeats)):
        done = subprocess.run(
            [PYTHON, "-c", WRITE_SCRIPT, str(store_path)],
            env=base_env("http://127.0.0.1:9"),
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        )
        runs.append(orjson.loads(done.stdout.strip().splitlines()[-1]))
    seconds = statistics.median(run["seconds"] for run in runs)
    size, requests = runs[0]["bytes"], runs[0]["requests"]
    return {
        "bytes": size,
        "requests": requests,
        "seconds": seconds,
        "mb_per_s": round(size / MB / seconds, 1),
        "first_mb_per_s": round(size / MB / runs[0]["seconds"], 1),
        "requests_per_s": round(requests / seconds),
        "runs_s": [round(run["seconds"], 3) for run in runs],
    }


def in_run_write_rates(records: list[RunRecord]) -> dict[int, float]:
    """MB/s of the results file as finalize wrote it during the abr runs (median): its size
    over the time from the last results stored to the job finished."""
    rates: dict[int, list[float]] = {}
    for record in records:
        m = record.milestones
        seconds = m.get("job_finished", 0.0) - m.get("last_results_stored", 0.0)
        if record.tool == "abr" and seconds > 0 and record.results_bytes:
            rates.setdefault(record.n, []).append(record.results_bytes / MB / seconds)
    return {n: round(median(values), 1) for n, values in rates.items()}


class FirstFile(Watcher):
    """Notes when the first results file (not a temporary dot-file) appears in a folder."""

    def __init__(self, folder: Path) -> None:
        super().__init__("first-file")
        self.folder = folder
        self.seen_at: float | None = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            if self.folder.is_dir() and any(self.folder.glob("[!.]*.jsonl")):
                self.seen_at = time.time()
                return
            time.sleep(0.002)


def iso_epoch(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def measure_poll_lag(
    work: Path, polling: str, repeats: int, processing_s: float = POLL_LAG_PROCESSING_S
) -> dict[str, Any]:
    """Seconds from a short batch's `ended_at` to abr's results file appearing on disk.

    `polling` is "bench" (poll_interval 0.05 s, max 0.25 s) or "defaults" (abr's own
    settings: 2 s, growing x1.5 up to 60 s)."""
    input_path = work / "poll-lag.json"
    if not input_path.exists():
        write_input(POLL_LAG_REQUESTS, input_path, seed=7)
    settings = ABR_SETTINGS if polling == "bench" else {}
    runs = []
    with emulator(processing_s) as emu:
        for repeat in range(repeats):
            run_dir = work / f"poll-lag-{polling}-{repeat}"
            results_dir = run_dir / "output" / "results"
            run_dir.mkdir(parents=True)
            watcher = FirstFile(results_dir)
            env = base_env(emu.url, **settings)
            command = [*ABR, "run", str(input_path), "--json", "--output", str(run_dir / "output")]
            with watcher:
                timed = run_measured(command, env, run_dir)
            verify_abr(timed, POLL_LAG_REQUESTS)
            records = run_dir / "output" / "batch_records"
            record = orjson.loads(next(records.glob("*.json")).read_bytes())
            batch_ids = [c["batch_id"] for c in record["chunks"] if c["batch_id"]]
            ended = max(iso_epoch(emu.batch(b)["ended_at"]) for b in batch_ids)
            results_file = next(results_dir.glob("*.jsonl"))
            runs.append(
                {
                    "lag_s": round((watcher.seen_at or time.time()) - ended, 3),
                    "mtime_lag_s": round(results_file.stat().st_mtime - ended, 3),
                    "wall_s": round(timed.wall_s, 3),
                }
            )
            emu.reset()
            shutil.rmtree(run_dir, ignore_errors=True)
    return {
        "polling": polling,
        "processing_s": processing_s,
        "lag_s_median": statistics.median(r["lag_s"] for r in runs),
        "lag_s_max": max(r["lag_s"] for r in runs),
        "runs": runs,
    }


# ---------------------------------------------------------------- distributed mode


def _read_until_ready(process: subprocess.Popen[str], ready: threading.Event) -> None:
    """Set `ready` at the worker's ready line; drain its output until it exits."""
    assert process.stdout is not None
    for line in process.stdout:
        if "abr worker ready" in line:
            ready.set()


@contextmanager
def workers(env: dict[str, str], cwd: Path, count: int = 2) -> Iterator[list[int]]:
    """`count` `abr worker debug` processes, once each says it is ready."""
    started: list[subprocess.Popen[str]] = []
    try:
        for number in range(1, count + 1):
            process = subprocess.Popen(
                [*ABR, "worker", "debug", "--name", f"bench{number}", "--loglevel", "WARNING"],
                env=env,
                cwd=cwd,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            started.append(process)
            ready = threading.Event()
            threading.Thread(target=_read_until_ready, args=(process, ready), daemon=True).start()
            if not ready.wait(60):
                raise RuntimeError(f"worker bench{number} did not report ready")
        yield [process.pid for process in started]
    finally:
        for process in started:
            process.send_signal(signal.SIGTERM)
        for process in started:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def private_redis(url: str | None) -> Iterator[str]:
    """`url` if given; else a redis-server of our own on a free port (no persistence), so
    that flushing its database cannot touch anybody else's."""
    if url:
        yield url
        return
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed: pass --redis-url")
    port = free_port()
    command = [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=30)


def flush_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()


def run_distributed(
    emu: EmulatorProcess, input_path: Path, n: int, run_dir: Path, repeat: int, redis_url: str
) -> RunRecord:
    """abr run with the work done by 2 `abr worker` processes on Redis (store: SQLite)."""
    flush_redis(redis_url)
    output = run_dir / "output"
    output.mkdir(parents=True)
    store = output / "abr.sqlite3"
    env = base_env(
        emu.url,
        **ABR_SETTINGS,
        **WORKER_SETTINGS,
        ABR_BROKER_URL=redis_url,
        ABR_DATABASE_URL=f"sqlite:///{store}",
        ABR_STORAGE_BASE_DIR=str(output),
    )
    with workers(env, run_dir) as pids:
        record = run_abr(
            emu,
            input_path,
            n,
            run_dir / "run",
            repeat,
            extra_env={k: v for k, v in env.items() if k.startswith("ABR_")},
            extra_roots=pids,
            tool="abr-redis",
            store=store,
        )
    flush_redis(redis_url)
    return record


# ---------------------------------------------------------------- under a rate limit


def run_rate_limited(args: argparse.Namespace, input_path: Path, work: Path) -> RunRecord:
    """abr with its defaults on an emulator of its own enforcing `--rate-limit`."""
    calls, _, window = args.rate_limit.partition("/")
    flags = ("--rate-limit", calls, "--rate-limit-window", window or "60")
    n = args.rate_limited
    with emulator(args.processing_seconds, *flags) as limited:
        run_dir = work / f"abr-limited-{n}-0"
        record = run_abr(limited, input_path, n, run_dir, 0, tool="abr-limited")
    log(
        f"N={n:,} under {args.rate_limit}: {record.wall_s:.2f}s, calls {record.calls}, "
        f"429s {record.http_429}"
    )
    if not args.keep:
        shutil.rmtree(run_dir, ignore_errors=True)
    return record


# ---------------------------------------------------------------- profile


def profile_abr(emu: EmulatorProcess, input_path: Path, n: int, work: Path) -> dict[str, Any]:
    """One abr run under py-spy (100 samples/s, every busy thread, --nonblocking). The raw
    (collapsed) stacks are kept: speedscope or flamegraph.pl draw them."""
    spy = Path(PYTHON).parent / "py-spy"
    if not spy.exists():
        raise RuntimeError(f"py-spy is not installed: {Path(PYTHON).parent}/pip install py-spy")
    run_dir = work / f"profile-{n}"
    run_dir.mkdir(parents=True)
    raw = work / f"profile-{n}.txt"
    env = base_env(emu.url)  # abr's defaults
    abr = [*ABR, "run", str(input_path), "--json", "--output", str(run_dir / "output")]
    spy_command = [
        str(spy),
        "record",
        "--rate",
        "100",
        "--nonblocking",
        "--subprocesses",
        "--format",
        "raw",
        "-o",
        str(raw),
        "--",
        *abr,
    ]
    timed = run_measured(spy_command, env, run_dir)
    verify_abr(timed, n)
    emu.reset()
    shutil.rmtree(run_dir, ignore_errors=True)
    return {"n": n, "wall_s": round(timed.wall_s, 2), "raw": str(raw), **summarize_profile(raw)}


_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")
PACKAGE = "anthropic_batch_request_util/"


def _frame_name(frame: str) -> str | None:
    """`func (pkg/file.py:12)` -> `pkg/file.py:func`; None for the process label."""
    found = _FRAME.match(frame.strip())
    if not found or frame.startswith("process "):
        return None
    return f"{found['file']}:{found['func']}"


def _package(name: str) -> str:
    head = name.split(":", 1)[0]
    if head.startswith(PACKAGE):
        return "abr (" + head.removeprefix(PACKAGE) + ")"
    if head.startswith("<frozen") or "importlib" in head:
        return "imports"
    return head.split("/", 1)[0] if "/" in head else head


def summarize_profile(raw: Path, top: int = 15) -> dict[str, Any]:
    """py-spy's raw stacks: inclusive share of abr's functions, self share of every
    function and of every package. Shares are of all samples of all busy threads."""
    inclusive: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    by_package: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [name for name in map(_frame_name, stack.split(";")) if name]
        if not frames:
            continue
        total += count
        self_time[frames[-1]] += count
        by_package[_package(frames[-1])] += count
        for name in set(frames):
            if name.startswith(PACKAGE):
                inclusive[name.removeprefix(PACKAGE)] += count

    def share(items: list[tuple[str, int]]) -> list[tuple[str, float]]:
        return [(name, round(100 * c / max(total, 1), 1)) for name, c in items[:top]]

    return {
        "samples": total,
        "inclusive_top": share(inclusive.most_common(top + 5)),
        "self_top": share(self_time.most_common(top)),
        "package_self_top": share(by_package.most_common(top)),
    }


# ---------------------------------------------------------------- report


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


TOOLS = ("abr", "abr-100k", "baseline", "plain", "abr-redis")  #: the order of the tables
ENDPOINTS = ("create", "list", "retrieve", "results")


def summarize(records: list[RunRecord]) -> dict[tuple[str, int], dict[str, Any]]:
    grouped: dict[tuple[str, int], list[RunRecord]] = {}
    for record in records:
        grouped.setdefault((record.tool, record.n), []).append(record)
    return {
        key: {
            "wall_s": median([r.wall_s for r in rows]),
            "walls": [round(r.wall_s, 2) for r in rows],
            "peak_mb": max(r.peak_mb for r in rows),
            "rps": key[1] / median([r.wall_s for r in rows]),
            "load": median([r.load_before for r in rows]),
            "cpu_s": median([r.cpu_s for r in rows]),
            "emulator_cpu_s": median([r.emulator_cpu_s for r in rows]),
            "calls": {e: max(r.calls.get(e, 0) for r in rows) for e in ENDPOINTS},
            "http_429": max(r.http_429 for r in rows),
            "runs": len(rows),
        }
        for key, rows in grouped.items()
    }


def _ratio(row: dict[str, Any], other: dict[str, Any] | None) -> str:
    return f"{row['wall_s'] / other['wall_s']:.2f}" if other else ""


def table(records: list[RunRecord]) -> str:
    """Wall time (median of the runs), its ratio to the bare SDK's and to the plain
    client's, peak RSS (the largest of the runs), CPU seconds of the tool and of the
    emulator meanwhile (medians), API calls by endpoint and 429s (the most of the runs),
    and the 1-minute load average before the runs (median)."""
    stats = summarize(records)
    sizes = sorted({n for _, n in stats})
    lines = [
        "| N | tool | wall median (s) | runs (s) | / bare SDK | / plain | peak RSS (MB) "
        "| CPU s | emulator CPU s | calls create/list/retrieve/results | 429s | load before |",
        "|---:|---|---:|---|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for n in sizes:
        base, plain = stats.get(("baseline", n)), stats.get(("plain", n))
        for tool in TOOLS:
            row = stats.get((tool, n))
            if row is None:
                continue
            calls = " / ".join(str(row["calls"][e]) for e in ENDPOINTS)
            lines.append(
                f"| {n:,} | {tool} | {row['wall_s']:.2f} | {', '.join(map(str, row['walls']))} "
                f"| {_ratio(row, base)} | {_ratio(row, plain)} | {row['peak_mb']:.0f} "
                f"| {row['cpu_s']:.1f} | {row['emulator_cpu_s']:.1f} | {calls} "
                f"| {row['http_429']} | {row['load']:.1f} |"
            )
    return "\n".join(lines)


def milestones_table(records: list[RunRecord]) -> str:
    """abr's timeline (median over runs), seconds from its start."""
    keys = [
        "job_created",
        "first_create_sent",
        "last_batch_created",
        "last_batch_ended",
        "last_results_stored",
        "job_finished",
        "exit",
    ]
    lines = [
        "| N | tool | " + " | ".join(keys) + " |",
        "|---:|---|" + "---:|" * len(keys),
    ]
    grouped: dict[tuple[str, int], list[RunRecord]] = {}
    for record in records:
        if record.milestones:
            grouped.setdefault((record.tool, record.n), []).append(record)
    for (tool, n), rows in sorted(grouped.items(), key=lambda item: (item[0][1], item[0][0])):
        values = [f"{median([r.milestones.get(k, 0.0) for r in rows]):.2f}" for k in keys]
        lines.append(f"| {n:,} | {tool} | " + " | ".join(values) + " |")
    return "\n".join(lines)


def verdicts(
    records: list[RunRecord],
    ingest: list[dict[str, Any]],
    write: list[dict[str, Any]],
    lag: list[dict[str, Any]],
) -> list[str]:
    """Each target of issue 6 that this run could judge: met or missed, with the figure."""
    stats = summarize(records)
    found: list[str] = []

    def say(ok: bool, text: str) -> None:
        found.append(f"- {'MET   ' if ok else 'MISSED'} {text}")

    for n in (100_000, 1_000_000):
        abr, base = stats.get(("abr", n)), stats.get(("baseline", n))
        if abr and base:
            ratio = abr["wall_s"] / base["wall_s"]
            say(
                ratio <= TARGET_RATIO,
                f"wall time at N={n:,}, defaults: abr / bare SDK = {ratio:.2f} "
                f"(target <= {TARGET_RATIO})",
            )
    abr, plain = stats.get(("abr", 100_000)), stats.get(("plain", 100_000))
    if abr and plain:
        ratio = abr["wall_s"] / plain["wall_s"]
        say(
            ratio <= TARGET_PLAIN_RATIO,
            f"wall time at N=100,000, defaults: abr / plain client = {ratio:.2f} "
            f"(target <= {TARGET_PLAIN_RATIO})",
        )
    for tool in ("abr", "abr-100k"):
        big = stats.get((tool, 1_000_000))
        if big:
            say(
                big["peak_mb"] <= TARGET_RSS_MB,
                f"peak RSS at N=1,000,000, {tool}: {big['peak_mb']:.0f} MB "
                f"(target <= {TARGET_RSS_MB:.0f})",
            )
    big, mid = stats.get(("abr", 1_000_000)), stats.get(("abr", 100_000))
    if big and mid:
        growth = big["peak_mb"] / mid["peak_mb"]
        say(
            growth <= TARGET_RSS_GROWTH,
            f"peak RSS 1M / 100k = {growth:.2f} (target <= {TARGET_RSS_GROWTH})",
        )
    if ingest:
        largest = max(ingest, key=lambda item: item["n"])
        say(
            largest["ingest_rps"] >= TARGET_INGEST_RPS,
            f"ingestion at N={largest['n']:,}: {largest['ingest_rps']:,} requests/s "
            f"(target >= {TARGET_INGEST_RPS:,})",
        )
    live = in_run_write_rates(records)
    for item in write:
        during = (
            f"; {live[item['requests']]} MB/s during the runs" if item["requests"] in live else ""
        )
        say(
            item["mb_per_s"] >= TARGET_WRITE_MBPS,
            f"results file written at N={item['requests']:,}: {item['mb_per_s']} MB/s "
            f"(target >= {TARGET_WRITE_MBPS:.0f}{during})",
        )
    for item in lag:
        say(
            item["lag_s_max"] <= TARGET_POLL_LAG_S,
            f"poll lag ({item['polling']} polling, {item['processing_s']:g} s batches): median "
            f"{item['lag_s_median']:.2f} s, max {item['lag_s_max']:.2f} s "
            f"(target <= {TARGET_POLL_LAG_S:g})",
        )
    return found


def source_version() -> str:
    """The commit abr was measured at, and whether src/ had uncommitted changes."""
    root = BENCH_DIR.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "src"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + (" + uncommitted changes in src/" if dirty else "")


def machine() -> dict[str, str]:
    cpu = cpu_name()
    try:
        with open("/proc/meminfo") as info:
            total_kb = int(info.readline().split()[1])
        memory = f"{total_kb / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        memory = "?"
    return {
        "cpu": cpu,
        "cpus": str(os.cpu_count()),
        "memory": memory,
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
        "abr": VERSION,
    }


# ---------------------------------------------------------------- main


def parse_sizes(text: str) -> list[int]:
    sizes = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("sizes must be positive integers, e.g. 10000,100000")
    return sizes


def main(argv: list[str] | None = None) -> int:
    global VERSION
    VERSION = source_version()  # at the start: the code the runs will import
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=parse_sizes, default=parse_sizes(DEFAULT_SIZES))
    parser.add_argument("--repeats", type=int, default=3, help="runs of each tool per N")
    parser.add_argument(
        "--workers-redis",
        action="store_true",
        help="also abr with 2 `abr worker` processes on Redis, at the largest N",
    )
    parser.add_argument(
        "--redis-url", help="Redis for --workers-redis (default: a private redis-server)"
    )
    parser.add_argument(
        "--redis-repeats", type=int, default=None, help="distributed runs (default: --repeats)"
    )
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="profile one abr run at N requests with py-spy",
    )
    parser.add_argument(
        "--no-extras",
        action="store_true",
        help="skip ingestion, write-rate and poll-lag measurements",
    )
    parser.add_argument(
        "--poll-lag",
        default="bench,defaults",
        help="poll settings to measure the lag with: bench, defaults, or none",
    )
    parser.add_argument(
        "--workdir", type=Path, help="where inputs and runs go (default: a temp dir)"
    )
    parser.add_argument(
        "--abr-configs",
        default=",".join(ABR_CONFIGS),
        help=f"abr settings to run, of {', '.join(ABR_CONFIGS)} (default: all)",
    )
    parser.add_argument(
        "--processing-seconds",
        type=float,
        default=PROCESSING_S,
        help="seconds the emulator takes to end a batch",
    )
    parser.add_argument(
        "--rate-limited",
        type=int,
        default=0,
        metavar="N",
        help="also abr (defaults) at N requests on an emulator enforcing --rate-limit",
    )
    parser.add_argument(
        "--rate-limit", default=RATE_LIMIT, help="CALLS/SECONDS on the batch endpoints"
    )
    parser.add_argument("--keep", action="store_true", help="keep the run directories")
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    args = parser.parse_args(argv)

    work = (args.workdir or Path(tempfile.mkdtemp(prefix="abr-bench-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    log(f"work directory {work}")
    records: list[RunRecord] = []
    ingest_figures: list[dict[str, Any]] = []
    write_figures: list[dict[str, Any]] = []
    lag_figures: list[dict[str, Any]] = []
    profile: dict[str, Any] = {}
    limited: list[RunRecord] = []
    configs = [c for c in args.abr_configs.split(",") if c]
    if any(c not in ABR_CONFIGS for c in configs):
        parser.error(f"--abr-configs: each of {', '.join(ABR_CONFIGS)}")
    tools = [*configs, "baseline", "plain"]
    extra_sizes = {args.profile, args.rate_limited} - {0}
    sizes = sorted(set(args.sizes) | extra_sizes)

    inputs: dict[int, Path] = {}
    for n in sizes:
        path = work / f"input-{n}.json"
        if not path.exists():
            started = time.perf_counter()
            write_input(n, path)
            log(
                f"wrote {path.name} ({path.stat().st_size / MB:.1f} MB) in "
                f"{time.perf_counter() - started:.1f}s"
            )
        inputs[n] = path

    try:
        with ExitStack() as stack:
            emu = stack.enter_context(emulator(args.processing_seconds))
            log(f"emulator at {emu.url}")
            for n in args.sizes:
                last_abr_dir: Path | None = None
                for repeat in range(args.repeats):
                    shift = repeat % len(tools)  # each tool goes first in turn
                    for tool in tools[shift:] + tools[:shift]:
                        run_dir = work / f"{tool}-{n}-{repeat}"
                        emu.reset()
                        if tool in ABR_CONFIGS:
                            record = run_abr(emu, inputs[n], n, run_dir, repeat, tool=tool)
                        else:
                            record = run_script(tool, emu, inputs[n], n, run_dir, repeat)
                        records.append(record)
                        log(
                            f"N={n:,} {tool} #{repeat + 1}: {record.wall_s:.2f}s, "
                            f"peak {record.peak_mb:.0f} MB, CPU {record.cpu_s:.1f}s, "
                            f"load {record.load_before:.1f}, calls {record.calls}, "
                            f"429s {record.http_429}, emulator {emu.rss_mb():.0f} MB"
                        )
                        if tool == "abr":
                            if last_abr_dir is not None and not args.keep:
                                shutil.rmtree(last_abr_dir, ignore_errors=True)
                            last_abr_dir = run_dir
                        elif not args.keep:
                            shutil.rmtree(run_dir, ignore_errors=True)
                emu.reset()
                if not args.no_extras:
                    # the write first, while the finished job's store is still in the page
                    # cache (ingesting 1M requests three times would push it out)
                    if last_abr_dir is not None:
                        log(f"N={n:,}: results write rate")
                        store = last_abr_dir / "output" / "abr.sqlite3"
                        write_figures.append(measure_write(store, last_abr_dir, args.repeats))
                    log(f"N={n:,}: ingestion")
                    ingest_figures.append(measure_ingest(inputs[n], n, work, max(1, args.repeats)))
                if last_abr_dir is not None and not args.keep:
                    shutil.rmtree(last_abr_dir, ignore_errors=True)

            if args.workers_redis:
                redis_url = stack.enter_context(private_redis(args.redis_url))
                n = max(args.sizes)
                for repeat in range(
                    args.repeats if args.redis_repeats is None else args.redis_repeats
                ):
                    emu.reset()
                    run_dir = work / f"abr-redis-{n}-{repeat}"
                    record = run_distributed(emu, inputs[n], n, run_dir, repeat, redis_url)
                    records.append(record)
                    log(
                        f"N={n:,} abr-redis #{repeat + 1}: {record.wall_s:.2f}s, "
                        f"peak {record.peak_mb:.0f} MB"
                    )
                    if not args.keep:
                        shutil.rmtree(run_dir, ignore_errors=True)

            if args.rate_limited:
                limited.append(run_rate_limited(args, inputs[args.rate_limited], work))

            if args.profile:
                emu.reset()
                log(f"N={args.profile:,}: profiling abr with py-spy")
                profile = profile_abr(emu, inputs[args.profile], args.profile, work)

        if not args.no_extras:
            for polling in [p for p in args.poll_lag.split(",") if p and p != "none"]:
                log(f"poll lag, {polling} polling")
                lag_figures.append(measure_poll_lag(work, polling, max(1, args.repeats)))
    finally:
        if not args.keep:
            for path in work.glob("*-*-*"):
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)

    report = render(records, ingest_figures, write_figures, lag_figures, profile, args, limited)
    print(report)
    if args.json:
        args.json.write_bytes(
            orjson.dumps(
                {
                    "machine": machine(),
                    "argv": sys.argv,
                    "runs": [asdict(r) | {"rps": r.rps} for r in records],
                    "rate_limited": [asdict(r) for r in limited],
                    "ingest": ingest_figures,
                    "write": write_figures,
                    "poll_lag": lag_figures,
                    "profile": profile,
                },
                option=orjson.OPT_INDENT_2,
            )
        )
    return 0


def render(
    records: list[RunRecord],
    ingest: list[dict[str, Any]],
    write: list[dict[str, Any]],
    lag: list[dict[str, Any]],
    profile: dict[str, Any],
    args: argparse.Namespace,
    limited: list[RunRecord],
) -> str:
    info = machine()
    parts = [
        f"machine: {info['cpu']}, {info['cpus']} CPUs, {info['memory']}, Python {info['python']}, "
        f"{info['system']}",
        f"abr: {info['abr']}",
        f"command: {' '.join(sys.argv)}",
        f"emulator: batches end {args.processing_seconds:g} s after create",
        "",
        "## End to end (abr vs the bare SDK and the plain client, same emulator, alternating)",
        "",
        table(records),
        "",
        "abr timeline, seconds from process start (median):",
        "",
        milestones_table(records),
    ]
    if ingest:
        parts += [
            "",
            "## Ingestion (read + validate + store, fresh SQLite store)",
            "",
            "| N | ingest (s) | requests/s | read+validate only (s) | requests/s |",
            "|---:|---:|---:|---:|---:|",
        ]
        parts += [
            f"| {i['n']:,} | {i['ingest_s']:.2f} | {i['ingest_rps']:,} | "
            f"{i['read_validate_s']:.2f} | {i['read_validate_rps']:,} |"
            for i in ingest
        ]
    if write:
        parts += [
            "",
            "## Results file write (write_outputs from the store)",
            "",
            "| N | MB | seconds (median) | MB/s | first run MB/s | requests/s "
            "| MB/s in the abr runs |",
            "|---:|---:|---:|---:|---:|---:|---:|",
        ]
        live = in_run_write_rates(records)
        parts += [
            f"| {w['requests']:,} | {w['bytes'] / MB:.1f} | {w['seconds']:.2f} | "
            f"{w['mb_per_s']} | {w['first_mb_per_s']} | {w['requests_per_s']:,} "
            f"| {live.get(w['requests'], '')} |"
            for w in write
        ]
    if lag:
        parts += [
            "",
            "## Poll lag (results file on disk - batch ended_at)",
            "",
            "| polling | batch takes (s) | lag median (s) | lag max (s) | runs (s) |",
            "|---|---:|---:|---:|---|",
        ]
        parts += [
            f"| {item['polling']} | {item['processing_s']:g} | {item['lag_s_median']:.2f} | "
            f"{item['lag_s_max']:.2f} | {', '.join(str(r['lag_s']) for r in item['runs'])} |"
            for item in lag
        ]
    if limited:
        parts += [
            "",
            f"## Under a per-minute limit ({args.rate_limit} calls/seconds on the batch "
            "endpoints), abr with default settings",
            "",
            "| N | wall (s) | calls create/list/retrieve/results | calls in all | 429s |",
            "|---:|---:|---|---:|---:|",
        ]
        parts += [
            f"| {r.n:,} | {r.wall_s:.2f} | {' / '.join(str(r.calls.get(e, 0)) for e in ENDPOINTS)}"
            f" | {sum(r.calls.values())} | {r.http_429} |"
            for r in limited
        ]
    if profile:
        parts += [
            "",
            f"## Profile (py-spy, N={profile['n']:,}, {profile['samples']} samples, "
            f"wall {profile['wall_s']} s)",
            "",
            "abr functions, inclusive share of samples:",
            "",
        ]
        parts += [f"- {share:5.1f}%  {name}" for name, share in profile["inclusive_top"]]
        parts += ["", "leaf (self) share, by function:", ""]
        parts += [f"- {share:5.1f}%  {name}" for name, share in profile["self_top"]]
        parts += ["", "leaf (self) share, by package or abr module:", ""]
        parts += [f"- {share:5.1f}%  {name}" for name, share in profile["package_self_top"]]
    judged = verdicts(records, ingest, write, lag)
    if judged:
        parts += ["", "## Targets (issues 6 and 15)", "", *judged]
    return "\n".join(parts)


if __name__ == "__main__":
    sys.exit(main())
