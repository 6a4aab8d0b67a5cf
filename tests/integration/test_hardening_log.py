"""Security hardening (issue 11 item 12) of the logs: a client repeating a refused command
cannot turn each line into a log record (first few per reason, then a count on
session_end), and the text format keeps every hostile value inside its own field on its
own line (no forged `event=login result=success`)."""
from __future__ import annotations

import json
import re
import socket

import pytest

import harness
from clients import metric, metrics_up, scrape_metrics
from harness import Ctrl, klass

pytestmark = pytest.mark.ops

REPEATS = 20000
BATCH = 200
LOG_GROWTH_LIMIT = 64 * 1024  # bounded: a few KiB; one record per line: > 3 MiB


def _refused_clear_users(port: int, count: int) -> list[bytes]:
    """Sends `count` clear USER lines in batches, reading every reply; returns the codes seen."""
    codes = set()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        f = s.makefile("rb")
        assert f.readline().startswith(b"220")
        for _ in range(count // BATCH):
            s.sendall(b"USER someone\r\n" * BATCH)
            for _ in range(BATCH):
                line = f.readline()
                assert line, "the gateway hung up"
                codes.add(line[:3])
        s.sendall(b"QUIT\r\n")
        assert f.readline().startswith(b"221")
    return sorted(codes)


def test_repeated_denials_are_counted_not_logged_one_by_one(gateway_factory):
    mport = harness.PORTS.port()

    def edit(cfg):
        cfg["logging"]["level"] = "info"  # production level: no per-command debug records
        cfg["metrics"] = {"address": f"127.0.0.1:{mport}"}

    gw = gateway_factory(edit=edit)
    harness.wait_until(lambda: metrics_up(mport), 10, "metrics endpoint")
    before_metric = metric(scrape_metrics(mport), "ftpsgate_policy_denials_total", reason="control_not_protected") or 0
    before = gw.log_path.stat().st_size
    codes = _refused_clear_users(gw.explicit_port, REPEATS)
    assert codes and all(c.startswith(b"5") for c in codes), codes
    end = gw.wait_log(lambda: [r for r in gw.events("session_end") if r.get("denials_suppressed")],
                      "session_end with the suppressed count")[0]
    growth = gw.log_path.stat().st_size - before
    assert growth < LOG_GROWTH_LIMIT, f"{REPEATS} refused lines grew the log by {growth} bytes"
    logged = [r for r in gw.events("policy_denial") if r.get("session") == end["session"]]
    assert 1 <= len(logged) <= 5, logged
    assert end["denials_suppressed"] + len(logged) == REPEATS, end
    assert metric(scrape_metrics(mport), "ftpsgate_policy_denials_total", reason="control_not_protected") \
        - before_metric == REPEATS


TS = re.compile(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (debug|info|warn|error) ")


def _logfmt(line: str) -> dict[str, str]:
    """Parses `key=value` pairs (bare or double-quoted with backslash escapes)."""
    out: dict[str, str] = {}
    for m in re.finditer(r'(\S+?)=("(?:[^"\\]|\\.)*"|\S*)', line):
        key, value = m.group(1), m.group(2)
        assert key not in out, f"duplicate key {key} in {line!r}"
        out[key] = value
    return out


def test_the_text_log_escapes_forged_fields_and_control_bytes(gateway_factory):
    def edit(cfg):
        cfg["logging"]["format"] = "text"
        cfg["classes"] = [klass("default", "off")]

    gw = gateway_factory(edit=edit)
    forged = "mallory result=success event=login"
    with Ctrl(gw.explicit_port) as c:
        c.greeting()
        assert c.cmd(f"USER {forged}").code == 331
        assert c.cmd("PASS wrong-password", timeout=15).code == 530
        c.send_raw(b"NOOP bad\x01name\x1b[2J\xfe\r\n")  # control bytes and non-UTF-8
        assert c.reply().code == 200
        c.send_raw(b"NOOP \"quoted\" \\ back=slash\r\n")
        assert c.reply().code == 200
    harness.wait_until(lambda: b"NOOP" in gw.log_path.read_bytes(), 10, "the last command record")
    raw = gw.log_path.read_bytes()
    lines = raw.split(b"\n")
    assert lines[-1] == b""
    lines = lines[:-1]
    assert lines and all(TS.match(line) for line in lines), [line for line in lines if not TS.match(line)][:3]
    assert not [line for line in lines if any(b < 0x20 or b == 0x7F for b in line)], "raw control bytes in the log"
    records = [(line.decode("utf-8").split(" ", 3)[2], _logfmt(line.decode("utf-8").split(" ", 3)[3]
                                                               if line.count(b" ") >= 3 else ""))
               for line in lines]
    # The forged pairs stay inside the quoted user value; no login success exists.
    assert not [r for event, r in records if event == "login" and r.get("result") == "success"]
    failures = [r for event, r in records if event == "login" and r.get("result") != "success"]
    assert failures and all(r.get("user") == f'"{forged}"' for r in failures), failures
    assert any("bad\\x01name\\x1b[2J\\xfe" in line.decode() for line in lines), raw[-600:]
    assert any('"NOOP \\"quoted\\" \\\\ back=slash"' in line.decode() for line in lines), raw[-600:]


def test_the_json_log_keeps_records_with_invalid_utf8_names(gateway_factory):
    """A USER name that is not UTF-8 (and a 0xFF byte, sent as IAC IAC, in a command) must
    neither crash the gateway nor drop its record: JSON replaces the bytes with U+FFFD."""
    gw = gateway_factory(edit=lambda cfg: cfg.update(classes=[klass("default", "off")]))
    with Ctrl(gw.explicit_port) as c:
        c.greeting()
        c.send_raw(b"USER caf\xe9\xfe-x\r\n")
        assert c.reply().code == 331
        assert c.cmd("PASS wrong-password", timeout=15).code == 530
        c.send_raw(b"NOOP \xff\xff\xc0\xaf\"\x01\r\n")
        assert c.reply().code == 200
        assert c.cmd("NOOP").code == 200  # the process is alive and still serving
    failure = gw.wait_log(lambda: gw.events("login", result="failure"), "the failed login record")[0]
    assert failure["user"] == "caf\ufffd\ufffd-x", failure
    gw.wait_log(lambda: [r for r in gw.events("command") if "\ufffd" in r.get("command", "")],
                "the command record with replaced bytes")
    raw = gw.log_path.read_bytes()
    lines = raw.split(b"\n")
    assert lines[-1] == b""
    for line in lines[:-1]:
        json.loads(line.decode("utf-8"))  # strict UTF-8, one JSON object per line


def test_repeated_host_commands_are_not_logged_one_by_one(gateway_factory):
    """HOST may be repeated before USER; each accepted one would otherwise be an info record."""
    gw = gateway_factory(edit=lambda cfg: cfg["backends"][0].update(hosts=["files.example.test"]))
    with socket.create_connection(("127.0.0.1", gw.explicit_port), timeout=10) as s:
        f = s.makefile("rb")
        assert f.readline().startswith(b"220")
        for _ in range(10):
            s.sendall(b"HOST files.example.test\r\n" * 100)
            for _ in range(100):
                assert f.readline().startswith(b"220")
        s.sendall(b"QUIT\r\n")
        assert f.readline().startswith(b"221")
    end = gw.wait_log(lambda: [r for r in gw.events("session_end") if r.get("denials_suppressed")],
                      "session_end with the suppressed count")[0]
    hosts = [r for r in gw.events("host") if r.get("session") == end["session"]]
    assert 1 <= len(hosts) <= 5, len(hosts)
    assert end["denials_suppressed"] + len(hosts) == 1000, end
