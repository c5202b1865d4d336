"""The one place abr reaches into Celery's private state: the timer's stop flag, set so that
a finished local run can wake the idle timer and exit at once (engine/tasks.py)."""

from __future__ import annotations

import threading

from celery.utils.timer2 import Timer

from anthropic_batch_request_util.engine.tasks import _PromptTimer


def test_celerys_timer_still_has_the_stop_flag_abr_sets() -> None:
    timer = Timer()
    assert isinstance(timer._Timer__is_shutdown, threading.Event)  # type: ignore[attr-defined]


def test_a_stopped_prompt_timer_thread_ends() -> None:
    timer = _PromptTimer()
    timer.ensure_started()
    timer.stop()
    timer.join(5)
    assert not timer.is_alive()
