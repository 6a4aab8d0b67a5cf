"""Active mode (PORT/EPRT from the client) and FTP bounce protection (SPEC §2 active, §3).

The gateway answers PORT/EPRT itself, reaches the backend in passive mode, and on the
transfer command connects out to the client from its control connection's local
address; under PROT P it is the TLS server on that connection and requires the data
session to resume the control session, exactly as in passive mode.

curl 7.88's active mode with TLS is broken on this system (it fails against vsftpd with
TLS directly too), so active mode is driven with ftplib (clients.ActiveFTP_TLS) and with
raw sockets.
"""
from __future__ import annotations

import ftplib
import io
import socket
import ssl

import pytest

import harness
from clients import ActiveFTP_TLS, connect, download, metric, metrics_up, scrape_metrics
from faults_util import protected_download, resumed_retr
from harness import NO_REUSE_MESSAGE, TEST_PASS, TEST_USER, Ctrl, klass

pytestmark = pytest.mark.data

CLEAR_DATA_CLASS = {"classes": [klass("default", "ctrl")]}  # TLS login, PROT C allowed


# --------------------------------------------------------------------------- helpers







def port_arg(host: str, port: int) -> str:
    return ",".join(host.split(".") + [str(port >> 8), str(port & 0xFF)])


def tls_login(gw, prot: str = "P") -> Ctrl:
    c = Ctrl(gw.explicit_port)
    assert c.greeting().code == 220
    c.auth_tls()
    c.login()
    c.expect("PBSZ 0", 200)
    c.expect(f"PROT {prot}", 200)
    c.expect("TYPE I", 200)
    return c


def active_retr(c: Ctrl, name: str, eprt: bool = False, protect: bool = True,
                listen_host: str = "127.0.0.1", session=None) -> tuple[bytes, tuple]:
    """PORT/EPRT to a fresh listener, RETR, accept the gateway's connection, read to EOF.
    Returns (data, gateway's source address)."""
    with socket.create_server((listen_host, 0), backlog=1) as srv:
        srv.settimeout(10)
        port = srv.getsockname()[1]
        if eprt:
            r = c.cmd(f"EPRT |1|{listen_host}|{port}|")
            assert r.last == "200 EPRT command successful", r.text
        else:
            r = c.cmd(f"PORT {port_arg(listen_host, port)}")
            assert r.last == "200 PORT command successful", r.text
        c.send(f"RETR {name}")
        r = c.reply()
        assert r.code == 150, r.text
        conn, peer = srv.accept()
    with conn:
        if protect:
            tls = c.ctx.wrap_socket(conn, server_hostname="localhost",
                                    session=session or c.session())
            assert tls.session_reused, "active data connection did not resume the control session"
            data = harness.recv_all(tls, 15)
            harness.close_tls(tls)
        else:
            data = harness.recv_all(conn, 15)
    _, final = c.final_reply()
    assert final.code == 226, final.text
    return data, peer


# --------------------------------------------------------------------------- transfers

@pytest.mark.parametrize("use_eprt", [False, True], ids=["PORT", "EPRT"])
def test_ftplib_active_prot_p_download_upload_list(
        gateway, backend, remote_dir, medium_file, backend_log, use_eprt):
    """PROT P in active mode: every data connection is TLS, resumes the control session,
    comes from the gateway's control-connection address; sha256 both ways."""
    path, digest = medium_file
    backend.put_file(f"{remote_dir}/m.bin", path)
    cls = type("A", (ActiveFTP_TLS,), {"use_eprt": use_eprt})
    ftp = connect(gateway, cls=cls)
    try:
        ftp.cwd(remote_dir)
        assert harness.sha256_bytes(download(ftp, "m.bin")) == digest
        assert ftp.last_data_reused is True
        with open(path, "rb") as f:
            ftp.storbinary("STOR up.bin", f)
        assert ftp.last_data_reused is True
        assert harness.sha256_file(backend.root / remote_dir / "up.bin") == digest
        lines = []
        ftp.retrlines("LIST", lines.append)
        assert any(line.endswith(" m.bin") for line in lines), lines
        assert any(line.endswith(" up.bin") for line in lines), lines
        assert ftp.last_data_reused is True
        # The session goes on after active transfers, and the file round-trips.
        assert harness.sha256_bytes(download(ftp, "up.bin")) == digest
        assert ftp.voidcmd("NOOP").startswith("200")
    finally:
        ftp.close()
    assert len(ftp.data_peers) == 4
    assert all(host == "127.0.0.1" for host, _ in ftp.data_peers), ftp.data_peers
    seen = backend.commands_since(backend_log)
    assert not [x for x in seen if x.startswith(("PORT", "EPRT"))], \
        f"the backend must be reached in passive mode: {seen}"
    assert len([x for x in seen if x in ("PASV", "EPSV")]) >= 4, seen
    hs = gateway.data_handshakes()
    assert len(hs) >= 4 and all(r.get("resumed") is True for r in hs), hs
    assert not gateway.find(NO_REUSE_MESSAGE)
    gateway.assert_no_secret()


@pytest.mark.parametrize("use_eprt", [False, True], ids=["PORT", "EPRT"])
def test_ftplib_active_prot_c_download_upload_list(
        gateway_factory, backend, remote_dir, medium_file, use_eprt):
    """Clear data (PROT C) in active mode under a class that allows it."""
    gw = gateway_factory(CLEAR_DATA_CLASS)
    path, digest = medium_file
    backend.put_file(f"{remote_dir}/m.bin", path)
    cls = type("A", (ActiveFTP_TLS,), {"use_eprt": use_eprt})
    ftp = cls(context=harness.client_tls_context(), timeout=15)
    try:
        ftp.connect("127.0.0.1", gw.explicit_port)
        ftp.auth()
        ftp.login(TEST_USER, TEST_PASS)
        assert ftp.prot_c().startswith("200")
        ftp.cwd(remote_dir)
        assert harness.sha256_bytes(download(ftp, "m.bin")) == digest
        with open(path, "rb") as f:
            ftp.storbinary("STOR up.bin", f)
        assert harness.sha256_file(backend.root / remote_dir / "up.bin") == digest
        lines = []
        ftp.retrlines("LIST", lines.append)
        assert any(line.endswith(" up.bin") for line in lines), lines
    finally:
        ftp.close()
    assert len(ftp.data_peers) == 3
    assert all(host == "127.0.0.1" for host, _ in ftp.data_peers), ftp.data_peers
    assert not gw.data_handshakes(), "PROT C data connections must not be TLS"


def test_active_data_without_session_reuse_is_refused_and_session_goes_on(
        gateway, backend, remote_dir, medium_file, backend_log):
    """Active PROT P data connection with a fresh (non-resumed) TLS session: 425, and
    the file does not reach the client; a resuming retry works."""
    path, digest = medium_file
    backend.put_file(f"{remote_dir}/m.bin", path)
    with tls_login(gateway) as c:
        c.expect(f"CWD {remote_dir}", 250)
        with socket.create_server(("127.0.0.1", 0), backlog=1) as srv:
            srv.settimeout(10)
            c.expect(f"PORT {port_arg('127.0.0.1', srv.getsockname()[1])}", 200)
            c.send("RETR m.bin")
            r = c.reply()
            assert r.code == 150, r.text
            conn, _ = srv.accept()
            got = b""
            with conn:
                try:
                    tls = harness.client_tls_context().wrap_socket(conn, server_hostname="localhost")
                    assert not tls.session_reused
                    got = harness.recv_all(tls, 10)
                except (ssl.SSLError, OSError):
                    pass
        _, final = c.final_reply(timeout=10)
        assert final.last.startswith("425 Unable to build data connection: "), final.text
        assert harness.sha256_bytes(got) != digest and len(got) == 0, len(got)
        gateway.wait_log(lambda: gateway.find(NO_REUSE_MESSAGE), "the no-reuse message")
        assert c.cmd("PWD").code == 257
        data, _ = active_retr(c, "m.bin")
        assert harness.sha256_bytes(data) == digest


def test_raw_active_port_and_eprt_downloads(gateway, backend, remote_dir, medium_file):
    path, digest = medium_file
    backend.put_file(f"{remote_dir}/m.bin", path)
    with tls_login(gateway) as c:
        c.expect(f"CWD {remote_dir}", 250)
        for eprt in (False, True):
            data, peer = active_retr(c, "m.bin", eprt=eprt)
            assert harness.sha256_bytes(data) == digest
            assert peer[0] == "127.0.0.1", peer


# --------------------------------------------------------------------------- bounce protection

def test_port_to_another_host_is_refused_before_the_backend(
        gateway_factory, backend, remote_dir, medium_file, backend_log):
    mport = harness.PORTS.port()
    gw = gateway_factory({"metrics": {"address": f"127.0.0.1:{mport}"}})
    harness.wait_until(lambda: metrics_up(mport), 10, "metrics endpoint")
    path, digest = medium_file
    backend.put_file(f"{remote_dir}/m.bin", path)
    with tls_login(gw) as c:
        c.expect(f"CWD {remote_dir}", 250)
        mark = backend.log_mark()
        with socket.create_server(("127.0.0.2", 0), backlog=1) as victim:
            victim.settimeout(0.5)
            vport = victim.getsockname()[1]
            r = c.cmd(f"PORT {port_arg('127.0.0.2', vport)}")
            assert r.last == "504 PORT to another host than the client refused", r.text
            r = c.cmd(f"EPRT |1|127.0.0.2|{vport}|")
            assert r.last == "504 EPRT to another host than the client refused", r.text
            # A transfer command now has no data address: it must not reach 127.0.0.2.
            c.send("RETR m.bin")
            _, final = c.final_reply(timeout=10)
            assert final.code >= 400, final.text
            with pytest.raises(socket.timeout):
                victim.accept()
        # The control session goes on.
        assert c.cmd("PWD").code == 257
        assert c.cmd("NOOP").code == 200
        seen = backend.commands_since(mark)
        assert not [x for x in seen if x.split()[0] in ("PORT", "EPRT", "PASV", "EPSV")], \
            f"the backend saw data-channel commands for a refused PORT: {seen}"
        assert "RETR m.bin" not in seen, seen
        # A proper PORT afterwards works.
        data, _ = active_retr(c, "m.bin")
        assert harness.sha256_bytes(data) == digest
    denials = [r for r in gw.events("policy_denial") if r.get("reason") == "bounce_foreign_address"]
    assert len(denials) == 2, gw.events("policy_denial")
    assert {str(r.get("command", "")).split()[0] for r in denials} == {"PORT", "EPRT"}, denials
    text = scrape_metrics(mport)
    assert metric(text, "ftpsgate_policy_denials_total", reason="bounce_foreign_address") == 2, \
        [line for line in text.splitlines() if "policy_denials" in line]


def test_port_below_min_port_is_refused(gateway_factory, backend, remote_dir, medium_file, backend_log):
    mport = harness.PORTS.port()
    gw = gateway_factory({"metrics": {"address": f"127.0.0.1:{mport}"}})
    harness.wait_until(lambda: metrics_up(mport), 10, "metrics endpoint")
    path, digest = medium_file
    backend.put_file(f"{remote_dir}/m.bin", path)
    with tls_login(gw) as c:
        c.expect(f"CWD {remote_dir}", 250)
        mark = backend.log_mark()
        for port in (21, 1023):
            r = c.cmd(f"PORT {port_arg('127.0.0.1', port)}")
            assert r.last == "504 PORT to a port below 1024 refused", r.text
        r = c.cmd("EPRT |1|127.0.0.1|25|")
        assert r.last == "504 EPRT to a port below 1024 refused", r.text
        seen = backend.commands_since(mark)
        assert not [x for x in seen if x.split()[0] in ("PORT", "EPRT", "PASV", "EPSV")], seen
        assert c.cmd("PWD").code == 257
        data, _ = active_retr(c, "m.bin")  # the listener's port is >= 1024
        assert harness.sha256_bytes(data) == digest
    denials = [r for r in gw.events("policy_denial") if r.get("reason") == "bounce_low_port"]
    assert len(denials) == 3, gw.events("policy_denial")
    text = scrape_metrics(mport)
    assert metric(text, "ftpsgate_policy_denials_total", reason="bounce_low_port") == 3, \
        [line for line in text.splitlines() if "policy_denials" in line]


def test_min_port_is_configurable(gateway_factory, backend, remote_dir, medium_file):
    gw = gateway_factory({"active": {"min_port": 40000}})
    path, digest = medium_file
    backend.put_file(f"{remote_dir}/m.bin", path)
    with tls_login(gw) as c:
        c.expect(f"CWD {remote_dir}", 250)
        r = c.cmd(f"PORT {port_arg('127.0.0.1', 39999)}")
        assert r.last == "504 PORT to a port below 40000 refused", r.text
        # A listener on a port >= 40000 is accepted.
        srv = None
        for _ in range(50):
            candidate = socket.socket()
            try:
                candidate.bind(("127.0.0.1", 0))
            except OSError:
                candidate.close()
                continue
            if candidate.getsockname()[1] >= 40000:
                srv = candidate
                break
            candidate.close()
        if srv is None:
            pytest.skip("no ephemeral port >= 40000 available")
        with srv:
            srv.listen(1)
            srv.settimeout(10)
            c.expect(f"PORT {port_arg('127.0.0.1', srv.getsockname()[1])}", 200)
            c.send("RETR m.bin")
            assert c.reply().code == 150
            conn, _ = srv.accept()
            data = protected_download(c, conn)
        assert harness.sha256_bytes(data) == digest


def test_allow_foreign_address_permits_another_host(gateway_factory, backend, remote_dir, medium_file):
    gw = gateway_factory({"active": {"allow_foreign_address": True}})
    path, digest = medium_file
    backend.put_file(f"{remote_dir}/m.bin", path)
    with tls_login(gw) as c:
        c.expect(f"CWD {remote_dir}", 250)
        data, peer = active_retr(c, "m.bin", listen_host="127.0.0.2")
        assert harness.sha256_bytes(data) == digest
        data, _ = active_retr(c, "m.bin", listen_host="127.0.0.2", eprt=True)
        assert harness.sha256_bytes(data) == digest
        # The low-port rule still applies.
        r = c.cmd(f"PORT {port_arg('127.0.0.2', 80)}")
        assert r.last == "504 PORT to a port below 1024 refused", r.text
    assert not [r for r in gw.events("policy_denial") if r.get("reason") == "bounce_foreign_address"]


def test_active_disabled_gives_502(gateway_factory, backend, remote_dir, medium_file, backend_log):
    gw = gateway_factory({"active": {"enabled": False}})
    path, digest = medium_file
    backend.put_file(f"{remote_dir}/m.bin", path)
    with tls_login(gw) as c:
        c.expect(f"CWD {remote_dir}", 250)
        mark = backend.log_mark()
        with socket.create_server(("127.0.0.1", 0), backlog=1) as srv:
            port = srv.getsockname()[1]
            assert c.cmd(f"PORT {port_arg('127.0.0.1', port)}").code == 502
            assert c.cmd(f"EPRT |1|127.0.0.1|{port}|").code == 502
        seen = backend.commands_since(mark)
        assert not [x for x in seen if x.split()[0] in ("PORT", "EPRT", "PASV", "EPSV")], seen
        # Passive mode still works.
        assert harness.sha256_bytes(resumed_retr(c, "m.bin")) == digest


def test_ftplib_active_refused_port_raises_and_session_goes_on(gateway, backend, remote_dir, medium_file):
    """ftplib sees the 504 as error_perm; after switching to passive the session works."""
    path, digest = medium_file
    backend.put_file(f"{remote_dir}/m.bin", path)
    ftp = connect(gateway, cls=ActiveFTP_TLS)
    try:
        ftp.cwd(remote_dir)
        with pytest.raises(ftplib.error_perm, match=r"^504 PORT to another host than the client refused"):
            ftp.sendport("127.0.0.2", 40000)
        with pytest.raises(ftplib.error_perm, match=r"^504 PORT to a port below 1024 refused"):
            ftp.sendport("127.0.0.1", 1000)
        assert harness.sha256_bytes(download(ftp, "m.bin")) == digest  # active, PORT
        ftp.set_pasv(True)
        assert harness.sha256_bytes(download(ftp, "m.bin")) == digest  # passive
        ftp.storbinary("STOR up.bin", io.BytesIO(path.read_bytes()))
        assert harness.sha256_file(backend.root / remote_dir / "up.bin") == digest
    finally:
        ftp.close()
