"""NAT topology (issue 3): a client behind a DNAT router reaches the gateway through a
public address, and passive and active FTPS transfers work through the NAT using the
class's `masquerade_address`.

The test builds its own network namespaces, joined by veth pairs created directly
inside them (nothing is added to, or sent from, the host's own network namespace):

    ns cli  10.231.1.2 ── 10.231.1.1  ns rtr  10.231.2.1 ── 10.231.2.2  ns gw  10.231.3.1 ── 10.231.3.2  ns be
    (curl, ftplib)        (ip_forward, nftables:            (ftpsgate)                       (plaintext vsftpd)
                           DNAT 10.231.99.77 → 10.231.2.2,
                           SNAT of the gateway's outgoing connections to 10.231.99.77,
                           forward policy drop otherwise)

The "public" address 10.231.99.77 exists only inside the router's NAT rules. The
client talks to 10.231.99.77 only; the router forwards nothing else to the gateway's
network. The gateway sees the client's real source address (DNAT keeps it), so its
foreign-address and bounce checks compare against 10.231.1.2.

A second listener on the backend-side network (10.231.3.1) serves an "internal" client
(curl in ns be) whose class has no masquerade address: its PASV names 10.231.3.1.

Run as root:  /usr/bin/python3 -m pytest -q tests/integration/test_nat.py
Needs: iproute2 (ip netns), nftables (nft), vsftpd, curl; FTPSGATE_BIN as for the suite.
Namespaces are named fgnat<pid>-<role> and deleted at teardown, also after failures.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import harness
from harness import (NO_REUSE_MESSAGE, TEST_PASS, TEST_USER, Gateway, HarnessError, Vsftpd,
                     klass, run, sha256_file, tail_file, wait_until)

pytestmark = pytest.mark.data

# --------------------------------------------------------------------------- addresses
# All of these exist only inside the namespaces this module creates.
CLIENT_IP = "10.231.1.2"
ROUTER_CLIENT_SIDE = "10.231.1.1"
ROUTER_GW_SIDE = "10.231.2.1"
GW_OUTER_IP = "10.231.2.2"
GW_INNER_IP = "10.231.3.1"
BACKEND_IP = "10.231.3.2"
PUBLIC_IP = "10.231.99.77"

CONTROL_PORT = 2121            # gateway's explicit FTPS port (inside ns gw)
PASSIVE_PORTS = (30100, 30109)  # gateway's passive range (inside ns gw)
BACKEND_PORT = 21
BACKEND_PASSIVE = (40000, 40049)

FILE_SIZE = 8 << 20
NFT_TABLE = "ftpsgate_nat"

PY = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable

# Connects, reads the greeting; prints it. Exit code != 0 when anything fails.
PROBE = ("import socket,sys\n"
         "s=socket.create_connection((sys.argv[1],int(sys.argv[2])),timeout=float(sys.argv[3]))\n"
         "s.settimeout(float(sys.argv[3]))\n"
         "sys.stdout.write(s.recv(200).decode('latin1'))\n")


# --------------------------------------------------------------------------- namespaces

class Topology:
    """The four namespaces, their links, routes and the router's nftables rules."""

    ROLES = ("cli", "rtr", "gw", "be")

    def __init__(self) -> None:
        self.ns = {role: f"fgnat{os.getpid()}-{role}" for role in self.ROLES}
        self.created: list[str] = []

    # -- commands
    def exec_prefix(self, role: str) -> list[str]:
        return ["ip", "netns", "exec", self.ns[role]]

    def ip(self, role: str, *args: str) -> None:
        run(["ip", "-n", self.ns[role], *args], timeout=15, check=True)

    def sh(self, role: str, *cmd: str, timeout: float = 15, input: bytes | None = None,
           check: bool = True) -> subprocess.CompletedProcess:
        return run([*self.exec_prefix(role), *cmd], timeout=timeout, input=input, check=check)

    # -- lifecycle
    def build(self) -> None:
        for role in self.ROLES:
            proc = run(["ip", "netns", "add", self.ns[role]], timeout=15)
            if proc.returncode != 0:
                raise _Unusable(f"'ip netns add' failed: {proc.stderr.decode(errors='replace').strip()}")
            self.created.append(self.ns[role])
            self.ip(role, "link", "set", "lo", "up")

        # veth pairs created inside the namespaces: (role A, ifname A, role B, ifname B)
        links = [("cli", "eth0", "rtr", "cli0"),
                 ("rtr", "gw0", "gw", "eth0"),
                 ("gw", "be0", "be", "eth0")]
        for a, ia, b, ib in links:
            self.ip(a, "link", "add", ia, "type", "veth", "peer", "name", ib, "netns", self.ns[b])
        addresses = [("cli", "eth0", CLIENT_IP), ("rtr", "cli0", ROUTER_CLIENT_SIDE),
                     ("rtr", "gw0", ROUTER_GW_SIDE), ("gw", "eth0", GW_OUTER_IP),
                     ("gw", "be0", GW_INNER_IP), ("be", "eth0", BACKEND_IP)]
        for role, ifname, address in addresses:
            self.ip(role, "addr", "add", f"{address}/24", "dev", ifname)
            self.ip(role, "link", "set", ifname, "up")
        self.ip("cli", "route", "add", "default", "via", ROUTER_CLIENT_SIDE)
        self.ip("gw", "route", "add", "default", "via", ROUTER_GW_SIDE)
        self.ip("be", "route", "add", "default", "via", GW_INNER_IP)
        self.sh("rtr", "sysctl", "-qw", "net.ipv4.ip_forward=1")
        self.sh("gw", "sysctl", "-qw", "net.ipv4.ip_forward=0")  # the gateway is no router

        if shutil.which("nft") is None:
            raise _Unusable("nft (Debian package nftables) is not installed")
        ruleset = textwrap.dedent(f"""\
            table ip {NFT_TABLE} {{
              chain prerouting {{
                type nat hook prerouting priority dstnat; policy accept;
                ip daddr {PUBLIC_IP} tcp dport {{ {CONTROL_PORT}, {PASSIVE_PORTS[0]}-{PASSIVE_PORTS[1]} }} counter dnat to {GW_OUTER_IP}
              }}
              chain postrouting {{
                type nat hook postrouting priority srcnat; policy accept;
                oifname "cli0" ip saddr {GW_OUTER_IP} counter snat to {PUBLIC_IP}
              }}
              chain forward {{
                type filter hook forward priority filter; policy drop;
                ct state established,related accept
                iifname "cli0" oifname "gw0" ct status dnat ip daddr {GW_OUTER_IP} accept
                iifname "gw0" oifname "cli0" ip saddr {GW_OUTER_IP} ip daddr {CLIENT_IP} accept
              }}
            }}
            """)
        proc = self.sh("rtr", "nft", "-f", "-", input=ruleset.encode(), check=False)
        if proc.returncode != 0:
            raise _Unusable(f"nft could not load the NAT ruleset: "
                            f"{proc.stderr.decode(errors='replace').strip()}")

    def destroy(self) -> list[str]:
        problems = []
        for name in reversed(self.created):
            proc = run(["ip", "netns", "del", name], timeout=15)
            if proc.returncode != 0:
                problems.append(f"ip netns del {name}: {proc.stderr.decode(errors='replace').strip()}")
        self.created.clear()
        return problems

    # -- probes (run inside a namespace; the host never talks to these addresses)
    def greeting(self, role: str, host: str, port: int, timeout: float = 2.0) -> str | None:
        proc = run([*self.exec_prefix(role), PY, "-c", PROBE, host, str(port), str(timeout)],
                   timeout=timeout + 10)
        if proc.returncode != 0:
            return None
        return proc.stdout.decode("latin1")

    def nft_counters(self) -> dict[str, int]:
        """packets counted by the DNAT and SNAT rules."""
        text = self.sh("rtr", "nft", "list", "table", "ip", NFT_TABLE).stdout.decode()
        out = {}
        for kind in ("dnat", "snat"):
            m = re.search(rf"counter packets (\d+) bytes \d+ {kind} to", text)
            out[kind] = int(m.group(1)) if m else -1
        return out

    def describe(self) -> str:
        parts = []
        for role in self.ROLES:
            if self.ns[role] not in self.created:
                continue
            addr = run(["ip", "-n", self.ns[role], "-br", "addr"], timeout=10).stdout.decode()
            route = run(["ip", "-n", self.ns[role], "route"], timeout=10).stdout.decode()
            parts.append(f"[{role}] {self.ns[role]}\n{addr}{route}")
        if self.ns["rtr"] in self.created:
            parts.append(run([*self.exec_prefix("rtr"), "nft", "list", "ruleset"],
                             timeout=10).stdout.decode())
        return "\n".join(parts)


class _Unusable(Exception):
    """Namespaces or nftables cannot be used here (reason in the message)."""


# --------------------------------------------------------------------------- processes in namespaces

class NsVsftpd(Vsftpd):
    """The harness's plaintext vsftpd, run inside ns be on BACKEND_IP:21."""

    def __init__(self, workdir: Path, topo: Topology):
        super().__init__(workdir)
        self.topo = topo
        self.port = BACKEND_PORT
        self.pasv = list(BACKEND_PASSIVE)

    host = BACKEND_IP
    max_clients = 50
    start_timeout = 15.0

    def command_prefix(self) -> list[str]:
        return self.topo.exec_prefix("be")

    def _greets(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise HarnessError(f"vsftpd exited with {self.proc.returncode}: {tail_file(self.out)}")
        text = self.topo.greeting("be", BACKEND_IP, BACKEND_PORT)
        return bool(text and text.startswith("220"))


class NsGateway(Gateway):
    """The harness's Gateway (config writer, log readers), run inside ns gw."""

    def __init__(self, workdir: Path, certs: harness.Certs, topo: Topology):
        self.topo = topo

        def edit(config: dict) -> None:
            config["listeners"] = [
                {"name": "public", "address": f"{GW_OUTER_IP}:{CONTROL_PORT}",
                 "mode": "explicit", "backend": "vsftpd"},
                {"name": "internal", "address": f"{GW_INNER_IP}:{CONTROL_PORT}",
                 "mode": "explicit", "backend": "vsftpd"},
            ]
            config["backends"] = [{"name": "vsftpd", "servers": [f"{BACKEND_IP}:{BACKEND_PORT}"],
                                   "connect_timeout": "3s"}]
            config["classes"] = [
                klass("natted", "on", **{"from": ["10.231.1.0/24"],
                                         "masquerade_address": PUBLIC_IP}),
                klass("internal", "on", **{"from": ["10.231.3.0/24"]}),
                klass("default", "on"),
            ]
            # "" = the control connection's local address (what internal clients must see)
            config["passive"] = {"ports": f"{PASSIVE_PORTS[0]}-{PASSIVE_PORTS[1]}",
                                 "masquerade_address": ""}
            config["data"] = {"allow_foreign_address": False}
            config["active"] = {"enabled": True, "allow_foreign_address": False}
            config["tls"]["session_reuse_required"] = True

        super().__init__(workdir, BACKEND_PORT, certs, name="gw-nat", edit=edit)

    def start(self, timeout: float = 15.0) -> "NsGateway":
        if not harness.GATEWAY_BIN.exists():
            raise HarnessError(f"gateway binary {harness.GATEWAY_BIN} does not exist "
                               f"(set FTPSGATE_BIN or build it)")
        self.write_config()
        err = open(self.stderr_path, "wb")
        try:
            self.proc = subprocess.Popen(
                [*self.topo.exec_prefix("gw"), str(harness.GATEWAY_BIN),
                 "--config", str(self.config_path)],
                stdin=subprocess.DEVNULL, stdout=err, stderr=subprocess.STDOUT, cwd=self.workdir)
        finally:
            err.close()
        for host in (GW_OUTER_IP, GW_INNER_IP):
            wait_until(lambda: self._accepts(host, CONTROL_PORT), timeout,
                       f"gateway listener {host}:{CONTROL_PORT} in ns gw", interval=0.1,
                       context=self.tail)
        return self

    def _accepts(self, host: str, port: int) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise HarnessError(f"gateway exited with {self.proc.returncode} during start\n"
                               + self.tail())
        text = self.topo.greeting("gw", host, port)
        return bool(text and text.startswith("220"))


# --------------------------------------------------------------------------- fixtures

def make_nat_certs(directory: Path, ips: tuple[str, ...] = (PUBLIC_IP, GW_OUTER_IP, GW_INNER_IP)) -> harness.Certs:
    """A self-signed certificate naming the addresses clients connect to."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-days", "30", "-subj", "/CN=ftpsgate-nat-test",
         "-addext", "subjectAltName=" + ",".join(f"IP:{ip}" for ip in ips),
         "-keyout", str(key), "-out", str(cert)], timeout=30, check=True)
    key.chmod(0o600)
    return harness.Certs(cert=cert, key=key)


@pytest.fixture(scope="module")
def nat_workdir(workdir):
    d = workdir / f"nat-{os.getpid()}"
    d.mkdir(parents=True, exist_ok=True)
    d.chmod(0o755)
    return d


@pytest.fixture(scope="module")
def topo():
    yield from namespaces(Topology)


def namespaces(topology_class):
    """A module fixture's body: builds the topology (or skips when namespaces or nftables
    cannot be used here), yields it, and checks that teardown left no namespace behind."""
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root (ip netns add)")
    if shutil.which("ip") is None:
        pytest.skip("iproute2 (ip) is not installed")
    t = topology_class()
    try:
        try:
            t.build()
        except _Unusable as e:
            pytest.skip(f"network namespaces / nftables not usable here: {e}")
        yield t
    finally:
        problems = t.destroy()
        leftover = [n for n in t.ns.values()
                    if n in run(["ip", "netns", "list"], timeout=10).stdout.decode()]
        assert not problems and not leftover, f"namespace teardown: {problems} {leftover}"


@pytest.fixture(scope="module")
def nat_backend(topo, nat_workdir):
    b = NsVsftpd(nat_workdir / "vsftpd", topo)
    try:
        b.start()
        yield b
    finally:
        b.stop()


@pytest.fixture(scope="module")
def nat_certs(nat_workdir):
    return make_nat_certs(nat_workdir / "certs")


@pytest.fixture(scope="module")
def nat_gateway(topo, nat_backend, nat_certs, nat_workdir):
    gw = NsGateway(nat_workdir / "gateway", nat_certs, topo)
    try:
        gw.start()
        yield gw
    finally:
        gw.stop()
    report = gw.sanitizer_report()
    assert report is None, f"sanitizer report on the gateway's stderr:\n{report}"


@pytest.fixture(scope="module")
def payload(nat_workdir):
    path = nat_workdir / "payload-8MiB.bin"
    path.write_bytes(os.urandom(FILE_SIZE))
    path.chmod(0o644)
    return path, sha256_file(path)


@pytest.fixture
def nat(request, topo, nat_backend, nat_gateway):
    """Per test: failure reports get the gateway's and the backend's logs."""
    request.node._ftpsgate_gateways = [nat_gateway]
    request.node._ftpsgate_backend = nat_backend
    request.node._ftpsgate_backend_mark = nat_backend.log_mark()
    return topo


@pytest.fixture
def scratch(request, nat_workdir, nat_backend):
    return fresh_scratch(request, nat_workdir, nat_backend)


def fresh_scratch(request, workdir: Path, backend: Vsftpd) -> tuple[Path, str]:
    """(local directory, remote directory name) fresh for this test."""
    name = "".join(c if c.isalnum() else "-" for c in request.node.name)[:50]
    local = workdir / "local" / name
    if local.exists():
        shutil.rmtree(local)
    local.mkdir(parents=True)
    local.chmod(0o755)
    remote = f"t-{name}"
    if (backend.root / remote).exists():
        shutil.rmtree(backend.root / remote)
    backend.mkdir(remote)
    return local, remote


# --------------------------------------------------------------------------- clients

def curl_in(topo: Topology, role: str, certs: harness.Certs, *args: str,
            timeout: float = 120) -> subprocess.CompletedProcess:
    cmd = [*topo.exec_prefix(role), "curl", "-sS", "-v", "--connect-timeout", "10",
           "--max-time", str(int(timeout - 10)), "--cacert", str(certs.cert),
           "-u", f"{TEST_USER}:{TEST_PASS}", "--ssl-reqd", *args]
    return run(cmd, timeout=timeout)


def check_curl(proc: subprocess.CompletedProcess, gw: Gateway, what: str) -> str:
    text = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == 0, (
        f"curl {what} failed with exit code {proc.returncode}\n"
        f"curl -v tail:\n{text[-4000:]}\n{gw.tail()}")
    return text


PASV_PUBLIC = re.compile(r"< 227 Entering Passive Mode \(10,231,99,77,(\d+),(\d+)\)")


def passive_port_seen(verbose: str, pattern: re.Pattern = PASV_PUBLIC) -> int:
    m = pattern.search(verbose)
    assert m, ("the client did not see a 227 reply naming the public address "
               f"{PUBLIC_IP}; PASV-related lines: "
               f"{[l for l in verbose.splitlines() if 'PASV' in l or '227' in l]}")
    return int(m.group(1)) * 256 + int(m.group(2))


ACTIVE_SCRIPT = r'''
"""Active-mode FTPS client run inside ns cli: PORT or EPRT naming the client's own
address, PROT P, data connections resuming the control connection's TLS session."""
import ftplib, hashlib, json, socket, ssl, sys

args = json.loads(sys.argv[1])


class ActiveReusingFTP_TLS(ftplib.FTP_TLS):
    use_eprt = False

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.set_pasv(False)
        self.port_commands, self.port_replies, self.data_peers, self.reused = [], [], [], []

    def makeport(self):
        sock = socket.create_server(("", 0), family=socket.AF_INET, backlog=1)
        port = sock.getsockname()[1]
        host = self.sock.getsockname()[0]  # the client's own address
        if self.use_eprt:
            cmd = f"EPRT |1|{host}|{port}|"
        else:
            cmd = "PORT " + ",".join(host.split(".") + [str(port >> 8), str(port & 0xFF)])
        self.port_commands.append(cmd)
        self.port_replies.append(self.voidcmd(cmd))
        sock.settimeout(self.timeout)
        return sock

    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        self.data_peers.append(list(conn.getpeername()[:2]))
        if self._prot_p:
            conn = self.context.wrap_socket(conn, server_hostname=self.host,
                                            session=self.sock.session)
            self.reused.append(conn.session_reused)
        return conn, size


ctx = ssl.create_default_context(cafile=args["cafile"])  # verifies the IP SAN
ftp = ActiveReusingFTP_TLS(context=ctx, timeout=30)
result = {"welcome": ftp.connect(args["host"], args["port"])}
result["control_local"] = list(ftp.sock.getsockname()[:2])
ftp.auth()
ftp.login(args["user"], args["password"])
ftp.prot_p()
for mode in ("PORT", "EPRT"):
    ftp.use_eprt = mode == "EPRT"
    name = f"{args['remote']}/active-{mode}.bin"
    with open(args["source"], "rb") as f:
        result[f"{mode}_stor"] = ftp.storbinary(f"STOR {name}", f)
    h = hashlib.sha256()
    result[f"{mode}_retr"] = ftp.retrbinary(f"RETR {name}", h.update)
    result[f"{mode}_download_sha256"] = h.hexdigest()
    with open(args["download_to"] + "." + mode, "wb") as f:
        ftp.retrbinary(f"RETR {name}", f.write)
result.update(port_commands=ftp.port_commands, port_replies=ftp.port_replies,
              data_peers=ftp.data_peers, reused=ftp.reused)
ftp.quit()
print(json.dumps(result))
'''


# --------------------------------------------------------------------------- tests

def test_topology_only_the_public_address_reaches_the_gateway(nat):
    """Sanity of the NAT: the client reaches the gateway via 10.231.99.77 only."""
    greeting = nat.greeting("cli", PUBLIC_IP, CONTROL_PORT, timeout=5)
    assert greeting and greeting.startswith("220"), (
        f"no greeting via DNAT {PUBLIC_IP}:{CONTROL_PORT}: {greeting!r}\n{nat.describe()}")
    # Bounded probes of what must not be reachable (dropped / unroutable at the router).
    assert nat.greeting("cli", GW_OUTER_IP, CONTROL_PORT, timeout=1.5) is None, \
        "the client reached the gateway's own address without NAT"
    assert nat.greeting("cli", BACKEND_IP, BACKEND_PORT, timeout=1.5) is None, \
        "the client reached the backend directly"
    assert nat.nft_counters()["dnat"] > 0, nat.describe()


def test_passive_through_dnat(nat, nat_gateway, nat_backend, nat_certs, payload, scratch):
    """curl in ns cli, PASV (address from the reply) and EPSV, PROT P with session reuse:
    upload and download of a random 8 MiB file, sha256 on the client, the backend's disk,
    and after the round trip."""
    local, remote = scratch
    src, digest = payload
    gw = nat_gateway
    base = f"ftp://{PUBLIC_IP}:{CONTROL_PORT}/{remote}"
    dnat_before = nat.nft_counters()["dnat"]
    log_start = len(gw.log_lines())

    # upload with PASV; curl connects to the address in the 227 reply
    up = curl_in(nat, "cli", nat_certs, "--disable-epsv", "--no-ftp-skip-pasv-ip",
                 "-T", str(src), f"{base}/passive.bin")
    verbose = check_curl(up, gw, "PASV upload")
    port = passive_port_seen(verbose)
    assert PASSIVE_PORTS[0] <= port <= PASSIVE_PORTS[1], port
    assert f"Connecting to {PUBLIC_IP} ({PUBLIC_IP}) port {port}" in verbose, \
        [l for l in verbose.splitlines() if "onnect" in l]
    on_disk = nat_backend.root / remote / "passive.bin"
    assert on_disk.stat().st_size == FILE_SIZE
    assert sha256_file(on_disk) == digest, "uploaded file differs on the backend's disk"

    # download the uploaded file with PASV
    down = local / "passive-down.bin"
    proc = curl_in(nat, "cli", nat_certs, "--disable-epsv", "--no-ftp-skip-pasv-ip",
                   "-o", str(down), f"{base}/passive.bin")
    verbose = check_curl(proc, gw, "PASV download")
    passive_port_seen(verbose)
    assert sha256_file(down) == digest, "downloaded file differs from the original"

    # and with EPSV (port only; curl reuses the control connection's address)
    down_epsv = local / "epsv-down.bin"
    proc = curl_in(nat, "cli", nat_certs, "-o", str(down_epsv), f"{base}/passive.bin")
    verbose = check_curl(proc, gw, "EPSV download")
    assert re.search(r"< 229 [^\n]*\(\|\|\|\d+\|\)", verbose), \
        [l for l in verbose.splitlines() if "EPSV" in l or "229" in l]
    assert sha256_file(down_epsv) == digest

    # The data connections went through the router's DNAT; the gateway saw the
    # client's real address, classified it, and resumed TLS on every data connection.
    assert nat.nft_counters()["dnat"] >= dnat_before + 3
    new_lines = gw.log_lines()[log_start:]
    assert not [l for l in new_lines if NO_REUSE_MESSAGE in l], "\n".join(new_lines[-30:])
    records = [json.loads(l) for l in new_lines if l.startswith("{")]
    starts = [r for r in records if r.get("event") == "session_start"
              and str(r.get("client", "")).startswith(CLIENT_IP + ":")]
    assert len(starts) >= 3, gw.tail()
    classes = {r.get("class") for r in records
               if str(r.get("client", "")).startswith(CLIENT_IP + ":") and r.get("class")}
    assert classes == {"natted"}, classes
    data_tls = [r for r in records if r.get("event") == "tls_handshake"
                and r.get("channel") == "data"]
    assert len(data_tls) >= 3 and all(r.get("resumed") is True for r in data_tls), data_tls


def test_active_through_nat(nat, nat_gateway, nat_backend, nat_certs, payload, scratch):
    """ftplib in ns cli in active mode (PORT, then EPRT) naming 10.231.1.2: the gateway
    connects out from its control connection's local address, routed via the router
    (whose SNAT makes it arrive from the public address); upload and download verified."""
    local, remote = scratch
    src, digest = payload
    gw = nat_gateway
    script = local / "active_client.py"
    script.write_text(ACTIVE_SCRIPT)
    download_to = local / "active-down.bin"
    args = {"host": PUBLIC_IP, "port": CONTROL_PORT, "cafile": str(nat_certs.cert),
            "user": TEST_USER, "password": TEST_PASS, "remote": remote,
            "source": str(src), "download_to": str(download_to)}
    snat_before = nat.nft_counters()["snat"]
    log_start = len(gw.log_lines())
    backend_mark = nat_backend.log_mark()

    proc = nat.sh("cli", PY, str(script), json.dumps(args), timeout=150, check=False)
    assert proc.returncode == 0, (
        f"active-mode client failed ({proc.returncode})\n"
        f"stderr:\n{proc.stderr.decode(errors='replace')[-4000:]}\n{gw.tail()}")
    result = json.loads(proc.stdout.decode().strip().splitlines()[-1])

    assert result["control_local"][0] == CLIENT_IP, result
    assert result["port_commands"][0].startswith("PORT 10,231,1,2,"), result["port_commands"]
    assert any(c.startswith(f"EPRT |1|{CLIENT_IP}|") for c in result["port_commands"]), \
        result["port_commands"]
    assert all(r.startswith("200") for r in result["port_replies"]), result["port_replies"]
    for mode in ("PORT", "EPRT"):
        assert result[f"{mode}_stor"].startswith("226"), result
        assert result[f"{mode}_retr"].startswith("226"), result
        on_disk = nat_backend.root / remote / f"active-{mode}.bin"
        assert sha256_file(on_disk) == digest, f"{mode} upload differs on the backend's disk"
        assert result[f"{mode}_download_sha256"] == digest, f"{mode} download differs"
        assert sha256_file(Path(f"{download_to}.{mode}")) == digest

    # Six data connections (2 × STOR + 4 × RETR), all from the gateway through the
    # router's SNAT, all resuming the control session.
    assert len(result["data_peers"]) == 6, result
    assert {tuple(p)[0] for p in result["data_peers"]} == {PUBLIC_IP}, result["data_peers"]
    assert result["reused"] == [True] * 6, result["reused"]
    assert nat.nft_counters()["snat"] >= snat_before + 6

    new_lines = gw.log_lines()[log_start:]
    assert not [l for l in new_lines if NO_REUSE_MESSAGE in l], "\n".join(new_lines[-30:])
    records = [json.loads(l) for l in new_lines if l.startswith("{")]
    assert {r.get("class") for r in records if r.get("class")} == {"natted"}, gw.tail()
    assert not [r for r in records if r.get("event") == "policy_denial"], \
        [r for r in records if r.get("event") == "policy_denial"]
    # The backend was reached in passive mode (the default data_mode), from the gateway.
    commands = nat_backend.commands_since(backend_mark)
    assert any(c.startswith(("PASV", "EPSV")) for c in commands), commands
    assert not [c for c in commands if c.startswith(("PORT", "EPRT"))], \
        "the client's PORT/EPRT reached the backend"


def test_internal_client_sees_internal_address(nat, nat_gateway, nat_backend, nat_certs,
                                               payload, scratch):
    """A client on the backend-side network (curl in ns be, class "internal" without a
    masquerade address) is given the control connection's local address 10.231.3.1."""
    local, remote = scratch
    src, digest = payload
    gw = nat_gateway
    base = f"ftp://{GW_INNER_IP}:{CONTROL_PORT}/{remote}"
    log_start = len(gw.log_lines())

    up = curl_in(nat, "be", nat_certs, "--disable-epsv", "--no-ftp-skip-pasv-ip",
                 "-T", str(src), f"{base}/internal.bin")
    verbose = check_curl(up, gw, "internal PASV upload")
    passive_port_seen(verbose, re.compile(r"< 227 Entering Passive Mode \(10,231,3,1,(\d+),(\d+)\)"))
    assert "10,231,99,77" not in verbose
    assert sha256_file(nat_backend.root / remote / "internal.bin") == digest

    down = local / "internal-down.bin"
    proc = curl_in(nat, "be", nat_certs, "--disable-epsv", "--no-ftp-skip-pasv-ip",
                   "-o", str(down), f"{base}/internal.bin")
    check_curl(proc, gw, "internal PASV download")
    assert sha256_file(down) == digest

    records = [json.loads(l) for l in gw.log_lines()[log_start:] if l.startswith("{")]
    classes = {r.get("class") for r in records
               if str(r.get("client", "")).startswith(BACKEND_IP + ":") and r.get("class")}
    assert classes == {"internal"}, classes
