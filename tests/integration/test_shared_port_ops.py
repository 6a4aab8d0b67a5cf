"""Shared passive port (issue 6) in operation: a reload keeps sessions from before it
able to resume on the shared port; handshakes run on any worker and the connection
reaches the session's own worker."""
from __future__ import annotations

import hashlib
import signal
import time

import pytest

import harness
from clients import TLS_VERSIONS, ReusingFTP_TLS, connect, run_concurrently

pytestmark = pytest.mark.data


def _shared(port_count: int = 1):
    def edit(config: dict) -> None:
        low = int(str(config["passive"]["ports"]).split("-")[0])
        config["passive"] = {"ports": f"{low}" if port_count == 1 else f"{low}-{low + port_count - 1}",
                             "shared_port": True}
    return edit


def _client_context(resumption: str):
    """"TLSv1.2 session id" (no tickets), "TLSv1.2 ticket" or "TLSv1.3 ticket"."""
    import ssl

    version = TLS_VERSIONS[resumption.split()[0]]
    ctx = harness.client_tls_context(min_version=version, max_version=version)
    if resumption.endswith("session id"):
        ctx.options |= ssl.OP_NO_TICKET
    return ctx


def _fetch(ftp, name: str) -> str:
    got = hashlib.sha256()
    ftp.retrbinary(f"RETR {name}", got.update)
    return got.hexdigest()


@pytest.mark.parametrize("resumption", ["TLSv1.3 ticket", "TLSv1.2 session id"])
def test_session_from_before_a_reload_still_resumes_on_the_shared_port(gateway_factory, backend, medium_file,
                                                                       resumption):
    path, digest = medium_file
    backend.put_file("reload-shared.bin", path)
    gw = gateway_factory({"workers": 2}, edit=_shared())
    ftp = connect(gw, cls=ReusingFTP_TLS, ctx=_client_context(resumption))
    assert _fetch(ftp, "reload-shared.bin") == digest
    gw.config["logging"]["level"] = "debug"  # any change: a new runtime, a new TLS context
    gw.write_config()
    gw.proc.send_signal(signal.SIGHUP)
    harness.wait_until(lambda: [r for r in gw.events("reload") if r.get("result") == "success"], 10,
                       "a successful reload")
    assert _fetch(ftp, "reload-shared.bin") == digest  # resumed under the context of before
    fresh = connect(gw, cls=ReusingFTP_TLS)
    assert _fetch(fresh, "reload-shared.bin") == digest
    ftp.quit()
    fresh.quit()
    assert gw.events("policy_denial") == []
    # Two generations of TLS contexts and one shared session store: they part cleanly.
    gw.proc.send_signal(signal.SIGTERM)
    assert gw.proc.wait(timeout=10) == 0


def test_handshakes_run_on_any_worker_and_reach_the_sessions_worker(gateway_factory, backend, medium_file):
    path, digest = medium_file
    backend.put_file("handover.bin", path)
    gw = gateway_factory({"workers": 2}, edit=_shared())

    def run() -> None:
        ftp = connect(gw, cls=ReusingFTP_TLS)
        for _ in range(4):
            assert _fetch(ftp, "handover.bin") == digest
        ftp.quit()

    run_concurrently([run] * 4)
    worker_of = {e["session"]: e["worker"] for e in gw.events("session_start")}
    data = [e for e in gw.events("tls_handshake") if e.get("channel") == "data"]
    assert len(data) == 16
    assert all("handshake_worker" in e for e in data), data
    # Round robin over two workers: some connections were handshaked by the other worker
    # and handed over, and every one of them was relayed by its session's own worker.
    moved = [e for e in data if e["handshake_worker"] != worker_of[e["session"]]]
    assert 0 < len(moved) < len(data)
    assert len([t for t in gw.events("transfer") if t["result"] == "ok"]) == 16


def test_silent_connections_on_the_shared_port_time_out_and_leave_it_serving(gateway_factory, backend, medium_file):
    path, digest = medium_file
    backend.put_file("silent.bin", path)
    gw = gateway_factory({"limits": {"handshake_timeout": "1s"}}, edit=_shared())
    port = int(gw.config["passive"]["ports"])
    import socket
    silent = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(5)]
    try:
        ftp = connect(gw, cls=ReusingFTP_TLS)
        assert _fetch(ftp, "silent.bin") == digest
        for s in silent:
            s.settimeout(5)
            assert s.recv(1) == b""  # closed by the handshake timeout
        ftp.quit()
    finally:
        for s in silent:
            s.close()
    errors = [e for e in gw.events("data_error") if "timed out" in e.get("message", "")]
    assert len(errors) == 5


def test_resumed_session_from_a_foreign_address_is_refused(gateway_factory, backend, medium_file):
    """data.allow_foreign_address: false holds on the shared port too: resuming the right
    session from another host is not enough."""
    import ftplib
    import socket

    path, digest = medium_file
    backend.put_file("foreign.bin", path)
    gw = gateway_factory(edit=_shared())
    ftp = connect(gw, cls=ReusingFTP_TLS)
    assert _fetch(ftp, "foreign.bin") == digest  # the control session's ticket is in hand
    port = ftplib.parse227(ftp.sendcmd("PASV"))[1]
    raw = socket.socket()
    raw.bind(("127.0.0.2", 0))
    raw.connect(("127.0.0.1", port))
    data = ftp.context.wrap_socket(raw, server_hostname="127.0.0.1", session=ftp.sock.session)
    assert data.session_reused
    harness.wait_until(lambda: [e for e in gw.events("policy_denial") if e.get("reason") == "data_foreign_address"],
                       10, "the foreign-address refusal")
    data.close()
    try:
        ftp.sendcmd("RETR foreign.bin")
        raise AssertionError("RETR after a refused data connection must fail")
    except ftplib.error_temp as e:
        assert str(e).startswith("425 Unable to build data connection: connection from a foreign address")
    assert _fetch(ftp, "foreign.bin") == digest  # the session goes on
    ftp.quit()


def test_ipv4_and_ipv6_listeners_each_get_the_shared_port(gateway_factory, backend, medium_file):
    path, digest = medium_file
    backend.put_file("dual.bin", path)
    v6_port = harness.PORTS.port()

    def edit(config: dict) -> None:
        _shared()(config)
        config["listeners"].append({"name": "v6", "address": f"[::1]:{v6_port}", "mode": "explicit",
                                    "backend": "vsftpd"})

    gw = gateway_factory(edit=edit)
    shared = int(gw.config["passive"]["ports"])
    v4 = connect(gw, cls=ReusingFTP_TLS)
    v6 = ReusingFTP_TLS(context=harness.client_tls_context(), timeout=15)
    v6.connect("::1", v6_port)
    v6.auth()
    v6.login(harness.TEST_USER, harness.TEST_PASS)
    v6.prot_p()
    for ftp in (v4, v6):
        assert ftp.sendcmd("EPSV") == f"229 Entering Extended Passive Mode (|||{shared}|)"
        assert _fetch(ftp, "dual.bin") == digest
        ftp.quit()


@pytest.mark.parametrize("resumption", ["TLSv1.2 session id", "TLSv1.2 ticket", "TLSv1.3 ticket"])
def test_every_kind_of_resumption_finds_its_session(gateway_factory, backend, medium_file, resumption):
    path, digest = medium_file
    backend.put_file("kinds.bin", path)
    gw = gateway_factory({"workers": 2}, edit=_shared())
    version = resumption.split()[0]
    ftp = connect(gw, ctx=_client_context(resumption), cls=ReusingFTP_TLS)
    for _ in range(3):
        assert _fetch(ftp, "kinds.bin") == digest
        assert ftp.last_data_reused
    ftp.quit()
    data = [e for e in gw.events("tls_handshake") if e.get("channel") == "data"]
    assert len(data) == 3 and all(e["resumed"] and e["version"] == version for e in data), data


def _reload(gw) -> None:
    done = len([r for r in gw.events("reload") if r.get("result") == "success"])
    gw.proc.send_signal(signal.SIGHUP)
    harness.wait_until(lambda: len([r for r in gw.events("reload") if r.get("result") == "success"]) > done, 10,
                       "a successful reload")


def test_a_handshake_spanning_two_reloads_keeps_its_tls_context(gateway_factory, backend, medium_file, tmp_path):
    """The data handshake started under one configuration and finished after the next two
    reloads: its context (ticket keys from ticket_key_file) must still be there."""
    import ftplib
    import os
    import socket

    path, digest = medium_file
    backend.put_file("span.bin", path)
    keyfile = tmp_path / "tickets.key"
    keyfile.write_bytes(os.urandom(80))
    gw = gateway_factory({"tls": {"ticket_key_file": str(keyfile)}}, edit=_shared())
    ftp = connect(gw, cls=ReusingFTP_TLS)
    assert _fetch(ftp, "span.bin") == digest
    _reload(gw)  # a runtime no session holds
    port = ftplib.parse227(ftp.sendcmd("PASV"))[1]
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)  # its handshake starts, silent
    time.sleep(0.5)  # the acceptor hands it to a worker, which makes its SSL
    _reload(gw)  # the previous runtime goes, with its ticket keys, unless the handshake holds it
    data = ftp.context.wrap_socket(raw, server_hostname="127.0.0.1", session=ftp.sock.session)
    assert data.session_reused
    ftp.putcmd("RETR span.bin")
    assert ftp.getresp().startswith("150")
    got = hashlib.sha256()
    while chunk := data.recv(65536):
        got.update(chunk)
    data.close()
    assert ftp.voidresp().startswith("226")
    assert got.hexdigest() == digest
    ftp.quit()


def test_garbage_on_the_shared_port_is_refused_and_counted(gateway_factory, backend, medium_file):
    import socket

    path, digest = medium_file
    backend.put_file("garbage.bin", path)
    gw = gateway_factory({"workers": 2}, edit=_shared())
    port = int(gw.config["passive"]["ports"])
    for i in range(20):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GARBAGE\r\n" if i % 2 else b"\x16\x03\x01\x00\x05hello")  # not TLS / a cut ClientHello
            s.shutdown(socket.SHUT_WR)
            s.settimeout(5)
            while s.recv(4096):
                pass  # the gateway closes it
    harness.wait_until(lambda: len(gw.events("data_error")) >= 20, 10, "20 refused handshakes")
    assert all("TLS handshake failed" in e["message"] for e in gw.events("data_error"))
    ftp = connect(gw, cls=ReusingFTP_TLS)
    assert _fetch(ftp, "garbage.bin") == digest
    ftp.quit()
