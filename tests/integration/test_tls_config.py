"""TLS configuration beyond PEM files: PKCS#12 and encrypted keys unlocked by
passphrase_command; per-user tls_required decided at USER, before the backend."""
from __future__ import annotations

import signal
import subprocess

import pytest

import harness
from clients import check_curl, curl
from harness import Ctrl, TEST_USER

pytestmark = pytest.mark.tls


@pytest.fixture(scope="module")
def protected_keys(tmp_path_factory, certs):
    d = tmp_path_factory.mktemp("protected-keys")
    run = lambda *a: subprocess.run(["openssl", *a], check=True, capture_output=True, timeout=60)
    run("pkcs12", "-export", "-inkey", str(certs.key), "-in", str(certs.cert), "-out", str(d / "server.p12"),
        "-passout", "pass:p12-secret")
    run("ec", "-in", str(certs.key), "-aes256", "-passout", "pass:p12-secret", "-out", str(d / "key-enc.pem"))
    script = d / "passphrase.sh"
    script.write_text("#!/bin/sh\necho p12-secret\n")
    script.chmod(0o700)
    return d


@pytest.mark.parametrize("form", ["pkcs12", "encrypted-pem"])
def test_protected_certificates_unlocked_by_passphrase_command(gateway_factory, certs, backend, remote_dir,
                                                               local_dir, medium_file, protected_keys, form):
    path, digest = medium_file
    backend.put_file(f"{remote_dir}/m.bin", path)
    entry = ({"pkcs12": str(protected_keys / "server.p12")} if form == "pkcs12"
             else {"cert": str(certs.cert), "key": str(protected_keys / "key-enc.pem")})
    gw = gateway_factory({"tls": {"certificates": [entry],
                                  "passphrase_command": str(protected_keys / "passphrase.sh")}})
    proc = curl(certs, "--ssl-reqd", "-o", str(local_dir / "m.bin"),
                f"ftp://127.0.0.1:{gw.explicit_port}/{remote_dir}/m.bin")
    check_curl(proc, gw, f"download with a {form} certificate")
    assert harness.sha256_file(local_dir / "m.bin") == digest
    assert "the passphrase" not in "".join(gw.log_lines())
    assert "p12-secret" not in "".join(gw.log_lines())


def test_wrong_passphrase_is_a_config_error(tmp_path, protected_keys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(
        "listeners:\n  - {name: x, address: \"127.0.0.1:29999\", backend: b}\n"
        "tls:\n  passphrase_command: /bin/false\n"
        f"  certificates:\n    - pkcs12: {protected_keys / 'server.p12'}\n"
        "backends:\n  - {name: b, servers: [\"127.0.0.1:21\"]}\n")
    proc = subprocess.run([str(harness.GATEWAY_BIN), "--check", "--config", str(cfg)], capture_output=True,
                          timeout=30)
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    assert "passphrase_command" in err, err
    assert f"{cfg}:6:7: {protected_keys / 'server.p12'}: cannot use PKCS#12 contents" in err, err


def test_per_user_tls_required_is_decided_at_user(gateway_factory, backend, backend_log):
    gw = gateway_factory(edit=lambda c: c["classes"][0].update(
        {"tls_required": "data", "allow_per_user": True, "users": {TEST_USER: {"tls_required": "on"}}}))
    with Ctrl(gw.explicit_port) as c:
        c.greeting()
        assert c.cmd(f"USER {TEST_USER}").last == "550 SSL/TLS required on the control channel"
        # Another user under the class rule ("data") may log in over a clear control channel.
        r = c.cmd("USER someone-else")
        assert r.code in (331, 530), r.text
    seen = backend.commands_since(backend_log)
    assert f"USER {TEST_USER}" not in seen, seen
    assert "USER someone-else" in seen, seen
    warnings = [r for r in gw.events("config_warning") if "allow_per_user" in r.get("warning", "")]
    assert warnings, gw.tail()


def test_passphrase_command_does_not_inherit_the_log_file(gateway_factory, certs, protected_keys, tmp_path):
    """The log file is opened close-on-exec: a passphrase command (run again at each
    SIGHUP, when the log is open for sure) cannot write into or keep the gateway's log."""
    listing = tmp_path / "fds.txt"
    script = tmp_path / "passphrase.sh"
    script.write_text(f"#!/bin/sh\nls -l /proc/$$/fd >> {listing}\necho p12-secret\n")
    script.chmod(0o700)
    gw = gateway_factory({"tls": {"certificates": [{"pkcs12": str(protected_keys / "server.p12")}],
                                  "passphrase_command": str(script)}})
    runs = listing.read_text().count("total")
    gw.proc.send_signal(signal.SIGHUP)
    harness.wait_until(lambda: listing.read_text().count("total") > runs, 10, "the passphrase command at SIGHUP")
    gw.wait_log(lambda: gw.events("reload"), "the reload record")
    text = listing.read_text()
    assert str(gw.log_path) not in text, text
