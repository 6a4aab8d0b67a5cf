"""Inside-out agent across network namespaces (issue 17): nothing from the DMZ may open a
connection into the internal network, and FTPS still works end to end.

    ns client 10.232.1.2 ── 10.232.1.1  ns dmz  10.232.2.1 ── 10.232.2.2  ns inside
    (curl, lftp)                        (ftpsgate: FTPS          (vsftpd on 0.0.0.0:21, the agent;
                                         listeners, agents        nftables: every new connection
                                         listener :8990)           arriving on eth0 is dropped)

The agent dials out to 10.232.2.1:8990; the gateway's backend is agent:inside/127.0.0.1:21,
so the gateway never connects into ns inside. The DMZ is no router (ip_forward=0) and the
client has no route to ns inside at all.

Run as root: /usr/bin/python3 -m pytest -q tests/integration/test_agent_netns.py
Namespaces are named fgag<pid>-<role> and deleted at teardown, also after failures.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

import harness
from agent_util import Agent, agents_section, make_agent_pki, peer
from clients import metric
from harness import TEST_PASS, TEST_USER, HarnessError, Vsftpd, run, sha256_file, tail_file, wait_until
from test_nat import PY, NsGateway, Topology, _Unusable, fresh_scratch, make_nat_certs, namespaces

pytestmark = pytest.mark.agent

CLIENT_IP = "10.232.1.2"
DMZ_OUTER_IP = "10.232.1.1"
DMZ_INNER_IP = "10.232.2.1"
INSIDE_IP = "10.232.2.2"
EXPLICIT_PORT = 2121
IMPLICIT_PORT = 2990
AGENTS_PORT = 8990
PASSIVE_PORTS = (30200, 30259)
BACKEND_PORT = 21
# vsftpd picks passive ports at random and gives up ("500 OOPS: vsf_sysutil_bind") after a few
# taken ones: 50 sessions need a range much wider than 50.
BACKEND_PASSIVE = (40100, 40999)
METRICS_PORT = 9121
POOL_IDLE = 6
NFT_TABLE = "fg_inside"


class AgentTopology(Topology):
    ROLES = ("client", "dmz", "inside")

    def __init__(self) -> None:
        super().__init__()
        self.ns = {role: f"fgag{os.getpid()}-{role}" for role in self.ROLES}

    def build(self) -> None:
        for role in self.ROLES:
            proc = run(["ip", "netns", "add", self.ns[role]], timeout=15)
            if proc.returncode != 0:
                raise _Unusable(f"'ip netns add' failed: {proc.stderr.decode(errors='replace').strip()}")
            self.created.append(self.ns[role])
            self.ip(role, "link", "set", "lo", "up")
        self.ip("client", "link", "add", "eth0", "type", "veth", "peer", "name", "cli0", "netns", self.ns["dmz"])
        self.ip("dmz", "link", "add", "in0", "type", "veth", "peer", "name", "eth0", "netns", self.ns["inside"])
        for role, ifname, address in (("client", "eth0", CLIENT_IP), ("dmz", "cli0", DMZ_OUTER_IP),
                                      ("dmz", "in0", DMZ_INNER_IP), ("inside", "eth0", INSIDE_IP)):
            self.ip(role, "addr", "add", f"{address}/24", "dev", ifname)
            self.ip(role, "link", "set", ifname, "up")
        self.sh("dmz", "sysctl", "-qw", "net.ipv4.ip_forward=0")
        if shutil.which("nft") is None:
            raise _Unusable("nft (Debian package nftables) is not installed")
        ruleset = textwrap.dedent(f"""\
            table inet {NFT_TABLE} {{
              chain input {{
                type filter hook input priority filter; policy accept;
                iifname "eth0" ct state new counter drop
              }}
            }}
            """)
        proc = self.sh("inside", "nft", "-f", "-", input=ruleset.encode(), check=False)
        if proc.returncode != 0:
            raise _Unusable(f"nft could not load the inside ruleset: {proc.stderr.decode(errors='replace').strip()}")

    def drops(self) -> int:
        text = self.sh("inside", "nft", "list", "table", "inet", NFT_TABLE).stdout.decode()
        m = re.search(r"counter packets (\d+) bytes \d+ drop", text)
        return int(m.group(1)) if m else -1

    def describe(self) -> str:
        parts = []
        for role in self.ROLES:
            if self.ns[role] in self.created:
                addr = run(["ip", "-n", self.ns[role], "-br", "addr"], timeout=10).stdout.decode()
                parts.append(f"[{role}] {self.ns[role]}\n{addr}")
        if self.ns["inside"] in self.created:
            parts.append(run([*self.exec_prefix("inside"), "nft", "list", "ruleset"], timeout=10).stdout.decode())
        return "\n".join(parts)

    def http(self, role: str, url: str) -> tuple[int, str]:
        from agent_util import HTTP_GET
        proc = run([*self.exec_prefix(role), PY, "-c", HTTP_GET, url], timeout=20)
        if proc.returncode != 0:
            return 0, ""
        status, _, body = proc.stdout.decode("utf-8", "replace").partition("\n")
        return int(status), body


class InsideVsftpd(Vsftpd):
    """vsftpd in ns inside, listening on every address (so a probe from the DMZ to
    10.232.2.2:21 would reach it, were it not for nftables)."""

    host = "0.0.0.0"
    max_clients = 120
    start_timeout = 15.0

    def __init__(self, workdir: Path, topo: AgentTopology):
        super().__init__(workdir)
        self.topo = topo
        self.port = BACKEND_PORT
        self.pasv = list(range(BACKEND_PASSIVE[0], BACKEND_PASSIVE[1] + 1))

    def command_prefix(self) -> list[str]:
        return self.topo.exec_prefix("inside")

    def _greets(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise HarnessError(f"vsftpd exited with {self.proc.returncode}: {tail_file(self.out)}")
        text = self.topo.greeting("inside", "127.0.0.1", BACKEND_PORT)
        return bool(text and text.startswith("220"))


class DmzGateway(NsGateway):
    """The gateway in ns dmz: explicit and implicit listeners for the client, the agents
    listener for the inside, and one backend reached only through agent `inside`."""

    def __init__(self, workdir: Path, certs: harness.Certs, topo: AgentTopology, pki):
        self.topo = topo

        def edit(config: dict) -> None:
            config["listeners"] = [
                {"name": "explicit", "address": f"{DMZ_OUTER_IP}:{EXPLICIT_PORT}", "mode": "explicit",
                 "backend": "vsftpd"},
                {"name": "implicit", "address": f"{DMZ_OUTER_IP}:{IMPLICIT_PORT}", "mode": "implicit",
                 "backend": "vsftpd"},
            ]
            config["backends"] = [{"name": "vsftpd", "servers": [f"agent:inside/127.0.0.1:{BACKEND_PORT}"],
                                   "connect_timeout": "5s", "health_check": {"interval": "1s", "timeout": "3s"}}]
            config["agents"] = agents_section(pki, AGENTS_PORT, peers=[peer("inside")])
            config["agents"]["address"] = f"{DMZ_INNER_IP}:{AGENTS_PORT}"
            config["agents"]["from"] = [f"{INSIDE_IP}/32"]
            config["passive"] = {"ports": f"{PASSIVE_PORTS[0]}-{PASSIVE_PORTS[1]}"}
            config["metrics"] = {"address": f"127.0.0.1:{METRICS_PORT}"}
            config["limits"]["max_sessions"] = 200

        harness.Gateway.__init__(self, workdir, BACKEND_PORT, certs, name="gw-dmz", edit=edit)

    def start(self, timeout: float = 15.0) -> "DmzGateway":
        self.write_config()
        err = open(self.stderr_path, "ab")
        try:
            self.proc = subprocess.Popen([*self.topo.exec_prefix("dmz"), str(harness.GATEWAY_BIN),
                                          "--config", str(self.config_path)],
                                         stdin=subprocess.DEVNULL, stdout=err, stderr=subprocess.STDOUT,
                                         cwd=self.workdir)
        finally:
            err.close()
        wait_until(lambda: self._accepts(DMZ_OUTER_IP, EXPLICIT_PORT), timeout,
                   f"gateway listener {DMZ_OUTER_IP}:{EXPLICIT_PORT} in ns dmz", interval=0.1, context=self.tail)
        return self

    def _accepts(self, host: str, port: int) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise HarnessError(f"gateway exited with {self.proc.returncode} during start\n" + self.tail())
        text = self.topo.greeting("dmz", host, port)
        return bool(text and text.startswith("220"))

    def scrape(self) -> str:
        return self.topo.http("dmz", f"http://127.0.0.1:{METRICS_PORT}/metrics")[1]

    def readyz(self) -> int:
        return self.topo.http("dmz", f"http://127.0.0.1:{METRICS_PORT}/readyz")[0]


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def ag_workdir(workdir):
    d = workdir / f"agent-netns-{os.getpid()}"
    d.mkdir(parents=True, exist_ok=True)
    d.chmod(0o755)
    return d


@pytest.fixture(scope="module")
def topo():
    yield from namespaces(AgentTopology)


@pytest.fixture(scope="module")
def pki(ag_workdir):
    p = make_agent_pki(ag_workdir / "agent-pki")
    # the agent runs as root here, but keep the files readable like a deployment would
    return p


@pytest.fixture(scope="module")
def inside_backend(topo, ag_workdir):
    b = InsideVsftpd(ag_workdir / "vsftpd", topo)
    try:
        b.start()
        yield b
    finally:
        b.stop()


@pytest.fixture(scope="module")
def client_certs(ag_workdir):
    return make_nat_certs(ag_workdir / "certs", ips=(DMZ_OUTER_IP,))


@pytest.fixture(scope="module")
def dmz_gateway(topo, inside_backend, client_certs, pki, ag_workdir):
    gw = DmzGateway(ag_workdir / "gateway", client_certs, topo, pki)
    try:
        gw.start()
        yield gw
    finally:
        gw.stop()
    report = gw.sanitizer_report()
    assert report is None, f"sanitizer report on the gateway's stderr:\n{report}"


@pytest.fixture(scope="module")
def inside_agent(topo, inside_backend, dmz_gateway, pki, ag_workdir):
    targets = [f"127.0.0.1:{BACKEND_PORT}", f"127.0.0.1:{BACKEND_PASSIVE[0]}-{BACKEND_PASSIVE[1]}"]
    a = Agent(ag_workdir / "agent", pki, AGENTS_PORT, targets, name="inside", idle=POOL_IDLE,
              prefix=topo.exec_prefix("inside"), gateway_host=DMZ_INNER_IP)
    try:
        a.start()
        yield a
    finally:
        a.stop()
    report = a.sanitizer_report()
    assert report is None, f"sanitizer report on the agent's stderr:\n{report}"


@pytest.fixture
def net(request, topo, inside_backend, dmz_gateway, inside_agent):
    request.node._ftpsgate_gateways = [dmz_gateway]
    request.node._ftpsgate_backend = inside_backend
    request.node._ftpsgate_backend_mark = inside_backend.log_mark()
    wait_ready(dmz_gateway, inside_agent)
    return topo


@pytest.fixture
def scratch(request, ag_workdir, inside_backend):
    return fresh_scratch(request, ag_workdir, inside_backend)


def idle_links(gw: DmzGateway) -> float | None:
    return metric(gw.scrape(), "ftpsgate_agent_connections", agent="inside", state="idle")


def wait_ready(gw: DmzGateway, agent: Agent, timeout: float = 20.0) -> None:
    wait_until(lambda: (idle_links(gw) or 0) >= POOL_IDLE and gw.readyz() == 200, timeout,
               f"{POOL_IDLE} idle links of agent inside and /readyz 200",
               context=lambda: gw.tail() + "\n" + agent.tail())


# --------------------------------------------------------------------------- clients

def curl_in(topo, certs, *args: str, timeout: float = 150) -> subprocess.CompletedProcess:
    cmd = [*topo.exec_prefix("client"), "curl", "-sS", "-v", "--connect-timeout", "30", "--max-time",
           str(int(timeout - 10)), "--cacert", str(certs.cert), "-u", f"{TEST_USER}:{TEST_PASS}", *args]
    return run(cmd, timeout=timeout)


def ok(proc: subprocess.CompletedProcess, gw, agent, what: str) -> None:
    assert proc.returncode == 0, (f"curl {what} failed with exit code {proc.returncode}\n"
                                  f"curl -v tail:\n{proc.stderr.decode('utf-8', 'replace')[-3000:]}\n"
                                  f"{gw.tail()}\n{agent.tail()}")


# --------------------------------------------------------------------------- tests

def test_the_dmz_cannot_open_a_connection_inside_yet_the_agent_links_are_up(net, dmz_gateway, inside_agent):
    before = net.drops()
    assert net.greeting("dmz", INSIDE_IP, BACKEND_PORT, timeout=1.5) is None, \
        "the DMZ reached vsftpd inside directly\n" + net.describe()
    assert net.drops() > before, "nftables did not count the DMZ's connection attempt\n" + net.describe()
    assert net.greeting("client", INSIDE_IP, BACKEND_PORT, timeout=1.5) is None
    assert (idle_links(dmz_gateway) or 0) >= POOL_IDLE
    status, body = inside_agent.http("/readyz")
    assert status == 200, f"agent /readyz {status}: {body}"


@pytest.mark.time_limit(240)
def test_curl_and_lftp_explicit_and_implicit_up_and_down(net, dmz_gateway, inside_agent, inside_backend,
                                                          client_certs, scratch):
    local, remote = scratch
    data = os.urandom(8 << 20)
    digest = harness.sha256_bytes(data)
    inside_backend.put(f"{remote}/down.bin", data)
    src = local / "up.bin"
    src.write_bytes(data)
    src.chmod(0o644)
    for mode, base, tls in (("explicit", f"ftp://{DMZ_OUTER_IP}:{EXPLICIT_PORT}/{remote}", ["--ssl-reqd"]),
                            ("implicit", f"ftps://{DMZ_OUTER_IP}:{IMPLICIT_PORT}/{remote}", [])):
        out = local / f"down-{mode}.bin"
        ok(curl_in(net, client_certs, *tls, "-o", str(out), f"{base}/down.bin"), dmz_gateway, inside_agent,
           f"{mode} download")
        assert sha256_file(out) == digest, f"{mode} download differs"
        ok(curl_in(net, client_certs, *tls, "-T", str(src), f"{base}/up-{mode}.bin"), dmz_gateway, inside_agent,
           f"{mode} upload")
        assert sha256_file(inside_backend.root / remote / f"up-{mode}.bin") == digest, f"{mode} upload differs"

    tree = local / "tree"
    digests = harness.make_tree(tree, 10, 64 * 1024)
    for mode, url in (("explicit", f"ftp://{DMZ_OUTER_IP}:{EXPLICIT_PORT}"),
                      ("implicit", f"ftps://{DMZ_OUTER_IP}:{IMPLICIT_PORT}")):
        script = ("set cmd:fail-exit true\nset ftp:ssl-force true\nset ftp:ssl-protect-data true\n"
                  "set ssl:verify-certificate no\nset ftp:passive-mode true\nset net:max-retries 2\n"
                  "set net:timeout 20\n"
                  f"open -u {TEST_USER},{TEST_PASS} {url}\n"
                  f"mirror -R {tree} {remote}/tree-{mode}\nmirror {remote}/tree-{mode} {local / ('back-' + mode)}\n")
        proc = run([*net.exec_prefix("client"), "lftp", "-c", script], timeout=150)
        assert proc.returncode == 0, (f"lftp {mode} failed: {proc.stderr.decode('utf-8', 'replace')[-3000:]}\n"
                                      f"{dmz_gateway.tail()}\n{inside_agent.tail()}")
        assert harness.tree_digests(inside_backend.root / remote / f"tree-{mode}") == digests, f"lftp {mode} up"
        assert harness.tree_digests(local / f"back-{mode}") == digests, f"lftp {mode} down"


@pytest.mark.time_limit(300)
def test_fifty_concurrent_sessions_through_the_agent(net, dmz_gateway, inside_agent, inside_backend,
                                                     client_certs, scratch):
    local, remote = scratch
    from clients import run_concurrently
    files = {}
    for i in range(50):
        data = os.urandom(1 << 20)
        files[i] = harness.sha256_bytes(data)
        inside_backend.put(f"{remote}/d{i}.bin", data)
        (local / f"u{i}.bin").write_bytes(data)
    base = f"ftp://{DMZ_OUTER_IP}:{EXPLICIT_PORT}/{remote}"

    def job(i):
        def run_one():
            # one session: the download, then (--next, options again) the upload on the same connection
            proc = curl_in(net, client_certs, "--ssl-reqd", "--fail-early", "-o", str(local / f"got{i}.bin"),
                           f"{base}/d{i}.bin", "--next", "--cacert", str(client_certs.cert),
                           "-u", f"{TEST_USER}:{TEST_PASS}", "--ssl-reqd", "-T", str(local / f"u{i}.bin"),
                           f"{base}/u{i}.bin", timeout=200)
            ok(proc, dmz_gateway, inside_agent, f"session {i}")
        return run_one
    run_concurrently([job(i) for i in range(50)], timeout=240)
    for i in range(50):
        assert sha256_file(local / f"got{i}.bin") == files[i], f"download {i} differs"
        assert sha256_file(inside_backend.root / remote / f"u{i}.bin") == files[i], f"upload {i} differs"
    wait_until(lambda: metric(dmz_gateway.scrape(), "ftpsgate_agent_connections", agent="inside",
                              state="in_use") == 0, 20, "no link in use after the sessions")
    wait_ready(dmz_gateway, inside_agent)


@pytest.mark.time_limit(240)
def test_agent_killed_mid_transfer_then_restarted(net, dmz_gateway, inside_agent, inside_backend, client_certs,
                                                  scratch):
    local, remote = scratch
    big = os.urandom(64 << 20)
    inside_backend.put(f"{remote}/big.bin", big)
    (local / "up.bin").write_bytes(big)
    (local / "up.bin").chmod(0o644)
    base = f"ftp://{DMZ_OUTER_IP}:{EXPLICIT_PORT}/{remote}"
    mark = inside_backend.log_mark()
    failed_before = len([r for r in dmz_gateway.events("transfer") if r.get("result") == "failed"])
    # --limit-rate keeps both transfers running while the agent is killed
    common = [*net.exec_prefix("client"), "curl", "-sS", "--ssl-reqd", "--limit-rate", "4M",
              "--cacert", str(client_certs.cert), "-u", f"{TEST_USER}:{TEST_PASS}"]
    down = subprocess.Popen([*common, "-o", str(local / "partial.bin"), f"{base}/big.bin"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    up = subprocess.Popen([*common, "-T", str(local / "up.bin"), f"{base}/up.bin"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stored = inside_backend.root / remote / "up.bin"
    try:
        wait_until(lambda: (local / "partial.bin").exists() and (local / "partial.bin").stat().st_size > (1 << 20)
                   and stored.exists() and stored.stat().st_size > (1 << 20), 30, "both transfers under way")
        inside_agent.kill()
        started = time.monotonic()
        down.wait(timeout=60)
        up.wait(timeout=60)
    finally:
        for proc in (down, up):
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
    assert down.returncode != 0, "the download of a killed agent's pipe reported success"
    assert up.returncode != 0, "the upload through a killed agent's pipe reported success"
    assert (local / "partial.bin").stat().st_size < len(big)
    # The agent's sockets to vsftpd carry SO_LINGER {1,0}: its death is an RST there, so
    # vsftpd fails the half-received upload instead of storing it as complete.
    wait_until(lambda: "FAIL UPLOAD" in inside_backend.log_since(mark)
               or "426 Failure reading network stream" in inside_backend.log_since(mark), 20,
               "vsftpd failing the upload (426, FAIL UPLOAD)", context=lambda: inside_backend.log_since(mark)[-3000:])
    assert "OK UPLOAD" not in inside_backend.log_since(mark)
    assert stored.stat().st_size < len(big)
    wait_until(lambda: len([r for r in dmz_gateway.events("transfer") if r.get("result") == "failed"])
               >= failed_before + 2, 20, "failed records of both transfers", context=dmz_gateway.tail)
    wait_until(lambda: metric(dmz_gateway.scrape(), "ftpsgate_agent_up", agent="inside") == 0, 20,
               "agent_up 0", context=dmz_gateway.tail)
    assert dmz_gateway.readyz() == 503
    proc = curl_in(net, client_certs, "--ssl-reqd", f"{base}/", timeout=60)
    assert proc.returncode != 0 and b"421" in proc.stderr, proc.stderr.decode("utf-8", "replace")[-2000:]
    assert time.monotonic() - started < 30

    inside_agent.start()
    wait_ready(dmz_gateway, inside_agent)
    out = local / "after.bin"
    ok(curl_in(net, client_certs, "--ssl-reqd", "-o", str(out), f"{base}/big.bin"), dmz_gateway, inside_agent,
       "download after the agent came back")
    assert sha256_file(out) == harness.sha256_bytes(big)
    assert dmz_gateway.proc.poll() is None, "the gateway was restarted"
