"""docs/gen_docs.py: the generated tables and examples cannot drift from the code.

Each drift test changes the code the way a contributor would (a new parameter, another default,
another retry advice for a code, another mapping to Airflow's errors) and shows that the check
then fails until the docs are regenerated. Airflow 3 only: the docs are generated on Airflow 3.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_smscn._compat import AirflowException
from airflow_provider_smscn.client import codes
from airflow_provider_smscn.hooks import mixins
from airflow_provider_smscn.notifications import smscn as notifications
from airflow_provider_smscn.notifications.smscn import SmsCnVoiceNotifier
from airflow_provider_smscn.operators import smscn as operators

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.airflow3_only


@pytest.fixture(scope="module")
def gen_docs() -> Any:
    spec = importlib.util.spec_from_file_location("gen_docs", REPO / "docs" / "gen_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _stale(gen_docs: Any) -> list[str]:
    return [str(page.relative_to(REPO)) for page in gen_docs.stale_pages()]


def test_the_docs_are_up_to_date(gen_docs):
    assert _stale(gen_docs) == []


def test_the_ci_command_passes_on_this_tree():
    proc = subprocess.run([sys.executable, "docs/gen_docs.py", "--check"], cwd=REPO, capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def test_a_new_parameter_fails_the_check_until_the_docs_follow(gen_docs, monkeypatch):
    class Notifier(SmsCnVoiceNotifier):
        """Place a voice call.

        :param mobiles: numbers.
        :param template_id: the template.
        :param variables: the variables.
        :param smscn_conn_id: the Connection.
        :param repeat: how many times to call.
        """

        def __init__(self, *, mobiles: str, template_id: str, variables: dict, smscn_conn_id: str = "x",
                     repeat: int = 1, **kwargs: Any) -> None:
            super().__init__(mobiles=mobiles, template_id=template_id, variables=variables, **kwargs)

    monkeypatch.setattr(notifications, "SmsCnVoiceNotifier", Notifier)
    assert _stale(gen_docs) == ["docs/notifier.md"]
    rendered = gen_docs.params("airflow_provider_smscn.notifications.smscn.SmsCnVoiceNotifier")
    assert "| `repeat` | `int` | `1` | how many times to call. |" in rendered
    assert "| `smscn_conn_id` | `str` | `'x'` |" in rendered


def test_a_parameter_without_its_docstring_line_is_an_error(gen_docs, monkeypatch):
    class Notifier(SmsCnVoiceNotifier):
        """Place a voice call (no :param: lines)."""

    monkeypatch.setattr(notifications, "SmsCnVoiceNotifier", Notifier)
    with pytest.raises(gen_docs.DocsError, match=r"without ':param:' \['mobiles'"):
        gen_docs.stale_pages()


def test_another_retry_advice_for_a_code_fails_the_check(gen_docs, monkeypatch):
    table = dict(codes.STAT_CODES)
    table[101] = dataclasses.replace(table[101], retriable=True)
    monkeypatch.setattr(codes, "STAT_CODES", table)
    stale = _stale(gen_docs)
    assert "docs/client.md" in stale  # the stat code table
    assert "docs/operators.md" in stale  # what 101 now does in Airflow


def test_another_mapping_to_airflow_errors_fails_the_check(gen_docs, monkeypatch):
    def always_retried(err: Exception) -> AirflowException:
        return AirflowException(str(err))

    # wherever the operators take the mapping from (their module, or the shared mixin)
    monkeypatch.setattr(operators, "to_airflow_error", always_retried, raising=False)
    monkeypatch.setattr(mixins, "to_airflow_error", always_retried)
    assert _stale(gen_docs) == ["docs/operators.md"]


def test_an_example_shown_in_the_docs_follows_its_file(gen_docs, tmp_path):
    page = tmp_path / "docs" / "page.md"
    page.parent.mkdir()
    spec = "example dags_examples/smscn_balance_alert.py balance_check"
    page.write_text(f"<!-- BEGIN generated: {spec} -->\n```python\nold pasted code\n```\n"
                    "<!-- END generated -->\n", encoding="utf-8")
    assert gen_docs.stale_pages(tmp_path) == [page]
    gen_docs.write(tmp_path)
    text = page.read_text(encoding="utf-8")
    assert "SmsCnBalanceCheckOperator(" in text and "old pasted code" not in text
    assert gen_docs.stale_pages(tmp_path) == []
    with pytest.raises(gen_docs.DocsError, match="no region"):
        gen_docs.render_block("example dags_examples/smscn_balance_alert.py no_such_region")


def test_the_error_table_shows_a_refusal_failing_the_sensor_at_once(gen_docs):
    # review 9: the sensor reads the Connection afresh after a refusal (delivery.with_fresh_connection);
    # the generator's stand-in hook is dropped then, the real hook finds no Connection, and the page
    # said Airflow retries a 117 (AirflowNotFoundException). The sensor really fails at once.
    row = _rows(gen_docs)["117"]
    assert "fails at once" in row["poke"] and "AirflowNotFoundException" not in row["poke"], row


def _rows(gen_docs: Any) -> dict[str, dict[str, str]]:
    """The airflow-errors table by exception (first row of each) and by error label."""
    columns = ["error", "exception", "retriable", "operators", "send", "poke", "deferrable"]
    rows: dict[str, dict[str, str]] = {}
    for line in gen_docs.airflow_errors().splitlines()[2:]:
        row = dict(zip(columns, (cell.strip() for cell in line.split("|")[1:-1]), strict=True))
        rows.setdefault(row["exception"].strip("`"), row)
        rows[row["error"]] = row
    return rows


def test_the_error_table_covers_deferrable_mode_the_unknown_send_and_the_ledger_check(gen_docs):
    rows = _rows(gen_docs)
    assert "fails at once" in rows["101"]["deferrable"], rows["101"]  # the trigger's error event
    assert rows["103"]["deferrable"].startswith("keeps waiting in the triggerer"), rows["103"]
    unknown = rows["SmsCnSendOutcomeUnknownError"]
    assert unknown["send"] == "fails; Airflow retries it per `retries` (`AirflowException`)", unknown
    ledger = rows["SmsCnLedgerNotSharedFailure"]
    assert all("fails at once" in ledger[c] for c in ("operators", "send", "poke", "deferrable")), ledger


def test_a_retried_ledger_check_fails_the_check(gen_docs, monkeypatch):
    from airflow_provider_smscn.ledger.checks import LedgerNotSharedError

    monkeypatch.setattr(LedgerNotSharedError, "retriable", True)
    assert _stale(gen_docs) == ["docs/operators.md"]


def test_another_outcome_of_a_failed_trigger_fails_the_check(gen_docs, monkeypatch):
    from airflow_provider_smscn.sensors.smscn import SmsCnDeliverySensor

    def retried(self: Any, context: Any, event: dict[str, Any]) -> Any:
        raise AirflowException(str(event.get("message")))

    monkeypatch.setattr(SmsCnDeliverySensor, "execute_complete", retried)
    assert _stale(gen_docs) == ["docs/operators.md"]


def test_a_send_that_fails_an_unknown_outcome_at_once_fails_the_check(gen_docs, monkeypatch):
    from airflow_provider_smscn import sending

    real = sending.send_voice_codes

    def unretried(*args: Any, **kwargs: Any) -> Any:
        try:
            return real(*args, **kwargs)
        except sending.SmsCnSendOutcomeUnknownError as err:
            err.retriable = False
            raise mixins.to_airflow_error(err) from None

    monkeypatch.setattr(sending, "send_voice_codes", unretried)
    assert _stale(gen_docs) == ["docs/operators.md"]


def test_another_event_payload_fails_the_check(gen_docs, monkeypatch):
    from airflow_provider_smscn.events import delivery

    monkeypatch.setattr(delivery, "sender_of", lambda idem_key: {"key": idem_key})
    assert _stale(gen_docs) == ["docs/events.md"]


def test_another_ledger_check_message_fails_the_check(gen_docs, monkeypatch):
    from airflow_provider_smscn.ledger import checks

    monkeypatch.setattr(checks, "_fix", lambda *, sqlite: "Ask your administrator.")
    assert _stale(gen_docs) == ["docs/deployment.md"]
