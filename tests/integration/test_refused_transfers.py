"""Transfers the backend refuses (issue 13): RETR of a missing file, STOR into a missing
directory, MLSD on vsftpd (which has none). Every client gets the backend's own code and
text, its data connection (if it opened one) ends cleanly or is never used, and the next
command on the same control connection gets its own reply."""
from __future__ import annotations

import ftplib
import functools
import io
import json
import os
import re
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

import harness
from clients import ReusingFTP_TLS, connect, curl
from harness import TEST_PASS, TEST_USER, klass
from test_shared_port import next_transfer
from test_tls import Interactive
from test_transfers import lftp

pytestmark = pytest.mark.data

NO_REUSE_CLASS = {"classes": [klass("default", "on", session_reuse_required=False)]}

# (what, ftplib call, expected reply prefix)
REFUSALS = [
    ("retr_missing", lambda ftp, d: ftp.retrbinary(f"RETR {d}/no-such-file.bin", lambda b: None), "550"),
    ("stor_missing_dir", lambda ftp, d: ftp.storbinary(f"STOR {d}/no-such-dir/up.bin", io.BytesIO(b"x" * (1 << 20))),
     "553"),
    ("mlsd", lambda ftp, d: list(ftp.mlsd(d)), "500"),
]


def in_step(ftp) -> None:
    """The next commands get their own replies (no reply left over from the refusal)."""
    assert ftp.sendcmd("NOOP").startswith("200"), "NOOP answered by a stale reply"
    assert ftp.sendcmd("TYPE I").startswith("200")
    assert ftp.pwd().startswith("/")


@pytest.mark.parametrize("reusing", [True, False], ids=["reusing", "stock"])
@pytest.mark.parametrize("what,call,code", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_ftplib_gets_the_backend_refusal_and_stays_in_step(
        gateway_factory, backend, remote_dir, what, call, code, reusing):
    gw = gateway_factory(None if reusing else NO_REUSE_CLASS)
    ftp = connect(gw, cls=ReusingFTP_TLS if reusing else ftplib.FTP_TLS)
    try:
        for _ in range(2):  # twice: a leftover reply would show on the second round
            with pytest.raises(ftplib.Error) as info:
                call(ftp, remote_dir)
            assert str(info.value).startswith(code), str(info.value)
            in_step(ftp)
        backend.put(f"{remote_dir}/there.bin", b"payload" * 1000)
        buf = io.BytesIO()
        ftp.retrbinary(f"RETR {remote_dir}/there.bin", buf.write)
        assert harness.sha256_bytes(buf.getvalue()) == harness.sha256_bytes(b"payload" * 1000)
        assert ftp.quit().startswith("221")
    finally:
        ftp.close()
    check_refused_records(gw, 2)


def check_refused_records(gw, count: int) -> None:
    """Each refusal has its `transfer` record, at info level, naming the backend's reply."""
    records = [t for t in gw.events("transfer") if t.get("result") == "refused"]
    assert len(records) == count, gw.events("transfer")
    assert all(t.get("level") == "info" and t["error"].startswith("backend replied 5") for t in records), records


def put_there(backend, remote_dir) -> tuple[bytes, str]:
    payload = bytes(range(256)) * 4000
    backend.put(f"{remote_dir}/there.bin", payload)
    return payload, harness.sha256_bytes(payload)


# --------------------------------------------------------------------------- curl

def test_curl_gets_the_backend_refusals_on_one_control_connection(
        gateway, backend, certs, remote_dir, local_dir):
    """One curl run: RETR of a missing file, STOR into a missing directory, MLSD, then a
    real download, all on one control connection (curl reuses it only while in step)."""
    payload, digest = put_there(backend, remote_dir)
    up = local_dir / "up.bin"
    up.write_bytes(b"u" * (1 << 20))
    base = f"ftp://127.0.0.1:{gateway.explicit_port}/{remote_dir}"
    got = local_dir / "got.bin"
    common = ["--ssl-reqd", "--ftp-method", "nocwd", "--ignore-content-length"]  # no SIZE first
    proc = curl(certs, *common, "-o", str(local_dir / "missing.bin"), f"{base}/no-such-file.bin",
                *next_transfer(certs, *common, "-T", str(up), f"{base}/no-such-dir/up.bin"),
                *next_transfer(certs, *common, "-X", "MLSD", f"{base}/"),
                *next_transfer(certs, *common, "-o", str(got), f"{base}/there.bin"))
    err = proc.stderr.decode("utf-8", "replace")
    assert re.search(r"^< 550 ", err, re.M), err[-3000:]
    assert re.search(r"^< 553 ", err, re.M), err[-3000:]
    assert re.search(r"^< 500 ", err, re.M), err[-3000:]
    assert harness.sha256_file(got) == digest, err[-3000:]
    # The last transfer ran on the first control connection: one greeting, one login.
    assert err.count("< 220") == 1 and err.count("> USER ") == 1, err[-4000:]
    assert not (backend.root / remote_dir / "no-such-dir").exists()
    check_refused_records(gateway, 3)


# --------------------------------------------------------------------------- lftp

def test_lftp_gets_the_backend_refusals_and_keeps_its_connection(
        gateway, backend, remote_dir, local_dir):
    """lftp lists with MLSD only when FEAT announces it, which vsftpd does not; its listing
    here (LIST) shows the control connection still in step after the refusals."""
    payload, digest = put_there(backend, remote_dir)
    up = local_dir / "up.bin"
    up.write_bytes(b"u" * (1 << 20))
    debug = local_dir / "lftp.log"
    got = local_dir / "got.bin"
    script = ("set cmd:fail-exit false\n"
              f"get {remote_dir}/no-such-file.bin -o {local_dir}/missing.bin\n"
              f"put {up} -o {remote_dir}/no-such-dir/up.bin\n"
              f"quote NOOP\n"
              f"cls {remote_dir}\n"
              f"get {remote_dir}/there.bin -o {got}\n")
    lftp(gateway, script, debug)
    log = debug.read_text(errors="replace")
    assert re.search(r"<--- 550 ", log), log[-3000:]
    assert re.search(r"<--- 553 ", log), log[-3000:]
    assert harness.sha256_file(got) == digest, log[-3000:]
    assert log.count("---> USER ") == 1, f"lftp had to reconnect:\n{log[-4000:]}"
    check_refused_records(gateway, 2)


# --------------------------------------------------------------------------- Node basic-ftp

NODE_DIR = Path(__file__).resolve().parent / "node"


@functools.cache
def node_clients() -> str:
    """`npm ci` in tests/integration/node once per run (basic-ftp, pinned by the lock file)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.fail("node and npm are needed (scripts/install-deps.sh installs them)")
    proc = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=NODE_DIR,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                          timeout=300, env={**os.environ, "npm_config_update_notifier": "false"})
    assert proc.returncode == 0, f"npm ci in {NODE_DIR} failed:\n{proc.stderr.decode(errors='replace')}"
    return node


@pytest.mark.time_limit(400)
def test_node_basic_ftp_gets_the_backend_refusals_and_stays_in_step(
        gateway, backend, certs, remote_dir):
    payload, _ = put_there(backend, remote_dir)
    node = node_clients()
    proc = harness.run([node, str(NODE_DIR / "refusals.mjs"), str(gateway.explicit_port), str(certs.cert),
                        remote_dir, TEST_USER, TEST_PASS], timeout=90)
    out = proc.stdout.decode("utf-8", "replace")
    assert proc.returncode == 0, out + proc.stderr.decode("utf-8", "replace")
    result = json.loads(out.strip().splitlines()[-1])
    assert "error" not in result, result
    codes = [(r["what"], r["code"]) for r in result["refusals"]]
    assert codes == [("retr_missing", 550), ("stor_missing_dir", 553), ("mlsd", 500)] * 2, result
    assert all(s["noop"] == 200 and s["type"] == 200 and s["pwd"].startswith("/") for s in result["steps"]), result
    assert result["there_bytes"] == len(payload) and result["quit"] == 221, result
    check_refused_records(gateway, 6)


# --------------------------------------------------------------------------- gnutls-cli on the data connection

def refusal_after_optional_150(ftp) -> str:
    try:
        reply = ftp.getresp()
    except ftplib.Error as e:
        return str(e)
    assert reply.startswith("150"), reply
    with pytest.raises(ftplib.Error) as info:
        ftp.getresp()
    return str(info.value)


GNUTLS_REFUSALS = [("RETR", "no-such-file.bin", "550"), ("STOR", "no-such-dir/up.bin", "553"), ("MLSD", "", "500")]


@pytest.mark.parametrize("when", ["before_command", "after_150"])
@pytest.mark.parametrize("verb,name,code", GNUTLS_REFUSALS, ids=[r[0] for r in GNUTLS_REFUSALS])
def test_gnutls_cli_data_connection_ends_with_close_notify_when_the_backend_refuses(
        gateway_factory, remote_dir, verb, name, code, when):
    """gnutls-cli is the data connection (connected before the command, or after the
    gateway's 150 as TLS clients do): it sees a clean close_notify, never "non-properly
    terminated", and the control connection reads the backend's refusal, then NOOP's 200."""
    gw = gateway_factory(NO_REUSE_CLASS)  # gnutls-cli cannot resume the control session
    ftp = connect(gw)
    cli = None
    try:
        host, port = ftp.makepasv()
        command = f"{verb} {remote_dir}/{name}".rstrip("/") if name else f"{verb} {remote_dir}"
        if when == "before_command":
            cli = Interactive(["gnutls-cli", "--insecure", "-p", str(port), "127.0.0.1"])
            cli.expect(rb"Handshake was completed", 15)
            ftp.putcmd(command)
            # The gateway may not have the client's Finished yet: then it answers 150 too.
            final = refusal_after_optional_150(ftp)
        else:
            ftp.putcmd(command)
            assert ftp.getresp().startswith("150")
            cli = Interactive(["gnutls-cli", "--insecure", "-p", str(port), "127.0.0.1"])
            final = refusal_after_optional_150(ftp)
        assert final.startswith(code), final
        out = cli.expect(rb"Peer has closed the GnuTLS connection|non-properly terminated", 15)
        assert b"Peer has closed the GnuTLS connection" in out, out.decode(errors="replace")
        in_step(ftp)
    finally:
        if cli:
            cli.close()
        ftp.close()
    check_refused_records(gw, 1)


def test_backend_preliminary_reply_is_relayed_when_the_data_connection_is_already_there(
        gateway_factory, backend, remote_dir):
    """README: a data connection verified before the command arrives (here a clear one,
    opened after PASV) lets the command go to the backend at once, and the backend's own
    150 with the byte count reaches the client."""
    gw = gateway_factory({"classes": [klass("default", "off")]})
    payload = b"x" * 7000
    backend.put(f"{remote_dir}/f.bin", payload)
    with harness.Ctrl(gw.explicit_port) as c:
        c.greeting()
        c.login()
        c.expect("TYPE I", 200)
        host, port, _ = c.pasv()
        with socket.create_connection((host, port), timeout=10) as data:
            # Its reply comes after the loop saw the data connection (accepted before NOOP).
            c.expect("NOOP", 200)
            c.send(f"RETR {remote_dir}/f.bin")
            prelim, final = c.final_reply()
            assert harness.recv_all(data, 10) == payload
        assert prelim and prelim[0].lines[0].startswith("150 Opening BINARY mode data connection"), prelim
        assert "(7000 bytes)" in prelim[0].lines[0], prelim
        assert final.code == 226
