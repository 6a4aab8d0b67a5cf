"""session_reuse_required: audit (issue 13.5): stock ftplib (which never resumes) transfers
pass, and each of its protected data connections is logged (`data_unresumed`, with the
client's address, user, TLS fingerprints and CLNT text) and counted
(ftpsgate_data_unresumed_total{class}); a resuming client leaves no trace; another
connection's session is still refused; `true` still refuses stock ftplib with 425."""
from __future__ import annotations

import ftplib
import io
import re

import pytest

import harness
from clients import ReusingFTP_TLS, connect, download, metric, metrics_up, scrape_metrics
from harness import TEST_USER, klass

pytestmark = pytest.mark.tls

JA4 = re.compile(r"^t1[23][di]\d{4}[0-9a-z]{2}_[0-9a-f]{12}_[0-9a-f]{12}$")


def audit_gateway(gateway_factory, reuse="audit"):
    mport = harness.PORTS.port()
    gw = gateway_factory({"classes": [klass("auditors", "on", session_reuse_required=reuse)],
                          "metrics": {"address": f"127.0.0.1:{mport}"}})
    harness.wait_until(lambda: metrics_up(mport), 10, "metrics endpoint")
    return gw, mport


def test_audit_mode_lets_stock_ftplib_through_and_logs_and_counts_each_data_connection(
        gateway_factory, backend, remote_dir, medium_file):
    gw, mport = audit_gateway(gateway_factory)
    path, digest = medium_file
    backend.put_file(f"{remote_dir}/m.bin", path)
    ftp = connect(gw)  # stock ftplib.FTP_TLS: a fresh handshake on every data connection
    try:
        assert ftp.sendcmd("CLNT ftplib-audit/1.0").startswith("200")
        ftp.cwd(remote_dir)
        assert harness.sha256_bytes(download(ftp, "m.bin")) == digest
        ftp.storbinary("STOR up.bin", io.BytesIO(b"audit" * 1000))
        assert "m.bin" in ftp.nlst()
        assert ftp.quit().startswith("221")
    finally:
        ftp.close()
    assert harness.sha256_file(backend.root / remote_dir / "up.bin") == harness.sha256_bytes(b"audit" * 1000)

    records = gw.events("data_unresumed")
    assert len(records) == 3, records
    control = [r for r in gw.events("tls_handshake") if r.get("channel") == "control" and "cipher" in r]
    assert control and JA4.match(control[0].get("fingerprint", "")), control
    for r in records:
        assert r["user"] == TEST_USER and r["client"].startswith("127.0.0.1:") and r["class"] == "auditors", r
        assert JA4.match(r["fingerprint"]) and r["control_fingerprint"] == control[0]["fingerprint"], r
        assert r["client_name"] == "ftplib-audit/1.0", r
    data = [r for r in gw.events("tls_handshake") if r.get("channel") == "data"]
    assert len(data) == 3 and all(r["resumed"] is False and JA4.match(r["fingerprint"]) for r in data), data
    assert metric(scrape_metrics(mport), "ftpsgate_data_unresumed_total", **{"class": "auditors"}) == 3
    assert not gw.events("policy_denial"), gw.events("policy_denial")


def test_audit_mode_says_nothing_about_a_resuming_client_and_refuses_a_foreign_session(
        gateway_factory, backend, remote_dir, medium_file):
    gw, mport = audit_gateway(gateway_factory)
    path, digest = medium_file
    backend.put_file(f"{remote_dir}/m.bin", path)
    ctx = harness.client_tls_context()  # one context: B can offer A's session
    a = connect(gw, cls=ReusingFTP_TLS, ctx=ctx)
    b = connect(gw, cls=ReusingFTP_TLS, ctx=ctx)
    try:
        a.cwd(remote_dir)
        b.cwd(remote_dir)
        assert harness.sha256_bytes(download(a, "m.bin")) == digest and a.last_data_reused
        assert not gw.events("data_unresumed")
        # Audit lets a fresh handshake through, never another control connection's session.
        b.session_override = a.sock.session
        with pytest.raises(ftplib.error_temp) as info:
            b.retrbinary("RETR m.bin", lambda data: None)
        assert str(info.value).startswith("425 "), str(info.value)
        b.session_override = None
        assert harness.sha256_bytes(download(b, "m.bin")) == digest
    finally:
        a.close()
        b.close()
    assert [r["reason"] for r in gw.events("policy_denial")] == ["session_foreign"]
    assert (metric(scrape_metrics(mport), "ftpsgate_data_unresumed_total", **{"class": "auditors"}) or 0) == 0


def test_enforcement_still_refuses_stock_ftplib_with_425(gateway_factory, backend, remote_dir, medium_file):
    gw, _ = audit_gateway(gateway_factory, reuse=True)
    path, _ = medium_file
    backend.put_file(f"{remote_dir}/m.bin", path)
    ftp = connect(gw)
    try:
        ftp.cwd(remote_dir)
        with pytest.raises(ftplib.error_temp) as info:
            ftp.retrbinary("RETR m.bin", lambda data: None)
        assert str(info.value).startswith("425 Unable to build data connection: "), str(info.value)
        assert ftp.sendcmd("NOOP").startswith("200")
    finally:
        ftp.close()
    assert not gw.events("data_unresumed")
    assert [r["reason"] for r in gw.events("policy_denial")] == ["session_reuse_required"]
