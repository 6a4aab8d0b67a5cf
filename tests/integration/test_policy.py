"""Policy: tls_required, passive masquerading, foreign data connections."""
from __future__ import annotations

import re
import socket
import time

import pytest

import harness
from harness import Ctrl, TEST_USER, klass

pytestmark = pytest.mark.control


def test_plain_user_under_tls_required_on_is_refused_before_the_backend(gateway, backend, backend_log):
    with Ctrl(gateway.explicit_port) as c:
        assert c.greeting().code == 220
        r = c.cmd(f"USER {TEST_USER}")
        assert r.last == "550 SSL/TLS required on the control channel", r.text
        r = c.cmd("PASS whatever")
        assert r.code >= 500, r.text
        # The session goes on: AUTH TLS and a real login still work.
        c.auth_tls()
        c.login()
        assert c.cmd("PWD").code == 257
    seen = backend.commands_since(backend_log)
    assert seen.count(f"USER {TEST_USER}") == 1, f"backend saw: {seen}"  # only the TLS login
    assert "PASS whatever" not in str(seen)
    denials = gateway.wait_log(lambda: gateway.events("policy_denial"), "a policy_denial")
    assert any(r.get("message") == "SSL/TLS required on the control channel"
               or "USER" in str(r.get("command", "")) for r in denials), denials


def test_plain_user_alone_never_reaches_the_backend(gateway, backend, backend_log):
    with Ctrl(gateway.explicit_port) as c:
        c.greeting()
        assert c.cmd(f"USER {TEST_USER}").code == 550
        assert c.cmd("QUIT").code == 221
    gateway.wait_log(lambda: gateway.events("session_end") or gateway.events("policy_denial"),
                     "the session's end")
    seen = backend.commands_since(backend_log)
    assert not [x for x in seen if x.startswith("USER")], seen


def login_tls(gw) -> Ctrl:
    c = Ctrl(gw.explicit_port)
    c.greeting()
    c.auth_tls()
    c.login()
    c.expect("PBSZ 0", 200)
    c.expect("PROT P", 200)
    return c


def test_pasv_and_epsv_replies_carry_the_masquerade_address(gateway_factory):
    gw = gateway_factory({"passive": {"masquerade_address": "127.0.0.77"}})
    with login_tls(gw) as c:
        r = c.cmd("PASV")
        m = re.fullmatch(r"227 Entering Passive Mode \(127,0,0,77,(\d+),(\d+)\)", r.last)
        assert m and len(r.lines) == 1, r.text
        port = int(m.group(1)) * 256 + int(m.group(2))
        assert port in gw.passive_range, (port, gw.passive_range)
        r = c.cmd("EPSV")
        m = re.fullmatch(r"229 Entering Extended Passive Mode \(\|\|\|(\d+)\|\)", r.last)
        assert m, r.text
        assert int(m.group(1)) in gw.passive_range
        assert c.cmd("QUIT").code == 221


def test_pasv_without_masquerade_names_the_control_connection_address(gateway):
    with login_tls(gateway) as c:
        host, port, r = c.pasv()
        assert host == "127.0.0.1", r.text
        assert port in gateway.passive_range


CLEAR_CLASS = {"classes": [klass("default", "off")], "limits": {"data_connect_timeout": "3s"}}


def clear_login(gw) -> Ctrl:
    c = Ctrl(gw.explicit_port)
    c.greeting()
    c.login()
    c.expect("TYPE I", 200)
    return c


def clear_retr(c: Ctrl, name: str) -> bytes:
    host, port, _ = c.pasv()
    with socket.create_connection((host, port), timeout=10) as d:
        c.send(f"RETR {name}")
        r = c.reply()
        assert r.code == 150, r.text
        data = harness.recv_all(d, 15)
    _, final = c.final_reply()
    assert final.code == 226, final.text
    return data


def test_clear_class_transfers_in_clear(gateway_factory, backend, remote_dir, medium_file):
    gw = gateway_factory(CLEAR_CLASS)
    path, digest = medium_file
    backend.put_file(f"{remote_dir}/m.bin", path)
    with clear_login(gw) as c:
        c.expect(f"CWD {remote_dir}", 250)
        assert harness.sha256_bytes(clear_retr(c, "m.bin")) == digest
        host, port, _ = c.pasv()
        with socket.create_connection((host, port), timeout=10) as d:
            c.send("STOR up.bin")
            assert c.reply().code == 150
            with open(path, "rb") as f:
                d.sendall(f.read())
        _, final = c.final_reply()
        assert final.code == 226, final.text
    assert harness.sha256_file(backend.root / remote_dir / "up.bin") == digest


def test_data_connection_from_a_foreign_address_is_refused(
        gateway_factory, backend, remote_dir, medium_file, backend_log):
    gw = gateway_factory(CLEAR_CLASS)
    path, digest = medium_file
    backend.put_file(f"{remote_dir}/m.bin", path)
    with clear_login(gw) as c:
        c.expect(f"CWD {remote_dir}", 250)
        host, port, _ = c.pasv()
        thief = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            thief.bind(("127.0.0.3", 0))
            thief.settimeout(5)
            thief.connect((host, port))
            start = time.monotonic()
            c.send("RETR m.bin")
            _, final = c.final_reply(timeout=10)
            assert final.last.startswith("425 Unable to build data connection: "), final.text
            assert time.monotonic() - start < 5
            thief.settimeout(2)
            try:
                stolen = thief.recv(65536)
            except (socket.timeout, ConnectionError):
                stolen = b""
            assert not stolen, "file data reached the foreign address"
        finally:
            thief.close()
        assert "RETR m.bin" not in backend.commands_since(backend_log)
        assert any("127.0.0.3" in line or "foreign" in line.lower() for line in gw.log_lines()), \
            "no log line names the foreign data connection"
        # The control session goes on, and a proper data connection works.
        assert c.cmd("PWD").code == 257
        assert harness.sha256_bytes(clear_retr(c, "m.bin")) == digest


def test_tls_required_ctrl_allows_clear_data_after_a_protected_login(
        gateway_factory, backend, remote_dir, medium_file):
    gw = gateway_factory({"classes": [klass("default", "ctrl")]})
    path, digest = medium_file
    backend.put_file(f"{remote_dir}/m.bin", path)
    with Ctrl(gw.explicit_port) as c:
        c.greeting()
        assert c.cmd(f"USER {TEST_USER}").last == "550 SSL/TLS required on the control channel"
        c.auth_tls()
        c.login()
        c.expect("PBSZ 0", 200)
        c.expect("PROT C", 200)
        c.expect("TYPE I", 200)
        c.expect(f"CWD {remote_dir}", 250)
        assert harness.sha256_bytes(clear_retr(c, "m.bin")) == digest


def test_tls_required_data_refuses_a_clear_transfer_with_522(
        gateway_factory, backend, remote_dir, medium_file, backend_log):
    gw = gateway_factory({"classes": [klass("default", "data")]})
    path, digest = medium_file
    backend.put_file(f"{remote_dir}/m.bin", path)
    with clear_login(gw) as c:  # a clear control channel is allowed under "data"
        c.expect(f"CWD {remote_dir}", 250)
        host, port, _ = c.pasv()
        with socket.create_connection((host, port), timeout=10):
            c.send("RETR m.bin")
            _, final = c.final_reply(timeout=10)
        assert final.code in (522, 534), final.text
        if final.code == 522:
            assert final.last == "522 Data connections must be encrypted", final.text
        assert c.cmd("PWD").code == 257
    assert "RETR m.bin" not in backend.commands_since(backend_log)


def test_idle_timeout_gives_421_and_closes(gateway_factory):
    gw = gateway_factory({"limits": {"idle_timeout": "2s"}})
    with login_tls(gw) as c:
        start = time.monotonic()
        r = c.reply(timeout=10)
        elapsed = time.monotonic() - start
        assert r.code == 421, r.text
        assert 1.5 <= elapsed <= 6, elapsed
        _, closed = c.read_until_closed(5)
        assert closed
    gw.wait_log(lambda: [r for r in gw.events("policy_denial") if r.get("reason") == "idle_timeout"],
                "a policy_denial with reason idle_timeout")


def test_handshake_timeout_closes_silent_tls_clients(gateway_factory):
    gw = gateway_factory({"limits": {"handshake_timeout": "2s"}})
    # Implicit: TCP connect, never send a ClientHello.
    with socket.create_connection(("127.0.0.1", gw.implicit_port), timeout=10) as s:
        start = time.monotonic()
        s.settimeout(10)
        try:
            data = s.recv(100)
        except ConnectionResetError:
            data = b""
        assert data == b"", data
        assert time.monotonic() - start <= 6
    # Explicit: AUTH TLS accepted, then silence.
    with Ctrl(gw.explicit_port) as c:
        c.greeting()
        assert c.cmd("AUTH TLS").code == 234
        start = time.monotonic()
        data, closed = c.read_until_closed(10)
        assert closed and data == b"", data
        assert time.monotonic() - start <= 6
