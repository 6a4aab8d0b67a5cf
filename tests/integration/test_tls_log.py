"""tls.log (ProFTPD's TLSLog): handshakes and TLS refusals go to their own file."""
from __future__ import annotations

import json

import pytest

import harness
from clients import connect, download

pytestmark = pytest.mark.tls


def test_tls_events_go_to_the_tls_log(gateway_factory, backend, remote_dir, medium_file):
    path, digest = medium_file
    backend.put_file(f"{remote_dir}/m.bin", path)
    gw = gateway_factory(edit=lambda c: c["tls"].update({"log": str(c["logging"]["file"]) + ".tls"}))
    tls_log = gw.log_path.with_name(gw.log_path.name + ".tls")
    ftp = connect(gw)  # stock ftplib: does not resume, so its data connection is refused
    try:
        try:
            download(ftp, f"{remote_dir}/m.bin")
            raise AssertionError("a non-resuming data connection was accepted")
        except Exception as e:  # ftplib.error_temp
            assert str(e).startswith("425"), e
    finally:
        ftp.quit()
    harness.wait_until(lambda: tls_log.exists() and "did not reuse" in tls_log.read_text(), 10,
                       "the refusal in tls.log")
    records = [json.loads(line) for line in tls_log.read_text().splitlines()]
    events = {r["event"] for r in records}
    assert "tls_handshake" in events and "policy_denial" in events, events
    assert any(r.get("channel") == "control" and r.get("version") for r in records), records
    assert not gw.events("tls_handshake"), "handshakes still in the main log"
    assert gw.events("login"), "non-TLS events stay in the main log"
