"""`--max-cost` holds by construction, and `--canary` asks before the rest: against the
emulator, with the CLI as a subprocess, the spend checked from the emulator's own usage
and from the store at every look while the job runs."""

from __future__ import annotations

import os
import pty
import select
import sqlite3
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import anthropic
import orjson
import pytest

from anthropic_batch_request_util.emulator import Emulator, EmulatorConfig
from anthropic_batch_request_util.store import Store
from anthropic_batch_request_util.store import jobs as job_rows

from .helpers import abr_command, abr_env, run_abr, summary, write_original
from .test_cost import hand_priced

REQUESTS = 100
#: replies are cut to max_tokens, so every answer bills its whole output allowance
SETTINGS = {"ABR_MODEL_MAX_TOKENS": "16", "ABR_BATCH_CHUNK_SIZE": "10"}
BUDGET = 0.0007  #: USD; the whole job costs about 0.0037 here


def _billed_usd(emulator: Emulator) -> float:
    """What the emulator billed: every result of every batch, priced by hand."""
    client = anthropic.Anthropic(base_url=emulator.base_url, api_key="sk-ant-test")
    total = 0.0
    for batch in client.messages.batches.list(limit=100):
        for row in client.messages.batches.results(batch.id):
            if row.result.type == "succeeded":
                total += hand_priced(row.result.message.usage.model_dump())
    return total


class _Sampler(threading.Thread):
    """Looks at the job in the store while it runs: spent, and spent plus the worst case
    of what is in flight."""

    def __init__(self, store_path: Path) -> None:
        super().__init__(daemon=True)
        self.store_path = store_path
        self.looks: list[tuple[float, float, float | None]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self._migrated() and not self.stop.is_set():
            time.sleep(0.02)
        store = Store(f"sqlite:///{self.store_path}")
        try:
            while not self.stop.is_set():
                self._look(store)
                time.sleep(0.05)
        finally:
            store.close()

    def _migrated(self) -> bool:
        """Whether abr has made the store (opening it first would race its migrations)."""
        if not self.store_path.exists():
            return False
        try:
            with sqlite3.connect(self.store_path) as db:
                found = db.execute(
                    "SELECT 1 FROM schema_migrations WHERE name = '0007_budget'"
                ).fetchone()
        except sqlite3.Error:
            return False
        return found is not None

    def _look(self, store: Store) -> None:
        with store.begin() as conn:
            job = job_rows.latest_job(conn)
            if job is None:
                return
            figures = job_rows.budget_figures(conn, job.pk)
        self.looks.append((figures.spent, figures.spent + figures.in_flight, job.max_cost_usd))


def _run_sampled(emulator: Emulator, tmp_path: Path, *args: str) -> tuple[Any, _Sampler]:
    sampler = _Sampler(tmp_path / "output" / "abr.sqlite3")
    sampler.start()
    completed = run_abr(*args, emulator=emulator, **SETTINGS)
    sampler.stop.set()
    sampler.join(10)
    return completed, sampler


def test_a_job_five_times_over_budget_never_spends_more_and_resumes_to_the_end(
    tmp_path: Path,
) -> None:
    # Given a job whose true cost is about five times its budget, and slow batches
    source = write_original(tmp_path / "dear.json", REQUESTS)
    config = EmulatorConfig(processing_seconds=0.5, seed=3, retry_after=0.0)
    with Emulator(config, host="127.0.0.1", port=0) as emulator:
        # When it runs with --max-cost
        completed, sampler = _run_sampled(
            emulator, tmp_path, "run", str(source), "--json", "--max-cost", str(BUDGET)
        )

        # Then it stops with exit 1 and one line: spent, answered, never sent, how to go on
        assert completed.returncode == 1, completed.stderr
        result = summary(completed)
        message = completed.stderr.strip().splitlines()[-1]
        job_id = result["job_id"]
        answered = result["counts"]["succeeded"]
        assert 0 < answered < REQUESTS
        assert f"{answered} requests answered, {REQUESTS - answered} never sent" in message
        assert f"abr resume {job_id} --max-cost " in message
        assert result["status"] == "paused" and result["budget"]["stopped"] == "budget"
        # and neither abr's figures nor the emulator's billing ever passed the budget
        billed = _billed_usd(emulator)
        assert billed <= BUDGET
        assert result["cost_usd"] == pytest.approx(billed, rel=1e-9)
        assert sampler.looks, "the store was looked at while the job ran"
        for spent, bound, limit in sampler.looks:
            assert spent <= BUDGET and (limit is None or bound <= limit + 1e-12)
        status = orjson.loads(run_abr("status", "--json", emulator=emulator).stdout)
        assert status["budget"]["spent_usd"] <= BUDGET and status["status"] == "paused"
        assert emulator.stats()["requests_submitted"] == answered  # the rest never left

        # When it is resumed with a larger budget
        resumed, sampler = _run_sampled(
            emulator, tmp_path, "resume", job_id, "--json", "--max-cost", "0.01"
        )

        # Then it finishes, every request answered exactly once, still within budget
        assert resumed.returncode == 0, resumed.stderr
        final = summary(resumed)
        assert final["status"] == "finished" and final["counts"]["succeeded"] == REQUESTS
        stats = emulator.stats(submissions=True)
        assert len(stats["submissions"]) == REQUESTS
        assert set(stats["submissions"].values()) == {1}
        assert final["cost_usd"] >= 5 * BUDGET  # the job was at least five times over
        assert all(spent <= 0.01 for spent, _, _ in sampler.looks)


def test_the_pending_requests_of_a_stopped_job_stay_pending(tmp_path: Path) -> None:
    source = write_original(tmp_path / "dear.json", 30)
    with Emulator(EmulatorConfig(processing_seconds=0.2), host="127.0.0.1", port=0) as emulator:
        completed = run_abr(
            "run", str(source), "--json", "--max-cost", "0.0003", emulator=emulator, **SETTINGS
        )
        assert completed.returncode == 1, completed.stderr
        status = orjson.loads(run_abr("status", "--json", emulator=emulator).stdout)
    assert status["counts"]["canceled"] == 0
    assert status["done"] < 30
    assert any(chunk["status"] == "pending" for chunk in status["chunks"])


def test_canary_without_a_terminal_stops_after_it(emulator: Emulator, tmp_path: Path) -> None:
    # Given a job of 40 requests
    source = write_original(tmp_path / "canary.json", 40)

    # When it runs with --canary 10% and no terminal
    completed = run_abr("run", str(source), "--canary", "10%", emulator=emulator, **SETTINGS)

    # Then the 4 first requests alone were sent, shown with their cost and a projection,
    # and the command that goes on was printed
    assert completed.returncode == 0, completed.stderr
    assert emulator.stats()["requests_submitted"] == 4
    assert "q_0: Emulated answer" in completed.stdout and "Projected:" in completed.stdout
    job_id = orjson.loads(run_abr("jobs", "--json", emulator=emulator).stdout)[0]["job_id"]
    assert f"abr resume {job_id}" in completed.stdout

    # And resuming sends the rest, each request once
    resumed = run_abr("resume", job_id, "--json", emulator=emulator, **SETTINGS)
    assert resumed.returncode == 0, resumed.stderr
    assert summary(resumed)["counts"]["succeeded"] == 40
    assert emulator.stats()["max_submissions"] == 1


def _talk(process: subprocess.Popen[bytes], master: int, answer: bytes, timeout: float) -> str:
    """Read the terminal; answer the question once it is asked; read to the end."""
    seen = b""
    deadline = time.monotonic() + timeout
    asked = False
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                seen += os.read(master, 65536)
            except OSError:
                break
            if not asked and b"[y/N]" in seen:
                os.write(master, answer)
                asked = True
        elif process.poll() is not None:
            break
    return seen.decode("utf-8", errors="replace")


@pytest.mark.parametrize("answer", [b"y\n", b"n\n"], ids=["yes", "no"])
def test_canary_on_a_terminal_asks_before_the_rest(tmp_path: Path, answer: bytes) -> None:
    source = write_original(tmp_path / "canary.json", 30)
    with Emulator(EmulatorConfig(processing_seconds=0.2), host="127.0.0.1", port=0) as emulator:
        master, slave = pty.openpty()
        env = abr_env(emulator, TERM="xterm-256color", COLUMNS="160", **SETTINGS)
        process = subprocess.Popen(
            abr_command("run", str(source), "--canary", "5"),
            env=env,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            close_fds=True,
        )
        os.close(slave)
        screen = _talk(process, master, answer, timeout=60)
        os.close(master)
        process.wait(10)
        submitted = emulator.stats()["requests_submitted"]

    assert "Send the other 25 requests? [y/N]" in screen
    assert process.returncode == 0, screen
    assert submitted == (30 if answer == b"y\n" else 5)
