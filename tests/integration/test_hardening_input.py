"""Control-channel input hardening: bounded buffering both ways (a client that pipelines
without reading, pipelining behind a slow backend, a backend flooding replies), telnet IAC
in relayed commands and in USER, and reverse STARTTLS injection from an FTPS backend.

The RSS tests measure the gateway's VmRSS (/proc/PID/status) before and after the abuse,
with a threshold far below what an unbounded gateway reaches (170-200 MiB) and far
above what a bounded one needs (a few MiB); every abusive stream is capped in size.
"""
from __future__ import annotations

import socket
import ssl
import threading
import time

import pytest

import harness
from faults_util import LoopbackServer, assert_alive, quiet_health, rss_kib
from harness import Ctrl, klass

pytestmark = pytest.mark.control

MIB = 1 << 20
RSS_GROWTH_LIMIT_KIB = 16 * 1024  # bounded: < 1 MiB seen; unbounded: 170-200 MiB seen


# --------------------------------------------------------------------------- helpers

class ScriptedBackend(LoopbackServer):
    """A tiny FTP server on loopback; each connection runs serve(backend, conn) in a thread.

    The gateway's health checks connect too: serve() must cope with a peer that reads the
    greeting and closes."""

    def __init__(self, serve):
        super().__init__()
        self.serve = serve
        self.release = threading.Event()  # for backends that hold a reply back
        self.received = b""               # every command byte received, all connections
        self.sent = 0
        self.start()

    def handle(self, conn: socket.socket, number: int) -> None:
        try:
            conn.settimeout(20)
            self.serve(self, conn)
        except (OSError, ssl.SSLError):
            pass  # the gateway hanging up is an expected outcome
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def lines(self, conn):
        """Yields command lines (bytes, without CRLF) until EOF or stop."""
        buf = b""
        while not self.stop_flag.is_set():
            while b"\n" in buf:
                line, _, buf = buf.partition(b"\n")
                yield line.rstrip(b"\r")
            chunk = conn.recv(65536)
            if not chunk:
                return
            self.received += chunk
            buf += chunk

    def stop(self) -> None:
        self.release.set()
        super().stop()


def gateway_for(gateway_factory, fake: ScriptedBackend, tls_required: str = "off", **backend_keys):
    """A gateway whose listeners all go to `fake` (health checks only at start)."""
    def edit(cfg):
        cfg["backends"] = [{"name": "vsftpd", "servers": [f"127.0.0.1:{fake.port}"],
                            "connect_timeout": "3s", **backend_keys}]
        cfg["classes"] = [klass("default", tls_required)]
        quiet_health(cfg)
    return gateway_factory(edit=edit)


def sanitized(pid: int) -> bool:
    """ASan's quarantine keeps freed memory: RSS says nothing about buffering then."""
    maps = open(f"/proc/{pid}/maps").read()
    return "libasan" in maps or "libtsan" in maps


def assert_rss_growth_bounded(pid: int, before: int, after: int, what: str) -> None:
    if sanitized(pid):
        return
    assert after - before < RSS_GROWTH_LIMIT_KIB, f"RSS grew {before} -> {after} KiB {what}"


def wait_sessions_ended(gw) -> None:
    """Every session logged its end (so none is cut at shutdown by drain_timeout)."""
    def ended():
        started = {e["session"] for e in gw.events("session_start")}
        return started <= {e["session"] for e in gw.events("session_end")}
    gw.wait_log(ended, "every session ended", timeout=15)


def settled_rss(pid: int, settle: float = 0.5, timeout: float = 5.0) -> int:
    """VmRSS once it stopped changing by more than 256 KiB for `settle` seconds."""
    deadline = time.monotonic() + timeout
    last = rss_kib(pid)
    since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = rss_kib(pid)
        if abs(now - last) > 256:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= settle:
            return now
    return last


class Pump:
    """Sends `payload` and collects replies on one socket (plain or TLS) from one thread,
    without blocking: a client that pipelines a lot and reads what comes back."""

    CHUNK = 16 * 1024

    def __init__(self, sock, payload: bytes):
        self.sock, self.payload = sock, payload
        self.offset = 0
        self.received = b""
        sock.setblocking(False)

    @property
    def all_sent(self) -> bool:
        return self.offset >= len(self.payload)

    def run(self, until, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not until() and time.monotonic() < deadline:
            progress = False
            if not self.all_sent:
                # A TLS write that would block is retried with the same bytes.
                try:
                    self.offset += self.sock.send(self.payload[self.offset:self.offset + self.CHUNK])
                    progress = True
                except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
                    pass
            try:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise harness.ConnectionClosed(f"closed after {len(self.received)} reply bytes")
                self.received += chunk
                progress = True
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                pass
            if not progress:
                time.sleep(0.005)


def send_capped(sock, block: bytes, limit: int, seconds: float) -> int:
    """Sends `block` repeatedly, never reading, until `limit` bytes went out, `seconds`
    passed or a send blocked for a second (the gateway stopped reading). Returns bytes sent."""
    sent = 0
    deadline = time.monotonic() + seconds
    sock.settimeout(1.0)
    try:
        while sent < limit and time.monotonic() < deadline:
            sock.sendall(block)
            sent += len(block)
    except (socket.timeout, ssl.SSLError, OSError):
        pass
    return sent


# --------------------------------------------------------------------------- item 2: replies nobody reads

@pytest.mark.time_limit(90)
def test_pipelined_feat_and_noop_without_reading_keep_rss_bounded(gateway_factory):
    """FEAT/NOOP before login are answered by the gateway itself; clients that pipeline
    them and never read (clear and implicit TLS) must not grow the gateway."""
    gw = gateway_factory({"logging": {"level": "info"}})  # no debug line per command
    pid = gw.proc.pid
    with Ctrl(gw.explicit_port) as warm:  # first-use allocations before the baseline
        warm.greeting()
        assert warm.cmd("FEAT").code == 211
    rss_before = settled_rss(pid)

    conns = []
    try:
        for implicit, verb in ((False, "FEAT"), (True, "FEAT"), (False, "NOOP"), (True, "NOOP")):
            c = Ctrl(gw.implicit_port if implicit else gw.explicit_port, implicit=implicit)
            conns.append((c, verb))
            c.greeting()
        flood_and_check(gw, pid, rss_before, conns)
    finally:
        for c, _ in conns:
            c.close()
    wait_sessions_ended(gw)


def flood_and_check(gw, pid: int, rss_before: int, conns: list) -> None:
    sent: dict[int, int] = {}

    def flood(i: int, c: Ctrl, verb: str) -> None:
        block = f"{verb}\r\n".encode() * (64 * 1024 // (len(verb) + 2))
        sent[i] = send_capped(c.sock, block, 6 * MIB, 8.0)

    threads = [threading.Thread(target=flood, args=(i, c, v), daemon=True) for i, (c, v) in enumerate(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not [t for t in threads if t.is_alive()]
    assert_rss_growth_bounded(pid, rss_before, settled_rss(pid), f"with replies nobody reads (sent {sent})")
    assert_alive(gw)

    # Other sessions are served meanwhile, and a flooding client that starts reading gets
    # its replies in order.
    with Ctrl(gw.explicit_port) as other:
        other.greeting()
        assert other.cmd("NOOP").code == 200
    for c, verb in conns:
        c.sock.settimeout(10)
        for _ in range(20):
            r = c.reply(timeout=10)
            assert r.code == (211 if verb == "FEAT" else 200), r.text


@pytest.mark.time_limit(90)
def test_backend_flooding_replies_to_a_client_that_does_not_read_keeps_rss_bounded(gateway_factory):
    flood_total = 128 * MIB
    line = b"200 flood\r\n"
    block = line * (MIB // len(line))

    def serve(fake, conn):
        conn.sendall(b"220 fake backend\r\n")
        for cmd in fake.lines(conn):
            if cmd.upper().startswith(b"USER"):
                conn.sendall(b"331 password please\r\n")
                conn.settimeout(2.0)
                try:
                    while fake.sent < flood_total and not fake.stop_flag.is_set():
                        conn.sendall(block)
                        fake.sent += len(block)
                except socket.timeout:
                    pass  # the gateway stopped reading us
                flood_over.set()
                fake.stop_flag.wait(30)
                return

    flood_over = threading.Event()
    fake = ScriptedBackend(serve)
    try:
        gw = gateway_for(gateway_factory, fake)
        pid = gw.proc.pid
        with Ctrl(gw.explicit_port) as warm:
            warm.greeting()
            warm.cmd("FEAT")
        rss_before = settled_rss(pid)
        with Ctrl(gw.explicit_port) as c:
            c.greeting()
            c.send("USER someone")  # and never read
            # The flood runs until it is all sent or a send blocked for 2 s.
            harness.wait_until(flood_over.is_set, 30, "the backend's flood to end or block")
            assert_rss_growth_bounded(pid, rss_before, settled_rss(pid),
                                      f"relaying {fake.sent >> 20} MiB of replies to a client that does not read")
            assert fake.sent < flood_total, "the gateway never stopped reading the flooding backend"
            # Reading again resumes the relay, replies intact and in order.
            assert c.reply(timeout=10).code == 331
            for _ in range(50_000):
                r = c.reply(timeout=10)
                assert r.lines == ["200 flood"], r.text
        assert_alive(gw)
        wait_sessions_ended(gw)
    finally:
        fake.stop()


# --------------------------------------------------------------------------- item 3: pipelining behind a slow backend

@pytest.mark.time_limit(90)
def test_lines_pipelined_behind_a_slow_backend_are_bounded_and_all_answered(gateway_factory):
    """USER (accepted by policy) goes to a backend that is slow to answer; 256 KiB of NOOP
    pipelined behind it over TLS must wait in the socket, not in the gateway, and every
    one of them is answered once the backend replies."""
    def serve(fake, conn):
        conn.sendall(b"220 slow backend\r\n")
        for cmd in fake.lines(conn):
            if cmd.upper().startswith(b"USER"):
                fake.release.wait(60)
                conn.sendall(b"331 password please\r\n")
            elif cmd.upper().startswith(b"QUIT"):
                conn.sendall(b"221 bye\r\n")
                return

    fake = ScriptedBackend(serve)
    try:
        gw = gateway_for(gateway_factory, fake, tls_required="on")
        pid = gw.proc.pid
        with Ctrl(gw.explicit_port) as warm:
            warm.greeting()
            warm.auth_tls()
            assert warm.cmd("NOOP").code == 200
        rss_before = settled_rss(pid)

        # 256 KiB in full 16 KiB TLS records (Pump.CHUNK): the last one is read partly
        # (the read watermark) and its rest waits inside OpenSSL, not in the socket.
        user_line = b"USER slowpoke1\r\n"
        count = (256 * 1024 - len(user_line)) // len(b"NOOP\r\n")
        payload = user_line + b"NOOP\r\n" * count
        assert len(payload) == 256 * 1024
        with Ctrl(gw.explicit_port) as c:
            c.greeting()
            c.auth_tls()
            pump = Pump(c.sock, payload)
            pump.run(until=lambda: pump.all_sent, seconds=4)  # unbounded: swallowed at once
            assert_rss_growth_bounded(pid, rss_before, settled_rss(pid),
                                      f"queueing {count} pipelined NOOPs behind an unanswered USER "
                                      f"({pump.offset} bytes sent)")
            assert_alive(gw)

            fake.release.set()
            pump.run(until=lambda: pump.received.count(b"\n") >= 1 + count, seconds=60)
            replies = pump.received.split(b"\r\n")
            assert replies[0].startswith(b"331 "), replies[0]
            assert len(replies) == count + 2 and replies[-1] == b"", (len(replies), replies[-3:])
            bad = [r for r in replies[1:-1] if not r.startswith(b"200 ")]
            assert not bad, bad[:5]
            c.sock.setblocking(True)
            assert c.cmd("QUIT").code == 221
        wait_sessions_ended(gw)
    finally:
        fake.stop()


# --------------------------------------------------------------------------- item 8: telnet IAC

def test_user_names_with_iac_or_control_bytes_are_refused(gateway_factory, backend, backend_log):
    """'USER ftp<IAC IAC IP>user': decoded once by the gateway (a name without a per-user
    entry) and once more by a backend that speaks telnet (a name with one) — refused."""
    user = harness.TEST_USER  # "ftpsgate-t": its entry requires TLS
    gw = gateway_factory(edit=lambda cfg: cfg.update(classes=[klass(
        "default", "off", allow_per_user=True, users={user: {"tls_required": "on"}})]))
    head, tail = user[:3].encode(), user[3:].encode()
    with Ctrl(gw.explicit_port) as c:
        c.greeting()
        # The per-user rule is active: the plain name in clear is refused.
        assert c.cmd(f"USER {user}").code != 331
        for name in (head + b"\xff\xff\xf4" + tail, head + b"\xff\xff" + tail, head + b"\x01" + tail,
                     head + b"\x7f" + tail, head + b"\t" + tail):
            c.send_raw(b"USER " + name + b"\r\n")
            r = c.reply()
            assert r.code == 501, (name, r.text)
        assert c.cmd("NOOP").code == 200
    assert not [x for x in backend.commands_since(backend_log) if x.startswith("USER")], \
        "a USER reached the backend"
    gw.wait_log(lambda: len(gw.events("policy_denial", reason="bad_user_name")) >= 5,
                "five bad_user_name denials")


def test_0xff_in_relayed_arguments_goes_upstream_as_iac_iac(gateway_factory):
    def serve(fake, conn):
        conn.sendall(b"220 recording backend\r\n")
        for cmd in fake.lines(conn):
            verb = cmd.split(b" ")[0].upper()
            if verb == b"USER":
                conn.sendall(b"331 password please\r\n")
            elif verb == b"PASS":
                conn.sendall(b"230 logged in\r\n")
            elif verb == b"QUIT":
                conn.sendall(b"221 bye\r\n")
                return
            else:
                conn.sendall(b"250 ok\r\n")

    fake = ScriptedBackend(serve)
    try:
        gw = gateway_for(gateway_factory, fake)
        with Ctrl(gw.explicit_port) as c:
            c.greeting()
            assert c.cmd("USER someone").code == 331
            assert c.cmd("PASS secret").code == 230
            # The client escapes its 0xFF data byte (RFC 854), as the backend expects too.
            c.send_raw(b"CWD d\xff\xffir\r\n")
            assert c.reply().code == 250
            c.send_raw(b"MKD \xff\xff\xff\xff\r\n")
            assert c.reply().code == 250
            assert c.cmd("QUIT").code == 221
        assert b"CWD d\xff\xffir\r\n" in fake.received, fake.received
        assert b"MKD \xff\xff\xff\xff\r\n" in fake.received, fake.received
    finally:
        fake.stop()


# --------------------------------------------------------------------------- item 9: reverse STARTTLS injection

def test_plaintext_after_an_ftps_backends_234_fails_the_backend(gateway_factory, certs):
    """backends[].tls explicit: a backend (or a man in the middle) that puts a reply behind
    its 234 in the same segment must not shift every later reply by one."""
    def serve(fake, conn):
        conn.sendall(b"220 ftps backend\r\n")
        tls = None
        lines = fake.lines(conn)
        for cmd in lines:
            verb = cmd.split(b" ")[0].upper()
            if verb == b"AUTH":
                conn.sendall(b"234 go ahead\r\n200 injected\r\n")  # one segment
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                ctx.load_cert_chain(str(certs.cert), str(certs.key))
                tls = ctx.wrap_socket(conn, server_side=True)
                break
        if tls is None:
            return
        for cmd in fake.lines(tls):
            verb = cmd.split(b" ")[0].upper()
            reply = {b"PBSZ": b"200 PBSZ=0", b"PROT": b"200 PROT P", b"USER": b"331 password please",
                     b"PASS": b"230 logged in", b"QUIT": b"221 bye"}.get(verb, b"250 ok")
            tls.sendall(reply + b"\r\n")
            if verb == b"QUIT":
                return

    fake = ScriptedBackend(serve)
    try:
        gw = gateway_for(gateway_factory, fake, tls_required="on", tls="explicit", tls_ca=str(certs.cert))
        with Ctrl(gw.explicit_port) as c:
            c.greeting()
            c.auth_tls()
            started = time.monotonic()
            r = c.cmd("USER someone", timeout=10)
            assert r.code == 421, f"expected 421 (backend failed), got {r.text!r}"
            data, closed = c.read_until_closed(5)
            assert closed
            assert b"injected" not in data
            assert time.monotonic() - started < 2.5, "failed at once, not by a timeout"
        gw.wait_log(lambda: [e for e in gw.events("backend_error") if "234" in str(e.get("error", ""))],
                    "backend_error naming the plaintext after 234")
        assert b"USER" not in fake.received
    finally:
        fake.stop()
