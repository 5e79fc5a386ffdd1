"""Provider metadata read by Airflow's providers manager (entry point ``apache_airflow_provider``).

Airflow 3.2+ builds the connection form only from ``conn-fields`` and ``ui-field-behaviour``
here, without importing the hook; Airflow 2.11 reads the hook's form methods instead.
"""

from __future__ import annotations

from typing import Any

_STR = ["string", "null"]

CONN_FIELDS: dict[str, dict[str, Any]] = {
    "api_password": {
        "label": "API password",
        "description": "The ready 32-hex API password from the sms.cn console (used as is instead of "
        "md5(password + uid)).",
        "schema": {"type": _STR, "format": "password"},
    },
    "secret_key": {
        "label": "Secret key",
        "description": "Switches to tokenkey signing (recommended): "
        "md5(uid + secret key + Beijing timestamp).",
        "schema": {"type": _STR, "format": "password"},
    },
    "format": {
        "label": "Reply format",
        "description": "json (default), xml or txt.",
        "schema": {"type": _STR, "enum": ["json", "xml", "txt", None], "default": "json"},
    },
    "encoding": {
        "label": "Request encoding",
        "description": "utf-8 (default) or gbk.",
        "schema": {"type": _STR, "enum": ["utf-8", "gbk", None], "default": "utf-8"},
    },
    "language": {
        "label": "Message language",
        "description": "'english' for English status messages; empty for the vendor's Chinese ones.",
        "schema": {"type": _STR},
    },
    "timeout": {
        "label": "Timeout (seconds)",
        "description": "Per-request timeout.",
        "schema": {"type": ["number", "null"], "default": 10},
    },
    "max_numbers_per_request": {
        "label": "Numbers per request",
        "description": "Largest count of numbers in one sendcode request (the vendor does not document it).",
        "schema": {"type": ["integer", "null"], "default": 1000},
    },
    "verify": {
        "label": "TLS verification",
        "description": "true (default), false, or the path of a CA bundle.",
        "schema": {"type": _STR, "default": "true"},
    },
    "retries": {
        "label": "Retries",
        "description": "Back-off retries on network errors, HTTP 5xx and rate limiting (default 3).",
        "schema": {"type": ["integer", "null"], "default": 3},
    },
    "retry_max_wait": {
        "label": "Longest retry wait (seconds)",
        "description": "Upper bound of one back-off wait (default 8).",
        "schema": {"type": ["number", "null"], "default": 8},
    },
    "scheme": {
        "label": "Scheme",
        "description": "https (default) or http, used when API URL is a bare host name.",
        "schema": {"type": _STR, "enum": ["https", "http", None], "default": "https"},
    },
    "method": {
        "label": "HTTP method",
        "description": "POST (default, keeps credentials out of URLs) or GET.",
        "schema": {"type": _STR, "enum": ["POST", "GET", None], "default": "POST"},
    },
}

UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["schema", "port", "extra"],
    "relabeling": {"login": "UID", "password": "Login password", "host": "API URL"},
    "placeholders": {
        "login": "your sms.cn user name (uid)",
        "password": "login password (or leave empty and fill API password)",
        "host": "https://api.sms.cn/voice/ (leave empty), or e.g. http://127.0.0.1:8765/voice/",
        "api_password": "32 hex characters from the console",
        "secret_key": "secret key for tokenkey signing (recommended)",
        "language": "english",
        # Every other extra shows its default, taken from the one table above.
        **{name: str(spec["schema"]["default"]) for name, spec in CONN_FIELDS.items()
           if "default" in spec["schema"]},
    },
}


def get_provider_info() -> dict[str, Any]:
    """Return the provider info dict (kept import-free so Airflow can read it cheaply)."""
    from airflow_provider_smscn import __version__

    return {
        "package-name": "airflow-provider-smscn",
        "name": "sms.cn Voice",
        "description": "Send voice verification codes, wait for delivery reports and watch the balance "
        "of an sms.cn account.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "sms.cn Voice",
                "external-doc-url": "https://www.sms.cn/",
                "tags": ["service"],
            }
        ],
        "hooks": [
            {"integration-name": "sms.cn Voice", "python-modules": ["airflow_provider_smscn.hooks.smscn"]}
        ],
        "operators": [
            {"integration-name": "sms.cn Voice", "python-modules": ["airflow_provider_smscn.operators.smscn"]}
        ],
        "sensors": [
            {"integration-name": "sms.cn Voice", "python-modules": ["airflow_provider_smscn.sensors.smscn"]}
        ],
        "triggers": [
            {"integration-name": "sms.cn Voice", "python-modules": ["airflow_provider_smscn.triggers.smscn"]}
        ],
        "notifications": ["airflow_provider_smscn.notifications.smscn.SmsCnVoiceNotifier"],
        "connection-types": [
            {
                "connection-type": "smscn",
                "hook-class-name": "airflow_provider_smscn.hooks.smscn.SmsCnHook",
                "hook-name": "sms.cn Voice",
                "conn-fields": CONN_FIELDS,
                "ui-field-behaviour": UI_FIELD_BEHAVIOUR,
            }
        ],
        "config": {
            "smscn": {
                "description": "Settings of the sms.cn voice provider.",
                "options": {
                    "ledger_url": {
                        "description": "SQLAlchemy URL of the ledger that keeps every pulled delivery "
                        "report, rations status pulls and records send intents. Empty means a SQLite file "
                        "smscn_ledger.db under AIRFLOW_HOME (one machine only). Use a PostgreSQL URL when "
                        "workers or triggerers run on several hosts.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "postgresql+psycopg2://user:pass@db:5432/smscn",
                        "default": "",
                        "sensitive": True,
                    },
                    "pull_interval": {
                        "description": "Seconds between two ac=status pulls of one account, however many "
                        "sensors and triggers wait on it.",
                        "version_added": "0.1.0",
                        "type": "float",
                        "example": "5",
                        "default": "5",
                    },
                    "retention_days": {
                        "description": "Ledger rows older than this many days are pruned.",
                        "version_added": "0.1.0",
                        "type": "float",
                        "example": "30",
                        "default": "30",
                    },
                },
            }
        },
    }
