"""`abr status --watch` under a real terminal (a pty), checked against the store."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import time
from pathlib import Path

import orjson

from anthropic_batch_request_util.emulator import Emulator, EmulatorConfig

from .helpers import abr_command, abr_env, run_abr, write_original

DONE = re.compile(r"(\d+)/(\d+) done")


def _read_until_exit(process: subprocess.Popen[bytes], master: int, timeout: float) -> str:
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:
                break
            chunks.append(data)
        elif process.poll() is not None:
            break
    return b"".join(chunks).decode("utf-8", errors="replace")


def test_watch_on_a_terminal_follows_the_store_to_the_end(tmp_path: Path) -> None:
    # Given a job of three chunks running in the background
    config = EmulatorConfig(processing_seconds=2.0, seed=4, retry_after=0.0)
    source = write_original(tmp_path / "watched.json", 30)
    with Emulator(config, host="127.0.0.1", port=0) as emulator:
        env = abr_env(emulator, ABR_BATCH_CHUNK_SIZE="10")
        run = subprocess.Popen(
            abr_command("run", str(source), "--json"),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while emulator.stats()["batches_created"] < 1:
            assert time.monotonic() < deadline
            time.sleep(0.05)

        # When `abr status --watch` runs on a terminal until the job ends
        master, slave = pty.openpty()
        watch_env = dict(env, TERM="xterm-256color", COLUMNS="160", LINES="40")
        watcher = subprocess.Popen(
            abr_command("status", "--watch"),
            env=watch_env,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            close_fds=True,
        )
        os.close(slave)
        screen = _read_until_exit(watcher, master, timeout=60)
        os.close(master)
        watcher.wait(10)
        run_out, _ = run.communicate(timeout=60)
        status = orjson.loads(run_abr("status", "--json", emulator=emulator).stdout)

    # Then it drew a live view (terminal control codes), never ran ahead of the store,
    # and ended on what the store holds: every request done, every batch by its id
    assert watcher.returncode == 0, screen
    assert "\x1b[" in screen
    shown = [(int(done), int(total)) for done, total in DONE.findall(screen)]
    assert shown and all(total == 30 for _, total in shown)
    done_values = [done for done, _ in shown]
    assert done_values == sorted(done_values), "progress never goes backwards"
    assert done_values[-1] == 30
    assert status["done"] == 30 and status["status"] == "finished"
    for chunk in status["chunks"]:
        assert chunk["batch_id"] in screen
    assert orjson.loads(run_out.splitlines()[-1])["status"] == "finished"
