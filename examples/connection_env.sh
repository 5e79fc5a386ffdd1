#!/usr/bin/env bash
# The smscn Connection: added with the Airflow CLI, or as an environment variable (the JSON form
# and the two URI forms). Shown in docs/connection.md and README.md; the tests parse the CLI line
# with Airflow's own CLI parser and build a hook from each of these values, and check where it
# sends and how it signs (tests/docs/test_doc_examples.py).

# [START cli]
airflow connections add smscn_default --conn-type smscn --conn-login test \
    --conn-password '<login password>' --conn-extra '{"secret_key": "<secret key>"}'
# [END cli]

# [START json]
export AIRFLOW_CONN_SMSCN_DEFAULT='{"conn_type": "smscn", "login": "test", "password": "...",
  "host": "https://api.sms.cn/voice/", "extra": {"secret_key": "...", "timeout": 5, "retries": 2}}'
# [END json]

# [START uri]
# bare host: scheme, port and path from the scheme extra, port and schema
export AIRFLOW_CONN_SMSCN_DEFAULT='smscn://test:123123@127.0.0.1:8765/voice?scheme=http&secret_key=...'
# or a full URL as the (percent-encoded) host
export AIRFLOW_CONN_SMSCN_DEFAULT='smscn://test:123123@http%3A%2F%2F127.0.0.1%3A8765%2Fvoice%2F/?secret_key=...'
# [END uri]
