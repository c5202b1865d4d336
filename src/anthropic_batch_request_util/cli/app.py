"""abr — get every Claude request in a file answered through the Message Batches API.

Quick start:

\b
  abr init                      write settings.yaml and a .env template here
  abr run requests.json         submit, wait, write output/results/<job>.jsonl
  abr status [JOB]              where a job stands (default: the latest)
  abr jobs                      every job in the store
  abr results JOB --format csv  export the results
  abr resume JOB                carry on after Ctrl-C, a crash or a failure
  abr retry JOB                 send again what errored, expired or was canceled
  abr cancel JOB                cancel its batches, keep what they finished
  abr estimate requests.json    token counts and a cost range before launch
  abr emulator                  a local Anthropic API, to try abr for free
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from .. import __version__
from ..config import (
    Settings,
    load_api_key,
    load_settings,
    mask_secret,
    settings_to_dict,
    uses_local_broker,
    write_starter_files,
)
from ..engine.memory import give_back_large_buffers
from ..errors import AbrError, BudgetExceededError, JobInterrupted, UsageError
from ..jobs import RESULT_FORMATS, Job, submit
from ..jobs import job as find_job
from ..jobs import jobs as all_jobs
from ..jobs import run as run_requests
from . import render
from .options import (
    CancelNoWaitOpt,
    ConcurrencyOpt,
    ConfigOpt,
    JsonOpt,
    MaxCostOpt,
    NameOpt,
    NoWaitOpt,
    OutputOpt,
)

app = typer.Typer(
    help=__doc__,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
config_app = typer.Typer(help="Inspect the effective settings.", no_args_is_help=True)
app.add_typer(config_app, name="config")
worker_app = typer.Typer(
    help="Celery workers for the distributed deployment (set celery.broker_url to redis://...).",
    no_args_is_help=True,
)
app.add_typer(worker_app, name="worker")


def _version(given: bool) -> None:
    if given:
        print(f"abr {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    pass


@contextmanager
def _user_errors() -> Iterator[None]:
    """Every abr error becomes one line on stderr and its exit code: no traceback."""
    try:
        yield
    except AbrError as error:
        render.error(str(error))
        raise typer.Exit(error.exit_code) from None


def _settings(config: Path | None, output: Path | None) -> Settings:
    overrides: dict[str, Any] = {}
    if output is not None:
        overrides["storage.base_dir"] = str(output)
    return load_settings(config, overrides)


def _flags(config: Path | None, output: Path | None) -> str:
    """The settings flags as given, for the commands a message tells the user to run."""
    given = [("-o", output), ("--config", config)]
    return "".join(f" {flag} {shlex.quote(str(path))}" for flag, path in given if path)


@contextmanager
def _driving(job: Callable[[], Job | None], as_json: bool, flags: str) -> Iterator[None]:
    """Render how a drive of a job ended, also when Ctrl-C (exit 130) or the budget (exit 1,
    one line) stopped it; `job` is the handle that drove, once there is one."""
    try:
        yield
    except (JobInterrupted, BudgetExceededError) as stop:
        handle = job()
        if handle is None:
            raise
        _finish(handle, as_json, flags)
        if isinstance(stop, JobInterrupted):
            raise typer.Exit(130) from None
        raise
    else:
        handle = job()
        assert handle is not None
        _finish(handle, as_json, flags)


def _finish(job: Job, as_json: bool, flags: str) -> None:
    if as_json:
        print(orjson.dumps(job.summary()).decode())
    else:
        render.outcome(job, flags, found_again=job.existing)


@app.command()
def run(
    file: Annotated[Path, typer.Argument(help="Requests: the original JSON format or JSONL.")],
    config: ConfigOpt = None,
    output: OutputOpt = None,
    no_wait: NoWaitOpt = False,
    max_cost: MaxCostOpt = None,
    canary: Annotated[
        str | None,
        typer.Option(
            "--canary", help="Send N requests (or P%) first, show them, then ask to go on."
        ),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Go on after the canary.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Submit every request in FILE and wait for the results (resumes a known job)."""
    with _user_errors():
        settings = _settings(config, output)
        progress = render.Progress(enabled=not as_json)
        stored: list[Job] = []

        def on_stored(job: Job) -> None:
            stored.append(job)
            progress.stored(job)

        start = submit if no_wait else run_requests
        with _driving(lambda: stored[0] if stored else None, as_json, _flags(config, output)):
            with progress:
                start(
                    file,
                    settings=settings,
                    max_cost=max_cost,
                    progress=progress.update,
                    canary=canary,
                    on_warning=render.warning,
                    on_stored=on_stored,
                )
            _after_canary(stored[0], yes=yes, as_json=as_json)


def _after_canary(job: Job, *, yes: bool, as_json: bool) -> None:
    """Show the canary, when the job paused after one; go on with the rest when the user
    says so (or --yes), within the budget; otherwise stop after it with the command that
    goes on."""
    report = job.canary()
    if report is None:
        return
    render.canary(report, job, to_stderr=as_json)
    if report.over_budget:  # said alone: the job's summary would only repeat it
        render.error(render.canary_over_budget(report, job))
        raise typer.Exit(BudgetExceededError.exit_code)
    if not yes and not (sys.stdin.isatty() and render.ask_go_on(report)):
        render.stopped_after_canary(job, to_stderr=as_json)
        raise typer.Exit(0)
    progress = render.Progress(enabled=not as_json)
    with progress:
        job.resume(progress=progress.update)


@app.command()
def estimate(
    file: Annotated[Path, typer.Argument(help="Requests: the original JSON format or JSONL.")],
    offline: Annotated[
        bool, typer.Option("--offline", help="Approximate tokens locally; no API calls.")
    ] = False,
    concurrency: Annotated[int, typer.Option(help="count_tokens calls in flight.")] = 8,
    rate: Annotated[float, typer.Option(help="count_tokens calls per second at most.")] = 50.0,
    sample: Annotated[
        int | None,
        typer.Option(
            "--sample",
            help="Count this many random requests online, calibrate the rest (default 1000).",
        ),
    ] = None,
    count_all: Annotated[
        bool, typer.Option("--all", help="Count every request online, however many.")
    ] = False,
    config: ConfigOpt = None,
    output: OutputOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Count tokens and give a cost range before anything is submitted."""
    from ..cost import estimate as estimating
    from ..cost.pricing import price_table_for

    with _user_errors():
        if concurrency < 1 or rate <= 0:
            raise UsageError("--concurrency must be at least 1 and --rate above 0")
        if count_all and sample is not None:
            raise UsageError("--all and --sample exclude each other: give one")
        if sample is not None and sample < 2:
            raise UsageError("--sample must be at least 2 requests")
        sample = None if count_all else (sample or estimating.DEFAULT_SAMPLE)
        settings = _settings(config, output)
        progress = render.Counter("counting tokens", enabled=not as_json and not offline)
        with progress:
            result = estimating.estimate(
                file,
                settings,
                offline=offline,
                concurrency=concurrency,
                rate_per_s=rate,
                sample=sample,
                prices=price_table_for(settings.pricing_file),
                on_progress=progress.update,
            )
        if as_json:
            print(orjson.dumps(result.as_dict()).decode())
        else:
            render.estimate(result)


@app.command()
def resume(
    job: Annotated[str, typer.Argument(help="Job id (or a unique prefix).")],
    config: ConfigOpt = None,
    output: OutputOpt = None,
    no_wait: NoWaitOpt = False,
    max_cost: MaxCostOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Carry on with a job from where the store says it stands (--max-cost replaces its
    budget; requests a canary held back are sent)."""
    with _user_errors():
        handle = find_job(job, settings=_settings(config, output))
        progress = render.Progress(enabled=not as_json)
        with _driving(lambda: handle, as_json, _flags(config, output)), progress:
            handle.resume(
                wait=not no_wait,
                progress=progress.update,
                max_cost=max_cost,
                on_warning=render.warning,
            )


@app.command()
def retry(
    job: Annotated[str, typer.Argument(help="Job id (or a unique prefix).")],
    statuses: Annotated[
        str | None,
        typer.Option(
            "--status",
            help="Final statuses to send again, comma-separated: errored, expired, canceled "
            "(default: all three, except requests the API refused as invalid_request_error).",
        ),
    ] = None,
    max_cost: Annotated[
        float | None,
        typer.Option("--max-cost", help="Budget in USD for what this retry spends."),
    ] = None,
    config: ConfigOpt = None,
    output: OutputOpt = None,
    no_wait: NoWaitOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Send a finished job's failed requests again, as a new round of the same job; the
    results file keeps one line per request (the latest attempt's)."""
    with _user_errors():
        handle = find_job(job, settings=_settings(config, output))
        progress = render.Progress(enabled=not as_json)
        said = _driving(lambda: _said(handle, as_json), as_json, _flags(config, output))
        with said, progress:
            handle.retry(statuses, max_cost=max_cost, wait=not no_wait, progress=progress.update)


def _said(job: Job, as_json: bool) -> Job:
    """What `abr retry` or `abr cancel` did, before how the job then ended."""
    summary = job.summary()
    if not as_json and "retried" in summary:
        render.retried(summary["retried"], job.id)
    if not as_json and "canceled" in summary:
        render.canceled(summary["canceled"], summary)
    return job


@app.command()
def cancel(
    job: Annotated[str, typer.Argument(help="Job id (or a unique prefix).")],
    config: ConfigOpt = None,
    output: OutputOpt = None,
    no_wait: CancelNoWaitOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Cancel a job's running batches and collect what they had finished."""
    with _user_errors():
        handle = find_job(job, settings=_settings(config, output))
        progress = render.Progress(enabled=not as_json)
        said = _driving(lambda: _said(handle, as_json), as_json, _flags(config, output))
        with said, progress:
            handle.cancel(wait=not no_wait, progress=progress.update)


@app.command()
def status(
    job: Annotated[str | None, typer.Argument(help="Job id (default: the latest job).")] = None,
    watch: Annotated[
        bool, typer.Option("--watch", "-w", help="Refresh until the job ends.")
    ] = False,
    config: ConfigOpt = None,
    output: OutputOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show where a job stands: requests by status, errors, chunks, ETA and cost."""
    from . import status as views

    with _user_errors():
        settings = _settings(config, output)
        found = find_job(job, settings=settings) if job else _latest(settings)
        hint = render.idle_hint(found.id, uses_local_broker(settings), _flags(config, output))
        if watch:
            try:
                views.watch(found, as_json=as_json, console=render.stdout, hint=hint)
            except KeyboardInterrupt:
                raise typer.Exit(130) from None
        else:
            views.show(found.status(), as_json=as_json, console=render.stdout, hint=hint)


def _latest(settings: Settings) -> Job:
    found = all_jobs(settings=settings)
    if not found:
        raise UsageError("no jobs in the store yet; start one with: abr run FILE")
    return found[0]


@app.command()
def jobs(config: ConfigOpt = None, output: OutputOpt = None, as_json: JsonOpt = False) -> None:
    """List every job in the store, newest first."""
    with _user_errors():
        render.jobs(all_jobs(settings=_settings(config, output)), as_json=as_json)


@app.command()
def results(
    job: Annotated[str, typer.Argument(help="Job id (or a unique prefix).")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="jsonl or csv.")] = "jsonl",
    out: Annotated[Path | None, typer.Option("--out", help="Write here instead of stdout.")] = None,
    config: ConfigOpt = None,
    output: OutputOpt = None,
) -> None:
    """Export a job's results, one row per input request, in input order."""
    with _user_errors():
        if fmt not in RESULT_FORMATS:
            raise UsageError(f"--format must be jsonl or csv, not {fmt!r}")
        render.export(find_job(job, settings=_settings(config, output)), fmt, out)


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Where to write the files.")] = Path("."),
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing files.")] = False,
) -> None:
    """Write a starter settings.yaml and a .env template."""
    with _user_errors():
        for path in write_starter_files(directory, force=force):
            print(f"wrote {path}")


@config_app.command("show")
def config_show(config: ConfigOpt = None, output: OutputOpt = None) -> None:
    """Print the effective settings (defaults < settings.yaml < ABR_* < flags)."""
    with _user_errors():
        settings = _settings(config, output)
        render.settings_yaml(settings_to_dict(settings), mask_secret(load_api_key()))


def _worker_settings(config: Path | None, output: Path | None) -> Settings:
    settings = _settings(config, output)
    if uses_local_broker(settings):
        raise UsageError(
            "workers need a shared broker: set celery.broker_url or ABR_BROKER_URL "
            "(e.g. redis://127.0.0.1:6379/0)"
        )
    return settings


@worker_app.command("start")
def worker_start(
    name: NameOpt = "worker",
    concurrency: ConcurrencyOpt = None,
    config: ConfigOpt = None,
    output: OutputOpt = None,
) -> None:
    """Start a worker in the background (logs to <logs>/celery-NAME.log)."""
    from ..engine import worker

    with _user_errors():
        settings = _worker_settings(config, output)
        threads = concurrency or settings.celery.worker_concurrency
        started = worker.start_background(
            settings, name=name, concurrency=threads, config=config, output=output
        )
        log_file = worker.log_file_of(settings, started.name)
        print(f"worker {started.name} started (pid {started.pid}); logs: {log_file}")


@worker_app.command("debug")
def worker_debug(
    name: NameOpt = "worker",
    concurrency: ConcurrencyOpt = None,
    loglevel: Annotated[str, typer.Option("--loglevel", help="Celery log level.")] = "INFO",
    config: ConfigOpt = None,
    output: OutputOpt = None,
) -> None:
    """Run a worker in the foreground with console output (Ctrl-C stops it)."""
    from ..engine import worker

    with _user_errors():
        settings = _worker_settings(config, output)
        threads = concurrency or settings.celery.worker_concurrency
        worker.run_foreground(settings, name=name, concurrency=threads, loglevel=loglevel)


@worker_app.command("stop")
def worker_stop(config: ConfigOpt = None, output: OutputOpt = None) -> None:
    """Stop the background workers started from here (running steps finish first)."""
    from ..engine import worker

    with _user_errors():
        stopped = worker.stop_workers(_settings(config, output))
        for process in stopped:
            print(f"worker {process.name} (pid {process.pid}) stopped")
        if not stopped:
            print("no worker was running")


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def emulator(ctx: typer.Context) -> None:
    """Serve the built-in Anthropic API emulator (see `abr emulator --help`)."""
    from ..emulator.__main__ import main as emulator_main

    raise typer.Exit(emulator_main(list(ctx.args)))


def main() -> None:
    """Console entry point."""
    give_back_large_buffers()
    try:
        app()
    except KeyboardInterrupt:
        print("abr: interrupted", file=sys.stderr)
        sys.exit(130)
