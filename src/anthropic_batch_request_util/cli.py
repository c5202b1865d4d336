"""The `abr` command line: parses arguments, calls one engine function, renders.

Quick start:

    abr init                         write settings.yaml and a .env template here
    abr run requests.json            submit, wait, write output/results/<job>.jsonl
    abr status [JOB]                 where a job stands
    abr jobs                         every job in the store
    abr results JOB --format csv     export results
    abr resume JOB / abr cancel JOB  pick up or stop a job
    abr emulator                     a local Anthropic API for trying abr for free
"""

from __future__ import annotations

import sys

import typer

from .errors import AbrError

app = typer.Typer(
    help=__doc__,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def emulator(ctx: typer.Context) -> None:
    """Serve the built-in Anthropic API emulator (see `abr emulator --help`)."""
    from .emulator.__main__ import main as emulator_main

    raise typer.Exit(emulator_main(list(ctx.args)))


def main() -> None:
    """Console entry point: one clear line and an exit code for every abr error."""
    try:
        app(standalone_mode=False)
    except AbrError as error:
        print(f"abr: error: {error}", file=sys.stderr)
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        print("abr: interrupted", file=sys.stderr)
        sys.exit(130)
