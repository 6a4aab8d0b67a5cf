"""Real clients (curl/OpenSSL, lftp/GnuTLS) move real files through the gateway to a
real vsftpd; every byte is checked by sha256, on the client and on the backend's disk."""
from __future__ import annotations

import re
import shutil

import pytest

import harness
from clients import check_curl, curl
from harness import NO_REUSE_MESSAGE, TEST_PASS, TEST_USER

pytestmark = pytest.mark.data

def negotiated_versions(proc) -> list[str]:
    return re.findall(r"SSL connection using (TLSv[\d.]+)", proc.stderr.decode("utf-8", "replace"))


@pytest.mark.time_limit(240)
@pytest.mark.parametrize("tls", ["default", "tls-max-1.2"])
def test_curl_explicit_list_download_upload_64MiB(gateway, certs, backend, remote_dir, local_dir,
                                                   big_file, tls):
    """curl --ssl-reqd (AUTH TLS) with session reuse required: LIST, RETR and STOR of a
    64 MiB random file, sha256 on both ends."""
    path, digest = big_file
    backend.put_file(f"{remote_dir}/big.bin", path)
    tls_args = ["--tls-max", "1.2"] if tls == "tls-max-1.2" else []
    base = f"ftp://127.0.0.1:{gateway.explicit_port}/{remote_dir}"

    listing = curl(certs, "--ssl-reqd", *tls_args, f"{base}/")
    check_curl(listing, gateway, "LIST")
    assert b"big.bin" in listing.stdout, listing.stdout
    expected = "TLSv1.2" if tls_args else "TLSv1.3"
    versions = negotiated_versions(listing)
    assert versions and all(v == expected for v in versions), versions

    down = curl(certs, "--ssl-reqd", *tls_args, "-o", str(local_dir / "big.bin"), f"{base}/big.bin")
    check_curl(down, gateway, "download")
    assert harness.sha256_file(local_dir / "big.bin") == digest

    up = curl(certs, "--ssl-reqd", *tls_args, "-T", str(path), f"{base}/uploaded.bin")
    check_curl(up, gateway, "upload")
    assert harness.sha256_file(backend.root / remote_dir / "uploaded.bin") == digest

    assert not gateway.find(NO_REUSE_MESSAGE), "curl reuses sessions, yet a data connection was refused"
    check_data_handshakes(gateway, expected, minimum=3)
    check_transfers(gateway, path.stat().st_size)
    gateway.assert_no_secret()


def check_data_handshakes(gw, version: str | None, minimum: int):
    """The log shows every data connection resumed the session, with the right version."""
    hs = gw.data_handshakes()
    assert len(hs) >= minimum, f"expected >= {minimum} data tls_handshake events, got {len(hs)}"
    assert all(r.get("resumed") is True for r in hs), [r for r in hs if r.get("resumed") is not True][:3]
    if version:
        assert all(r.get("version") == version for r in hs), {r.get("version") for r in hs}


def check_transfers(gw, size: int):
    """transfer events for RETR and STOR carry the full byte count."""
    events = gw.events("transfer")
    for command in ("RETR", "STOR"):
        assert any(r.get("command") == command and r.get("bytes") == size for r in events), \
            (command, [(r.get("command"), r.get("bytes")) for r in events])


@pytest.mark.time_limit(240)
def test_curl_implicit_list_download_upload_64MiB(gateway, certs, backend, remote_dir, local_dir,
                                                  big_file):
    """curl ftps:// (implicit TLS listener, PROT P from the start)."""
    path, digest = big_file
    backend.put_file(f"{remote_dir}/big.bin", path)
    base = f"ftps://127.0.0.1:{gateway.implicit_port}/{remote_dir}"

    listing = curl(certs, f"{base}/")
    check_curl(listing, gateway, "implicit LIST")
    assert b"big.bin" in listing.stdout

    down = curl(certs, "-o", str(local_dir / "big.bin"), f"{base}/big.bin")
    check_curl(down, gateway, "implicit download")
    assert harness.sha256_file(local_dir / "big.bin") == digest

    up = curl(certs, "-T", str(path), f"{base}/uploaded.bin")
    check_curl(up, gateway, "implicit upload")
    assert harness.sha256_file(backend.root / remote_dir / "uploaded.bin") == digest
    check_data_handshakes(gateway, "TLSv1.3", minimum=3)
    check_transfers(gateway, path.stat().st_size)


@pytest.mark.time_limit(180)
def test_curl_resume_partial_download_with_rest(gateway, certs, backend, remote_dir, local_dir,
                                                big_file, backend_log):
    """curl -C - continues a partial file with REST; the result is the whole file."""
    path, digest = big_file
    backend.put_file(f"{remote_dir}/big.bin", path)
    partial = local_dir / "big.bin"
    offset = 10 * 1024 * 1024 + 12345
    with open(path, "rb") as src:
        partial.write_bytes(src.read(offset))
    proc = curl(certs, "--ssl-reqd", "-C", "-", "-o", str(partial),
                f"ftp://127.0.0.1:{gateway.explicit_port}/{remote_dir}/big.bin")
    check_curl(proc, gateway, "resume")
    assert harness.sha256_file(partial) == digest
    assert f"REST {offset}" in backend.commands_since(backend_log)


# --------------------------------------------------------------------------- lftp mirror

# log:max-size: lftp renames its debug log at 1 MiB by default, and tests read the passive
# replies from it (a slow, sanitised gateway makes level-9 logs of a 2 MiB transfer long).
LFTP_SETTINGS = """\
set cmd:fail-exit true
set ftp:ssl-force true
set ftp:ssl-protect-data true
set ftp:ssl-protect-list true
set ssl:verify-certificate no
set ftp:passive-mode true
set net:max-retries 2
set net:timeout 20
set net:reconnect-interval-base 1
set net:reconnect-interval-max 2
set xfer:clobber true
set log:max-size 64M
"""


def lftp(gw, script: str, debug_file, timeout: float = 150):
    full = (LFTP_SETTINGS
            + f"debug -t -o {debug_file} 9\n"
            + f"open -u {TEST_USER},{TEST_PASS} ftp://127.0.0.1:{gw.explicit_port}\n"
            + script)
    proc = harness.run(["lftp", "-c", full], timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(
            f"lftp failed ({proc.returncode})\nstdout: {harness._tail_bytes(proc.stdout, 2000)}\n"
            f"stderr: {harness._tail_bytes(proc.stderr, 2000)}\n"
            f"lftp debug tail:\n{harness.tail_file(debug_file, 5000)}\n{gw.tail()}")
    return proc


@pytest.mark.time_limit(300)
def test_lftp_mirror_200_files_both_ways(gateway, backend, remote_dir, local_dir):
    """lftp (GnuTLS) mirror -R then mirror of 200 small random files, session reuse
    required (lftp hands the control connection's session to its data connections)."""
    src = local_dir / "src"
    digests = harness.make_tree(src, 200, 64 * 1024)
    assert len(digests) == 200

    lftp(gateway, f"mirror -R --verbose=1 {src} {remote_dir}/tree\n", local_dir / "lftp-up.log")
    on_backend = harness.tree_digests(backend.root / remote_dir / "tree")
    assert on_backend == digests, "uploaded tree differs on the backend's disk"

    dst = local_dir / "dst"
    lftp(gateway, f"mirror --verbose=1 {remote_dir}/tree {dst}\n", local_dir / "lftp-down.log")
    assert harness.tree_digests(dst) == digests, "downloaded tree differs"
    assert not gateway.find(NO_REUSE_MESSAGE)
    # lftp/GnuTLS hands the control session to every data connection (TLS 1.3 here).
    check_data_handshakes(gateway, None, minimum=400)
    gateway.assert_no_secret()
    shutil.rmtree(src)
    shutil.rmtree(dst)
