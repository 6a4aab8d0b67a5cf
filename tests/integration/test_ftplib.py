"""Python's ftplib.FTP_TLS through the gateway.

Stock ftplib never offers the control connection's TLS session on its data connections,
so with session_reuse_required (the default) its transfers must be refused with a clean,
immediate 425 while the control session goes on; with session_reuse_required: false they
succeed. A small subclass that does pass the session shows that reuse works with
TLS 1.2 and 1.3, and that a session from another control connection is not accepted.
"""
from __future__ import annotations

import ftplib
import io
import ssl
import time

import pytest

import harness
from harness import NO_REUSE_MESSAGE, TEST_PASS, TEST_USER, klass

TLS_VERSIONS = {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}
NO_REUSE_CLASS = {"classes": [klass("default", "on", session_reuse_required=False)]}


class ReusingFTP_TLS(ftplib.FTP_TLS):
    """FTP_TLS that resumes the control connection's TLS session on data connections."""

    session_override = None  # a session to offer instead of our own (for the theft test)
    last_data_reused = None

    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            session = self.session_override or self.sock.session
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=session)
            self.last_data_reused = conn.session_reused
        return conn, size


def connect(gw, version: str | None = None, cls=ftplib.FTP_TLS, ctx=None, timeout=15):
    if ctx is None:
        ctx = harness.client_tls_context(
            max_version=TLS_VERSIONS[version] if version else None)
        if version:
            ctx.minimum_version = TLS_VERSIONS[version]
    ftp = cls(context=ctx, timeout=timeout)
    ftp.connect("127.0.0.1", gw.explicit_port)
    ftp.auth()
    ftp.login(TEST_USER, TEST_PASS)
    ftp.prot_p()
    return ftp


def download(ftp, name: str) -> bytes:
    buf = io.BytesIO()
    ftp.retrbinary(f"RETR {name}", buf.write)
    return buf.getvalue()


def expect_clean_425(ftp, command: str):
    """The transfer must end with an ftplib.error_temp carrying 425, promptly."""
    start = time.monotonic()
    with pytest.raises(ftplib.error_temp) as info:
        ftp.retrbinary(command, lambda data: None)
    elapsed = time.monotonic() - start
    assert str(info.value).startswith("425 Unable to build data connection: "), str(info.value)
    assert elapsed < 5, f"the 425 took {elapsed:.1f}s"
    return str(info.value)


@pytest.mark.parametrize("version", ["TLSv1.3", "TLSv1.2"])
def test_ftplib_without_session_reuse_gets_clean_425_and_session_goes_on(
        gateway, backend, remote_dir, medium_file, backend_log, version):
    path, digest = medium_file
    backend.put_file(f"{remote_dir}/m.bin", path)
    ftp = connect(gateway, version)
    try:
        ftp.cwd(remote_dir)
        try:
            reply = expect_clean_425(ftp, "RETR m.bin")
        except OSError as e:  # not clean (TLS/socket error instead of the reply)
            if isinstance(e, TimeoutError):
                raise
            pending = ftp.getmultiline() if ftp.sock else "<no control>"
            pytest.fail(f"ftplib saw {type(e).__name__}: {e} instead of a 425; control reply: {pending}")
        gateway.wait_log(lambda: gateway.find(NO_REUSE_MESSAGE), "the no-reuse message")
        assert any(r.get("message") == NO_REUSE_MESSAGE for r in gateway.events("policy_denial")), \
            "policy_denial with the exact no-reuse message"
        # The control session goes on.
        assert ftp.pwd().endswith(f"/{remote_dir}")
        assert ftp.voidcmd("NOOP").startswith("200")
        assert "RETR m.bin" not in backend.commands_since(backend_log), \
            "the backend saw a transfer command for a refused data connection"
        print(reply)
    finally:
        ftp.close()


@pytest.mark.parametrize("version", ["TLSv1.3", "TLSv1.2"])
def test_ftplib_resuming_the_control_session_transfers_both_ways(
        gateway, backend, remote_dir, medium_file, version):
    """Several transfers in one session: each data connection resumes the session."""
    path, digest = medium_file
    backend.put_file(f"{remote_dir}/m.bin", path)
    ftp = connect(gateway, version, cls=ReusingFTP_TLS)
    try:
        ftp.cwd(remote_dir)
        for i in range(3):
            assert harness.sha256_bytes(download(ftp, "m.bin")) == digest
            assert ftp.last_data_reused, f"transfer {i}: data connection not resumed"
            with open(path, "rb") as f:
                ftp.storbinary(f"STOR up{i}.bin", f)
            assert ftp.last_data_reused
            assert harness.sha256_file(backend.root / remote_dir / f"up{i}.bin") == digest
        assert "up2.bin" in ftp.nlst()
    finally:
        ftp.close()
    assert not gateway.find(NO_REUSE_MESSAGE)


@pytest.mark.parametrize("version", ["TLSv1.3", "TLSv1.2"])
def test_session_of_another_control_connection_is_refused(
        gateway, backend, remote_dir, medium_file, backend_log, version):
    """Data-port theft: B offers A's (resumable) session on its data connection."""
    path, digest = medium_file
    backend.put_file(f"{remote_dir}/m.bin", path)
    ctx = harness.client_tls_context(min_version=TLS_VERSIONS[version],
                                     max_version=TLS_VERSIONS[version])
    a = connect(gateway, cls=ReusingFTP_TLS, ctx=ctx)
    b = connect(gateway, cls=ReusingFTP_TLS, ctx=ctx)
    try:
        a.cwd(remote_dir)
        b.cwd(remote_dir)
        assert harness.sha256_bytes(download(a, "m.bin")) == digest  # A's session works for A
        assert a.last_data_reused
        b.session_override = a.sock.session
        expect_clean_425(b, "RETR m.bin")
        b.session_override = None
        assert harness.sha256_bytes(download(b, "m.bin")) == digest  # B's own session works
        assert b.last_data_reused
    finally:
        a.close()
        b.close()


def test_ftplib_download_and_upload_with_session_reuse_not_required(
        gateway_factory, backend, remote_dir, medium_file, big_file):
    gw = gateway_factory(NO_REUSE_CLASS)
    path, digest = big_file
    backend.put_file(f"{remote_dir}/big.bin", path)
    ftp = connect(gw)
    try:
        ftp.cwd(remote_dir)
        assert harness.sha256_bytes(download(ftp, "big.bin")) == digest
        mpath, mdigest = medium_file
        with open(mpath, "rb") as f:
            ftp.storbinary("STOR up.bin", f)
        assert harness.sha256_file(backend.root / remote_dir / "up.bin") == mdigest
        assert "up.bin" in ftp.nlst()
    finally:
        ftp.close()
    assert not gw.find(NO_REUSE_MESSAGE)


@pytest.mark.parametrize("order", ["abort-while-open", "close-then-abort"])
def test_abor_during_download_then_session_goes_on(
        gateway_factory, backend, remote_dir, big_file, order):
    gw = gateway_factory(NO_REUSE_CLASS)
    path, digest = big_file
    backend.put_file(f"{remote_dir}/big.bin", path)
    ftp = connect(gw, timeout=15)
    try:
        ftp.cwd(remote_dir)
        ftp.voidcmd("TYPE I")
        conn = ftp.transfercmd("RETR big.bin")
        got = 0
        conn.settimeout(15)
        while got < 1 << 20:
            chunk = conn.recv(65536)
            assert chunk, "data ended early"
            got += len(chunk)
        if order == "abort-while-open":
            resp = ftp.abort()
            conn.close()
        else:
            conn.close()
            resp = ftp.abort()
        assert resp[:3] in ("426", "225", "226"), resp
        # Resynchronise: any late reply of the aborted transfer comes before NOOP's 200.
        ftp.putcmd("NOOP")
        for _ in range(4):
            line = ftp.getmultiline()
            if line.startswith("200"):
                break
            assert line[:3] in ("426", "225", "226", "451"), line
        else:
            pytest.fail("no 200 for NOOP after ABOR")
        assert ftp.pwd().endswith(f"/{remote_dir}")
        assert harness.sha256_bytes(download(ftp, "big.bin")) == digest
    finally:
        ftp.close()
