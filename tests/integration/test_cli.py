"""The command line (SPEC §1): --version and --check."""
from __future__ import annotations

import re

import pytest

import harness
from harness import GATEWAY_BIN, Gateway

pytestmark = pytest.mark.ops


def make_config(workdir, backend, certs, name: str, overrides=None, edit=None) -> Gateway:
    gw = Gateway(workdir / "cli" / name, backend.port, certs, overrides, name=name, edit=edit)
    gw.write_config()
    return gw


def check(gw: Gateway):
    return harness.run([str(GATEWAY_BIN), "--check", "--config", str(gw.config_path)], timeout=20)


def test_version_names_openssl_and_libevent():
    proc = harness.run([str(GATEWAY_BIN), "--version"], timeout=10)
    out = (proc.stdout + proc.stderr).decode()
    assert proc.returncode == 0, out
    assert re.search(r"\d+\.\d+\.\d+", out) and "OpenSSL" in out and "libevent" in out, out


def test_check_accepts_the_test_config(workdir, backend, certs):
    gw = make_config(workdir, backend, certs, "good")
    proc = check(gw)
    assert proc.returncode == 0, (proc.stdout + proc.stderr).decode()


def test_check_reports_an_unknown_key_with_line_and_column(workdir, backend, certs):
    gw = make_config(workdir, backend, certs, "unknown-key",
                     edit=lambda cfg: cfg["limits"].update(max_lines=10))
    proc = check(gw)
    err = (proc.stdout + proc.stderr).decode()
    assert proc.returncode == 2, err
    lines = gw.config_path.read_text().splitlines()
    want_line = next(i for i, line in enumerate(lines, 1) if "max_lines" in line)
    m = re.search(rf"{re.escape(str(gw.config_path))}:(\d+):(\d+): .*max_lines", err)
    assert m and int(m.group(1)) == want_line, err


def test_check_reports_bad_values_and_unknown_backend(workdir, backend, certs):
    def edit(cfg):
        cfg["classes"][0]["tls_required"] = "sometimes"
        cfg["listeners"][0]["backend"] = "nowhere"
        cfg["limits"]["login_timeout"] = "ten seconds"
    gw = make_config(workdir, backend, certs, "bad-values", edit=edit)
    proc = check(gw)
    err = (proc.stdout + proc.stderr).decode()
    assert proc.returncode == 2, err
    located = re.findall(rf"^{re.escape(str(gw.config_path))}:\d+:\d+: .+$", err, re.M)
    assert len(located) >= 3, err


def test_check_refuses_a_key_that_does_not_match_the_certificate(workdir, backend, certs):
    other = harness.make_certs(workdir / "cli" / "other-certs")
    gw = make_config(workdir, backend, certs, "key-mismatch",
                     edit=lambda cfg: cfg["tls"].update(
                         certificates=[{"cert": str(certs.cert), "key": str(other.key)}]))
    proc = check(gw)
    assert proc.returncode == 2, (proc.stdout + proc.stderr).decode()


def test_check_refuses_auth_with_allow_per_user(workdir, backend, certs):
    gw = make_config(workdir, backend, certs, "per-user",
                     {"classes": [harness.klass("default", "auth", allow_per_user=True)]})
    proc = check(gw)
    err = (proc.stdout + proc.stderr).decode()
    assert proc.returncode == 2, err
    assert "cannot enforce both 'tls_required: auth' and 'allow_per_user' at the same time" in err, err
