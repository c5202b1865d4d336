"""A local emulator of the Anthropic API, faithful enough for the official SDK, with faults.

It serves the Message Batches API (create, retrieve, list, cancel, delete, results) and
`POST /v1/messages` (streaming too, see `streaming`) / `/v1/messages/count_tokens` with
the real paths, headers, JSON shapes, id formats and error envelope, answers every request
deterministically (see `reply_text`), enforces the API's batch limits when asked (see
`limits`), and can inject HTTP, stream and per-request faults at chosen fractions. Nothing
leaves the machine and nothing is paid for.

Run it and point the SDK (or abr) at it::

    abr emulator --port 8765 --processing-seconds 2 --fault http_429=0.05
    # or: python -m anthropic_batch_request_util.emulator --port 8765
    export ANTHROPIC_BASE_URL=http://127.0.0.1:8765 ANTHROPIC_API_KEY=anything

Or in-process, on a free port, as the tests do::

    from anthropic_batch_request_util.emulator import Emulator, EmulatorConfig
    with Emulator(EmulatorConfig(processing_seconds=0.2, seed=7)) as emu:
        client = anthropic.Anthropic(base_url=emu.base_url, api_key="test-key")
        emu.set_faults(http_500=0.2)
        emu.stats()

Batches take `processing_seconds` and then end, worked out from timestamps (no thread
per batch). Admin endpoints (no key needed) are described in `admin`, fault names and
their draws in `faults`, the token and prompt-caching rule in `usage`, the lifecycle in
`batches`.
"""

from __future__ import annotations

from .config import EmulatorConfig
from .faults import FAULTS, Fault
from .replies import reply_text
from .server import Emulator

__all__ = ["FAULTS", "Emulator", "EmulatorConfig", "Fault", "reply_text"]
