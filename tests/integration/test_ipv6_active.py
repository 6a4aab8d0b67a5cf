"""EPRT over IPv6 ([::1] listener): the gateway connects back to the client over IPv6,
resuming the control session under PROT P; --check warns about an expired certificate."""
from __future__ import annotations

import subprocess

import pytest

import harness
from clients import ActiveFTP_TLS
from harness import TEST_PASS, TEST_USER

pytestmark = pytest.mark.data


def test_eprt_over_ipv6(gateway_factory, backend, backend_log, remote_dir, medium_file):
    port = harness.PORTS.port()
    gw = gateway_factory(edit=lambda cfg: cfg["listeners"].append(
        {"name": "v6", "address": f"[::1]:{port}", "mode": "explicit", "backend": "vsftpd"}))
    path, digest = medium_file
    backend.put_file(f"{remote_dir}/m.bin", path)
    ftp = ActiveFTP_TLS(context=harness.client_tls_context(), timeout=15)
    ftp.connect("::1", port)
    ftp.auth()
    ftp.login(TEST_USER, TEST_PASS)
    ftp.prot_p()
    try:
        data = bytearray()
        ftp.retrbinary(f"RETR {remote_dir}/m.bin", data.extend)
        assert harness.sha256_bytes(bytes(data)) == digest
        with open(path, "rb") as f:
            ftp.storbinary(f"STOR {remote_dir}/up.bin", f)
    finally:
        ftp.quit()
    assert harness.sha256_file(backend.root / remote_dir / "up.bin") == digest
    assert ftp.data_peers and all(peer[0] == "::1" for peer in ftp.data_peers), ftp.data_peers
    handshakes = [r for r in gw.events("tls_handshake") if r.get("channel") == "data"]
    assert len(handshakes) >= 2 and all(r.get("resumed") for r in handshakes), handshakes


def test_check_warns_about_an_expired_certificate(tmp_path, certs):
    csr, expired = tmp_path / "e.csr", tmp_path / "expired.pem"
    subprocess.run(["openssl", "req", "-new", "-key", str(certs.key), "-subj", "/CN=expired", "-out", str(csr)],
                   check=True, capture_output=True, timeout=30)
    subprocess.run(["openssl", "x509", "-req", "-in", str(csr), "-signkey", str(certs.key), "-days", "-1",
                    "-out", str(expired)], check=True, capture_output=True, timeout=30)
    cfg = tmp_path / "gw.yaml"
    cfg.write_text(
        "listeners:\n  - {name: x, address: \"127.0.0.1:29998\", backend: b}\n"
        f"tls:\n  certificates:\n    - {{cert: {expired}, key: {certs.key}}}\n"
        "backends:\n  - {name: b, servers: [\"127.0.0.1:21\"]}\n")
    proc = subprocess.run([str(harness.GATEWAY_BIN), "--check", "--config", str(cfg)], capture_output=True,
                          timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert f"{cfg}: warning: certificate {expired} (/CN=expired) has expired" in proc.stderr.decode(), proc.stderr
