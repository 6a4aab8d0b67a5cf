"""Inside-out agent on loopback (issue 17): a real `ftpsgate agent` dials out to the
gateway's agents listener; the gateway reaches the real vsftpd only through its links.

The namespace test (test_agent_netns.py) shows that nothing from the DMZ can open a
connection inside; here everything is on 127.0.0.1 and the cases are about the protocol:
transfers through the links, certificates, the allowlist, failures and recovery.
"""
from __future__ import annotations

import hashlib
import io
import os
import random
import signal
import threading
import time

import pytest

import harness
from agent_util import Agent, agents_section, make_agent_pki, wait_metric
from clients import ReusingFTP_TLS, check_curl, connect, curl, http_status, metric, scrape_metrics
from faults_util import QUIET_HEALTH, assert_fds_back_to, rss_kib, rst_close, stable_fd_count
from harness import PORTS, Ctrl, wait_until
from test_soak import EpsvFTP_TLS, _sanitized
from test_transfers import lftp

pytestmark = pytest.mark.agent


@pytest.fixture(scope="module")
def agent_pki(tmp_path_factory):
    return make_agent_pki(tmp_path_factory.mktemp("agent-pki"))


def backend_targets(backend, port: int | None = None) -> list[str]:
    """The agent's allowlist: vsftpd's control port and its passive range."""
    return [f"127.0.0.1:{port or backend.port}", f"127.0.0.1:{backend.pasv[0]}-{backend.pasv[-1]}"]


class AgentSetup:
    def __init__(self, request, workdir, gateway_factory, backend, pki):
        self.request, self.workdir, self.factory, self.backend, self.pki = request, workdir, gateway_factory, backend, pki
        self.agents: list[Agent] = []
        self.agents_port = PORTS.port()
        self.gw = None

    def gateway(self, server_port: int | None = None, agents_extra: dict | None = None,
                peers: list[dict] | None = None, edit=None):
        mport = PORTS.port()
        server = f"agent:site-a/127.0.0.1:{server_port or self.backend.port}"
        overrides = {
            "agents": agents_section(self.pki, self.agents_port, peers=peers,
                                     keepalive_interval="1s", keepalive_timeout="2s",
                                     **(agents_extra or {})),
            "backends": [{"name": "vsftpd", "servers": [server], "connect_timeout": "3s",
                          "health_check": {"interval": "1s", "timeout": "2s"}}],
            "metrics": {"address": f"127.0.0.1:{mport}"},
        }
        self.gw = self.factory(overrides, edit=edit)
        self.gw.metrics_port = mport
        return self.gw

    def agent(self, name: str = "site-a", ca: str = "gateway-ca", targets: list[str] | None = None,
              idle: int = 4, label: str | None = None) -> Agent:
        d = self.workdir / "agents" / f"{self.request.node.name[:40]}-{label or len(self.agents)}"
        a = Agent(d, self.pki, self.agents_port, targets or backend_targets(self.backend),
                  name=name, ca=ca, idle=idle)
        self.agents.append(a)
        return a.start()

    def scrape(self) -> str:
        return scrape_metrics(self.gw.metrics_port)

    def wait_idle(self, count: int, agent: str = "site-a", timeout: float = 15.0):
        return wait_metric(self.scrape, "ftpsgate_agent_connections", lambda v: v is not None and v >= count,
                           f"{count} idle links of agent {agent}", timeout=timeout,
                           context=self.context, agent=agent, state="idle")

    def wait_backend_up(self, timeout: float = 15.0):
        wait_until(lambda: http_status(self.gw.metrics_port, "/readyz") == 200, timeout,
                   "gateway /readyz 200 (backend up through the agent)", context=self.context)

    def context(self) -> str:
        return self.gw.tail() + "\n" + "\n".join(a.tail() for a in self.agents)

    def close(self):
        reports = []
        for a in self.agents:
            a.stop()
            r = a.sanitizer_report()
            if r:
                reports.append(r)
        if reports:
            pytest.fail("sanitizer report(s) on an agent's stderr:\n" + "\n".join(reports), pytrace=False)


@pytest.fixture
def setup(request, workdir, gateway_factory, backend, agent_pki):
    s = AgentSetup(request, workdir, gateway_factory, backend, agent_pki)
    yield s
    s.close()


def expect_421(gw, what: str):
    """The gateway greets by itself; the backend is reached at USER (passthrough login)."""
    with Ctrl(gw.explicit_port) as c:
        assert c.greeting(timeout=10).code == 220
        c.auth_tls()
        reply = c.cmd(f"USER {harness.TEST_USER}", timeout=20)
        assert reply.code == 421, f"{what}: expected 421, got {reply}\n{gw.tail()}"
        assert "backend unreachable" in reply.text, f"{what}: {reply}"


@pytest.mark.time_limit(240)
def test_curl_and_lftp_explicit_and_implicit_through_the_agent(setup, certs, backend, remote_dir, local_dir):
    gw = setup.gateway()
    agent = setup.agent(idle=4)
    setup.wait_idle(4)
    setup.wait_backend_up()
    text = setup.scrape()
    assert metric(text, "ftpsgate_agent_up", agent="site-a") == 1
    assert metric(text, "ftpsgate_backend_up", server=f"agent:site-a/127.0.0.1:{backend.port}") == 1

    data = os.urandom(8 << 20)
    src = local_dir / "up.bin"
    src.write_bytes(data)
    digest = harness.sha256_bytes(data)
    backend.put(f"{remote_dir}/down.bin", data)
    explicit = f"ftp://127.0.0.1:{gw.explicit_port}/{remote_dir}"
    implicit = f"ftps://127.0.0.1:{gw.implicit_port}/{remote_dir}"
    for mode, base, tls in (("explicit", explicit, ["--ssl-reqd"]), ("implicit", implicit, [])):
        listing = curl(certs, *tls, f"{base}/")
        check_curl(listing, gw, f"{mode} LIST")
        assert b"down.bin" in listing.stdout
        out = local_dir / f"down-{mode}.bin"
        check_curl(curl(certs, *tls, "-o", str(out), f"{base}/down.bin"), gw, f"{mode} download")
        assert harness.sha256_file(out) == digest, f"{mode} download differs"
        check_curl(curl(certs, *tls, "-T", str(src), f"{base}/up-{mode}.bin"), gw, f"{mode} upload")
        assert harness.sha256_file(backend.root / remote_dir / f"up-{mode}.bin") == digest, f"{mode} upload differs"

    tree = local_dir / "tree"
    digests = harness.make_tree(tree, 20, 32 * 1024)
    lftp(gw, f"mirror -R --verbose=1 {tree} {remote_dir}/tree\n", local_dir / "lftp-up.log")
    assert harness.tree_digests(backend.root / remote_dir / "tree") == digests
    back = local_dir / "back"
    lftp(gw, f"mirror --verbose=1 {remote_dir}/tree {back}\n", local_dir / "lftp-down.log")
    assert harness.tree_digests(back) == digests

    # Every pipe ended: nothing is left in use, and the pool is refilled.
    wait_metric(setup.scrape, "ftpsgate_agent_connections", lambda v: v == 0, "no link in use",
                context=setup.context, agent="site-a", state="in_use")
    setup.wait_idle(4)
    records = [r for r in gw.events("transfer") if r.get("result") != "ok"]
    assert not records, f"failed transfer records: {records}"
    assert agent.events("request"), "the agent logged no request at debug level"


def test_agent_certificate_from_another_ca_or_unmapped_is_refused(setup):
    gw = setup.gateway()
    setup.agent(name="stranger", label="stranger", idle=1)
    wait_metric(setup.scrape, "ftpsgate_agent_handshakes_total", lambda v: v is not None and v >= 1,
                "a failed handshake", context=setup.context, result="failure")
    setup.agent(name="unmapped", label="unmapped", idle=1)
    wait_metric(setup.scrape, "ftpsgate_agent_handshakes_total", lambda v: v is not None and v >= 1,
                "an unknown agent", context=setup.context, result="unknown_agent")
    gw.wait_log(lambda: gw.events("agent_refused"), "an agent_refused record")
    text = setup.scrape()
    assert metric(text, "ftpsgate_agent_up", agent="site-a") == 0
    assert metric(text, "ftpsgate_agent_connections", agent="site-a", state="idle") == 0
    assert http_status(gw.metrics_port, "/readyz") == 503
    expect_421(gw, "no agent link")


def test_agent_pinned_to_another_ca_refuses_the_gateway(setup):
    gw = setup.gateway()
    agent = setup.agent(ca="other-ca", idle=2)
    wait_until(lambda: agent.events("gateway_refused"), 15, "gateway_refused in the agent's log",
               context=setup.context)
    assert metric(setup.scrape(), "ftpsgate_agent_connections", agent="site-a", state="idle") == 0
    assert http_status(gw.metrics_port, "/readyz") == 503
    expect_421(gw, "agent refuses the gateway")


def test_target_outside_the_allowlist_is_refused_on_both_sides(setup, backend, backend_log):
    outside = PORTS.port()
    gw = setup.gateway(server_port=outside)
    # The agent allows vsftpd only; the gateway asks for another loopback port.
    agent = setup.agent(idle=2)
    setup.wait_idle(2)
    expect_421(gw, "target outside the allowlist")
    want = f"127.0.0.1:{outside}"
    wait_until(lambda: [r for r in agent.events("request_refused") if want in str(r.get("target", ""))],
               10, "request_refused naming the target", context=setup.context)
    gw.wait_log(lambda: [r for r in gw.events("agent_request_refused") if want in str(r.get("target", ""))],
                "agent_request_refused naming the target")


@pytest.mark.time_limit(180)
def test_agent_sighup_reloads_its_targets_and_keeps_them_on_a_bad_file(setup, certs, backend, remote_dir, local_dir):
    gw = setup.gateway()
    # Started with vsftpd's port missing from the allowlist: the gateway cannot reach it.
    agent = setup.agent(idle=2, targets=[f"127.0.0.1:{backend.pasv[0]}-{backend.pasv[-1]}"])
    setup.wait_idle(2)
    expect_421(gw, "vsftpd's port not allowed yet")

    def reloads(result: str) -> float:
        return metric(agent.http("/metrics")[1], "ftpsgate_agent_config_reloads_total", result=result) or 0

    def sighup_and_wait(result: str, count: int) -> dict:
        agent.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: len([r for r in agent.events("reload") if r.get("result") == result]) >= count, 10,
                   f"agent reload {result} #{count}", context=setup.context)
        return [r for r in agent.events("reload") if r.get("result") == result][count - 1]

    agent.config["agent"]["targets"] = backend_targets(backend)
    agent.write_config()
    ok = sighup_and_wait("success", 1)
    assert ok["targets"] == backend_targets(backend)
    assert reloads("success") == 1
    setup.wait_backend_up()
    data = os.urandom(1 << 20)
    backend.put(f"{remote_dir}/r.bin", data)
    url = f"ftp://127.0.0.1:{gw.explicit_port}/{remote_dir}/r.bin"
    out = local_dir / "r.bin"
    check_curl(curl(certs, "--ssl-reqd", "-o", str(out), url), gw, "download after the agent's reload")
    assert out.read_bytes() == data

    # SECURITY: a broken file, or one that moves the gateways, changes nothing.
    agent.config_path.write_text(agent.config_path.read_text() + "  surprise: 1\n")
    bad = sighup_and_wait("failure", 1)
    assert any("surprise" in e for e in bad["errors"]), bad
    agent.config["agent"]["gateways"][0]["server_name"] = "other.agents.test"
    agent.config["agent"]["targets"] = [f"127.0.0.1:{backend.pasv[0]}-{backend.pasv[-1]}"]
    agent.write_config()
    moved = sighup_and_wait("failure", 2)
    assert any("agent.gateways changed" in e for e in moved["errors"]), moved
    assert reloads("failure") == 2 and reloads("success") == 1
    out.unlink()
    check_curl(curl(certs, "--ssl-reqd", "-o", str(out), url), gw, "download after the refused reloads")
    assert out.read_bytes() == data
    assert agent.proc.poll() is None


@pytest.mark.time_limit(180)
def test_agent_killed_then_restarted_resumes_without_gateway_restart(setup, certs, backend, remote_dir, local_dir):
    gw = setup.gateway()
    agent = setup.agent(idle=2)
    setup.wait_idle(2)
    setup.wait_backend_up()
    data = os.urandom(1 << 20)
    backend.put(f"{remote_dir}/f.bin", data)
    url = f"ftp://127.0.0.1:{gw.explicit_port}/{remote_dir}/f.bin"

    agent.kill()
    started = time.monotonic()
    wait_metric(setup.scrape, "ftpsgate_agent_up", lambda v: v == 0, "agent_up 0 after the kill",
                context=setup.context, agent="site-a")
    expect_421(gw, "agent killed")
    assert time.monotonic() - started < 30
    assert http_status(gw.metrics_port, "/readyz") == 503

    agent.start()
    setup.wait_idle(2)
    setup.wait_backend_up()
    out = local_dir / "after.bin"
    check_curl(curl(certs, "--ssl-reqd", "-o", str(out), url), gw, "download after the agent came back")
    assert out.read_bytes() == data
    assert gw.running() if hasattr(gw, "running") else gw.proc.poll() is None


@pytest.mark.time_limit(180)
def test_gateway_restart_agents_reconnect(setup, certs, backend, remote_dir, local_dir):
    gw = setup.gateway()
    agent = setup.agent(idle=2)
    setup.wait_idle(2)
    gw.stop()
    gw.exit_code = None
    gw.start()
    setup.wait_idle(2, timeout=30)
    setup.wait_backend_up()
    data = os.urandom(256 << 10)
    backend.put(f"{remote_dir}/g.bin", data)
    out = local_dir / "g.bin"
    check_curl(curl(certs, "--ssl-reqd", "-o", str(out), f"ftp://127.0.0.1:{gw.explicit_port}/{remote_dir}/g.bin"),
               gw, "download after the gateway restart")
    assert out.read_bytes() == data
    assert agent.running(), "the agent exited when the gateway went away"


@pytest.mark.time_limit(180)
def test_a_gateway_name_with_two_addresses_gets_links_at_each(setup, gateway_factory, certs, backend, remote_dir,
                                                               local_dir, agent_pki):
    """Scale-out (docs/agent-design.md 1.4): each A answer of a gateway name is a gateway of its
    own. The agent runs in a mount namespace of its own whose /etc/hosts gives gw.agents.test
    two loopback addresses, one replica listening on each."""
    port = setup.agents_port
    replicas = []
    for ip in ("127.0.0.2", "127.0.0.3"):
        mport = PORTS.port()
        replicas.append(gateway_factory({
            "agents": dict(agents_section(agent_pki, port, keepalive_interval="1s", keepalive_timeout="2s"),
                           address=f"{ip}:{port}"),
            "backends": [{"name": "vsftpd", "servers": [f"agent:site-a/127.0.0.1:{backend.port}"],
                          "connect_timeout": "3s", "health_check": {"interval": "1s", "timeout": "2s"}}],
            "metrics": {"address": f"127.0.0.1:{mport}"},
        }, name=f"replica-{ip}"))
        replicas[-1].metrics_port = mport
    setup.gw = replicas[0]
    hosts = setup.workdir / "hosts"
    hosts.write_text("127.0.0.1 localhost\n127.0.0.2 gw.agents.test\n127.0.0.3 gw.agents.test\n")
    workdir = setup.workdir / "agents" / "by-name"
    agent = Agent(workdir, agent_pki, port, backend_targets(backend), idle=2, gateway_host="gw.agents.test",
                  prefix=["unshare", "--mount", "--propagation", "private", "sh", "-c",
                          f'mount --bind {hosts} /etc/hosts && exec "$@"', "sh"])
    setup.agents.append(agent)
    agent.start()

    data = os.urandom(1 << 20)
    backend.put(f"{remote_dir}/r.bin", data)
    for gw in replicas:
        wait_metric(lambda: scrape_metrics(gw.metrics_port), "ftpsgate_agent_connections", lambda v: v == 2,
                    f"2 idle links at {gw.name}", context=setup.context, agent="site-a", state="idle")
        wait_until(lambda: http_status(gw.metrics_port, "/readyz") == 200, 15, f"{gw.name} ready",
                   context=setup.context)
        out = local_dir / f"{gw.name}.bin"
        check_curl(curl(certs, "--ssl-reqd", "-o", str(out), f"ftp://127.0.0.1:{gw.explicit_port}/{remote_dir}/r.bin"),
                   gw, f"download through {gw.name}")
        assert out.read_bytes() == data

    # The agent's series are per address; the name has none of its own.
    status, text = agent.http("/metrics")
    assert status == 200
    for ip in ("127.0.0.2", "127.0.0.3"):
        assert metric(text, "ftpsgate_agent_gateway_up", gateway=f"{ip}:{port}") == 1, text
    assert metric(text, "ftpsgate_agent_gateway_up", gateway=f"gw.agents.test:{port}") is None
    assert agent.http("/readyz")[0] == 200
    resolved = agent.events("gateway_resolved")
    assert resolved and sorted(resolved[0]["addresses"]) == [f"127.0.0.2:{port}", f"127.0.0.3:{port}"], resolved


# ------------------------------------------------------------------ soak through the agent

SOAK_SESSIONS, SOAK_TRANSFERS, SOAK_MAX = 8, 3, 4 << 20
VANISH_FILE = 32 << 20  # far more than the socket buffers hold: the download cannot finish


def _soak_session(gw, backend, rnd: int, i: int, errors: list, vanished: list) -> None:
    """Transfers of random sizes and directions (PASV or EPSV), every byte checked; sessions
    1 and 3 (mod 4) then vanish with RST in the middle of an upload or a download."""
    rng = random.Random(7919 * rnd + i)
    rel = f"as{rnd}-{i:02d}"
    backend.mkdir(rel)
    ftp = None
    try:
        ftp = connect(gw, cls=EpsvFTP_TLS if i % 2 else ReusingFTP_TLS, timeout=60)
        ftp.cwd(rel)
        ftp.voidcmd("TYPE I")
        for j in range(SOAK_TRANSFERS):
            data = rng.randbytes(rng.randint(0, SOAK_MAX))
            name, upload = f"t{j}.bin", rng.random() < 0.5
            if upload:
                ftp.storbinary(f"STOR {name}", io.BytesIO(data), blocksize=256 << 10)
                got = (backend.root / rel / name).read_bytes()
            else:
                backend.put(f"{rel}/{name}", data)
                buf = io.BytesIO()
                ftp.retrbinary(f"RETR {name}", buf.write)
                got = buf.getvalue()
            if hashlib.sha256(got).digest() != hashlib.sha256(data).digest():
                errors.append(f"round {rnd} session {i} transfer {j} ({'STOR' if upload else 'RETR'} "
                              f"{len(data)} B): got {len(got)} B, sha256 differs")
        if i % 4 == 1:
            conn = ftp.transfercmd("STOR vanish.bin")
            conn.sendall(rng.randbytes(1 << 20))
        elif i % 4 == 3:
            backend.put(f"{rel}/vanish.bin", b"v" * VANISH_FILE)
            conn = ftp.transfercmd("RETR vanish.bin")
            got = 0
            while got < 64 << 10:
                chunk = conn.recv(64 << 10)
                assert chunk, "the download ended before 64 KiB"
                got += len(chunk)
        else:
            ftp.quit()
            ftp = None
            return
        rst_close(conn)
        rst_close(ftp.sock)
        ftp = None
        vanished.append(i)
    except Exception as e:  # noqa: BLE001 - every failure is reported with its session
        errors.append(f"round {rnd} session {i}: {type(e).__name__}: {e}")
    finally:
        if ftp is not None:
            ftp.close()


def _soak_round(setup, gw, backend, rnd: int, sessions: int) -> list[int]:
    errors: list[str] = []
    vanished: list[int] = []
    threads = [threading.Thread(target=_soak_session, args=(gw, backend, rnd, i, errors, vanished), daemon=True)
               for i in range(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), f"round {rnd}: sessions still running\n{setup.context()}"
    assert not errors, f"round {rnd}: {len(errors)} failures:\n" + "\n".join(errors[:20]) + "\n" + setup.context()
    return vanished


@pytest.mark.time_limit(240)
def test_soak_with_vanishing_clients_leaves_no_descriptor_or_memory_behind(setup, backend):
    """test_soak.py for the agent's path: rounds of concurrent sessions through the links,
    every byte sha256-checked, some clients vanishing (RST) mid-upload and mid-download. Each
    vanished transfer gets its failed record; afterwards the gateway and the agent hold exactly
    the descriptors they held before (the pool refilled) and neither grows its RSS from one
    identical round to the next. Health checks run only when the agent connects, so no check
    is in flight when the descriptors are counted."""
    gw = setup.gateway(edit=lambda c: c["backends"][0].update(health_check=dict(QUIET_HEALTH)))
    agent = setup.agent(idle=4)
    setup.wait_idle(4)
    setup.wait_backend_up()

    def settled() -> tuple[int, int]:
        setup.wait_idle(4)
        return stable_fd_count(gw, settle=1.0), stable_fd_count(agent, settle=1.0)

    def failed() -> int:
        return len([r for r in gw.events("transfer") if r.get("result") == "failed"])

    _soak_round(setup, gw, backend, 0, 4)  # warm-up: everything made lazily exists
    gw.wait_log(lambda: failed() >= 2, "failed records of the warm-up's two vanished transfers", timeout=30)
    gw_fds, agent_fds = settled()
    failed_before = failed()
    rss = []
    for rnd in (1, 2):
        vanished = _soak_round(setup, gw, backend, rnd, SOAK_SESSIONS)
        assert sorted(vanished) == [i for i in range(SOAK_SESSIONS) if i % 2], vanished
        want_failed = failed_before + len(vanished) * rnd
        gw.wait_log(lambda: failed() >= want_failed,
                    f"a failed transfer record for each of the {len(vanished)} vanished transfers", timeout=30)
        setup.wait_idle(4)
        assert_fds_back_to(gw, gw_fds, timeout=30, what=f"agent soak round {rnd}")
        assert_fds_back_to(agent, agent_fds, timeout=30, what=f"agent soak round {rnd} (the agent)")
        rss.append((rss_kib(gw.proc.pid), rss_kib(agent.proc.pid)))
    assert gw.proc.poll() is None and agent.running()
    # Every completed transfer's pipe ended cleanly at the agent: an upload's with the gateway's
    # close_notify, a download's with its answer to the agent's (a bare FIN would be taken for a
    # cut and reset vsftpd's socket); a vanished one never did. So did each session that QUIT.
    sessions = 4 + 2 * SOAK_SESSIONS
    for purpose, want in (("data", sessions * SOAK_TRANSFERS), ("control", sessions // 2)):
        def closed(purpose=purpose) -> int:
            return len(agent.events("pipe_end", purpose=purpose, how="closed"))

        wait_until(lambda: closed() >= want, 10, f"{want} {purpose} pipes ended 'closed' at the agent",
                   context=setup.context)
        assert closed() == want, f"{closed()} {purpose} pipes ended 'closed', want {want}"
    if _sanitized(gw.proc.pid):
        return  # ASan's quarantine holds freed memory: RSS says nothing about leaks then
    # A leak grows with every transfer; glibc keeping part of the first round's peak does not.
    for who, (first, second) in zip(("gateway", "agent"), zip(*rss)):
        assert second - first <= 16 << 10, f"{who} RSS grew from round 1 to round 2: {rss} KiB"
