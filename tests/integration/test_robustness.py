"""Failure paths of the data channel, backend errors, concurrency and IPv6."""
from __future__ import annotations

import ftplib
import io
import socket
import threading
import time

import pytest

import harness
from harness import Ctrl
from clients import ReusingFTP_TLS, check_curl, connect, curl, download
from faults_util import login_prot_p, resumed_retr

pytestmark = pytest.mark.control


def test_a_failed_data_handshake_fails_only_that_transfer(
        gateway, backend, remote_dir, medium_file, backend_log):
    path, digest = medium_file
    backend.put_file(f"{remote_dir}/m.bin", path)
    with login_prot_p(gateway.explicit_port) as c:
        c.expect(f"CWD {remote_dir}", 250)
        port, _ = c.epsv()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            c.send("RETR m.bin")
            start = time.monotonic()
            r = c.reply()
            assert r.code == 150, r.text
            raw.sendall(b"this is not a TLS ClientHello\r\n" * 4)
            _, final = c.final_reply(timeout=10)
            assert final.last.startswith("425 Unable to build data connection: "), final.text
            assert time.monotonic() - start < 5
        assert "RETR m.bin" not in backend.commands_since(backend_log)
        assert c.cmd("PWD").code == 257
        assert harness.sha256_bytes(resumed_retr(c, "m.bin")) == digest


def test_a_client_that_never_connects_gets_425_after_data_connect_timeout(
        gateway_factory, backend, remote_dir, medium_file, backend_log):
    gw = gateway_factory({"limits": {"data_connect_timeout": "2s"}})
    path, digest = medium_file
    backend.put_file(f"{remote_dir}/m.bin", path)
    with login_prot_p(gw.explicit_port) as c:
        c.expect(f"CWD {remote_dir}", 250)
        c.epsv()
        start = time.monotonic()
        c.send("RETR m.bin")
        _, final = c.final_reply(timeout=10)
        elapsed = time.monotonic() - start
        assert final.last.startswith("425 Unable to build data connection: "), final.text
        assert 1.5 <= elapsed <= 6, elapsed
        assert "RETR m.bin" not in backend.commands_since(backend_log)
        assert harness.sha256_bytes(resumed_retr(c, "m.bin")) == digest


def test_backend_refusal_of_a_transfer_is_relayed(gateway, backend, remote_dir, medium_file):
    """The gateway says 150 first; the backend's 550 for a missing file still reaches the client."""
    path, digest = medium_file
    backend.put_file(f"{remote_dir}/m.bin", path)
    ftp = connect(gateway, cls=ReusingFTP_TLS)
    try:
        ftp.cwd(remote_dir)
        start = time.monotonic()
        with pytest.raises(ftplib.error_perm) as info:
            download(ftp, "missing.bin")
        assert str(info.value).startswith("550"), str(info.value)
        assert time.monotonic() - start < 5
        assert harness.sha256_bytes(download(ftp, "m.bin")) == digest
        # Upload the backend refuses (553) after the gateway's own 150: the client may already
        # be writing when the gateway tears the data connection down, so ftplib sees either
        # the 553 or a broken data connection with the 553 still pending on control.
        try:
            ftp.storbinary("STOR no-such-dir/x.bin", io.BytesIO(b"x" * 1000))
            pytest.fail("STOR into a missing directory succeeded")
        except ftplib.error_perm as e:
            assert str(e).startswith("553"), str(e)
        except OSError as e:
            if isinstance(e, TimeoutError):
                raise
            with pytest.raises(ftplib.error_perm) as info:
                ftp.voidresp()
            assert str(info.value).startswith("553"), str(info.value)
        assert ftp.pwd().endswith(remote_dir)
        assert harness.sha256_bytes(download(ftp, "m.bin")) == digest
    finally:
        ftp.close()


@pytest.mark.time_limit(180)
def test_concurrent_sessions_each_resume_their_own_session(gateway, backend, remote_dir, medium_file):
    path, digest = medium_file
    backend.put_file(f"{remote_dir}/m.bin", path)
    data = path.read_bytes()
    errors: list[str] = []

    def worker(i: int) -> None:
        try:
            ftp = connect(gateway, cls=ReusingFTP_TLS, version="TLSv1.3" if i % 2 else "TLSv1.2")
            try:
                ftp.cwd(remote_dir)
                for j in range(3):
                    got = download(ftp, "m.bin")
                    if harness.sha256_bytes(got) != digest:
                        errors.append(f"worker {i} transfer {j}: sha256 mismatch")
                    if not ftp.last_data_reused:
                        errors.append(f"worker {i} transfer {j}: not resumed")
                ftp.storbinary(f"STOR w{i}.bin", io.BytesIO(data))
            finally:
                ftp.close()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(f"worker {i}: {type(e).__name__}: {e}")

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(8)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 150
    for t in threads:
        t.join(max(0.1, deadline - time.monotonic()))
    assert not [t for t in threads if t.is_alive()], "workers still running at the deadline"
    assert not errors, errors
    for i in range(8):
        assert harness.sha256_file(backend.root / remote_dir / f"w{i}.bin") == digest
    assert not gateway.find(harness.NO_REUSE_MESSAGE)


def test_ipv6_loopback_listener(gateway_factory, certs, backend, remote_dir, local_dir, medium_file):
    port = harness.PORTS.port()
    gw = gateway_factory(edit=lambda cfg: cfg["listeners"].append(
        {"name": "v6", "address": f"[::1]:{port}", "mode": "explicit", "backend": "vsftpd"}))
    path, digest = medium_file
    backend.put_file(f"{remote_dir}/m.bin", path)
    base = f"ftp://[::1]:{port}/{remote_dir}"
    down = curl(certs, "-g", "--ssl-reqd", "-o", str(local_dir / "m.bin"), f"{base}/m.bin")
    check_curl(down, gw, "IPv6 download")
    assert harness.sha256_file(local_dir / "m.bin") == digest
    up = curl(certs, "-g", "--ssl-reqd", "-T", str(path), f"{base}/up.bin")
    check_curl(up, gw, "IPv6 upload")
    assert harness.sha256_file(backend.root / remote_dir / "up.bin") == digest
    with Ctrl(port, host="::1") as c:
        c.greeting()
        c.auth_tls()
        c.login()
        r = c.cmd("EPSV")
        assert r.code == 229 and "(|||" in r.last, r.text
