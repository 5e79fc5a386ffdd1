"""The stat-code table against the vendor's codes (docs/api.md) and docs/api-decisions.md #17."""

from __future__ import annotations

import pytest

from airflow_provider_smscn.client import errors
from airflow_provider_smscn.client.codes import RESULT_CODES, STAT_CODES, Category, code_info, result_meaning
from airflow_provider_smscn.client.errors import SmsCnApiError, SmsCnUnknownCodeError

# Every code in the vendor's table (section 四), 151 listed twice there.
DOCUMENTED = {
    100,
    101,
    102,
    103,
    104,
    105,
    106,
    107,
    108,
    109,
    112,
    116,
    117,
    118,
    119,
    124,
    151,
    152,
    161,
    162,
    163,
    164,
    166,
    167,
    168,
    169,
}
RETRIABLE = {103, 107, 110, 111, 114, 115, 120, 151}  # decisions #17
EXPECTED_CLASS = {
    101: errors.SmsCnAuthError,
    117: errors.SmsCnAuthError,
    118: errors.SmsCnAuthError,
    119: errors.SmsCnAuthError,
    102: errors.SmsCnBalanceError,
    109: errors.SmsCnAccountError,
    116: errors.SmsCnAccountError,
    114: errors.SmsCnAccountError,
    107: errors.SmsCnRateLimitError,
    110: errors.SmsCnRateLimitError,
    151: errors.SmsCnRateLimitError,
    152: errors.SmsCnRateLimitError,
    103: errors.SmsCnServerError,
    111: errors.SmsCnServerError,
    115: errors.SmsCnServerError,
    120: errors.SmsCnServerError,
    **{c: errors.SmsCnRequestError for c in (104, 105, 106, 108, 112, 113, 124)},
    **{c: errors.SmsCnTemplateError for c in (161, 162, 163, 164, 166, 167, 168, 169)},
}


def test_table_covers_the_document() -> None:
    assert {c for c, info in STAT_CODES.items() if info.documented} == DOCUMENTED
    assert set(STAT_CODES) == DOCUMENTED | {110, 111, 113, 114, 115, 120}


def test_retry_advice_follows_decisions() -> None:
    assert {c for c, info in STAT_CODES.items() if info.retriable} == RETRIABLE
    assert {c for c, info in STAT_CODES.items() if info.backoff} == {107, 110}


@pytest.mark.parametrize("code", sorted(set(STAT_CODES) - {100}))
def test_every_code_maps_to_its_class(code: int) -> None:
    error = SmsCnApiError.from_code(code, "vendor text", action="sendcode")
    assert type(error) is EXPECTED_CLASS[code]
    assert error.category is STAT_CODES[code].category
    assert error.code == code
    assert error.meaning == STAT_CODES[code].meaning
    assert error.retriable is (code in RETRIABLE)
    assert error.server_message == "vendor text"
    assert f"sms.cn API error {code} on ac=sendcode" in str(error)
    assert isinstance(error, errors.SmsCnError)


def test_unknown_code_named() -> None:
    error = SmsCnApiError.from_code(199, "", action="status")
    assert type(error) is SmsCnUnknownCodeError
    assert error.code == 199
    assert error.retriable is False
    assert error.documented is False
    assert "199" in str(error) and "unknown" in str(error)
    assert code_info(199) is None


def test_result_codes() -> None:
    assert set(RESULT_CODES) == {100, 130, 131, 132, 133, 134}
    assert result_meaning(131).startswith("empty")
    assert "777" in result_meaning(777)


def test_categories_all_have_a_class() -> None:
    used = {info.category for info in STAT_CODES.values()} - {Category.SUCCESS}
    assert used == {cls.category for cls in set(EXPECTED_CLASS.values())}


def test_each_category_has_one_class() -> None:
    # from_code picks the class by its own ``category``: two classes naming one category would
    # leave one of them never raised.
    named = [cls.category for cls in SmsCnApiError.__subclasses__() if cls.category is not None]
    assert len(named) == len(set(named)) == len(Category) - 1  # every category but SUCCESS


def test_error_family() -> None:
    assert issubclass(errors.SmsCnValidationError, ValueError)
    assert issubclass(errors.SmsCnSendOutcomeUnknownError, errors.SmsCnTransportError)
    unknown = errors.SmsCnSendOutcomeUnknownError("x", mobileids=["1", "2"])
    assert unknown.mobileids == ["1", "2"] and unknown.retriable is False and unknown.action == "sendcode"
    assert errors.SmsCnTransportError("x").retriable is True
