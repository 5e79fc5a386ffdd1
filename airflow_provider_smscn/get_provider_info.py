"""Provider metadata read by Airflow's providers manager (entry point ``apache_airflow_provider``).

Airflow 3.2+ builds the connection form only from ``conn-fields`` and ``ui-field-behaviour``
here, without importing the hook; Airflow 2.11 reads the hook's form methods instead. Both are
built from the extras table ``client.options.OPTIONS`` (Airflow-free, cheap to import).
"""

from __future__ import annotations

from typing import Any

from airflow_provider_smscn.client.options import OPTIONS, Option

_JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "string"}  # verify may be a path


def _form_value(value: Any) -> Any:
    """A default as the form shows it (``verify``'s True as ``true``, 10.0 seconds as 10)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def conn_field(option: Option) -> dict[str, Any]:
    """The ``conn-fields`` entry of one extra (label, description, JSON schema) from its table row."""
    schema: dict[str, Any] = {"type": [_JSON_TYPES[option.kind], "null"]}
    if option.secret:
        schema["format"] = "password"
    if option.choices:
        schema["enum"] = [*option.choices, None]
    description = option.description
    if option.default is not None:
        schema["default"] = _form_value(option.default)
        description += f" Default: {_form_value(option.default)}."
    return {"label": option.label, "description": description, "schema": schema}


CONN_FIELDS: dict[str, dict[str, Any]] = {option.name: conn_field(option) for option in OPTIONS}

UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["schema", "port", "extra"],
    "relabeling": {"login": "UID", "password": "Login password", "host": "API URL"},
    "placeholders": {
        "login": "your sms.cn user name (uid)",
        "password": "login password (or leave empty and fill API password)",
        "host": "https://api.sms.cn/voice/ (leave empty), or e.g. http://127.0.0.1:8765/voice/",
        # Every extra shows its placeholder, else its default: both from the one table.
        **{o.name: o.placeholder or str(_form_value(o.default)) for o in OPTIONS
           if o.placeholder or o.default is not None},
    },
}


#: The ``[smscn]`` settings; the hook reads their defaults from here.
CONFIG_OPTIONS: dict[str, dict[str, Any]] = {
    "ledger_url": {
        "description": "SQLAlchemy URL of the ledger that keeps every pulled delivery "
        "report, rations status pulls and records send intents. Every worker and triggerer must "
        "use the same one. Empty means a SQLite file smscn_ledger.db under AIRFLOW_HOME, which "
        "only LocalExecutor deployments share: under any other executor the first task that needs "
        "the ledger fails, naming this setting (see ledger_single_host). Check with: "
        "python -m airflow_provider_smscn.ledger.checks",
        "version_added": "0.1.0",
        "type": "string",
        "example": "postgresql+psycopg2://user:pass@db:5432/smscn",
        "default": "",
        "sensitive": True,
    },
    "ledger_single_host": {
        "description": "True when every worker and triggerer runs on this one host, so a SQLite "
        "ledger file is shared although [core] executor is not LocalExecutor (e.g. one Celery "
        "worker next to the scheduler). Without it, a SQLite ledger under such an executor fails "
        "the task instead of splitting silently per host.",
        "version_added": "0.2.0",
        "type": "boolean",
        "example": "True",
        "default": "False",
    },
    "pull_interval": {
        "description": "Seconds between two ac=status pulls of one account, however many "
        "sensors and triggers wait on it.",
        "version_added": "0.1.0",
        "type": "float",
        "example": "5",
        "default": "5",
    },
    "spool_dir": {
        "description": "Directory where pulled delivery reports the ledger could not "
        "take (locked, failing over) are kept until it answers again; the next waiter on "
        "this host writes them into the ledger. Empty means smscn_spool under AIRFLOW_HOME.",
        "version_added": "0.2.0",
        "type": "string",
        "example": "/var/lib/airflow/smscn_spool",
        "default": "",
    },
    "retention_days": {
        "description": "Ledger rows older than this many days are pruned.",
        "version_added": "0.1.0",
        "type": "float",
        "example": "30",
        "default": "30",
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
                "options": CONFIG_OPTIONS,
            }
        },
    }
