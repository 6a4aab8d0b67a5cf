"""tls.protocols, ciphers, ciphersuites and groups reach the handshake (openssl s_client)."""
from __future__ import annotations

import subprocess
import pytest

pytestmark = pytest.mark.tls


def _handshake(port: int, *args: str) -> str:
    proc = subprocess.run(["openssl", "s_client", "-starttls", "ftp", "-connect", f"127.0.0.1:{port}", *args],
                          input=b"QUIT\r\n", capture_output=True, timeout=30)
    return proc.stdout.decode("utf-8", "replace") + proc.stderr.decode("utf-8", "replace")


def test_ciphers_ciphersuites_and_groups_are_applied(gateway_factory):
    gw = gateway_factory({"tls": {"ciphersuites": "TLS_CHACHA20_POLY1305_SHA256",
                                  "ciphers": "ECDHE-ECDSA-AES128-GCM-SHA256",
                                  "groups": "P-256"}})
    out13 = _handshake(gw.explicit_port, "-tls1_3")
    assert "Cipher is TLS_CHACHA20_POLY1305_SHA256" in out13, out13
    assert "prime256v1" in out13, out13
    out12 = _handshake(gw.explicit_port, "-tls1_2")
    assert "Cipher is ECDHE-ECDSA-AES128-GCM-SHA256" in out12, out12
    # A TLS 1.2 client offering only other suites gets no handshake.
    refused = _handshake(gw.explicit_port, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-GCM-SHA384")
    assert "Cipher is (NONE)" in refused or "handshake failure" in refused, refused


def test_protocols_can_be_narrowed_to_tls13(gateway_factory):
    gw = gateway_factory({"tls": {"protocols": ["TLSv1.3"]}})
    out = _handshake(gw.explicit_port)
    assert "New, TLSv1.3, Cipher is" in out, out
    refused = _handshake(gw.explicit_port, "-tls1_2")
    assert "Cipher is (NONE)" in refused or "alert protocol version" in refused, refused


def _renegotiate(port: int) -> str:
    # s_client renegotiates on a line "R"; the pause lets the handshake finish first.
    script = "sleep 1; echo R; sleep 1; echo QUIT"
    proc = subprocess.run(f"({script}) | openssl s_client -starttls ftp -tls1_2 -connect 127.0.0.1:{port}",
                          shell=True, capture_output=True, timeout=30)
    return proc.stdout.decode("utf-8", "replace") + proc.stderr.decode("utf-8", "replace")


def test_client_renegotiation_is_refused_unless_allowed(gateway_factory):
    strict = _renegotiate(gateway_factory().explicit_port)
    assert "RENEGOTIATING" in strict and "no renegotiation" in strict, strict
    relaxed = _renegotiate(gateway_factory({"tls": {"client_renegotiation": True}}).explicit_port)
    assert "RENEGOTIATING" in relaxed and "no renegotiation" not in relaxed, relaxed
