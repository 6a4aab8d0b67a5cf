"""Operations hardening (issue 11 items 6, 10, 11).

6. SIGHUP keeps every listener socket with its own listener's settings (by name): a
   reordered list does not move proxy_protocol from one port to another, and a reload
   that would open or close sockets (a listener added, removed, renamed or moved) is
   refused as a whole with the old config kept.
10. HOST picks only among the backends its listener may use (`host_backends`, default
   the listener's own backend); another listener's backend is an unknown host.
11. A PROXY header is read only from `proxy_protocol_from` (the balancers); other peers
   are refused before a byte is read, on control and on data connections.
"""
from __future__ import annotations

import signal
import socket

import pytest

import harness
from clients import metric, metrics_up, scrape_metrics
from harness import Ctrl, TEST_PASS, TEST_USER, klass
from test_cli import check, make_config
from test_proxy_protocol import v1, v2

pytestmark = pytest.mark.ops

BALANCER = "127.0.0.2"  # the trusted load balancer's address in the item 11 tests
DENIALS = "ftpsgate_policy_denials_total"
RELOADS = "ftpsgate_config_reloads_total"


# --------------------------------------------------------------------------- helpers

def _with_metrics(gateway_factory, overrides: dict | None = None, edit=None):
    mport = harness.PORTS.port()
    gw = gateway_factory(harness.deep_merge({"metrics": {"address": f"127.0.0.1:{mport}"}}, overrides or {}),
                         edit=edit)
    harness.wait_until(lambda: metrics_up(mport), 10, "metrics endpoint")
    return gw, mport


def _public_and_balanced(config):
    """Listener `public` (no PROXY header) on the harness's explicit port, `lb` (PROXY
    header from loopback balancers) on its implicit port, both explicit FTPS."""
    public, lb = config["listeners"]
    public.update(name="public", mode="explicit", banner="public port")
    lb.update(name="lb", mode="explicit", banner="balanced port", proxy_protocol=True,
              proxy_protocol_from=["127.0.0.0/8"])


def _reload(gw, result: str):
    """Writes gw.config, sends SIGHUP, waits for the next reload record; returns it."""
    seen = len(gw.events("reload"))
    gw.write_config()
    gw.proc.send_signal(signal.SIGHUP)
    records = harness.wait_until(lambda: gw.events("reload")[seen:], 10, "a reload record", context=gw.tail)
    assert records[0].get("result") == result, records[0]
    return records[0]


def _sessions_from(gw, client_prefix: str) -> list[dict]:
    return [r for r in gw.events("session_start") if str(r.get("client", "")).startswith(client_prefix)]


def _assert_public_port_ignores_proxy_headers(gw, banner: str):
    """The public port greets at once and treats a PROXY header as a bad command."""
    with Ctrl(gw.explicit_port, timeout=5) as c:
        r = c.greeting()
        assert r.text == f"220 {banner}", r.text
        r = c.cmd(v1("127.0.0.66", 40066).decode().strip())
        assert r.code >= 500, f"a PROXY line on the public port is a bad command, got {r.text!r}"
    gw.wait_log(lambda: [r for r in gw.events("session_start") if r.get("listener") == "public"],
                "a session on the public listener")
    assert not _sessions_from(gw, "127.0.0.66"), "the public port believed a PROXY header"
    assert all(r.get("listener") == "public" for r in gw.events("session_start")
               if str(r.get("client", "")).startswith("127.0.0.1:"))


def _assert_balanced_port_reads_proxy_headers(gw, banner: str, claimed: str, port: int):
    with Ctrl(gw.implicit_port, timeout=5) as c:
        c.send_raw(v1(claimed, port))
        r = c.greeting()
        assert r.text == f"220 {banner}", r.text
    client = f"{claimed}:{port}"
    gw.wait_log(lambda: gw.events("session_start", client=client), f"a session from {client}")
    assert gw.events("session_start", client=client)[0].get("listener") == "lb"


# --------------------------------------------------------------------------- item 6: reload by name

def test_reordered_listeners_keep_their_own_settings_after_sighup(gateway_factory):
    gw, mport = _with_metrics(gateway_factory, edit=_public_and_balanced)
    _assert_public_port_ignores_proxy_headers(gw, "public port")
    _assert_balanced_port_reads_proxy_headers(gw, "balanced port", "127.0.0.77", 40001)

    # Same listeners, other order; per-listener settings change and must follow the name.
    gw.config["listeners"].reverse()
    for listener in gw.config["listeners"]:
        listener["banner"] = f"{listener['name']} after reload"
    _reload(gw, "success")

    _assert_public_port_ignores_proxy_headers(gw, "public after reload")
    _assert_balanced_port_reads_proxy_headers(gw, "lb after reload", "127.0.0.78", 40002)
    text = scrape_metrics(mport)
    assert metric(text, RELOADS, result="success") == 1, text


def _new_address() -> str:
    return f"127.0.0.1:{harness.PORTS.port()}"


RESHAPES = {
    # name: (change to the listener list, listener the refusal names)
    "removed": (lambda listeners: listeners.pop(1), "lb"),
    "added": (lambda listeners: listeners.append({"name": "extra", "address": _new_address(),
                                                  "mode": "explicit", "backend": "vsftpd"}), "extra"),
    "renamed": (lambda listeners: listeners[1].update(name="balancer"), "lb"),
    "moved": (lambda listeners: listeners[1].update(address=_new_address()), "lb"),
}


@pytest.mark.parametrize("change", list(RESHAPES))
def test_a_reload_that_changes_listener_sockets_is_refused_as_a_whole(gateway_factory, change):
    gw, mport = _with_metrics(gateway_factory, edit=_public_and_balanced)
    with Ctrl(gw.explicit_port) as running:
        assert running.greeting().code == 220

        reshape, named = RESHAPES[change]
        reshape(gw.config["listeners"])
        gw.config["listeners"][0]["banner"] = "not applied"  # nothing of the new config applies
        record = _reload(gw, "failure")
        error = " ".join(record.get("errors") or [record.get("error", "")])
        assert f"'{named}'" in error, record

        assert running.cmd("NOOP").code == 200  # the running session goes on
    # Both old listeners work exactly as before.
    _assert_public_port_ignores_proxy_headers(gw, "public port")
    _assert_balanced_port_reads_proxy_headers(gw, "balanced port", "127.0.0.79", 40003)
    text = scrape_metrics(mport)
    assert metric(text, RELOADS, result="failure") == 1, text
    assert (metric(text, RELOADS, result="success") or 0) == 0, text


def test_a_reload_that_would_change_the_shared_data_ports_is_refused(gateway_factory):
    """With passive.shared_port the data ports of an address read PROXY headers when its
    listeners do; turning proxy_protocol off by reload would leave them stale."""
    def balanced(config):
        for listener in config["listeners"]:
            listener.update(proxy_protocol=True, proxy_protocol_from=["127.0.0.0/8"])
    ports = harness.PORTS.range(2)
    gw, mport = _with_metrics(gateway_factory, {"passive": {"ports": f"{ports[0]}-{ports[-1]}",
                                                            "shared_port": True}}, edit=balanced)
    for listener in gw.config["listeners"]:
        listener["proxy_protocol"] = False
        listener.pop("proxy_protocol_from")
    record = _reload(gw, "failure")
    assert "proxy_protocol" in " ".join(record.get("errors") or []), record
    with Ctrl(gw.explicit_port, timeout=5) as c:  # the control port still reads the header
        c.send_raw(v1("127.0.0.80", 40004))
        assert c.greeting().code == 220
    gw.wait_log(lambda: gw.events("session_start", client="127.0.0.80:40004"), "the proxied session")
    assert metric(scrape_metrics(mport), RELOADS, result="failure") == 1


# --------------------------------------------------------------------------- item 10: HOST scope

def _two_pools(config, backend_port: int):
    """Listener explicit -> backend `mine`, implicit -> `theirs`; both pools lead to the
    real vsftpd, so a HOST that routes would log in."""
    config["backends"] = [
        {"name": "mine", "servers": [f"127.0.0.1:{backend_port}"], "hosts": ["mine.example.test"],
         "connect_timeout": "3s"},
        {"name": "theirs", "servers": [f"127.0.0.1:{backend_port}"], "hosts": ["theirs.example.test"],
         "connect_timeout": "3s"},
    ]
    config["listeners"][0]["backend"] = "mine"
    config["listeners"][1]["backend"] = "theirs"


def test_host_cannot_pick_a_backend_that_only_another_listener_serves(gateway_factory, backend):
    gw, mport = _with_metrics(gateway_factory, edit=lambda c: _two_pools(c, backend.port))
    with Ctrl(gw.explicit_port) as c:
        c.greeting()
        unknown = c.cmd("HOST nowhere.example.test")
        assert unknown.text == "504 Unknown host", unknown.text
    with Ctrl(gw.explicit_port) as c:
        c.greeting()
        other = c.cmd("HOST theirs.example.test")
        assert other.text == unknown.text, "another listener's host answers like an unknown one"
        assert c.cmd("NOOP").code == 200  # the session goes on
    with Ctrl(gw.explicit_port) as c:
        c.greeting()
        assert c.cmd("HOST mine.example.test").code == 220
        c.auth_tls()
        assert c.login().code == 230
    denied = [r for r in gw.events("policy_denial") if r.get("command") == "HOST"]
    assert len(denied) == 2, denied
    assert denied[1].get("listener") == "explicit" and denied[1].get("reason") != "unknown_host", denied


def test_host_backends_lets_a_listener_pick_the_listed_backends(gateway_factory, backend):
    def scoped(config):
        _two_pools(config, backend.port)
        config["listeners"][0]["host_backends"] = ["mine", "theirs"]
    gw = gateway_factory(edit=scoped)
    with Ctrl(gw.explicit_port) as c:
        c.greeting()
        assert c.cmd("HOST theirs.example.test").code == 220
        c.auth_tls()
        assert c.login().code == 230
    with Ctrl(gw.implicit_port, implicit=True) as c:  # its own scope is still only `theirs`
        c.greeting()
        assert c.cmd("HOST mine.example.test").text == "504 Unknown host"
    assert not [r for r in gw.events("policy_denial") if r.get("listener") == "explicit"]


# --------------------------------------------------------------------------- item 11: PROXY from balancers only

def _behind_balancer(config, trusted: str = f"{BALANCER}/32"):
    for listener in config["listeners"]:
        listener.update(proxy_protocol=True, proxy_protocol_from=[trusted])


def test_a_proxy_header_from_outside_proxy_protocol_from_is_refused(gateway_factory):
    gw, mport = _with_metrics(gateway_factory, edit=_behind_balancer)
    before = metric(scrape_metrics(mport), DENIALS, reason="proxy_protocol") or 0
    with Ctrl(gw.explicit_port, timeout=5) as c:  # 127.0.0.1 is not a balancer
        c.send_raw(v1("127.0.0.77", 40010))
        data, closed = c.read_until_closed(5)
        assert closed and b"220" not in data, data
    with Ctrl(gw.explicit_port, timeout=5, source=BALANCER) as c:
        c.send_raw(v2("127.0.0.78", 40011))
        assert c.greeting().code == 220
    gw.wait_log(lambda: gw.events("session_start", client="127.0.0.78:40011"), "the balanced session")
    assert not _sessions_from(gw, "127.0.0.77"), "the header of a non-balancer was believed"
    refused = [r for r in gw.events("policy_denial")
               if r.get("reason") == "proxy_protocol" and str(r.get("client", "")).startswith("127.0.0.1:")]
    assert refused, gw.events("policy_denial")
    assert metric(scrape_metrics(mport), DENIALS, reason="proxy_protocol") - before >= 1


def _clear_login(c: Ctrl) -> None:
    assert c.greeting().code == 220
    c.expect(f"USER {TEST_USER}", 331)
    c.expect(f"PASS {TEST_PASS}", 230)
    c.expect("TYPE I", 200)


def _data_connection(port: int, source: str, header: bytes) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
    s.sendall(header)
    return s


def _is_closed_by_peer(s: socket.socket, timeout: float = 5) -> bool:
    s.settimeout(timeout)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def test_data_connections_take_proxy_headers_only_from_the_balancer(gateway_factory, backend):
    backend.put("balanced.txt", b"b" * 3000)
    gw, mport = _with_metrics(gateway_factory, {"classes": [klass("default", "off")]}, edit=_behind_balancer)
    with Ctrl(gw.explicit_port, source=BALANCER) as c:
        c.send_raw(v1("127.0.0.77", 40020))
        _clear_login(c)
        # A non-balancer claiming the client's address on its passive port: refused.
        _, port, _ = c.pasv()
        with _data_connection(port, "127.0.0.1", v1("127.0.0.77", 40021, dport=port)) as thief:
            c.send("RETR balanced.txt")
            _, r = c.final_reply()
            assert r.code == 425, r.text
            assert _is_closed_by_peer(thief)
        # Through the balancer: the transfer works.
        _, port, _ = c.pasv()
        with _data_connection(port, BALANCER, v1("127.0.0.77", 40022, dport=port)) as data:
            c.send("RETR balanced.txt")
            assert c.reply().code == 150
            assert harness.recv_all(data, 10) == b"b" * 3000
        assert c.reply().code == 226
    refused = [r for r in gw.events("policy_denial") if r.get("reason") == "proxy_protocol"]
    assert refused, gw.events("policy_denial")


def test_shared_data_ports_take_proxy_headers_only_from_the_balancer(gateway_factory, backend):
    backend.put("balanced-shared.txt", b"s" * 3000)
    ports = harness.PORTS.range(2)
    gw, mport = _with_metrics(gateway_factory,
                              {"classes": [klass("default", "off")],
                               "passive": {"ports": f"{ports[0]}-{ports[-1]}", "shared_port": True}},
                              edit=_behind_balancer)
    before = metric(scrape_metrics(mport), DENIALS, reason="proxy_protocol") or 0
    with Ctrl(gw.explicit_port, source=BALANCER) as c:
        c.send_raw(v1("127.0.0.77", 40030))
        _clear_login(c)
        _, port, _ = c.pasv()
        assert port in ports
        with _data_connection(port, "127.0.0.1", v1("127.0.0.77", 40031, dport=port)) as thief:
            assert _is_closed_by_peer(thief), "a non-balancer's PROXY header was read on the shared port"
        with _data_connection(port, BALANCER, v1("127.0.0.77", 40032, dport=port)) as data:
            c.send("RETR balanced-shared.txt")
            assert c.reply().code == 150
            assert harness.recv_all(data, 10) == b"s" * 3000
        assert c.reply().code == 226
    assert metric(scrape_metrics(mport), DENIALS, reason="proxy_protocol") - before >= 1


@pytest.mark.parametrize("listener_keys, message", [
    ({"proxy_protocol": True}, "proxy_protocol_from"),
    ({"proxy_protocol": True, "proxy_protocol_from": ["10.0.0.0/33"]}, "10.0.0.0/33"),
    ({"host_backends": ["nosuch"]}, "nosuch"),
], ids=["proxy_protocol-without-balancers", "bad-cidr", "unknown-host-backend"])
def test_check_rejects_bad_listener_keys(workdir, backend, certs, request, listener_keys, message):
    gw = make_config(workdir, backend, certs, f"ops-{request.node.callspec.id}",
                     edit=lambda config: config["listeners"][0].update(listener_keys))
    proc = check(gw)
    out = (proc.stdout + proc.stderr).decode()
    assert proc.returncode == 2, out
    assert message in out and f"{gw.config_path}:" in out, out
