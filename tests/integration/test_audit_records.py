"""Audit-grade transfer records (issue 15): the `sha256` of every transfer's bytes in its
`transfer` record (logging.transfer_sha256), an xferlog(5) file (logging.xferlog) that
follows logrotate's rename and SIGHUP, and every record also as a syslog datagram
(logging.syslog) on a local socket the test binds itself."""
from __future__ import annotations

import ftplib
import io
import json
import os
import re
import signal
import socket
import tempfile
import threading
import time
from pathlib import Path

import pytest

import harness
from clients import ReusingFTP_TLS, check_curl, connect, curl
from harness import TEST_USER

pytestmark = pytest.mark.ops

LOOPBACK_CTRL = harness.klass("loopback", "ctrl", **{"from": ["127.0.0.0/8"]})
SYSLOG_LINE = re.compile(r"^<(\d+)>([A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) ftpsgate\[(\d+)\]: (.*)$", re.S)


def transfers(gw, **fields) -> list[dict]:
    return gw.events("transfer", **fields)


def wait_transfer(gw, count: int) -> list[dict]:
    return harness.wait_until(lambda: len(transfers(gw)) >= count and transfers(gw), 10,
                              f"{count} transfer records", context=gw.tail)


def test_sha256_of_every_transfer_matches_the_file(gateway_factory, certs, backend, remote_dir, local_dir,
                                                   medium_file):
    """curl uploads and downloads over TLS and clear data connections, a 0-byte file and a
    4 MiB one: each record's sha256 is hashlib's of the file, its bytes the file's size."""
    path, digest = medium_file
    empty = local_dir / "empty.bin"
    empty.write_bytes(b"")
    small = local_dir / "small.bin"
    small.write_bytes(os.urandom(70_001))
    backend.put_file(f"{remote_dir}/down.bin", path)
    backend.put(f"{remote_dir}/zero.bin", b"")
    gw = gateway_factory({"classes": [LOOPBACK_CTRL], "logging": {"transfer_sha256": True}})
    base = f"ftp://127.0.0.1:{gw.explicit_port}/{remote_dir}"

    steps = [  # (curl arguments, command, path, expected sha256, size, protection)
        (["--ssl-reqd", "-o", str(local_dir / "down.bin"), f"{base}/down.bin"],
         "RETR", "down.bin", digest, path.stat().st_size, "private"),
        (["--ssl-reqd", "-T", str(path), f"{base}/up.bin"],
         "STOR", "up.bin", digest, path.stat().st_size, "private"),
        (["--ftp-ssl-control", "-T", str(small), f"{base}/small.bin"],
         "STOR", "small.bin", harness.sha256_file(small), 70_001, "clear"),
        (["--ftp-ssl-control", "-o", str(local_dir / "small-back.bin"), f"{base}/small.bin"],
         "RETR", "small.bin", harness.sha256_file(small), 70_001, "clear"),
        (["--ssl-reqd", "-T", str(empty), f"{base}/empty.bin"],
         "STOR", "empty.bin", harness.sha256_bytes(b""), 0, "private"),
        (["--ssl-reqd", "-o", str(local_dir / "zero.bin"), f"{base}/zero.bin"],
         "RETR", "zero.bin", harness.sha256_bytes(b""), 0, "private"),
    ]
    for n, (args, *_rest) in enumerate(steps, 1):
        check_curl(curl(certs, *args), gw, " ".join(args[:2]))
        wait_transfer(gw, n)
    assert harness.sha256_file(local_dir / "down.bin") == digest
    assert harness.sha256_file(backend.root / remote_dir / "up.bin") == digest
    assert (backend.root / remote_dir / "empty.bin").read_bytes() == b""

    got = [(r.get("command"), r.get("path"), r.get("sha256"), r.get("bytes"), r.get("protection"), r.get("result"))
           for r in transfers(gw)]
    want = [(command, name, sha, size, protection, "ok") for _args, command, name, sha, size, protection in steps]
    assert got == want, got


def test_sha256_over_tls_with_ftplib_and_no_field_when_off(gateway_factory, backend, remote_dir):
    """ftplib (session reuse) stores and fetches over TLS data: the digests match; a gateway
    without transfer_sha256 writes no sha256 field."""
    data = os.urandom(3 * 1024 * 1024 + 7)
    on = gateway_factory({"logging": {"transfer_sha256": True}}, name="on")
    off = gateway_factory(name="off")
    for gw in (on, off):
        ftp = connect(gw, cls=ReusingFTP_TLS)
        try:
            ftp.storbinary(f"STOR {remote_dir}/{gw.name}.bin", io.BytesIO(data))
            buf = io.BytesIO()
            ftp.retrbinary(f"RETR {remote_dir}/{gw.name}.bin", buf.write)
            assert buf.getvalue() == data
        finally:
            ftp.quit()
        wait_transfer(gw, 2)
    assert [(r["command"], r.get("sha256")) for r in transfers(on)] == \
        [("STOR", harness.sha256_bytes(data)), ("RETR", harness.sha256_bytes(data))], transfers(on)
    assert [r for r in transfers(off) if "sha256" in r] == [], transfers(off)


def xferlog_lines(path: Path) -> list[list[str]]:
    """Every line split into its 18 fields (the date takes five); fails on any other line."""
    out = []
    for line in path.read_text().splitlines():
        fields = line.split(" ")
        # "Sun Dec  6 ..." pads the day with a space: fold the empty field.
        fields = [f for f in fields if f != ""]
        assert len(fields) == 18, line
        time.strptime(" ".join(fields[:5]), "%a %b %d %H:%M:%S %Y")
        assert int(fields[5]) >= 1, line
        out.append(fields[5:])
    return out


def test_xferlog_one_line_per_file_transfer_and_logrotate(gateway_factory, backend, remote_dir):
    """One xferlog line per file transfer with size, name (spaces made '_'), type,
    direction, user and completion; a listing writes none. After logrotate's rename and
    SIGHUP new lines go to a new file of the configured name, none to the renamed one."""
    down = os.urandom(1024 * 1024)
    up = os.urandom(200_003)
    backend.put(f"{remote_dir}/down.bin", down)
    xferlog = Path(tempfile.mkdtemp(prefix="xfer-")) / "xferlog"
    gw = gateway_factory({"logging": {"xferlog": str(xferlog)}})

    ftp = connect(gw, cls=ReusingFTP_TLS)
    try:
        buf = io.BytesIO()
        ftp.retrbinary(f"RETR {remote_dir}/down.bin", buf.write)
        assert buf.getvalue() == down
        ftp.storbinary(f"STOR {remote_dir}/my file.bin", io.BytesIO(up))
        ftp.retrlines(f"LIST {remote_dir}", lambda line: None)
        with pytest.raises(ftplib.error_perm):
            ftp.retrbinary(f"RETR {remote_dir}/missing.bin", lambda b: None)
    finally:
        ftp.quit()
    assert (backend.root / remote_dir / "my file.bin").read_bytes() == up
    wait_transfer(gw, 4)

    lines = harness.wait_until(lambda: len(xferlog_lines(xferlog)) >= 3 and xferlog_lines(xferlog), 10,
                               "3 xferlog lines")
    # fields from transfer-time on: time host size name type flag direction mode user service auth id status
    assert [f[1:] for f in lines] == [
        ["127.0.0.1", str(len(down)), f"{remote_dir}/down.bin", "b", "_", "o", "r", TEST_USER, "ftp", "0", "*", "c"],
        ["127.0.0.1", str(len(up)), f"{remote_dir}/my_file.bin", "b", "_", "i", "r", TEST_USER, "ftp", "0", "*", "c"],
        ["127.0.0.1", "0", f"{remote_dir}/missing.bin", "b", "_", "o", "r", TEST_USER, "ftp", "0", "*", "i"],
    ], lines
    assert oct(xferlog.stat().st_mode & 0o777) == oct(0o640 & ~current_umask())

    rotated = xferlog.with_name("xferlog.1")
    xferlog.rename(rotated)
    reloads = len(gw.events("reload", result="success"))
    gw.proc.send_signal(signal.SIGHUP)
    harness.wait_until(lambda: len(gw.events("reload", result="success")) > reloads, 10, "reload after SIGHUP",
                       context=gw.tail)
    assert xferlog.exists(), "SIGHUP did not reopen the xferlog under its name"
    ftp = connect(gw, cls=ReusingFTP_TLS)
    try:
        ftp.storbinary(f"STOR {remote_dir}/after.bin", io.BytesIO(b"rotated"))
    finally:
        ftp.quit()
    wait_transfer(gw, 5)
    after = harness.wait_until(lambda: xferlog_lines(xferlog), 10, "a line in the new xferlog")
    assert [f[1:5] + [f[6]] for f in after] == [["127.0.0.1", "7", f"{remote_dir}/after.bin", "b", "i"]], after
    assert len(xferlog_lines(rotated)) == 3, "a line went to the renamed file"


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class SyslogReceiver:
    """A unix datagram socket (in a short temporary directory: sun_path holds 107 bytes)
    read by a thread from the start, so the kernel's small datagram queue
    (net.unix.max_dgram_qlen) never fills and the gateway has no reason to drop."""

    def __init__(self, path: str):
        self.path = path
        self.datagrams: list[str] = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                return
            self.datagrams.append(data.decode("utf-8", "replace"))

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.thread.join(5)

    def wait_for(self, event: str, what: str, context=None) -> list[tuple[int, int, dict]]:
        def found():
            records = [parsed(d) for d in list(self.datagrams)]
            return records if any(rec.get("event") == event for _pri, _pid, rec in records) else None
        return harness.wait_until(found, 10, what, context=context)


@pytest.fixture
def syslog_path():
    directory = tempfile.mkdtemp(prefix="sl-", dir="/tmp")
    return os.path.join(directory, "log")


def parsed(datagram: str) -> tuple[int, int, dict]:
    m = SYSLOG_LINE.match(datagram)
    assert m, datagram
    time.strptime(m.group(2)[:3] + " " + m.group(2)[4:].strip(), "%b %d %H:%M:%S")
    return int(m.group(1)), int(m.group(3)), json.loads(m.group(4))


def test_syslog_datagrams_carry_every_record_with_the_facility(gateway_factory, backend, remote_dir, syslog_path):
    """logging.syslog with facility local3: the start record and a transfer record arrive
    as `<PRI>Mmm dd hh:mm:ss ftpsgate[pid]: {json}`, PRI = 19 * 8 + 6 for info, the same
    record as in the log file. After the receiving socket is replaced (the syslog daemon
    restarted), records reach the new one."""
    receiver = SyslogReceiver(syslog_path)
    data = os.urandom(100_000)
    backend.put(f"{remote_dir}/f.bin", data)
    try:
        gw = gateway_factory({"logging": {"level": "info", "syslog": True, "syslog_facility": "local3",
                                          "syslog_socket": syslog_path}})
        ftp = connect(gw, cls=ReusingFTP_TLS)
        try:
            buf = io.BytesIO()
            ftp.retrbinary(f"RETR {remote_dir}/f.bin", buf.write)
            assert buf.getvalue() == data
        finally:
            ftp.quit()
        records = receiver.wait_for("transfer", "a transfer record on the syslog socket", gw.tail)
    finally:
        receiver.close()
    assert {pid for _pri, pid, _rec in records} == {gw.proc.pid}, records
    start = [(pri, rec) for pri, _pid, rec in records if rec.get("event") == "start"]
    assert start and start[0][0] == 19 * 8 + 6, start
    sent = [(pri, rec) for pri, _pid, rec in records if rec.get("event") == "transfer"]
    assert len(sent) == 1, records
    assert sent[0][0] == 19 * 8 + 6, sent
    in_file = wait_transfer(gw, 1)
    assert sent[0][1] == in_file[0], (sent, in_file)
    assert sent[0][1]["bytes"] == len(data) and sent[0][1]["user"] == TEST_USER

    # The daemon restarts: a new socket at the same path. The gateway connects again (at
    # most once a second), so sessions are opened until one's records arrive.
    os.unlink(syslog_path)
    fresh = SyslogReceiver(syslog_path)
    try:
        def session_end_arrived():
            connect(gw, cls=ReusingFTP_TLS).quit()
            return [(pri, rec) for pri, _pid, rec in (parsed(d) for d in list(fresh.datagrams))
                    if rec.get("event") == "session_end"]

        again = harness.wait_until(session_end_arrived, 20, "a record on the new syslog socket", interval=0.3,
                                   context=gw.tail)
        assert again[0][0] == 19 * 8 + 6, again
    finally:
        fresh.close()
