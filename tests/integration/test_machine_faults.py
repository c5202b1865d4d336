"""Faults of the machine abr runs on, made for real: a small tmpfs that fills up or turns
read-only, a store file truncated or overwritten. Each test checks the exit code, one line
on stderr without a traceback, that nothing was sent twice, and that once the fault is
gone one documented command finishes the job with every request's results line.

Mounting needs root: without it these tests are skipped, with the reason.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from anthropic_batch_request_util.emulator import Emulator, EmulatorConfig
from anthropic_batch_request_util.errors import StoreFullError
from anthropic_batch_request_util.store import Store
from anthropic_batch_request_util.store import jobs as job_rows

from .helpers import (
    abr_command,
    abr_env,
    read_results,
    run_abr,
    wait_for_batches,
    write_original,
)

N = 60  #: requests per test job
TMPFS_SIZE = "6m"


def _mount(directory: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    directory.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs", str(directory)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")


def _remount(directory: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(directory)], check=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 6 MB filesystem of its own, unmounted afterwards."""
    yield from _mounted(tmp_path / "small")


@pytest.fixture
def small_results(tmp_path: Path) -> Iterator[Path]:
    """The results folder of output folder `out` is a 6 MB filesystem (the log, open for
    writing, stays outside: a filesystem with a file open to write cannot turn read-only)."""
    yield from _mounted(tmp_path / "out" / "results")


def _mounted(directory: Path) -> Iterator[Path]:
    _mount(directory)
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=False)


@pytest.fixture
def slow_emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    """Batches that take a few seconds: time to make a fault while they run."""
    config = EmulatorConfig(processing_seconds=3.0, seed=1, retry_after=0.0)
    with Emulator(config, host="127.0.0.1", port=0) as server:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)
        yield server


def fill(directory: Path, leave: int = 0) -> Path:
    """Fill the filesystem of `directory` until `leave` bytes (about) are free."""
    filler = directory / "filler"
    block = b"\0" * 65536
    with filler.open("wb", buffering=0) as handle:
        try:
            while shutil.disk_usage(directory).free > leave + len(block):
                handle.write(block)
            while leave == 0:
                handle.write(block[:4096])
        except OSError as error:
            assert error.errno == errno.ENOSPC
    return filler


def submissions(emulator: Emulator) -> dict[str, int]:
    result: dict[str, int] = emulator.stats(submissions=True)["submissions"]
    return result


def assert_one_line(completed: subprocess.CompletedProcess[str], code: int, *words: str) -> str:
    assert completed.returncode == code, completed.stderr
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1, completed.stderr
    assert "Traceback" not in completed.stderr
    assert "sqlalche" not in completed.stderr.lower()
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def assert_every_line(results: Path, n: int = N) -> None:
    lines = read_results(results)
    assert [line["custom_id"] for line in lines] == [f"q_{i}" for i in range(n)]
    assert {line["status"] for line in lines} == {"succeeded"}


def _run_until_fault(
    emulator: Emulator, source: Path, out: Path, store_url: str, fault: str
) -> tuple[subprocess.CompletedProcess[str], Path | None]:
    """Start `abr run`, make the fault in its results folder while its batch runs; the
    finished run."""
    env = abr_env(emulator, ABR_DATABASE_URL=store_url)
    command = abr_command("run", str(source), "--output", str(out), "--json")
    with subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        wait_for_batches(emulator, process=process)
        filler = fill(out / "results") if fault == "full" else None
        if fault == "readonly":
            _remount(out / "results", "ro")
        started = time.monotonic()
        stdout, stderr = process.communicate(timeout=60)
        took = time.monotonic() - started
    assert took < 30, f"abr run took {took:.0f}s to give up"
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr), filler


@pytest.mark.parametrize(
    ("fault", "recovery"),
    [("full", "resume"), ("readonly", "resume"), ("full", "elsewhere"), ("full", "results")],
)
def test_output_fault_while_writing_results_stops_the_job_and_one_command_finishes_it(
    slow_emulator: Emulator, small_results: Path, tmp_path: Path, fault: str, recovery: str
) -> None:
    # Given a job whose results folder is on a small filesystem, its store elsewhere
    out = small_results.parent
    source = write_original(tmp_path / "questions.json", N)
    store_url = f"sqlite:///{tmp_path / 'store' / 'abr.sqlite3'}"
    env = {"ABR_DATABASE_URL": store_url}

    # When the filesystem fills up (or turns read-only) while the batch runs
    completed, filler = _run_until_fault(slow_emulator, source, out, store_url, fault)

    # Then abr run ends with one line naming the path, the error and the next command
    word = "ENOSPC" if fault == "full" else "EROFS"
    line = assert_one_line(completed, 1, str(small_results), word, "abr resume")
    job_id = line.split("job ", 1)[1].split(" ", 1)[0]
    status = run_abr("status", job_id, "--json", emulator=slow_emulator, **env)
    assert orjson.loads(status.stdout)["status"] == "failed"
    assert word in orjson.loads(status.stdout)["error"]
    assert set(submissions(slow_emulator).values()) == {1}

    # When the fault is removed (or the job is finished elsewhere)
    if filler is not None:
        filler.unlink()
    if fault == "readonly":
        _remount(small_results, "rw")
    elsewhere = tmp_path / "elsewhere"
    if recovery == "resume":
        done = run_abr("resume", job_id, "-o", str(out), emulator=slow_emulator, **env)
        results = small_results / f"{job_id}.jsonl"
    elif recovery == "elsewhere":
        done = run_abr("resume", job_id, "-o", str(elsewhere), emulator=slow_emulator, **env)
        results = elsewhere / "results" / f"{job_id}.jsonl"
    else:
        results = elsewhere / "answers.jsonl"
        elsewhere.mkdir()
        done = run_abr("results", job_id, "--out", str(results), emulator=slow_emulator, **env)

    # Then every request has its line, and nothing was sent again
    assert done.returncode == 0, done.stderr
    assert_every_line(results)
    assert len(submissions(slow_emulator)) == N
    assert set(submissions(slow_emulator).values()) == {1}
    if recovery == "elsewhere":
        record = orjson.loads((elsewhere / "batch_records" / f"{job_id}.json").read_bytes())
        assert record["status"] == "finished"
        assert str(results) in [export["path"] for export in record["exports"]]


def test_read_only_output_folder_is_refused_before_anything_is_sent(
    emulator: Emulator, small_disk: Path, tmp_path: Path
) -> None:
    # Given an output folder on a read-only filesystem
    source = write_original(tmp_path / "questions.json", N)
    _remount(small_disk, "ro")

    # When abr runs there
    refused = run_abr("run", str(source), "-o", str(small_disk), emulator=emulator)

    # Then it refuses with one line, before any batch is created
    assert_one_line(refused, 2, str(small_disk), "EROFS", "nothing was sent")
    assert emulator.stats()["batches_created"] == 0

    # When the folder is writable again, the same command finishes the job
    _remount(small_disk, "rw")
    done = run_abr("run", str(source), "-o", str(small_disk), emulator=emulator)
    assert done.returncode == 0, done.stderr
    job = next((small_disk / "results").glob("*.jsonl"))
    assert_every_line(job)
    assert set(submissions(emulator).values()) == {1}


def test_no_room_for_store_and_results_is_refused_before_anything_is_sent(
    emulator: Emulator, small_disk: Path, tmp_path: Path
) -> None:
    # Given 1,000 requests and a filesystem with 300 kB left for the store and results
    source = write_original(tmp_path / "questions.json", 1000)
    filler = fill(small_disk, leave=300_000)

    # When abr runs there
    refused = run_abr("run", str(source), "-o", str(small_disk), emulator=emulator)

    # Then it refuses with one line saying how much room it needs, and sends nothing
    assert_one_line(refused, 2, "not enough room", str(small_disk), "MB needed")
    assert emulator.stats()["batches_created"] == 0

    # When there is room again, the same command finishes the job
    filler.unlink()
    done = run_abr("run", str(source), "-o", str(small_disk), emulator=emulator)
    assert done.returncode == 0, done.stderr
    assert_every_line(next((small_disk / "results").glob("*.jsonl")), 1000)
    assert set(submissions(emulator).values()) == {1}


def test_full_store_during_ingest_leaves_it_consistent(small_disk: Path, tmp_path: Path) -> None:
    # Given a store on a filesystem with almost no room left
    from anthropic_batch_request_util.config import load_settings
    from anthropic_batch_request_util.engine.ingest import ingest

    source = write_original(tmp_path / "questions.json", 3000)
    settings = load_settings(None, {"storage.base_dir": str(small_disk)})
    url = f"sqlite:///{small_disk / 'abr.sqlite3'}"
    Store(url).close()
    filler = fill(small_disk, leave=100_000)

    # When the input is read into it
    with Store(url) as store, pytest.raises(StoreFullError) as raised:
        ingest(store, source, settings, small_disk)

    # Then one line names the store, exit 2, and nothing of the job is left
    assert raised.value.exit_code == 2
    assert str(small_disk / "abr.sqlite3") in str(raised.value)
    assert "\n" not in str(raised.value)
    filler.unlink()
    with Store(url) as store:
        with store.begin() as conn:
            assert job_rows.list_jobs(conn) == []
        # and once there is room, the same input goes in whole
        found = ingest(store, source, settings, small_disk)
    assert found.created and found.total == 3000


@pytest.mark.parametrize("damage", ["truncate", "overwrite"])
def test_damaged_store_is_named_in_one_line(
    emulator: Emulator, tmp_path: Path, damage: str
) -> None:
    # Given a finished job, its store backed up
    source = write_original(tmp_path / "questions.json", N)
    assert run_abr("run", str(source), emulator=emulator).returncode == 0
    store_file = tmp_path / "output" / "abr.sqlite3"
    backup = tmp_path / "backup.sqlite3"
    shutil.copy(store_file, backup)

    # When the store file is damaged
    if damage == "truncate":
        with store_file.open("r+b") as handle:
            handle.truncate(store_file.stat().st_size // 3)
    else:
        store_file.write_bytes(b"these are not the bytes of a database\n" * 100)

    # Then each command says which file, that it is not a readable store, and what to do
    for args in (("jobs",), ("status",), ("run", str(source))):
        failed = run_abr(*args, emulator=emulator)
        assert_one_line(failed, 1, str(store_file), "not a readable abr job store", "restore")

    # When the backup is put back, running the same file again finishes with nothing sent
    shutil.copy(backup, store_file)
    done = run_abr("run", str(source), emulator=emulator)
    assert done.returncode == 0, done.stderr
    assert_every_line(next((tmp_path / "output" / "results").glob("*.jsonl")))
    assert set(submissions(emulator).values()) == {1}


def test_foreign_sqlite_file_is_left_alone(emulator: Emulator, tmp_path: Path) -> None:
    # Given a SQLite file of another program where the store should be
    import sqlite3

    store_file = tmp_path / "output" / "abr.sqlite3"
    store_file.parent.mkdir()
    with sqlite3.connect(store_file) as conn:
        conn.execute("CREATE TABLE notes (text TEXT)")

    # When abr looks at it
    failed = run_abr("jobs", emulator=emulator)

    # Then it says so in one line, and adds no table to it
    assert_one_line(failed, 1, str(store_file), "not an abr job store")
    with sqlite3.connect(store_file) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    assert tables == ["notes"]
