"""The control channel spoken byte by byte over raw sockets (SPEC §3)."""
from __future__ import annotations

import socket
import time

import pytest

import harness
from harness import Ctrl, TEST_USER

pytestmark = pytest.mark.control


def dead_backend() -> dict:
    """A backend address where nothing listens."""
    return {"backends": [{"name": "vsftpd", "servers": [f"127.0.0.1:{harness.PORTS.port()}"],
                          "connect_timeout": "2s"}]}


def tls_ctrl(gw, **kw) -> Ctrl:
    c = Ctrl(gw.explicit_port, **kw)
    assert c.greeting().code == 220
    c.auth_tls()
    return c


def test_greeting_is_immediate_even_with_a_dead_backend(gateway_factory):
    gw = gateway_factory(dead_backend())
    start = time.monotonic()
    with Ctrl(gw.explicit_port) as c:
        r = c.greeting(timeout=5)
        assert r.code == 220, r.text
        assert time.monotonic() - start < 1.0
    start = time.monotonic()
    with Ctrl(gw.implicit_port, implicit=True) as c:
        assert c.greeting(timeout=5).code == 220
        assert time.monotonic() - start < 2.0


def test_banner_is_the_configured_text(gateway_factory):
    gw = gateway_factory(edit=lambda cfg: cfg["listeners"][0].update(
        banner="Welcome to the test gate"))
    with Ctrl(gw.explicit_port) as c:
        assert c.greeting().last == "220 Welcome to the test gate"


def test_dead_backend_gives_421_after_user_and_closes(gateway_factory):
    gw = gateway_factory(dead_backend())
    with Ctrl(gw.explicit_port) as bystander, tls_ctrl(gw) as c:
        assert bystander.greeting().code == 220
        start = time.monotonic()
        r = c.cmd(f"USER {TEST_USER}", timeout=8)
        elapsed = time.monotonic() - start
        assert r.last == "421 Service not available, backend unreachable", r.text
        assert elapsed < 2 + 3
        _, closed = c.read_until_closed(5)
        assert closed, "connection not closed after 421"
        # Other sessions are not disturbed.
        r = bystander.cmd("FEAT")
        assert r.code == 211, r.text


def test_pbsz_and_prot_before_auth_get_503(gateway):
    with Ctrl(gateway.explicit_port) as c:
        c.greeting()
        assert c.cmd("PBSZ 0").code == 503
        assert c.cmd("PROT P").code == 503
        c.auth_tls()
        assert c.cmd("PBSZ 0").last == "200 PBSZ=0"


def test_auth_variants(gateway):
    with Ctrl(gateway.explicit_port) as c:
        c.greeting()
        assert c.cmd("AUTH XYZ").code == 504
        c.auth_tls("SSL")
        assert c.cmd("AUTH TLS").code == 503, "second AUTH on a protected channel"
        assert c.cmd("PBSZ 0").last == "200 PBSZ=0"
    for mech in ("TLS-C", "TLS-P", "tls"):
        with Ctrl(gateway.explicit_port) as c:
            c.greeting()
            c.auth_tls(mech)
            assert c.cmd("PBSZ 0").code == 200


def test_pbsz_and_prot_replies(gateway):
    with tls_ctrl(gateway) as c:
        assert c.cmd("PBSZ 0").last == "200 PBSZ=0"
        assert c.cmd("PBSZ 1048576").last == "200 PBSZ=0"
        assert c.cmd("PROT S").code == 536
        assert c.cmd("PROT E").code == 536
        assert c.cmd("PROT C").last == "534 PROT C refused by policy"
        assert c.cmd("PROT P").code == 200


def test_over_long_line_is_refused_and_the_session_goes_on(gateway_factory):
    gw = gateway_factory({"limits": {"max_line": 512}})
    with Ctrl(gw.explicit_port) as c:
        c.greeting()
        assert c.cmd("NOOP " + "A" * 3000).last == "500 Command line too long"
        c.auth_tls()
        assert c.cmd("SITE " + "B" * 100000, timeout=10).last == "500 Command line too long"
        assert c.cmd("PBSZ 0").last == "200 PBSZ=0"
        c.login()
        assert c.cmd("PWD").code == 257


def test_starttls_injection_is_never_executed(gateway, backend, backend_log):
    with Ctrl(gateway.explicit_port) as c:
        c.greeting()
        c.send_raw(b"AUTH TLS\r\nUSER " + TEST_USER.encode() + b"\r\n")
        data, closed = c.read_until_closed(5)
        assert closed, f"connection left open after pipelined plaintext: {data!r}"
        assert b"331" not in data and b"230" not in data, data
    assert not [x for x in backend.commands_since(backend_log) if x.startswith("USER")]
    gateway.wait_log(lambda: gateway.events("policy_denial"), "a policy_denial")
    assert any("starttls_injection" in str(r.get("reason")) for r in gateway.events("policy_denial")), \
        [r for r in gateway.events("policy_denial")]


def feat_lines(reply) -> list[str]:
    assert reply.code == 211, reply.text
    assert reply.lines[0].startswith("211-") and reply.lines[-1].startswith("211 "), reply.text
    return [line.strip() for line in reply.lines[1:-1]]


def test_feat_before_login_lists_the_gateway_features(gateway):
    with Ctrl(gateway.explicit_port) as c:
        c.greeting()
        features = feat_lines(c.cmd("FEAT"))
        for want in ("AUTH TLS", "PBSZ", "PROT", "EPSV"):
            assert any(f == want or f.startswith(want + " ") or f.startswith(want + ";")
                       for f in features), (want, features)


def test_multiline_replies_are_relayed_intact(gateway, backend):
    with Ctrl(backend.port) as direct:
        direct.greeting()
        direct.login()
        direct_help = direct.cmd("HELP")
    assert direct_help.code == 214 and len(direct_help.lines) > 2
    with tls_ctrl(gateway) as c:
        c.login()
        assert c.cmd("HELP").lines == direct_help.lines
        features = feat_lines(c.cmd("FEAT"))
        assert "SIZE" in features and "MDTM" in features, features
        stat = c.cmd("STAT")
        assert stat.code == 211 and len(stat.lines) > 3, stat.text
        assert stat.lines[-1].startswith("211 "), stat.text
        assert any(TEST_USER in line for line in stat.lines), stat.text


def test_quit_gets_221_and_closes(gateway):
    with tls_ctrl(gateway) as c:
        c.login()
        assert c.cmd("QUIT").code == 221
        _, closed = c.read_until_closed(5)
        assert closed
    with Ctrl(gateway.explicit_port) as c:  # QUIT before login, in clear
        c.greeting()
        assert c.cmd("QUIT").code == 221
        _, closed = c.read_until_closed(5)
        assert closed


def test_implicit_session_starts_with_prot_p(gateway, backend, remote_dir, medium_file):
    """No PBSZ/PROT sent: the data connection is TLS, resuming the control session."""
    path, digest = medium_file
    backend.put_file(f"{remote_dir}/m.bin", path)
    with Ctrl(gateway.implicit_port, implicit=True) as c:
        assert c.greeting().code == 220
        assert c.cmd("AUTH TLS").code == 503, "AUTH on an already protected channel"
        c.login()
        c.expect(f"CWD {remote_dir}", 250)
        c.expect("TYPE I", 200)
        port, _ = c.epsv()
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        c.send("RETR m.bin")
        r = c.reply()
        assert r.code == 150, r.text
        data_sock = c.ctx.wrap_socket(raw, server_hostname="localhost", session=c.session())
        assert data_sock.session_reused
        data = harness.recv_all(data_sock, 15)
        harness.close_tls(data_sock)
        _, final = c.final_reply()
        assert final.code == 226, final.text
        assert harness.sha256_bytes(data) == digest


def test_login_timeout_gives_421_and_closes(gateway_factory):
    gw = gateway_factory({"limits": {"login_timeout": "2s"}})
    with Ctrl(gw.explicit_port) as c:
        start = time.monotonic()
        c.greeting()
        r = c.reply(timeout=10)
        elapsed = time.monotonic() - start
        assert r.code == 421, r.text
        assert 1.5 <= elapsed <= 6, elapsed
        _, closed = c.read_until_closed(5)
        assert closed


def test_sigterm_stops_the_gateway_with_exit_0(gateway_factory):
    gw = gateway_factory()
    with Ctrl(gw.explicit_port) as c:
        c.greeting()
    code = gw.stop(timeout=15)
    assert code == 0, f"exit code {code}\n{gw.tail()}"
