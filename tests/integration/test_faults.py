"""Fault injection (issue 5, robustness items 3 and 4): every fault ends only the session
it hits, answers the client within a bound instead of hanging, and leaks nothing: the
gateway's open descriptor count (/proc/PID/fd) returns to its baseline within seconds and
a fresh session still moves bytes correctly.

Not repeated here (see test_robustness.py, test_limits.py, test_control.py,
test_policy.py, test_ftplib.py, test_backend_pool.py): a garbage data-channel handshake,
425 after data_connect_timeout with a later transfer, 421 for max_sessions with three
sessions, login/idle/handshake timeouts of single silent clients, plain ABOR during RETR
through ftplib, 421 when every backend server refuses connections.
"""
from __future__ import annotations

import random
import selectors
import socket
import ssl
import threading
import time

import pytest

import harness
from clients import metrics_up
from faults_util import (BioTls, FakeBackend, add_backend_listener, assert_alive, assert_fds_back_to,
                         backend_sessions, clear_retr, client_hello, descendants, fresh_roundtrip, kill_pids,
                         login_prot_p, metric_sum, ready_chunks, rss_kib, quiet_health, resumed_retr, rst_close,
                         scrape, warm_up)
from harness import ConnectionClosed, Ctrl, Vsftpd

pytestmark = pytest.mark.backend

BIG = 32 << 20  # large enough that a transfer is still running when the fault hits

@pytest.fixture(scope="module")
def big_data():
    return random.Random(5).randbytes(BIG)


@pytest.fixture
def own_backend(workdir, request):
    """A vsftpd of this test alone (it may be killed; its session processes are counted)."""
    b = Vsftpd(workdir / "faults" / f"vsftpd-{request.node.name}"[:80].replace("[", "-").replace("]", ""),
               pasv_ports=20)
    b.start()
    b.mkdir("d")
    yield b
    b.stop()
    kill_pids([p for p in descendants(b.proc.pid)] if b.proc and b.proc.poll() is None else [])


def start_gw(gateway_factory, overrides: dict | None = None, edit=None, metrics: bool = False):
    """A gateway with health checks only at start (they would show in fd counts)."""
    mport = harness.PORTS.port() if metrics else None

    def _edit(cfg):
        if metrics:
            cfg["metrics"] = {"address": f"127.0.0.1:{mport}"}
        if edit is not None:
            edit(cfg)
        quiet_health(cfg)

    gw = gateway_factory(overrides, edit=_edit)
    if metrics:
        harness.wait_until(lambda: metrics_up(mport), 10, "metrics endpoint")
    return gw, mport


def point_at(cfg, backend_port: int) -> None:
    cfg["backends"][0]["servers"] = [f"127.0.0.1:{backend_port}"]


def wait_backend_idle(vsftpd, timeout: float = 10.0) -> None:
    harness.wait_until(lambda: not backend_sessions(vsftpd), timeout, "backend session processes gone",
                       context=lambda: f"still running: {backend_sessions(vsftpd)}")


def open_transfer(c: Ctrl, command: str) -> ssl.SSLSocket:
    """EPSV, connect, send `command` (RETR/STOR ...), expect 150, then TLS resuming the control session."""
    port, _ = c.epsv()
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    c.send(command)
    r = c.reply()
    assert r.code == 150, r.text
    return c.ctx.wrap_socket(raw, server_hostname="localhost", session=c.session())


def open_retr(c: Ctrl, name: str) -> ssl.SSLSocket:
    return open_transfer(c, f"RETR {name}")


def open_stor(c: Ctrl, name: str) -> ssl.SSLSocket:
    return open_transfer(c, f"STOR {name}")


def read_at_least(sock, count: int, timeout: float = 10.0) -> int:
    sock.settimeout(timeout)
    got = 0
    while got < count:
        chunk = sock.recv(1 << 16)
        assert chunk, f"data ended after {got} bytes"
        got += len(chunk)
    return got


def drain_until_closed(sock, timeout: float) -> tuple[int, bool]:
    """Reads until EOF or error; returns (bytes, ended?). Bounded by timeout."""
    deadline = time.monotonic() + timeout
    got = 0
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            chunk = sock.recv(1 << 18)
        except socket.timeout:
            return got, False
        except (OSError, ssl.SSLError):
            return got, True
        if not chunk:
            return got, True
        got += len(chunk)
    return got, False


def transfer_records(gw, command: str) -> list[dict]:
    return [r for r in gw.events("transfer") if r.get("command") == command]


# =========================================================================== backend faults

@pytest.mark.time_limit(60)
@pytest.mark.parametrize("what", [("session_process"),
                                  ("whole_server")])
def test_backend_killed_mid_download(gateway_factory, backend, remote_dir, own_backend, big_data, what):
    """SIGKILL of the backend (its session processes, or the server and its sessions) while a
    download runs: the client hears from the gateway within seconds, the gateway's other
    sessions (on another backend) go on, nothing leaks."""
    own_backend.put("d/big.bin", big_data)
    other_port = {}

    def edit(cfg):
        point_at(cfg, own_backend.port)
        other_port["p"] = add_backend_listener(cfg, "other", "shared", [f"127.0.0.1:{backend.port}"])

    gw, _ = start_gw(gateway_factory, edit=edit)
    other = other_port["p"]
    fresh_roundtrip(other, backend, remote_dir, tag="warm-other")
    baseline = warm_up(gw, own_backend, "d")
    wait_backend_idle(own_backend)

    bystander = login_prot_p(other)
    bystander.expect(f"CWD {remote_dir}", 250)
    c = login_prot_p(gw.explicit_port)
    c.expect("CWD d", 250)
    data = open_retr(c, "big.bin")
    read_at_least(data, 1 << 20)
    victims = backend_sessions(own_backend)
    assert victims, "no backend session process to kill"
    killed_at = time.monotonic()
    if what == "whole_server":
        own_backend.proc.kill()
        own_backend.proc.wait(5)
    kill_pids(victims)

    got, ended = drain_until_closed(data, 15)
    assert ended, "the client's data connection neither ended nor failed 15s after the backend died"
    try:
        _, final = c.final_reply(timeout=10)
        code, text = final.code, final.text
    except ConnectionClosed:
        code, text = None, "<closed without a reply>"
    elapsed = time.monotonic() - killed_at
    assert code in (421, 426, 451), f"control reply after the backend died: {text!r}"
    assert elapsed < 5, f"the reply took {elapsed:.1f}s"
    if code == 421:
        _, closed = c.read_until_closed(5)
        assert closed, "421 must close the control connection"
    c.close()
    data.close()
    assert got + (1 << 20) < BIG, "the whole file arrived although the backend was killed"
    gw.wait_log(lambda: [r for r in gw.events("backend_error")], "a backend_error record")

    # The gateway's other session, on the other backend, did not notice.
    assert bystander.cmd("NOOP").code == 200
    backend.put(f"{remote_dir}/b.bin", big_data[:3 << 20])
    assert harness.sha256_bytes(resumed_retr(bystander, "b.bin")) == harness.sha256_bytes(big_data[:3 << 20])
    bystander.cmd("QUIT")
    bystander.close()
    fresh_roundtrip(other, backend, remote_dir)
    if what == "session_process":
        fresh_roundtrip(gw.explicit_port, own_backend, "d")  # the same server, a new session
    else:
        started = time.monotonic()
        with Ctrl(gw.explicit_port) as again:
            again.greeting()
            again.auth_tls()
            r = again.cmd("USER " + harness.TEST_USER, timeout=10)
            assert r.code == 421 and "backend unreachable" in r.text, r.text
        assert time.monotonic() - started < 5
    assert_fds_back_to(gw, baseline, what="the backend died")
    assert_alive(gw)
    recs = [r for r in transfer_records(gw, "RETR") if r.get("path") == "big.bin"]
    assert len(recs) == 1 and recs[0].get("result") == "failed" and recs[0].get("bytes", BIG) < BIG, (
        f"expected one failed transfer record for the download the backend's death cut short: {recs}")


@pytest.mark.time_limit(60)
def test_backend_sending_a_2_mib_reply_line_is_cut_off(gateway_factory, backend, remote_dir):
    fake = FakeBackend("huge_reply").start()
    ports = {}
    try:
        gw, _ = start_gw(gateway_factory, edit=lambda cfg: ports.setdefault(
            "evil", add_backend_listener(cfg, "evil", "fake", [f"127.0.0.1:{fake.port}"])))
        baseline = warm_up(gw, backend, remote_dir)
        rss_before = rss_kib(gw.proc.pid)
        bystander = login_prot_p(gw.explicit_port)
        bystander.expect(f"CWD {remote_dir}", 250)

        with Ctrl(ports["evil"]) as c:
            c.greeting()
            c.auth_tls()
            started = time.monotonic()
            r = c.cmd("USER someone", timeout=10)
            assert r.code == 421, r.text
            assert len(r.text) < 1000, "the over-long line must not be relayed"
            _, closed = c.read_until_closed(5)
            assert closed
            assert time.monotonic() - started < 5
        gw.wait_log(lambda: [e for e in gw.events("backend_error") if "long" in str(e.get("error", ""))],
                    "backend_error naming the over-long reply line")
        assert fake.users_seen == 1
        assert bystander.cmd("NOOP").code == 200
        bystander.cmd("QUIT")
        bystander.close()
        fresh_roundtrip(gw.explicit_port, backend, remote_dir)
        assert_fds_back_to(gw, baseline, what="the over-long reply")
        rss_after = rss_kib(gw.proc.pid)
        assert rss_after - rss_before < 16 * 1024, f"RSS grew {rss_before} -> {rss_after} KiB"
        assert_alive(gw)
    finally:
        fake.stop()


def test_backend_that_never_greets_gives_421_within_connect_timeout(gateway_factory, backend, remote_dir):
    """The backend passed its health check, then hangs: it accepts TCP and never greets."""
    fake = FakeBackend("silent", greet_first=1).start()
    ports = {}
    try:
        gw, _ = start_gw(gateway_factory, edit=lambda cfg: ports.setdefault(
            "mute", add_backend_listener(cfg, "mute", "mute", [f"127.0.0.1:{fake.port}"],
                                         connect_timeout="2s")))
        baseline = warm_up(gw, backend, remote_dir)
        with Ctrl(ports["mute"]) as c:
            c.greeting()
            c.auth_tls()
            started = time.monotonic()
            r = c.cmd(f"USER {harness.TEST_USER}", timeout=10)
            elapsed = time.monotonic() - started
            assert r.code == 421 and "backend unreachable" in r.text, r.text
            assert 1.5 <= elapsed <= 4.5, elapsed
            _, closed = c.read_until_closed(5)
            assert closed
        gw.wait_log(lambda: [e for e in gw.events("backend_error") if "timeout" in str(e.get("error", ""))],
                    "backend_error with a greeting timeout")
        fresh_roundtrip(gw.explicit_port, backend, remote_dir)
        assert_fds_back_to(gw, baseline, what="the silent backend")
    finally:
        fake.stop()


# =========================================================================== client faults

@pytest.mark.time_limit(60)
@pytest.mark.parametrize("direction,order", [
    ("download", "data_first"),
    ("download", "control_first"),
    ("upload", "data_first"),
    ("upload", "control_first")])
def test_client_vanishes_mid_transfer(gateway_factory, own_backend, big_data, direction, order):
    """Control and data connection reset (SO_LINGER 0) in the middle of a transfer, in either
    order: the gateway logs the failed transfer, ends the backend session, frees everything."""
    own_backend.put("d/big.bin", big_data)
    gw, _ = start_gw(gateway_factory, edit=lambda cfg: point_at(cfg, own_backend.port))
    baseline = warm_up(gw, own_backend, "d")
    wait_backend_idle(own_backend)
    ends_before = len(gw.events("session_end"))

    c = login_prot_p(gw.explicit_port)
    c.expect("CWD d", 250)
    if direction == "download":
        data = open_retr(c, "big.bin")
        read_at_least(data, 1 << 20)
    else:
        data = open_stor(c, "up.bin")
        data.sendall(big_data[:2 << 20])
    assert backend_sessions(own_backend)
    if order == "data_first":
        rst_close(data)
        rst_close(c.sock)
    else:
        rst_close(c.sock)
        time.sleep(0.2)
        rst_close(data)
    vanished = time.monotonic()

    gw.wait_log(lambda: len(gw.events("session_end")) > ends_before, "session_end of the vanished client")
    wait_backend_idle(own_backend)
    assert time.monotonic() - vanished < 10
    command = "RETR" if direction == "download" else "STOR"
    recs = [r for r in transfer_records(gw, command) if r.get("path") in ("big.bin", "up.bin")]
    fresh_roundtrip(gw.explicit_port, own_backend, "d")
    assert_fds_back_to(gw, baseline, what="the client vanished")
    assert_alive(gw)
    assert len(recs) == 1 and recs[0].get("result") == "failed", (
        f"expected one failed {command} transfer record, got {recs}")


@pytest.mark.time_limit(60)
@pytest.mark.parametrize("direction", ["download", "upload"])
def test_data_connection_reset_fails_the_transfer_and_control_goes_on(
        gateway_factory, backend, remote_dir, big_data, direction):
    """Only the data connection is reset mid-transfer: the control connection must say the
    transfer failed (426/451), not 226, and stay usable."""
    backend.put(f"{remote_dir}/big.bin", big_data)
    gw, _ = start_gw(gateway_factory)
    baseline = warm_up(gw, backend, remote_dir)
    with login_prot_p(gw.explicit_port) as c:
        c.expect(f"CWD {remote_dir}", 250)
        if direction == "download":
            data = open_retr(c, "big.bin")
            read_at_least(data, 1 << 20)
        else:
            data = open_stor(c, "up.bin")
            data.sendall(big_data[:2 << 20])
        rst_close(data)
        _, final = c.final_reply(timeout=10)
        stored = (backend.root / remote_dir / "up.bin").stat().st_size if direction == "upload" else None
        assert c.cmd("PWD").code == 257
        assert harness.sha256_bytes(resumed_retr(c, "big.bin")) == harness.sha256_bytes(big_data)
        c.cmd("QUIT")
    assert_fds_back_to(gw, baseline, what="the data connection reset")
    command = "RETR" if direction == "download" else "STOR"
    recs = [r for r in transfer_records(gw, command) if r.get("path") in ("big.bin", "up.bin")]
    assert final.code in (426, 451), (
        f"{direction} whose data connection was reset answered {final.text!r}"
        + (f" (backend file now {stored} bytes)" if stored is not None else ""))
    assert recs and recs[0].get("result") == "failed", recs


# =========================================================================== ABOR

IAC_IP_DM = b"\xff\xf4\xff\xf2"  # telnet Interrupt Process, then Synch (IAC DM), RFC 959 §4.1.3


def send_abort(c: Ctrl, how: str) -> None:
    if how == "plain":
        c.send_raw(b"ABOR\r\n")
    elif how == "iac":
        c.send_raw(IAC_IP_DM + b"ABOR\r\n")
    elif how == "iac-urgent":  # clear control channel: IAC IP, then IAC DM with DM as TCP urgent data
        c.sock.sendall(b"\xff\xf4\xff")
        c.sock.send(b"\xf2", socket.MSG_OOB)
        c.sock.sendall(b"ABOR\r\n")
    else:
        raise ValueError(how)


def abort_replies(c: Ctrl) -> list[int]:
    """Replies after ABOR: the aborted transfer's (426/226/451), then ABOR's own (225/226)."""
    codes = []
    for _ in range(3):
        r = c.reply(timeout=10)
        codes.append(r.code)
        if r.code in (225, 226) and len(codes) >= 2:
            break
    return codes


@pytest.mark.time_limit(60)
@pytest.mark.parametrize("command,how", [
    ("RETR", "iac"), ("RETR", "iac-urgent"),
    ("STOR", "iac"),
    ("STOR", "plain"),
    ("STOR", "iac-urgent")])
def test_abor_during_transfer(gateway_factory, backend, remote_dir, big_data, command, how):
    backend.put(f"{remote_dir}/big.bin", big_data)
    clear = how == "iac-urgent"
    overrides = {"classes": [harness.klass("default", "off")]} if clear else None
    gw, _ = start_gw(gateway_factory, overrides)
    baseline = warm_up(gw, backend, remote_dir)

    c = Ctrl(gw.explicit_port)
    c.greeting()
    if not clear:
        c.auth_tls()
    c.login()
    if not clear:
        c.expect("PBSZ 0", 200)
        c.expect("PROT P", 200)
    c.expect("TYPE I", 200)
    c.expect(f"CWD {remote_dir}", 250)
    port, _ = c.epsv()
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    c.send(f"{command} {'big.bin' if command == 'RETR' else 'up.bin'}")
    assert c.reply().code == 150
    data = raw if clear else c.ctx.wrap_socket(raw, server_hostname="localhost", session=c.session())
    if command == "RETR":
        read_at_least(data, 1 << 20)  # then stop reading: the transfer stalls in flow control
    else:
        data.sendall(big_data[:1 << 20])  # then stop writing, connection left open
    time.sleep(0.3)
    send_abort(c, how)
    codes = abort_replies(c)
    data.close()
    assert len(codes) == 2 and codes[1] in (225, 226), f"replies after ABOR: {codes}"
    # The session is in step and usable: the next command gets its own reply, a transfer works.
    assert c.cmd("PWD").code == 257
    if clear:
        c.expect("PROT C", 503)  # no AUTH: PROT is refused, i.e. the reply is for this command
        got = clear_retr(c, "big.bin")
    else:
        got = resumed_retr(c, "big.bin")
    assert harness.sha256_bytes(got) == harness.sha256_bytes(big_data)
    c.cmd("QUIT")
    c.close()
    gw.wait_log(lambda: gw.events("abort"), "an abort record")
    assert_fds_back_to(gw, baseline, what="ABOR")
    # The transfer was cut short: its own reply must say so (426), not 226 Transfer complete.
    assert codes[0] in (426, 451), f"replies after ABOR during {command}: {codes}"


# =========================================================================== data connection setup

def test_unconnected_passive_port_is_released_after_data_connect_timeout(gateway_factory, backend, remote_dir):
    """One passive port only: a client that is given it and never connects gets 425 after
    data_connect_timeout, and the port is free again for the next PASV (of this or another
    session), whether or not a transfer command was pending."""
    port = harness.PORTS.port()
    gw, _ = start_gw(gateway_factory, {"limits": {"data_connect_timeout": "2s"},
                                       "passive": {"ports": f"{port}-{port}"}})
    baseline = warm_up(gw, backend, remote_dir)
    backend.put(f"{remote_dir}/m.bin", b"m" * 100_000)
    with login_prot_p(gw.explicit_port) as a, login_prot_p(gw.explicit_port) as b:
        a.expect(f"CWD {remote_dir}", 250)
        b.expect(f"CWD {remote_dir}", 250)
        # 1. No transfer command: the port is taken, then released at the timeout.
        assert a.epsv()[0] == port
        r = b.cmd("EPSV")
        assert r.code == 425 and "no free passive port" in r.text, r.text
        time.sleep(2.8)
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        assert b.epsv()[0] == port, "the timed-out port was not released"
        # 2. With RETR pending: 425 at the timeout, then the port serves a real transfer.
        started = time.monotonic()
        b.send("RETR m.bin")
        _, final = b.final_reply(timeout=10)
        assert final.last.startswith("425 "), final.text
        assert 1.0 <= time.monotonic() - started <= 6
        # A's earlier refusal is reported on its next transfer command, then A goes on.
        r = a.cmd("RETR m.bin")
        assert r.code == 425, r.text
        assert resumed_retr(a, "m.bin") == b"m" * 100_000
        assert resumed_retr(b, "m.bin") == b"m" * 100_000
        a.cmd("QUIT")
        b.cmd("QUIT")
    assert_fds_back_to(gw, baseline, what="the unconnected passive port")


# =========================================================================== slow and broken clients

@pytest.mark.time_limit(60)
def test_slowloris_control_connections_are_cut_and_others_served(gateway_factory, backend, remote_dir):
    """60 connections dribbling one byte a second, never completing a line (40) or a TLS
    handshake (10 implicit, 10 after AUTH TLS): closed by login_timeout/handshake_timeout,
    while a normal client logs in and transfers meanwhile."""
    gw, _ = start_gw(gateway_factory, {"limits": {"login_timeout": "3s", "handshake_timeout": "2s",
                                                  "max_sessions_per_ip": 500}})
    baseline = warm_up(gw, backend, remote_dir)
    hello = client_hello()
    sel = selectors.DefaultSelector()
    conns = []  # [sock, kind, payload, sent, opened, closed_at, received]
    for i in range(40):
        s = socket.create_connection(("127.0.0.1", gw.explicit_port), timeout=5)
        conns.append([s, "line", b"USER " + b"x" * 100, 0, time.monotonic(), None, b""])
    for i in range(10):
        s = socket.create_connection(("127.0.0.1", gw.implicit_port), timeout=5)
        conns.append([s, "implicit", hello, 0, time.monotonic(), None, b""])
    for i in range(10):
        with_auth = Ctrl(gw.explicit_port)
        with_auth.greeting()
        assert with_auth.cmd("AUTH TLS").code == 234
        conns.append([with_auth.sock, "auth", hello, 0, time.monotonic(), None, b""])
    for entry in conns:
        entry[0].setblocking(False)
        sel.register(entry[0], selectors.EVENT_READ, entry)

    normal_result: list = []

    def normal_client():
        try:
            time.sleep(0.5)
            fresh_roundtrip(gw.explicit_port, backend, remote_dir, size=2 << 20)
            normal_result.append("ok")
        except Exception as e:  # noqa: BLE001 - reported below
            normal_result.append(f"{type(e).__name__}: {e}")

    t = threading.Thread(target=normal_client, daemon=True)
    t.start()
    deadline = time.monotonic() + 12
    next_tick = time.monotonic()
    while time.monotonic() < deadline and any(e[5] is None for e in conns):
        now = time.monotonic()
        if now >= next_tick:
            for e in conns:
                if e[5] is None and e[3] < len(e[2]) - 1:  # never the last byte
                    try:
                        e[0].send(e[2][e[3]:e[3] + 1])
                        e[3] += 1
                    except OSError:
                        pass
            next_tick = now + 1.0
        for e, chunk in ready_chunks(sel, 0.1):
            if chunk:
                e[6] += chunk
            else:
                e[5] = time.monotonic()
                sel.unregister(e[0])
    t.join(20)
    still_open = [e[1] for e in conns if e[5] is None]
    for e in conns:
        e[0].close()
    assert not still_open, f"{len(still_open)} slow connections still open after 12s: {still_open}"
    lifetimes = {kind: [e[5] - e[4] for e in conns if e[1] == kind] for kind in ("line", "implicit", "auth")}
    assert max(lifetimes["line"]) <= 3 + 2.5 and min(lifetimes["line"]) >= 2.5, lifetimes["line"]
    assert all(b"421" in e[6] for e in conns if e[1] == "line"), "login_timeout closes with 421"
    assert max(lifetimes["implicit"] + lifetimes["auth"]) <= 2 + 2.5, lifetimes
    assert normal_result == ["ok"], normal_result
    denials = [r for r in gw.events("policy_denial") if r.get("reason") == "login_timeout"]
    assert len(denials) >= 40
    timeouts = [r for r in gw.events("tls_handshake") if r.get("result") == "timeout"]
    assert len(timeouts) >= 20, len(timeouts)
    assert_fds_back_to(gw, baseline, what="slowloris")
    assert_alive(gw)


def _garbage_payloads(rng: random.Random, hello: bytes, count: int) -> list[tuple[str, bytes]]:
    out = []
    for i in range(count):
        kind = i % 4
        if kind == 0:  # random bytes
            out.append(("random", rng.randbytes(rng.randint(1, 3000))))
        elif kind == 1:  # random bytes that look like a handshake record header
            out.append(("record", b"\x16\x03\x01" + rng.randbytes(rng.randint(2, 600))))
        elif kind == 2:  # a real ClientHello cut short
            out.append(("truncated", hello[:rng.randint(1, len(hello) - 1)]))
        else:  # a real ClientHello with some bytes flipped
            mutated = bytearray(hello)
            for _ in range(rng.randint(1, 8)):
                mutated[rng.randrange(5, len(mutated))] ^= 1 << rng.randrange(8)
            out.append(("mutated", bytes(mutated)))
    return out


@pytest.mark.time_limit(90)
def test_garbage_and_truncated_client_hellos_are_counted_failures(gateway_factory, backend, remote_dir):
    gw, mport = start_gw(gateway_factory, metrics=True)
    baseline = warm_up(gw, backend, remote_dir)
    rng = random.Random(20240505)
    hello = client_hello()
    before = scrape(mport)
    sent = 0
    for listener in ("implicit", "explicit"):
        for kind, payload in _garbage_payloads(rng, hello, 48):
            if listener == "implicit":
                s = socket.create_connection(("127.0.0.1", gw.implicit_port), timeout=10)
            else:
                c = Ctrl(gw.explicit_port)
                c.greeting()
                assert c.cmd("AUTH TLS").code == 234
                s = c.sock
            try:
                s.sendall(payload)
                s.shutdown(socket.SHUT_WR)
            except OSError:
                pass  # the gateway may already have given up on us
            s.settimeout(10)
            ended = False
            for _ in range(1000):
                try:
                    if not s.recv(65536):
                        ended = True
                        break
                except socket.timeout:
                    break
                except OSError:
                    ended = True
                    break
            s.close()
            assert ended, f"{listener}: the gateway kept a {kind} handshake ({len(payload)} bytes) open"
            sent += 1
    assert_alive(gw)
    after = scrape(mport)
    failed = (metric_sum(after, "ftpsgate_tls_handshakes_total", channel="control", result="failure")
              - metric_sum(before, "ftpsgate_tls_handshakes_total", channel="control", result="failure"))
    timed_out = (metric_sum(after, "ftpsgate_tls_handshakes_total", channel="control", result="timeout")
                 - metric_sum(before, "ftpsgate_tls_handshakes_total", channel="control", result="timeout"))
    succeeded = (metric_sum(after, "ftpsgate_tls_handshakes_total", channel="control", result="success")
                 - metric_sum(before, "ftpsgate_tls_handshakes_total", channel="control", result="success"))
    assert failed + timed_out == sent and succeeded == 0, (failed, timed_out, succeeded, sent)
    fresh_roundtrip(gw.explicit_port, backend, remote_dir)
    fresh_roundtrip(gw.implicit_port, backend, remote_dir, implicit=True)
    assert_fds_back_to(gw, baseline, what="garbage handshakes")


# =========================================================================== TLS mid-stream on data

FATAL_ALERT = b"\x15\x03\x03\x00\x02\x02\x28"  # alert record, fatal handshake_failure, in clear


@pytest.mark.time_limit(60)
@pytest.mark.parametrize("version", ["TLSv1.2", "TLSv1.3"])
@pytest.mark.parametrize("direction,inject", [
    ("download", "alert"), ("download", "close_notify"),
    ("upload", "alert"), ("upload", "close_notify")])
def test_tls_alert_or_close_notify_mid_data_stream(gateway_factory, backend, remote_dir, big_data,
                                                   direction, inject, version):
    """A raw fatal alert record (or a close_notify) in the middle of a protected data stream,
    then the client closes the connection as TLS demands. A broken download or an
    alert-broken upload fails cleanly (426/451); a close_notify ends an upload as a clean end
    of data (the bytes so far are the file); the control session goes on either way."""
    backend.put(f"{remote_dir}/big.bin", big_data)
    gw, _ = start_gw(gateway_factory)
    baseline = warm_up(gw, backend, remote_dir)
    v = {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}[version]
    ctx = harness.client_tls_context(min_version=v, max_version=v)
    clean_end = direction == "upload" and inject == "close_notify"
    with Ctrl(gw.explicit_port, ctx=ctx) as c:
        c.greeting()
        c.auth_tls()
        c.login()
        for line, code in (("PBSZ 0", 200), ("PROT P", 200), ("TYPE I", 200), (f"CWD {remote_dir}", 250)):
            c.expect(line, code)
        port, _ = c.epsv()
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        c.send("RETR big.bin" if direction == "download" else "STOR up.bin")
        assert c.reply().code == 150
        tls = BioTls(raw, ctx, session=c.session())
        tls.handshake()
        assert tls.session_reused
        sent = 0
        if direction == "download":
            got = 0
            while got < (1 << 20):
                chunk = tls.read_some()
                assert chunk, "download ended early"
                got += len(chunk)
        else:
            tls.write(big_data[:1 << 20])
            sent = 1 << 20
        if inject == "alert":
            tls.send_raw(FATAL_ALERT)
        else:
            tls.send_close_notify()
        if clean_end:
            drain_until_closed(raw, 10)  # the gateway's own close_notify and FIN
        else:
            time.sleep(0.5)
        tls.close()
        started = time.monotonic()
        _, final = c.final_reply(timeout=15)
        answered_in = time.monotonic() - started
        stored = (backend.root / remote_dir / "up.bin").read_bytes() if direction == "upload" else None
        assert c.cmd("PWD").code == 257
        assert harness.sha256_bytes(resumed_retr(c, "big.bin")) == harness.sha256_bytes(big_data)
        c.cmd("QUIT")
    assert_fds_back_to(gw, baseline, what=f"{inject} mid-{direction}")
    assert answered_in < 5, answered_in
    if clean_end:
        assert final.code == 226, final.text
        assert stored == big_data[:sent]
        return
    command = "RETR" if direction == "download" else "STOR"
    recs = [r for r in transfer_records(gw, command) if r.get("path") in ("big.bin", "up.bin")]
    assert recs and recs[0].get("result") == "failed", recs
    assert final.code in (426, 451), (
        f"{direction} broken by {inject}: {final.text!r}"
        + (f" (backend stored {len(stored)} bytes)" if stored is not None else ""))


# =========================================================================== connection burst

@pytest.mark.time_limit(90)
def test_burst_of_1000_connections_beyond_max_sessions(gateway_factory, backend, remote_dir):
    gw, mport = start_gw(gateway_factory, {"limits": {"max_sessions": 50, "max_sessions_per_ip": 5000}},
                         metrics=True)
    baseline = warm_up(gw, backend, remote_dir)
    before = scrape(mport)
    sel = selectors.DefaultSelector()
    conns = []  # [sock, opened, first_line_at, data]
    started = time.monotonic()
    for _ in range(1000):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", gw.explicit_port))
        entry = [s, time.monotonic(), None, b""]
        conns.append(entry)
        sel.register(s, selectors.EVENT_READ, entry)
    opened = time.monotonic() - started
    deadline = time.monotonic() + 30
    pending = len(conns)
    while pending and time.monotonic() < deadline:
        for e, chunk in ready_chunks(sel, 0.2):
            e[3] += chunk
            if b"\n" in e[3] or not chunk:
                e[2] = time.monotonic()
                sel.unregister(e[0])
                pending -= 1
    # While 50 sessions are held, the gateway still answers its metrics endpoint promptly.
    t0 = time.monotonic()
    during = scrape(mport)
    responsive = time.monotonic() - t0
    greeted = [e for e in conns if e[3].startswith(b"220")]
    refused = [e for e in conns if e[3].startswith(b"421 Too many sessions")]
    other = [e[3][:60] for e in conns if not (e[3].startswith(b"220") or e[3].startswith(b"421"))]
    waits = sorted(e[2] - e[1] for e in refused if e[2] is not None)
    for e in conns:
        e[0].close()
    assert not other, f"{len(other)} connections got neither 220 nor 421: {other[:5]}"
    assert len(greeted) == 50 and len(refused) == 950, (len(greeted), len(refused), pending)
    assert waits[len(waits) * 99 // 100] < 5, f"slow 421s: p99 {waits[len(waits) * 99 // 100]:.2f}s"
    assert responsive < 2, f"metrics took {responsive:.2f}s during the burst"
    denied = (metric_sum(during, "ftpsgate_policy_denials_total", reason="max_sessions")
              - metric_sum(before, "ftpsgate_policy_denials_total", reason="max_sessions"))
    assert denied == 950, denied
    assert opened < 20
    harness.wait_until(lambda: metric_sum(scrape(mport), "ftpsgate_sessions_active") == 0, 15,
                       "sessions_active back to 0")
    fresh_roundtrip(gw.explicit_port, backend, remote_dir)
    assert_fds_back_to(gw, baseline, what="the burst")
    assert_alive(gw)
