"""Client certificates (verify_client, client_ca, crl) with a test CA made by the openssl
CLI: valid, none, wrong CA, revoked; per-class enforcement on top of an optional TLS level."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import harness
from clients import check_curl, curl

pytestmark = pytest.mark.tls


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def client_pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("client-pki")
    (d / "ca.cnf").write_text(
        "[ ca ]\ndefault_ca = CA_default\n[ CA_default ]\ndir = .\ndatabase = index.txt\n"
        "new_certs_dir = .\ncertificate = ca.pem\nprivate_key = ca.key\ndefault_md = sha256\n"
        "default_days = 30\ndefault_crl_days = 30\npolicy = policy_any\n"
        "[ policy_any ]\ncommonName = supplied\n")
    (d / "index.txt").write_text("")
    (d / "crlnumber").write_text("01\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    _openssl("req", "-x509", *ec, "-days", "30", "-subj", "/CN=ftpsgate-test-client-ca",
             "-keyout", "ca.key", "-out", "ca.pem", cwd=d)
    _openssl("req", "-x509", *ec, "-days", "30", "-subj", "/CN=other-ca",
             "-keyout", "other-ca.key", "-out", "other-ca.pem", cwd=d)
    for name, ca in (("alice", "ca"), ("mallory", "ca"), ("stranger", "other-ca")):
        _openssl("req", *ec, "-subj", f"/CN={name}", "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
                 "-CAcreateserial", "-days", "30", "-out", f"{name}.pem", cwd=d)
    _openssl("ca", "-config", "ca.cnf", "-revoke", "mallory.pem", "-batch", cwd=d)
    _openssl("ca", "-config", "ca.cnf", "-gencrl", "-out", "crl.pem", "-batch", cwd=d)
    return d


def _cert_args(pki: Path, name: str | None) -> list[str]:
    return [] if name is None else ["--cert", str(pki / f"{name}.pem"), "--key", str(pki / f"{name}.key")]


@pytest.mark.parametrize("tls_level", ["global-on", "class-on"])
def test_client_certificates_valid_none_wrong_ca_revoked(gateway_factory, certs, backend, remote_dir,
                                                          local_dir, medium_file, client_pki, tls_level):
    path, digest = medium_file
    backend.put_file(f"{remote_dir}/m.bin", path)
    tls = {"client_ca": str(client_pki / "ca.pem"), "crl": str(client_pki / "crl.pem")}
    if tls_level == "global-on":
        tls["verify_client"] = "on"
        gw = gateway_factory({"tls": tls})
    else:
        # The TLS level only asks (a class made it optional); the class demands it.
        tls["verify_client"] = "off"
        gw = gateway_factory({"tls": tls}, edit=lambda c: c["classes"][0].update({"verify_client": "on"}))
    url = f"ftp://127.0.0.1:{gw.explicit_port}/{remote_dir}/m.bin"

    ok = curl(certs, "--ssl-reqd", *_cert_args(client_pki, "alice"), "-o", str(local_dir / "m.bin"), url)
    check_curl(ok, gw, "download with a valid client certificate")
    assert harness.sha256_file(local_dir / "m.bin") == digest
    handshakes = [r for r in gw.events("tls_handshake") if r.get("channel") == "control" and "client_cert" in r]
    assert any("CN=alice" in r["client_cert"] and r["client_cert_verified"] for r in handshakes), handshakes

    for name in (None, "stranger", "mallory"):
        refused = curl(certs, "--ssl-reqd", *_cert_args(client_pki, name), "-o", str(local_dir / "x.bin"), url)
        assert refused.returncode != 0, f"client certificate {name!r} was accepted\n{gw.tail()}"
    if tls_level == "global-on":
        def failures():
            return [r for r in gw.events("tls_handshake") if r.get("result") == "failure"]
        # The worker logs a failed handshake just after the alert that ended curl.
        gw.wait_log(lambda: any("peer did not return a certificate" in r.get("error", "") for r in failures()),
                    "handshake failure without a certificate")
        gw.wait_log(lambda: any(r.get("verify_error") == "certificate revoked" for r in failures()),
                    "handshake failure with a revoked certificate")
        gw.wait_log(lambda: sum(1 for r in failures() if "verify failed" in r.get("error", "")) >= 2,
                    "two handshakes failing certificate verification")
    else:
        denials = [r for r in gw.events("policy_denial") if r.get("reason") == "client_certificate_required"]
        assert len(denials) >= 1, gw.tail()
    # Nobody without a valid certificate logged in.
    logins = [r for r in gw.events("login") if r.get("result") == "success"]
    assert len(logins) == 1, logins


def test_client_ca_dir_and_cert_request_false(gateway_factory, certs, backend, remote_dir, local_dir,
                                              medium_file, client_pki, tmp_path):
    """A hashed CA directory (TLSCACertificatePath) verifies like a CA file; with
    cert_request: false no CertificateRequest is sent at all (TLSOptions NoCertRequest)."""
    path, digest = medium_file
    backend.put_file(f"{remote_dir}/m.bin", path)
    ca_dir = tmp_path / "ca-dir"
    ca_dir.mkdir()
    (ca_dir / "ca.pem").write_bytes((client_pki / "ca.pem").read_bytes())
    _openssl("rehash", str(ca_dir), cwd=tmp_path)
    gw = gateway_factory({"tls": {"client_ca_dir": str(ca_dir), "verify_client": "on"}})
    url = f"ftp://127.0.0.1:{gw.explicit_port}/{remote_dir}/m.bin"
    ok = curl(certs, "--ssl-reqd", *_cert_args(client_pki, "alice"), "-o", str(local_dir / "m.bin"), url)
    check_curl(ok, gw, "download with a certificate verified through client_ca_dir")
    assert harness.sha256_file(local_dir / "m.bin") == digest
    refused = curl(certs, "--ssl-reqd", *_cert_args(client_pki, "stranger"), "-o", str(local_dir / "x"), url)
    assert refused.returncode != 0

    def requests_certificate(gw) -> bool:
        proc = subprocess.run(["openssl", "s_client", "-starttls", "ftp", "-connect",
                               f"127.0.0.1:{gw.explicit_port}", "-tls1_2"],
                              input=b"QUIT\r\n", capture_output=True, timeout=30)
        out = proc.stdout.decode("utf-8", "replace")
        assert "Cipher is" in out, out
        return "No client certificate CA names sent" not in out and "Acceptable client certificate CA names" in out

    optional = gateway_factory({"tls": {"client_ca": str(client_pki / "ca.pem"), "verify_client": "optional"}})
    assert requests_certificate(optional)
    silent = gateway_factory({"tls": {"client_ca": str(client_pki / "ca.pem"), "verify_client": "optional",
                                      "cert_request": False}})
    assert not requests_certificate(silent)
