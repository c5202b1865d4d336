"""The options several commands share, declared once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = [
    "CancelNoWaitOpt",
    "ConcurrencyOpt",
    "ConfigOpt",
    "JsonOpt",
    "MaxCostOpt",
    "NameOpt",
    "NoWaitOpt",
    "OutputOpt",
]

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="Settings file (default: ./settings.yaml).")
]
OutputOpt = Annotated[
    Path | None, typer.Option("--output", "-o", help="Output base directory (storage.base_dir).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object at the end.")]
NoWaitOpt = Annotated[bool, typer.Option("--no-wait", help="Return once every batch is submitted.")]
MaxCostOpt = Annotated[
    float | None,
    typer.Option(
        "--max-cost",
        help="Budget in USD: a batch is sent only if its worst case still fits (see README).",
    ),
]


CancelNoWaitOpt = Annotated[
    bool,
    typer.Option(
        "--no-wait",
        help="Return once the cancel is asked for; do not wait for the batches to end "
        "and their finished answers to be collected (abr status shows them later).",
    ),
]

NameOpt = Annotated[str, typer.Option("--name", help="Worker name (one pid file per name).")]
ConcurrencyOpt = Annotated[
    int | None, typer.Option("--concurrency", help="Threads (default celery.worker_concurrency).")
]
