"""SIGHUP reload under load (SPEC §1): 20 rate-limited curl transfers (10 downloads, 10
uploads) are in flight while the config is rewritten to a new certificate and the
gateway gets SIGHUP. Every transfer completes intact, config_reloads_total{result=
"success"} moves by exactly 1, new connections get the new certificate, and a session
logged in before the reload still makes a new (session-resuming) data connection.

test_reload.py covers the idle case and a broken config; this is the loaded variant.
"""
from __future__ import annotations

import hashlib
import io
import os
import signal
import ssl
import subprocess
import time

import pytest

import harness
from clients import ReusingFTP_TLS, metric, metrics_up, scrape_metrics
from harness import Ctrl, TEST_PASS, TEST_USER

pytestmark = pytest.mark.reload

SESSIONS = 20                  # half downloads, half uploads
# Loopback socket buffers (and the relay's own 1 MiB) absorb about 5-6 MiB of a download, so
# the gateway's relay of a download ends that much before the client has read it: downloads
# are 24 MiB at 1 MiB/s (the gateway relays for 18+ s, enough for 20 clients to start even in
# the ASan build on a loaded machine: at 16 MiB one release run saw a download finish
# relaying before the reload), uploads 6 MiB at 512 KiB/s (curl sends for 12 s).
DOWN_SIZE, DOWN_RATE = 24 * 1024 * 1024, "1M"
UP_SIZE, UP_RATE = 6 * 1024 * 1024, "512K"
CURL_MAX_TIME = 50


def der_fingerprint_of_pem(path) -> str:
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(path.read_text())).hexdigest()


def served_fingerprint(port: int, implicit: bool = False) -> str:
    """sha256 of the DER certificate a new connection is served (AUTH TLS or implicit)."""
    with Ctrl(port, implicit=implicit) as c:
        if not implicit:
            c.greeting()
            c.auth_tls()
        der = c.sock.getpeercert(binary_form=True)
        assert der, "no certificate served"
        return hashlib.sha256(der).hexdigest()


def curl_cmd(ca, *args: str) -> list[str]:
    return ["curl", "-sS", "-v", "--ssl-reqd", "--connect-timeout", "10", "--max-time", str(CURL_MAX_TIME),
            "--cacert", str(ca), "-u", f"{TEST_USER}:{TEST_PASS}", *args]


def sum_metric(text: str, name: str, **labels) -> float:
    """Sum of every sample of `name` carrying `labels` (0 when there is none)."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.mark.time_limit(110)
def test_reload_with_20_transfers_in_flight(gateway_factory, certs, backend, remote_dir, local_dir, tmp_path):
    new = harness.make_certs(tmp_path / "new-certs")
    old_fp, new_fp = der_fingerprint_of_pem(certs.cert), der_fingerprint_of_pem(new.cert)
    assert old_fp != new_fp

    mport = harness.PORTS.port()
    passive = harness.PORTS.range(SESSIONS + 20)
    gw = gateway_factory({"metrics": {"address": f"127.0.0.1:{mport}"},
                          "passive": {"ports": f"{passive[0]}-{passive[-1]}"},
                          # generous handshake/data timeouts: 20 handshakes at once on 2 cores
                          "limits": {"drain_timeout": "2s", "handshake_timeout": "10s",
                                     "data_connect_timeout": "20s"}})
    harness.wait_until(lambda: metrics_up(mport), 10, "metrics endpoint")
    assert served_fingerprint(gw.explicit_port) == old_fp

    # Distinct random content per file, so a mixed-up stream cannot pass.
    digests = {}
    for i in range(SESSIONS // 2):
        data = os.urandom(DOWN_SIZE)
        backend.put(f"{remote_dir}/d{i}.bin", data)
        digests[f"d{i}"] = harness.sha256_bytes(data)
        up = local_dir / f"u{i}.src"
        up.write_bytes(os.urandom(UP_SIZE))
        digests[f"u{i}"] = harness.sha256_file(up)
    after_data = b"after the reload\n" * 1000
    backend.put(f"{remote_dir}/after.bin", after_data)

    before = scrape_metrics(mport)
    base = f"ftp://127.0.0.1:{gw.explicit_port}/{remote_dir}"
    procs: dict[str, tuple[subprocess.Popen, object]] = {}
    early = None
    try:
        for i in range(SESSIONS // 2):
            for name, args in ((f"d{i}", ["--limit-rate", DOWN_RATE, "-o", str(local_dir / f"d{i}.bin"),
                                          f"{base}/d{i}.bin"]),
                               (f"u{i}", ["--limit-rate", UP_RATE, "-T", str(local_dir / f"u{i}.src"),
                                          f"{base}/u{i}.bin"])):
                err = open(local_dir / f"{name}.curl", "wb")
                procs[name] = (subprocess.Popen(curl_cmd(certs.cert, *args),
                                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                                stderr=err), err)

        # Every transfer's data connection is up (one resumed data handshake each).
        harness.wait_until(lambda: len(gw.data_handshakes()) >= SESSIONS, 30,
                           f"{SESSIONS} data connections", context=gw.tail)

        # A session logged in before the reload, with no transfer yet.
        early = ReusingFTP_TLS(context=harness.client_tls_context(), timeout=20)
        early.connect("127.0.0.1", gw.explicit_port)
        early.auth()
        early_fp = hashlib.sha256(early.sock.getpeercert(binary_form=True)).hexdigest()
        early.login(TEST_USER, TEST_PASS)
        early.prot_p()

        gw.config["tls"]["certificates"] = [{"cert": str(new.cert), "key": str(new.key)}]
        gw.write_config()
        gw.proc.send_signal(signal.SIGHUP)
        harness.wait_until(lambda: gw.events("reload", result="success"), 10, "a successful reload",
                           context=gw.tail)
        # The reload happened with every transfer still running.
        finished = [n for n, (p, _) in procs.items() if p.poll() is not None]
        assert not finished, f"transfers ended before the reload, the test proves nothing: {finished}"
        assert not gw.events("transfer"), "the gateway finished relaying a transfer before the reload"
        assert early_fp == old_fp

        # New connections get the new certificate, on both listeners.
        assert served_fingerprint(gw.explicit_port) == new_fp
        assert served_fingerprint(gw.implicit_port, implicit=True) == new_fp
        fresh = harness.run(curl_cmd(new.cert, "-o", str(local_dir / "after.bin"), f"{base}/after.bin"),
                            timeout=CURL_MAX_TIME + 10)
        assert fresh.returncode == 0, harness._tail_bytes(fresh.stderr, 3000)
        assert (local_dir / "after.bin").read_bytes() == after_data
        stale = harness.run(curl_cmd(certs.cert, "-o", str(local_dir / "stale.bin"), f"{base}/after.bin"),
                            timeout=CURL_MAX_TIME + 10)
        assert stale.returncode == 60, (stale.returncode, harness._tail_bytes(stale.stderr, 3000))

        # The session from before the reload still builds a data connection resuming its
        # own (old-certificate) TLS session.
        buf = io.BytesIO()
        early.retrbinary(f"RETR {remote_dir}/d0.bin", buf.write)
        assert early.last_data_reused is True
        assert harness.sha256_bytes(buf.getvalue()) == digests["d0"]
        early.quit()
        early = None

        # Every transfer completes, byte for byte.
        deadline = time.monotonic() + CURL_MAX_TIME + 10
        for name, (p, _) in procs.items():
            p.wait(timeout=max(1, deadline - time.monotonic()))
        for name, (p, err) in procs.items():
            err.close()
            log = harness.tail_file(local_dir / f"{name}.curl", 3000)
            assert p.returncode == 0, f"curl {name} exited {p.returncode}\n{log}"
    finally:
        if early is not None:
            early.close()
        for p, err in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)
            err.close()

    for i in range(SESSIONS // 2):
        assert harness.sha256_file(local_dir / f"d{i}.bin") == digests[f"d{i}"], f"download d{i} differs"
        assert harness.sha256_file(backend.root / remote_dir / f"u{i}.bin") == digests[f"u{i}"], \
            f"upload u{i} differs on the backend"

    harness.wait_until(lambda: sum_metric(scrape_metrics(mport), "ftpsgate_sessions_active") == 0, 10,
                       "all sessions to end", context=gw.tail)
    after = scrape_metrics(mport)
    for result, delta in (("success", 1), ("failure", 0)):
        b = metric(before, "ftpsgate_config_reloads_total", result=result) or 0
        a = metric(after, "ftpsgate_config_reloads_total", result=result) or 0
        assert a - b == delta, (result, b, a)
    # 10 curl downloads + the early session's + the fresh curl's; 10 uploads; all private.
    for direction, count in (("download", SESSIONS // 2 + 2), ("upload", SESSIONS // 2)):
        b = metric(before, "ftpsgate_data_connections_total", direction=direction, protection="private") or 0
        a = metric(after, "ftpsgate_data_connections_total", direction=direction, protection="private") or 0
        assert a - b == count, (direction, b, a)
    transfers = sorted((r.get("command"), r.get("bytes"), r.get("result")) for r in gw.events("transfer"))
    assert transfers == sorted([("RETR", DOWN_SIZE, "ok")] * (SESSIONS // 2 + 1)
                               + [("RETR", len(after_data), "ok")] + [("STOR", UP_SIZE, "ok")] * (SESSIONS // 2)), transfers
    assert not gw.find(harness.NO_REUSE_MESSAGE)
    gw.assert_no_secret()
