"""Several certificates: chosen by SNI name, and RSA/ECDSA side by side chosen by the
client's signature algorithms (openssl s_client -starttls ftp shows which one is served)."""
from __future__ import annotations

import re
import subprocess

import pytest


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
