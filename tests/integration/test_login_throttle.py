"""Login failure throttling: each failed login's reply is delayed, and after
max_login_failures failures the client address is banned for login_ban_time."""
from __future__ import annotations

import time

import pytest

from harness import ConnectionClosed, Ctrl, TEST_PASS, TEST_USER

pytestmark = pytest.mark.control


def _failed_login(c: Ctrl) -> tuple[int, float]:
    assert c.cmd(f"USER {TEST_USER}").code == 331
    started = time.monotonic()
    r = c.cmd("PASS wrong-password", timeout=10)
    return r.code, time.monotonic() - started


def test_failed_logins_are_delayed_then_the_address_is_banned(gateway_factory, backend):
    gw = gateway_factory({"limits": {"login_failure_delay": "400ms", "max_login_failures": 3,
                                     "login_ban_time": "60s"}})
    with Ctrl(gw.explicit_port) as c:
        c.greeting()
        c.auth_tls()
        code, elapsed = _failed_login(c)
        assert code == 530 and elapsed >= 0.35, (code, elapsed)
        code, elapsed = _failed_login(c)
        assert code == 530 and elapsed >= 0.35, (code, elapsed)
        assert c.cmd(f"USER {TEST_USER}").code == 331
        r = c.cmd("PASS wrong-password", timeout=10)
        assert r.text.startswith("421 Too many failed logins"), r.text
    # A new connection from the banned address is refused at once, even with the right password.
    with Ctrl(gw.explicit_port) as c:
        assert c.greeting().text.startswith("421 Too many failed logins"), gw.tail()
        try:
            c.cmd("AUTH TLS", timeout=5)
            raise AssertionError("connection stayed open after the ban reply")
        except (ConnectionClosed, OSError):
            pass
    reasons = [r.get("reason") for r in gw.events("policy_denial")]
    assert "login_banned" in reasons, reasons
    assert TEST_PASS not in "".join(gw.log_lines())


def _closed(c: Ctrl) -> bool:
    """The gateway closed the connection (after what it had to say)."""
    return c.read_until_closed(5)[1]


def _tls_session(port: int, source: str | None = None) -> Ctrl:
    c = Ctrl(port, source=source)
    assert c.greeting().code == 220
    c.auth_tls()
    return c


def test_a_successful_login_does_not_reset_the_count(gateway_factory, backend):
    """SECURITY: with one valid account an attacker used to interleave a successful login
    with each guess, and the count never reached the ban (36 guesses, no ban)."""
    gw = gateway_factory({"limits": {"login_failure_delay": "0s", "max_login_failures": 3,
                                     "login_ban_time": "60s"}})
    for attempt in range(2):
        with _tls_session(gw.explicit_port) as c:
            assert _failed_login(c)[0] == 530
            r = c.login()
            assert r.code == 230, r.text
    with _tls_session(gw.explicit_port) as c:
        assert c.cmd(f"USER {TEST_USER}").code == 331
        r = c.cmd("PASS wrong-password", timeout=10)
        assert r.text.startswith("421 Too many failed logins"), \
            f"3 failures interleaved with successful logins did not ban: {r.text}"
        assert _closed(c)
    with Ctrl(gw.explicit_port) as c:
        assert c.greeting().text.startswith("421 Too many failed logins"), gw.tail()


def test_sessions_opened_before_the_ban_get_no_more_password_attempts(gateway_factory, backend, backend_log):
    """SECURITY: bans were checked only at connect, so sessions opened before the ban kept
    guessing (60 pre-opened sessions gave 163 failed logins) and the count restarted at 0
    each time the ban fired. Now every session of a banned address is refused at its next
    USER/PASS with 421 and closed, and the backend sees no further password."""
    gw = gateway_factory({"limits": {"login_failure_delay": "0s", "max_login_failures": 3,
                                     "login_ban_time": "60s"}})
    sessions = [_tls_session(gw.explicit_port) for _ in range(8)]
    fresh = _tls_session(gw.explicit_port)  # has not sent USER yet
    try:
        for c in sessions:
            assert c.cmd(f"USER {TEST_USER}").code == 331
        codes = []
        for c in sessions:
            r = c.cmd("PASS wrong-password", timeout=10)
            codes.append(r.code)
            if r.code == 530:  # vsftpd wants USER again after a failed PASS
                assert c.cmd(f"USER {TEST_USER}").code == 331
        assert codes == [530, 530] + [421] * 6, codes
        for c in sessions[2:]:
            assert _closed(c), "a session of the banned address stayed open"
        r = fresh.cmd(f"USER {TEST_USER}", timeout=10)
        assert r.text.startswith("421 Too many failed logins"), r.text
        assert _closed(fresh)
        # The 9th session's USER never reached the backend, nor did any password after the ban.
        commands = backend.commands_since(backend_log)
        passwords = [cmd for cmd in commands if cmd.startswith("PASS")]
        assert len(passwords) == 3, commands
        assert len([cmd for cmd in commands if cmd.startswith("USER")]) == 8 + 2, commands
    finally:
        for c in sessions + [fresh]:
            c.close()
    denials = [r for r in gw.events("policy_denial") if r.get("reason") == "login_banned"]
    assert len(denials) == 7, denials  # the ban itself, 5 PASS and 1 USER on open sessions
    assert gw.events("login_ban", scope="address"), gw.tail()
    gw.assert_no_secret()


def test_a_user_name_guessed_from_many_addresses_is_locked(gateway_factory, backend, backend_log):
    """SECURITY: failures are counted per user name too, so one account cannot be guessed
    from many addresses (each below max_login_failures) unnoticed: at
    max_user_login_failures the name is locked for login_ban_time, and even the right
    password for it never reaches the backend."""
    gw = gateway_factory({"limits": {"login_failure_delay": "0s", "max_login_failures": 100,
                                     "max_user_login_failures": 3, "login_ban_time": "60s"}})
    codes = []
    for source in ("127.0.0.2", "127.0.0.3", "127.0.0.4"):
        with _tls_session(gw.explicit_port, source=source) as c:
            codes.append(_failed_login(c)[0])
    assert codes == [530, 530, 421], codes
    mark = backend.log_mark()
    with _tls_session(gw.explicit_port, source="127.0.0.5") as c:
        r = c.cmd(f"USER {TEST_USER}", timeout=10)
        assert r.text.startswith("421 Too many failed logins"), r.text
        assert _closed(c)
    assert backend.commands_since(mark) == [], backend.commands_since(mark)
    # The lock is about the name, not the address: another name from the same address
    # still reaches the backend.
    with _tls_session(gw.explicit_port, source="127.0.0.5") as c:
        assert c.cmd("USER somebody-else").code == 331
    reasons = [r.get("reason") for r in gw.events("policy_denial")]
    assert reasons.count("login_user_locked") == 2, reasons
    assert "login_banned" not in reasons, reasons
    assert gw.events("login_ban", scope="user"), gw.tail()
