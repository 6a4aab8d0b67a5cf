"""The scanner fixtures themselves (issue 16): the real clamd and c-icap answer as
scanner_servers' docstring says, which the gateway's clamd and ICAP clients rely on. No
gateway here: this pins the servers' behaviour (verdicts, names, keep-alive, outages), so a
change in Debian's packages shows up as a failure here rather than in the gateway's tests."""
from __future__ import annotations

import os
import random
import time

import pytest

from harness import run
from scanner_servers import (EICAR, EICAR_REPLY_NAME, SIGNED_REPLY_NAME, SIGNED_SIGNATURE, CIcap,
                             Clamd, IcapConnection, clamd_instream, md5_signature,
                             signed_file_bytes)

pytestmark = pytest.mark.backend

MiB = 1 << 20


@pytest.fixture(scope="module")
def clamd(tmp_path_factory):
    server = Clamd(tmp_path_factory.mktemp("clamd"))
    server.start()
    yield server
    server.close()


@pytest.fixture(scope="module")
def icap(tmp_path_factory, clamd):
    server = CIcap(tmp_path_factory.mktemp("c-icap"), clamd)
    server.start()
    yield server
    server.close()


@pytest.fixture
def scanners(clamd, icap):
    """Both running at test start (an outage test before may have left one down)."""
    if not clamd.running():
        clamd.start()
    if not icap.running():
        icap.start()
    return clamd, icap


@pytest.fixture(scope="module")
def clean_1mib():
    return random.Random(1).randbytes(MiB)


def test_signature_db_is_what_sigtool_writes(tmp_path):
    signed = tmp_path / SIGNED_SIGNATURE
    signed.write_bytes(signed_file_bytes())
    printed = run(["sigtool", "--md5", str(signed)], timeout=30, check=True).stdout.decode().strip()
    assert printed == md5_signature(signed_file_bytes(), SIGNED_SIGNATURE)
    assert signed_file_bytes() == signed_file_bytes() and len(signed_file_bytes()) == 200 * 1024
    assert len(EICAR) == 68


@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_clamd_instream_verdicts(scanners, clean_1mib, transport):
    clamd, _ = scanners
    tcp = transport == "tcp"
    assert clamd.instream(clean_1mib, tcp=tcp) == b"stream: OK"
    assert clamd.instream(b"", tcp=tcp) == b"stream: OK"
    assert clamd.instream(signed_file_bytes(), tcp=tcp) == f"stream: {SIGNED_REPLY_NAME} FOUND".encode()
    assert clamd.instream(EICAR, tcp=tcp) == f"stream: {EICAR_REPLY_NAME} FOUND".encode()
    # The EICAR signature is a body signature: found inside other bytes too.
    embedded = clean_1mib[:5000] + EICAR + b"\r\n" + clean_1mib[5000:9000]
    assert clamd.instream(embedded, tcp=tcp) == f"stream: {EICAR_REPLY_NAME} FOUND".encode()
    # The MD5 signature is the whole file: one byte more and it is clean.
    assert clamd.instream(signed_file_bytes() + b"\0", tcp=tcp) == b"stream: OK"


def test_clamd_stream_limit(tmp_path):
    with Clamd(tmp_path / "clamd", tcp=False, stream_max_length="1M") as small:
        assert small.instream(os.urandom(MiB)) == b"stream: OK"
        assert small.instream(os.urandom(MiB + 1)) == b"INSTREAM size limit exceeded. ERROR"
        assert small.instream(os.urandom(8 * MiB)) == b"INSTREAM size limit exceeded. ERROR"


def test_clamd_kill_and_start_again(scanners):
    clamd, _ = scanners
    old_pid = clamd.pid
    clamd.kill()
    assert not clamd.ping() and not clamd.ping(tcp=True)
    assert clamd.socket.exists()  # stale, refusing
    with pytest.raises(ConnectionRefusedError):
        clamd_instream(clamd.socket, b"x")
    with pytest.raises(ConnectionRefusedError):
        clamd_instream(clamd.tcp_address, b"x")
    clamd.start()
    assert clamd.pid != old_pid
    assert clamd.ping() and clamd.ping(tcp=True)
    assert clamd.instream(EICAR, tcp=True) == f"stream: {EICAR_REPLY_NAME} FOUND".encode()


def test_icap_options(scanners):
    _, icap = scanners
    with icap.connect() as conn:
        reply = conn.options()
        assert reply.status_line == "ICAP/1.0 200 OK"
        assert reply.headers["methods"] == "RESPMOD, REQMOD"
        assert reply.headers["preview"] == "1024"
        assert reply.headers["allow"] == "204"
        assert reply.headers["encapsulated"] == "null-body=0"
        assert reply.headers["istag"].startswith('"')
        assert not conn.peer_closed(0.3)
    assert icap.url == f"icap://127.0.0.1:{icap.port}/virus_scan"


@pytest.mark.parametrize("preview", [None, 4096], ids=["no-preview", "preview"])
@pytest.mark.parametrize("method", ["RESPMOD", "REQMOD"])
def test_icap_clean_is_204_and_keeps_the_connection(scanners, clean_1mib, preview, method):
    _, icap = scanners

    def two_scans_on_one_connection():
        with icap.connect(timeout=30) as conn:
            for _ in range(2):
                reply = conn.scan(clean_1mib, method=method, preview=preview)
                assert reply.status_line == "ICAP/1.0 204 Unmodified"
                assert reply.headers["connection"] == "keep-alive"
                assert "encapsulated" not in reply.headers and reply.body == b""
                assert reply.interim == (["ICAP/1.0 100 Continue"] if preview else [])
                assert not conn.peer_closed(0.2)

    try:
        two_scans_on_one_connection()
    except TimeoutError:
        # Seen once in CI (RESPMOD with preview): c-icap sent 100 Continue, got the rest of
        # the body and then answered nothing for 120 s. That stall is c-icap's (the gateway's
        # own ICAP client has its timeouts for it); this test pins its replies, so it runs
        # once more on a new connection with the same assertions.
        print(f"c-icap did not answer {method} preview={preview} within 30 s; once more on a new connection")
        two_scans_on_one_connection()


@pytest.mark.parametrize("preview", [None, 4096], ids=["no-preview", "preview"])
@pytest.mark.parametrize("sample", ["signed", "eicar"])
def test_icap_infected_is_200_with_a_403_page(scanners, clean_1mib, sample, preview):
    _, icap = scanners
    data, name = (signed_file_bytes(), SIGNED_REPLY_NAME) if sample == "signed" else (EICAR, EICAR_REPLY_NAME)
    with icap.connect() as conn:
        reply = conn.scan(data, preview=preview)
        assert reply.status_line == "ICAP/1.0 200 OK"
        assert reply.headers["connection"] == "keep-alive"
        assert reply.headers["x-infection-found"] == f"Type=0; Resolution=2; Threat={name};"
        # Folded over TAB-continued lines, as on the wire.
        assert f"X-Violations-Found: 1\r\n\t-\r\n\t{name}\r\n\t0\r\n\t0\r\n".encode() in reply.head
        assert "x-virus-id" not in reply.headers
        assert reply.headers["encapsulated"].startswith("res-hdr=0, res-body=")
        assert reply.http_status_line == "HTTP/1.0 403 Forbidden"
        assert b"Content-Type: text/html" in reply.http_head
        assert b"<h1>VIRUS FOUND</h1>" in reply.body and name.encode() in reply.body
        # 100 Continue only when the file did not fit the preview.
        assert reply.interim == (["ICAP/1.0 100 Continue"] if preview and len(data) > preview else [])
        # The connection stays usable.
        assert conn.scan(clean_1mib, preview=preview).status == 204


def test_icap_reqmod_infected(scanners):
    _, icap = scanners
    with icap.connect() as conn:
        reply = conn.scan(EICAR, method="REQMOD", preview=4096)
        assert reply.status_line == "ICAP/1.0 200 OK"
        assert f"Threat={EICAR_REPLY_NAME};" in reply.headers["x-infection-found"]
        assert reply.http_status_line == "HTTP/1.0 403 Forbidden"


def test_icap_empty_file(scanners):
    _, icap = scanners
    with icap.connect() as conn:
        assert conn.scan(b"").status_line == "ICAP/1.0 204 Unmodified"
        # With a preview ended by "0; ieof": the HTTP head echoed, an empty body, no verdict header.
        reply = conn.scan(b"", preview=4096)
        assert reply.status_line == "ICAP/1.0 200 OK"
        assert reply.http_status_line == "HTTP/1.1 200 OK" and b"Content-Length: 0\r\n" in reply.http_head
        assert reply.body == b"" and "x-infection-found" not in reply.headers


@pytest.mark.time_limit(60)
def test_64mib_clean_file_through_both(scanners, capsys):
    clamd, icap = scanners
    data = random.Random(64).randbytes(64 * MiB)
    timings = []
    started = time.monotonic()
    assert clamd.instream(data) == b"stream: OK"
    timings.append(f"clamd INSTREAM (unix) {time.monotonic() - started:.2f}s")
    with icap.connect() as conn:
        for preview in (None, 4096):
            reply = conn.scan(data, preview=preview)
            assert reply.status == 204, reply.head
            timings.append(f"ICAP RESPMOD preview={preview} {reply.elapsed:.2f}s")
    with capsys.disabled():
        print("\n64 MiB clean: " + ", ".join(timings))


def test_icap_while_clamd_is_down(scanners, clean_1mib):
    clamd, icap = scanners
    clamd.kill()
    try:
        for preview in (None, 4096):
            with icap.connect() as conn:
                reply = conn.scan(clean_1mib, preview=preview)
                assert reply.status_line == "ICAP/1.0 500 Server error"
                assert reply.headers["connection"] == "close"
                assert "encapsulated" not in reply.headers
                assert conn.peer_closed(2.0)
    finally:
        clamd.start()
    # Back without restarting c-icap (it connects to clamd per scan).
    with icap.connect() as conn:
        assert conn.scan(clean_1mib).status == 204
        assert EICAR_REPLY_NAME in conn.scan(EICAR).headers["x-infection-found"]


def test_icap_kill_and_start_again(scanners):
    _, icap = scanners
    old_pid, port = icap.pid, icap.port
    icap.kill()
    with pytest.raises(ConnectionRefusedError):
        IcapConnection(port)
    icap.start()
    assert icap.pid != old_pid and icap.port == port
    assert icap.options().status == 200


def test_icap_keep_alive_limit(tmp_path, scanners):
    clamd, _ = scanners
    with CIcap(tmp_path / "icap", clamd, max_keepalive_requests=3) as icap, icap.connect() as conn:
        for n in range(4):
            reply = conn.scan(b"clean text\n" * 100)
            assert reply.status == 204
            assert reply.headers["connection"] == ("close" if n == 3 else "keep-alive")
        assert conn.peer_closed(2.0)


def test_icap_early_responses_hide_the_verdict(tmp_path, scanners):
    """virus_scan's stock behaviour, kept by early_responses=True: the 200 head leaves before
    the scan, so an infected file comes back as a clean-looking 200 cut short."""
    clamd, _ = scanners
    with CIcap(tmp_path / "icap", clamd, early_responses=True) as icap, icap.connect() as conn:
        reply = conn.scan(signed_file_bytes())
        assert reply.status_line == "ICAP/1.0 200 OK"
        assert "x-infection-found" not in reply.headers
        assert reply.http_status_line == "HTTP/1.1 200 OK"
        assert f"Content-Length: {len(signed_file_bytes())}\r\n".encode() in reply.http_head
        assert len(reply.body) < len(signed_file_bytes())


def test_long_workdir_gets_short_socket_paths(tmp_path):
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    server = Clamd(deep, tcp=False)
    try:
        assert len(str(server.socket)) <= 100 and str(server.socket).startswith("/tmp/ftpsgate-clamd-")
        server.start()
        assert server.ping()
    finally:
        server.close()
    assert not server.socket_dir.exists()
