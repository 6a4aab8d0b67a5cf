"""Real scanners on loopback for upload inspection (issue 16): Debian's clamd and c-icap
with its virus_scan service (c-icap-modules, engine clamd_mod) scanning through that clamd.

Nothing of the system instances (/etc/clamav, /var/lib/clamav, /etc/c-icap, their init
scripts) is read or touched, and freshclam never runs: each Clamd loads a two-signature
database written here, and each instance has its own config, sockets, logs and temporary
files in a directory the test owns, and ports from harness.PORTS. Both run in the
foreground, so the Popen pid is the daemon itself; only processes started here are ever
signalled, by pid (c-icap's worker children are found under its pid, never by name).

    with Clamd(tmp / "clamd") as clamd, CIcap(tmp / "icap", clamd) as icap:
        ... clamd.socket, clamd.tcp_port, icap.url ...
        clamd.kill(); ...; clamd.start()      # outage and recovery, same socket and port

Signatures (write_signature_db)
    signed_file_bytes()  200 KiB from random.Random(SIGNED_SEED), an MD5 signature in
                         ftpsgate-test.hdb (`md5:size:Ftpsgate-Test-Signature`, the line
                         `sigtool --md5` prints): only these exact bytes match.
    EICAR                the 68-byte EICAR test string, a body signature in
                         ftpsgate-test.ndb (`Eicar-Signature:0:*:<hex>`): matches it
                         anywhere in any file (with a trailing newline, inside other data).
    clamd names a signature from a database that is not Cisco-signed with `.UNOFFICIAL`
    appended, in clamd's and in c-icap's replies alike: SIGNED_REPLY_NAME
    "Ftpsgate-Test-Signature.UNOFFICIAL", EICAR_REPLY_NAME "Eicar-Signature.UNOFFICIAL".

clamd (ClamAV 1.4.6), observed
    zPING\\0                      -> b"PONG\\0"
    zINSTREAM\\0, chunks <u32 big-endian length><bytes>, a zero length; one reply, NUL-ended:
        clean                    -> b"stream: OK\\0"
        signed file              -> b"stream: Ftpsgate-Test-Signature.UNOFFICIAL FOUND\\0"
        EICAR                    -> b"stream: Eicar-Signature.UNOFFICIAL FOUND\\0"
        more than StreamMaxLength-> b"INSTREAM size limit exceeded. ERROR\\0", sent as soon as
                                    the limit is passed; clamd then closes the connection,
                                    so the client's further sends may fail with EPIPE or
                                    ECONNRESET: read the reply before treating that as the error.
    clamd closes the connection after each z-command's reply (no IDSESSION used here).
    Killed (SIGKILL): the socket file stays, connect() is refused (ECONNREFUSED) on the unix
    socket and the TCP port alike; start() binds both again (FixStaleSocket).

c-icap 0.5.10 with virus_scan 0.5.5, observed (RESPMOD as icap_request_head builds it:
req-hdr GET + res-hdr 200 with Content-Length + res-body; REQMOD as a PUT, same answers)
    OPTIONS                      -> "ICAP/1.0 200 OK", Methods: RESPMOD, REQMOD,
                                    Preview: 1024, Transfer-Preview: *, Allow: 204,
                                    Options-TTL: 3600, ISTag, Encapsulated: null-body=0
    clean, Allow: 204, with or without Preview: 4096 (100 Continue after the preview when
    more follows; none when "0; ieof" ended it), 1 MiB and 64 MiB alike:
        "ICAP/1.0 204 Unmodified" with Server, Connection: keep-alive, ISTag; no
        Encapsulated header, no body.
    empty file (Content-Length: 0) without a preview -> the same 204; with Preview and
        "0; ieof" -> "ICAP/1.0 200 OK" echoing the HTTP head (HTTP/1.1 200 OK,
        Content-Length: 0, a Via header added) with an empty chunked body ("0\\r\\n\\r\\n"),
        no infection header: clean.
    infected (signed file or EICAR), with or without preview:
        ICAP/1.0 200 OK
        Server: C-ICAP/0.5.10
        Connection: keep-alive
        ISTag: "CI0001-..."
        X-Infection-Found: Type=0; Resolution=2; Threat=Eicar-Signature.UNOFFICIAL;
        X-Violations-Found: 1
        \\t-
        \\tEicar-Signature.UNOFFICIAL
        \\t0
        \\t0
        Encapsulated: res-hdr=0, res-body=161
        then "HTTP/1.0 403 Forbidden" (Server: C-ICAP, Connection: close, Content-Type:
        text/html, Content-Language: en, Via on RESPMOD only) and a chunked HTML "VIRUS
        FOUND" page naming the threat (its last chunk ends in two NUL bytes), "0\\r\\n\\r\\n".
        NB: X-Violations-Found continues over four TAB-folded lines (obsolete header
        folding): a parser must accept continuation lines (or stop at X-Infection-Found).
        There is no X-Virus-ID header.
    keep-alive: the connection stays open after OPTIONS, after 204, after an echoed 200
        and after the infected 200 (the next request on it is answered). With
        MaxKeepAliveRequests N (100 here unless given) the (N+1)th response on a connection
        says Connection: close and c-icap closes it (N=3: the 4th).
    clamd down (or its socket gone): "ICAP/1.0 500 Server error" with Connection: close,
        no Encapsulated header, and c-icap closes the connection; with preview this comes
        after the 100 Continue and the rest of the body. c-icap connects to clamd per scan:
        when clamd is back, scans succeed again without restarting c-icap.
    c-icap started while clamd is down has NO engine for good ("Antivirus engine is not
        available, allow 204" in server.log): it answers 204 to everything, EICAR included,
        even after clamd comes back. CIcap.start() therefore refuses to start without a
        running Clamd and proves the engine with an EICAR scan before returning.
    virus_scan's built-in StartSendPercentDataAfter 0 answers early: once a second piece
        of body has arrived it sends "200 OK" and the echoed HTTP head before the scan, and
        an infected file then comes back as a 200 whose body just stops short
        ("0\\r\\n\\r\\n" after fewer bytes than Content-Length: none at all here) with no
        infection header. CIcap sets it beyond any upload (1024M) so every verdict comes
        after the scan; CIcap(early_responses=True) keeps the stock behaviour to show it.
    A file larger than virus_scan.MaxObjectSize passes unscanned: with Preview, a 204 right
        after the preview (no 100 Continue: Content-Length told it); without, a 200 echoing
        the whole body, infected or not. CIcap's default (300M) is above the gateway's
        largest upload.
    c-icap hands the file to clamd by path (zSCAN of its temp file), so both run as the
    same user (whoever starts them; root in CI).

Timings here (2 cores): clamd and c-icap each answer within ~0.2 s of start; a 64 MiB
clean file takes 2-4 s through clamd INSTREAM (64 KiB chunks) and 1-3.5 s through c-icap,
preview or not; stop() takes about 1 s for either.
"""
from __future__ import annotations

import functools
import glob
import hashlib
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness import Daemon, HarnessError, PORTS, stop_process, tail_file, wait_until

CLAMD = "/usr/sbin/clamd"
C_ICAP = "/usr/bin/c-icap"
C_ICAP_TEMPLATES = Path("/usr/share/c_icap/templates")
C_ICAP_MAGIC = Path("/etc/c-icap/c-icap.magic")
HOST = "127.0.0.1"

SIGNED_SEED = 16_2026
SIGNED_SIZE = 200 * 1024
SIGNED_SIGNATURE = "Ftpsgate-Test-Signature"
EICAR_SIGNATURE = "Eicar-Signature"
# clamd appends this to the names of signatures that are not from Cisco-signed databases.
UNOFFICIAL = ".UNOFFICIAL"
SIGNED_REPLY_NAME = SIGNED_SIGNATURE + UNOFFICIAL
EICAR_REPLY_NAME = EICAR_SIGNATURE + UNOFFICIAL
EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"

# A unix socket path must fit sockaddr_un.sun_path (108 bytes with its NUL).
_MAX_SOCKET_PATH = 100


@functools.lru_cache(maxsize=1)
def signed_file_bytes() -> bytes:
    """The file the MD5 signature matches: the same bytes on every run and machine."""
    return random.Random(SIGNED_SEED).randbytes(SIGNED_SIZE)


def md5_signature(data: bytes, name: str) -> str:
    """An .hdb line as `sigtool --md5 FILE` prints it, with `name` for the file name."""
    return f"{hashlib.md5(data).hexdigest()}:{len(data)}:{name}"


def write_signature_db(directory: Path) -> list[Path]:
    """The only signatures clamd loads: the signed file (.hdb) and EICAR (.ndb)."""
    directory.mkdir(parents=True, exist_ok=True)
    hdb = directory / "ftpsgate-test.hdb"
    hdb.write_text(md5_signature(signed_file_bytes(), SIGNED_SIGNATURE) + "\n")
    ndb = directory / "ftpsgate-test.ndb"
    # Target 0 (any file), offset * (anywhere): EICAR inside or around other bytes matches too.
    ndb.write_text(f"{EICAR_SIGNATURE}:0:*:{EICAR.hex()}\n")
    return [hdb, ndb]


def _socket_dir(workdir: Path, name: str) -> tuple[Path, bool]:
    """workdir when socket paths fit sun_path, else a short private directory in /tmp (True:
    ours to remove). pytest's tmp paths for long test names do not fit."""
    if len(str(workdir / f"{name}.sock")) <= _MAX_SOCKET_PATH:
        return workdir, False
    return Path(tempfile.mkdtemp(prefix=f"ftpsgate-{name}-", dir="/tmp")), True


def _children(pid: int) -> list[int]:
    """Direct children of a process of ours (c-icap's workers), read before signalling it."""
    pids: list[int] = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = Path(stat).read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if len(fields) > 1 and fields[1] == str(pid):  # state, ppid, ...
            pids.append(int(Path(stat).parent.name))
    return pids


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _port_refuses(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1):
            return False
    except OSError:
        return True


# --------------------------------------------------------------------------- clients

def clamd_command(address: Path | str | tuple[str, int], command: bytes,
                  timeout: float = 10.0) -> bytes:
    """One z-command (NUL included) to clamd's unix socket (a path) or TCP (host, port);
    the reply without its NUL."""
    with _clamd_socket(address, timeout) as s:
        s.sendall(command)
        return _read_nul_reply(s)


def clamd_instream(address: Path | str | tuple[str, int], data: bytes,
                   chunk: int = 64 * 1024, timeout: float = 120.0) -> bytes:
    """INSTREAM as clamd(8) has it; the reply line without its NUL (b"stream: OK").

    A reply that arrives while still sending (size limit exceeded) is returned too."""
    with _clamd_socket(address, timeout) as s:
        try:
            s.sendall(b"zINSTREAM\0")
            for at in range(0, len(data), chunk):
                piece = data[at:at + chunk]
                s.sendall(len(piece).to_bytes(4, "big") + piece)
            s.sendall(b"\0\0\0\0")
        except (BrokenPipeError, ConnectionResetError):
            pass
        return _read_nul_reply(s)


def _clamd_socket(address, timeout: float) -> socket.socket:
    if isinstance(address, tuple):
        return socket.create_connection(address, timeout=timeout)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(str(address))
    except OSError:
        s.close()
        raise
    return s


def _read_nul_reply(s: socket.socket) -> bytes:
    reply = b""
    while not reply.endswith(b"\0"):
        try:
            data = s.recv(4096)
        except ConnectionResetError:
            data = b""
        if not data:
            raise HarnessError(f"clamd closed the connection before a full reply: {reply!r}")
        reply += data
    return reply[:-1]


@dataclass
class IcapReply:
    """One ICAP response as it came over the wire."""
    status_line: str
    status: int
    head: bytes                     # ICAP status line and headers, blank line included
    headers: dict[str, str]         # lower-case names; folded lines joined with "\n"
    http_head: bytes = b""          # the encapsulated HTTP header block, if any
    body: bytes = b""               # the de-chunked encapsulated body, if any
    interim: list[str] = field(default_factory=list)  # "ICAP/1.0 100 Continue" lines seen
    elapsed: float = 0.0

    @property
    def http_status_line(self) -> str:
        return self.http_head.split(b"\r\n", 1)[0].decode("latin-1") if self.http_head else ""


class IcapConnection:
    """A minimal ICAP client (RFC 3507) that keeps its connection, to observe c-icap."""

    def __init__(self, port: int, service: str = "virus_scan", timeout: float = 120.0):
        self.port, self.service = port, service
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self._buf = b""

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "IcapConnection":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- requests
    def options(self) -> IcapReply:
        self.sock.sendall(f"OPTIONS icap://{HOST}:{self.port}/{self.service} ICAP/1.0\r\n"
                          f"Host: {HOST}\r\nEncapsulated: null-body=0\r\n\r\n".encode())
        return self._response(time.monotonic())

    def scan(self, data: bytes, method: str = "RESPMOD", preview: int | None = None,
             allow_204: bool = True, name: str = "/upload/file.bin",
             chunk: int = 64 * 1024) -> IcapReply:
        """The file as a RESPMOD 200 response body (or a REQMOD PUT body), chunked; with a
        preview, the rest follows only after 100 Continue."""
        started = time.monotonic()
        if method == "RESPMOD":
            req = f"GET {name} HTTP/1.1\r\nHost: ftpsgate\r\n\r\n"
            res = (f"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                   f"Content-Length: {len(data)}\r\n\r\n")
            encapsulated = f"req-hdr=0, res-hdr={len(req)}, res-body={len(req) + len(res)}"
            http = req + res
        else:
            http = f"PUT {name} HTTP/1.1\r\nHost: ftpsgate\r\nContent-Length: {len(data)}\r\n\r\n"
            encapsulated = f"req-hdr=0, req-body={len(http)}"
        head = f"{method} icap://{HOST}:{self.port}/{self.service} ICAP/1.0\r\nHost: {HOST}\r\n"
        if allow_204:
            head += "Allow: 204\r\n"
        if preview is not None:
            head += f"Preview: {preview}\r\n"
        head += f"Encapsulated: {encapsulated}\r\n\r\n"
        self.sock.sendall(head.encode() + http.encode())
        if preview is None:
            self._send_chunks(data, chunk)
            self.sock.sendall(b"0\r\n\r\n")
            return self._response(started)
        self._send_chunks(data[:preview], chunk)
        if len(data) <= preview:
            self.sock.sendall(b"0; ieof\r\n\r\n")
            return self._response(started)
        self.sock.sendall(b"0\r\n\r\n")
        reply = self._response(started, final=False)
        if reply.status != 100:
            return reply
        self._send_chunks(data[preview:], chunk)
        self.sock.sendall(b"0\r\n\r\n")
        final = self._response(started)
        final.interim = [reply.status_line]
        return final

    def peer_closed(self, timeout: float = 1.0) -> bool:
        """True when the server has closed the connection (EOF or reset within timeout)."""
        if self._buf:
            return False
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1, socket.MSG_PEEK) == b""
        except socket.timeout:
            return False
        except OSError:
            return True

    # -- reading
    def _send_chunks(self, data: bytes, chunk: int) -> None:
        for at in range(0, len(data), chunk):
            piece = data[at:at + chunk]
            self.sock.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")

    def _fill(self) -> None:
        data = self.sock.recv(1 << 20)
        if not data:
            raise HarnessError(f"ICAP server closed the connection; had {self._buf[:200]!r}")
        self._buf += data

    def _until(self, marker: bytes) -> bytes:
        while marker not in self._buf:
            self._fill()
        at = self._buf.index(marker) + len(marker)
        out, self._buf = self._buf[:at], self._buf[at:]
        return out

    def _exactly(self, n: int) -> bytes:
        while len(self._buf) < n:
            self._fill()
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def _response(self, started: float, final: bool = True) -> IcapReply:
        head = self._until(b"\r\n\r\n")
        lines = head[:-4].decode("latin-1").split("\r\n")
        status_line = lines[0]
        headers: dict[str, str] = {}
        last = None
        for line in lines[1:]:
            if line[:1] in (" ", "\t") and last is not None:  # obsolete folding
                headers[last] += "\n" + line.strip()
                continue
            name, _, value = line.partition(":")
            last = name.strip().lower()
            headers[last] = value.strip() if last not in headers else headers[last] + ", " + value.strip()
        reply = IcapReply(status_line, int(status_line.split()[1]), head, headers)
        if reply.status == 100 and not final:
            return reply
        parts = dict(p.strip().split("=", 1) for p in headers.get("encapsulated", "").split(",") if "=" in p)
        body_key = next((k for k in ("res-body", "req-body") if k in parts), None)
        if body_key is not None:
            reply.http_head = self._exactly(int(parts[body_key]))
            reply.body = self._chunked()
        elif "null-body" in parts:
            reply.http_head = self._exactly(int(parts["null-body"]))
        reply.elapsed = time.monotonic() - started
        return reply

    def _chunked(self) -> bytes:
        body = bytearray()
        while True:
            size_line = self._until(b"\r\n")[:-2]
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                self._until(b"\r\n")  # no trailers from c-icap: just the final CRLF
                return bytes(body)
            body += self._exactly(size)
            if self._exactly(2) != b"\r\n":
                raise HarnessError("ICAP chunk not followed by CRLF")


# --------------------------------------------------------------------------- clamd

class Clamd(Daemon):
    """One clamd owned by the test, answering on a unix socket and optionally on TCP."""

    start_timeout = 60.0

    def __init__(self, workdir: Path, tcp: bool = True, stream_max_length: str = "300M"):
        """stream_max_length is clamd's StreamMaxLength (INSTREAM's limit); MaxFileSize and
        MaxScanSize stay above 256 MiB so large clean uploads are scanned in full."""
        if not Path(CLAMD).exists():
            raise HarnessError(f"{CLAMD} missing: install the Debian clamav-daemon package")
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        sockets, self._own_socket_dir = _socket_dir(workdir, "clamd")
        self.socket_dir = sockets
        self.socket = sockets / "clamd.sock"
        self.tcp_port = PORTS.port() if tcp else None
        self.stream_max_length = stream_max_length
        self.db = workdir / "db"
        self.tmp = workdir / "tmp"
        self.conf = workdir / "clamd.conf"
        self.log = workdir / "clamd.log"
        self.out = workdir / "clamd.out"
        self.pidfile = workdir / "clamd.pid"
        self.proc: subprocess.Popen | None = None
        write_signature_db(self.db)
        self.tmp.mkdir(exist_ok=True)
        self.conf.write_text(self._config())

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def tcp_address(self) -> tuple[str, int] | None:
        return (HOST, self.tcp_port) if self.tcp_port else None

    def _config(self) -> str:
        tcp = f"TCPSocket {self.tcp_port}\nTCPAddr {HOST}\n" if self.tcp_port else ""
        # No User: clamd stays whoever started it (root in CI) and can read c-icap's temp
        # files, which c-icap (same user) hands over by path (zSCAN).
        return f"""\
Foreground yes
LocalSocket {self.socket}
LocalSocketMode 666
FixStaleSocket yes
{tcp}DatabaseDirectory {self.db}
TemporaryDirectory {self.tmp}
PidFile {self.pidfile}
LogFile {self.log}
LogTime yes
LogFileMaxSize 0
SelfCheck 0
MaxThreads 8
MaxQueue 64
IdleTimeout 60
ReadTimeout 60
CommandReadTimeout 30
StreamMaxLength {self.stream_max_length}
MaxFileSize 400M
MaxScanSize 400M
MaxScanTime 600000
"""

    # -- lifecycle
    def start(self) -> "Clamd":
        if self.running():
            raise HarnessError("clamd is already running")
        out = open(self.out, "ab")
        try:
            self.proc = subprocess.Popen([CLAMD, "-c", str(self.conf)], stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT)
        finally:
            out.close()
        what = f"clamd PONG on {self.socket}" + (f" and {HOST}:{self.tcp_port}" if self.tcp_port else "")
        wait_until(self._ready, self.start_timeout, what, interval=0.1, context=self._context)
        return self

    def close(self) -> None:
        """Stops clamd and removes the private socket directory, if one was needed."""
        self.stop()
        if self._own_socket_dir:
            shutil.rmtree(self.socket_dir, ignore_errors=True)

    def ping(self, tcp: bool = False) -> bool:
        address = self.tcp_address if tcp else self.socket
        try:
            return clamd_command(address, b"zPING\0", timeout=5) == b"PONG"
        except (OSError, HarnessError):
            return False

    def instream(self, data: bytes, tcp: bool = False) -> bytes:
        return clamd_instream(self.tcp_address if tcp else self.socket, data)

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise HarnessError(f"clamd exited with {self.proc.returncode}\n{self._context()}")
        return self.ping() and (self.tcp_port is None or self.ping(tcp=True))

    def _context(self) -> str:
        return f"--- {self.out}\n{tail_file(self.out, 3000)}\n--- {self.log}\n{tail_file(self.log, 3000)}"


# --------------------------------------------------------------------------- c-icap

def c_icap_module_dir() -> Path:
    """Where Debian puts c-icap's modules and services (/usr/lib/<multiarch>/c_icap)."""
    found = sorted(glob.glob("/usr/lib/*/c_icap/virus_scan.so"))
    if not found:
        raise HarnessError("virus_scan.so missing: install the Debian libc-icap-mod-virus-scan package")
    return Path(found[0]).parent


class CIcap(Daemon):
    """One c-icap owned by the test, serving virus_scan over the given Clamd's unix socket."""

    start_timeout = 30.0
    service = "virus_scan"

    def __init__(self, workdir: Path, clamd: Clamd, max_object_size: str = "300M",
                 early_responses: bool = False, max_keepalive_requests: int = 100):
        """early_responses keeps virus_scan's stock StartSendPercentDataAfter 0: the 200 head
        goes out before the scan (see the module docstring); off, every verdict waits for it.
        Sizes take c-icap's K/M suffixes only ("1G" would be read as 1)."""
        if not Path(C_ICAP).exists():
            raise HarnessError(f"{C_ICAP} missing: install the Debian c-icap package")
        self.module_dir = c_icap_module_dir()
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.clamd = clamd
        sockets, self._own_socket_dir = _socket_dir(workdir, "c-icap")
        self.socket_dir = sockets
        self.commands_socket = sockets / "c-icap.ctl"
        self.port = PORTS.port()
        self.url = f"icap://{HOST}:{self.port}/{self.service}"
        self.max_object_size = max_object_size
        self.early_responses = early_responses
        self.max_keepalive_requests = max_keepalive_requests
        self.tmp = workdir / "tmp"
        self.conf = workdir / "c-icap.conf"
        self.server_log = workdir / "server.log"
        self.access_log = workdir / "access.log"
        self.out = workdir / "c-icap.out"
        self.pidfile = workdir / "c-icap.pid"
        self.proc: subprocess.Popen | None = None
        self.tmp.mkdir(exist_ok=True)
        self.conf.write_text(self._config())

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def _config(self) -> str:
        start_after = "0" if self.early_responses else "1024M"
        # No User/Group: c-icap stays whoever started it, like clamd, which reads its temp
        # files by path. One child with 16 threads (more children when busy) suits 2 cores.
        return f"""\
PidFile {self.pidfile}
CommandsSocket {self.commands_socket}
Port {HOST}:{self.port}
Timeout 60
MaxKeepAliveRequests {self.max_keepalive_requests}
KeepAliveTimeout 600
StartServers 1
MaxServers 4
MinSpareThreads 4
MaxSpareThreads 32
ThreadsPerChild 16
MaxRequestsPerChild 0
TmpDir {self.tmp}
MaxMemObject 131072
DebugLevel 1
Pipelining on
SupportBuggyClients off
ModulesDir {self.module_dir}
ServicesDir {self.module_dir}
TemplateDir {C_ICAP_TEMPLATES}/
TemplateDefaultLanguage en
LoadMagicFile {C_ICAP_MAGIC}
ServerLog {self.server_log}
AccessLog {self.access_log}

Module common clamd_mod.so
clamd_mod.ClamdSocket {self.clamd.socket}

Service {self.service} virus_scan.so
virus_scan.DefaultEngine clamd
# Every type c-icap's magic knows (TEXT and DATA are its built-in ones): scan everything.
virus_scan.ScanFileTypes TEXT DATA EXECUTABLE ARCHIVE DOCUMENT GRAPHICS STREAM
virus_scan.SendPercentData 0
virus_scan.StartSendPercentDataAfter {start_after}
virus_scan.Allow204Responces on
virus_scan.PassOnError off
virus_scan.MaxObjectSize {self.max_object_size}
"""

    # -- lifecycle
    def start(self) -> "CIcap":
        if self.running():
            raise HarnessError("c-icap is already running")
        if not self.clamd.running():
            # virus_scan asks clamd for its version at start-up; start clamd first.
            raise HarnessError("start the Clamd before the CIcap that scans through it")
        out = open(self.out, "ab")
        try:
            self.proc = subprocess.Popen([C_ICAP, "-N", "-f", str(self.conf)], stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT)
        finally:
            out.close()
        wait_until(self._ready, self.start_timeout, f"c-icap OPTIONS 200 on {self.url}",
                   interval=0.1, context=self._context)
        # Without an engine virus_scan answers 204 to everything ("Antivirus engine is not
        # available, allow 204"): prove it finds EICAR before any test relies on it.
        with self.connect(timeout=30) as conn:
            reply = conn.scan(EICAR)
        if EICAR_REPLY_NAME not in reply.headers.get("x-infection-found", ""):
            raise HarnessError(f"c-icap's {self.service} did not find EICAR through clamd "
                               f"({reply.status_line}): no working engine\n{self._context()}")
        return self

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM (the main process stops its children) and wait."""
        return self._end(signal.SIGTERM, timeout)

    def kill(self) -> int | None:
        """SIGKILL to the main process and its workers: the port refuses at once."""
        return self._end(signal.SIGKILL, 10.0)

    def close(self) -> None:
        self.stop()
        if self._own_socket_dir:
            shutil.rmtree(self.socket_dir, ignore_errors=True)

    def _end(self, sig: int, timeout: float) -> int | None:
        if self.proc is None:
            return None
        children = _children(self.proc.pid) if self.running() else []
        if sig == signal.SIGKILL:
            for pid in children:
                self._signal_child(pid, sig)
        code = stop_process(self.proc, sig, timeout)
        # Workers that outlive the main process (it was killed, or hung) are ours to end.
        for pid in children:
            self._signal_child(pid, signal.SIGKILL)
        wait_until(lambda: _port_refuses(self.port), 10.0, f"c-icap's port {self.port} to close",
                   interval=0.05, context=self._context)
        return code

    def _signal_child(self, pid: int, sig: int) -> None:
        if str(self.conf).encode() in _cmdline(pid):  # still our worker, not a reused pid
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    # -- probes
    def options(self) -> IcapReply:
        with IcapConnection(self.port, self.service, timeout=5) as conn:
            return conn.options()

    def connect(self, timeout: float = 120.0) -> IcapConnection:
        return IcapConnection(self.port, self.service, timeout)

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise HarnessError(f"c-icap exited with {self.proc.returncode}\n{self._context()}")
        try:
            return self.options().status == 200
        except (OSError, HarnessError):
            return False

    def _context(self) -> str:
        return (f"--- {self.out}\n{tail_file(self.out, 2000)}\n"
                f"--- {self.server_log}\n{tail_file(self.server_log, 3000)}")
