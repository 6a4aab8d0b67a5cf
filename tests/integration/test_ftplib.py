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
import time

import pytest

import harness
from clients import TLS_VERSIONS, ReusingFTP_TLS, connect, download
from harness import NO_REUSE_MESSAGE, klass

pytestmark = pytest.mark.control

NO_REUSE_CLASS = {"classes": [klass("default", "on", session_reuse_required=False)]}


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


def test_list_nlst_appe_stou_size_are_relayed(gateway, backend, remote_dir, medium_file):
    path, digest = medium_file
    data = path.read_bytes()
    ftp = connect(gateway, cls=ReusingFTP_TLS)
    try:
        ftp.cwd(remote_dir)
        half = len(data) // 2
        ftp.storbinary("STOR a.bin", io.BytesIO(data[:half]))
        ftp.storbinary("APPE a.bin", io.BytesIO(data[half:]))
        assert harness.sha256_file(backend.root / remote_dir / "a.bin") == digest
        ftp.storbinary("STOU", io.BytesIO(data))
        others = [p for p in (backend.root / remote_dir).iterdir() if p.name != "a.bin"]
        assert len(others) == 1 and harness.sha256_file(others[0]) == digest, others
        assert sorted(ftp.nlst()) == sorted(["a.bin", others[0].name])
        # (vsftpd has no MLSD/MLST, so MLSD cannot be exercised against this backend.)
        lines = []
        ftp.retrlines("LIST", lines.append)
        assert any(line.endswith(" a.bin") for line in lines), lines
        assert ftp.size("a.bin") == len(data)
        assert harness.sha256_bytes(download(ftp, "a.bin")) == digest
    finally:
        ftp.quit()
    assert all(r.get("resumed") is True for r in gateway.data_handshakes())
    gateway.assert_no_secret()
