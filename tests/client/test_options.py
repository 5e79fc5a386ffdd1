"""One source for each default and each rule: the extras table and the ``stat`` code table."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import pytest

import airflow_provider_smscn.client as client_package
from airflow_provider_smscn.client import RetryPolicy, SmsCnApiError, SmsCnClient, SmsCnValidationError
from airflow_provider_smscn.client import codes as codes_module
from airflow_provider_smscn.client.codes import STAT_CODES
from airflow_provider_smscn.client.options import BY_NAME, OPTIONS, read_extras
from tests.support.vendor_replies import BALANCE_OK, error_body

URL = "https://api.sms.cn/voice/"


class TestExtrasTable:
    @pytest.mark.parametrize("option", [o for o in OPTIONS if o.argument], ids=lambda o: o.name)
    def test_client_keyword_defaults_are_the_table_defaults(self, option: Any) -> None:
        assert inspect.signature(SmsCnClient).parameters[option.argument].default == option.default

    def test_retry_policy_defaults_are_the_retries_extras(self) -> None:
        policy = RetryPolicy()
        assert policy.max_attempts == BY_NAME["retries"].default + 1
        assert policy.max_wait == BY_NAME["retry_max_wait"].default

    @pytest.mark.parametrize(
        ("extra", "typed"),
        [
            # what a URI connection gives (strings) becomes the table's type
            ({"timeout": "5", "retries": "2", "max_numbers_per_request": "50"},
             {"timeout": 5.0, "retries": 2, "max_numbers_per_request": 50}),
            ({"verify": "false"}, {"verify": False}),
            ({"verify": "True"}, {"verify": True}),
            ({"verify": "/etc/ssl/ca.pem"}, {"verify": "/etc/ssl/ca.pem"}),
            ({"format": "XML", "method": "get", "scheme": "HTTP"},
             {"format": "xml", "method": "GET", "scheme": "http"}),
            # the old form prefix, and empty values counted as not set
            ({"extra__smscn__secret_key": "k", "language": "", "api_password": None}, {"secret_key": "k"}),
            ({"unknown_key": "x"}, {}),
        ],
    )
    def test_read_extras_types_what_is_set(self, extra: dict[str, Any], typed: dict[str, Any]) -> None:
        assert read_extras(extra) == typed

    @pytest.mark.parametrize(
        ("extra", "named"),
        [({"timeout": "ten"}, "timeout"), ({"retries": "1.5"}, "retries"), ({"retries": True}, "retries"),
         ({"max_numbers_per_request": 2.5}, "max_numbers_per_request"), ({"verify": 3}, "verify")],
    )
    def test_a_bad_extra_is_named(self, extra: dict[str, Any], named: str) -> None:
        with pytest.raises(SmsCnValidationError, match=f"Connection extra '{named}'"):
            read_extras(extra)

    def test_balance_model_is_not_exported(self) -> None:
        """``get_balance`` returns an int: a ``Balance`` class nobody returns would mislead."""
        assert "Balance" not in client_package.__all__
        with pytest.raises(AttributeError):
            client_package.Balance  # noqa: B018


class TestBackoffRuleLivesInTheCodeTable:
    """The client retries exactly the codes the table marks ``backoff``: no second list to drift."""

    def _count_attempts(self, requests_mock: Any, code: int) -> int:
        requests_mock.post(URL, text=error_body("json", code))
        client = SmsCnClient("test", password="pw", retry=RetryPolicy(max_attempts=3, sleep=lambda _s: None))
        with pytest.raises(SmsCnApiError):
            client.get_balance()
        return requests_mock.call_count

    @pytest.mark.parametrize("code", sorted(c for c in STAT_CODES if c != 100))
    def test_retried_as_the_table_says(self, requests_mock: Any, code: int) -> None:
        assert self._count_attempts(requests_mock, code) == (3 if STAT_CODES[code].backoff else 1)

    def test_changing_the_table_changes_what_is_retried(self, requests_mock: Any,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
        table = dict(codes_module.STAT_CODES)
        table[151] = dataclasses.replace(table[151], backoff=True)
        table[107] = dataclasses.replace(table[107], backoff=False)
        monkeypatch.setattr(codes_module, "STAT_CODES", table)
        assert self._count_attempts(requests_mock, 151) == 3
        requests_mock.reset()
        assert self._count_attempts(requests_mock, 107) == 1

    def test_policy_has_no_code_list_of_its_own(self) -> None:
        assert "backoff_codes" not in {f.name for f in dataclasses.fields(RetryPolicy)}

    def test_success_is_not_an_error(self, requests_mock: Any) -> None:
        requests_mock.post(URL, text=BALANCE_OK["json"])
        assert isinstance(SmsCnClient("test", password="pw").get_balance(), int)
