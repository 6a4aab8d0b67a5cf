"""Helpers for the fault-injection and soak tests (test_faults.py, test_soak.py); the data
transfers of a raw control session (resumed_retr, protected_download, clear_retr) also for
test_active.py and test_not_data.py.

Resource accounting of the gateway process (/proc/PID/fd, VmRSS), the backend's session
processes, raw-TLS data connections driven through memory BIOs (so a test can send a
close_notify or a raw alert record in the middle of a stream), and tiny misbehaving FTP
"servers" on loopback. Every loop is bounded; only processes we started are signalled.
"""
from __future__ import annotations

import os
import random
import signal
import socket
import ssl
import threading
import time
from pathlib import Path

import harness
from clients import scrape_metrics
from harness import Ctrl, HarnessError, wait_until


# --------------------------------------------------------------------------- /proc accounting

def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def fd_targets(pid: int) -> list[str]:
    out = []
    for name in sorted(os.listdir(f"/proc/{pid}/fd"), key=int):
        try:
            out.append(f"{name} -> {os.readlink(f'/proc/{pid}/fd/{name}')}")
        except OSError:
            pass
    return out


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise HarnessError(f"no VmRSS for {pid}")


def stable_fd_count(gw, settle: float = 0.5, timeout: float = 10.0) -> int:
    """The gateway's fd count once it has stopped changing for `settle` seconds."""
    deadline = time.monotonic() + timeout
    last = fd_count(gw.proc.pid)
    since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = fd_count(gw.proc.pid)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= settle:
            return now
    return last


def assert_fds_back_to(gw, baseline: int, timeout: float = 10.0, what: str = "") -> float:
    """Waits until the gateway holds exactly `baseline` descriptors again; returns the time taken."""
    start = time.monotonic()
    pid = gw.proc.pid
    wait_until(lambda: fd_count(pid) == baseline, timeout,
               f"gateway fd count back to baseline {baseline}{' after ' + what if what else ''}",
               context=lambda: f"now {fd_count(pid)}:\n" + "\n".join(fd_targets(pid)) + "\n" + gw.tail(30))
    return time.monotonic() - start


def assert_alive(gw) -> None:
    code = gw.proc.poll()
    assert code is None, f"the gateway exited with {code}\n{gw.tail()}"


def children(pid: int) -> list[int]:
    """Direct children of pid (from /proc/*/stat)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # comm may contain spaces: the fields after the last ')' are fixed.
        fields = stat.rsplit(")", 1)[1].split()
        if fields and int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(entry))
    return out


def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    for _ in range(10000):
        if not todo:
            break
        p = todo.pop()
        kids = children(p)
        out.extend(kids)
        todo.extend(kids)
    return out


def backend_sessions(vsftpd) -> list[int]:
    """Live session processes of a vsftpd we started (it forks one or two per session)."""
    if vsftpd.proc is None or vsftpd.proc.poll() is not None:
        return []
    return descendants(vsftpd.proc.pid)


def kill_pids(pids: list[int]) -> None:
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


# --------------------------------------------------------------------------- metrics

def metric_sum(text: str, name: str, **labels) -> float:
    """Sum of every sample of `name` carrying all `labels` (0 when none)."""
    total = 0.0
    for line in text.splitlines():
        if not (line.startswith(name + "{") or line.startswith(name + " ")):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def scrape(mport: int) -> str:
    return scrape_metrics(mport)


# --------------------------------------------------------------------------- sessions

def login_prot_p(port: int, implicit: bool = False, timeout: float = 10.0) -> Ctrl:
    c = Ctrl(port, implicit=implicit, timeout=timeout)
    c.greeting()
    if not implicit:
        c.auth_tls()
    c.login()
    c.expect("PBSZ 0", 200)
    c.expect("PROT P", 200)
    c.expect("TYPE I", 200)
    return c


def protected_download(c: Ctrl, sock: socket.socket) -> bytes:
    """After the 150: TLS on the data connection `sock` (passive or active) resuming the
    control session, read to EOF and closed; then the 226."""
    with sock:
        d = c.ctx.wrap_socket(sock, server_hostname="localhost", session=c.session())
        data = harness.recv_all(d, 15)
        harness.close_tls(d)
    _, final = c.final_reply()
    assert final.code == 226, final.text
    return data


def resumed_retr(c: Ctrl, name: str) -> bytes:
    port, _ = c.epsv()
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    c.send(f"RETR {name}")
    r = c.reply()
    assert r.code == 150, r.text
    return protected_download(c, raw)


def clear_retr(c: Ctrl, name: str) -> bytes:
    """RETR over a clear (PROT C) passive data connection."""
    port, _ = c.epsv()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as d:
        c.send(f"RETR {name}")
        assert c.reply().code == 150
        data = harness.recv_all(d, 15)
    _, final = c.final_reply()
    assert final.code == 226, final.text
    return data


def resumed_stor(c: Ctrl, name: str, data: bytes) -> None:
    port, _ = c.epsv()
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    c.send(f"STOR {name}")
    r = c.reply()
    assert r.code == 150, r.text
    d = c.ctx.wrap_socket(raw, server_hostname="localhost", session=c.session())
    d.sendall(data)
    harness.close_tls(d)
    _, final = c.final_reply(timeout=15)
    assert final.code == 226, final.text


def fresh_roundtrip(port: int, backend, remote_dir: str, size: int = 300_000, implicit: bool = False,
                    tag: str = "fresh") -> None:
    """A new session uploads and downloads a random file; every byte checked."""
    data = random.randbytes(size)
    name = f"{tag}-{os.getpid()}-{time.monotonic_ns()}.bin"
    with login_prot_p(port, implicit=implicit) as c:
        c.expect(f"CWD {remote_dir}", 250)
        resumed_stor(c, name, data)
        assert harness.sha256_file(backend.root / remote_dir / name) == harness.sha256_bytes(data)
        assert harness.sha256_bytes(resumed_retr(c, name)) == harness.sha256_bytes(data)
        c.cmd("QUIT")


def wait_first_health_checks(gw, timeout: float = 10.0) -> None:
    """Every configured server has had its first health check (a check in flight holds a socket)."""
    servers = {(b["name"], s) for b in gw.config["backends"] for s in b["servers"]}
    gw.wait_log(lambda: servers <= {(e.get("backend"), e.get("server")) for e in gw.events("backend_health")},
                f"first health check of {sorted(servers)}", timeout=timeout)


def warm_up(gw, backend, remote_dir: str) -> int:
    """One full session (so lazily opened descriptors exist), then the settled fd count."""
    wait_first_health_checks(gw)
    fresh_roundtrip(gw.explicit_port, backend, remote_dir, size=10_000, tag="warm")
    gw.wait_log(lambda: gw.events("session_end"), "the warm-up session's session_end")
    return stable_fd_count(gw)


def ready_chunks(sel, timeout: float):
    """One select() of `sel` (non-blocking sockets, registered with their entry as data):
    (entry, chunk) for each socket ready to read, chunk b"" at EOF or on a socket error; a
    socket that turns out to have nothing yet is left out."""
    for key, _ in sel.select(timeout=timeout):
        try:
            chunk = key.fileobj.recv(4096)
        except (BlockingIOError, InterruptedError):
            continue
        except OSError:
            chunk = b""
        yield key.data, chunk


# --------------------------------------------------------------------------- TLS through memory BIOs

class BioTls:
    """A TLS client on a plain socket through memory BIOs: the test decides what goes on
    the wire, so it can inject a close_notify or a raw record mid-stream."""

    def __init__(self, sock: socket.socket, ctx: ssl.SSLContext, session=None, timeout: float = 10.0):
        self.sock = sock
        self.timeout = timeout
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.incoming, self.outgoing, server_hostname="localhost", session=session)
        self.eof = False

    def _flush(self) -> None:
        data = self.outgoing.read()
        if data:
            self.sock.sendall(data)

    def _feed(self, timeout: float) -> bool:
        self.sock.settimeout(timeout)
        try:
            chunk = self.sock.recv(1 << 18)
        except socket.timeout:
            return False
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        if not chunk:
            self.incoming.write_eof()
            self.eof = True
            return False
        self.incoming.write(chunk)
        return True

    def handshake(self) -> None:
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                self.obj.do_handshake()
                self._flush()
                return
            except ssl.SSLWantReadError:
                self._flush()
                if time.monotonic() > deadline:
                    raise HarnessError("data TLS handshake timed out")
                self._feed(max(0.05, deadline - time.monotonic()))
                if self.eof:
                    raise HarnessError("data connection closed during the handshake")

    @property
    def session_reused(self) -> bool:
        return self.obj.session_reused

    def read_some(self, limit: int = 1 << 18, timeout: float = 10.0) -> bytes:
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.obj.read(limit)
            except ssl.SSLWantReadError:
                self._flush()
                if self.eof or time.monotonic() > deadline:
                    return b""
                self._feed(max(0.05, deadline - time.monotonic()))
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return b""

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = self.obj.write(view[:1 << 16])
            view = view[n:]
            self._flush()

    def send_close_notify(self) -> None:
        try:
            self.obj.unwrap()
        except ssl.SSLError:
            # SSLWantReadError, or application data still arriving after our close_notify
            # (a download): the close_notify itself is in the outgoing BIO either way.
            pass
        self._flush()

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def client_hello(ctx: ssl.SSLContext | None = None) -> bytes:
    """The bytes of a real ClientHello (as this Python/OpenSSL would send it)."""
    ctx = ctx or harness.client_tls_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def rst_close(sock: socket.socket) -> None:
    """Closes with SO_LINGER 0: the kernel sends RST, no FIN."""
    try:
        raw = sock
        if isinstance(sock, ssl.SSLSocket):
            raw = socket.socket(fileno=os.dup(sock.fileno()))
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            sock.close()
            raw.close()
            return
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        raw.close()
    except OSError:
        pass


# --------------------------------------------------------------------------- misbehaving backends

class LoopbackServer:
    """A TCP server on a fresh loopback port; each accepted connection runs
    handle(conn, number) in its own thread. stop() closes the listener and every accepted
    connection and waits for the threads."""

    def __init__(self, backlog: int = 16):
        self.port = harness.PORTS.port()
        self.listener = socket.create_server(("127.0.0.1", self.port), backlog=backlog)
        self.listener.settimeout(0.2)
        self.stop_flag = threading.Event()
        self.accepted = 0
        self.conns: list[socket.socket] = []
        self.threads: list[threading.Thread] = []
        self.thread = threading.Thread(target=self._accept_loop, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def _accept_loop(self) -> None:
        while not self.stop_flag.is_set():
            try:
                conn, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.conns.append(conn)
            self.accepted += 1
            t = threading.Thread(target=self.handle, args=(conn, self.accepted), daemon=True)
            self.threads.append(t)
            t.start()

    def handle(self, conn: socket.socket, number: int) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        self.stop_flag.set()
        try:
            self.listener.close()
        except OSError:
            pass
        self.thread.join(5)
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass
        for t in self.threads:
            t.join(5)


class FakeBackend(LoopbackServer):
    """A tiny FTP 'server' on loopback with one misbehaviour:

    silent      accepts TCP and never says anything (after greeting the first `greet_first`
                connections, e.g. the gateway's health check: a server that hangs later);
    huge_reply  greets 220, then answers USER with one reply line of `huge` bytes.
    """

    def __init__(self, behaviour: str, huge: int = 2 << 20, greet_first: int = 0):
        assert behaviour in ("silent", "huge_reply")
        super().__init__(backlog=64)
        self.behaviour, self.huge, self.greet_first = behaviour, huge, greet_first
        self.users_seen = 0
        self.huge_sent = 0
        self.errors: list[str] = []

    def handle(self, conn: socket.socket, number: int) -> None:
        try:
            if self.behaviour == "silent":
                if number <= self.greet_first:
                    conn.sendall(b"220 fake backend\r\n")
                self.stop_flag.wait(120)
                return
            conn.settimeout(10)
            conn.sendall(b"220 fake backend\r\n")
            buf = b""
            deadline = time.monotonic() + 30
            while b"\n" not in buf and time.monotonic() < deadline and not self.stop_flag.is_set():
                chunk = conn.recv(4096)
                if not chunk:
                    return
                buf += chunk
            if buf.upper().startswith(b"USER"):
                self.users_seen += 1
                line = b"331 " + b"A" * (self.huge - 6) + b"\r\n"
                view = memoryview(line)
                while view and not self.stop_flag.is_set():
                    n = conn.send(view[:65536])
                    self.huge_sent += n
                    view = view[n:]
            self.stop_flag.wait(30)
        except OSError as e:  # the gateway hanging up on us is the expected outcome
            self.errors.append(f"{type(e).__name__}: {e}")
        finally:
            try:
                conn.close()
            except OSError:
                pass


# --------------------------------------------------------------------------- config helpers

def add_backend_listener(cfg: dict, listener: str, backend: str, servers: list[str],
                         connect_timeout: str = "3s", mode: str = "explicit") -> int:
    """Adds a backend pool and a listener routed to it; returns the listener's port."""
    port = harness.PORTS.port()
    cfg["backends"].append({"name": backend, "servers": servers, "connect_timeout": connect_timeout,
                            "health_check": {"interval": "300s", "timeout": "2s"}})
    cfg["listeners"].append({"name": listener, "address": f"127.0.0.1:{port}", "mode": mode,
                             "backend": backend})
    return port


QUIET_HEALTH = {"interval": "300s", "timeout": "2s"}


def quiet_health(cfg: dict) -> None:
    """Health checks once at start only, so they never show up in an fd count."""
    for b in cfg["backends"]:
        b.setdefault("health_check", dict(QUIET_HEALTH))
