"""Preflight: before anything is sent, check that the job's files can be written where the
settings put them, and that there is room for them at a rough estimate.

The estimate is the input's size times a factor per input format, measured with
`abr run` against the emulator (short answers) at 2,000 and 20,000 requests:

    original format   store 16-20x the input, results file 11x
    JSONL             store 6.5x the input,   results file 4.3x

Real answers are often longer than the emulator's, so the factors below round up; a job
whose estimate does not fit is refused, one whose estimate takes more than half of the
free room gets a warning.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..config import Settings, database_url, logs_dir, records_dir, results_dir
from ..errors import UsageError
from ..inputs import InputFormat, detect_format
from ..output import local_fault

__all__ = ["Room", "check_output_folders", "check_room", "preflight"]

#: bytes of store per byte of input, by input format (measured: 20x and 6.5x)
STORE_FACTOR = {InputFormat.ORIGINAL: 20.0, InputFormat.JSONL: 7.0}
#: bytes of results file per byte of input (measured: 11x and 4.3x with short answers)
RESULTS_FACTOR = {InputFormat.ORIGINAL: 12.0, InputFormat.JSONL: 5.0}
CLOSE_SHARE = 0.5  #: warn when the estimate takes more than this share of the free room
MB = 1_000_000


@dataclass
class Room:
    """The bytes a job needs on one filesystem, and which folders they are for."""

    folder: Path
    needed: int = 0
    what: list[str] = field(default_factory=list)


def preflight(settings: Settings, input_path: Path | None, *, store: bool = True) -> list[str]:
    """Refuse (UsageError) a job whose files cannot be written or cannot fit; the warnings
    to show when it fits only just. Without `input_path`, only the folders are checked."""
    folders = [results_dir(settings), records_dir(settings), logs_dir(settings)]
    sqlite = _sqlite_folder(settings) if store else None
    if sqlite is not None:
        folders.append(sqlite)
    check_output_folders(folders)
    if input_path is None:
        return []
    return check_room(settings, input_path, sqlite)


def _sqlite_folder(settings: Settings) -> Path | None:
    url = database_url(settings)
    return Path(url.removeprefix("sqlite:///")).parent if url.startswith("sqlite:///") else None


def check_output_folders(folders: list[Path]) -> None:
    """Each folder exists (or is made) and takes a new file."""
    for folder in folders:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=folder, prefix=".abr-check-"):
                pass
        except OSError as error:
            fault = local_fault(error, folder)
            detail = str(fault) if fault is not None else f"cannot write {folder}: {error}"
            raise UsageError(
                f"{detail}: make it writable, or choose another --output (nothing was sent)"
            ) from error


def check_room(settings: Settings, input_path: Path, sqlite_folder: Path | None) -> list[str]:
    """Refuse a job whose estimated store and results do not fit; warn when close."""
    try:
        size = input_path.stat().st_size
    except OSError:
        return []  # reading the input reports it
    form = detect_format(input_path)
    needs = [(results_dir(settings), int(size * RESULTS_FACTOR[form]), "results")]
    if sqlite_folder is not None:
        needs.append((sqlite_folder, int(size * STORE_FACTOR[form]), "job store"))
    warnings = []
    for room in _by_filesystem(needs):
        free = shutil.disk_usage(room.folder).free
        what = " and ".join(room.what)
        if room.needed > free:
            raise UsageError(
                f"not enough room in {room.folder} for the {what}: about "
                f"{_mb(room.needed)} needed, {_mb(free)} free: free space there, or choose "
                "another --output (nothing was sent)"
            )
        if room.needed > free * CLOSE_SHARE:
            warnings.append(
                f"{room.folder} is nearly full: the {what} need about {_mb(room.needed)} "
                f"of the {_mb(free)} free"
            )
    return warnings


def _by_filesystem(needs: list[tuple[Path, int, str]]) -> list[Room]:
    """Needs on the same filesystem add up."""
    rooms: dict[int, Room] = {}
    for folder, needed, what in needs:
        room = rooms.setdefault(os.stat(folder).st_dev, Room(folder))
        room.needed += needed
        room.what.append(what)
    return list(rooms.values())


def _mb(n: int) -> str:
    return f"{n / MB:.1f} MB"
