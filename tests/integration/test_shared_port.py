"""Shared passive port (issue 6): with `passive.shared_port: true` every PASV/EPSV names
the same port (or a port of a small range). Protected data connections arriving there are
matched to their control session by the TLS session they resume; clear ones by source
address, and while a clear transfer from an address waits for its data connection, a
second session from that address gets no port of it: its PASV/EPSV is answered when the
first data connection has arrived (or with another port of a shared range).

Clients: curl (OpenSSL) and lftp (GnuTLS) processes, ftplib, `openssl s_client` (to save
a control connection's session and offer it on a data connection) and two clients in
network namespaces behind one masquerading router. Ports come from the harness's
allocator; namespace addresses exist only inside the namespaces the NAT test creates.
"""
from __future__ import annotations

import json
import os
import random
import re
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path

import pytest

import harness
import test_nat
from clients import (CURL_CONNECT_TIMEOUT, RecordingFTP, RecordingFTP_TLS, check_curl, connect, curl,
                     download, metric, metrics_up, run_concurrently, scrape_metrics)
from harness import TEST_PASS, TEST_USER, klass
from test_cli import check, make_config
from test_proxy_protocol import _proxied, _proxy_gateway, v1, v2
from test_tls import Interactive
from test_transfers import lftp

pytestmark = pytest.mark.data

DENIALS = "ftpsgate_policy_denials_total"
UNMATCHED = "shared_port_unmatched"
NOT_RESUMED = "session_reuse_required"


# --------------------------------------------------------------------------- configuration

def shared_config(ports: str, **overrides) -> dict:
    """gateway_factory overrides: the shared port(s), two workers (a data connection one
    worker accepts is handed to the worker holding its session), and timeouts that a
    loaded two-core machine meets."""
    base = {"passive": {"ports": ports, "shared_port": True}, "workers": 2,
            "limits": {"handshake_timeout": "20s", "data_connect_timeout": "20s"}}
    return harness.deep_merge(base, overrides)


def start_shared(gateway_factory, ports: str, **overrides):
    """A gateway on the shared port(s) with metrics; returns (gateway, metrics port)."""
    mport = harness.PORTS.port()
    gw = gateway_factory(shared_config(ports, metrics={"address": f"127.0.0.1:{mport}"}, **overrides))
    harness.wait_until(lambda: metrics_up(mport), 10, "metrics endpoint")
    warnings = [w for w in gw.events("config_warning") if "not implemented" in str(w.get("warning"))]
    assert not warnings, warnings
    return gw, mport


def denials(mport: int, reason: str) -> float:
    return metric(scrape_metrics(mport), DENIALS, reason=reason) or 0.0


def assert_no_shared_port_denials(gw, mport: int | None = None) -> None:
    if mport is not None:
        assert (denials(mport, UNMATCHED), denials(mport, NOT_RESUMED)) == (0, 0)
    refused = [r for r in gw.events("policy_denial") if r.get("reason") in (UNMATCHED, NOT_RESUMED)]
    assert not refused, refused[:5]


# --------------------------------------------------------------------------- what the clients saw

PASV_227 = re.compile(r"\b227 [^\r\n(]*\((?:\d+,){4}(\d+),(\d+)\)")
EPSV_229 = re.compile(r"\b229 [^\r\n(]*\(\|\|\|(\d+)\|\)")


def announced_ports(text: str) -> list[int]:
    """Ports of the 227/229 replies in a client's transcript (curl -v, lftp debug)."""
    return ([int(hi) * 256 + int(lo) for hi, lo in PASV_227.findall(text)]
            + [int(p) for p in EPSV_229.findall(text)])


def interval(record: dict) -> tuple[float, float]:
    """(start, end) of a transfer record: it is logged at the end, with its duration."""
    end = datetime.fromisoformat(record["ts"].replace("Z", "+00:00")).timestamp()
    return end - float(record["seconds"]), end


def most_at_once(records: list[dict]) -> int:
    """The largest number of these transfers in progress at one moment."""
    edges = sorted((t, step) for r in records for t, step in zip(interval(r), (1, -1)))
    running = peak = 0
    for _, step in edges:  # at a tie an end (-1) sorts before a start (+1)
        running += step
        peak = max(peak, running)
    return peak


# --------------------------------------------------------------------------- files

@dataclass
class ClientFiles:
    """One client's own files: one to download from the backend, one to upload."""
    down: str          # name in the remote directory
    down_digest: str
    got: Path          # where the download lands
    up: Path           # local file to upload
    up_name: str       # its name in the remote directory
    up_digest: str


def client_files(backend, remote_dir: str, local_dir: Path, count: int, max_size: int,
                 seed: int, min_size: int = 1, empty: bool = True) -> list[ClientFiles]:
    """Distinct random content per client (sizes min_size..max_size; with `empty`,
    client 0 uploads and client 1 downloads an empty file)."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        down = rng.randbytes(0 if empty and i == 1 else rng.randint(min_size, max_size))
        up = rng.randbytes(0 if empty and i == 0 else rng.randint(min_size, max_size))
        backend.put(f"{remote_dir}/down-{i}.bin", down)
        up_path = local_dir / f"up-{i}.bin"
        up_path.write_bytes(up)
        out.append(ClientFiles(f"down-{i}.bin", harness.sha256_bytes(down), local_dir / f"got-{i}.bin",
                               up_path, f"up-{i}.bin", harness.sha256_bytes(up)))
    return out


def check_files(files: list[ClientFiles], backend_dir: Path, gw=None, transcripts: dict | None = None) -> None:
    """Every client got its own file and its upload is intact on the backend's disk. A
    failure says how each wrong file differs, with the client's transcript and the
    gateway's records of that file."""
    wrong = [i for i, f in enumerate(files)
             if not f.got.exists() or harness.sha256_file(f.got) != f.down_digest]
    assert not wrong, (f"downloads missing or differing: {[files[i].down for i in wrong[:10]]}\n"
                       + "\n".join(explain_download(i, files[i], backend_dir, gw, transcripts or {})
                                   for i in wrong[:2]))
    wrong = [f.up_name for f in files if harness.sha256_file(backend_dir / f.up_name) != f.up_digest]
    assert not wrong, f"uploads differing on the backend's disk: {wrong[:10]}"


def explain_download(i: int, f: ClientFiles, backend_dir: Path, gw, transcripts: dict) -> str:
    expected = (backend_dir / f.down).read_bytes()
    got = f.got.read_bytes() if f.got.exists() else None
    if got is None:
        how = "the client wrote no file"
    else:
        first = next((k for k, (a, b) in enumerate(zip(got, expected)) if a != b), min(len(got), len(expected)))
        how = f"{len(got)} bytes against {len(expected)}, first difference at offset {first}"
    records = [r for r in gw.events() if f.down in json.dumps(r)] if gw is not None else []
    return (f"client {i} ({f.down}): {how}\ngateway records naming it: {records[:8]}\n"
            f"client transcript tail:\n{transcripts.get(i, '(none)')[-3000:]}")


# --------------------------------------------------------------------------- clients

def clear_client(gw, remote_dir: str) -> RecordingFTP:
    ftp = RecordingFTP(timeout=30)
    ftp.connect("127.0.0.1", gw.explicit_port)
    ftp.login(TEST_USER, TEST_PASS)
    ftp.cwd(remote_dir)
    return ftp


def round_trip(ftp, backend, remote_dir: str, f: ClientFiles) -> None:
    """The client's own download and upload (in remote_dir, its working directory),
    both checked by sha256."""
    assert harness.sha256_bytes(download(ftp, f.down)) == f.down_digest, f"{f.down} differs"
    with open(f.up, "rb") as src:
        ftp.storbinary(f"STOR {f.up_name}", src)
    assert harness.sha256_file(backend.root / remote_dir / f.up_name) == f.up_digest


def next_transfer(certs, *more: str) -> list[str]:
    """curl --next and the per-transfer options it resets (the connection is reused)."""
    return ["--next", "--connect-timeout", CURL_CONNECT_TIMEOUT, "--max-time", "120", "--cacert", str(certs.cert),
            "-u", f"{TEST_USER}:{TEST_PASS}", "--ssl-reqd", *more]


# --------------------------------------------------------------------------- configuration check

@pytest.mark.parametrize("kind", ["single", "range"])
def test_check_accepts_a_shared_port(workdir, backend, certs, kind):
    ports = harness.PORTS.range(1 if kind == "single" else 3)
    spec = str(ports[0]) if kind == "single" else f"{ports[0]}-{ports[-1]}"
    gw = make_config(workdir, backend, certs, f"shared-port-{kind}",
                     {"passive": {"ports": spec, "shared_port": True}})
    proc = check(gw)
    out = (proc.stdout + proc.stderr).decode("utf-8", "replace")
    assert proc.returncode == 0, out
    assert "not implemented" not in out.lower(), out


# --------------------------------------------------------------------------- 100 clients, one port

CLIENTS = 100


@pytest.mark.time_limit(240)
def test_hundred_concurrent_curl_and_lftp_clients_share_one_data_port(
        gateway_factory, backend, remote_dir, local_dir, certs):
    """100 clients at once from 127.0.0.1 (curl and lftp alternating, PROT P, session
    reuse required), each downloading its own random file and uploading another over
    one control connection: every PASV/EPSV names the one shared port, every sha256 is
    right on the client and on the backend's disk, nothing was refused."""
    port = harness.PORTS.port()
    gw, mport = start_shared(gateway_factory, str(port),
                             limits={"max_sessions_per_ip": 4 * CLIENTS})
    files = client_files(backend, remote_dir, local_dir, CLIENTS, 2 << 20, seed=6)
    base = f"ftp://127.0.0.1:{gw.explicit_port}/{remote_dir}"
    transcripts: dict[int, str] = {}

    def curl_client(i: int, f: ClientFiles) -> None:
        # --fail-early: curl's exit code is otherwise the last transfer's, and a failed
        # download would hide behind a good upload.
        proc = curl(certs, "--fail-early", "--ssl-reqd", "-o", str(f.got), f"{base}/{f.down}",
                    *next_transfer(certs, "-T", str(f.up), f"{base}/{f.up_name}"))
        check_curl(proc, gw, f"client {i}")
        transcripts[i] = proc.stderr.decode("utf-8", "replace")

    def lftp_client(i: int, f: ClientFiles) -> None:
        debug = local_dir / f"lftp-{i}.log"
        lftp(gw, f"get {remote_dir}/{f.down} -o {f.got}\nput {f.up} -o {remote_dir}/{f.up_name}\n",
             debug, timeout=150)
        transcripts[i] = debug.read_text(errors="replace")

    started = time.monotonic()
    run_concurrently([partial(lftp_client if i % 2 else curl_client, i, f) for i, f in enumerate(files)],
                     timeout=200)
    elapsed = time.monotonic() - started
    check_files(files, backend.root / remote_dir, gw, transcripts)

    seen = {i: announced_ports(text) for i, text in transcripts.items()}
    assert sorted(seen) == list(range(CLIENTS))
    short = {i: p for i, p in seen.items() if len(p) < 2}
    assert not short, (f"clients with fewer than two passive replies in their transcript: {short}\n"
                       + "\n".join(f"client {i}: ...{transcripts[i][-3000:]}" for i in list(short)[:2]))
    elsewhere = {i: p for i, p in seen.items() if set(p) != {port}}
    assert not elsewhere, f"passive replies naming another port than {port}: {elsewhere}"

    assert_no_shared_port_denials(gw, mport)
    transfers = gw.events("transfer")
    failed = [t for t in transfers if t.get("result") != "ok"]
    assert not failed, failed[:5]
    for command in ("RETR", "STOR"):
        done = [t for t in transfers if t.get("command") == command and t.get("protection") == "private"]
        assert len(done) >= CLIENTS, (command, len(done))
    at_once = most_at_once([t for t in transfers if t.get("command") == "RETR"])
    assert at_once >= 10, f"at most {at_once} downloads were in progress at one moment"
    handshakes = gw.data_handshakes()
    assert len(handshakes) >= 2 * CLIENTS
    assert all(r.get("resumed") is True for r in handshakes), \
        [r for r in handshakes if r.get("resumed") is not True][:3]
    worker_of = {e["session"]: e.get("worker") for e in gw.events("session_start")}
    assert {0, 1} <= set(worker_of.values()), f"sessions on both workers: {set(worker_of.values())}"
    handed_over = [r for r in handshakes if r.get("handshake_worker") not in (None, worker_of[r["session"]])]
    assert handed_over, "no data connection was handshaken on another worker than its session's"
    print(f"{CLIENTS} clients, {2 * CLIENTS} transfers through port {port} in {elapsed:.1f}s, "
          f"up to {at_once} downloads at once, {len(handed_over)} handed over between workers")


# --------------------------------------------------------------------------- two clients behind one NAT address

CLI2_IP = "10.231.4.2"
CLI2_ROUTER = "10.231.4.1"
NAT_PUBLIC = test_nat.ROUTER_GW_SIDE  # the router's address on the gateway's network
NAT_TABLE = "ftpsgate_shared_nat"


class SharedNatTopology(test_nat.Topology):
    """test_nat's namespaces plus a second client (ns cli2, 10.231.4.2) on another port
    of the router, which masquerades both clients to its own address 10.231.2.1 towards
    the gateway (no DNAT: the clients talk to the gateway's 10.231.2.2 directly).

        ns cli  10.231.1.2 ─┐
                            ├ ns rtr (masquerade to 10.231.2.1) ── 10.231.2.2 ns gw ── ns be
        ns cli2 10.231.4.2 ─┘
    """

    ROLES = (*test_nat.Topology.ROLES, "cli2")

    def __init__(self) -> None:
        super().__init__()
        self.ns = {role: f"fgsp{os.getpid()}-{role}" for role in self.ROLES}

    def build(self) -> None:
        super().build()
        # test_nat's router rules (DNAT of its public address, forward drop) are replaced.
        self.sh("rtr", "nft", "delete", "table", "ip", test_nat.NFT_TABLE)
        self.ip("rtr", "link", "add", "cli1", "type", "veth", "peer", "name", "eth0",
                "netns", self.ns["cli2"])
        self.ip("rtr", "addr", "add", f"{CLI2_ROUTER}/24", "dev", "cli1")
        self.ip("rtr", "link", "set", "cli1", "up")
        self.ip("cli2", "addr", "add", f"{CLI2_IP}/24", "dev", "eth0")
        self.ip("cli2", "link", "set", "eth0", "up")
        self.ip("cli2", "route", "add", "default", "via", CLI2_ROUTER)
        ruleset = f"""\
table ip {NAT_TABLE} {{
  chain postrouting {{
    type nat hook postrouting priority srcnat; policy accept;
    oifname "gw0" ip saddr {{ {test_nat.CLIENT_IP}, {CLI2_IP} }} counter masquerade
  }}
  chain forward {{
    type filter hook forward priority filter; policy drop;
    ct state established,related accept
    iifname {{ "cli0", "cli1" }} oifname "gw0" ip daddr {test_nat.GW_OUTER_IP} accept
  }}
}}
"""
        self.sh("rtr", "nft", "-f", "-", input=ruleset.encode())


@pytest.fixture
def shared_nat(request, workdir):
    """(topology, backend, gateway, certs): the gateway in ns gw on a shared port."""
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root (ip netns add)")
    if shutil.which("ip") is None:
        pytest.skip("iproute2 (ip) is not installed")
    d = workdir / f"shared-nat-{os.getpid()}"
    d.mkdir(parents=True, exist_ok=True)
    d.chmod(0o755)
    topo = SharedNatTopology()
    nat_backend = gw = None
    try:
        try:
            topo.build()
        except test_nat._Unusable as e:
            pytest.skip(f"network namespaces / nftables not usable here: {e}")
        nat_backend = test_nat.NsVsftpd(d / "vsftpd", topo)
        nat_backend.start()
        certs = test_nat.make_nat_certs(d / "certs")
        gw = test_nat.NsGateway(d / "gateway", certs, topo)
        gw.config = harness.deep_merge(gw.config, shared_config(str(harness.PORTS.port())))
        gw.start()
        request.node._ftpsgate_gateways = [gw]
        request.node._ftpsgate_backend = nat_backend
        request.node._ftpsgate_backend_mark = nat_backend.log_mark()
        yield topo, nat_backend, gw, certs
    finally:
        if gw is not None:
            gw.stop()
        if nat_backend is not None:
            nat_backend.stop()
        problems = topo.destroy()
        listed = harness.run(["ip", "netns", "list"], timeout=10).stdout.decode()
        leftover = [n for n in topo.ns.values() if n in listed]
        assert not problems and not leftover, f"namespace teardown: {problems} {leftover}"
    report = gw.sanitizer_report()
    assert report is None, f"sanitizer report on the gateway's stderr:\n{report}"


NAT_FILE = 8 << 20

# Run inside a client namespace: an FTPS client (PROT P, the control session resumed on
# its data connections) that, after its first passive reply, says so (ready file) and
# connects only when the test says go (go file); then downloads and uploads its own file.
NAT_CLIENT = r"""
import hashlib, json, os, ssl, sys, time
args = json.loads(sys.argv[1])
sys.path.insert(0, args["lib"])
from clients import RecordingFTP_TLS, download

def wait_for_go(port):
    open(args["ready"], "w").close()
    deadline = time.monotonic() + 60
    while not os.path.exists(args["go"]):
        if time.monotonic() > deadline:
            sys.exit("no go from the test within 60s")
        time.sleep(0.02)

ftp = RecordingFTP_TLS(context=ssl.create_default_context(cafile=args["cafile"]), timeout=30)
ftp.use_epsv, ftp.after_pasv = args["epsv"], wait_for_go
ftp.connect(args["host"], args["port"])
ftp.auth()
ftp.login(args["user"], args["password"])
ftp.prot_p()
ftp.cwd(args["remote"])
got = download(ftp, args["down"])
reused = [ftp.last_data_reused]
with open(args["up"], "rb") as f:
    ftp.storbinary("STOR " + args["up_name"], f)
reused.append(ftp.last_data_reused)
print(json.dumps({"down_sha256": hashlib.sha256(got).hexdigest(), "ports": ftp.ports(),
                  "reused": reused, "local": ftp.sock.getsockname()[0]}))
ftp.quit()
"""


@pytest.mark.time_limit(180)
def test_two_clients_behind_one_nat_address_transfer_at_once(shared_nat, local_dir):
    """Clients in ns cli (EPSV) and ns cli2 (PASV), both masqueraded to 10.231.2.1,
    each hold a pending transfer on the one shared port at the same time, then download
    and upload their own 8 MiB files at once (PROT P, foreign data addresses refused):
    every sha256 right, both sessions seen from the one public address."""
    topo, nat_backend, gw, certs = shared_nat
    port = int(gw.config["passive"]["ports"])
    remote = "t-shared-nat"
    nat_backend.mkdir(remote)
    local_dir.chmod(0o755)
    files = client_files(nat_backend, remote, local_dir, 2, NAT_FILE, seed=62, min_size=NAT_FILE,
                         empty=False)
    go = local_dir / "go"
    procs = {}
    try:
        for (role, epsv), f in zip((("cli", True), ("cli2", False)), files):
            args = {"lib": str(Path(__file__).resolve().parent), "host": test_nat.GW_OUTER_IP,
                    "port": test_nat.CONTROL_PORT, "cafile": str(certs.cert), "user": TEST_USER,
                    "password": TEST_PASS, "remote": remote, "down": f.down, "up": str(f.up),
                    "up_name": f.up_name, "epsv": epsv, "ready": str(local_dir / f"ready-{role}"),
                    "go": str(go)}
            procs[role] = subprocess.Popen([*topo.exec_prefix(role), test_nat.PY, "-c", NAT_CLIENT,
                                            json.dumps(args)], stdout=subprocess.PIPE,
                                           stderr=subprocess.PIPE)

        def both_pending() -> bool:
            for role, proc in procs.items():
                if proc.poll() is not None:
                    raise AssertionError(f"client in ns {role} ended early ({proc.returncode}): "
                                         f"{proc.stderr.read().decode(errors='replace')[-3000:]}\n{gw.tail()}")
            return all((local_dir / f"ready-{role}").exists() for role in procs)

        harness.wait_until(both_pending, 60, "both clients holding a passive reply")
        go.touch()  # both transfers are pending on the one port now: connect
        results = {}
        for role, proc in procs.items():
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, (f"client in ns {role} failed ({proc.returncode}):\n"
                                          f"{err.decode(errors='replace')[-4000:]}\n{gw.tail()}")
            results[role] = json.loads(out.decode().strip().splitlines()[-1])
    finally:
        for proc in procs.values():
            harness.stop_process(proc, timeout=5)

    for (role, result), f in zip(results.items(), files):
        assert result["down_sha256"] == f.down_digest, f"{role} got another file"
        assert result["ports"] == [port, port], (role, result)
        assert result["reused"] == [True, True], (role, result)
    assert {r["local"] for r in results.values()} == {test_nat.CLIENT_IP, CLI2_IP}
    assert all(harness.sha256_file(nat_backend.root / remote / f.up_name) == f.up_digest for f in files), \
        "an upload differs on the backend's disk"

    sessions = {}
    for r in gw.events("transfer"):
        assert r.get("result") == "ok", r
        sessions.setdefault(r["session"], []).append(r)
    assert len(sessions) == 2 and all(len(t) == 2 for t in sessions.values()), sessions
    clients = {t[0]["client"].rsplit(":", 1)[0] for t in sessions.values()}
    assert clients == {NAT_PUBLIC}, f"both sessions come from the router's one address: {clients}"
    assert_no_shared_port_denials(gw)
    handshakes = gw.data_handshakes()
    assert len(handshakes) == 4 and all(r.get("resumed") is True for r in handshakes), handshakes


# --------------------------------------------------------------------------- sessions of others, no session

SECRET = b"client-two's own file, never anyone else's\n"


class SClientControl(Interactive):
    """`openssl s_client -starttls ftp` as a control connection that saves its TLS
    session (-sess_out) for another connection to offer."""

    def __init__(self, gw, version_flag: str, session_file: Path):
        super().__init__(["openssl", "s_client", "-starttls", "ftp", "-connect",
                          f"127.0.0.1:{gw.explicit_port}", version_flag, "-quiet",
                          "-sess_out", str(session_file)])

    def ask(self, line: str, code: int, timeout: float = 10) -> str:
        self.out = b""
        self.send(line.encode() + b"\r\n")
        return self.expect(rb"^%d " % code, timeout).decode("utf-8", "replace")


def offer_on_data_port(port: int, version_flag: str, *extra: str) -> tuple[str, float]:
    """openssl s_client straight to the shared port (TLS from the first byte, as a data
    connection), staying until the gateway closes it (-ign_eof); (output, seconds)."""
    start = time.monotonic()
    proc = harness.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", version_flag,
                        "-ign_eof", *extra], input=b"", timeout=20)
    return (proc.stdout + proc.stderr).decode("utf-8", "replace"), time.monotonic() - start


@pytest.mark.parametrize("version,flag", [("TLSv1.3", "-tls1_3"), ("TLSv1.2", "-tls1_2")])
def test_data_connections_with_a_foreign_session_or_none_are_refused(
        gateway_factory, backend, remote_dir, local_dir, version, flag):
    """Client 1 (s_client) logs in and saves its session; client 2 (ftplib) asks for a
    passive port. On that port, a connection resuming client 1's session (which has no
    pending transfer) and one resuming nothing are both closed right after the
    handshake, without a byte of client 2's file, and counted; then client 2's own data
    connection gets the file, and both control sessions go on."""
    port = harness.PORTS.port()
    gw, mport = start_shared(gateway_factory, str(port))
    backend.put(f"{remote_dir}/secret.bin", SECRET * 20000)
    secret_digest = harness.sha256_bytes(SECRET * 20000)
    before = {reason: denials(mport, reason) for reason in (UNMATCHED, NOT_RESUMED)}
    session_file = local_dir / "client1-session.pem"

    one = SClientControl(gw, flag, session_file)
    two = None
    try:
        one.ask(f"USER {TEST_USER}", 331)
        one.ask(f"PASS {TEST_PASS}", 230)
        one.ask("PBSZ 0", 200)
        one.ask("PROT P", 200)
        harness.wait_until(lambda: session_file.exists() and session_file.stat().st_size > 0, 10,
                           "s_client saved client 1's session")

        two = connect(gw, version, cls=RecordingFTP_TLS)
        two.cwd(remote_dir)
        seen = {}

        def intruders(announced: int) -> None:
            assert announced == port
            seen["foreign"] = offer_on_data_port(port, flag, "-sess_in", str(session_file))
            seen["none"] = offer_on_data_port(port, flag)

        two.after_pasv = intruders
        got = download(two, "secret.bin")
        assert harness.sha256_bytes(got) == secret_digest, "client 2's own data connection"
        assert two.last_data_reused

        for kind, marker in (("foreign", f"Reused, {version}"), ("none", f"New, {version}")):
            out, seconds = seen[kind]
            assert marker in out, f"{kind}: s_client did not report {marker!r}:\n{out[-3000:]}"
            assert SECRET.decode() not in out, f"{kind}: file data reached the intruder"
            assert seconds < 10, f"{kind}: closed only after {seconds:.1f}s"

        after = {reason: denials(mport, reason) for reason in (UNMATCHED, NOT_RESUMED)}
        assert {r: after[r] - before[r] for r in after} == {UNMATCHED: 1, NOT_RESUMED: 1}, (before, after)
        for reason in (UNMATCHED, NOT_RESUMED):
            gw.wait_log(lambda: gw.events("policy_denial", reason=reason), f"policy_denial {reason}")

        # Both control sessions go on; client 2 transfers again, both ways.
        one.ask("NOOP", 200)
        assert two.voidcmd("NOOP").startswith("200")
        files = client_files(backend, remote_dir, local_dir, 1, 256 * 1024, seed=63)
        round_trip(two, backend, remote_dir, files[0])
        assert two.ports() == [port] * 3
        one.ask("QUIT", 221)
        two.quit()
    finally:
        one.close()
        if two is not None:
            two.close()


# --------------------------------------------------------------------------- clear data

CLEAR = {"classes": [klass("default", "off")]}  # clear login and PROT C allowed


def test_clear_data_sequential_clients_from_one_address(gateway_factory, backend, remote_dir, local_dir):
    port = harness.PORTS.port()
    gw, mport = start_shared(gateway_factory, str(port), **CLEAR)
    files = client_files(backend, remote_dir, local_dir, 2, 1 << 20, seed=64)
    for f in files:
        ftp = clear_client(gw, remote_dir)
        round_trip(ftp, backend, remote_dir, f)
        assert ftp.ports() == [port, port]
        ftp.quit()
    transfers = gw.events("transfer")
    assert [(t["command"], t["protection"], t["result"]) for t in transfers] == \
        [("RETR", "clear", "ok"), ("STOR", "clear", "ok")] * 2
    assert_no_shared_port_denials(gw, mport)


HOLD = 1.5  # seconds client 1 waits between its passive reply and its data connection


def test_clear_data_simultaneous_clients_from_one_address_take_turns(
        gateway_factory, backend, remote_dir, local_dir):
    """Two clear sessions from 127.0.0.1 on one shared port: client 2's EPSV, sent while
    client 1's transfer waits for its data connection, is answered only once client 1
    has connected; both transfers complete with the right content."""
    port = harness.PORTS.port()
    gw, mport = start_shared(gateway_factory, str(port), **CLEAR)
    files = client_files(backend, remote_dir, local_dir, 2, 1 << 20, seed=65)
    first, second = clear_client(gw, remote_dir), clear_client(gw, remote_dir)
    second.use_epsv = True
    marks: dict[str, float] = {}
    first_answered = threading.Event()

    def hold(_port: int) -> None:
        first_answered.set()
        time.sleep(HOLD)  # client 2 asks for a port meanwhile
        marks["first connects"] = time.monotonic()

    def run_second() -> None:
        assert first_answered.wait(30), "client 1 got no passive reply"
        marks["second asks"] = time.monotonic()
        round_trip(second, backend, remote_dir, files[1])

    first.after_pasv = hold
    run_concurrently([partial(round_trip, first, backend, remote_dir, files[0]), run_second], timeout=120)
    second_answered = second.passive[0][1]
    assert marks["second asks"] < marks["first connects"] <= second_answered, \
        (marks, second_answered, "client 2's EPSV was answered before client 1's data connection")
    assert first.ports() == [port, port] and second.ports() == [port, port]
    for ftp in (first, second):
        ftp.quit()
    assert len([t for t in gw.events("transfer") if t.get("result") == "ok"]) == 4
    assert_no_shared_port_denials(gw, mport)


def test_clear_data_second_client_gets_another_port_of_a_shared_range(
        gateway_factory, backend, remote_dir, local_dir):
    """With two shared ports, client 2's PASV during client 1's pending clear transfer
    is answered at once, with the other port."""
    ports = harness.PORTS.range(2)
    gw, mport = start_shared(gateway_factory, f"{ports[0]}-{ports[1]}", **CLEAR)
    files = client_files(backend, remote_dir, local_dir, 2, 1 << 20, seed=66)
    first, second = clear_client(gw, remote_dir), clear_client(gw, remote_dir)
    first_answered, second_answered = threading.Event(), threading.Event()
    waited: list[bool] = []

    def hold(_port: int) -> None:
        first_answered.set()
        waited.append(second_answered.wait(15))  # client 1 does not connect meanwhile

    def run_second() -> None:
        assert first_answered.wait(30), "client 1 got no passive reply"
        second.after_pasv = lambda _port: second_answered.set()
        round_trip(second, backend, remote_dir, files[1])

    first.after_pasv = hold
    run_concurrently([partial(round_trip, first, backend, remote_dir, files[0]), run_second], timeout=120)
    assert waited == [True], "client 2's PASV was not answered while client 1's transfer was pending"
    assert first.ports()[0] != second.ports()[0], (first.ports(), second.ports())
    assert set(first.ports() + second.ports()) <= set(ports)
    for ftp in (first, second):
        ftp.quit()
    assert_no_shared_port_denials(gw, mport)


# --------------------------------------------------------------------------- PROXY protocol, class masquerade

PROXIED = "127.0.0.77"
MASQUERADE = "127.0.0.66"


def proxied_tls_retr(c: harness.Ctrl, port: int, header: bytes, name: str) -> bytes:
    """A data connection to the shared port: a PROXY header, the TLS handshake resuming
    c's session at once (before RETR, unlike ftplib and curl), then RETR over it."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    raw.sendall(header)
    data_sock = c.ctx.wrap_socket(raw, server_hostname="localhost", session=c.session())
    try:
        assert data_sock.session_reused
        c.send(f"RETR {name}")
        assert c.reply().code == 150
        data = harness.recv_all(data_sock, 15)
        assert c.final_reply()[1].code == 226
        return data
    finally:
        harness.close_tls(data_sock)


def test_proxied_clients_behind_one_address_with_class_masquerade(
        gateway_factory, backend, remote_dir, local_dir):
    """Two control sessions arriving through PROXY protocol from one client address, a
    class masquerade address, foreign data addresses refused, two workers: both PASV
    replies name the masquerade address and the shared port; the data connections
    (PROXY header naming the client, TLS resuming each session) reach their own
    sessions, in the opposite order of the PASVs."""
    port = harness.PORTS.port()
    gw, mport = _proxy_gateway(gateway_factory, **shared_config(
        str(port), data={"allow_foreign_address": False},
        classes=[klass("lb", "on", **{"from": [f"{PROXIED}/32"], "masquerade_address": MASQUERADE}),
                 klass("default", "on")]))
    files = client_files(backend, remote_dir, local_dir, 2, 1 << 20, seed=67)
    ctrls = []
    try:
        for i in range(2):
            c = _proxied(gw, v1(PROXIED, 40100 + i))
            ctrls.append(c)
            assert c.greeting().code == 220
            c.auth_tls()
            c.login()
            for line in ("PBSZ 0", "PROT P", "TYPE I", f"CWD {remote_dir}"):
                assert c.cmd(line).code in (200, 250), line
            host, announced, r = c.pasv()
            assert (host, announced) == (MASQUERADE, port), r.text
        for i in (1, 0):
            data = proxied_tls_retr(ctrls[i], port, v2(PROXIED, 40200 + i, dport=port), files[i].down)
            assert harness.sha256_bytes(data) == files[i].down_digest, f"session {i} got another file"
        for c in ctrls:
            c.expect("NOOP", 200)
    finally:
        for c in ctrls:
            c.close()
    assert {e.get("class") for e in gw.events("session_start") if str(e.get("client", "")).startswith(PROXIED)} \
        == {"lb"}
    assert not gw.events("policy_denial", reason="data_foreign_address")
    assert_no_shared_port_denials(gw, mport)
