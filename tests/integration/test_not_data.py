"""tls_required !data, ctrl+!data, auth+!data: PROT P is refused with
`534 PROT P refused by policy`, and data in clear works both ways (sha256), passive and
active, with ftplib and a raw control socket."""
from __future__ import annotations

import ftplib
import io
import socket

import pytest

import harness
from clients import ActiveFTP_TLS, download
from faults_util import clear_retr
from harness import TEST_PASS, TEST_USER, Ctrl, klass

pytestmark = pytest.mark.tls

NOT_DATA = ["!data", "ctrl+!data", "auth+!data"]


def tls_ftp(gw, cls=ftplib.FTP_TLS):
    ftp = cls(context=harness.client_tls_context(), timeout=15)
    ftp.connect("127.0.0.1", gw.explicit_port)
    ftp.auth()
    ftp.login(TEST_USER, TEST_PASS)
    return ftp


@pytest.mark.parametrize("tls_required", NOT_DATA)
@pytest.mark.parametrize("passive", [True, False], ids=["passive", "active"])
def test_prot_p_refused_and_clear_data_works(
        gateway_factory, backend, remote_dir, medium_file, tls_required, passive):
    gw = gateway_factory({"classes": [klass("default", tls_required)]})
    path, digest = medium_file
    backend.put_file(f"{remote_dir}/m.bin", path)
    ftp = tls_ftp(gw, cls=ftplib.FTP_TLS if passive else ActiveFTP_TLS)
    try:
        with pytest.raises(ftplib.error_perm) as info:
            ftp.prot_p()
        assert str(info.value) == "534 PROT P refused by policy", str(info.value)
        assert ftp.prot_c().startswith("200")
        ftp.set_pasv(passive)
        ftp.cwd(remote_dir)
        assert harness.sha256_bytes(download(ftp, "m.bin")) == digest
        with open(path, "rb") as f:
            ftp.storbinary("STOR up.bin", f)
        assert harness.sha256_file(backend.root / remote_dir / "up.bin") == digest
        assert "up.bin" in ftp.nlst()
        assert ftp.voidcmd("NOOP").startswith("200")
    finally:
        ftp.close()
    assert not gw.data_handshakes(), "data connections must be clear under !data policies"
    denials = [r for r in gw.events("policy_denial") if "PROT" in str(r.get("command", ""))]
    assert denials, gw.events("policy_denial")
    transfers = gw.events("transfer")
    assert transfers and all(r.get("protection") != "private" for r in transfers), transfers


def test_not_data_allows_a_clear_control_channel_and_clear_data(
        gateway_factory, backend, remote_dir, medium_file):
    """Under !data the control channel may stay clear (plain ftplib.FTP)."""
    gw = gateway_factory({"classes": [klass("default", "!data")]})
    path, digest = medium_file
    backend.put_file(f"{remote_dir}/m.bin", path)
    ftp = ftplib.FTP(timeout=15)
    try:
        ftp.connect("127.0.0.1", gw.explicit_port)
        ftp.login(TEST_USER, TEST_PASS)
        ftp.cwd(remote_dir)
        assert harness.sha256_bytes(download(ftp, "m.bin")) == digest
        ftp.storbinary("STOR up.bin", io.BytesIO(path.read_bytes()))
        assert harness.sha256_file(backend.root / remote_dir / "up.bin") == digest
    finally:
        ftp.close()


@pytest.mark.parametrize("tls_required", NOT_DATA)
def test_tls_data_connection_is_not_accepted_under_not_data(
        gateway_factory, backend, remote_dir, medium_file, tls_required):
    """After the refused PROT P the level is C: a client that starts TLS on the data
    connection anyway gets no file, and the control session goes on."""
    gw = gateway_factory({"classes": [klass("default", tls_required)],
                          "limits": {"data_connect_timeout": "3s"}})
    path, digest = medium_file
    backend.put_file(f"{remote_dir}/m.bin", path)
    with Ctrl(gw.explicit_port) as c:
        c.greeting()
        c.auth_tls()
        c.login()
        c.expect("PBSZ 0", 200)
        assert c.cmd("PROT P").last == "534 PROT P refused by policy"
        c.expect("TYPE I", 200)
        c.expect(f"CWD {remote_dir}", 250)
        port, _ = c.epsv()
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        c.send("RETR m.bin")
        r = c.reply()
        assert r.code == 150, r.text
        # The gateway sends clear bytes: a TLS client handshake cannot succeed.
        with pytest.raises((OSError, ValueError)):
            tls = c.ctx.wrap_socket(raw, server_hostname="localhost", session=c.session())
            tls.close()
        raw.close()
        _, final = c.final_reply(timeout=15)
        assert final.code >= 226, final.text
        assert c.cmd("PWD").code == 257
        # A clear data connection then works.
        assert harness.sha256_bytes(clear_retr(c, "m.bin")) == digest
