"""Logging: everything abr and its workers do goes to a log file under `storage.subdirs.logs`;
the terminal shows progress, not log lines."""

from __future__ import annotations

import logging
from pathlib import Path

__all__ = ["setup_logging"]

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s"
LOGGERS = ("anthropic_batch_request_util", "celery", "anthropic")


def setup_logging(directory: Path, filename: str = "abr.log", level: int = logging.INFO) -> Path:
    """Send abr's (and Celery's and the SDK's) log records to `directory/filename`."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / filename
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not any(getattr(h, "baseFilename", None) == str(path) for h in logger.handlers):
            logger.addHandler(handler)
        logger.setLevel(level if name == LOGGERS[0] else logging.WARNING)
        logger.propagate = False
    return path
