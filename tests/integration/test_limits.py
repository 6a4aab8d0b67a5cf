"""Session limits: max_sessions and max_sessions_per_ip answer 421 and count the refusal;
closing a session frees its place."""
from __future__ import annotations

import pytest

from harness import ConnectionClosed, Ctrl

pytestmark = pytest.mark.control


@pytest.mark.parametrize("key,reason,text", [
    ("max_sessions", "max_sessions", "421 Too many sessions, try again later"),
    ("max_sessions_per_ip", "max_sessions_per_ip", "421 Too many sessions from your address"),
])
def test_session_limit_answers_421_and_frees_places(gateway_factory, key, reason, text):
    gw = gateway_factory({"limits": {key: 3}})
    # The harness's start-up probes (one connection per listener) are sessions too, ended on
    # a worker thread: wait until they are gone so they do not take places.
    gw.wait_log(lambda: len(gw.events("session_start")) >= 2 and
                len(gw.events("session_end")) == len(gw.events("session_start")), "start-up probes ended")
    held = []
    try:
        for _ in range(3):
            c = Ctrl(gw.explicit_port)
            assert c.greeting().code == 220
            held.append(c)
        with Ctrl(gw.explicit_port) as extra:
            assert extra.greeting().text == text
            with pytest.raises((ConnectionClosed, OSError)):
                extra.cmd("NOOP", timeout=5)
        # The sessions already running are not disturbed.
        assert held[0].cmd("FEAT").code == 211
    finally:
        for c in held:
            c.close()
    # Every session ended (the three held ones and the harness's start-up probes).
    gw.wait_log(lambda: len(gw.events("session_end")) == len(gw.events("session_start")), "all sessions ended")
    with Ctrl(gw.explicit_port) as again:
        assert again.greeting().code == 220
    assert reason in [r.get("reason") for r in gw.events("policy_denial")], gw.tail()
