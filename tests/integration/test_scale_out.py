"""Scale-out on one machine (issue 4): two gateways on 127.0.0.2 and 127.0.0.3 behind a
real HAProxy in TCP mode (balance source, send-proxy-v2) that forwards the control port
and the passive range. Clients come from 127.0.0.10.. so `balance source` spreads them,
and the gateways must see those addresses through PROXY protocol v2 (logs, per-IP
limits, and the data connection's source check with data.allow_foreign_address false)."""
from __future__ import annotations

import hashlib
import io
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

import harness
from clients import ReusingFTP_TLS
from harness import TEST_PASS, TEST_USER

pytestmark = pytest.mark.ops

CLIENTS = 50


class HAProxy:
    def __init__(self, workdir: Path, control_port: int, servers: list[tuple[str, int]], passive: range):
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = control_port
        self.conf = workdir / "haproxy.cfg"
        self.out = workdir / "haproxy.out"
        control = "\n".join(f"  server gw{i} {host}:{port} send-proxy-v2"
                            for i, (host, port) in enumerate(servers))
        # No port on the data servers: the connection keeps the passive port it came to.
        data = "\n".join(f"  server gw{i} {host} send-proxy-v2" for i, (host, _) in enumerate(servers))
        self.conf.write_text(f"""\
global
  maxconn 4000
defaults
  mode tcp
  timeout connect 5s
  timeout client 120s
  timeout server 120s
  option redispatch
frontend ftp_control
  bind 127.0.0.1:{control_port}
  default_backend gateways_control
backend gateways_control
  balance source
{control}
frontend ftp_data
  bind 127.0.0.1:{passive[0]}-{passive[-1]}
  default_backend gateways_data
backend gateways_data
  balance source
{data}
""")
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        check = harness.run(["haproxy", "-c", "-f", str(self.conf)], timeout=30)
        assert check.returncode == 0, check.stdout + check.stderr
        out = open(self.out, "wb")
        try:
            self.proc = subprocess.Popen(["haproxy", "-db", "-f", str(self.conf)], stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT)
        finally:
            out.close()
        harness.wait_until(self._listening, 10, "haproxy listening", context=lambda: harness.tail_file(self.out))

    def _listening(self) -> bool:
        if self.proc.poll() is not None:
            raise harness.HarnessError(f"haproxy exited: {harness.tail_file(self.out)}")
        return subprocess.run(["ss", "-Hltn", f"sport = :{self.port}"], capture_output=True,
                              text=True).stdout.strip() != ""

    def stop(self) -> None:
        if self.proc is not None:
            harness.stop_process(self.proc, timeout=5)


@pytest.fixture
def scale_out(gateway_factory, workdir, request):
    passive = harness.PORTS.range(120)
    gateways = []
    for host in ("127.0.0.2", "127.0.0.3"):
        def edit(config, host=host):
            for listener in config["listeners"]:
                listener["address"] = listener["address"].replace("127.0.0.1", host)
                listener["proxy_protocol"] = True
                listener["proxy_protocol_from"] = ["127.0.0.0/8"]  # HAProxy on loopback
            config["passive"]["ports"] = f"{passive[0]}-{passive[-1]}"
        gateways.append(gateway_factory({"limits": {"drain_timeout": "2s"}}, name=host, edit=edit))
    proxy = HAProxy(workdir / f"haproxy-{request.node.name}", harness.PORTS.port(),
                    [(host, gw.explicit_port) for host, gw in zip(("127.0.0.2", "127.0.0.3"), gateways)],
                    passive)
    proxy.start()
    yield proxy, gateways
    proxy.stop()


def _client(proxy: HAProxy, source: str) -> ReusingFTP_TLS:
    ftp = ReusingFTP_TLS(context=harness.client_tls_context(), timeout=30, source_address=(source, 0))
    ftp.connect("127.0.0.1", proxy.port)
    ftp.auth()
    ftp.login(TEST_USER, TEST_PASS)
    ftp.prot_p()
    return ftp


def _round_trip(proxy: HAProxy, source: str, payload: bytes) -> None:
    ftp = _client(proxy, source)
    try:
        name = f"scale-{source}.bin"
        ftp.storbinary(f"STOR {name}", io.BytesIO(payload))
        got = io.BytesIO()
        ftp.retrbinary(f"RETR {name}", got.write)
        assert hashlib.sha256(got.getvalue()).hexdigest() == hashlib.sha256(payload).hexdigest()
    finally:
        ftp.quit()


def _client_ips(gw) -> set[str]:
    return {e["client"].rsplit(":", 1)[0] for e in gw.events("session_start")}


def test_fifty_clients_through_haproxy_reach_both_gateways_with_their_own_addresses(scale_out, backend):
    proxy, gateways = scale_out
    sources = [f"127.0.0.{10 + i}" for i in range(CLIENTS)]
    errors: dict[str, BaseException] = {}

    def run(source: str) -> None:
        try:
            _round_trip(proxy, source, os.urandom(256 * 1024 + 17 * int(source.rsplit(".", 1)[1])))
        except BaseException as e:  # noqa: BLE001 - reported below
            errors[source] = e

    threads = [threading.Thread(target=run, args=(s,)) for s in sources]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert errors == {}, errors

    seen = [_client_ips(gw) & set(sources) for gw in gateways]
    assert seen[0] and seen[1], f"balance source used both gateways: {[len(s) for s in seen]}"
    assert seen[0] | seen[1] == set(sources), "every client's real address is in a gateway's log"
    assert not seen[0] & seen[1], "source affinity: one client address, one gateway"
    # The data connections came through HAProxy too, from the address the header carried.
    for gw in gateways:
        transfers = gw.events("transfer")
        assert transfers and all(t["result"] == "ok" for t in transfers)
        assert not gw.events("policy_denial", reason="data_foreign_address")


def test_killing_one_gateway_fails_only_its_own_sessions(scale_out, backend, medium_file):
    proxy, gateways = scale_out
    path, digest = medium_file
    backend.put_file("scale-medium.bin", path)
    sources = [f"127.0.0.{100 + i}" for i in range(20)]
    logged_in = threading.Barrier(len(sources) + 1, timeout=60)
    stop = threading.Event()
    results: dict[str, tuple[int, BaseException | None]] = {}

    def run(source: str) -> None:
        done, error = 0, None
        try:
            ftp = _client(proxy, source)
        except BaseException as e:  # noqa: BLE001
            results[source] = (0, e)
            logged_in.abort()
            return
        logged_in.wait()
        try:
            for _ in range(200):  # bounded; ends when the test says stop
                if stop.is_set():
                    break
                got = hashlib.sha256()
                ftp.retrbinary("RETR scale-medium.bin", got.update)
                assert got.hexdigest() == digest
                done += 1
            ftp.quit()
        except BaseException as e:  # noqa: BLE001
            error = e
        results[source] = (done, error)

    threads = [threading.Thread(target=run, args=(s,)) for s in sources]
    for t in threads:
        t.start()
    logged_in.wait()
    time.sleep(1.0)
    victim = gateways[1]
    victim.proc.send_signal(signal.SIGKILL)
    victim.proc.wait(timeout=10)
    time.sleep(1.0)
    stop.set()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)

    survivors = _client_ips(gateways[0]) & set(sources)
    on_victim = set(sources) - survivors
    assert survivors and on_victim, "both gateways held sessions when one was killed"
    for source in survivors:
        done, error = results[source]
        assert error is None and done >= 1, f"{source} on the surviving gateway: {error!r}"
    failed = {s for s, (_, error) in results.items() if error is not None}
    assert failed == on_victim, "exactly the killed gateway's sessions failed"
