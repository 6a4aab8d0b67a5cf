"""Integration-test harness: a real vsftpd backend, test certificates, the gateway
process, a raw FTP control-channel client and small helpers.

Everything binds loopback addresses only and uses ports found free at run time.
Only processes started here are ever signalled (by their Popen handle).
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

try:  # python3-yaml; JSON is valid YAML, so fall back to it
    import yaml as _yaml
except ImportError:  # pragma: no cover
    _yaml = None

REPO = Path(os.environ.get("FTPSGATE_SOURCE_DIR", Path(__file__).resolve().parents[2]))
GATEWAY_BIN = Path(os.environ.get("FTPSGATE_BIN", REPO / "build" / "ftpsgate"))

TEST_USER = "ftpsgate-t"
TEST_PASS = "ftpsgate-t-pass-4711"
# Stable home of the account; each test run serves its own directory via local_root,
# so concurrent runs never change the account under each other.
TEST_USER_HOME = "/var/lib/ftpsgate-t"

NO_REUSE_MESSAGE = ("client did not reuse SSL session, rejecting data connection "
                    "(see the session_reuse_required option)")


class HarnessError(AssertionError):
    """A failure of the environment or of a polled condition, with context attached."""


# --------------------------------------------------------------------------- misc

def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path | str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            chunk = f.read(1 << 20)
            if not chunk:
                break
            h.update(chunk)
    return h.hexdigest()


def wait_until(predicate: Callable[[], Any], timeout: float, what: str,
               interval: float = 0.05, context: Callable[[], str] | None = None):
    """Polls predicate until it returns a truthy value or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            extra = ("\n" + context()) if context else ""
            raise HarnessError(f"timed out after {timeout:.1f}s waiting for {what}{extra}")
        time.sleep(interval)


def run(cmd: list[str], timeout: float, input: bytes | None = None,
        check: bool = False, env: dict | None = None) -> subprocess.CompletedProcess:
    """subprocess.run with a mandatory timeout and captured output (bytes)."""
    try:
        proc = subprocess.run(cmd, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=timeout, env=env, stdin=None if input is not None
                              else subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise HarnessError(f"command timed out after {timeout}s: {' '.join(cmd)}\n"
                           f"stdout: {_tail_bytes(e.stdout)}\nstderr: {_tail_bytes(e.stderr)}")
    if check and proc.returncode != 0:
        raise HarnessError(f"command failed ({proc.returncode}): {' '.join(cmd)}\n"
                           f"stdout: {_tail_bytes(proc.stdout)}\nstderr: {_tail_bytes(proc.stderr)}")
    return proc


def _tail_bytes(data: bytes | None, limit: int = 4000) -> str:
    if not data:
        return ""
    text = data.decode("utf-8", "replace")
    return text[-limit:]


def tail_file(path: Path, limit: int = 6000) -> str:
    try:
        data = path.read_bytes()
    except OSError as e:
        return f"<cannot read {path}: {e}>"
    return _tail_bytes(data, limit)


def stop_process(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int | None:
    """Signals one process we started and waits; kills it after the deadline."""
    if proc.poll() is not None:
        return proc.returncode
    try:
        proc.send_signal(sig)
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
        return None


# --------------------------------------------------------------------------- ports

class Daemon:
    """A real server a test starts (slapd, clamd, c-icap): stopped and killed by its PID only,
    restartable, a context manager. Subclasses set `proc` in start()."""

    proc: subprocess.Popen | None = None
    stop_timeout = 15.0

    def start(self):  # pragma: no cover - every subclass has its own
        raise NotImplementedError

    def stop(self, timeout: float | None = None) -> int | None:
        """SIGTERM and wait."""
        if self.proc is None:
            return None
        return stop_process(self.proc, signal.SIGTERM, self.stop_timeout if timeout is None else timeout)

    def kill(self) -> int | None:
        """SIGKILL: the server vanishes mid-whatever."""
        if self.proc is None:
            return None
        return stop_process(self.proc, signal.SIGKILL, timeout=10.0)

    def restart(self):
        self.stop()
        return self.start()

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def close(self) -> None:
        self.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


class PortAllocator:
    """Hands out loopback TCP ports that are free now and not yet handed out by us.

    Ports come from below the kernel's ephemeral range, so outgoing connections of
    this machine do not take them between the check and the bind.
    """

    LOW, HIGH = 10000, 32000

    def __init__(self) -> None:
        # FTPSGATE_TEST_PORTS=LOW-HIGH keeps two suites run side by side (separate
        # checkouts) out of each other's ports.
        span = os.environ.get("FTPSGATE_TEST_PORTS", "")
        if span:
            low, high = span.split("-")
            self.LOW, self.HIGH = int(low), int(high)
        self._given: set[int] = set()
        self._test_given: set[int] | None = None
        self._rng = random.Random(os.getpid() ^ int(time.time() * 1000))

    def begin_test(self) -> None:
        """Ports handed out from now on belong to one test (see end_test)."""
        self._test_given = set()

    def end_test(self) -> None:
        """The test's gateways and servers are gone: its ports may be handed out again
        (bind() still checks they are free). Without this a long suite runs out of
        contiguous free runs for passive ranges."""
        if self._test_given is not None:
            self._given -= self._test_given
        self._test_given = None

    @staticmethod
    def _bindable(port: int) -> bool:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False
        finally:
            s.close()

    def port(self) -> int:
        return self.range(1)[0]

    def range(self, count: int) -> list[int]:
        for _ in range(2000):
            base = self._rng.randrange(self.LOW, self.HIGH - count)
            ports = list(range(base, base + count))
            if any(p in self._given for p in ports):
                continue
            if all(self._bindable(p) for p in ports):
                self._given.update(ports)
                if self._test_given is not None:
                    self._test_given.update(ports)
                return ports
        raise HarnessError(f"no run of {count} free ports found")


PORTS = PortAllocator()


# --------------------------------------------------------------------------- certificates

@dataclass
class Certs:
    cert: Path
    key: Path


def make_certs(directory: Path) -> Certs:
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-days", "30", "-subj", "/CN=ftpsgate-test",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1",
         "-keyout", str(key), "-out", str(cert)], timeout=30, check=True)
    key.chmod(0o600)
    return Certs(cert=cert, key=key)


# --------------------------------------------------------------------------- vsftpd backend

def ensure_test_user() -> None:
    if os.geteuid() != 0:
        raise HarnessError("the integration tests run as root (they create a local account "
                           "for vsftpd and chown its files)")
    if subprocess.run(["id", TEST_USER], stdout=subprocess.DEVNULL,
                      stderr=subprocess.DEVNULL).returncode != 0:
        run(["useradd", "-M", "-d", TEST_USER_HOME, "-s", "/bin/bash", TEST_USER],
            timeout=30, check=True)
    os.makedirs(TEST_USER_HOME, exist_ok=True)
    shutil.chown(TEST_USER_HOME, TEST_USER)
    # Cheap hash: the tests measure the gateway, not crypt().
    run(["chpasswd", "-c", "SHA512", "-s", "1000"], input=f"{TEST_USER}:{TEST_PASS}\n".encode(),
        timeout=30, check=True)
    os.makedirs("/var/run/vsftpd/empty", exist_ok=True)
    if not Path("/etc/pam.d/vsftpd").exists():
        raise HarnessError("/etc/pam.d/vsftpd missing: install the Debian vsftpd package")


class Vsftpd:
    """A plaintext vsftpd in the foreground, serving `root` as the test user."""

    host = "127.0.0.1"
    max_clients = 500
    start_timeout = 10.0

    def __init__(self, workdir: Path, pasv_ports: int = 50, tls: "Certs | None" = None,
                 implicit: bool = False):
        """vsftpd's privileged helper dies ("500 OOPS: priv_sock_get_int") when it finds no
        free passive port: give a backend for many concurrent sessions a wider range."""
        self.workdir = workdir
        self.tls, self.implicit = tls, implicit
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.root = workdir / "home"
        self.port = PORTS.port()
        self.pasv = PORTS.range(pasv_ports)
        self.conf = workdir / "vsftpd.conf"
        self.log = workdir / "vsftpd.log"
        self.out = workdir / "vsftpd.out"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        ensure_test_user()
        self.root.mkdir(parents=True, exist_ok=True)
        shutil.chown(self.root, TEST_USER)
        self.root.chmod(0o755)
        self.conf.write_text(f"""\
listen=YES
listen_ipv6=NO
listen_address={self.host}
listen_port={self.port}
background=NO
anonymous_enable=NO
local_enable=YES
write_enable=YES
local_umask=022
local_root={self.root}
pasv_enable=YES
pasv_address={self.host}
pasv_min_port={self.pasv[0]}
pasv_max_port={self.pasv[-1]}
port_enable=YES
seccomp_sandbox=NO
pam_service_name=vsftpd
max_clients={self.max_clients}
max_per_ip={self.max_clients}
xferlog_enable=YES
xferlog_file={self.workdir / 'xferlog'}
vsftpd_log_file={self.log}
log_ftp_protocol=YES
dual_log_enable=YES
idle_session_timeout=120
data_connection_timeout=60
{self._tls_lines()}
""")
        self.log.touch()
        out = open(self.out, "wb")
        try:
            self.proc = subprocess.Popen([*self.command_prefix(), "vsftpd", str(self.conf)],
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        finally:
            out.close()
        wait_until(self._greets, self.start_timeout, f"vsftpd greeting on {self.host}:{self.port}",
                   context=lambda: tail_file(self.out))

    def _tls_lines(self) -> str:
        if self.tls is None:
            return "ssl_enable=NO"
        # As ../shared/peers/start-vsftpd.sh tls: FTPS required, session reuse required.
        return "\n".join([
            "ssl_enable=YES", f"rsa_cert_file={self.tls.cert}", f"rsa_private_key_file={self.tls.key}",
            "force_local_logins_ssl=YES", "force_local_data_ssl=YES", "require_ssl_reuse=YES",
            "ssl_tlsv1=NO", "ssl_sslv2=NO", "ssl_sslv3=NO", f"implicit_ssl={'YES' if self.implicit else 'NO'}"])

    def command_prefix(self) -> list[str]:
        """Words run before vsftpd (e.g. `ip netns exec NS`; it execs, so the pid stays)."""
        return []

    def _greets(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise HarnessError(f"vsftpd exited with {self.proc.returncode}: {tail_file(self.out)}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                if self.implicit:
                    with client_tls_context().wrap_socket(s) as t:
                        return t.recv(100).startswith(b"220")
                return s.recv(100).startswith(b"220")
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout=5)

    # -- files
    def mkdir(self, rel: str) -> Path:
        path = self.root / rel
        path.mkdir(parents=True, exist_ok=True)
        for p in [path, *path.parents]:
            if p == self.root:
                break
            shutil.chown(p, TEST_USER)
            p.chmod(0o755)
        return path

    def put(self, rel: str, data: bytes) -> Path:
        path = self.root / rel
        if Path(rel).parent != Path("."):
            self.mkdir(str(Path(rel).parent))
        path.write_bytes(data)
        shutil.chown(path, TEST_USER)
        path.chmod(0o644)
        return path

    def put_file(self, rel: str, source: Path) -> Path:
        path = self.root / rel
        if Path(rel).parent != Path("."):
            self.mkdir(str(Path(rel).parent))
        shutil.copyfile(source, path)
        shutil.chown(path, TEST_USER)
        path.chmod(0o644)
        return path

    # -- protocol log
    def log_mark(self) -> int:
        return self.log.stat().st_size

    def log_since(self, mark: int) -> str:
        with open(self.log, "rb") as f:
            f.seek(mark)
            return f.read().decode("utf-8", "replace")

    def commands_since(self, mark: int) -> list[str]:
        """FTP commands the backend received since the mark ('USER x', 'RETR f', ...)."""
        return re.findall(r'FTP command: Client "[^"]*", "([^"]*)"', self.log_since(mark))


# --------------------------------------------------------------------------- gateway

def deep_merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for k, v in override.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def klass(name: str = "default", tls_required: str = "on", **kw) -> dict:
    return {"name": name, "tls_required": tls_required, **kw}


class Gateway:
    """One ftpsgate process with its own config, log file and ports."""

    def __init__(self, workdir: Path, backend_port: int, certs: Certs,
                 overrides: dict | None = None, name: str = "gw",
                 edit: Callable[[dict], Any] | None = None):
        self.name = name
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.explicit_port = PORTS.port()
        self.implicit_port = PORTS.port()
        self.passive_ports = PORTS.range(20)
        self.log_path = workdir / "gateway.log"
        self.stderr_path = workdir / "gateway.stderr"
        self.config_path = workdir / "ftpsgate.yaml"
        base = {
            "listeners": [
                {"name": "explicit", "address": f"127.0.0.1:{self.explicit_port}",
                 "mode": "explicit", "backend": "vsftpd"},
                {"name": "implicit", "address": f"127.0.0.1:{self.implicit_port}",
                 "mode": "implicit", "backend": "vsftpd"},
            ],
            "tls": {"certificates": [{"cert": str(certs.cert), "key": str(certs.key)}]},
            "classes": [klass("default", "on")],
            "backends": [{"name": "vsftpd", "servers": [f"127.0.0.1:{backend_port}"],
                          "connect_timeout": "3s"}],
            "passive": {"ports": f"{self.passive_ports[0]}-{self.passive_ports[-1]}"},
            "limits": {"drain_timeout": "2s", "handshake_timeout": "5s",
                       "data_connect_timeout": "10s"},
            "metrics": {"address": ""},
            "logging": {"format": "json", "level": "debug", "file": str(self.log_path)},
        }
        self.config = deep_merge(base, overrides or {})
        if edit is not None:
            edit(self.config)
        self.proc: subprocess.Popen | None = None
        self.exit_code: int | None = None

    @property
    def passive_range(self) -> range:
        lo, hi = (int(x) for x in str(self.config["passive"]["ports"]).split("-"))
        return range(lo, hi + 1)

    def write_config(self) -> None:
        if _yaml is not None:
            text = _yaml.safe_dump(self.config, sort_keys=False, default_flow_style=False)
        else:  # pragma: no cover
            text = json.dumps(self.config, indent=2)
        self.config_path.write_text(text)

    def start(self, timeout: float = 15.0) -> "Gateway":
        if not GATEWAY_BIN.exists():
            raise HarnessError(f"gateway binary {GATEWAY_BIN} does not exist "
                               f"(set FTPSGATE_BIN or build it)")
        self.write_config()
        err = open(self.stderr_path, "wb")
        try:
            self.proc = subprocess.Popen([str(GATEWAY_BIN), "--config", str(self.config_path)],
                                         stdin=subprocess.DEVNULL, stdout=err,
                                         stderr=subprocess.STDOUT, cwd=self.workdir)
        finally:
            err.close()
        for listener in self.config["listeners"]:
            host, port = listener["address"].rsplit(":", 1)
            wait_until(lambda: self._accepts(host.strip("[]"), int(port)), timeout,
                       f"gateway listener {listener['name']} on {listener['address']}",
                       context=self.tail)
        # Listeners accept before the start record reaches the file: tests read it at once.
        logging = self.config.get("logging", {})
        if logging.get("format", "json") == "json" and logging.get("file") == str(self.log_path):
            wait_until(lambda: self.events("start"), timeout, "gateway start record", context=self.tail)
        return self

    def _accepts(self, host: str, port: int) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise HarnessError(f"gateway exited with {self.proc.returncode} during start\n"
                               + self.tail())
        try:
            with socket.create_connection((host, port), timeout=1):
                return True
        except OSError:
            return False

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.proc is None:
            return None
        if self.exit_code is None:
            self.exit_code = stop_process(self.proc, signal.SIGTERM, timeout)
        return self.exit_code

    SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                         "ERROR: ThreadSanitizer", "WARNING: ThreadSanitizer")

    def sanitizer_report(self) -> str | None:
        """The sanitizer report on stderr, if the binary is instrumented and found a bug."""
        text = tail_file(self.stderr_path, 200000)
        for marker in self.SANITIZER_MARKERS:
            at = text.find(marker)
            if at >= 0:
                return text[max(0, at - 200):at + 4000]
        return None

    # -- logs
    def log_lines(self) -> list[str]:
        try:
            return self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return []

    def log_records(self) -> list[dict]:
        out = []
        for line in self.log_lines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict):
                out.append(rec)
        return out

    def find(self, text: str) -> list[str]:
        return [line for line in self.log_lines() if text in line]

    def events(self, event: str | None = None, **fields) -> list[dict]:
        out = []
        for rec in self.log_records():
            if event is not None and rec.get("event") != event:
                continue
            if all(rec.get(k) == v for k, v in fields.items()):
                out.append(rec)
        return out

    def data_handshakes(self) -> list[dict]:
        return [r for r in self.events("tls_handshake") if r.get("channel") == "data"]

    def assert_no_secret(self, secret: str = TEST_PASS) -> None:
        for path in (self.log_path, self.stderr_path):
            if path.exists() and secret in path.read_text(errors="replace"):
                raise AssertionError(f"the password appears in {path}")

    def wait_log(self, predicate: Callable[[], Any], what: str, timeout: float = 5.0):
        return wait_until(predicate, timeout, f"gateway log: {what}", context=self.tail)

    def tail(self, lines: int = 40) -> str:
        log = "\n".join(self.log_lines()[-lines:])
        return (f"--- {self.name} log tail ({self.log_path}) ---\n{log}\n"
                f"--- {self.name} stderr tail ---\n{tail_file(self.stderr_path, 3000)}")


# --------------------------------------------------------------------------- raw FTP client

def client_tls_context(min_version: ssl.TLSVersion | None = None,
                       max_version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if min_version is not None:
        ctx.minimum_version = min_version
    if max_version is not None:
        ctx.maximum_version = max_version
    return ctx


@dataclass
class Reply:
    code: int
    lines: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\r\n".join(self.lines)

    @property
    def last(self) -> str:
        return self.lines[-1] if self.lines else ""

    def __str__(self) -> str:
        return self.text


class ConnectionClosed(HarnessError):
    pass


class Ctrl:
    """A raw FTP control connection (plain, AUTH TLS, or implicit TLS)."""

    def __init__(self, port: int, host: str = "127.0.0.1", implicit: bool = False,
                 timeout: float = 10.0, ctx: ssl.SSLContext | None = None,
                 source: str | None = None):
        self.host, self.port, self.timeout = host, port, timeout
        self.ctx = ctx or client_tls_context()
        self.buf = b""
        self.sock: socket.socket = socket.create_connection(
            (host, port), timeout=timeout, source_address=(source, 0) if source else None)
        self.tls = False
        if implicit:
            self.sock = self.ctx.wrap_socket(self.sock, server_hostname="localhost")
            self.tls = True

    # -- low level
    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, line: str) -> None:
        self.send_raw(line.encode("utf-8", "surrogateescape") + b"\r\n")

    def _fill(self, timeout: float | None) -> None:
        self.sock.settimeout(self.timeout if timeout is None else timeout)
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionClosed(f"control connection closed by peer (buffer {self.buf!r})")
        self.buf += data

    def readline(self, timeout: float | None = None) -> str:
        while b"\n" not in self.buf:
            self._fill(timeout)
        line, _, self.buf = self.buf.partition(b"\n")
        return line.rstrip(b"\r").decode("utf-8", "replace")

    def reply(self, timeout: float | None = None) -> Reply:
        first = self.readline(timeout)
        m = re.match(r"^(\d{3})([ -])", first)
        if not m:
            raise HarnessError(f"malformed reply line {first!r}")
        code, lines = int(m.group(1)), [first]
        if m.group(2) == "-":
            while True:
                line = self.readline(timeout)
                lines.append(line)
                if line.startswith(f"{code} ") or line == str(code):
                    break
        return Reply(code, lines)

    def final_reply(self, timeout: float | None = None) -> tuple[list[Reply], Reply]:
        """Skips 1xx preliminary replies; returns (preliminaries, final)."""
        prelim = []
        while True:
            r = self.reply(timeout)
            if r.code >= 200:
                return prelim, r
            prelim.append(r)

    def cmd(self, line: str, timeout: float | None = None) -> Reply:
        self.send(line)
        return self.reply(timeout)

    def expect(self, line: str, code: int, timeout: float | None = None) -> Reply:
        r = self.cmd(line, timeout)
        if r.code != code:
            raise HarnessError(f"{line.split()[0] if line else line!r}: expected {code}, got {r.text!r}")
        return r

    def read_until_closed(self, timeout: float) -> tuple[bytes, bool]:
        """Reads everything until EOF; returns (data incl. buffered, closed?)."""
        deadline = time.monotonic() + timeout
        data = self.buf
        self.buf = b""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return data, False
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return data, False
            except (ConnectionResetError, ssl.SSLError, BrokenPipeError):
                return data, True
            if not chunk:
                return data, True
            data += chunk

    # -- FTP level
    def greeting(self, timeout: float | None = None) -> Reply:
        return self.reply(timeout)

    def auth_tls(self, mechanism: str = "TLS") -> Reply:
        r = self.cmd(f"AUTH {mechanism}")
        if r.code != 234:
            raise HarnessError(f"AUTH {mechanism}: expected 234, got {r.text!r}")
        if self.buf:
            raise HarnessError(f"bytes after 234 before handshake: {self.buf!r}")
        self.sock.settimeout(self.timeout)
        self.sock = self.ctx.wrap_socket(self.sock, server_hostname="localhost")
        self.tls = True
        return r

    def login(self, user: str = TEST_USER, password: str = TEST_PASS) -> Reply:
        r = self.cmd(f"USER {user}")
        if r.code == 331:
            r = self.cmd(f"PASS {password}")
        if r.code != 230:
            raise HarnessError(f"login failed: {r.text!r}")
        return r

    def pasv(self) -> tuple[str, int, Reply]:
        r = self.cmd("PASV")
        m = re.search(r"\((\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\)", r.last)
        if r.code != 227 or not m:
            raise HarnessError(f"PASV: {r.text!r}")
        n = [int(x) for x in m.groups()]
        return f"{n[0]}.{n[1]}.{n[2]}.{n[3]}", n[4] * 256 + n[5], r

    def epsv(self) -> tuple[int, Reply]:
        r = self.cmd("EPSV")
        m = re.search(r"\(\|\|\|(\d+)\|\)", r.last)
        if r.code != 229 or not m:
            raise HarnessError(f"EPSV: {r.text!r}")
        return int(m.group(1)), r

    def session(self) -> ssl.SSLSession | None:
        return getattr(self.sock, "session", None)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> "Ctrl":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def recv_all(sock: socket.socket, timeout: float) -> bytes:
    """Reads a data connection to EOF (bounded by timeout per recv)."""
    sock.settimeout(timeout)
    chunks = []
    while True:
        try:
            chunk = sock.recv(1 << 20)
        except ssl.SSLZeroReturnError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def close_tls(sock: socket.socket) -> None:
    """Sends close_notify when the socket is TLS, then closes."""
    try:
        if isinstance(sock, ssl.SSLSocket):
            sock.unwrap()
    except (OSError, ssl.SSLError, ValueError):
        pass
    try:
        sock.close()
    except OSError:
        pass


def make_tree(root: Path, count: int, max_size: int, seed: int = 1234) -> dict[str, str]:
    """A tree of `count` random files (sizes 0..max_size) in a few subdirectories.

    Returns {relative path: sha256}.
    """
    rng = random.Random(seed)
    digests = {}
    for i in range(count):
        sub = root / f"d{i % 7}" / (f"s{i % 3}" if i % 2 else "")
        sub.mkdir(parents=True, exist_ok=True)
        size = 0 if i == 0 else rng.randint(0, max_size)
        data = rng.randbytes(size)
        path = sub / f"f{i:03d}.bin"
        path.write_bytes(data)
        digests[str(path.relative_to(root))] = sha256_bytes(data)
    return digests


def tree_digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): sha256_file(p) for p in root.rglob("*") if p.is_file()}
