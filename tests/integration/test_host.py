"""HOST (RFC 7151): accepted before login and used to pick the backend pool."""
from __future__ import annotations

import pytest

import harness
from harness import Ctrl

pytestmark = pytest.mark.control


def test_host_routes_to_the_backend_that_lists_it(gateway_factory, backend, backend_log):
    dead = harness.PORTS.port()

    def routes(config):
        config["backends"][0]["hosts"] = ["files.example.test"]
        config["backends"].append({"name": "other", "servers": [f"127.0.0.1:{dead}"],
                                   "hosts": ["other.example.test"], "connect_timeout": "2s"})
        # The listener's own backend is the dead one: only HOST routing reaches vsftpd,
        # which host_backends lets this listener's HOST pick.
        for listener in config["listeners"]:
            listener["backend"] = "other"
            listener["host_backends"] = ["other", "vsftpd"]

    gw = gateway_factory(edit=routes)
    with Ctrl(gw.explicit_port) as c:
        c.greeting()
        assert c.cmd("HOST Files.Example.Test").code == 220
        c.auth_tls()
        assert c.login().code == 230
        assert c.cmd("PWD").code == 257
        assert c.cmd("HOST files.example.test").code == 503  # only before USER
    with Ctrl(gw.explicit_port) as c:
        c.greeting()
        r = c.cmd("HOST nowhere.example.test")
        assert r.text == "504 Unknown host", r.text
    with Ctrl(gw.explicit_port) as c:
        c.greeting()
        c.auth_tls()
        r = c.cmd(f"USER {harness.TEST_USER}", timeout=10)
        assert r.text == "421 Service not available, backend unreachable", r.text
    assert "unknown_host" in [r.get("reason") for r in gw.events("policy_denial")]
