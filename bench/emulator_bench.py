"""Emulator benchmark: batch create speed, results stream rate, memory with 1M requests held.

Starts the emulator as its own process (as `abr emulator` runs it), so its memory is
measured alone, and talks to it over loopback HTTP with httpx2 (the SDK's HTTP library):

    .venv/bin/python bench/emulator_bench.py              # 100k-request batches, 1M held
    .venv/bin/python bench/emulator_bench.py --quick      # 10k-request batches, 100k held

Targets: a 100,000-request (~50 MB) create accepted in < 3 s; results streamed at
>= 50 MB/s; 1,000,000 requests held across batches in < 500 MB resident.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx2
import orjson

HEADERS = {"x-api-key": "bench", "anthropic-version": "2023-06-01"}
SYSTEM = (
    "You are a careful assistant for a customer-support team. Answer in two short "
    "paragraphs, cite the policy section you rely on, and never invent order numbers."
)
QUESTION = (
    "Order {i} arrived with a cracked screen and the box was dented on one corner. The "
    "courier left it at the door without a signature even though I asked for one. What "
    "are my options for a replacement or refund, and do I need to keep the packaging?"
)
MB = 1024 * 1024


def build_body(count: int, first: int) -> bytes:
    """A create body of `count` requests (~500 bytes each), custom ids from `first`."""
    requests = [
        {
            "custom_id": f"bench-{first + i:07d}",
            "params": {
                "model": "claude-haiku-4-5",
                "max_tokens": 400,
                "system": SYSTEM,
                "messages": [{"role": "user", "content": QUESTION.format(i=first + i)}],
            },
        }
        for i in range(count)
    ]
    return orjson.dumps({"requests": requests})


@contextmanager
def emulator_process(processing_s: float) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """The emulator in a child process on a free port, and its base URL."""
    command = [
        sys.executable, "-m", "anthropic_batch_request_util.emulator", "--port", "0",
        "--processing-seconds", str(processing_s), "--no-shuffle",
    ]  # fmt: skip
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        found = re.search(r"serving (\S+)", child.stdout.readline())
        if not found:
            raise RuntimeError("the emulator did not report its URL")
        yield child, found.group(1)
    finally:
        child.terminate()
        child.wait(timeout=30)


def memory_mb(pid: int) -> dict[str, float]:
    """Resident (VmRSS) and peak resident (VmHWM) memory of a process, in MB."""
    found: dict[str, float] = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                found[name] = int(value.split()[0]) / 1024
    return found


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far: unlike wall time, it does not
    grow when other work on the machine competes for the CPUs."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def create(client: httpx2.Client, body: bytes) -> tuple[dict[str, Any], float]:
    """POST a create body as raw bytes; the batch and the seconds it took."""
    started = time.perf_counter()
    response = client.post(
        "/v1/messages/batches",
        content=body,
        headers={**HEADERS, "content-type": "application/json"},
    )
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    return response.json(), elapsed


def wait_ended(client: httpx2.Client, batch_id: str) -> dict[str, Any]:
    """Poll a batch until it has ended."""
    while True:
        batch: dict[str, Any] = client.get(
            f"/v1/messages/batches/{batch_id}", headers=HEADERS
        ).json()
        if batch["processing_status"] == "ended":
            return batch
        time.sleep(0.1)


def stream_results(client: httpx2.Client, url: str) -> tuple[int, int, float]:
    """Download a results stream: (bytes, lines, seconds)."""
    size = lines = 0
    started = time.perf_counter()
    with client.stream("GET", url, headers=HEADERS) as response:
        response.raise_for_status()
        for chunk in response.iter_raw():
            size += len(chunk)
            lines += chunk.count(b"\n")
    return size, lines, time.perf_counter() - started


def retrieve_ms(client: httpx2.Client, batch_id: str, count: int = 300) -> float:
    """Mean milliseconds of a batch retrieve (a poll) over keep-alive HTTP."""
    started = time.perf_counter()
    for _ in range(count):
        client.get(f"/v1/messages/batches/{batch_id}", headers=HEADERS).raise_for_status()
    return round((time.perf_counter() - started) / count * 1000, 3)


def one_batch(client: httpx2.Client, pid: int, per_batch: int) -> dict[str, Any]:
    """Create one batch, wait for it and download its results: times and CPU seconds."""
    report: dict[str, Any] = {}
    body = build_body(per_batch, 0)
    report["create_body_mb"] = round(len(body) / MB, 1)
    cpu = cpu_seconds(pid)
    batch, seconds = create(client, body)
    report["create_s"] = round(seconds, 3)
    report["create_cpu_s"] = round(cpu_seconds(pid) - cpu, 2)
    del body
    ended = wait_ended(client, batch["id"])
    report["create_and_workup_cpu_s"] = round(cpu_seconds(pid) - cpu, 2)
    cpu = cpu_seconds(pid)
    size, lines, seconds = stream_results(client, ended["results_url"])
    results_cpu = cpu_seconds(pid) - cpu
    report["results"] = {"mb": round(size / MB, 1), "lines": lines, "s": round(seconds, 3)}
    report["results_mb_per_s"] = round(size / MB / seconds, 1)
    report["results_mb_per_cpu_s"] = round(size / MB / max(results_cpu, 0.01), 1)
    report["retrieve_ms"] = retrieve_ms(client, batch["id"])
    return report


def more_batches(client: httpx2.Client, per_batch: int, batches: int) -> list[float]:
    """Create batches 2..`batches` back to back; the seconds each create took."""
    seconds = []
    for index in range(1, batches):
        last, elapsed = create(client, build_body(per_batch, index * per_batch))
        seconds.append(round(elapsed, 3))
    wait_ended(client, last["id"])  # every batch is worked out and stored
    return seconds


def run(per_batch: int, batches: int, processing_s: float) -> dict[str, Any]:
    """Every measurement, as one dict."""
    report: dict[str, Any] = {"requests_per_batch": per_batch, "batches": batches}
    with (
        emulator_process(processing_s) as (child, url),
        httpx2.Client(base_url=url, timeout=600) as client,
    ):
        report["idle_memory_mb"] = memory_mb(child.pid)
        report |= one_batch(client, child.pid, per_batch)
        report["memory_after_1_batch_mb"] = memory_mb(child.pid)
        report["back_to_back_create_s"] = more_batches(client, per_batch, batches)
        report["requests_held"] = per_batch * batches
        report["memory_held_mb"] = memory_mb(child.pid)
    report["load_average"] = [round(load, 2) for load in os.getloadavg()]
    return report


def cpu_name() -> str:
    """The processor's model name, as the kernel gives it."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            names = [line.split(":", 1)[1].strip() for line in info if "model name" in line]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return cpu


def machine() -> str:
    """A one-line description of this machine."""
    cpu = cpu_name()
    return f"{cpu}, {os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.system()}"


def main() -> int:
    """Run the benchmark and print its report as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10k-request batches")
    parser.add_argument("--requests", type=int, help="requests per batch (default 100000)")
    parser.add_argument("--batches", type=int, default=10, help="batches held (default 10)")
    parser.add_argument("--processing-seconds", type=float, default=1.0)
    args = parser.parse_args()
    per_batch = args.requests or (10_000 if args.quick else 100_000)
    report = run(per_batch, args.batches, args.processing_seconds)
    report["machine"] = machine()
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
