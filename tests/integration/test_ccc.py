"""CCC (RFC 4217 §12): clearing the control channel after a protected login.

Allowed only under tls_required auth, auth+data, auth+!data and after login; the gateway
replies 200, sends its close_notify and continues in clear; a client close_notify sent
in answer is skipped. On a clear control channel CCC gets 533, otherwise 534
(reason ccc_not_allowed). Data protection stays as the policy says (PROT P data
connections still resume the control connection's TLS session).
"""
from __future__ import annotations

import socket
import ssl

import pytest

import harness
from clients import check_curl, curl, metric, metrics_up, scrape_metrics
from harness import NO_REUSE_MESSAGE, Ctrl, klass

pytestmark = pytest.mark.tls

CCC_OK = "200 CCC command successful; control channel continues in clear"
AUTH_DATA = {"classes": [klass("default", "auth+data")]}
VERSIONS = {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}







def tls_login(gw, version: str | None = None, prot: str | None = "P") -> Ctrl:
    v = VERSIONS[version] if version else None
    c = Ctrl(gw.explicit_port, ctx=harness.client_tls_context(min_version=v, max_version=v))
    assert c.greeting().code == 220
    c.auth_tls()
    c.login()
    c.expect("PBSZ 0", 200)
    if prot:
        c.expect(f"PROT {prot}", 200)
    c.expect("TYPE I", 200)
    return c


def ccc_and_unwrap(c: Ctrl) -> ssl.SSLSession:
    """CCC -> 200, then unwrap: sends our close_notify and waits for the gateway's.
    Returns the TLS session (for protected data connections afterwards)."""
    r = c.cmd("CCC")
    assert r.last == CCC_OK, r.text
    assert c.buf == b"", f"bytes after the CCC reply inside TLS: {c.buf!r}"
    session = c.sock.session
    c.sock.settimeout(10)
    c.sock = c.sock.unwrap()  # raises if the gateway sends no close_notify
    c.tls = False
    return session


def epsv_transfer(c: Ctrl, command: str, session: ssl.SSLSession | None,
                  upload: bytes | None = None) -> bytes:
    """One EPSV transfer; TLS (resuming `session`) when session is given, else clear."""
    port, _ = c.epsv()
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    c.send(command)
    r = c.reply()
    assert r.code == 150, r.text
    sock = raw
    if session is not None:
        sock = c.ctx.wrap_socket(raw, server_hostname="localhost", session=session)
        assert sock.session_reused, "data connection after CCC did not resume the session"
    data = b""
    if upload is not None:
        sock.sendall(upload)
    else:
        data = harness.recv_all(sock, 15)
    if session is not None:
        harness.close_tls(sock)
    else:
        sock.close()
    _, final = c.final_reply()
    assert final.code == 226, final.text
    return data


# --------------------------------------------------------------------------- raw socket

@pytest.mark.parametrize("version", [
    "TLSv1.2",
    "TLSv1.3",
])
def test_raw_ccc_then_clear_control_and_protected_data(
        gateway_factory, backend, remote_dir, medium_file, backend_log, version):
    gw = gateway_factory(AUTH_DATA)
    path, digest = medium_file
    backend.put_file(f"{remote_dir}/m.bin", path)
    with tls_login(gw, version) as c:
        c.expect(f"CWD {remote_dir}", 250)
        session = ccc_and_unwrap(c)
        # The control channel now speaks clear text.
        r = c.cmd("PWD")
        assert r.code == 257 and f"/{remote_dir}" in r.last, r.text
        assert c.cmd("NOOP").code == 200
        # CCC again: the control channel is no longer protected.
        assert c.cmd("CCC").code == 533
        # Data stays protected (auth+data) and resumes the control connection's session.
        assert harness.sha256_bytes(epsv_transfer(c, "RETR m.bin", session)) == digest
        epsv_transfer(c, "STOR up.bin", session, upload=path.read_bytes())
        assert harness.sha256_file(backend.root / remote_dir / "up.bin") == digest
        # A clear data connection is not accepted under auth+data.
        port, _ = c.epsv()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            c.send("RETR m.bin")
            replies, final = c.final_reply(timeout=15)
            # The gateway waits for a TLS ClientHello that never comes; it must not send
            # the file in clear.
            raw.settimeout(1)
            try:
                leaked = raw.recv(65536)
            except (socket.timeout, ConnectionError):
                leaked = b""
        assert final.code in (425, 426, 522, 534), final.text
        assert harness.sha256_bytes(leaked) != digest and len(leaked) < 1024, len(leaked)
        assert c.cmd("QUIT").code == 221
    assert gw.events("ccc"), "no ccc event in the log"
    hs = gw.data_handshakes()
    assert len(hs) >= 2 and all(r.get("resumed") is True for r in hs[:2]), hs
    assert "CCC" not in backend.commands_since(backend_log)


@pytest.mark.parametrize("version", [
    "TLSv1.2",
    "TLSv1.3",
])
def test_ccc_under_auth_not_data_then_clear_data(
        gateway_factory, backend, remote_dir, medium_file, version):
    gw = gateway_factory({"classes": [klass("default", "auth+!data")]})
    path, digest = medium_file
    backend.put_file(f"{remote_dir}/m.bin", path)
    with tls_login(gw, version, prot=None) as c:
        assert c.cmd("PROT P").last == "534 PROT P refused by policy"
        c.expect(f"CWD {remote_dir}", 250)
        ccc_and_unwrap(c)
        assert c.cmd("PWD").code == 257
        assert harness.sha256_bytes(epsv_transfer(c, "RETR m.bin", None)) == digest
        epsv_transfer(c, "STOR up.bin", None, upload=path.read_bytes())
    assert harness.sha256_file(backend.root / remote_dir / "up.bin") == digest
    assert not gw.data_handshakes()


def test_ccc_refusals_and_session_goes_on(gateway_factory, backend_log, backend):
    mport = harness.PORTS.port()
    gw = gateway_factory({"classes": [klass("default", "auth+data")],
                          "metrics": {"address": f"127.0.0.1:{mport}"}})
    harness.wait_until(lambda: metrics_up(mport), 10, "metrics endpoint")
    with Ctrl(gw.explicit_port) as c:
        c.greeting()
        assert c.cmd("CCC").code == 533, "CCC on a clear control channel"
        c.auth_tls()
        r = c.cmd("CCC")
        assert r.code == 534, f"CCC before login: {r.text}"
        # Still TLS: the session goes on, login works, then CCC is allowed.
        assert c.tls and isinstance(c.sock, ssl.SSLSocket)
        c.login()
        c.expect("PBSZ 0", 200)
        assert c.cmd("PWD").code == 257
    on = gateway_factory({"classes": [klass("default", "on")]}, name="on")
    with Ctrl(on.explicit_port) as c:
        c.greeting()
        c.auth_tls()
        c.login()
        r = c.cmd("CCC")
        assert r.code == 534, f"CCC under tls_required on: {r.text}"
        assert c.cmd("PWD").code == 257
    denials = [r for r in gw.events("policy_denial") if r.get("reason") == "ccc_not_allowed"]
    assert len(denials) == 1, gw.events("policy_denial")
    assert [r for r in on.events("policy_denial") if r.get("reason") == "ccc_not_allowed"]
    text = scrape_metrics(mport)
    assert metric(text, "ftpsgate_policy_denials_total", reason="ccc_not_allowed") == 1, \
        [line for line in text.splitlines() if "policy_denials" in line]
    assert "CCC" not in backend.commands_since(backend_log)


def feat_has_ccc(reply) -> bool:
    assert reply.code == 211, reply.text
    return any(line.strip() == "CCC" for line in reply.lines[1:-1])


@pytest.mark.parametrize("tls_required,listed", [
    ("auth", True), ("auth+data", True), ("auth+!data", True),
    ("on", False), ("ctrl", False), ("off", False), ("data", False),
])
def test_feat_lists_ccc_only_when_the_class_allows_it(gateway_factory, tls_required, listed):
    gw = gateway_factory({"classes": [klass("default", tls_required)]})
    with Ctrl(gw.explicit_port) as c:
        c.greeting()
        assert feat_has_ccc(c.cmd("FEAT")) == listed, "FEAT before AUTH"
        c.auth_tls()
        assert feat_has_ccc(c.cmd("FEAT")) == listed, "FEAT after AUTH"
        c.login()
        assert feat_has_ccc(c.cmd("FEAT")) == listed, "FEAT after login (merged with the backend's)"


# --------------------------------------------------------------------------- curl

def _curl_ccc(gw, certs, local_dir, remote_dir, path, digest, mode: str, tls_args: list[str]):
    base = f"ftp://127.0.0.1:{gw.explicit_port}/{remote_dir}"
    args = ["--ssl-reqd", "--ftp-ssl-ccc", "--ftp-ssl-ccc-mode", mode, *tls_args]
    down = curl(certs, *args, "-o", str(local_dir / "m.bin"), f"{base}/m.bin")
    check_curl(down, gw, f"CCC {mode} download")
    assert b"CCC command successful" in down.stderr, harness._tail_bytes(down.stderr)
    assert harness.sha256_file(local_dir / "m.bin") == digest
    up = curl(certs, *args, "-T", str(path), f"{base}/up.bin")
    check_curl(up, gw, f"CCC {mode} upload")
    return down, up


@pytest.mark.parametrize("tls", [
    "TLSv1.2",
    # TLS 1.3 hides the client's close_notify in a 0x17 record, which the gateway skips too.
    "TLSv1.3",
])
def test_curl_ccc_active_mode_download_upload(
        gateway_factory, certs, backend, remote_dir, local_dir, medium_file, tls):
    """curl --ftp-ssl-ccc-mode active sends its own close_notify; data stays PROT P and
    resumes the control session (default session_reuse_required)."""
    gw = gateway_factory(AUTH_DATA)
    path, digest = medium_file
    backend.put_file(f"{remote_dir}/m.bin", path)
    tls_args = ["--tls-max", "1.2"] if tls == "TLSv1.2" else ["--tlsv1.3"]
    _curl_ccc(gw, certs, local_dir, remote_dir, path, digest, "active", tls_args)
    assert harness.sha256_file(backend.root / remote_dir / "up.bin") == digest
    assert len(gw.events("ccc")) == 2
    hs = gw.data_handshakes()
    assert len(hs) >= 2 and all(r.get("resumed") is True for r in hs), hs
    assert all(r.get("version") == tls for r in hs), hs
    assert not gw.find(NO_REUSE_MESSAGE)
    gw.assert_no_secret()


def test_curl_ccc_passive_mode_is_refused_cleanly_when_reuse_is_required(
        gateway_factory, certs, backend, remote_dir, local_dir, medium_file):
    """curl's passive CCC mode sends no close_notify; OpenSSL then marks curl's cached
    session non-resumable, so its data connection gets the clean 425 of
    session_reuse_required, and the control session stays in step."""
    gw = gateway_factory(AUTH_DATA)
    path, digest = medium_file
    backend.put_file(f"{remote_dir}/m.bin", path)
    base = f"ftp://127.0.0.1:{gw.explicit_port}/{remote_dir}"
    out = local_dir / "m.bin"
    proc = curl(certs, "--ssl-reqd", "--ftp-ssl-ccc", "-o", str(out), f"{base}/m.bin")
    err = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == 19, f"curl exit {proc.returncode}\n{err[-3000:]}"
    assert "CCC command successful" in err, err[-3000:]
    assert "< 425 Unable to build data connection: " in err, err[-3000:]
    assert not out.exists() or harness.sha256_file(out) != digest
    gw.wait_log(lambda: gw.find(NO_REUSE_MESSAGE), "the no-reuse message")


def test_curl_ccc_passive_mode_without_reuse_requirement(
        gateway_factory, certs, backend, remote_dir, local_dir, medium_file):
    gw = gateway_factory({"classes": [klass("default", "auth+data", session_reuse_required=False)]})
    path, digest = medium_file
    backend.put_file(f"{remote_dir}/m.bin", path)
    _curl_ccc(gw, certs, local_dir, remote_dir, path, digest, "passive", [])
    assert harness.sha256_file(backend.root / remote_dir / "up.bin") == digest
    assert len(gw.events("ccc")) == 2
    hs = gw.data_handshakes()
    assert len(hs) >= 2, "data connections must stay TLS (PROT P) after CCC"
