"""Where log records go during a run: the job's log file, never the user's terminal."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from anthropic_batch_request_util.engine.logs import LOGGERS, setup_logging


@pytest.fixture(autouse=True)
def _restore_loggers() -> object:
    saved = {name: logging.getLogger(name) for name in LOGGERS}
    state = {n: (lg.handlers[:], lg.level, lg.propagate) for n, lg in saved.items()}
    yield None
    for name, (handlers, level, propagate) in state.items():
        logger = saved[name]
        for handler in logger.handlers[:]:
            if handler not in handlers:
                logger.removeHandler(handler)
                handler.close()
        logger.setLevel(level)
        logger.propagate = propagate


def test_a_store_driver_error_goes_to_the_log_not_the_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a run's logging
    path = setup_logging(tmp_path)

    # When SQLAlchemy reports a cursor it could not close (a dropped store connection)
    try:
        raise ConnectionError("server closed the connection unexpectedly")
    except ConnectionError:
        logging.getLogger("sqlalchemy.engine.Engine").error("Error closing cursor", exc_info=True)

    # Then the terminal shows nothing, and the log file has it with its traceback
    assert capsys.readouterr().err == ""
    logged = path.read_text()
    assert "Error closing cursor" in logged and "Traceback" in logged
