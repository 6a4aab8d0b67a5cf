"""Prometheus counters (SPEC §4) move by exact deltas for one scripted session.

Scrape, run one ftplib FTP_TLS session (AUTH TLS, login, PROT P, a refused PROT C, one
RETR and one STOR of known sizes, QUIT), scrape again: every counter the session touches
moved by exactly what it did, and nothing else moved.
"""
from __future__ import annotations

import ftplib
import io
import os
import re
import socket

import pytest

import harness
from clients import ReusingFTP_TLS, connect, download, metrics_up, scrape_metrics

pytestmark = pytest.mark.ops

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text: str) -> list[tuple[str, dict, float]]:
    """(name, labels, value) of every sample of the Prometheus text format."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        assert m, f"unparsable metrics line {line!r}"
        labels = dict(_LABEL.findall(m.group(2) or ""))
        out.append((m.group(1), labels, float(m.group(3))))
    return out


def total(samples, name: str, **labels) -> float:
    """Sum of the samples of `name` whose labels include `labels` (exact values); 0 if none."""
    return sum(v for n, ls, v in samples if n == name and all(ls.get(k) == w for k, w in labels.items()))


def series(samples, name: str) -> dict[tuple, float]:
    return {tuple(sorted(ls.items())): v for n, ls, v in samples if n == name}


def deltas(before, after, name: str) -> dict[tuple, float]:
    """Per label set: after - before, only the series that moved."""
    b, a = series(before, name), series(after, name)
    out = {}
    for key in set(a) | set(b):
        d = a.get(key, 0.0) - b.get(key, 0.0)
        if d != 0:
            out[key] = d
    return out


def key(**labels) -> tuple:
    return tuple(sorted(labels.items()))


def quiet(gw, mport: int) -> None:
    """The endpoint answers and the harness's start-up probes (connect and close on each
    listener, ended on a worker thread) are over, so they do not land in a delta.

    sessions_active == 0 alone was a race: a probe that a worker had not started yet also
    reads 0, and its end (on the implicit listener a handshake that got no byte) then
    landed between the two scrapes. Gateway.start() made exactly one successful connection
    per listener; each session's end is logged after all its counters moved."""
    harness.wait_until(lambda: metrics_up(mport), 10, "metrics endpoint")
    probes = len(gw.config["listeners"])
    gw.wait_log(lambda: len(gw.events("session_end")) >= probes,
                f"the {probes} start-up probe sessions ended", timeout=10)
    harness.wait_until(lambda: total(parse(scrape_metrics(mport)), "ftpsgate_sessions_active") == 0, 10,
                       "no session open before the scripted one")


def test_one_session_moves_each_counter_by_its_exact_delta(gateway_factory, backend, remote_dir):
    down_size = 3 * 1024 * 1024 + 4321   # distinct sizes so a swapped direction shows
    up_size = 1024 * 1024 + 77
    down_data, up_data = os.urandom(down_size), os.urandom(up_size)
    backend.put(f"{remote_dir}/down.bin", down_data)

    mport = harness.PORTS.port()
    gw = gateway_factory({"metrics": {"address": f"127.0.0.1:{mport}"}})
    quiet(gw, mport)
    before = parse(scrape_metrics(mport))
    active_before = total(before, "ftpsgate_sessions_active", listener="explicit")

    ftp = connect(gw, cls=ReusingFTP_TLS)  # AUTH TLS, login, PBSZ 0, PROT P
    version = ftp.sock.version()
    try:
        during = parse(scrape_metrics(mport))
        assert total(during, "ftpsgate_sessions_active", listener="explicit") == active_before + 1

        try:
            ftp.voidcmd("PROT C")
            raise AssertionError("PROT C accepted on a class with tls_required: on")
        except ftplib.error_perm as e:
            assert str(e).startswith("534"), e

        got = download(ftp, f"{remote_dir}/down.bin")
        assert ftp.last_data_reused is True
        assert harness.sha256_bytes(got) == harness.sha256_bytes(down_data)

        ftp.storbinary(f"STOR {remote_dir}/up.bin", io.BytesIO(up_data))
        assert ftp.last_data_reused is True
        assert (backend.root / remote_dir / "up.bin").read_bytes() == up_data
    finally:
        ftp.quit()

    # sessions_active goes back down once the session has ended (asynchronous after 221).
    harness.wait_until(
        lambda: total(parse(scrape_metrics(mport)), "ftpsgate_sessions_active", listener="explicit")
        == active_before, 10, "sessions_active back to its value before the session", context=gw.tail)
    after = parse(scrape_metrics(mport))
    everything = {n for n, _, _ in before + after}

    def moved(name):
        return deltas(before, after, name)

    assert moved("ftpsgate_sessions_total") == {key(listener="explicit", **{"class": "default"}): 1}, \
        moved("ftpsgate_sessions_total")
    assert moved("ftpsgate_sessions_active") == {}, moved("ftpsgate_sessions_active")
    assert moved("ftpsgate_tls_handshakes_total") == {
        key(channel="control", version=version, result="success"): 1,
        key(channel="data", version=version, result="success"): 2,
    }, moved("ftpsgate_tls_handshakes_total")
    assert moved("ftpsgate_data_connections_total") == {
        key(direction="download", protection="private"): 1,
        key(direction="upload", protection="private"): 1,
    }, moved("ftpsgate_data_connections_total")
    assert moved("ftpsgate_transfer_bytes_total") == {
        key(direction="download"): down_size,
        key(direction="upload"): up_size,
    }, moved("ftpsgate_transfer_bytes_total")
    assert moved("ftpsgate_policy_denials_total") == {key(reason="data_not_protected"): 1}, \
        moved("ftpsgate_policy_denials_total")
    # One backend connection, no failures, no reloads.
    assert moved("ftpsgate_backend_connect_failures_total") == {}, moved("ftpsgate_backend_connect_failures_total")
    assert moved("ftpsgate_config_reloads_total") == {}, moved("ftpsgate_config_reloads_total")
    assert "ftpsgate_backend_connect_seconds_count" in everything, sorted(everything)
    assert moved("ftpsgate_backend_connect_seconds_count") == {(): 1}, moved("ftpsgate_backend_connect_seconds_count")

    # The log agrees with the counters.
    transfers = gw.events("transfer")
    assert sorted((r["command"], r["bytes"]) for r in transfers) == [("RETR", down_size), ("STOR", up_size)], transfers


def test_refused_data_connection_counts_a_denial_and_no_transfer(gateway_factory, backend, remote_dir):
    """A stock ftplib data connection (no session reuse) is refused with 425: one data
    handshake (it completes, then the binding check refuses it), one
    policy_denials_total{reason="session_reuse_required"}, no data connection and no
    bytes counted."""
    backend.put(f"{remote_dir}/small.bin", os.urandom(100_000))
    mport = harness.PORTS.port()
    gw = gateway_factory({"metrics": {"address": f"127.0.0.1:{mport}"}})
    quiet(gw, mport)
    before = parse(scrape_metrics(mport))
    ftp = connect(gw)  # stock FTP_TLS: fresh handshake on the data connection
    try:
        try:
            download(ftp, f"{remote_dir}/small.bin")
            raise AssertionError("a non-resuming data connection was accepted")
        except ftplib.error_temp as e:
            assert str(e).startswith("425"), e
        assert ftp.voidcmd("NOOP").startswith("200")  # the control session goes on
    finally:
        ftp.quit()
    harness.wait_until(
        lambda: total(parse(scrape_metrics(mport)), "ftpsgate_sessions_active") == 0, 10,
        "the session to end", context=gw.tail)
    after = parse(scrape_metrics(mport))
    assert deltas(before, after, "ftpsgate_policy_denials_total") == {key(reason="session_reuse_required"): 1}, \
        deltas(before, after, "ftpsgate_policy_denials_total")
    assert deltas(before, after, "ftpsgate_data_connections_total") == {}
    assert deltas(before, after, "ftpsgate_transfer_bytes_total") == {}
    # The data handshake itself completes (the binding is checked after it).
    assert deltas(before, after, "ftpsgate_tls_handshakes_total") == {
        key(channel="control", version="TLSv1.3", result="success"): 1,
        key(channel="data", version="TLSv1.3", result="success"): 1,
    }, deltas(before, after, "ftpsgate_tls_handshakes_total")
    assert gw.find(harness.NO_REUSE_MESSAGE), "the refusal is not logged"


def test_a_connection_that_sends_no_byte_is_no_failed_handshake(gateway_factory, backend):
    """Load-balancer and Kubernetes tcpSocket probes connect and close without a byte: that
    is tls_handshakes_total{result="no_data"} (logged at debug), not a failed handshake
    that would feed FtpsgateHandshakeFailuresHigh. One byte of garbage still is a failure."""
    mport = harness.PORTS.port()
    gw = gateway_factory({"metrics": {"address": f"127.0.0.1:{mport}"}})
    quiet(gw, mport)
    before = parse(scrape_metrics(mport))
    ends = len(gw.events("session_end"))
    for _ in range(3):
        socket.create_connection(("127.0.0.1", gw.implicit_port), timeout=5).close()
    with socket.create_connection(("127.0.0.1", gw.implicit_port), timeout=5) as s:
        s.sendall(b"\x00")
        s.shutdown(socket.SHUT_WR)
        s.settimeout(5)
        while s.recv(100):  # a TLS alert, then the gateway ends the connection
            pass
    gw.wait_log(lambda: len(gw.events("session_end")) >= ends + 4, "the 4 connections ended")
    after = parse(scrape_metrics(mport))
    assert deltas(before, after, "ftpsgate_tls_handshakes_total") == {
        key(channel="control", version="unknown", result="no_data"): 3,
        key(channel="control", version="unknown", result="failure"): 1,
    }, deltas(before, after, "ftpsgate_tls_handshakes_total")
    results = [(r.get("level"), r.get("result")) for r in gw.events("tls_handshake") if r.get("channel") == "control"]
    assert results.count(("debug", "no_data")) == 4, results  # 3 here, 1 start-up probe
    assert results.count(("info", "failure")) == 1, results
