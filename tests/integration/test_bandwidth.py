"""Bandwidth limits (issue 15) with real clients and vsftpd: a limited transfer is complete
and sha256-correct, is recorded with the time it waited for tokens, and cannot beat its
limit (only lower bounds on time are asserted here: how close a limit is met is measured
by bench/bandwidth.py, never in a timed test). Two sessions of one user share a per-user
limit."""
from __future__ import annotations

import hashlib
import io
import os
import threading

import pytest

import harness
from clients import ReusingFTP_TLS, connect, metric, scrape_metrics
from harness import PORTS

pytestmark = pytest.mark.control

RATE = 2_000_000          # 2MB/s
BURST = RATE // 10        # TokenBucket::default_burst


def _gateway(gateway_factory, bandwidth: dict):
    mport = PORTS.port()
    gw = gateway_factory({"classes": [{"name": "default", "tls_required": "on", "bandwidth": bandwidth}],
                          "metrics": {"address": f"127.0.0.1:{mport}"}})
    gw.metrics_port = mport
    return gw


def _login(gw) -> ReusingFTP_TLS:
    return connect(gw, cls=ReusingFTP_TLS, timeout=60)


def _download(gw, path: str) -> bytes:
    ftp = _login(gw)
    try:
        buf = io.BytesIO()
        ftp.retrbinary(f"RETR {path}", buf.write)
        return buf.getvalue()
    finally:
        ftp.close()


def _records(gw, command: str) -> list[dict]:
    return [r for r in gw.events("transfer") if r["command"] == command and r["result"] == "ok"]


def test_session_limit_both_directions_complete_and_correct(gateway_factory, backend, remote_dir):
    size = 3 * RATE  # three seconds' worth at the limit
    payload = os.urandom(size)
    backend.put(f"{remote_dir}/down.bin", payload)
    gw = _gateway(gateway_factory, {"session": {"download": "2MB/s", "upload": "2MB/s"}})
    got = _download(gw, f"{remote_dir}/down.bin")
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(payload).hexdigest()
    ftp = _login(gw)
    try:
        ftp.storbinary(f"STOR {remote_dir}/up.bin", io.BytesIO(payload))
    finally:
        ftp.close()
    assert harness.sha256_file(backend.root / remote_dir / "up.bin") == hashlib.sha256(payload).hexdigest()
    for command in ("RETR", "STOR"):
        [record] = _records(gw, command)
        # The bucket holds at most BURST at the start; everything else comes at RATE.
        floor = (size - BURST) / RATE
        assert record["seconds"] >= floor * 0.98, record
        assert record["throttled_seconds"] > 0, record
    text = scrape_metrics(gw.metrics_port)
    for direction in ("download", "upload"):
        assert metric(text, "ftpsgate_bandwidth_throttled_seconds_total", direction=direction) > 0
        assert metric(text, "ftpsgate_class_transfer_bytes_total", direction=direction) >= size


def test_two_sessions_of_one_user_share_the_user_limit(gateway_factory, backend, remote_dir):
    size = 2 * RATE
    payloads = [os.urandom(size) for _ in range(2)]
    for i, payload in enumerate(payloads):
        backend.put(f"{remote_dir}/f{i}.bin", payload)
    gw = _gateway(gateway_factory, {"user": {"download": "2MB/s"}})
    results: dict[int, bytes] = {}
    errors: list[BaseException] = []
    sessions = [_login(gw) for _ in range(2)]  # logged in first, so the transfers start together
    barrier = threading.Barrier(2, timeout=30)

    def fetch(i: int) -> None:
        try:
            buf = io.BytesIO()
            barrier.wait()
            sessions[i].retrbinary(f"RETR {remote_dir}/f{i}.bin", buf.write)
            results[i] = buf.getvalue()
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=fetch, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for ftp in sessions:
        ftp.close()
    assert not errors and len(results) == 2, errors
    for i, payload in enumerate(payloads):
        assert hashlib.sha256(results[i]).hexdigest() == hashlib.sha256(payload).hexdigest()
    records = _records(gw, "RETR")
    assert len(records) == 2
    ends = [_timestamp(r["ts"]) for r in records]
    starts = [end - r["seconds"] for end, r in zip(ends, records)]
    assert max(starts) < min(ends), "the two transfers did not overlap"
    # One bucket for both: together they moved 2*size bytes, so the pair cannot have taken
    # less than (2*size - BURST) / RATE; with a bucket each it would take about half that.
    assert max(ends) - min(starts) >= (2 * size - BURST) / RATE * 0.98, records
    assert all(r["throttled_seconds"] > 0 for r in records), records


def _timestamp(ts: str) -> float:
    import datetime
    return datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def test_unlimited_class_records_no_throttling(gateway_factory, backend, remote_dir):
    payload = os.urandom(500_000)
    backend.put(f"{remote_dir}/free.bin", payload)
    gw = _gateway(gateway_factory, {})
    assert _download(gw, f"{remote_dir}/free.bin") == payload
    [record] = _records(gw, "RETR")
    assert "throttled_seconds" not in record
