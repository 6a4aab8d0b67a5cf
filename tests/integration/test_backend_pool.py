"""Backend pools (issue 4 item 5): balance policies, health checks, failover, 421 when no
server is healthy, ftpsgate_backend_up and /readyz following the backends."""
from __future__ import annotations

import ftplib
import time

import pytest

import harness
from clients import ReusingFTP_TLS, connect, http_status, download, metric, metrics_up, scrape_metrics
from harness import Vsftpd

pytestmark = pytest.mark.backend


@pytest.fixture
def two_backends(workdir, request):
    """Two plaintext vsftpd servers; each serves whoami.txt naming itself."""
    servers = {}
    for name in ("a", "b"):
        b = Vsftpd(workdir / f"pool-{request.node.name}-{name}")
        b.start()
        b.put("whoami.txt", name.encode())
        servers[name] = b
    yield servers
    for b in servers.values():
        b.stop()


def _pool_gateway(gateway_factory, servers, **backend_keys):
    mport = harness.PORTS.port()
    backend = {"name": "vsftpd", "servers": [f"127.0.0.1:{b.port}" for b in servers.values()],
               "connect_timeout": "2s", **backend_keys}
    gw = gateway_factory({"metrics": {"address": f"127.0.0.1:{mport}"}, "backends": [backend]})
    harness.wait_until(lambda: metrics_up(mport), 10, "metrics endpoint")
    return gw, mport


def _whoami(gw) -> str:
    ftp = connect(gw, cls=ReusingFTP_TLS)
    try:
        return download(ftp, "whoami.txt").decode()
    finally:
        ftp.quit()


def _up(mport, server) -> float | None:
    return metric(scrape_metrics(mport), "ftpsgate_backend_up", backend="vsftpd", server=f"127.0.0.1:{server.port}")


def test_failover_421_and_readyz_recovery(gateway_factory, two_backends):
    a, b = two_backends["a"], two_backends["b"]
    gw, mport = _pool_gateway(gateway_factory, two_backends,
                              health_check={"interval": "500ms", "timeout": "1s"})
    harness.wait_until(lambda: http_status(mport, "/readyz") == 200, 10, "/readyz 200")
    harness.wait_until(lambda: _up(mport, a) == 1 and _up(mport, b) == 1, 10, "both backend_up 1")
    assert {_whoami(gw) for _ in range(4)} == {"a", "b"}, "round robin uses both servers"

    a.stop()
    harness.wait_until(lambda: _up(mport, a) == 0, 10, "backend_up of the stopped server 0")
    assert [_whoami(gw) for _ in range(4)] == ["b"] * 4
    assert http_status(mport, "/readyz") == 200, "one healthy server is enough"

    b.stop()
    harness.wait_until(lambda: _up(mport, b) == 0, 10, "backend_up of the second server 0")
    harness.wait_until(lambda: http_status(mport, "/readyz") == 503, 10, "/readyz 503 with no healthy backend")
    started = time.monotonic()
    with pytest.raises(ftplib.error_temp) as refused:
        connect(gw)
    assert str(refused.value).startswith("421 Service not available, backend unreachable")
    assert time.monotonic() - started < 2.0 + 1.0, "421 within connect_timeout"
    gw.wait_log(lambda: any(e.get("event") == "backend_health" and e.get("up") is False for e in gw.events()),
                "backend_health down event")

    a.start()  # same port, so the pool's address is valid again
    a.put("whoami.txt", b"a")
    harness.wait_until(lambda: http_status(mport, "/readyz") == 200, 10, "/readyz recovers")
    assert _up(mport, a) == 1
    assert _whoami(gw) == "a"


def test_connect_failure_fails_over_before_the_health_check_notices(gateway_factory, two_backends):
    """With a long check interval the pool still believes the dead server is up: the
    session's own connect fails, is counted, marks the server down and goes on."""
    a, b = two_backends["a"], two_backends["b"]
    gw, mport = _pool_gateway(gateway_factory, two_backends,
                              health_check={"interval": "300s", "timeout": "1s"})
    harness.wait_until(lambda: _up(mport, a) == 1 and _up(mport, b) == 1, 10, "both backend_up 1")
    a.stop()
    assert [_whoami(gw) for _ in range(3)] == ["b"] * 3
    text = scrape_metrics(mport)
    assert metric(text, "ftpsgate_backend_connect_failures_total", backend="vsftpd",
                  server=f"127.0.0.1:{a.port}") == 1, "one failed connect, then the server is skipped"
    assert metric(text, "ftpsgate_backend_up", backend="vsftpd", server=f"127.0.0.1:{a.port}") == 0


def test_least_conn_sends_the_next_session_to_the_idle_server(gateway_factory, two_backends):
    gw, mport = _pool_gateway(gateway_factory, two_backends, balance="least_conn")
    a, b = two_backends["a"], two_backends["b"]
    harness.wait_until(lambda: _up(mport, a) == 1 and _up(mport, b) == 1, 10, "both backend_up 1")
    held = [connect(gw, cls=ReusingFTP_TLS) for _ in range(2)]  # one on each server
    try:
        busy = download(held[0], "whoami.txt").decode()
        other = download(held[1], "whoami.txt").decode()
        assert {busy, other} == {"a", "b"}
        held[1].quit()
        held.pop()
        # Server `other` now has no session, `busy` has one: every new session goes to `other`.
        assert [_whoami(gw) for _ in range(3)] == [other] * 3
    finally:
        for ftp in held:
            ftp.quit()


@pytest.mark.parametrize("balance", ["source_hash", "per_user"])
def test_hash_policies_keep_a_client_on_one_server(gateway_factory, two_backends, balance):
    gw, mport = _pool_gateway(gateway_factory, two_backends, balance=balance)
    a, b = two_backends["a"], two_backends["b"]
    # Both checked: a server not yet checked is tried after the healthy ones.
    harness.wait_until(lambda: _up(mport, a) == 1 and _up(mport, b) == 1, 10, "both backend_up 1")
    seen = [_whoami(gw) for _ in range(5)]
    assert len(set(seen)) == 1, f"{balance}: one client address / user stays on one server: {seen}"
