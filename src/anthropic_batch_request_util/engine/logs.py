"""Logging: everything abr and its workers do goes to a log file under `storage.subdirs.logs`;
the terminal shows progress, not log lines."""

from __future__ import annotations

import logging
import os
from pathlib import Path

__all__ = ["console_logging", "setup_logging"]

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s"
#: abr first; the libraries whose warnings and errors belong in the log, not on the terminal
#: (SQLAlchemy reports a cursor it could not close, a dropped store connection, with a
#: traceback that would otherwise reach stderr through logging's last resort)
LOGGERS = ("anthropic_batch_request_util", "celery", "anthropic", "sqlalchemy")


class _JobLog(logging.FileHandler):
    """The log file `setup_logging` set up (told apart from handlers the user added). A
    file that cannot be written (a full or read-only disk) drops the record: the job
    reports that fault itself, and a traceback on the terminal would bury it."""

    def handleError(self, record: logging.LogRecord) -> None:
        pass


def setup_logging(directory: Path, filename: str = "abr.log", level: int = logging.INFO) -> Path:
    """Send abr's (and Celery's and the SDK's) log records to `directory/filename`. Called
    again in the same process (a second job from Python), the records go to the new file
    only, and the old one is closed."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / filename
    target = os.path.abspath(path)  # as a FileHandler names its file
    handler: _JobLog | None = None
    for name in LOGGERS:
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if isinstance(h, _JobLog)]:
            if old.baseFilename != target:
                logger.removeHandler(old)
                old.close()
        if not any(getattr(h, "baseFilename", None) == target for h in logger.handlers):
            handler = handler or _job_log(path)
            logger.addHandler(handler)
        logger.setLevel(level if name == LOGGERS[0] else logging.WARNING)
        logger.propagate = False
    return path


def _job_log(path: Path) -> _JobLog:
    handler = _JobLog(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    return handler


def console_logging(level: int = logging.INFO) -> None:
    """abr's records on stderr (a worker in the foreground, or its log file when started
    in the background, which points stderr there)."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logger = logging.getLogger(LOGGERS[0])
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
