"""PROXY protocol v1/v2 on listeners with proxy_protocol: true (issue 4 item 6): the
address in the header drives classes, per-IP limits, data-connection source checks and
logs; connections without a valid header are refused and counted."""
from __future__ import annotations

import socket
import struct

import pytest

import harness
from clients import metric, metrics_up, scrape_metrics
from harness import Ctrl, TEST_PASS, TEST_USER, klass

pytestmark = pytest.mark.ops


def v1(src: str, sport: int, dst: str = "127.0.0.1", dport: int = 21) -> bytes:
    return f"PROXY TCP4 {src} {dst} {sport} {dport}\r\n".encode()


def v2(src: str, sport: int, dst: str = "127.0.0.1", dport: int = 21) -> bytes:
    body = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!HH", sport, dport)
    return b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack("!H", len(body)) + body


def _proxy_gateway(gateway_factory, trusted=("127.0.0.1/32",), **overrides):
    mport = harness.PORTS.port()

    def edit(config):
        for listener in config["listeners"]:
            listener["proxy_protocol"] = True
            listener["proxy_protocol_from"] = list(trusted)
    gw = gateway_factory({"metrics": {"address": f"127.0.0.1:{mport}"}, **overrides}, edit=edit)
    harness.wait_until(lambda: metrics_up(mport), 10, "metrics endpoint")
    return gw, mport


def _proxied(gw, header: bytes) -> Ctrl:
    c = Ctrl(gw.explicit_port)
    c.send_raw(header)
    return c


def test_v1_and_v2_headers_set_the_client_address(gateway_factory):
    gw, _ = _proxy_gateway(gateway_factory)
    for header, client in ((v1("127.0.0.77", 40001), "127.0.0.77:40001"),
                           (v2("127.0.0.78", 40002), "127.0.0.78:40002")):
        with _proxied(gw, header) as c:
            assert c.greeting().code == 220
            c.auth_tls()
            c.expect(f"USER {TEST_USER}", 331)
            c.expect(f"PASS {TEST_PASS}", 230)
        gw.wait_log(lambda: gw.events("login", client=client, result="success"), f"login logged for {client}")
        assert gw.events("session_start", client=client)


def test_a_listener_that_requires_the_header_refuses_connections_without_it(gateway_factory):
    gw, mport = _proxy_gateway(gateway_factory, limits={"handshake_timeout": "1s"})
    before = metric(scrape_metrics(mport), "ftpsgate_policy_denials_total", reason="proxy_protocol") or 0
    with Ctrl(gw.explicit_port) as c:  # a plain FTP client talks first: not a header
        c.send_raw(b"USER anonymous\r\n")
        data, closed = c.read_until_closed(5)
        assert closed and data == b"", "closed without a greeting"
    with Ctrl(gw.explicit_port) as c:  # a client that waits for the greeting gets none
        data, closed = c.read_until_closed(5)
        assert closed and data == b""
    with Ctrl(gw.implicit_port) as c:  # a TLS ClientHello is not a header either
        c.send_raw(b"\x16\x03\x01\x00\xc8\x01\x00\x00\xc4\x03\x03" + b"\x00" * 32)
        data, closed = c.read_until_closed(5)
        assert closed and data == b""
    after = metric(scrape_metrics(mport), "ftpsgate_policy_denials_total", reason="proxy_protocol")
    assert after - before >= 3
    # The harness's own start-up probes were refused the same way; a proxied client still works.
    with _proxied(gw, v1("127.0.0.79", 40003)) as c:
        assert c.greeting().code == 220


def test_the_proxied_address_picks_the_class_and_the_per_ip_limit(gateway_factory):
    gw, _ = _proxy_gateway(
        gateway_factory,
        classes=[klass("lan", "off", **{"from": ["127.0.0.77/32"]}), klass("default", "on")],
        limits={"max_sessions_per_ip": 1})
    with _proxied(gw, v1("127.0.0.77", 40010)) as lan:
        assert lan.greeting().code == 220
        assert lan.cmd(f"USER {TEST_USER}").code == 331, "class lan allows a clear login"
        with _proxied(gw, v1("127.0.0.77", 40011)) as second:
            assert second.greeting().code == 421, "max_sessions_per_ip counts the proxied address"
        with _proxied(gw, v1("127.0.0.88", 40012)) as other:
            assert other.greeting().code == 220
            assert other.cmd(f"USER {TEST_USER}").code == 550, "class default requires TLS"


def _pasv_port(c: Ctrl) -> int:
    r = c.expect("PASV", 227)
    nums = [int(x) for x in r.last.split("(")[1].split(")")[0].split(",")]
    assert nums[:4] == [127, 0, 0, 1]
    return nums[4] * 256 + nums[5]


def test_data_connections_are_checked_against_the_proxied_source(gateway_factory, backend):
    backend.put("proxy-data.txt", b"x" * 1000)
    gw, _ = _proxy_gateway(gateway_factory,
                           classes=[klass("default", "off")])
    with _proxied(gw, v1("127.0.0.77", 40020)) as c:
        c.greeting()
        c.expect(f"USER {TEST_USER}", 331)
        c.expect(f"PASS {TEST_PASS}", 230)
        c.expect("TYPE I", 200)
        # The header names the client's real address: accepted.
        port = _pasv_port(c)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as data:
            data.sendall(v2("127.0.0.77", 40021, dport=port))
            c.send("RETR proxy-data.txt")
            assert c.reply().code == 150
            received = b""
            while chunk := data.recv(65536):
                received += chunk
        assert received == b"x" * 1000
        assert c.reply().code == 226
        # Another address in the header: data-port theft, refused.
        port = _pasv_port(c)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as data:
            data.sendall(v1("127.0.0.99", 40022, dport=port))
            c.send("RETR proxy-data.txt")
            _, r = c.final_reply()  # a 150 first when the refusal comes after RETR
            assert r.code == 425 and "foreign address" in r.text
        # No header at all on the passive port: refused, the session goes on.
        port = _pasv_port(c)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as data:
            data.sendall(b"garbage that is not a header\r\n")
            c.send("RETR proxy-data.txt")
            _, r = c.final_reply()  # a 150 first when the refusal comes after RETR
            assert r.code == 425 and "PROXY" in r.text
        assert c.cmd("NOOP").code == 200
