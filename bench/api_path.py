"""The Python API against `abr run`, on the same input, in the same run, alternating.

    .venv/bin/python bench/api_path.py                         # N = 100,000, 3 runs each
    .venv/bin/python bench/api_path.py --size 20000 --repeats 2

Three ways to get the same N requests answered, each in a fresh process and a fresh output
directory, timed from the process start to its exit (imports included), against one
`abr emulator --processing-seconds 0` in its own process (reset between runs):

- ``cli``            ``abr run FILE --json`` on the input file (bench/make_input.py)
- ``api-file``       a script calling ``abr.run(FILE)``
- ``api-generator``  a script calling ``abr.run(generator)``: the same questions, made one at
                     a time as ``(custom_id, params)`` pairs, never held in memory whole

Every run is checked (finished, N succeeded, in input order) so a fast wrong run cannot
count. It prints the median wall time of each and its ratio to ``cli``.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from make_input import CUSTOM_ID_PREFIX, SYSTEM_PROMPT, message, write_input  # noqa: E402

PYTHON = sys.executable
ABR = [PYTHON, "-m", "anthropic_batch_request_util"]
API_KEY = "sk-ant-bench-not-a-real-key"
MODES = ("cli", "api-file", "api-generator")
#: the settings bench/run.py gives abr: batches of 10,000, polling about as often
SETTINGS = {
    "ABR_BATCH_CHUNK_SIZE": "10000",
    "ABR_BATCH_MAX_SIZE": "10000",
    "ABR_BATCH_POLL_INTERVAL": "0.05",
    "ABR_BATCH_POLL_MAX_INTERVAL": "0.25",
}


def requests(n: int, seed: int = 0) -> Iterator[tuple[str, dict[str, Any]]]:
    """The questions make_input writes, as (custom_id, params) pairs, one at a time."""
    rng = random.Random(seed)
    for index in range(n):
        params = {
            "system": SYSTEM_PROMPT,
            "messages": [{"role": "user", "content": message(rng, index)}],
        }
        yield f"{CUSTOM_ID_PREFIX}_{index}", params


def child(mode: str, source: Path, n: int) -> int:
    """One API run (a process of its own): run, and print what the CLI's --json prints
    of it; the caller checks the results file, outside the timing, as for the CLI."""
    import anthropic_batch_request_util as abr

    given: Any = source if mode == "api-file" else requests(n)
    job = abr.run(given, progress=False)
    status = job.status()
    summary = {"status": status.status, "counts": status.counts, "results_path": job.results_path}
    print(orjson.dumps(summary, default=str).decode())
    return 0


def timed_run(mode: str, source: Path, n: int, url: str, workdir: Path) -> float:
    """Seconds one run took, start to exit; raises when its output is not whole."""
    out = Path(tempfile.mkdtemp(prefix=f"{mode}-", dir=workdir))
    env = dict(os.environ, ANTHROPIC_BASE_URL=url, ANTHROPIC_API_KEY=API_KEY, **SETTINGS)
    env["ABR_STORAGE_BASE_DIR"] = str(out)
    if mode == "cli":
        command = [*ABR, "run", str(source), "--json"]
    else:
        command = [PYTHON, __file__, "--child", mode, "--size", str(n), "--input", str(source)]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=out, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{mode} exited {done.returncode}: {done.stderr[-800:]}")
    _check(mode, orjson.loads(done.stdout.strip().splitlines()[-1]), n)
    return seconds


def _check(mode: str, summary: dict[str, Any], n: int) -> None:
    """Finished, n succeeded, and the results file has them all, in input order."""
    if summary["status"] != "finished" or summary["counts"]["succeeded"] != n:
        raise RuntimeError(f"{mode}: not finished: {summary}")
    expected = (f'{{"custom_id":"{CUSTOM_ID_PREFIX}_{i}","status":"succeeded"' for i in range(n))
    with Path(summary["results_path"]).open("rb") as handle:
        for line, start in zip(handle, expected, strict=True):
            if not line.startswith(start.encode()):
                raise RuntimeError(f"{mode}: results file out of order at {line[:80]!r}")


def emulator_url(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    found = re.search(r"serving (\S+)", process.stdout.readline())
    if not found:
        raise RuntimeError("the emulator did not report its URL")
    return found.group(1)


def reset(url: str) -> None:
    request = urllib.request.Request(f"{url}/_admin/reset", data=b"{}", method="POST")
    with urllib.request.urlopen(request, timeout=60) as response:
        response.read()


def bench(n: int, repeats: int, workdir: Path) -> dict[str, list[float]]:
    source = workdir / f"input-{n}.json"
    write_input(n, source)
    command = [*ABR, "emulator", "--port", "0", "--processing-seconds", "0"]
    emulator = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    times: dict[str, list[float]] = {mode: [] for mode in MODES}
    try:
        url = emulator_url(emulator)
        for repeat in range(repeats):
            order = MODES if repeat % 2 == 0 else tuple(reversed(MODES))  # alternate who is first
            for mode in order:
                reset(url)
                times[mode].append(timed_run(mode, source, n, url, workdir))
                print(f"N={n:,} {mode}: {times[mode][-1]:.2f} s", file=sys.stderr, flush=True)
    finally:
        emulator.terminate()
        emulator.wait(timeout=30)
    return times


def report(n: int, times: dict[str, list[float]]) -> None:
    base = statistics.median(times["cli"])
    print(f"N = {n:,}, {len(times['cli'])} runs each (median wall time, process start to exit)")
    print(f"{'mode':<15} {'median s':>9} {'ratio to cli':>13}   runs")
    for mode in MODES:
        median = statistics.median(times[mode])
        runs = ", ".join(f"{t:.2f}" for t in times[mode])
        print(f"{mode:<15} {median:>9.2f} {median / base:>13.2f}   {runs}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=100_000, help="requests per run")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each mode")
    parser.add_argument("--workdir", type=Path, help="where inputs and outputs go (temporary)")
    parser.add_argument("--child", choices=MODES[1:], help=argparse.SUPPRESS)
    parser.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args.child, args.input, args.size)
    with tempfile.TemporaryDirectory(prefix="abr-api-bench-") as temporary:
        workdir = args.workdir or Path(temporary)
        workdir.mkdir(parents=True, exist_ok=True)
        report(args.size, bench(args.size, args.repeats, workdir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
