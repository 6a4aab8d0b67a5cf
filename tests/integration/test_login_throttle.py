"""Login failure throttling: each failed login's reply is delayed, and after
max_login_failures failures the client address is banned for login_ban_time."""
from __future__ import annotations

import time

from harness import ConnectionClosed, Ctrl, TEST_PASS, TEST_USER


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


def test_a_successful_login_resets_the_count(gateway_factory, backend):
    gw = gateway_factory({"limits": {"login_failure_delay": "0s", "max_login_failures": 2,
                                     "login_ban_time": "60s"}})
    for _ in range(3):
        with Ctrl(gw.explicit_port) as c:
            c.greeting()
            c.auth_tls()
            assert _failed_login(c)[0] == 530
            r = c.login()
            assert r.code == 230, r.text
