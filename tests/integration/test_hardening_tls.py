"""Security hardening (issue 11) of the data channel's TLS binding and of transfer ends:
no session bound to a control connection is ever issued on a data connection (the
ticket-theft attack), a resumed control connection gets a session bound to itself,
passive ports are not predictable, and a truncated backend stream never reaches the
client looking complete."""
from __future__ import annotations

import os
import socket
import ssl
import struct
import threading
import time

import pytest

import harness
from faults_util import LoopbackServer
from harness import Ctrl

pytestmark = pytest.mark.tls


def _protected_session(gw, ctx: ssl.SSLContext | None = None, session: ssl.SSLSession | None = None) -> Ctrl:
    c = Ctrl(gw.explicit_port, ctx=ctx)
    c.greeting()
    r = c.cmd("AUTH TLS")
    assert r.code == 234, r.text
    c.sock.settimeout(c.timeout)
    c.sock = c.ctx.wrap_socket(c.sock, server_hostname="localhost", session=session)
    c.tls = True
    c.login()
    c.expect("PBSZ 0", 200)
    c.expect("PROT P", 200)
    c.expect("TYPE I", 200)
    return c


def _tls12() -> ssl.SSLContext:
    return harness.client_tls_context(max_version=ssl.TLSVersion.TLSv1_2)


def _offer(port: int, ctx: ssl.SSLContext, session: ssl.SSLSession | None = None):
    """Connects to a data port and does a TLS handshake; returns the socket or None."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        return ctx.wrap_socket(raw, server_hostname="localhost", session=session)
    except (ssl.SSLError, OSError):
        raw.close()
        return None


def test_a_refused_data_connection_issues_no_session_a_thief_can_resume(gateway, backend, remote_dir, medium_file):
    """A neighbour behind the victim's address takes the victim's passive port with a
    fresh TLS 1.2 handshake. It is refused, and must leave without any session (ticket or
    session id) that would later pass as the victim's on the victim's next passive port."""
    path, digest = medium_file
    backend.put_file(f"{remote_dir}/secret.bin", path)
    with _protected_session(gateway, _tls12()) as victim:
        victim.expect(f"CWD {remote_dir}", 250)
        _, first_port, _ = victim.pasv()
        thief_ctx = _tls12()
        stolen = _offer(first_port, thief_ctx)
        assert stolen is not None, "the fresh handshake itself should complete"
        stolen_session = stolen.session
        harness.recv_all(stolen, 5)  # the gateway closes it
        stolen.close()

        # The victim's transfer on the port the thief took is refused, not sent upstream.
        r = victim.cmd("RETR secret.bin")
        assert r.code == 425, r.text

        _, second_port, _ = victim.pasv()
        thief = _offer(second_port, thief_ctx, session=stolen_session)
        victim.send("RETR secret.bin")
        r = victim.reply()
        loot = b""
        if thief is not None:
            try:
                loot = harness.recv_all(thief, 10)
            except (ssl.SSLError, OSError):
                pass
            thief_resumed = thief.session_reused
            thief.close()
        else:
            thief_resumed = False
        _, final = victim.final_reply() if r.code < 200 else ([], r)
        assert not thief_resumed, "the thief resumed a session issued on a refused data connection"
        assert loot == b"", f"the thief received {len(loot)} bytes of the victim's download"
        assert final.code == 425, f"the victim was told {final.text!r} for a transfer it never received"

        # The victim's own next transfer works.
        _, port, _ = victim.pasv()
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        victim.send("RETR secret.bin")
        assert victim.reply().code == 150
        data_sock = victim.ctx.wrap_socket(raw, server_hostname="localhost", session=victim.session())
        assert data_sock.session_reused
        data = harness.recv_all(data_sock, 15)
        harness.close_tls(data_sock)
        _, final = victim.final_reply()
        assert final.code == 226, final.text
        assert harness.sha256_bytes(data) == digest


@pytest.mark.parametrize("version", ["TLSv1.2", "TLSv1.3"])
def test_no_session_or_ticket_is_issued_on_a_data_connection(gateway, version):
    """Checked from the client's side: whatever a data connection's handshake hands out
    must not resume anywhere (TLS 1.2 session id or ticket, TLS 1.3 ticket)."""
    v = ssl.TLSVersion.TLSv1_2 if version == "TLSv1.2" else ssl.TLSVersion.TLSv1_3
    ctx = harness.client_tls_context(min_version=v, max_version=v)
    with _protected_session(gateway, ctx) as c:
        _, port, _ = c.pasv()
        fresh = _offer(port, ctx)
        assert fresh is not None
        try:
            fresh.recv(1)  # TLS 1.3 tickets arrive after the handshake, if any were sent
        except (ssl.SSLError, OSError):
            pass
        issued = fresh.session
        has_ticket = issued is not None and issued.has_ticket
        fresh.close()
        assert not has_ticket, "a session ticket was issued on a data connection"
        c.cmd("NOOP")
        _, port, _ = c.pasv()
        again = _offer(port, ctx, session=issued) if issued is not None else None
        resumed = again is not None and again.session_reused
        if again is not None:
            again.close()
        assert not resumed, "a session issued on a data connection was resumed"


def _transfer_with(c: Ctrl, name: str, session: ssl.SSLSession) -> tuple[int, bytes, bool]:
    _, port, _ = c.pasv()
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    c.send(f"RETR {name}")
    first = c.reply()
    if first.code != 150:
        raw.close()
        return first.code, b"", False
    try:
        data_sock = c.ctx.wrap_socket(raw, server_hostname="localhost", session=session)
        reused = data_sock.session_reused
        data = harness.recv_all(data_sock, 15)
        harness.close_tls(data_sock)
    except (ssl.SSLError, OSError):
        reused, data = False, b""
    _, final = c.final_reply()
    return final.code, data, reused


@pytest.mark.parametrize("flavour", ["TLSv1.2-ticket", "TLSv1.2-session-id", "TLSv1.3"])
def test_a_resumed_control_connection_can_transfer(gateway, backend, remote_dir, flavour):
    """curl and lftp resume their previous connection's session on a new control
    connection; its data connections must then work with the session the new control
    connection ends up with, and with the one it resumed."""
    payload = b"resumed control connection\n" * 1000
    backend.put(f"{remote_dir}/r.txt", payload)
    digest = harness.sha256_bytes(payload)
    v = ssl.TLSVersion.TLSv1_3 if flavour == "TLSv1.3" else ssl.TLSVersion.TLSv1_2
    ctx = harness.client_tls_context(min_version=v, max_version=v)
    if flavour == "TLSv1.2-session-id":
        ctx.options |= ssl.OP_NO_TICKET
    with _protected_session(gateway, ctx) as first:
        first.cmd("NOOP")  # TLS 1.3 tickets come after the handshake
        earlier = first.session()
        # Ended cleanly: a connection that breaks off takes its cached session id along.
        assert first.cmd("QUIT").code == 221
        first.read_until_closed(5)
    with _protected_session(gateway, ctx, session=earlier) as second:
        second.cmd("NOOP")
        assert second.sock.session_reused, "the control connection did not resume"
        second.expect(f"CWD {remote_dir}", 250)
        code, data, reused = _transfer_with(second, "r.txt", second.session())
        assert code == 226 and reused and harness.sha256_bytes(data) == digest, (code, reused, len(data))
        code, data, reused = _transfer_with(second, "r.txt", earlier)
        assert code == 226 and reused and harness.sha256_bytes(data) == digest, (code, reused, len(data))


def test_passive_ports_are_not_handed_out_in_order(gateway):
    """Round robin lets a neighbour guess the next port blind; vsftpd picks at random."""
    with _protected_session(gateway) as c:
        ports = [c.pasv()[1] for _ in range(12)]
    steps = {(b - a) % len(gateway.passive_range) for a, b in zip(ports, ports[1:])}
    assert steps != {1}, f"passive ports in sequence: {ports}"


# --------------------------------------------------------------------------- truncated backend streams

class CuttingBackend(LoopbackServer):
    """A minimal FTP server on loopback whose RETR sends half of `payload` and then cuts
    the data connection: `rst` (reset, then 426), `fin_426` (FIN, then 426) or
    `fin_hangup` (FIN, then the control connection closes without a final reply); with
    `certs` it is an FTPS backend (AUTH TLS, protected data) and `tls_fin_226` ends the
    data connection with a bare FIN (no close_notify) mid-file, then claims 226."""

    def __init__(self, how: str, payload: bytes, certs=None):
        self.how, self.payload = how, payload
        self.ctx = None
        if certs is not None:
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(str(certs.cert), str(certs.key))
        self.retrs = 0
        super().__init__()
        self.start()

    def handle(self, conn: socket.socket, number: int) -> None:
        pasv = None
        try:
            conn.settimeout(20)
            f = conn.makefile("rb")
            conn.sendall(b"220 cutting backend\r\n")
            while not self.stop_flag.is_set():
                line = f.readline()
                if not line:
                    return
                verb = line.split(b" ", 1)[0].strip().upper()
                if verb == b"AUTH" and self.ctx is not None:
                    conn.sendall(b"234 AUTH TLS ok\r\n")
                    conn = self.ctx.wrap_socket(conn, server_side=True)
                    f = conn.makefile("rb")
                elif verb == b"USER":
                    conn.sendall(b"331 password please\r\n")
                elif verb == b"PASS":
                    conn.sendall(b"230 logged in\r\n")
                elif verb in (b"PASV", b"EPSV"):
                    pasv = socket.create_server(("127.0.0.1", 0))
                    port = pasv.getsockname()[1]
                    if verb == b"EPSV":
                        conn.sendall(f"229 Entering Extended Passive Mode (|||{port}|)\r\n".encode())
                    else:
                        conn.sendall(f"227 Entering Passive Mode (127,0,0,1,{port >> 8},{port & 255})\r\n".encode())
                elif verb == b"RETR" and pasv is not None:
                    self.retrs += 1
                    pasv.settimeout(10)
                    data, _ = pasv.accept()
                    pasv.close()
                    pasv = None
                    conn.sendall(b"150 Opening BINARY mode data connection\r\n")
                    if self.ctx is not None:
                        data = self.ctx.wrap_socket(data, server_side=True)
                    data.sendall(self.payload[: len(self.payload) // 2])
                    time.sleep(0.2)
                    if self.how == "tls_fin_226":
                        data.close()  # Python sends no close_notify on close(): a bare FIN
                        time.sleep(0.2)
                        conn.sendall(b"226 Transfer complete.\r\n")
                    elif self.how == "rst":
                        data.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                        data.close()
                        conn.sendall(b"426 Failure writing network stream.\r\n")
                    elif self.how == "fin_426":
                        data.close()
                        time.sleep(0.2)
                        conn.sendall(b"426 Failure writing network stream.\r\n")
                    else:
                        data.close()
                        time.sleep(0.2)
                        return
                elif verb == b"QUIT":
                    conn.sendall(b"221 bye\r\n")
                    return
                else:
                    conn.sendall(b"200 ok\r\n")
        except OSError:
            pass
        finally:
            conn.close()



def _read_data(sock: socket.socket) -> tuple[bytes, str]:
    """Reads to the end; returns (bytes, how it ended: clean | reset | unclean)."""
    sock.settimeout(15)
    chunks = []
    while True:
        try:
            chunk = sock.recv(1 << 20)
        except ssl.SSLZeroReturnError:
            return b"".join(chunks), "clean"
        except ConnectionResetError:
            return b"".join(chunks), "reset"
        except (ssl.SSLError, OSError):
            return b"".join(chunks), "unclean"
        if not chunk:
            # Clear data: FIN. TLS with suppress_ragged_eofs=False never gets here on a bare FIN.
            return b"".join(chunks), "clean"
        chunks.append(chunk)


@pytest.mark.parametrize("prot", ["P", "C"])
@pytest.mark.parametrize("how", ["rst", "fin_426", "fin_hangup"])
def test_a_download_the_backend_cuts_never_looks_complete(gateway_factory, how, prot):
    payload = os.urandom(3 << 20)
    fake = CuttingBackend(how, payload)
    try:
        gw = gateway_factory({"backends": [{"name": "vsftpd", "servers": [f"127.0.0.1:{fake.port}"],
                                            "connect_timeout": "3s",
                                            "health_check": {"interval": "300s", "timeout": "2s"}}],
                              "classes": [harness.klass("default", "ctrl")]})
        with _protected_session(gw) as c:
            if prot == "C":
                c.expect("PROT C", 200)
            _, port, _ = c.pasv()
            raw = socket.create_connection(("127.0.0.1", port), timeout=10)
            c.send("RETR cut.bin")
            assert c.reply().code == 150
            sock = raw
            if prot == "P":
                sock = c.ctx.wrap_socket(raw, server_hostname="localhost", session=c.session(),
                                         suppress_ragged_eofs=False)
            data, ending = _read_data(sock)
            sock.close()
            try:
                _, final = c.final_reply(timeout=15)
                final_code = final.code
            except harness.ConnectionClosed:
                final_code = None  # fin_hangup: the backend went away, so does the session (421 first)
        assert len(data) < len(payload)
        assert ending != "clean", f"a cut download ended cleanly for the client after {len(data)} bytes"
        assert final_code != 226
        records = gw.wait_log(lambda: gw.events("transfer"), "a transfer record")
        assert [r["result"] for r in records] == ["failed"], records
        assert fake.retrs == 1
    finally:
        fake.stop()


@pytest.mark.time_limit(90)
def test_a_client_that_stops_reading_is_cut_after_the_stall_timeout(gateway_factory, backend, remote_dir, big_file):
    path, _ = big_file
    backend.put_file(f"{remote_dir}/big.bin", path)
    gw = gateway_factory({"data": {"stall_timeout": "2s"}, "limits": {"idle_timeout": "600s"}})
    with _protected_session(gw) as c:
        c.expect(f"CWD {remote_dir}", 250)
        _, port, _ = c.pasv()
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raw.settimeout(10)
        raw.connect(("127.0.0.1", port))
        c.send("RETR big.bin")
        assert c.reply().code == 150
        sock = c.ctx.wrap_socket(raw, server_hostname="localhost", session=c.session())
        sock.recv(1024)  # the transfer started; from now on the client reads nothing
        _, final = c.final_reply(timeout=60)
        assert final.code == 426, final.text
        sock.close()
        assert c.cmd("NOOP").code == 200, "the control session goes on"
    records = gw.wait_log(lambda: gw.events("transfer"), "a transfer record")
    assert records[0]["result"] == "failed" and "stalled" in records[0]["error"], records


def test_an_ftps_backend_data_stream_without_close_notify_is_a_truncation(gateway_factory, certs):
    """Upstream only close_notify ends a TLS stream: a bare FIN mid-file (a cut, or an
    attacker on the backend path) fails the transfer even when the backend then says 226."""
    payload = os.urandom(3 << 20)
    fake = CuttingBackend("tls_fin_226", payload, certs=certs)
    try:
        gw = gateway_factory({"backends": [{"name": "vsftpd", "servers": [f"127.0.0.1:{fake.port}"],
                                            "connect_timeout": "3s", "tls": "explicit", "tls_verify": False,
                                            "health_check": {"interval": "300s", "timeout": "2s"}}]})
        with _protected_session(gw) as c:
            _, port, _ = c.pasv()
            raw = socket.create_connection(("127.0.0.1", port), timeout=10)
            c.send("RETR cut.bin")
            assert c.reply().code == 150
            sock = c.ctx.wrap_socket(raw, server_hostname="localhost", session=c.session(),
                                     suppress_ragged_eofs=False)
            data, ending = _read_data(sock)
            sock.close()
            _, final = c.final_reply(timeout=15)
        assert len(data) < len(payload)
        assert ending != "clean", f"a truncated download ended cleanly for the client after {len(data)} bytes"
        assert final.code == 426, final.text
        records = gw.wait_log(lambda: gw.events("transfer"), "a transfer record")
        assert [r["result"] for r in records] == ["failed"], records
        assert "close_notify" in records[0]["error"], records
    finally:
        fake.stop()
