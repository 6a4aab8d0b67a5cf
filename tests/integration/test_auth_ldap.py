"""The `ldap` provider against a real slapd (issue 14): LDAPS with the test CA and a bind
template, StartTLS with search-then-bind under a service account, group membership from the
directory routing users to their backend, LDAP injection and empty passwords refused, and
fail-closed 421 while the directory is down, recovering when it is back."""
from __future__ import annotations

import io

import pytest

import harness
from auth_util import write_secret
from clients import ImplicitFTP_TLS, ReusingFTP_TLS
from harness import Ctrl, TEST_PASS, TEST_USER, Vsftpd
from ldap_server import LdapServer

pytestmark = pytest.mark.control


@pytest.fixture(scope="module")
def directory(tmp_path_factory):
    server = LdapServer(tmp_path_factory.mktemp("slapd"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def second_backend(local_dir):
    server = Vsftpd(local_dir / "second-vsftpd")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def ldap_gateway(gateway_factory, directory, local_dir, second_backend):
    if not directory.running():
        directory.start()
    service = write_secret(local_dir / "ldap-service.pass", directory.service_password)
    backend_pw = write_secret(local_dir / "backend.pass", TEST_PASS)
    common = {"ca": str(directory.ca_file), "group_base": directory.groups, "timeout": "3s"}
    overrides = {
        # The injection test makes many failed logins from one address on purpose.
        "limits": {"login_failure_delay": "0s", "max_login_failures": 100, "max_user_login_failures": 100},
        "auth": {
            "providers": [
                {"name": "corp", "type": "ldap", "url": directory.url_ldap, "start_tls": True,
                 "search_base": directory.people, "search_filter": "(uid={user})",
                 "service_dn": directory.service_dn, "service_password_file": str(service), **common},
                {"name": "corp_direct", "type": "ldap", "url": directory.url_ldaps,
                 "bind_dn": "uid={user}," + directory.people, **common},
            ],
            "backend_logins": [
                {"groups": ["finance"], "backend": "second", "backend_user": TEST_USER,
                 "backend_password_file": str(backend_pw)},
                {"backend_user": TEST_USER, "backend_password_file": str(backend_pw)},
            ],
        },
    }

    def edit(c):
        c["listeners"][0]["auth"] = ["corp"]
        c["listeners"][1]["auth"] = ["corp_direct"]
        c["backends"].append({"name": "second", "servers": [f"127.0.0.1:{second_backend.port}"]})
    return gateway_factory(overrides, edit=edit)


def _ftp(gw, user, password, implicit=False):
    ctx = harness.client_tls_context()
    ftp = (ImplicitFTP_TLS if implicit else ReusingFTP_TLS)(context=ctx, timeout=20)
    ftp.connect("127.0.0.1", gw.implicit_port if implicit else gw.explicit_port)
    if not implicit:
        ftp.auth()
    ftp.login(user, password)
    ftp.prot_p()
    return ftp


def _login_code(gw, user, password, implicit=False) -> int:
    with Ctrl(gw.implicit_port if implicit else gw.explicit_port, implicit=implicit) as c:
        c.greeting()
        if not implicit:
            c.auth_tls()
        assert c.cmd(f"USER {user}").code == 331
        return c.cmd(f"PASS {password}" if password else "PASS", timeout=20).code


def test_search_bind_and_bind_template_with_group_routing(ldap_gateway, directory, backend, second_backend):
    gw = ldap_gateway
    for user, implicit in (("alice", False), ("bob", False), ("alice", True), ("carol", True)):
        ftp = _ftp(gw, user, directory.users[user], implicit=implicit)
        name = f"ldap-{user}-{'ldaps' if implicit else 'starttls'}.txt"
        ftp.storbinary(f"STOR {name}", io.BytesIO(name.encode()))
        ftp.quit()
        # finance (alice) goes to the second backend, everyone else to the first.
        target, other = (second_backend, backend) if user == "alice" else (backend, second_backend)
        assert (target.root / name).read_bytes() == name.encode(), (user, gw.tail())
        assert not (other.root / name).exists()
    logins = [(r["user"], r["provider"], r["groups"], r.get("backend"))
              for r in gw.events("login") if r.get("result") == "success"]
    assert logins == [("alice", "corp", ["finance"], "second"), ("bob", "corp", ["ops"], None),
                      ("alice", "corp_direct", ["finance"], "second"), ("carol", "corp_direct", ["ops"], None)], logins
    for user in ("alice", "bob", "carol"):
        gw.assert_no_secret(directory.users[user])
    gw.assert_no_secret(directory.service_password)


def test_injection_wrong_and_empty_passwords_are_refused(ldap_gateway, directory, backend_log, backend):
    gw = ldap_gateway
    alice_pw = directory.users["alice"]
    for implicit in (False, True):
        attempts = [("*)(uid=*", alice_pw), ("*", alice_pw), ("alice)(|(uid=*", alice_pw),
                    ("alice,ou=people", alice_pw), ("alice", "wrong"), ("alice", ""), ("nobody", "x")]
        if not implicit:
            # Search-then-bind: two entries answer to "twin", so nobody logs in as "twin".
            attempts.append((directory.twin_user, directory.twin_password))
        for user, password in attempts:
            assert _login_code(gw, user, password, implicit) == 530, (user, password, implicit, gw.tail())
    seen = [c for c in backend.commands_since(backend_log) if not c.startswith(("FEAT", "QUIT"))]
    assert not seen, seen
    # The empty password never became a bind: slapd logged no anonymous or empty-password BIND.
    log = directory.log.read_text(errors="replace")
    assert 'BIND dn="" method=128' not in log


def test_directory_down_fails_closed_then_recovers(ldap_gateway, directory):
    gw = ldap_gateway
    running = _ftp(gw, "bob", directory.users["bob"])
    directory.kill()
    try:
        for implicit in (False, True):
            with Ctrl(gw.implicit_port if implicit else gw.explicit_port, implicit=implicit) as c:
                c.greeting()
                if not implicit:
                    c.auth_tls()
                assert c.cmd("USER alice").code == 331
                r = c.cmd(f"PASS {directory.users['alice']}", timeout=20)
                assert r.code == 421, r.text
                assert c.read_until_closed(5)[1]
        # The established session does not depend on the directory.
        assert running.voidcmd("NOOP").startswith("200")
        denials = [r for r in gw.events("policy_denial") if r.get("reason") == "auth_unavailable"]
        assert len(denials) == 2 and all("ldap" in r["message"] for r in denials), denials
    finally:
        directory.start()
    ftp = _ftp(gw, "alice", directory.users["alice"])
    assert ftp.pwd()
    ftp.quit()
    running.quit()
