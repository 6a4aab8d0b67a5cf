"""Upload inspection (issue 16) with real scanners: a real clamd (Debian clamav-daemon) with a
signature database the test builds, and a real c-icap with its virus_scan module in front of
it. Through both engines: clean files arrive intact (sha256), infected ones get 550 and never
reach vsftpd, concurrent mixed uploads each get their own verdict; a killed scanner fails
closed (451) or passes with a warning (on_error: allow) and scanning resumes when it is back;
the spool spills to an unnamed file that is gone on every path (end, client abort, ABOR,
backend refusal), and a full spool answers 452."""
from __future__ import annotations

import ftplib
import hashlib
import io
import os
import socket
import struct
import threading
import time
from pathlib import Path

import pytest

import harness
from clients import ReusingFTP_TLS, connect, curl, check_curl, http_status, metric, run_concurrently, \
    scrape_metrics
from harness import PORTS, TEST_PASS, TEST_USER
from scanner_servers import EICAR, CIcap, Clamd, signed_file_bytes

pytestmark = [pytest.mark.control, pytest.mark.time_limit(300)]

ENGINES = ["clamd", "icap"]


@pytest.fixture(scope="module")
def scanners(tmp_path_factory):
    """One clamd and one c-icap (in front of it) for the whole module."""
    base = tmp_path_factory.mktemp("scanners")
    with Clamd(base / "clamd") as clamd, CIcap(base / "cicap", clamd) as icap:
        yield clamd, icap


def _scanner_entry(engine: str, scanners, **extra) -> dict:
    clamd, icap = scanners
    entry = {"name": f"av-{engine}", "health_check": {"interval": "1s", "timeout": "2s"}, **extra}
    if engine == "clamd":
        entry["clamd"] = {"socket": str(clamd.socket)}
    else:
        entry["icap"] = {"url": icap.url, "preview": 4096}
    return entry


def _gateway(gateway_factory, engine, scanners, local_dir, cls_inspection=None, inspection=None, scanner=None,
             extra=None):
    mport = PORTS.port()
    spool = local_dir / "spool"
    spool.mkdir(exist_ok=True)
    overrides = {
        "inspection": {"spool_dir": str(spool), "memory_threshold": "256KiB",
                       "scanners": [scanner or _scanner_entry(engine, scanners)], **(inspection or {})},
        "classes": [harness.klass("default", "on", inspection={"scanner": f"av-{engine}",
                                                                **(cls_inspection or {})})],
        "metrics": {"address": f"127.0.0.1:{mport}"},
        **(extra or {}),
    }
    gw = gateway_factory(overrides)
    gw.metrics_port = mport
    gw.spool = spool
    return gw


def _store(gw, name: str, data: bytes, ftp=None):
    """STOR over TLS; returns the final reply text, or raises ftplib errors."""
    own = ftp is None
    ftp = ftp or connect(gw, cls=ReusingFTP_TLS, timeout=60)
    try:
        return ftp.storbinary(f"STOR {name}", io.BytesIO(data))
    finally:
        if own:
            ftp.close()


def _inspections(gw, **fields) -> list[dict]:
    return gw.events("inspection", **fields)


def _spool_fds(gw) -> list[str]:
    """The gateway's open descriptors that point into its spool directory."""
    out = []
    fd_dir = Path(f"/proc/{gw.proc.pid}/fd")
    for fd in fd_dir.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith(str(gw.spool)):
            out.append(target)
    return out


def _assert_spool_empty(gw):
    harness.wait_until(lambda: not _spool_fds(gw), 10, "spool descriptors closed", context=gw.tail)
    assert list(gw.spool.iterdir()) == [], "a file was left in the spool directory"
    harness.wait_until(lambda: metric(scrape_metrics(gw.metrics_port), "ftpsgate_spool_bytes") == 0, 10,
                       "ftpsgate_spool_bytes back to 0", context=gw.tail)


@pytest.mark.parametrize("engine", ENGINES)
def test_clean_large_upload_arrives_intact_and_infected_ones_never_reach_the_backend(
        engine, scanners, gateway_factory, backend, remote_dir, local_dir, certs, backend_log):
    gw = _gateway(gateway_factory, engine, scanners, local_dir)
    payload = os.urandom(64 * 1024 * 1024)
    src = local_dir / "big.bin"
    src.write_bytes(payload)
    url = f"ftp://127.0.0.1:{gw.explicit_port}/{remote_dir}/"
    check_curl(curl(certs, "--ssl-reqd", "-T", str(src), url + "big.bin"), gw, "clean upload")
    assert harness.sha256_file(backend.root / remote_dir / "big.bin") == hashlib.sha256(payload).hexdigest()

    mark = backend_log
    ftp = connect(gw, cls=ReusingFTP_TLS, timeout=60)
    try:
        ftp.cwd(remote_dir)
        for name, data in (("signed.bin", signed_file_bytes()), ("eicar.com", EICAR)):
            with pytest.raises(ftplib.error_perm, match=r"^550 Upload rejected: .+ found"):
                _store(gw, name, data, ftp)
        # The session goes on: a clean file after the refusals is stored.
        assert _store(gw, "after.txt", b"clean after infected\n", ftp).startswith("226")
    finally:
        ftp.close()
    for name in ("signed.bin", "eicar.com"):
        assert not (backend.root / remote_dir / name).exists(), f"{name} reached the backend"
    assert (backend.root / remote_dir / "after.txt").read_bytes() == b"clean after infected\n"
    stors = [c for c in backend.commands_since(mark) if c.startswith("STOR")]
    assert not [c for c in stors if "signed" in c or "eicar" in c], stors

    infected = _inspections(gw, verdict="infected")
    assert len(infected) == 2, gw.tail()
    assert all(r["engine"] == engine and r["signature"] and r["direction"] == "upload" for r in infected)
    records = {r["path"]: r for r in gw.events("transfer")}
    assert records["big.bin"]["verdict"] == "clean" and records["big.bin"]["result"] == "ok"
    assert records["big.bin"]["bytes"] == len(payload)
    for name in ("signed.bin", "eicar.com"):
        assert records[name]["verdict"] == "infected" and records[name]["result"] == "refused"
        assert records[name]["signature"]
    text = scrape_metrics(gw.metrics_port)
    assert metric(text, "ftpsgate_inspections_total", engine=engine, verdict="infected") == 2
    assert metric(text, "ftpsgate_inspections_total", engine=engine, verdict="clean") == 2
    assert (metric(text, "ftpsgate_scan_duration_seconds_count", engine=engine) or 0) == 4
    _assert_spool_empty(gw)


@pytest.mark.parametrize("engine", ENGINES)
def test_twenty_concurrent_mixed_uploads_each_get_their_verdict(engine, scanners, gateway_factory, backend,
                                                               remote_dir, local_dir):
    gw = _gateway(gateway_factory, engine, scanners, local_dir)
    files = {}
    for i in range(20):
        kind = i % 4
        if kind == 0:
            files[f"f{i:02d}.eicar"] = EICAR
        elif kind == 1:
            files[f"f{i:02d}.signed"] = signed_file_bytes()
        else:
            files[f"f{i:02d}.clean"] = os.urandom(300_000 + i * 50_000)
    outcome = {}

    def job(name):
        def run():
            try:
                outcome[name] = _store(gw, f"{remote_dir}/{name}", files[name])
            except ftplib.error_perm as e:
                outcome[name] = str(e)
        return run

    run_concurrently([job(n) for n in files], timeout=240)
    for name, data in files.items():
        on_backend = backend.root / remote_dir / name
        if name.endswith(".clean"):
            assert outcome[name].startswith("226"), (name, outcome[name])
            assert harness.sha256_file(on_backend) == hashlib.sha256(data).hexdigest(), name
        else:
            assert outcome[name].startswith("550 Upload rejected"), (name, outcome[name])
            assert not on_backend.exists(), name
    text = scrape_metrics(gw.metrics_port)
    assert metric(text, "ftpsgate_inspections_total", engine=engine, verdict="infected") == 10
    assert metric(text, "ftpsgate_inspections_total", engine=engine, verdict="clean") == 10
    _assert_spool_empty(gw)


@pytest.mark.parametrize("engine", ENGINES)
def test_scanner_outage_fails_closed_then_allow_passes_with_a_warning_and_recovery_resumes(
        engine, tmp_path, gateway_factory, backend, remote_dir, local_dir):
    # A scanner of this test's own: killing it must not disturb the module's.
    with Clamd(tmp_path / "clamd") as clamd, CIcap(tmp_path / "cicap", clamd) as icap:
        own = (clamd, icap)
        gw = _gateway(gateway_factory, engine, own, local_dir,
                      scanner=_scanner_entry(engine, own, readyz=True, connect_timeout="2s", timeout="10s"))
        assert _store(gw, f"{remote_dir}/before.txt", b"before\n").startswith("226")
        harness.wait_until(lambda: http_status(gw.metrics_port, "/readyz") == 200, 15, "ready with the scanner up",
                           context=gw.tail)
        victim = icap if engine == "icap" else clamd
        victim.kill()
        with pytest.raises(ftplib.error_temp, match="^451"):
            _store(gw, f"{remote_dir}/during.txt", b"during the outage\n")
        assert not (backend.root / remote_dir / "during.txt").exists()
        harness.wait_until(lambda: http_status(gw.metrics_port, "/readyz") == 503, 15, "not ready, scanner down",
                           context=gw.tail)
        assert gw.events("scanner_down", scanner=f"av-{engine}")
        errors = _inspections(gw, verdict="error")
        assert errors and errors[-1]["passed"] is False

        # on_error: allow, by reload-free second gateway on the same dead scanner.
        gw2 = _gateway(gateway_factory, engine, own, local_dir, cls_inspection={"on_error": "allow"},
                       scanner=_scanner_entry(engine, own, connect_timeout="2s", timeout="10s"))
        assert _store(gw2, f"{remote_dir}/allowed.txt", b"passed unscanned\n").startswith("226")
        assert (backend.root / remote_dir / "allowed.txt").read_bytes() == b"passed unscanned\n"
        warned = _inspections(gw2, verdict="error")
        assert warned and warned[-1]["passed"] is True and warned[-1]["level"] == "warn"

        victim.start()
        harness.wait_until(lambda: http_status(gw.metrics_port, "/readyz") == 200, 30, "ready again",
                           context=gw.tail)
        assert gw.events("scanner_up", scanner=f"av-{engine}")
        with pytest.raises(ftplib.error_perm, match="^550 Upload rejected"):
            _store(gw, f"{remote_dir}/eicar-after.com", EICAR)
        assert _store(gw, f"{remote_dir}/after.txt", b"after\n").startswith("226")
        assert not (backend.root / remote_dir / "eicar-after.com").exists()
        text = scrape_metrics(gw.metrics_port)
        assert metric(text, "ftpsgate_scanner_up", scanner=f"av-{engine}") == 1
        _assert_spool_empty(gw)


def test_spool_spills_to_an_unnamed_file_that_is_gone_on_every_path(scanners, gateway_factory, backend,
                                                                     remote_dir, local_dir, backend_log):
    gw = _gateway(gateway_factory, "clamd", scanners, local_dir)
    chunk = os.urandom(64 * 1024)
    seen_on_disk = threading.Event()

    def slow_source(chunks: int, watch: bool):
        for i in range(chunks):
            if watch and i == 16 and not seen_on_disk.is_set():
                # 1 MiB sent, memory_threshold is 256 KiB: the spool must be a file by now.
                harness.wait_until(lambda: _spool_fds(gw), 10, "a spool file", context=gw.tail)
                held = metric(scrape_metrics(gw.metrics_port), "ftpsgate_spool_bytes") or 0
                assert held > 256 * 1024, held  # the gauge follows the bytes as they arrive
                seen_on_disk.set()
            yield chunk

    class Source(io.RawIOBase):
        def __init__(self, chunks, watch):
            self.it = slow_source(chunks, watch)

        def read(self, n=-1):
            return next(self.it, b"")

    # 1. A complete upload: spooled to disk, forwarded, and the file gone afterwards.
    ftp = connect(gw, cls=ReusingFTP_TLS, timeout=60)
    try:
        ftp.storbinary(f"STOR {remote_dir}/spilled.bin", Source(32, True), blocksize=64 * 1024)
    finally:
        ftp.close()
    assert seen_on_disk.is_set()
    targets = []
    assert (backend.root / remote_dir / "spilled.bin").stat().st_size == 32 * len(chunk)
    _assert_spool_empty(gw)
    assert not targets

    # 2. The client vanishes mid-upload (its host resets the connections; a FIN would be
    # the end of the file in FTP's stream mode).
    ftp = connect(gw, cls=ReusingFTP_TLS, timeout=60)
    conn = ftp.transfercmd(f"STOR {remote_dir}/vanished.bin")
    for _ in range(24):
        conn.sendall(chunk)
    harness.wait_until(lambda: _spool_fds(gw), 10, "a spool file while uploading", context=gw.tail)
    for sock in (conn, ftp.sock):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    _assert_spool_empty(gw)
    assert not (backend.root / remote_dir / "vanished.bin").exists()

    # 3. ABOR mid-upload.
    ftp = connect(gw, cls=ReusingFTP_TLS, timeout=60)
    try:
        conn = ftp.transfercmd(f"STOR {remote_dir}/aborted.bin")
        for _ in range(24):
            conn.sendall(chunk)
        harness.wait_until(lambda: _spool_fds(gw), 10, "a spool file before ABOR", context=gw.tail)
        ftp.sock.sendall(b"ABOR\r\n")
        first = ftp.getmultiline()
        assert first.startswith("426"), first
        assert ftp.getmultiline().startswith("226")
        conn.close()
        _assert_spool_empty(gw)
        # 4. The backend refuses the clean file (a directory it cannot write): its reply reaches
        # the client and the spool is gone too.
        backend.mkdir(f"{remote_dir}/locked")
        os.chmod(backend.root / remote_dir / "locked", 0o555)
        with pytest.raises(ftplib.error_perm, match="^553"):
            ftp.storbinary(f"STOR {remote_dir}/locked/x.bin", io.BytesIO(chunk * 8))
        _assert_spool_empty(gw)
    finally:
        ftp.close()
    assert not (backend.root / remote_dir / "aborted.bin").exists()
    records = {r["path"].rsplit("/", 1)[-1]: r for r in gw.events("transfer")}
    assert records["vanished.bin"]["result"] == "failed"
    assert records["aborted.bin"]["result"] == "failed"
    assert records["x.bin"]["result"] == "refused" and records["x.bin"]["verdict"] == "clean"


def test_full_spool_answers_452_and_frees_its_share(scanners, gateway_factory, backend, remote_dir, local_dir):
    gw = _gateway(gateway_factory, "clamd", scanners, local_dir,
                  inspection={"max_spool_bytes": "1MiB", "memory_threshold": "256KiB"})
    with pytest.raises(ftplib.error_temp, match="^452"):
        _store(gw, f"{remote_dir}/too-big.bin", os.urandom(3 * 1024 * 1024))
    assert not (backend.root / remote_dir / "too-big.bin").exists()
    _assert_spool_empty(gw)
    # The budget is back: a file within it passes.
    data = os.urandom(900 * 1024)
    assert _store(gw, f"{remote_dir}/fits.bin", data).startswith("226")
    assert harness.sha256_file(backend.root / remote_dir / "fits.bin") == hashlib.sha256(data).hexdigest()
    assert gw.events("transfer", path=f"{remote_dir}/too-big.bin")[0]["result"] == "failed"


def test_max_scan_size_deny_and_allow(scanners, gateway_factory, backend, remote_dir, local_dir):
    gw = _gateway(gateway_factory, "clamd", scanners, local_dir, cls_inspection={"max_scan_size": "100KiB"})
    with pytest.raises(ftplib.error_perm, match="^550 Upload rejected: file larger than max_scan_size"):
        _store(gw, f"{remote_dir}/big.bin", os.urandom(200_000))
    assert not (backend.root / remote_dir / "big.bin").exists()
    assert _store(gw, f"{remote_dir}/small.bin", os.urandom(50_000)).startswith("226")

    gw2 = _gateway(gateway_factory, "clamd", scanners, local_dir,
                   cls_inspection={"max_scan_size": "100KiB", "above_max_scan_size": "allow"})
    data = os.urandom(200_000)
    assert _store(gw2, f"{remote_dir}/big2.bin", data).startswith("226")
    assert (backend.root / remote_dir / "big2.bin").read_bytes() == data
    skipped = _inspections(gw2, verdict="skipped")
    assert skipped and skipped[0]["passed"] is True
    text = scrape_metrics(gw2.metrics_port)
    assert metric(text, "ftpsgate_inspections_total", engine="clamd", verdict="skipped") == 1


def test_infected_upload_over_an_existing_file_leaves_it_untouched(scanners, gateway_factory, backend,
                                                                   remote_dir, local_dir):
    """An attacker overwriting a good file with malware: the good file stays as it was."""
    good = b"the original, good content\n"
    backend.put(f"{remote_dir}/report.txt", good)
    gw = _gateway(gateway_factory, "clamd", scanners, local_dir)
    with pytest.raises(ftplib.error_perm, match="^550 Upload rejected"):
        _store(gw, f"{remote_dir}/report.txt", EICAR)
    assert (backend.root / remote_dir / "report.txt").read_bytes() == good


def test_a_signature_split_across_stor_and_appe_or_rest_is_refused(scanners, gateway_factory, backend, remote_dir,
                                                                   local_dir, backend_log):
    """Each part of EICAR scans clean alone: APPE and a resumed STOR are refused outright in
    an inspected class, so the halves never meet on the backend."""
    gw = _gateway(gateway_factory, "clamd", scanners, local_dir)
    half = len(EICAR) // 2
    ftp = connect(gw, cls=ReusingFTP_TLS, timeout=60)
    try:
        ftp.cwd(remote_dir)
        assert _store(gw, "split.com", EICAR[:half], ftp).startswith("226")
        with pytest.raises(ftplib.error_perm, match="^550 Appending or resuming"):
            ftp.storbinary("APPE split.com", io.BytesIO(EICAR[half:]))
        with pytest.raises(ftplib.error_perm, match="^550 Appending or resuming"):
            ftp.storbinary("STOR split.com", io.BytesIO(EICAR[half:]), rest=half)
        # The session goes on.
        assert _store(gw, "whole.txt", b"fine\n", ftp).startswith("226")
    finally:
        ftp.close()
    assert (backend.root / remote_dir / "split.com").read_bytes() == EICAR[:half]
    assert not [c for c in backend.commands_since(backend_log) if c.startswith("APPE")]
    denied = gw.events("policy_denial", reason="partial_upload_inspected")
    assert len(denied) == 2, gw.tail()


def test_rules_set_inspection_per_user_over_the_class(scanners, gateway_factory, backend, remote_dir, local_dir,
                                                      backend_log):
    """A rule for one user turns inspection on in a class that has none (EICAR refused, APPE
    refused, nothing reaches vsftpd), and a rule turns it off for a user in a class that
    scans (the file is stored, no scan is made); another user keeps the class's setting."""
    scanner = _scanner_entry("clamd", scanners)
    spool = local_dir / "spool"
    spool.mkdir(exist_ok=True)
    on_for_user = gateway_factory({
        "inspection": {"spool_dir": str(spool), "scanners": [scanner]},
        "classes": [harness.klass("default", "on")],
        "rules": [{"name": "scan-t", "users": [TEST_USER], "inspection": {"scanner": "av-clamd"}},
                  {"name": "other-user-off", "users": ["someone-else"],
                   "inspection": {"scanner": "av-clamd", "uploads": False}}],
    })
    ftp = connect(on_for_user, cls=ReusingFTP_TLS, timeout=60)
    try:
        ftp.cwd(remote_dir)
        with pytest.raises(ftplib.error_perm, match="^550 Upload rejected: Eicar-Signature.UNOFFICIAL found"):
            _store(on_for_user, "eicar-user.com", EICAR, ftp)
        with pytest.raises(ftplib.error_perm, match="^550 Appending or resuming"):
            ftp.storbinary("APPE clean.txt", io.BytesIO(b"more\n"))
        assert _store(on_for_user, "clean.txt", b"clean content\n", ftp).startswith("226")
    finally:
        ftp.close()
    assert not (backend.root / remote_dir / "eicar-user.com").exists()
    assert (backend.root / remote_dir / "clean.txt").read_bytes() == b"clean content\n"
    assert not [c for c in backend.commands_since(backend_log) if "eicar-user" in c or c.startswith("APPE")]
    assert [r["verdict"] for r in _inspections(on_for_user)] == ["infected", "clean"], on_for_user.tail()

    off_for_user = gateway_factory({
        "inspection": {"spool_dir": str(spool), "scanners": [scanner]},
        "classes": [harness.klass("default", "on", inspection={"scanner": "av-clamd"})],
        "rules": [{"name": "trusted-t", "users": [TEST_USER],
                   "inspection": {"scanner": "av-clamd", "uploads": False}}],
    })
    assert _store(off_for_user, f"{remote_dir}/eicar-trusted.com", EICAR).startswith("226")
    assert (backend.root / remote_dir / "eicar-trusted.com").read_bytes() == EICAR
    assert _inspections(off_for_user) == [], off_for_user.tail()


# --------------------------------------------------------------------------- downloads

def _retrieve(gw, name: str, ftp=None) -> tuple[bytes, str]:
    """RETR over TLS: (the bytes the client received, the final reply), or raises ftplib errors
    (the bytes received before are then in the exception's `received`)."""
    own = ftp is None
    ftp = ftp or connect(gw, cls=ReusingFTP_TLS, timeout=60)
    got = bytearray()
    try:
        reply = ftp.retrbinary(f"RETR {name}", got.extend)
        return bytes(got), reply
    except ftplib.Error as e:
        e.received = bytes(got)
        raise
    finally:
        if own:
            ftp.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_downloads_are_scanned_before_the_client_gets_a_byte(engine, scanners, gateway_factory, backend, remote_dir,
                                                             local_dir, certs):
    """RETR in a class with downloads: true: a clean 16 MiB file reaches curl sha256-equal;
    EICAR and the signed file end with 550 and the client receives not one byte of them; a
    missing file gets vsftpd's own 550; listings are not scanned; the spool is empty after."""
    gw = _gateway(gateway_factory, engine, scanners, local_dir, cls_inspection={"downloads": True})
    payload = os.urandom(16 * 1024 * 1024)
    backend.put(f"{remote_dir}/big.bin", payload)
    backend.put(f"{remote_dir}/eicar.com", EICAR)
    backend.put(f"{remote_dir}/signed.bin", signed_file_bytes())
    got = local_dir / "big.bin"
    check_curl(curl(certs, "--ssl-reqd", "-o", str(got), f"ftp://127.0.0.1:{gw.explicit_port}/{remote_dir}/big.bin"),
               gw, "clean download")
    assert harness.sha256_file(got) == hashlib.sha256(payload).hexdigest()

    ftp = connect(gw, cls=ReusingFTP_TLS, timeout=60)
    try:
        ftp.cwd(remote_dir)
        for name, signature in (("eicar.com", "Eicar-Signature.UNOFFICIAL"),
                                ("signed.bin", "Ftpsgate-Test-Signature.UNOFFICIAL")):
            with pytest.raises(ftplib.error_perm, match=f"^550 Download rejected: {signature} found") as refused:
                _retrieve(gw, name, ftp)
            assert refused.value.received == b"", f"{name}: the client received bytes of an infected file"
        with pytest.raises(ftplib.error_perm, match="^550 Failed to open file"):
            _retrieve(gw, "no-such-file.bin", ftp)
        assert "big.bin" in ftp.nlst()
        data, reply = _retrieve(gw, "big.bin", ftp)  # the session goes on
        assert reply.startswith("226") and data == payload
    finally:
        ftp.close()
    assert (backend.root / remote_dir / "eicar.com").read_bytes() == EICAR  # a download changes nothing there

    records = [r for r in gw.events("transfer") if r["direction"] == "download" and r["command"] == "RETR"]
    by_path = {}
    for r in records:
        by_path.setdefault(r["path"].rsplit("/", 1)[-1], []).append(r)
    assert [r["verdict"] for r in by_path["big.bin"]] == ["clean", "clean"], records
    assert all(r["result"] == "ok" and r["bytes"] == len(payload) for r in by_path["big.bin"])
    for name in ("eicar.com", "signed.bin"):
        (r,) = by_path[name]
        assert r["result"] == "refused" and r["verdict"] == "infected" and r["signature"] and r["bytes"] == 0
    assert "verdict" not in by_path["no-such-file.bin"][0]
    assert len(_inspections(gw)) == 4, gw.tail()  # two clean, two infected; no listing, no missing file
    assert {r["direction"] for r in _inspections(gw)} == {"download"}
    text = scrape_metrics(gw.metrics_port)
    assert metric(text, "ftpsgate_inspections_total", engine=engine, verdict="infected") == 2
    assert metric(text, "ftpsgate_inspections_total", engine=engine, verdict="clean") == 2
    _assert_spool_empty(gw)


@pytest.mark.parametrize("engine", ENGINES)
def test_twenty_concurrent_mixed_downloads_each_get_their_verdict(engine, scanners, gateway_factory, backend,
                                                                 remote_dir, local_dir):
    gw = _gateway(gateway_factory, engine, scanners, local_dir, cls_inspection={"downloads": True})
    files = {}
    for i in range(20):
        kind = i % 4
        name, data = ((f"f{i:02d}.eicar", EICAR) if kind == 0 else
                      (f"f{i:02d}.signed", signed_file_bytes()) if kind == 1 else
                      (f"f{i:02d}.clean", os.urandom(300_000 + i * 50_000)))
        files[name] = data
        backend.put(f"{remote_dir}/{name}", data)
    outcome = {}

    def job(name):
        def run():
            try:
                outcome[name] = _retrieve(gw, f"{remote_dir}/{name}")
            except ftplib.error_perm as e:
                outcome[name] = (e.received, str(e))
        return run

    run_concurrently([job(n) for n in files], timeout=240)
    for name, data in files.items():
        got, reply = outcome[name]
        if name.endswith(".clean"):
            assert reply.startswith("226") and hashlib.sha256(got).digest() == hashlib.sha256(data).digest(), name
        else:
            assert reply.startswith("550 Download rejected") and got == b"", (name, reply, len(got))
    text = scrape_metrics(gw.metrics_port)
    assert metric(text, "ftpsgate_inspections_total", engine=engine, verdict="infected") == 10
    assert metric(text, "ftpsgate_inspections_total", engine=engine, verdict="clean") == 10
    _assert_spool_empty(gw)


def test_download_inspection_fails_closed_and_respects_the_spool_limit(scanners, gateway_factory, backend,
                                                                       remote_dir, local_dir):
    """A scanner that cannot be reached: 451 and no byte to the client (on_error: deny), the
    file passes with a warning under on_error: allow. A download larger than the spool gets
    451 and frees its share; one within it passes."""
    backend.put(f"{remote_dir}/file.bin", b"content to protect\n")
    # A loopback port of the harness with nothing listening: every connection is refused.
    dead = {"name": "av-clamd", "clamd": {"address": f"127.0.0.1:{PORTS.port()}"}, "connect_timeout": "2s"}
    gw = _gateway(gateway_factory, "clamd", scanners, local_dir, cls_inspection={"downloads": True}, scanner=dead)
    with pytest.raises(ftplib.error_temp, match="^451 Requested action aborted: the download could not be scanned") \
            as failed:
        _retrieve(gw, f"{remote_dir}/file.bin")
    assert failed.value.received == b""
    gw2 = _gateway(gateway_factory, "clamd", scanners, local_dir,
                   cls_inspection={"downloads": True, "on_error": "allow"}, scanner=dead)
    data, reply = _retrieve(gw2, f"{remote_dir}/file.bin")
    assert data == b"content to protect\n" and reply.startswith("226")
    warned = _inspections(gw2, verdict="error")
    assert warned and warned[-1]["passed"] is True and warned[-1]["level"] == "warn"

    big, fits = os.urandom(3 * 1024 * 1024), os.urandom(900 * 1024)
    backend.put(f"{remote_dir}/too-big.bin", big)
    backend.put(f"{remote_dir}/fits.bin", fits)
    gw3 = _gateway(gateway_factory, "clamd", scanners, local_dir, cls_inspection={"downloads": True},
                   inspection={"max_spool_bytes": "1MiB", "memory_threshold": "256KiB"})
    ftp = connect(gw3, cls=ReusingFTP_TLS, timeout=60)
    try:
        with pytest.raises(ftplib.error_temp, match="^451 Requested action aborted: the gateway's download spool"):
            _retrieve(gw3, f"{remote_dir}/too-big.bin", ftp)
        _assert_spool_empty(gw3)
        data, reply = _retrieve(gw3, f"{remote_dir}/fits.bin", ftp)
        assert data == fits and reply.startswith("226")
    finally:
        ftp.close()
    _assert_spool_empty(gw3)


def test_a_download_spool_is_gone_after_abor_and_after_the_client_vanishes(scanners, gateway_factory, backend,
                                                                           remote_dir, local_dir):
    """A 32 MiB download spills to an unnamed spool file; ABOR while it is spooled or
    scanned gets 426 then 225/226, a client that resets its connections mid-stream leaves
    nothing behind, and each gets its failed `transfer` record."""
    gw = _gateway(gateway_factory, "clamd", scanners, local_dir, cls_inspection={"downloads": True})
    payload = os.urandom(32 * 1024 * 1024)
    backend.put(f"{remote_dir}/big.bin", payload)

    ftp = connect(gw, cls=ReusingFTP_TLS, timeout=60)
    try:
        conn = ftp.transfercmd(f"RETR {remote_dir}/big.bin")
        harness.wait_until(lambda: _spool_fds(gw), 10, "a spool file while the download is held", context=gw.tail)
        ftp.sock.sendall(b"ABOR\r\n")
        first = ftp.getmultiline()
        assert first.startswith("426"), first
        # 226 from the gateway when the backend was done, else vsftpd's own answer to ABOR
        # after the cut: 225 (no transfer left) or 226.
        second = ftp.getmultiline()
        assert second[:3] in ("225", "226"), second
        conn.close()
        _assert_spool_empty(gw)
        # The session goes on, and a whole download passes.
        data, reply = _retrieve(gw, f"{remote_dir}/big.bin", ftp)
        assert reply.startswith("226") and hashlib.sha256(data).digest() == hashlib.sha256(payload).digest()
    finally:
        ftp.close()

    ftp = connect(gw, cls=ReusingFTP_TLS, timeout=60)
    conn = ftp.transfercmd(f"RETR {remote_dir}/big.bin")
    assert conn.recv(65536), "the scanned file's first bytes"
    for sock in (conn, ftp.sock):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    _assert_spool_empty(gw)
    harness.wait_until(lambda: len([r for r in gw.events("transfer") if r["command"] == "RETR"]) == 3, 10,
                       "three RETR records", context=gw.tail)
    results = [r["result"] for r in gw.events("transfer") if r["command"] == "RETR"]
    assert results == ["failed", "ok", "failed"], results
