"""The Python API end to end, in the process that calls it, against the emulator (real HTTP,
the official SDK, the in-process Celery worker, a SQLite store)."""

from __future__ import annotations

import gc
import importlib
import sys
import threading
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

import anthropic_batch_request_util as abr
from anthropic_batch_request_util.emulator import Emulator, EmulatorConfig

from .helpers import FAST_SETTINGS, abr_env, questions, run_abr, write_original

MODEL = "claude-3-5-haiku-20241022"


@pytest.fixture(autouse=True)
def fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in FAST_SETTINGS.items():
        monkeypatch.setenv(name, value)


def pairs(n: int, prefix: str = "q") -> Iterator[tuple[str, dict[str, Any]]]:
    for i, conversation in enumerate(questions(n)):
        yield f"{prefix}{i}", {"messages": conversation}


def calls(emulator: Emulator, endpoint: str) -> int:
    counted: dict[str, int] = emulator.stats()["calls"]
    return counted.get(endpoint, 0)


def submissions(emulator: Emulator) -> dict[str, int]:
    counted: dict[str, int] = emulator.stats(submissions=True)["submissions"]
    return counted


def test_run_answers_a_generator_in_input_order(emulator: Emulator) -> None:
    # Given a generator of (custom_id, params) pairs and settings built in code
    settings = abr.Settings(batch={"chunk_size": 7})

    # When it is run
    job = abr.run(pairs(20), settings=settings, progress=False)

    # Then every request has one succeeded result, in input order, with typed fields
    results = list(job.results())
    assert [r.custom_id for r in results] == [f"q{i}" for i in range(20)]
    assert all(r.ok and r.text and r.attempts == 1 and r.batch_id for r in results)
    status = job.status()
    assert (status.status, status.done, status.total) == ("finished", 20, 20)
    assert len(status.chunks) == 3
    assert job.cost_usd is not None and job.cost_usd > 0
    assert job.usage.output_tokens > 0
    assert job.results_path.exists()
    assert job.id.startswith("requests-")


def test_every_input_form_gives_the_same_answers(emulator: Emulator, tmp_path: Path) -> None:
    # Given the same three questions as a file, a dict and dicts of the native format
    source = write_original(tmp_path / "questions.json", 3, prefix="q", system="Be brief.")
    as_dict = orjson.loads(source.read_bytes())
    system = {"system": "Be brief."}
    native = (
        {"custom_id": f"q_{i}", "params": {"messages": c, **system}}
        for i, c in enumerate(questions(3))
    )

    # When each is run
    texts = [
        [r.text for r in abr.run(given, progress=False).results()]
        for given in (source, str(source), as_dict, native)
    ]

    # Then the answers are the same (the same requests went out)
    assert texts[0] == texts[1] == texts[2] == texts[3]
    assert len(texts[0]) == 3


def test_bad_requests_raise_located_input_errors_before_anything_is_sent(
    emulator: Emulator,
) -> None:
    # Given a generator whose second and fourth items are wrong
    items: list[Any] = [
        ("ok0", {"messages": [{"role": "user", "content": "hi"}]}),
        ("bad id", {"messages": [{"role": "user", "content": "hi"}]}),
        ("ok2", {"messages": [{"role": "user", "content": "hi"}]}),
        {"custom_id": "ok3", "params": {"messages": []}},
    ]

    # When it is run
    with pytest.raises(abr.InputError) as raised:
        abr.run(iter(items), progress=False)

    # Then each problem is located, nothing was sent, and no job was stored
    assert raised.value.problems == [
        'requests[1]: custom_id "bad id" does not match ^[a-zA-Z0-9_-]{1,64}$',
        "requests[3]: params.messages: must be a non-empty list",
    ]
    assert calls(emulator, "create") == 0
    assert abr.jobs() == []


def test_the_callers_dicts_are_not_changed(emulator: Emulator) -> None:
    params: dict[str, Any] = {"messages": [{"role": "user", "content": "hi"}]}

    abr.run([{"custom_id": "a", "params": params}], progress=False)

    assert params == {"messages": [{"role": "user", "content": "hi"}]}


def test_a_generator_of_200000_requests_is_stored_with_flat_memory(emulator: Emulator) -> None:
    # Given what 20,000 of the requests take in memory as a list
    def requests(n: int, last_bad: bool = False) -> Iterator[dict[str, Any]]:
        for i in range(n):
            text = f"Question {i}: please say something about the number {i}." * 3
            yield {
                "custom_id": f"r{i}",
                "params": {"messages": [{"role": "user", "content": text}]},
            }
        if last_bad:
            yield {"custom_id": "bad", "params": {}}

    # (the SDK and Celery, imported once per process while the input is read, are not
    # what is measured)
    importlib.import_module("anthropic_batch_request_util.engine.tasks")
    importlib.import_module("anthropic_batch_request_util.engine.submit")
    with pytest.raises(abr.InputError):  # a first, small job does the one-time imports
        abr.submit(requests(10, last_bad=True), progress=False)
    for thread in threading.enumerate():
        if thread.name == "abr-import":
            thread.join()
    tracemalloc.start()
    held = list(requests(20_000))
    list_bytes = tracemalloc.get_traced_memory()[0] * 10  # 200,000 of them
    del held
    gc.collect()
    tracemalloc.reset_peak()

    # When a generator of 200,000 requests (the last one wrong) is stored through the API
    base = tracemalloc.get_traced_memory()[0]
    with pytest.raises(abr.InputError) as raised:
        abr.submit(requests(200_000, last_bad=True), progress=False)
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()

    # Then all of it was read (the last one was checked) in a small, flat share of what
    # the list takes, and the bad one stopped everything before any batch was sent
    assert "requests[200000]" in str(raised.value)
    assert list_bytes > 100_000_000
    assert peak < list_bytes / 20, (peak, list_bytes)
    assert calls(emulator, "create") == 0


def test_results_are_read_while_the_job_runs() -> None:
    # Given an emulator whose answers fail once in two (api_error: retried in a new round)
    config = EmulatorConfig(
        processing_seconds=0.5, seed=3, retry_after=0.0, faults={"row_api_error": 0.5}
    )
    seen: list[tuple[int, list[abr.Result]]] = []
    with Emulator(config, host="127.0.0.1", port=0) as emulator:
        env = abr_env(emulator)
        job_holder: list[abr.Job] = []

        def look(status: abr.Status) -> None:
            # every look: read what has ended so far, while the job runs
            if status.status == "running" and 0 < status.done < status.total and len(seen) < 3:
                job_holder[:] = [abr.job(status.job_id)]
                seen.append((status.done, list(job_holder[0].results())))

        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("ANTHROPIC_BASE_URL", env["ANTHROPIC_BASE_URL"])
            # When the job runs, results are read from the progress hook
            job = abr.run(pairs(40), settings=abr.Settings(batch={"chunk_size": 40}), progress=look)

    # Then each read gave only requests that had ended (no answer of a request waiting to
    # be retried), in input order, and the finished job gives them all
    assert seen, "the job was seen running with some requests done"
    for done, results in seen:
        assert len(results) >= done
        assert all(r.status == "succeeded" for r in results)
        order = [int(r.custom_id[1:]) for r in results]
        assert order == sorted(order)
    assert len(seen[0][1]) < 40
    assert len(list(job.results())) == 40
    assert job.status().retrying == 0


def test_results_filter_by_status_and_go_to_pandas(emulator: Emulator) -> None:
    job = abr.run(pairs(5), progress=False)

    assert len(list(job.results(status="succeeded"))) == 5
    assert list(job.results(status=["errored", "expired"])) == []
    pandas = pytest.importorskip("pandas")
    frame = job.to_pandas()
    assert isinstance(frame, pandas.DataFrame)
    assert list(frame["custom_id"]) == [f"q{i}" for i in range(5)]
    assert set(frame.columns) >= {"status", "text", "cost_usd", "attempts"}


def test_ctrl_c_while_waiting_leaves_a_job_that_resumes(emulator: Emulator) -> None:
    # Given a run interrupted (Ctrl-C) once its batches are submitted
    def interrupt(status: abr.Status) -> None:
        if any(chunk.batch_id for chunk in status.chunks):
            raise KeyboardInterrupt

    with pytest.raises(abr.JobInterrupted) as raised:
        abr.run(pairs(30), settings=abr.Settings(batch={"chunk_size": 10}), progress=interrupt)

    # Then the exception names the job and how to carry on, and the job is still running
    job_id = raised.value.job_id
    assert isinstance(raised.value, KeyboardInterrupt)
    assert f"abr.job({job_id!r}).resume()" in str(raised.value)
    job = abr.job(job_id)
    assert job.status().status == "running"

    # When it is resumed, it finishes without sending any request twice
    job.resume(progress=False)
    assert job.status().status == "finished"
    assert len(list(job.results(status="succeeded"))) == 30
    assert set(submissions(emulator).values()) == {1}


def test_running_the_same_requests_again_finds_the_job(emulator: Emulator) -> None:
    # Given a job run from a notebook cell
    first = abr.run(pairs(12), progress=False)
    created = calls(emulator, "create")

    # When the cell runs again in the same process
    second = abr.run(pairs(12), progress=False)

    # Then it is the same job, answered at once, and nothing was sent again
    assert second == first
    assert calls(emulator, "create") == created
    assert [j.id for j in abr.jobs()] == [first.id]


def test_submit_returns_before_the_answers_and_wait_collects_them(emulator: Emulator) -> None:
    job = abr.submit(pairs(10), progress=False)
    assert job.status().status == "running"

    job.wait(progress=False)

    assert job.status().status == "finished"
    assert len(list(job.results())) == 10


def test_wait_with_a_timeout_stops_waiting_not_the_job() -> None:
    config = EmulatorConfig(processing_seconds=30, seed=1, retry_after=0.0)
    with Emulator(config, host="127.0.0.1", port=0) as emulator, pytest.MonkeyPatch.context() as p:
        p.setenv("ANTHROPIC_BASE_URL", emulator.base_url)
        job = abr.submit(pairs(3), progress=False)

        with pytest.raises(TimeoutError, match="wait\\(\\) again"):
            job.wait(timeout=0.5, progress=False)

        assert job.status().status == "running"
        assert job.cancel(progress=False)
        assert job.status().status == "finished"


def test_progress_hook_sees_the_job_move(emulator: Emulator) -> None:
    seen: list[abr.Status] = []

    abr.run(pairs(4), progress=seen.append)

    assert seen[-1].status == "finished"
    assert seen[-1].as_dict()["done"] == 4


def test_status_is_what_abr_status_json_prints(emulator: Emulator) -> None:
    # Given a job run from Python
    job = abr.run(pairs(3), progress=False)

    # When `abr status --json` looks at it from the command line
    completed = run_abr("status", job.id, "--json", emulator=emulator)

    # Then it prints the figures Job.status() gives
    printed = orjson.loads(completed.stdout)
    mine = job.status().as_dict()
    assert printed.pop("idle") is None  # what to run when nothing works on it: CLI only
    for volatile in ("eta_s",):
        printed.pop(volatile), mine.pop(volatile)
    for chunks in (printed["chunks"], mine["chunks"]):
        for chunk in chunks:
            chunk.pop("age_s")
    assert printed == mine


def test_an_unknown_job_is_a_usage_error(emulator: Emulator) -> None:
    abr.run(pairs(1), progress=False)

    with pytest.raises(abr.JobNotFoundError):
        abr.job("no-such-job-at-all")


@pytest.mark.skipif(
    not hasattr(sys.modules["anthropic_batch_request_util.engine.runner"], "retry_job"),
    reason="abr retry (engine.runner.retry_job) is not on this branch",
)
def test_retry_sends_the_errored_requests_again() -> None:
    # Given a finished job whose requests all failed with an invalid request error once
    config = EmulatorConfig(
        processing_seconds=0.2, seed=2, retry_after=0.0, faults={"row_expired": 1.0}
    )
    with Emulator(config, host="127.0.0.1", port=0) as emulator, pytest.MonkeyPatch.context() as p:
        p.setenv("ANTHROPIC_BASE_URL", emulator.base_url)
        job = abr.run(pairs(6), settings=abr.Settings(batch={"max_attempts": 1}), progress=False)
        assert {r.status for r in job.results()} == {"expired"}
        emulator.set_faults(row_expired=0.0)

        # When the expired ones are retried
        count = job.retry("expired", progress=False)

    # Then each was sent once more and now has its answer
    assert count == 6
    assert {r.status for r in job.results()} == {"succeeded"}
    assert all(r.attempts == 2 for r in job.results())


def test_requests_from_code_are_checked_like_a_file_before_anything_is_created(
    emulator: Emulator, tmp_path: Path
) -> None:
    # Given settings naming a pricing file that does not exist
    settings = abr.Settings(pricing_file=str(tmp_path / "missing.yaml"))

    # When requests from a generator are run with them
    with pytest.raises(abr.SettingsError, match=r"missing\.yaml"):
        abr.run(pairs(3), settings=settings, progress=False)

    # Then nothing was stored or sent, as `abr run FILE` would have refused
    assert not (Path("output") / "abr.sqlite3").exists()
    assert calls(emulator, "create") == 0
