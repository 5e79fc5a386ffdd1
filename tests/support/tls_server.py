"""A real TLS server on loopback that breaks TLS on purpose, for the "was the request sent?" tests.

Modes (what happens on each connection):

* ``break_after_request``: complete the handshake, read the whole HTTP request (and count it),
  then write bytes that are not a TLS record on the raw socket and close: the client's TLS layer
  fails while reading the reply, after its request was written.
* ``abort_handshake``: read the client's hello, then close without answering: TLS fails before
  any byte of the request could be written (no certificate involved).

The certificate is self-signed for 127.0.0.1, generated with ``cryptography``; ``ca_file`` is its
path, for clients that should trust it (a client with the system CAs refuses it: a certificate
failure before sending).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
import ssl
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A key and a certificate for 127.0.0.1, valid for a day; returns their paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_path, cert_path = directory / "key.pem", directory / "cert.pem"
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


class BreakingTLSServer:
    """See the module docstring. ``requests_read`` counts full HTTP requests received."""

    def __init__(self, directory: Path, mode: str = "break_after_request") -> None:
        if mode not in ("break_after_request", "abort_handshake"):
            raise ValueError(mode)
        self.mode = mode
        key, self.ca_file = self_signed(directory)
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(self.ca_file, key)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self.connections = 0
        self.requests_read = 0
        self.bodies: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="breaking-tls", daemon=True)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/voice/"

    def __enter__(self) -> BreakingTLSServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(5)
        self._listener.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                raw, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            raw.settimeout(5)
            try:
                if self.mode == "abort_handshake":
                    raw.recv(4096)  # the ClientHello; no answer
                else:
                    self._break_after_request(raw)
            except OSError:
                pass
            finally:
                raw.close()

    def _break_after_request(self, raw: socket.socket) -> None:
        tls = self._context.wrap_socket(raw, server_side=True)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = tls.recv(65536)
            if not chunk:
                return
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        while len(body) < length:
            chunk = tls.recv(65536)
            if not chunk:
                return
            body += chunk
        self.requests_read += 1
        self.bodies.append(body)
        # Not a TLS record: the client's TLS layer fails on it ("wrong version number" or similar).
        plain = socket.socket(fileno=os.dup(tls.fileno()))
        try:
            plain.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        finally:
            plain.close()
