"""Client helpers shared by the test modules: curl, and ftplib.FTP_TLS variants."""
from __future__ import annotations

import ftplib
import io
import socket
import threading
import time
import urllib.error
import urllib.request
import ssl

import harness
from harness import TEST_PASS, TEST_USER

TLS_VERSIONS = {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}


class ReusingFTP_TLS(ftplib.FTP_TLS):
    """FTP_TLS that resumes the control connection's TLS session on data connections."""

    session_override = None  # a session to offer instead of our own (for the theft test)
    last_data_reused = None

    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            session = self.session_override or self.sock.session
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=session)
            self.last_data_reused = conn.session_reused
        return conn, size


def connect(gw, version: str | None = None, cls=ftplib.FTP_TLS, ctx=None, timeout=15,
            user: str = TEST_USER, password: str = TEST_PASS):
    if ctx is None:
        ctx = harness.client_tls_context(
            max_version=TLS_VERSIONS[version] if version else None)
        if version:
            ctx.minimum_version = TLS_VERSIONS[version]
    ftp = cls(context=ctx, timeout=timeout)
    ftp.connect("127.0.0.1", gw.explicit_port)
    ftp.auth()
    ftp.login(user, password)
    ftp.prot_p()
    return ftp


def download(ftp, name: str) -> bytes:
    buf = io.BytesIO()
    ftp.retrbinary(f"RETR {name}", buf.write)
    return buf.getvalue()


CURL_TIMEOUT = 150
# curl counts the whole FTP login (TCP, TLS, greeting, USER/PASS, PBSZ/PROT) as its connect
# phase; with 100 TLS logins at once under ASan that can take well over 10 s on 2 cores.
CURL_CONNECT_TIMEOUT = "60"


def curl(certs, *args: str, timeout: float = CURL_TIMEOUT):
    """curl verifying the gateway's certificate (IP SAN 127.0.0.1) with the test CA."""
    cmd = ["curl", "-sS", "-v", "--connect-timeout", CURL_CONNECT_TIMEOUT, "--max-time", str(int(timeout - 10)),
           "--cacert", str(certs.cert), "-u", f"{TEST_USER}:{TEST_PASS}", *args]
    return harness.run(cmd, timeout=timeout)


def check_curl(proc, gw, what: str):
    assert proc.returncode == 0, (
        f"curl {what} failed with exit code {proc.returncode}\n"
        f"curl stderr tail:\n{harness._tail_bytes(proc.stderr, 3000)}\n{gw.tail()}")


class NoDelayFTP_TLS(ReusingFTP_TLS):
    """ReusingFTP_TLS with TCP_NODELAY on the control and data connections, as curl sets it: without it
    the last short TLS record of each file waits for the receiver's delayed ACK (Nagle), ~40 ms a file
    on loopback, whatever the gateway does."""

    def connect(self, *args, **kwargs):
        reply = super().connect(*args, **kwargs)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return reply

    def ntransfercmd(self, cmd, rest=None):
        conn, size = super().ntransfercmd(cmd, rest)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn, size


class ImplicitFTP_TLS(ReusingFTP_TLS):
    """ReusingFTP_TLS for implicit FTPS: TLS from the first byte (port 990 style)."""

    def connect(self, host="", port=0, timeout=-999, source_address=None):
        self.host, self.port = host, port
        if timeout != -999:
            self.timeout = timeout
        raw = socket.create_connection((host, port), self.timeout, source_address=source_address)
        self.af = raw.family
        self.sock = self.context.wrap_socket(raw, server_hostname=host)
        self.file = self.sock.makefile("r", encoding=self.encoding)
        self.welcome = self.getresp()
        return self.welcome


class ActiveFTP_TLS(ReusingFTP_TLS):
    """ReusingFTP_TLS in active mode (PORT, or EPRT with use_eprt), recording where each
    data connection came from and whether it resumed the control session.

    The data connection is accepted by the client; under PROT P the client is still the
    TLS client on it (RFC 4217), offering the control connection's session."""

    use_eprt = False
    data_peers: list = None  # (host, port) of the gateway's outgoing data connections

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.set_pasv(False)
        self.data_peers = []

    def makeport(self):
        if not self.use_eprt:
            return super().makeport()
        sock = socket.create_server(("", 0), family=self.af, backlog=1)
        port = sock.getsockname()[1]
        host = self.sock.getsockname()[0]
        self.sendeprt(host, port)
        if self.timeout is not socket._GLOBAL_DEFAULT_TIMEOUT:
            sock.settimeout(self.timeout)
        return sock

    def ntransfercmd(self, cmd, rest=None):
        conn, size = super().ntransfercmd(cmd, rest)
        self.data_peers.append(conn.getpeername()[:2])
        return conn, size


def scrape_metrics(port: int) -> str:
    """The gateway's Prometheus text from 127.0.0.1:PORT/metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return r.read().decode("utf-8", "replace")


def metric(text: str, name: str, **labels) -> float | None:
    """The value of the first sample of `name` carrying all `labels`, or None."""
    for line in text.splitlines():
        if not (line.startswith(name + "{") or line.startswith(name + " ")):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def metrics_up(port: int) -> bool:
    try:
        scrape_metrics(port)
        return True
    except OSError:
        return False


def http_status(port: int, path: str) -> int:
    """Status of GET 127.0.0.1:PORT/PATH (e.g. /readyz), 4xx/5xx included."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


class RecordingPassive:
    """ftplib mixin: records each passive reply (port, monotonic time), sends EPSV instead
    of PASV on request, and runs after_pasv(port) once, between a passive reply and the
    data connection that follows it (to hold a transfer pending, or act meanwhile)."""

    use_epsv = False
    after_pasv = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.passive: list[tuple[int, float]] = []

    def makepasv(self):
        if self.use_epsv:
            host, port = ftplib.parse229(self.sendcmd("EPSV"), self.sock.getpeername())
        else:
            host, port = super().makepasv()
        self.passive.append((port, time.monotonic()))
        hook, self.after_pasv = self.after_pasv, None
        if hook is not None:
            hook(port)
        return host, port

    def ports(self) -> list[int]:
        return [port for port, _ in self.passive]


class RecordingFTP(RecordingPassive, ftplib.FTP):
    pass


class RecordingFTP_TLS(RecordingPassive, ReusingFTP_TLS):
    pass


def run_concurrently(jobs: list, timeout: float = 120) -> None:
    """Runs each job in a thread of its own, released together; fails with the first
    errors, or when a job is still running at the deadline."""
    gate = threading.Barrier(len(jobs))
    errors: dict[int, BaseException] = {}

    def body(i: int, job) -> None:
        try:
            gate.wait(timeout=30)
            job()
        except BaseException as e:  # noqa: BLE001 - reported below
            errors[i] = e

    threads = [threading.Thread(target=body, args=(i, job), daemon=True) for i, job in enumerate(jobs)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    alive = [i for i, t in enumerate(threads) if t.is_alive()]
    assert not alive, f"{len(alive)} job(s) still running after {timeout}s: {alive[:10]}"
    assert not errors, (f"{len(errors)} of {len(jobs)} job(s) failed:\n"
                        + "\n\n".join(f"[{i}] {e!r}"[:4000] for i, e in sorted(errors.items())[:3]))
