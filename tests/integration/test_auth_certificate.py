"""Certificate mapping at the gateway (issue 14): client certificates of different
DN/SAN shapes, made by the test's CA, map to the right users; a USER that names someone
else is refused; certificate+password needs both; ambiguous, unmapped, foreign and absent
certificates log nobody in, and none of those attempts reaches vsftpd."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import harness
from auth_util import crypt_hash, write_secret
from clients import check_curl
from harness import Ctrl, TEST_PASS, TEST_USER

pytestmark = pytest.mark.tls

ALICE_PW = "alice-cert-and-pw-77"

# name -> (subject, subjectAltName or None, CA)
CERTS = {
    "alice": ("/CN=Alice Example/OU=Finance/O=Example", "email:alice@example.org", "ca"),
    "carol": ("/CN=Carol/O=Example", "URI:urn:ftpsgate:user:carol", "ca"),
    "buildbot": ("/O=Example/OU=CI/CN=Build Bot", None, "ca"),
    "dave": ("/CN=Dave/UID=dave", None, "ca"),
    "twomails": ("/CN=Two", "email:erin@example.org,email:frank@example.org", "ca"),
    "lookalike": ("/CN=Look", "email:alice@example.org.evil.test", "ca"),
    "stranger": ("/CN=Stranger", "email:alice@example.org", "other-ca"),
}

RULES = [
    {"field": "san_email", "suffix": "@example.org", "user": "{match}", "groups": ["staff"]},
    {"field": "san_uri", "prefix": "urn:ftpsgate:user:"},
    {"field": "dn", "equals": "CN=Build Bot,OU=CI,O=Example", "user": "ci"},
    {"field": "subject.UID", "user": "{value}"},
]


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("auth-pki")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    for ca in ("ca", "other-ca"):
        _openssl("req", "-x509", *ec, "-days", "30", "-subj", f"/CN={ca}", "-keyout", f"{ca}.key",
                 "-out", f"{ca}.pem", cwd=d)
    for name, (subject, san, ca) in CERTS.items():
        _openssl("req", *ec, "-subj", subject, "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)
        ext = []
        if san:
            (d / f"{name}.ext").write_text(f"subjectAltName={san}\n")
            ext = ["-extfile", f"{name}.ext"]
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
                 "-CAcreateserial", "-days", "30", *ext, "-out", f"{name}.pem", cwd=d)
    return d


@pytest.fixture
def cert_gateway(gateway_factory, pki, local_dir):
    secret = write_secret(local_dir / "svc.pass", TEST_PASS)
    users = local_dir / "users.txt"
    users.write_text(f"alice:{crypt_hash(ALICE_PW, '$y$')}\n")
    overrides = {
        "tls": {"client_ca": str(pki / "ca.pem"), "verify_client": "optional"},
        "auth": {
            "providers": [
                {"name": "certs", "type": "certificate", "require": "certificate", "rules": RULES},
                {"name": "certs_pw", "type": "certificate", "require": "certificate+password", "rules": RULES},
                {"name": "local", "type": "file", "path": str(users)},
            ],
            "backend_logins": [{"backend_user": TEST_USER, "backend_password_file": str(secret)}],
        },
    }

    def edit(c):
        c["listeners"][0]["auth"] = ["certs"]
        c["listeners"][1]["auth"] = ["certs_pw", "local"]
    return gateway_factory(overrides, edit=edit)


def _ctx(pki: Path, name: str | None):
    ctx = harness.client_tls_context()
    if name is not None:
        ctx.load_cert_chain(str(pki / f"{name}.pem"), str(pki / f"{name}.key"))
    return ctx


def _login(gw, pki, cert, user, password, implicit=False) -> int:
    with Ctrl(gw.implicit_port if implicit else gw.explicit_port, implicit=implicit, ctx=_ctx(pki, cert)) as c:
        c.greeting()
        if not implicit:
            c.auth_tls()
        r = c.cmd(f"USER {user}")
        if r.code != 331:
            return r.code
        r = c.cmd(f"PASS {password}", timeout=15)
        if r.code == 230:
            assert c.cmd("PWD").code == 257
        return r.code


def test_certificate_shapes_map_to_their_users(cert_gateway, pki, backend, backend_log):
    gw = cert_gateway
    for cert, user in (("alice", "alice"), ("carol", "carol"), ("buildbot", "ci"), ("dave", "dave")):
        assert _login(gw, pki, cert, user, "anything") == 230, (cert, gw.tail())
    logins = [(r["user"], r["provider"], r["backend_user"]) for r in gw.events("login") if r.get("result") == "success"]
    assert logins == [(u, "certs", TEST_USER) for u in ("alice", "carol", "ci", "dave")], logins
    alice = [r for r in gw.events("login") if r.get("user") == "alice"][0]
    assert alice["groups"] == ["staff"], alice
    # vsftpd saw four service-account logins and nothing else.
    users_seen = [c for c in backend.commands_since(backend_log) if c.startswith("USER")]
    assert users_seen == [f"USER {TEST_USER}"] * 4, users_seen


def test_curl_logs_in_with_a_certificate(cert_gateway, pki, backend, remote_dir, local_dir, medium_file):
    path, digest = medium_file
    backend.put_file(f"{remote_dir}/m.bin", path)
    proc = harness.run(["curl", "-sS", "-v", "--ssl-reqd", "-k", "--cert", str(pki / "carol.pem"), "--key",
                        str(pki / "carol.key"), "-u", "carol:x", "-o", str(local_dir / "m.bin"),
                        f"ftp://127.0.0.1:{cert_gateway.explicit_port}/{remote_dir}/m.bin"], timeout=120)
    check_curl(proc, cert_gateway, "download with a certificate login")
    assert harness.sha256_file(local_dir / "m.bin") == digest


def test_mismatching_ambiguous_unmapped_and_missing_certificates_are_refused(cert_gateway, pki, backend,
                                                                             backend_log):
    gw = cert_gateway
    assert _login(gw, pki, "alice", "carol", "x") == 530  # USER names another user
    assert _login(gw, pki, "twomails", "erin", "x") == 530  # two emails, two users: ambiguous
    assert _login(gw, pki, "lookalike", "alice", "x") == 530  # suffix does not match
    assert _login(gw, pki, None, "alice", ALICE_PW) == 530  # no certificate, password alone
    # A certificate from another CA fails verification: the handshake ends, nothing to map.
    with pytest.raises((OSError, harness.HarnessError)):
        _login(gw, pki, "stranger", "alice", "x")
    denials = [r.get("reason") for r in gw.events("policy_denial")]
    assert "certificate_user_mismatch" in denials, denials
    failures = [r.get("reason") for r in gw.events("login") if r.get("result") == "failure"]
    assert failures.count("no_certificate_user") == 3, failures
    seen = [c for c in backend.commands_since(backend_log) if not c.startswith(("FEAT", "QUIT"))]
    assert not seen, seen


def test_certificate_and_password_need_both(cert_gateway, pki, backend):
    gw = cert_gateway
    assert _login(gw, pki, "alice", "alice", ALICE_PW, implicit=True) == 230
    assert _login(gw, pki, "alice", "alice", "wrong-password", implicit=True) == 530
    assert _login(gw, pki, None, "alice", ALICE_PW, implicit=True) == 530
    assert _login(gw, pki, "carol", "carol", ALICE_PW, implicit=True) == 530  # carol is in no users file
    ok = [r for r in gw.events("login") if r.get("result") == "success"]
    assert [(r["user"], r["provider"]) for r in ok] == [("alice", "local")], ok
    gw.assert_no_secret(ALICE_PW)
