"""Several certificates: chosen by SNI name, and RSA/ECDSA side by side chosen by the
client's signature algorithms (openssl s_client -starttls ftp shows which one is served)."""
from __future__ import annotations

import re
import subprocess

import pytest

pytestmark = pytest.mark.tls


def _make(d, name: str, kind: str) -> dict:
    key_args = (["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] if kind == "ec"
                else ["-newkey", "rsa:2048"])
    cert, key = d / f"{name}-{kind}.pem", d / f"{name}-{kind}.key"
    subprocess.run(["openssl", "req", "-x509", *key_args, "-nodes", "-days", "30", "-subj", f"/CN={name}",
                    "-addext", f"subjectAltName=DNS:{name}", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return {"cert": str(cert), "key": str(key)}


def _served(port: int, *args: str) -> tuple[str, str]:
    proc = subprocess.run(["openssl", "s_client", "-starttls", "ftp", "-connect", f"127.0.0.1:{port}", *args],
                          input=b"QUIT\r\n", capture_output=True, timeout=30)
    out = proc.stdout.decode("utf-8", "replace")
    subject = re.search(r"^subject=.*?CN ?= ?([^\s,/]+)", out, re.M)
    key = re.search(r"Server public key is (\d+) bit", out)
    assert subject and key, out + proc.stderr.decode("utf-8", "replace")
    return subject.group(1), key.group(1)


@pytest.fixture(scope="module")
def sni_certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("sni-certs")
    return [_make(d, "alpha.test", "ec"), _make(d, "alpha.test", "rsa"), _make(d, "beta.test", "ec")]


def test_certificate_chosen_by_sni_and_signature_algorithms(gateway_factory, sni_certs):
    gw = gateway_factory({"tls": {"certificates": sni_certs}})
    port = gw.explicit_port
    assert _served(port) == ("alpha.test", "256")  # no SNI: the first name set, ECDSA preferred
    assert _served(port, "-servername", "beta.test") == ("beta.test", "256")
    assert _served(port, "-servername", "alpha.test", "-sigalgs", "rsa_pss_rsae_sha256") == (
        "alpha.test", "2048")
    assert _served(port, "-servername", "beta.test", "-tls1_2", "-sigalgs", "ECDSA+SHA256") == ("beta.test", "256")
    assert _served(port, "-servername", "unknown.test") == ("alpha.test", "256")


def test_chain_file_sends_the_intermediate(gateway_factory, tmp_path):
    """cert: a leaf followed by its chain (PEM) — the intermediate goes out in the handshake."""
    run = lambda *a: subprocess.run(["openssl", *a], check=True, capture_output=True, timeout=60, cwd=tmp_path)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    run("req", "-x509", *ec, "-days", "30", "-subj", "/CN=root-ca", "-keyout", "root.key", "-out", "root.pem",
        "-addext", "basicConstraints=critical,CA:TRUE")
    run("req", *ec, "-subj", "/CN=intermediate-ca", "-keyout", "int.key", "-out", "int.csr")
    (tmp_path / "ca.ext").write_text("basicConstraints=critical,CA:TRUE\n")
    run("x509", "-req", "-in", "int.csr", "-CA", "root.pem", "-CAkey", "root.key", "-CAcreateserial",
        "-days", "30", "-extfile", "ca.ext", "-out", "int.pem")
    run("req", *ec, "-subj", "/CN=leaf.test", "-keyout", "leaf.key", "-out", "leaf.csr")
    (tmp_path / "leaf.ext").write_text("subjectAltName=DNS:leaf.test\n")
    run("x509", "-req", "-in", "leaf.csr", "-CA", "int.pem", "-CAkey", "int.key", "-CAcreateserial",
        "-days", "30", "-extfile", "leaf.ext", "-out", "leaf.pem")
    chain = tmp_path / "chain.pem"
    chain.write_bytes((tmp_path / "leaf.pem").read_bytes() + (tmp_path / "int.pem").read_bytes())
    gw = gateway_factory({"tls": {"certificates": [{"cert": str(chain), "key": str(tmp_path / "leaf.key")}]}})
    proc = subprocess.run(["openssl", "s_client", "-starttls", "ftp", "-connect", f"127.0.0.1:{gw.explicit_port}",
                           "-CAfile", str(tmp_path / "root.pem"), "-verify_return_error"],
                          input=b"QUIT\r\n", capture_output=True, timeout=30)
    out = proc.stdout.decode("utf-8", "replace")
    assert "1 s:CN = intermediate-ca" in out, out
    assert "Verify return code: 0 (ok)" in out, out
