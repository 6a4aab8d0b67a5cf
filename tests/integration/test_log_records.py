"""Structured logs (SPEC §5): the JSON records of one session, field by field.

test_tls_log.py checks only which file TLS events go to, and test_transfers.py that RETR
and STOR records carry the byte count; here every record of a session is checked:
each line is a JSON object with ts/level/event and the session fields, exactly one
`transfer` record per data transfer with the right values, the lifecycle events, and no
password (the real one or a distinctive wrong one) in the main log, the TLS log or stderr.
"""
from __future__ import annotations

import ftplib
import io
import json
import os
import re
from pathlib import Path

import pytest

import harness
from clients import ReusingFTP_TLS
from harness import TEST_PASS, TEST_USER

pytestmark = pytest.mark.ops

WRONG_PASSWORD = "Wr0ng-Distinctive-Secret-93ca7e"
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:?\d\d)$")
LEVELS = {"debug", "info", "warn", "error"}


def json_records(path: Path) -> list[dict]:
    """Every line of the file parsed; fails on a line that is not a JSON object with
    ts, level and event."""
    records = []
    for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        try:
            rec = json.loads(line)
        except ValueError:
            raise AssertionError(f"{path}:{n}: not JSON: {line!r}")
        assert isinstance(rec, dict), f"{path}:{n}: not a JSON object: {line!r}"
        assert isinstance(rec.get("ts"), str) and TS.match(rec["ts"]), f"{path}:{n}: bad ts: {line!r}"
        assert rec.get("level") in LEVELS, f"{path}:{n}: bad level: {line!r}"
        assert isinstance(rec.get("event"), str) and rec["event"], f"{path}:{n}: bad event: {line!r}"
        records.append(rec)
    return records


def session_setup(gw, ctx=None) -> ReusingFTP_TLS:
    ftp = ReusingFTP_TLS(context=ctx or harness.client_tls_context(), timeout=15)
    ftp.connect("127.0.0.1", gw.explicit_port)
    ftp.auth()
    return ftp


def wait_session_end(gw, sid, records=None):
    return harness.wait_until(
        lambda: [r for r in (records() if records else gw.log_records())
                 if r.get("event") == "session_end" and r.get("session") == sid],
        10, f"session_end of session {sid}", context=gw.tail)


def login_wrong_then_right(ftp) -> None:
    """A failed login with a distinctive password, then the real one, then PROT P."""
    try:
        ftp.login(TEST_USER, WRONG_PASSWORD)
        raise AssertionError("a wrong password was accepted")
    except ftplib.error_perm as e:
        assert str(e).startswith("530"), e
    ftp.login(TEST_USER, TEST_PASS)
    ftp.prot_p()


def test_session_records_field_by_field(gateway_factory, backend, remote_dir):
    down = os.urandom(2 * 1024 * 1024 + 123)
    up = os.urandom(1024 * 1024 + 45)
    backend.put(f"{remote_dir}/down.bin", down)
    # tls_required "ctrl": data protection optional, so a clear listing is allowed too.
    gw = gateway_factory({"classes": [harness.klass("loopback", "ctrl", **{"from": ["127.0.0.0/8"]}),
                                      harness.klass("default", "on")]})

    ftp = session_setup(gw)
    client = "%s:%d" % ftp.sock.getsockname()[:2]
    version = ftp.sock.version()
    try:
        login_wrong_then_right(ftp)
        buf = io.BytesIO()
        ftp.retrbinary(f"RETR {remote_dir}/down.bin", buf.write)
        assert buf.getvalue() == down
        assert ftp.last_data_reused is True
        ftp.storbinary(f"STOR {remote_dir}/up.bin", io.BytesIO(up))
        assert (backend.root / remote_dir / "up.bin").read_bytes() == up
        ftp.prot_c()
        raw = io.BytesIO()
        ftp.retrbinary(f"LIST {remote_dir}", raw.write)  # a clear listing, counted as bytes
        assert b"down.bin" in raw.getvalue(), raw.getvalue()
        list_bytes = len(raw.getvalue())
    finally:
        ftp.quit()

    starts = gw.events("session_start", client=client)
    assert len(starts) == 1, (client, gw.events("session_start"))
    sid = starts[0]["session"]
    wait_session_end(gw, sid)

    records = json_records(gw.log_path)  # every line of the file, not only this session's
    mine = [r for r in records if r.get("session") == sid]
    assert mine and mine[0]["event"] == "session_start" and mine[-1]["event"] == "session_end", \
        [r["event"] for r in mine]
    for r in mine:  # the session fields on every record of the session
        assert r.get("client") == client, r
        assert r.get("listener") == "explicit", r
        assert r.get("class") == "loopback", r
    assert "user" not in mine[0], mine[0]  # session_start comes before USER
    after_user = mine[[i for i, r in enumerate(mine) if r["event"] == "login"][0]:]
    assert all(r.get("user") == TEST_USER for r in after_user), \
        [r for r in after_user if r.get("user") != TEST_USER]

    def of(event):
        return [r for r in mine if r["event"] == event]

    assert [r.get("result") for r in of("login")] == ["failure", "success"], of("login")
    assert len(of("session_start")) == 1 and len(of("session_end")) == 1

    handshakes = of("tls_handshake")
    control = [r for r in handshakes if r.get("channel") == "control"]
    data = [r for r in handshakes if r.get("channel") == "data"]
    assert len(control) == 1, handshakes
    assert control[0].get("version") == version, (control[0], version)
    for r in control + data:
        assert r.get("version") in ("TLSv1.2", "TLSv1.3"), r
        assert isinstance(r.get("cipher"), str) and r["cipher"], r
        assert isinstance(r.get("resumed"), bool), r
    assert control[0]["resumed"] is False, control[0]
    assert len(data) == 2, data  # RETR and STOR; the listing was clear
    assert all(r["resumed"] is True for r in data), data

    transfers = of("transfer")
    got = [(r.get("command"), r.get("path"), r.get("bytes"), r.get("protection"), r.get("direction"))
           for r in transfers]
    assert got == [
        ("RETR", f"{remote_dir}/down.bin", len(down), "private", "download"),
        ("STOR", f"{remote_dir}/up.bin", len(up), "private", "upload"),
        ("LIST", remote_dir, list_bytes, "clear", "download"),
    ], got
    for r in transfers:
        assert isinstance(r.get("seconds"), (int, float)) and r["seconds"] >= 0, r
        assert r.get("level") == "info" and r.get("result") == "ok", r

    for path in (gw.log_path, gw.stderr_path):
        text = path.read_text(errors="replace")
        assert TEST_PASS not in text, f"the password appears in {path}"
        assert WRONG_PASSWORD not in text, f"the wrong password appears in {path}"


def test_tls_log_records_and_no_password_anywhere(gateway_factory, backend, remote_dir):
    """With tls.log set, both files hold only JSON records with ts/level/event and the
    session fields; handshakes (with version, cipher, resumed) go to the TLS log, a
    policy_denial (reason, command) and the transfer to the main log; neither file nor
    stderr holds a password."""
    data = os.urandom(300_000)
    backend.put(f"{remote_dir}/f.bin", data)
    gw = gateway_factory(edit=lambda c: c["tls"].update({"log": str(c["logging"]["file"]) + ".tls"}))
    tls_log = gw.log_path.with_name(gw.log_path.name + ".tls")

    ftp = session_setup(gw)
    client = "%s:%d" % ftp.sock.getsockname()[:2]
    try:
        login_wrong_then_right(ftp)
        try:
            ftp.voidcmd("PROT C")
            raise AssertionError("PROT C accepted on a class with tls_required: on")
        except ftplib.error_perm as e:
            assert str(e).startswith("534"), e
        buf = io.BytesIO()
        ftp.retrbinary(f"RETR {remote_dir}/f.bin", buf.write)
        assert buf.getvalue() == data
    finally:
        ftp.quit()
    sid = gw.events("session_start", client=client)[0]["session"]
    wait_session_end(gw, sid)

    main, tls = json_records(gw.log_path), json_records(tls_log)
    hs = [r for r in tls if r.get("session") == sid and r["event"] == "tls_handshake"]
    assert sorted(r.get("channel") for r in hs) == ["control", "data"], hs
    for r in hs:
        assert r.get("client") == client and r.get("listener") == "explicit" and r.get("class") == "default", r
        assert r.get("version") and r.get("cipher") and isinstance(r.get("resumed"), bool), r
    assert [r["resumed"] for r in hs if r["channel"] == "data"] == [True], hs
    assert not [r for r in main if r["event"] == "tls_handshake"], "handshakes in the main log too"
    mine = [r for r in main if r.get("session") == sid]
    assert {"session_start", "login", "transfer", "session_end"} <= {r["event"] for r in mine}, \
        [r["event"] for r in mine]
    denials = [r for r in mine if r["event"] == "policy_denial"]
    assert [(r.get("reason"), r.get("command"), r.get("user")) for r in denials] == \
        [("data_not_protected", "PROT", TEST_USER)], denials
    transfers = [r for r in mine if r["event"] == "transfer"]
    assert [(r.get("command"), r.get("bytes"), r.get("protection"), r.get("direction")) for r in transfers] == \
        [("RETR", len(data), "private", "download")], transfers
    for path in (gw.log_path, tls_log, gw.stderr_path):
        text = path.read_text(errors="replace")
        assert TEST_PASS not in text, f"the password appears in {path}"
        assert WRONG_PASSWORD not in text, f"the wrong password appears in {path}"
