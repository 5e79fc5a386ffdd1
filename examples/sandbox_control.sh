#!/usr/bin/env bash
# The sandbox's control API from a shell: a fault, an account change, the counters.
# Shown in docs/sandbox.md; run by the tests against a sandbox (tests/docs/test_doc_examples.py).
# Usage: smscn-sandbox --port 8765 &  then  bash examples/sandbox_control.sh
set -euo pipefail

# [START control]
SANDBOX=${SANDBOX:-http://127.0.0.1:8765}
curl -sS -X POST "$SANDBOX/_control/faults" -d '{"kind": "delay_after", "ms": 15000, "action": "sendcode", "count": 1}'
curl -sS -X POST "$SANDBOX/_control/accounts" -d '{"uid": "test", "balance": 10}'
curl -sS "$SANDBOX/_control/stats"
# [END control]
