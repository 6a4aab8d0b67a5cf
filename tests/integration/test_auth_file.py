"""Gateway-side login with a users file (issue 14): yescrypt, bcrypt and `htpasswd -B`
users log in with real clients; a wrong password or an unknown user never reaches vsftpd;
SIGHUP re-reads the file; a service account logs into the backend for a gateway user and
its password appears nowhere; per-user backend routing; per-user tls_required on the
verified identity; brute force stops at the gateway."""
from __future__ import annotations

import ftplib
import signal
import subprocess

import pytest

import harness
from auth_util import auth_overrides, crypt_hash, use_chain, write_secret
from clients import ReusingFTP_TLS, check_curl, metric, scrape_metrics
from harness import ConnectionClosed, Ctrl, TEST_PASS, TEST_USER, Vsftpd

pytestmark = pytest.mark.control

ALICE_PW = "alice-edge-pw-3141"
BOB_PW = "bob-edge-pw-2718"
CAROL_PW = "carol-htpasswd-pw-1618"


def _users_file(tmp, lines: list[str]):
    path = tmp / "users.txt"
    path.write_text("# ftpsgate users\n" + "\n".join(lines) + "\n")
    return path


@pytest.fixture
def service_password(local_dir):
    return write_secret(local_dir / "backend.pass", TEST_PASS)


def _htpasswd_line(user: str, password: str) -> str:
    out = subprocess.run(["htpasswd", "-nbB", user, password], check=True, capture_output=True, timeout=30)
    line = out.stdout.decode().strip()
    assert line.startswith(f"{user}:$2y$"), line
    return line


def _gateway(gateway_factory, users, **kw):
    return gateway_factory(auth_overrides(users, **kw), edit=lambda c: use_chain(c, ["local"]))


def test_yescrypt_bcrypt_and_htpasswd_users_log_in_with_curl_and_lftp(gateway_factory, backend, local_dir,
                                                                      remote_dir, service_password):
    users = _users_file(local_dir, [
        f"{TEST_USER}:{crypt_hash(TEST_PASS, '$y$')}",
        f"alice:{crypt_hash(ALICE_PW, '$2b$', 8)}:finance:backend_user={TEST_USER};"
        f"backend_password_file={service_password}",
        _htpasswd_line("carol", CAROL_PW) + f"::backend_user={TEST_USER};backend_password_file={service_password}",
    ])
    gw = _gateway(gateway_factory, users)
    payload = harness.make_tree(local_dir / "src", 1, 300_000)
    name, digest = next(iter(payload.items()))
    src = local_dir / "src" / name
    url = f"ftp://127.0.0.1:{gw.explicit_port}/{remote_dir}/"
    # yescrypt (passthrough credentials), bcrypt and htpasswd -B (service account): curl
    # and lftp, both ways.
    for user, password in ((TEST_USER, TEST_PASS), ("alice", ALICE_PW), ("carol", CAROL_PW)):
        check_curl(_curl(gw, user, password, "-T", str(src), url + f"curl-{user}.bin"), gw, "upload")
        assert harness.sha256_file(backend.root / remote_dir / f"curl-{user}.bin") == digest
        got = local_dir / f"curl-got-{user}.bin"
        check_curl(_curl(gw, user, password, "-o", str(got), url + f"curl-{user}.bin"), gw, "download")
        assert harness.sha256_file(got) == digest
    for user, password in ((TEST_USER, TEST_PASS), ("alice", ALICE_PW), ("carol", CAROL_PW)):
        back = local_dir / f"back-{user}.bin"
        _lftp(gw, user, password, f"put {src} -o {remote_dir}/{user}.bin\nget {remote_dir}/{user}.bin -o {back}\n",
              local_dir / f"lftp-{user}.log")
        assert harness.sha256_file(backend.root / remote_dir / f"{user}.bin") == digest
        assert harness.sha256_file(back) == digest
    logins = [r for r in gw.events("login") if r.get("result") == "success"]
    assert {(r["user"], r["provider"], r["backend_user"]) for r in logins} >= {
        (TEST_USER, "local", TEST_USER), ("alice", "local", TEST_USER), ("carol", "local", TEST_USER)}, logins
    assert [r["groups"] for r in logins if r["user"] == "alice"][0] == ["finance"]
    gw.assert_no_secret(TEST_PASS)
    gw.assert_no_secret(ALICE_PW)
    gw.assert_no_secret(CAROL_PW)


def _curl(gw, user, password, *args):
    from clients import CURL_CONNECT_TIMEOUT, CURL_TIMEOUT
    cmd = ["curl", "-sS", "-v", "--connect-timeout", CURL_CONNECT_TIMEOUT, "--max-time", str(CURL_TIMEOUT - 10),
           "--ssl-reqd", "-k", "-u", f"{user}:{password}", *args]
    return harness.run(cmd, timeout=CURL_TIMEOUT)


def _lftp(gw, user, password, script, debug):
    import test_transfers
    full = (test_transfers.LFTP_SETTINGS + f"debug -t -o {debug} 9\n"
            + f"open -u {user},{password} ftp://127.0.0.1:{gw.explicit_port}\n" + script)
    proc = harness.run(["lftp", "-c", full], timeout=150)
    assert proc.returncode == 0, (proc.returncode, harness._tail_bytes(proc.stderr, 2000),
                                  harness.tail_file(debug, 4000), gw.tail())


def test_wrong_password_and_unknown_user_never_reach_the_backend(gateway_factory, backend, backend_log, local_dir):
    users = _users_file(local_dir, [f"{TEST_USER}:{crypt_hash(TEST_PASS, '$y$')}"])
    gw = _gateway(gateway_factory, users, timeout="10s")
    for user, password in ((TEST_USER, "wrong-password"), ("nobody-here", TEST_PASS), (TEST_USER, "")):
        with Ctrl(gw.explicit_port) as c:
            c.greeting()
            c.auth_tls()
            assert c.cmd(f"USER {user}").code == 331  # the same answer whoever asks
            assert c.cmd(f"PASS {password}", timeout=10).code == 530
            # Between USER and PASS and after a failure, nothing is relayed either.
            assert c.cmd("PWD").code == 530
    _backend_saw_no_login(backend, backend_log)
    reasons = [(r.get("provider"), r.get("reason")) for r in gw.events("login") if r.get("result") == "failure"]
    assert ("local", "wrong_password") in reasons and ("none", "unknown_user") in reasons, reasons


def _backend_saw_no_login(backend, mark):
    """Only the gateway's health checks (FEAT, QUIT) reached vsftpd: no session's USER/PASS."""
    seen = [c for c in backend.commands_since(mark) if not c.startswith(("FEAT", "QUIT"))]
    assert not seen, seen


def test_sighup_rereads_the_users_file(gateway_factory, backend, local_dir, service_password):
    users = _users_file(local_dir, [f"{TEST_USER}:{crypt_hash(TEST_PASS, '$y$')}"])
    gw = _gateway(gateway_factory, users)
    dave_pw = "dave-new-user-pw"
    with Ctrl(gw.explicit_port) as c:
        c.greeting()
        c.auth_tls()
        assert c.cmd("USER dave").code == 331
        assert c.cmd(f"PASS {dave_pw}", timeout=10).code == 530
    users.write_text(users.read_text() + f"dave:{crypt_hash(dave_pw, '$6$')}::backend_user={TEST_USER};"
                     f"backend_password_file={service_password}\n")
    gw.proc.send_signal(signal.SIGHUP)
    harness.wait_until(lambda: [r for r in gw.events("reload") if r.get("result") == "success"], 10, "a reload")
    with Ctrl(gw.explicit_port) as c:
        c.greeting()
        c.auth_tls()
        assert c.login("dave", dave_pw).code == 230
        assert c.cmd("PWD").code == 257


def test_service_account_password_appears_in_no_log_and_no_metric(gateway_factory, backend, backend_log, local_dir,
                                                                  service_password):
    users = _users_file(local_dir, [f"alice:{crypt_hash(ALICE_PW, '$y$')}:finance"])
    mport = harness.PORTS.port()
    overrides = auth_overrides(users, backend_logins=[
        {"groups": ["finance"], "backend_user": TEST_USER, "backend_password_file": str(service_password)}])
    overrides["metrics"] = {"address": f"127.0.0.1:{mport}"}
    gw = gateway_factory(overrides, edit=lambda c: use_chain(c, ["local"]))
    ftp = connect_as(gw, "alice", ALICE_PW)
    assert ftp.pwd()
    ftp.quit()
    # vsftpd saw the service account, never alice.
    seen = backend.commands_since(backend_log)
    assert f"USER {TEST_USER}" in seen and not any("alice" in line for line in seen), seen
    text = scrape_metrics(mport)
    assert metric(text, "ftpsgate_auth_attempts_total", provider="local", result="success") == 1, text
    assert TEST_PASS not in text and ALICE_PW not in text
    assert "ftpsgate_auth_duration_seconds_count" in text
    gw.assert_no_secret(TEST_PASS)
    gw.assert_no_secret(ALICE_PW)
    assert TEST_PASS not in gw.stderr_path.read_text(errors="replace")
    login = [r for r in gw.events("login") if r.get("result") == "success"][0]
    assert (login["user"], login["backend_user"], login["groups"]) == ("alice", TEST_USER, ["finance"]), login


def connect_as(gw, user, password):
    ctx = harness.client_tls_context()
    ftp = ReusingFTP_TLS(context=ctx, timeout=20)
    ftp.connect("127.0.0.1", gw.explicit_port)
    ftp.auth()
    ftp.login(user, password)
    ftp.prot_p()
    return ftp


def test_users_and_groups_are_routed_to_their_backend(gateway_factory, backend, local_dir, workdir, service_password):
    second = Vsftpd(local_dir / "second-vsftpd")
    second.start()
    try:
        users = _users_file(local_dir, [
            f"alice:{crypt_hash(ALICE_PW, '$y$')}:finance",
            f"bob:{crypt_hash(BOB_PW, '$y$')}::backend=second;backend_user={TEST_USER};"
            f"backend_password_file={service_password}",
        ])
        overrides = auth_overrides(users, backend_logins=[
            {"groups": ["finance"], "backend": "second", "backend_user": TEST_USER,
             "backend_password_file": str(service_password)},
            {"classes": ["default"], "backend_user": TEST_USER, "backend_password_file": str(service_password)}])

        def edit(c):
            use_chain(c, ["local"])
            c["backends"].append({"name": "second", "servers": [f"127.0.0.1:{second.port}"]})
        gw = gateway_factory(overrides, edit=edit)
        for user, password in (("alice", ALICE_PW), ("bob", BOB_PW)):
            ftp = connect_as(gw, user, password)
            ftp.storbinary(f"STOR routed-{user}.txt", __import__("io").BytesIO(user.encode()))
            ftp.quit()
            assert (second.root / f"routed-{user}.txt").read_bytes() == user.encode()
            assert not (backend.root / f"routed-{user}.txt").exists()
        logins = {r["user"]: r for r in gw.events("login") if r.get("result") == "success"}
        assert logins["alice"]["backend"] == "second" and logins["bob"]["backend"] == "second", logins
    finally:
        second.stop()


def test_per_user_tls_required_applies_to_the_verified_user(gateway_factory, backend, local_dir, service_password):
    users = _users_file(local_dir, [
        f"alice:{crypt_hash(ALICE_PW, '$y$')}::tls_required=on;backend_user={TEST_USER};"
        f"backend_password_file={service_password}",
        f"bob:{crypt_hash(BOB_PW, '$y$')}::backend_user={TEST_USER};backend_password_file={service_password}",
    ])
    gw = gateway_factory(auth_overrides(users), edit=lambda c: (use_chain(c, ["local"]),
                                                                c.update(classes=[harness.klass("default", "auth")])))
    # The class says `auth` (clear data allowed); alice's entry says `on` once she is verified.
    for user, password, prot_c in (("alice", ALICE_PW, 534), ("bob", BOB_PW, 200)):
        with Ctrl(gw.explicit_port) as c:
            c.greeting()
            c.auth_tls()
            assert c.login(user, password).code == 230
            r = c.cmd("PROT C")
            assert r.code == prot_c, (user, r.text)


def test_brute_force_stops_at_the_gateway(gateway_factory, backend, backend_log, local_dir):
    """1,000 wrong passwords from one address: the gateway bans the address after
    max_login_failures; vsftpd sees no connection at all."""
    users = _users_file(local_dir, [f"{TEST_USER}:{crypt_hash(TEST_PASS, '$y$')}"])
    mport = harness.PORTS.port()
    overrides = auth_overrides(users)
    overrides["limits"] = {"login_failure_delay": "0s", "max_login_failures": 20, "login_ban_time": "600s"}
    overrides["metrics"] = {"address": f"127.0.0.1:{mport}"}
    gw = gateway_factory(overrides, edit=lambda c: (use_chain(c, ["local"]),
                                                    c.update(classes=[harness.klass("default", "off")])))
    attempts = refused = 0
    while attempts < 1000:
        with Ctrl(gw.explicit_port) as c:
            if c.greeting().code == 421:
                attempts += 1
                refused += 1
                continue
            try:
                while attempts < 1000:
                    r = c.cmd(f"USER {TEST_USER}")
                    if r.code == 421:
                        attempts += 1
                        refused += 1
                        break
                    r = c.cmd(f"PASS guess-{attempts}", timeout=10)
                    attempts += 1
                    if r.code == 421:
                        refused += 1
                        break
                    assert r.code == 530, r.text
            except (ConnectionClosed, OSError):
                pass
    assert refused >= 1000 - 20, refused
    text = scrape_metrics(mport)
    assert metric(text, "ftpsgate_auth_attempts_total", provider="local", result="failure") == 20, text
    _backend_saw_no_login(backend, backend_log)


def test_check_reports_users_file_errors_with_file_line_col(local_dir, certs):
    users = local_dir / "users.txt"
    users.write_text(f"alice:{crypt_hash(ALICE_PW, '$y$')}\nbob:$1$md5salt$notallowed\n")
    config = local_dir / "check.yaml"
    config.write_text(
        "listeners:\n"
        "  - {name: l, address: '127.0.0.1:2121', backend: b, auth: [local, ghost]}\n"
        "backends:\n"
        "  - {name: b, servers: ['127.0.0.1:21']}\n"
        "auth:\n"
        "  providers:\n"
        f"    - {{name: local, type: file, path: '{users}'}}\n")
    proc = subprocess.run([str(harness.GATEWAY_BIN), "--check", "--config", str(config)], capture_output=True,
                          timeout=30)
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    assert f"{users}:2:5: user 'bob': unsupported password hash" in err, err
    assert f"{config}:2:68: unknown auth provider 'ghost'" in err, err
    assert ALICE_PW not in err


def test_passthrough_as_the_last_provider_hands_unknown_users_to_the_backend(gateway_factory, backend, backend_log,
                                                                            local_dir, service_password):
    users = _users_file(local_dir, [f"alice:{crypt_hash(ALICE_PW, '$y$')}::backend_user={TEST_USER};"
                                    f"backend_password_file={service_password}"])
    gw = gateway_factory(auth_overrides(users), edit=lambda c: use_chain(c, ["local", "passthrough"]))
    with Ctrl(gw.explicit_port) as c:
        c.greeting()
        c.auth_tls()
        # alice is known at the gateway: a wrong password stops there.
        assert c.cmd("USER alice").code == 331
        assert c.cmd("PASS not-alices", timeout=10).code == 530
        # The vsftpd account is unknown to the gateway: the backend decides, wrong then right.
        assert c.cmd(f"USER {TEST_USER}").code == 331
        assert c.cmd("PASS wrong-for-vsftpd", timeout=10).code == 530
        assert c.login(TEST_USER, TEST_PASS).code == 230
        assert c.cmd("PWD").code == 257
    seen = [line for line in backend.commands_since(backend_log) if line.startswith(("USER", "PASS"))]
    assert seen == [f"USER {TEST_USER}", "PASS <password>", f"USER {TEST_USER}", "PASS <password>"] or \
        [line for line in seen if line.startswith("USER")] == [f"USER {TEST_USER}"] * 2, seen
    assert not any("alice" in line for line in seen), seen
    results = [(r["result"], r.get("provider")) for r in gw.events("login")]
    assert results == [("failure", "local"), ("failure", "passthrough"), ("success", "passthrough")], results
