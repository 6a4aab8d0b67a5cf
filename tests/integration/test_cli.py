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


# ---- Inside-out agents (issue 17): `ftpsgate agent` and the gateway's `agents` -----------------

def check_fails(gw: Gateway) -> str:
    """--check exits 2; what it printed."""
    proc = check(gw)
    out = (proc.stdout + proc.stderr).decode()
    assert proc.returncode == 2, out
    return out


def run_agent(*args: str):
    return harness.run([str(GATEWAY_BIN), "agent", *args], timeout=20)


def write_agent_file(directory, certs, key=None, targets='["127.0.0.1:21", "127.0.0.1:40000-40049"]'):
    """The agent's file; line 4 is the tls line, line 5 the targets."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "agent.yaml"
    path.write_text(
        "agent:\n"
        f"  gateways:\n"
        f"    - {{address: \"127.0.0.1:{harness.PORTS.port()}\", server_name: localhost}}\n"
        f"  tls: {{ca: {certs.cert}, cert: {certs.cert}, key: {key or certs.key}}}\n"
        f"  targets: {targets}\n"
        "metrics: {address: \"\"}\n")
    return path


def agents_section(certs, agents_ca, port: int) -> dict:
    return {"address": f"127.0.0.1:{port}",
            "tls": {"cert": str(certs.cert), "key": str(certs.key), "client_ca": str(agents_ca.cert)},
            "peers": [{"name": "site-a", "certificate": {"field": "cn", "equals": "site-a"}}]}


def through_agent(certs, agents_ca, servers, **backend):
    def edit(cfg):
        cfg["backends"][0]["servers"] = servers
        cfg["backends"][0].update(backend)
        cfg["agents"] = agents_section(certs, agents_ca, harness.PORTS.port())
    return edit


def test_agent_version_names_openssl_and_libevent():
    proc = run_agent("--version")
    out = (proc.stdout + proc.stderr).decode()
    assert proc.returncode == 0, out
    assert re.search(r"^ftpsgate agent \d+\.\d+\.\d+$", out, re.M) and "OpenSSL" in out and "libevent" in out, out


def test_agent_without_config_is_a_usage_error():
    proc = run_agent()
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    assert "ftpsgate agent: --config FILE is required" in err and "usage: ftpsgate agent --config FILE" in err, err


def test_agent_check_accepts_a_good_file(workdir, certs):
    path = write_agent_file(workdir / "cli" / "agent-good", certs)
    proc = run_agent("--check", "--config", str(path))
    out = (proc.stdout + proc.stderr).decode()
    assert proc.returncode == 0, out
    assert f"{path}: configuration OK" in out, out


def test_agent_check_reports_errors_with_line_and_column(workdir, certs):
    path = write_agent_file(workdir / "cli" / "agent-bad", certs, targets='["127.0.0.1:21", "127.1:21"]')
    proc = run_agent("--check", "--config", str(path))
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    assert re.search(rf"^{re.escape(str(path))}:5:29: invalid target '127.1:21' \(use host:port, host:lo-hi or "
                     r"CIDR:port\)", err, re.M), err


def test_agent_check_refuses_a_key_that_does_not_match_the_certificate(workdir, certs):
    other = harness.make_certs(workdir / "cli" / "agent-other-certs")
    path = write_agent_file(workdir / "cli" / "agent-mismatch", certs, key=other.key)
    proc = run_agent("--check", "--config", str(path))
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    assert re.search(rf"^{re.escape(str(path))}:4:\d+: {re.escape(str(other.key))}: ", err, re.M), err


def test_check_accepts_a_backend_through_an_agent(workdir, backend, certs):
    agents_ca = harness.make_certs(workdir / "cli" / "agents-ca")
    gw = make_config(workdir, backend, certs, "agent-good",
                     edit=through_agent(certs, agents_ca, ["agent:site-a/127.0.0.1:21"]))
    proc = check(gw)
    out = (proc.stdout + proc.stderr).decode()
    assert proc.returncode == 0, out
    assert "warning" not in out, out


def test_check_refuses_an_agents_key_that_does_not_match(workdir, backend, certs):
    agents_ca = harness.make_certs(workdir / "cli" / "agents-ca-2")

    def edit(cfg):
        through_agent(certs, agents_ca, ["agent:site-a/127.0.0.1:21"])(cfg)
        cfg["agents"]["tls"]["key"] = str(agents_ca.key)
    gw = make_config(workdir, backend, certs, "agent-key-mismatch", edit=edit)
    err = check_fails(gw)
    lines = gw.config_path.read_text().splitlines()
    key_line = next(i for i, line in enumerate(lines, 1) if line.strip().startswith("key:") and
                    str(agents_ca.key) in line)
    assert re.search(rf"^{re.escape(str(gw.config_path))}:{key_line}:\d+: ", err, re.M), err


def test_check_reports_an_unknown_agent(workdir, backend, certs):
    agents_ca = harness.make_certs(workdir / "cli" / "agents-ca-3")
    gw = make_config(workdir, backend, certs, "agent-unknown",
                     edit=through_agent(certs, agents_ca, ["agent:site-b/127.0.0.1:21"]))
    err = check_fails(gw)
    assert re.search(rf"^{re.escape(str(gw.config_path))}:\d+:\d+: unknown agent 'site-b' \(agents.peers\)$",
                     err, re.M), err


def test_check_refuses_active_data_mode_through_an_agent(workdir, backend, certs):
    agents_ca = harness.make_certs(workdir / "cli" / "agents-ca-4")
    gw = make_config(workdir, backend, certs, "agent-active",
                     edit=through_agent(certs, agents_ca, ["agent:site-a/127.0.0.1:21"], data_mode="active"))
    err = check_fails(gw)
    assert re.search(rf"^{re.escape(str(gw.config_path))}:\d+:\d+: backend 'vsftpd': data_mode: active cannot work "
                     r"through agent 'site-a' \(the backend would have to connect into the DMZ\); use data_mode: "
                     r"passive$", err, re.M), err
