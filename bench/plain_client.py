"""The floor: a client that only parses, posts and copies bytes. No SDK, no checks.

    ANTHROPIC_BASE_URL=http://127.0.0.1:8765 ANTHROPIC_API_KEY=x \
        .venv/bin/python bench/plain_client.py input.json results.jsonl

Reads an original-format input with orjson, posts a batch for every 100,000 requests
(fewer when 256 MB would be passed) over one keep-alive `http.client` connection, polls
each batch until it has ended, and copies its results to a JSONL file as they come. The
requests carry the same params as bench/baseline_sdk.py. Nothing is validated, retried,
stored or counted: what it takes is what the work itself costs on this machine.
"""

from __future__ import annotations

import http.client
import os
import sys
import time
import urllib.parse
from collections.abc import Iterator

import orjson

MAX_REQUESTS = 100_000  #: the API's limit per batch
MAX_BYTES = 256 * 1024 * 1024  #: the API's limit per batch create body
POLL_S = 0.05  #: seconds between two polls (the same as the SDK script's)
COPY_BYTES = 1 << 16  #: bytes copied from the results stream at a time
PARAMS = {"model": "claude-3-5-haiku-20241022", "max_tokens": 8192, "temperature": 0.0}
BATCHES = "/v1/messages/batches"


class Api:
    """One keep-alive connection to the API."""

    def __init__(self, base_url: str, api_key: str) -> None:
        url = urllib.parse.urlsplit(base_url)
        kind = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        self.conn = kind(url.hostname or "127.0.0.1", url.port, timeout=600)
        self.headers = {"x-api-key": api_key, "anthropic-version": "2023-06-01"}

    def call(self, method: str, path: str, body: bytes | None = None) -> http.client.HTTPResponse:
        headers = dict(self.headers)
        if body is not None:
            headers["content-type"] = "application/json"
        self.conn.request(method, path, body=body, headers=headers)
        response = self.conn.getresponse()
        if response.status != 200:
            raise RuntimeError(f"{method} {path}: HTTP {response.status} {response.read()[:200]!r}")
        return response

    def json(self, method: str, path: str, body: bytes | None = None) -> dict[str, object]:
        value: dict[str, object] = orjson.loads(self.call(method, path, body).read())
        return value


def batches(data: dict[str, object]) -> Iterator[bytes]:
    """Create bodies of up to MAX_REQUESTS requests and MAX_BYTES each."""
    prefix = data.get("custom_id_prefix") or "request"
    system = data["system_prompt"]
    parts: list[bytes] = []
    size = len(b'{"requests":[]}')
    for index, messages in enumerate(data["messages_list"]):  # type: ignore[arg-type]
        params = {**PARAMS, "system": system, "messages": messages}
        request = orjson.dumps({"custom_id": f"{prefix}_{index}", "params": params})
        if parts and (len(parts) == MAX_REQUESTS or size + len(request) + 1 > MAX_BYTES):
            yield b'{"requests":[' + b",".join(parts) + b"]}"
            parts, size = [], len(b'{"requests":[]}')
        parts.append(request)
        size += len(request) + 1
    if parts:
        yield b'{"requests":[' + b",".join(parts) + b"]}"


def main(input_path: str, output_path: str) -> int:
    api = Api(os.environ["ANTHROPIC_BASE_URL"], os.environ["ANTHROPIC_API_KEY"])
    with open(input_path, "rb") as handle:
        data = orjson.loads(handle.read())
    batch_ids = [str(api.json("POST", BATCHES, body)["id"]) for body in batches(data)]
    del data
    with open(output_path, "wb") as out:
        for batch_id in batch_ids:
            while api.json("GET", f"{BATCHES}/{batch_id}")["processing_status"] != "ended":
                time.sleep(POLL_S)
            response = api.call("GET", f"{BATCHES}/{batch_id}/results")
            while chunk := response.read(COPY_BYTES):
                out.write(chunk)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: plain_client.py INPUT.json OUT.jsonl")
    sys.exit(main(sys.argv[1], sys.argv[2]))
