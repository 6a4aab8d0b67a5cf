"""backends[].data_mode: active — the gateway sends PORT to the backend and accepts the
backend's data connection, for passive and active clients alike."""
from __future__ import annotations

import pytest

import harness
from clients import ActiveFTP_TLS, check_curl, connect, curl

pytestmark = pytest.mark.backend


def _active_backend(config):
    config["backends"][0]["data_mode"] = "active"


def test_passive_client_active_backend(gateway_factory, certs, backend, backend_log, remote_dir, local_dir,
                                       medium_file):
    path, digest = medium_file
    gw = gateway_factory(edit=_active_backend)
    base = f"ftp://127.0.0.1:{gw.explicit_port}/{remote_dir}"
    up = curl(certs, "--ssl-reqd", "-T", str(path), f"{base}/m.bin")
    check_curl(up, gw, "upload")
    assert harness.sha256_file(backend.root / remote_dir / "m.bin") == digest
    down = curl(certs, "--ssl-reqd", "-o", str(local_dir / "m.bin"), f"{base}/m.bin")
    check_curl(down, gw, "download")
    assert harness.sha256_file(local_dir / "m.bin") == digest
    listing = curl(certs, "--ssl-reqd", f"{base}/")
    check_curl(listing, gw, "LIST")
    assert b"m.bin" in listing.stdout
    seen = backend.commands_since(backend_log)
    assert any(c.startswith("PORT 127,0,0,1,") for c in seen), seen
    assert not [c for c in seen if c in ("PASV", "EPSV")], seen


def test_active_client_active_backend(gateway_factory, backend, backend_log, remote_dir, medium_file):
    path, digest = medium_file
    backend.put_file(f"{remote_dir}/m.bin", path)
    gw = gateway_factory(edit=_active_backend)
    ftp = connect(gw, cls=ActiveFTP_TLS)
    try:
        data = bytearray()
        ftp.retrbinary(f"RETR {remote_dir}/m.bin", data.extend)
        assert harness.sha256_bytes(bytes(data)) == digest
    finally:
        ftp.quit()
    seen = backend.commands_since(backend_log)
    assert any(c.startswith("PORT ") for c in seen), seen
