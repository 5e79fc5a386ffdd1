from __future__ import annotations

import os
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_smscn.client.errors import SmsCnValidationError
from airflow_provider_smscn.client.signing import Signer, beijing_timestamp, make_pwd, make_tokenkey

DOC_SECRET = "64CQMlr579J0L46U9q1qR285Risfc04G"
DOC_TOKENKEY = "67da3bb4523ce538ff9adec57dc25162"
DOC_PWD = "b9887c5ebb23ebb294acab183ecf0769"
# 2012-01-02 10:20:33 Beijing time, the document's example timestamp.
DOC_INSTANT = datetime(2012, 1, 2, 2, 20, 33, tzinfo=timezone.utc)


class FakeClock:
    def __init__(self, start: datetime = DOC_INSTANT) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture(params=["UTC", "America/New_York", "Asia/Shanghai", "Pacific/Kiritimati"])
def local_tz(request: pytest.FixtureRequest):
    old = os.environ.get("TZ")
    os.environ["TZ"] = request.param
    time.tzset()
    try:
        yield request.param
    finally:
        if old is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = old
        time.tzset()


class TestDocumentVectors:
    def test_pwd(self) -> None:
        assert make_pwd("123123", "test") == DOC_PWD

    def test_tokenkey(self) -> None:
        assert make_tokenkey("test", DOC_SECRET, "20120102102033") == DOC_TOKENKEY


class TestBeijingTimestamp:
    def test_aware_inputs_in_any_zone(self, local_tz: str) -> None:
        assert beijing_timestamp(DOC_INSTANT) == "20120102102033"
        new_york = timezone(timedelta(hours=-5))
        assert beijing_timestamp(DOC_INSTANT.astimezone(new_york)) == "20120102102033"
        assert beijing_timestamp(DOC_INSTANT.astimezone(timezone(timedelta(hours=8)))) == "20120102102033"

    def test_default_is_current_beijing_time_whatever_the_local_zone(self, local_tz: str) -> None:
        before = (datetime.now(timezone.utc) + timedelta(hours=8)).strftime("%Y%m%d%H%M%S")
        stamp = beijing_timestamp()
        after = (datetime.now(timezone.utc) + timedelta(hours=8)).strftime("%Y%m%d%H%M%S")
        assert before <= stamp <= after
        # The local wall clock is hours off Beijing time in every zone but Shanghai's.
        if local_tz != "Asia/Shanghai":
            assert stamp[:10] != datetime.now().strftime("%Y%m%d%H")

    def test_day_rollover(self) -> None:
        assert beijing_timestamp(datetime(2023, 12, 31, 16, 0, 0, tzinfo=timezone.utc)) == "20240101000000"

    def test_naive_datetime_refused(self) -> None:
        with pytest.raises(SmsCnValidationError, match="timezone-aware"):
            beijing_timestamp(datetime(2012, 1, 2, 10, 20, 33))


class TestSignerModes:
    def test_password_mode(self) -> None:
        signer = Signer("test", password="123123")
        assert signer.mode == "password"
        assert signer.auth_params() == {"uid": "test", "pwd": DOC_PWD}

    def test_api_password_is_lowercased(self) -> None:
        signer = Signer("test", api_password=DOC_PWD.upper())
        assert signer.mode == "api_password"
        assert signer.auth_params() == {"uid": "test", "pwd": DOC_PWD}

    @pytest.mark.parametrize("bad", ["123123", DOC_PWD[:-1], DOC_PWD + "0", "g" * 32])
    def test_api_password_must_be_32_hex(self, bad: str) -> None:
        with pytest.raises(SmsCnValidationError, match="32 hex") as info:
            Signer("test", api_password=bad)
        assert bad not in str(info.value)

    def test_secret_key_mode_uses_the_clock(self) -> None:
        signer = Signer("test", secret_key=DOC_SECRET, clock=FakeClock())
        assert signer.mode == "secret_key"
        assert signer.auth_params() == {
            "uid": "test",
            "tokenkey": DOC_TOKENKEY,
            "timestamp": "20120102102033",
        }

    def test_secret_key_takes_precedence(self) -> None:
        signer = Signer(
            "test", password="123123", api_password=DOC_PWD, secret_key=DOC_SECRET, clock=FakeClock()
        )
        assert set(signer.auth_params()) == {"uid", "tokenkey", "timestamp"}

    def test_api_password_before_password(self) -> None:
        other = "0" * 32
        assert Signer("test", password="123123", api_password=other).auth_params()["pwd"] == other

    def test_empty_strings_count_as_absent(self) -> None:
        assert Signer("test", password="123123", api_password="", secret_key="").mode == "password"

    def test_no_credential(self) -> None:
        with pytest.raises(SmsCnValidationError, match="no credential"):
            Signer("test", password="", api_password=None)

    @pytest.mark.parametrize("uid", ["", " test", "te st", "test\n", None, 5])
    def test_bad_uid(self, uid: object) -> None:
        with pytest.raises(SmsCnValidationError, match="uid"):
            Signer(uid, password="123123")  # type: ignore[arg-type]

    def test_secret_key_with_whitespace(self) -> None:
        with pytest.raises(SmsCnValidationError, match="whitespace") as info:
            Signer("test", secret_key=DOC_SECRET + "\n")
        assert DOC_SECRET not in str(info.value)

    def test_naive_clock_refused(self) -> None:
        signer = Signer("test", secret_key=DOC_SECRET, clock=lambda: datetime(2012, 1, 2))
        with pytest.raises(SmsCnValidationError, match="timezone-aware"):
            signer.auth_params()

    @pytest.mark.parametrize("reuse", [-1, 241, float("nan")])
    def test_reuse_window_bounds(self, reuse: float) -> None:
        with pytest.raises(SmsCnValidationError, match="signature_reuse_seconds"):
            Signer("test", secret_key=DOC_SECRET, signature_reuse_seconds=reuse)

    def test_params_are_a_fresh_dict(self) -> None:
        signer = Signer("test", password="123123")
        signer.auth_params()["pwd"] = "changed"
        assert signer.auth_params()["pwd"] == DOC_PWD

    @pytest.mark.parametrize(
        "kwargs", [{"password": "123123"}, {"api_password": DOC_PWD}, {"secret_key": DOC_SECRET}]
    )
    def test_repr_shows_no_secret(self, kwargs: dict[str, Any]) -> None:
        signer = Signer("test", clock=FakeClock(), **kwargs)
        params = signer.auth_params()
        text = repr(signer) + str(signer)
        for secret in [*kwargs.values(), params.get("pwd"), params.get("tokenkey")]:
            if secret:
                assert secret not in text
        assert "test" in repr(signer)


class TestOnSecret:
    def test_pwd_reported_once(self) -> None:
        seen: list[str] = []
        signer = Signer("test", password="123123", on_secret=seen.append)
        for _ in range(3):
            signer.auth_params()
        assert seen == [DOC_PWD]

    def test_api_password_reported_in_the_form_sent(self) -> None:
        seen: list[str] = []
        Signer("test", api_password=DOC_PWD.upper(), on_secret=seen.append)
        assert seen == [DOC_PWD]

    def test_tokenkey_reused_within_the_window(self) -> None:
        seen: list[str] = []
        clock = FakeClock()
        signer = Signer("test", secret_key=DOC_SECRET, clock=clock, on_secret=seen.append)
        first = signer.auth_params()
        clock.advance(29.5)
        assert signer.auth_params() == first
        assert seen == [DOC_TOKENKEY]
        clock.advance(1)
        second = signer.auth_params()
        assert second["timestamp"] == "20120102102103"
        assert second["tokenkey"] == make_tokenkey("test", DOC_SECRET, "20120102102103")
        assert seen == [DOC_TOKENKEY, second["tokenkey"]]

    def test_reuse_zero_signs_every_second_afresh(self) -> None:
        seen: list[str] = []
        clock = FakeClock()
        signer = Signer(
            "test", secret_key=DOC_SECRET, clock=clock, on_secret=seen.append, signature_reuse_seconds=0
        )
        signer.auth_params()
        clock.advance(0.2)  # same second: same tokenkey, not reported again
        signer.auth_params()
        assert len(seen) == 1
        clock.advance(1)
        assert signer.auth_params()["timestamp"] == "20120102102034"
        assert len(seen) == 2

    def test_clock_going_backwards_signs_afresh(self) -> None:
        clock = FakeClock()
        signer = Signer("test", secret_key=DOC_SECRET, clock=clock)
        signer.auth_params()
        clock.advance(-10)
        assert signer.auth_params()["timestamp"] == "20120102102023"
