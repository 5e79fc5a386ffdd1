"""A tiny real HTTP server on 127.0.0.1 that records requests (for the client tests).

Deliberately not the project's sandbox: these tests check the exact bytes the client sends, and
the sandbox is written independently of the client so that the two cannot share a mistake.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@dataclass
class Recorded:
    """One request as the server saw it."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    def form(self, encoding: str = "utf-8") -> dict[str, str]:
        """The form fields (body for POST, query string for GET), decoded with ``encoding``."""
        raw = self.body.decode("ascii") if self.method == "POST" else self.query
        return {
            k: v[0]
            for k, v in parse_qs(raw, keep_blank_values=True, encoding=encoding, errors="strict").items()
        }


@dataclass
class Reply:
    status: int = 200
    body: bytes = b'{"stat":"100","message":"ok"}'
    content_type: str = "text/plain; charset=utf-8"
    delay: float = 0.0


@dataclass
class RecordingServer:
    """Answers each request with the next queued :class:`Reply` (the default one when empty)."""

    url: str
    requests: list[Recorded] = field(default_factory=list)
    replies: deque[Reply] = field(default_factory=deque)
    default: Reply = field(default_factory=Reply)

    def queue(self, *replies: Reply) -> None:
        self.replies.extend(replies)


def _handler(server_state: RecordingServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            server_state.requests.append(
                Recorded(self.command, parts.path, parts.query, dict(self.headers.items()), body)
            )
            reply = server_state.replies.popleft() if server_state.replies else server_state.default
            if reply.delay:
                time.sleep(reply.delay)
            try:
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)
            except OSError:  # the client gave up (timeout test)
                pass

        do_GET = do_POST = _handle

        def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
            pass

    return Handler


def start_server() -> tuple[RecordingServer, ThreadingHTTPServer, threading.Thread]:
    state = RecordingServer(url="")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/voice/"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return state, httpd, thread
