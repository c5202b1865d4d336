"""What the Python API accepts as settings and as requests, and how each is started.

Settings: an `abr.Settings` built in code (taken as it is, its `storage.base_dir` made
absolute against the working directory as `load_settings` does), a settings file (layered
like ``--config``: defaults, the file, ``.env``, ``ABR_*``), or None (the usual layering).

Requests: a path to a file in either input format; the original format as a dict; or any
iterable of ``{"custom_id", "params"}`` dicts or ``(custom_id, params)`` pairs, read one at
a time into the store. With a budget or a canary, requests from code are first written to a
temporary JSONL file, since the estimate that checks a budget (and the canary's hold) work
on a file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from .config import Settings, load_settings
from .cost.budget import Canary
from .engine import runner
from .engine.ingest import Ingested
from .inputs import InputFormat, Request, request_defaults
from .inputs.iterable import read_iterable, read_mapping

__all__ = ["DEFAULT_NAME", "RequestsInput", "SettingsInput", "launch", "settings_for"]

DEFAULT_NAME = "requests"  #: how a job from code is named when the caller names none

#: what `abr.run` and `abr.submit` take as requests
RequestsInput = (
    str
    | os.PathLike[str]
    | Mapping[str, Any]
    | Iterable[Mapping[str, Any]]
    | Iterable[tuple[str, Mapping[str, Any]]]
)
#: what `settings=` takes
SettingsInput = Settings | str | os.PathLike[str] | None


def settings_for(settings: SettingsInput) -> Settings:
    """The settings a call runs with (see the module docstring)."""
    if settings is None:
        return load_settings()
    if not isinstance(settings, Settings):
        return load_settings(Path(settings))
    base_dir = Path(settings.storage.base_dir).expanduser().absolute()
    storage = settings.storage.model_copy(update={"base_dir": str(base_dir)})
    return settings.model_copy(update={"storage": storage})


def launch(
    requests: RequestsInput,
    settings: Settings,
    *,
    name: str | None,
    wait: bool,
    max_cost: float | None,
    on_progress: runner.ProgressCallback,
    on_ingested: Callable[[Ingested], None] | None = None,
    canary: Canary | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> runner.Outcome:
    """Store `requests` as a job (or find the job they already are) and drive it."""
    drive: dict[str, Any] = {"wait": wait, "on_progress": on_progress, "on_ingested": on_ingested}
    if isinstance(requests, str | os.PathLike):
        return runner.run_job(
            settings,
            Path(requests),
            max_cost=max_cost,
            canary=canary,
            on_warning=on_warning,
            **drive,
        )
    label = name or DEFAULT_NAME
    read, input_format = _reader(requests, settings)
    if max_cost is not None or canary is not None:
        with tempfile.TemporaryDirectory(prefix="abr-") as folder:
            path = _spool(read, Path(folder) / f"{label}.jsonl")
            return runner.run_job(
                settings, path, max_cost=max_cost, canary=canary, on_warning=on_warning, **drive
            )
    return runner.run_stream(settings, read, name=label, input_format=input_format, **drive)


def _reader(
    requests: Mapping[str, Any] | Iterable[Any], settings: Settings
) -> tuple[Iterator[Request], InputFormat]:
    defaults = request_defaults(settings)
    if isinstance(requests, Mapping):
        return read_mapping(requests, defaults), InputFormat.ORIGINAL
    return read_iterable(requests, defaults), InputFormat.JSONL


def _spool(requests: Iterator[Request], path: Path) -> Path:
    """Write the (checked) requests as JSONL: each body is a JSONL request line."""
    with path.open("wb") as handle:
        for request in requests:
            handle.write(request.body)
            handle.write(b"\n")
    return path
