"""Prometheus endpoint (SPEC §4): counters move with what the tests do."""
from __future__ import annotations

import re
import signal
import urllib.request

import pytest

import harness
from clients import http_status, metric
from harness import Ctrl

pytestmark = pytest.mark.ops


def scrape(port: int, path: str = "/metrics") -> tuple[int, str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return r.status, r.read().decode("utf-8", "replace")




def test_metrics_count_sessions_handshakes_and_denials(gateway_factory):
    mport = harness.PORTS.port()
    gw = gateway_factory({"metrics": {"address": f"127.0.0.1:{mport}"}})
    harness.wait_until(lambda: _up(mport), 10, "metrics endpoint")
    with Ctrl(gw.explicit_port) as c:  # STARTTLS injection
        c.greeting()
        c.send_raw(b"AUTH TLS\r\nUSER x\r\n")
        c.read_until_closed(5)
    with Ctrl(gw.explicit_port) as c:  # a TLS login
        c.greeting()
        c.auth_tls()
        c.login()
        c.cmd("QUIT")
    _, text = scrape(mport)
    assert (metric(text, "ftpsgate_policy_denials_total", reason="starttls_injection") or 0) >= 1, \
        [line for line in text.splitlines() if "policy_denials" in line]
    assert (metric(text, "ftpsgate_tls_handshakes_total", channel="control") or 0) >= 1, \
        [line for line in text.splitlines() if "handshakes" in line]
    assert re.search(r"^ftpsgate_sessions_total\{.*\} [1-9]", text, re.M), \
        [line for line in text.splitlines() if "sessions" in line]


def _up(port: int, path: str = "/metrics") -> bool:
    try:
        return scrape(port, path)[0] == 200
    except OSError:
        return False


def test_healthz_and_readyz_and_drain(gateway_factory):
    """/healthz answers while the process runs; /readyz turns 503 as soon as SIGTERM starts
    the drain, while a session is still open."""
    mport = harness.PORTS.port()
    gw = gateway_factory({"metrics": {"address": f"127.0.0.1:{mport}"}, "limits": {"drain_timeout": "20s"}})
    harness.wait_until(lambda: _up(mport), 10, "metrics endpoint")
    assert http_status(mport, "/healthz") == 200
    # Ready once the first health check of the backend passed.
    harness.wait_until(lambda: http_status(mport, "/readyz") == 200, 10, "/readyz 200")
    assert http_status(mport, "/nothing") == 404
    with Ctrl(gw.explicit_port) as c:
        c.greeting()
        gw.proc.send_signal(signal.SIGTERM)
        harness.wait_until(lambda: http_status(mport, "/readyz") == 503, 10, "/readyz 503 while draining")
        assert http_status(mport, "/healthz") == 200
        assert c.cmd("NOOP").code == 200  # the running session is not cut
    assert gw.proc.wait(timeout=15) == 0
