"""SIGTERM during a transfer (SPEC §1): stop accepting, let the transfer finish within
limits.drain_timeout, exit 0; past drain_timeout the transfer is cut and the process
still exits 0, on time.

test_metrics.py checks /readyz during a drain with an idle session; here a
rate-limited download is running. The file is 16 MiB: loopback socket buffers absorb
about 4-5 MiB, so a smaller file would be all handed to the kernel (the gateway's relay
finished) before SIGTERM, whatever the client's rate limit.
"""
from __future__ import annotations

import signal
import socket
import subprocess
import time

import os

import pytest

import harness
from clients import http_status as status, metrics_up
from harness import TEST_PASS, TEST_USER

pytestmark = pytest.mark.data


def refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return False
    except ConnectionRefusedError:
        return True


def start_download(certs, gw, remote: str, out, rate: str, stderr_path) -> tuple[subprocess.Popen, object]:
    err = open(stderr_path, "wb")
    cmd = ["curl", "-sS", "-v", "--ssl-reqd", "--connect-timeout", "10", "--max-time", "60",
           "--cacert", str(certs.cert), "-u", f"{TEST_USER}:{TEST_PASS}", "--limit-rate", rate,
           "-o", str(out), f"ftp://127.0.0.1:{gw.explicit_port}/{remote}"]
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err), err


SIZE = 16 * 1024 * 1024


def remote_file(backend, remote_dir) -> tuple[str, str]:
    data = os.urandom(SIZE)
    backend.put(f"{remote_dir}/big.bin", data)
    return f"{remote_dir}/big.bin", harness.sha256_bytes(data)


def in_flight(gw, proc):
    """The download's data connection is up, the gateway still relays, curl still runs."""
    harness.wait_until(lambda: gw.data_handshakes(), 15, "the data connection", context=gw.tail)
    time.sleep(0.3)  # the relay is running, the socket buffers are filling
    assert proc.poll() is None, "the download ended before SIGTERM; the test proves nothing"
    assert not gw.events("transfer"), "the gateway finished relaying before SIGTERM; the test proves nothing"


@pytest.mark.time_limit(60)
def test_sigterm_lets_the_running_transfer_finish(gateway_factory, certs, backend, remote_dir, local_dir):
    remote, digest = remote_file(backend, remote_dir)  # 16 MiB at 4 MiB/s: about 4 s
    mport = harness.PORTS.port()
    gw = gateway_factory({"metrics": {"address": f"127.0.0.1:{mport}"}, "limits": {"drain_timeout": "30s"}})
    harness.wait_until(lambda: metrics_up(mport), 10, "metrics endpoint")
    out = local_dir / "big.bin"
    curl, err = start_download(certs, gw, remote, out, "4M", local_dir / "curl.err")
    try:
        in_flight(gw, curl)
        gw.proc.send_signal(signal.SIGTERM)
        t_term = time.monotonic()
        harness.wait_until(lambda: status(mport, "/readyz") == 503, 2, "/readyz 503 right after SIGTERM")
        # New connections are refused on both listeners.
        harness.wait_until(lambda: refused(gw.explicit_port), 2, "explicit listener closed")
        assert refused(gw.implicit_port), "implicit listener still accepts during the drain"
        assert curl.poll() is None and gw.proc.poll() is None, \
            "the transfer or the gateway ended right after SIGTERM"
        rc = curl.wait(timeout=40)
        t_done = time.monotonic()
        assert rc == 0, f"curl exited {rc}\n{harness.tail_file(local_dir / 'curl.err', 3000)}\n{gw.tail()}"
        assert harness.sha256_file(out) == digest
        assert t_done - t_term > 1, "the download was not slowed down; the test proves nothing"
        code = gw.proc.wait(timeout=10)
        assert code == 0, gw.tail()
        transfers = gw.events("transfer", command="RETR")
        assert [(r.get("bytes"), r.get("result")) for r in transfers] == [(SIZE, "ok")], transfers
    finally:
        if curl.poll() is None:
            curl.kill()
            curl.wait(timeout=10)
        err.close()


def cut_by_drain_timeout(gw, certs, backend, remote_dir, local_dir):
    """A 16 MiB download at 1 MiB/s (about 16 s) cut by the 2 s drain_timeout."""
    remote, _ = remote_file(backend, remote_dir)
    drain = 2.0
    out = local_dir / "big.bin"
    curl, err = start_download(certs, gw, remote, out, "1M", local_dir / "curl.err")
    try:
        in_flight(gw, curl)
        gw.proc.send_signal(signal.SIGTERM)
        t_term = time.monotonic()
        code = gw.proc.wait(timeout=drain + 5)
        elapsed = time.monotonic() - t_term
        assert code == 0, gw.tail()
        assert drain - 0.5 <= elapsed <= drain + 3, f"exited {elapsed:.2f}s after SIGTERM (drain_timeout {drain}s)"
        rc = curl.wait(timeout=20)
        assert rc != 0, "curl reports success for a transfer the drain cut"
        assert (out.stat().st_size if out.exists() else 0) < SIZE
    finally:
        if curl.poll() is None:
            curl.kill()
            curl.wait(timeout=10)
        err.close()


@pytest.mark.time_limit(60)
def test_drain_timeout_cuts_the_transfer_and_exits_zero(gateway_factory, certs, backend, remote_dir, local_dir):
    gw = gateway_factory({"limits": {"drain_timeout": "2s"}})
    cut_by_drain_timeout(gw, certs, backend, remote_dir, local_dir)
    assert not [r for r in gw.events("transfer") if r.get("result") == "ok"], gw.events("transfer")
    assert gw.events("stopped"), gw.tail()


@pytest.mark.time_limit(60)
def test_session_cut_by_drain_timeout_is_logged(gateway_factory, certs, backend, remote_dir, local_dir):
    """SPEC §5: the cut transfer gets its `transfer` record (result failed, bytes so far)
    and the session its `session_end`, like any other transfer/session that ends."""
    gw = gateway_factory({"limits": {"drain_timeout": "2s"}})
    cut_by_drain_timeout(gw, certs, backend, remote_dir, local_dir)
    sid = [r for r in gw.events("login", result="success")][0]["session"]
    transfers = gw.events("transfer", session=sid)
    ends = gw.events("session_end", session=sid)
    assert [(r.get("command"), r.get("result")) for r in transfers] == [("RETR", "failed")], transfers
    assert 0 < transfers[0]["bytes"] < SIZE, transfers
    assert len(ends) == 1, ends
