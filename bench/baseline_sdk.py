"""The plain way, as a user would write it: the official SDK alone, no abr.

    ANTHROPIC_BASE_URL=http://127.0.0.1:8765 ANTHROPIC_API_KEY=x \
        .venv/bin/python bench/baseline_sdk.py input.json results.jsonl

Reads an original-format input, creates a batch for every 100,000 requests (fewer when
256 MB would be passed), polls each batch until it has ended, and streams every result to
a JSONL file. The requests carry the same params abr sends with its default settings.
"""

from __future__ import annotations

import json
import sys
import time

import anthropic

MAX_REQUESTS = 100_000  #: the API's limit per batch
MAX_BYTES = 256 * 1024 * 1024  #: the API's limit per batch create body
POLL_S = 0.05  #: seconds between two polls (the same as abr's in the benchmark)
PARAMS = {"model": "claude-3-5-haiku-20241022", "max_tokens": 8192, "temperature": 0.0}


def main(input_path: str, output_path: str) -> int:
    client = anthropic.Anthropic(default_headers={"anthropic-version": "2023-06-01"})
    with open(input_path, encoding="utf-8") as handle:
        data = json.load(handle)
    prefix = data.get("custom_id_prefix") or "request"
    batch_ids: list[str] = []
    batch: list[dict[str, object]] = []
    size = len('{"requests":[]}')
    for index, messages in enumerate(data["messages_list"]):
        request: dict[str, object] = {
            "custom_id": f"{prefix}_{index}",
            "params": {**PARAMS, "system": data["system_prompt"], "messages": messages},
        }
        request_size = len(json.dumps(request)) + 1
        if batch and (len(batch) == MAX_REQUESTS or size + request_size > MAX_BYTES):
            batch_ids.append(client.messages.batches.create(requests=batch).id)  # type: ignore[arg-type]
            batch, size = [], len('{"requests":[]}')
        batch.append(request)
        size += request_size
    if batch:
        batch_ids.append(client.messages.batches.create(requests=batch).id)  # type: ignore[arg-type]
    del data, batch

    with open(output_path, "w", encoding="utf-8") as out:
        for batch_id in batch_ids:
            while client.messages.batches.retrieve(batch_id).processing_status != "ended":
                time.sleep(POLL_S)
            for result in client.messages.batches.results(batch_id):
                out.write(result.to_json(indent=None) + "\n")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: baseline_sdk.py INPUT.json OUT.jsonl")
    sys.exit(main(sys.argv[1], sys.argv[2]))
