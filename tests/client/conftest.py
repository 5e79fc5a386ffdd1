"""Fixtures of the client tests: a tiny real HTTP server on 127.0.0.1 that records requests.

Deliberately not the project's sandbox: these tests check the exact bytes the client sends, and
the sandbox is written independently of the client so that the two cannot share a mistake.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

import pytest

from tests.support.recording_server import RecordingServer, start_server

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture
def recording_server() -> Iterator[RecordingServer]:
    state, httpd, thread = start_server()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture
def refused_url() -> str:
    """A URL on 127.0.0.1 where nothing listens: connecting is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/voice/"
