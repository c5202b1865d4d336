#!/usr/bin/env bash
# `make demo`: run examples/batch_request.json end to end against the built-in emulator.
# Needs no API key and sends nothing outside this machine.
set -euo pipefail
cd "$(dirname "$0")/.."

ABR=.venv/bin/abr
PY=.venv/bin/python
port=$($PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log=$(mktemp -t abr-emulator.XXXXXX.log)

$ABR emulator --port "$port" --processing-seconds 2 >"$log" 2>&1 &
emulator_pid=$!
trap 'kill $emulator_pid 2>/dev/null || true; wait $emulator_pid 2>/dev/null || true; rm -f "$log"' EXIT

for _ in $(seq 1 100); do
    $PY -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/_admin/stats')" \
        >/dev/null 2>&1 && break
    sleep 0.1
done

echo "Emulator: http://127.0.0.1:$port"
export ANTHROPIC_BASE_URL="http://127.0.0.1:$port"
export ANTHROPIC_API_KEY="sk-ant-demo-key-for-the-local-emulator"
export ABR_BATCH_POLL_INTERVAL=0.5
$ABR run examples/batch_request.json "$@"

results=$(ls -t output/results/*.jsonl | head -n 1)
echo
echo "First lines of $results:"
$PY - "$results" <<'PY'
import json
import sys

with open(sys.argv[1], encoding="utf-8") as handle:
    for line in handle:
        row = json.loads(line)
        print(f"  {row['custom_id']}: {row['status']}: {row.get('text', '')}")
PY
