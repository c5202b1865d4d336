"""A create body spooled to a file (store/bodies.py) is sent from the file by the SDK, over
HTTP to the emulator: whole, byte for byte, as one batch."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from anthropic_batch_request_util import api
from anthropic_batch_request_util.config import load_settings
from anthropic_batch_request_util.emulator import Emulator
from anthropic_batch_request_util.inputs.chunking import batch_body


def test_a_body_in_a_file_is_sent_whole_in_large_pieces(
    tmp_path: Path, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a create body of 300 requests in a file, read back in pieces smaller than it
    monkeypatch.setattr(api, "UPLOAD_CHUNK_BYTES", 10_000)
    requests = [
        orjson.dumps(
            {
                "custom_id": f"q{i}",
                "params": {
                    "model": "claude-3-5-haiku-20241022",
                    "max_tokens": 10,
                    "messages": [{"role": "user", "content": f"question {i} " + "x" * 100}],
                },
            }
        )
        for i in range(300)
    ]
    path = tmp_path / "body.json"
    path.write_bytes(batch_body(requests))
    received: list[bytes] = []
    create = emulator.state.create_batch

    def recording(body: bytes, version: str) -> object:
        received.append(bytes(body))
        return create(body, version)

    monkeypatch.setattr(emulator.state, "create_batch", recording)

    # When it is created from the file
    client = api.make_client(load_settings(), "sk-ant-test")
    batch = api.create_batch(client, path)

    # Then the API got exactly the file's bytes, as one batch of 300 requests
    assert received == [path.read_bytes()]
    assert batch.request_counts.processing == 300
    assert path.stat().st_size > 5 * api.UPLOAD_CHUNK_BYTES  # read in several pieces
