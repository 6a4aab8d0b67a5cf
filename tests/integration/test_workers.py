"""Multi-core (issue 4 item 7): worker threads with their own event loops run the
sessions; the acceptor spreads them; a session's control and data stay on its worker."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from clients import ReusingFTP_TLS, connect, run_concurrently

pytestmark = pytest.mark.ops


def _threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no Threads: line")


def test_default_is_one_worker_per_core(gateway_factory):
    gw = gateway_factory()
    start = gw.events("start")[0]
    assert start["workers"] == os.cpu_count()
    assert _threads(gw.proc.pid) >= 1 + os.cpu_count()


def test_sessions_spread_over_workers_and_transfer_intact(gateway_factory, backend, medium_file):
    path, digest = medium_file
    backend.put_file("workers-medium.bin", path)
    gw = gateway_factory({"workers": 3})
    assert gw.events("start")[0]["workers"] == 3
    assert _threads(gw.proc.pid) >= 4

    def run() -> None:
        ftp = connect(gw, cls=ReusingFTP_TLS)
        for _ in range(3):
            got = hashlib.sha256()
            ftp.retrbinary("RETR workers-medium.bin", got.update)
            assert got.hexdigest() == digest
        ftp.quit()

    run_concurrently([run] * 9)
    workers = [e["worker"] for e in gw.events("session_start")]
    assert sorted(set(workers)) == [0, 1, 2], workers
    assert len([t for t in gw.events("transfer") if t["result"] == "ok"]) == 27
