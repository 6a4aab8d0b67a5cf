"""FTPS towards the backend (backends[].tls explicit | implicit, issue 4 item 5): the
gateway re-encrypts towards a vsftpd that requires TLS and session reuse, verifies its
certificate, and never falls back to clear."""
from __future__ import annotations

import ftplib
import hashlib
import io
import os

import pytest

import harness
from clients import ReusingFTP_TLS, connect, download
from harness import TEST_PASS, TEST_USER, Vsftpd, klass

pytestmark = pytest.mark.backend


@pytest.fixture
def tls_backend(workdir, certs, request):
    implicit = getattr(request, "param", "explicit") == "implicit"
    b = Vsftpd(workdir / f"tls-backend-{request.node.name}", tls=certs, implicit=implicit)
    b.start()
    yield b
    b.stop()


def _gateway(gateway_factory, backend, certs, mode: str, **keys):
    entry = {"name": "vsftpd", "servers": [f"127.0.0.1:{backend.port}"], "connect_timeout": "3s",
             "tls": mode, "tls_ca": str(certs.cert), **keys}
    return gateway_factory({"backends": [entry]})


def _round_trip(gw, backend, name: str) -> None:
    payload = os.urandom(3 * 1024 * 1024 + 11)
    ftp = connect(gw, cls=ReusingFTP_TLS)
    try:
        ftp.storbinary(f"STOR {name}", io.BytesIO(payload))
        assert hashlib.sha256((backend.root / name).read_bytes()).digest() == hashlib.sha256(payload).digest()
        assert download(ftp, name) == payload
        assert ftp.nlst() == [name]
    finally:
        ftp.quit()


@pytest.mark.parametrize("tls_backend", ["explicit", "implicit"], indirect=True)
def test_transfers_through_an_ftps_backend(gateway_factory, tls_backend, certs, request):
    mode = "implicit" if tls_backend.implicit else "explicit"
    mark = tls_backend.log_mark()
    gw = _gateway(gateway_factory, tls_backend, certs, mode)
    _round_trip(gw, tls_backend, f"tls-{mode}.bin")
    commands = tls_backend.commands_since(mark)
    setup = [c for c in commands if c.split()[0] in ("AUTH", "PBSZ", "PROT", "USER")]
    expected = (["AUTH TLS"] if mode == "explicit" else []) + ["PBSZ 0", "PROT P", f"USER {TEST_USER}"]
    assert setup[:len(expected)] == expected, commands
    # vsftpd refuses data connections that do not resume the control session
    # (require_ssl_reuse): the transfers passing proves the gateway resumed it.
    assert [t["result"] for t in gw.events("transfer")] == ["ok", "ok", "ok"]


@pytest.mark.parametrize("tls_backend", ["explicit"], indirect=True)
def test_clear_client_data_is_encrypted_towards_the_backend(gateway_factory, tls_backend, certs):
    """A class that lets the client use PROT C still gets PROT P towards the backend."""
    entry = {"name": "vsftpd", "servers": [f"127.0.0.1:{tls_backend.port}"], "tls": "explicit",
             "tls_ca": str(certs.cert)}
    gw = gateway_factory({"backends": [entry], "classes": [klass("default", "ctrl")]})
    tls_backend.put("clear-client.txt", b"hello over two kinds of data channel")
    ftp = connect(gw)
    try:
        ftp.prot_c()
        assert download(ftp, "clear-client.txt") == b"hello over two kinds of data channel"
    finally:
        ftp.quit()


@pytest.mark.parametrize("tls_backend", ["explicit"], indirect=True)
def test_active_mode_towards_an_ftps_backend(gateway_factory, tls_backend, certs):
    gw = _gateway(gateway_factory, tls_backend, certs, "explicit", data_mode="active")
    _round_trip(gw, tls_backend, "tls-active.bin")


@pytest.mark.parametrize("tls_backend", ["explicit", "implicit"], indirect=True)
def test_a_backend_certificate_from_another_ca_is_refused(gateway_factory, tls_backend, certs, workdir):
    other = harness.make_certs(workdir / f"other-ca-{tls_backend.port}")
    mode = "implicit" if tls_backend.implicit else "explicit"
    mark = tls_backend.log_mark()
    gw = _gateway(gateway_factory, tls_backend, other, mode)
    with pytest.raises(ftplib.error_temp) as refused:
        connect(gw)
    assert str(refused.value).startswith("421")
    # Logged by the session's own attempt or, first, by the health check.
    gw.wait_log(lambda: [e for e in gw.events() if "certificate verification failed" in
                         str(e.get("error", e.get("reason")))], "certificate verification failure logged")
    assert not [c for c in tls_backend.commands_since(mark) if c.startswith(("USER", "PASS"))]
    # tls_verify: false is the explicit relaxation.
    relaxed = _gateway(gateway_factory, tls_backend, other, mode, tls_verify=False)
    _round_trip(relaxed, tls_backend, f"relaxed-{mode}.bin")


def test_a_backend_without_tls_is_a_backend_error_not_a_fallback(gateway_factory, backend, certs, backend_log):
    gw = _gateway(gateway_factory, backend, certs, "explicit")
    with pytest.raises(ftplib.error_temp) as refused:
        connect(gw)
    assert str(refused.value).startswith("421")
    gw.wait_log(lambda: [e for e in gw.events("backend_error") if "AUTH TLS" in str(e.get("error"))],
                "refused AUTH TLS logged")
    assert not [c for c in backend.commands_since(backend_log) if c.startswith(("USER", "PASS"))], \
        "the login never went to the backend in clear"
