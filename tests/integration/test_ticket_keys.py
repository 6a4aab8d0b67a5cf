"""tls.ticket_key_file (issue 4 item 8): replicas sharing the file resume each other's
sessions; SIGHUP rotates the keys (the first encrypts, the others still decrypt)."""
from __future__ import annotations

import os
import re
import signal
import socket
import ssl
from pathlib import Path

import pytest

import harness
from harness import GATEWAY_BIN, Gateway

pytestmark = pytest.mark.tls


def _tls_control(port: int, ctx: ssl.SSLContext, session: ssl.SSLSession | None = None) -> ssl.SSLSocket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    f = sock.makefile("rb")
    assert f.readline().startswith(b"220")
    sock.sendall(b"AUTH TLS\r\n")
    assert f.readline().startswith(b"234")
    tls = ctx.wrap_socket(sock, server_hostname="localhost", session=session)
    tls.sendall(b"NOOP\r\n")  # the reply comes after the TLS 1.3 tickets
    assert tls.recv(100).startswith(b"200")
    return tls


def _session_from(gw, ctx) -> ssl.SSLSession:
    with _tls_control(gw.explicit_port, ctx) as tls:
        return tls.session


def _resumes(gw, ctx, session) -> bool:
    with _tls_control(gw.explicit_port, ctx, session) as tls:
        return tls.session_reused


def _keyed_gateway(gateway_factory, keyfile: Path | None, name: str):
    tls = {"ticket_key_file": str(keyfile)} if keyfile else {}
    return gateway_factory({"tls": tls}, name=name) if tls else gateway_factory(name=name)


def _reload(gw, results: int) -> None:
    gw.proc.send_signal(signal.SIGHUP)
    harness.wait_until(lambda: len([r for r in gw.events("reload") if r.get("result") == "success"]) >= results,
                       10, "a successful reload", context=gw.tail)


def test_replicas_sharing_the_key_file_resume_each_others_sessions(gateway_factory, workdir):
    keyfile = workdir / "ticket-shared.key"
    keyfile.write_bytes(os.urandom(80))
    ctx = harness.client_tls_context()
    one = _keyed_gateway(gateway_factory, keyfile, "replica1")
    two = _keyed_gateway(gateway_factory, keyfile, "replica2")
    assert _resumes(two, ctx, _session_from(one, ctx))
    assert _resumes(one, ctx, _session_from(two, ctx))

    # Without the file every process has its own random keys.
    own = _keyed_gateway(gateway_factory, None, "own-keys")
    assert not _resumes(own, ctx, _session_from(one, ctx))


def test_sighup_rotates_the_keys(gateway_factory, workdir):
    old, new = os.urandom(80), os.urandom(80)
    keyfile = workdir / "ticket-rotate.key"
    keyfile.write_bytes(old)
    ctx = harness.client_tls_context()
    gw = _keyed_gateway(gateway_factory, keyfile, "rotating")
    under_old = _session_from(gw, ctx)

    keyfile.write_bytes(new + old)  # new key first: it encrypts, the old one still decrypts
    _reload(gw, 1)
    assert _resumes(gw, ctx, under_old)
    under_new = _session_from(gw, ctx)

    keyfile.write_bytes(new)  # the old key retired
    _reload(gw, 2)
    assert not _resumes(gw, ctx, under_old)
    assert _resumes(gw, ctx, under_new)


def test_check_refuses_a_key_file_of_the_wrong_size(workdir, backend, certs):
    keyfile = workdir / "ticket-short.key"
    keyfile.write_bytes(os.urandom(79))
    gw = Gateway(workdir / "cli" / "ticket-short", backend.port, certs, {"tls": {"ticket_key_file": str(keyfile)}})
    gw.write_config()
    proc = harness.run([str(GATEWAY_BIN), "--check", "--config", str(gw.config_path)], timeout=20)
    err = (proc.stdout + proc.stderr).decode()
    assert proc.returncode == 2, err
    assert "ticket_key_file" in err and "80-byte" in err, err
    lines = gw.config_path.read_text().splitlines()
    line = next(i for i, text in enumerate(lines, 1) if "ticket_key_file" in text)
    assert re.search(rf"{re.escape(str(gw.config_path))}:{line}:\d+: ", err), err
