"""Every close of a TLS control channel that the gateway starts sends close_notify first
(issue 13.2): after QUIT's 221 on explicit and implicit listeners, on the idle and login
timeouts' 421 and when a drain ends a session. Python (with ragged EOFs not suppressed)
and `openssl s_client` must see a clean TLS end, never an unexpected EOF."""
from __future__ import annotations

import socket
import ssl
import time

import pytest

import harness
from harness import TEST_PASS, TEST_USER
from test_tls import Interactive

pytestmark = pytest.mark.tls


class StrictTls:
    """A control connection whose TLS layer reports an EOF without close_notify as an
    error (Python's default suppresses it)."""

    def __init__(self, port: int, implicit: bool):
        self.raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.ctx = harness.client_tls_context()
        self.buf = b""
        if implicit:
            self.sock = self.wrap()
            self.expect("220")
        else:
            self.sock = self.raw
            self.expect("220")
            self.send("AUTH TLS")
            self.expect("234")
            self.sock = self.wrap()

    def wrap(self) -> ssl.SSLSocket:
        return self.ctx.wrap_socket(self.raw, server_hostname="localhost", suppress_ragged_eofs=False)

    def send(self, line: str) -> None:
        self.sock.sendall(line.encode() + b"\r\n")

    def line(self) -> str:
        while b"\n" not in self.buf:
            chunk = self.sock.recv(4096)
            assert chunk, f"closed before a full reply line (buffer {self.buf!r})"
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode().rstrip("\r")

    def expect(self, code: str) -> str:
        while True:
            line = self.line()
            if line[:3] == code and line[3:4] != "-":
                return line
            assert line[:3] == code, f"expected {code}, got {line!r}"

    def login(self) -> None:
        self.send(f"USER {TEST_USER}")
        self.expect("331")
        self.send(f"PASS {TEST_PASS}")
        self.expect("230")

    def clean_end(self, timeout: float = 10) -> None:
        """Reads to the end: close_notify gives b''; an EOF without it raises SSLEOFError."""
        self.sock.settimeout(timeout)
        while True:
            chunk = self.sock.recv(4096)  # raises on a ragged EOF or a reset
            if not chunk:
                return
            self.buf += chunk

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


@pytest.mark.parametrize("implicit", [False, True], ids=["explicit", "implicit"])
def test_quit_ends_tls_with_close_notify_for_python(gateway, implicit):
    c = StrictTls(gateway.implicit_port if implicit else gateway.explicit_port, implicit)
    try:
        c.login()
        c.send("QUIT")
        assert c.expect("221").startswith("221")
        c.clean_end()
    finally:
        c.close()


@pytest.mark.parametrize("implicit", [False, True], ids=["explicit", "implicit"])
def test_quit_before_login_ends_tls_with_close_notify(gateway, implicit):
    c = StrictTls(gateway.implicit_port if implicit else gateway.explicit_port, implicit)
    try:
        c.send("QUIT")
        c.expect("221")
        c.clean_end()
    finally:
        c.close()


@pytest.mark.parametrize("implicit", [False, True], ids=["explicit", "implicit"])
def test_quit_ends_tls_with_close_notify_for_openssl_s_client(gateway, implicit):
    port = gateway.implicit_port if implicit else gateway.explicit_port
    cmd = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-crlf", "-ign_eof"]
    if not implicit:
        cmd[2:2] = ["-starttls", "ftp"]
    cli = Interactive(cmd)
    try:
        cli.expect(rb"^220[ -]" if implicit else rb"Verify return code", 15)
        cli.send(f"USER {TEST_USER}\nPASS {TEST_PASS}\n".encode())
        cli.expect(rb"^230 ", 15)
        cli.send(b"QUIT\n")
        cli.expect(rb"^221", 10)
        out = cli.expect(rb"^closed$|^DONE$|unexpected eof|errno=", 10)
        assert cli.proc.wait(timeout=10) == 0, out.decode(errors="replace")
        tail = out.decode(errors="replace").split("221", 1)[1]
        assert "unexpected eof" not in tail and "errno=" not in tail, tail
    finally:
        cli.close()


def test_idle_timeout_421_ends_tls_with_close_notify(gateway_factory):
    gw = gateway_factory({"limits": {"idle_timeout": "2s"}})
    c = StrictTls(gw.explicit_port, implicit=False)
    try:
        c.login()
        assert c.expect("421").startswith("421")
        c.clean_end()
    finally:
        c.close()


def test_login_timeout_421_ends_tls_with_close_notify(gateway_factory):
    gw = gateway_factory({"limits": {"login_timeout": "2s"}})
    c = StrictTls(gw.implicit_port, implicit=True)
    try:
        assert c.expect("421").startswith("421")
        c.clean_end()
    finally:
        c.close()


def test_drain_ends_an_idle_tls_session_with_close_notify(gateway):
    c = StrictTls(gateway.explicit_port, implicit=False)
    try:
        c.login()
        c.send("NOOP")
        c.expect("200")
        gateway.stop()
        c.expect("421")
        c.clean_end()
    finally:
        c.close()
