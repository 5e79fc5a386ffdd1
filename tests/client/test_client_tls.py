"""``sendcode`` over real TLS on loopback: which TLS failures prove that nothing was sent.

Only a failure before a byte of the request was written (certificate refused, handshake broken)
means "not sent"; a TLS failure after the request was written is "outcome unknown", never retried.
"""

from __future__ import annotations

import pytest

from airflow_provider_smscn.client import RetryPolicy, SmsCnClient
from airflow_provider_smscn.client.errors import SmsCnSendOutcomeUnknownError, SmsCnTransportError
from tests.support.tls_server import BreakingTLSServer

NUMBERS = ["13900008888", "13900008889"]
IDS = ["11112222333344445555", "11112222333344445556"]


def client(url: str, sleeps: list[float], **kwargs: object) -> SmsCnClient:
    return SmsCnClient("test", password="123123", base_url=url, timeout=5,
                       retry=RetryPolicy(max_attempts=3, sleep=sleeps.append), **kwargs)  # type: ignore[arg-type]


def test_a_tls_failure_after_the_request_was_written_is_outcome_unknown(tmp_path):
    sleeps: list[float] = []
    with BreakingTLSServer(tmp_path) as server:
        c = client(server.url, sleeps, verify=str(server.ca_file))
        with pytest.raises(SmsCnSendOutcomeUnknownError) as info:
            c.send_voice_code(NUMBERS, "700001", {"code": "1"}, mobileids=IDS)
        assert server.requests_read == 1  # the vendor had the whole request
        assert b"13900008888" in server.bodies[0]
    assert info.value.mobileids == IDS
    assert "TLS" in str(info.value)
    assert sleeps == []  # never retried by the client: a retry could call both numbers again


def test_the_same_break_on_a_read_action_is_retried(tmp_path):
    sleeps: list[float] = []
    with BreakingTLSServer(tmp_path) as server:
        c = client(server.url, sleeps, verify=str(server.ca_file))
        with pytest.raises(SmsCnTransportError) as info:
            c.get_balance()
    assert not isinstance(info.value, SmsCnSendOutcomeUnknownError)
    assert "TLS failure" in str(info.value)
    # A read calls nobody: broken after it was written, it is asked again (3 attempts, 2 waits).
    assert server.requests_read == 3
    assert len(sleeps) == 2


def test_a_refused_certificate_means_nothing_was_sent(tmp_path):
    sleeps: list[float] = []
    with BreakingTLSServer(tmp_path) as server:
        c = client(server.url, sleeps)  # the system CAs do not trust the self-signed certificate
        with pytest.raises(SmsCnTransportError) as info:
            c.send_voice_code(NUMBERS, "700001", {"code": "1"}, mobileids=IDS)
        assert server.requests_read == 0
    assert not isinstance(info.value, SmsCnSendOutcomeUnknownError)
    assert "while connecting" in str(info.value)


def test_a_handshake_broken_before_sending_means_nothing_was_sent(tmp_path):
    sleeps: list[float] = []
    with BreakingTLSServer(tmp_path, mode="abort_handshake") as server:
        c = client(server.url, sleeps, verify=str(server.ca_file))
        with pytest.raises(SmsCnTransportError) as info:
            c.send_voice_code(NUMBERS, "700001", {"code": "1"}, mobileids=IDS)
        assert server.requests_read == 0
    assert not isinstance(info.value, SmsCnSendOutcomeUnknownError)
    assert server.connections >= 1
