"""TLS as seen by the OpenSSL and GnuTLS command-line clients."""
from __future__ import annotations

import os
import re
import select
import subprocess
import time

import pytest

import harness

pytestmark = pytest.mark.tls


def s_client(*args: str, timeout: float = 20) -> tuple[int, str]:
    proc = harness.run(["openssl", "s_client", *args], input=b"", timeout=timeout)
    return proc.returncode, (proc.stdout + proc.stderr).decode("utf-8", "replace")


def negotiated_cipher(output: str) -> str | None:
    m = re.search(r"Cipher is (\S+)", output)
    if not m or m.group(1) == "(NONE)":
        return None
    return m.group(1)


def negotiated_version(output: str) -> str | None:
    m = re.search(r"New, (TLSv[\d.]+), Cipher is", output)
    return m.group(1) if m else None


def target(gw, listener: str) -> list[str]:
    if listener == "explicit":
        return ["-starttls", "ftp", "-connect", f"127.0.0.1:{gw.explicit_port}"]
    return ["-connect", f"127.0.0.1:{gw.implicit_port}"]


def test_s_client_starttls_ftp_shows_the_certificate(gateway):
    rc, out = s_client(*target(gateway, "explicit"), "-servername", "localhost")
    assert re.search(r"subject=\s*CN\s*=\s*ftpsgate-test", out), out
    assert negotiated_cipher(out), out
    assert negotiated_version(out) == "TLSv1.3", out


@pytest.mark.parametrize("listener", ["explicit", "implicit"])
@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_tls_1_2_and_1_3_handshakes_succeed(gateway, listener, version):
    rc, out = s_client(*target(gateway, listener), version)
    cipher = negotiated_cipher(out)
    assert cipher, out
    want = "TLSv1.2" if version == "-tls1_2" else "TLSv1.3"
    assert negotiated_version(out) == want, out


@pytest.fixture(scope="module")
def client_can_speak_old_tls(certs):
    """Control experiment: this OpenSSL client does TLS 1.0/1.1 against s_server, so a
    refusal by the gateway is the gateway's doing, not the client's."""
    results = {}
    for version in ("-tls1", "-tls1_1"):
        port = harness.PORTS.port()
        server = subprocess.Popen(
            ["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-naccept", "1",
             "-cert", str(certs.cert), "-key", str(certs.key), version,
             "-cipher", "DEFAULT@SECLEVEL=0", "-quiet"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            harness.wait_until(lambda: harness.PortAllocator._bindable(port) is False, 10,
                               "openssl s_server listening")
            rc, out = s_client("-connect", f"127.0.0.1:{port}", version,
                               "-cipher", "DEFAULT@SECLEVEL=0")
            results[version] = negotiated_cipher(out)
        finally:
            harness.stop_process(server, timeout=5)
    return results


@pytest.mark.parametrize("listener", ["explicit", "implicit"])
@pytest.mark.parametrize("version", ["-tls1", "-tls1_1"])
def test_tls_1_0_and_1_1_handshakes_are_refused(gateway, client_can_speak_old_tls, listener, version):
    if not client_can_speak_old_tls[version]:
        pytest.fail(f"control experiment failed: openssl s_client {version} cannot handshake "
                    f"even with openssl s_server; the refusal test would prove nothing")
    rc, out = s_client(*target(gateway, listener), version, "-cipher", "DEFAULT@SECLEVEL=0")
    assert rc != 0, out
    assert negotiated_cipher(out) is None, out
    # The gateway is still healthy afterwards.
    rc, out = s_client(*target(gateway, listener))
    assert negotiated_cipher(out), out


class Interactive:
    """A child process driven line by line with deadlines (no fixed sleeps)."""

    def __init__(self, cmd: list[str]):
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        self.out = b""

    def expect(self, pattern: bytes, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while not re.search(pattern, self.out, re.M):
            left = deadline - time.monotonic()
            if left <= 0:
                raise harness.HarnessError(f"no {pattern!r} within {timeout}s; output:\n"
                                           + self.out.decode("utf-8", "replace"))
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise harness.HarnessError(f"EOF before {pattern!r}; output:\n"
                                               + self.out.decode("utf-8", "replace"))
                self.out += chunk
        return self.out

    def send(self, data: bytes) -> None:
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def close(self) -> int | None:
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        code = harness.stop_process(self.proc, timeout=5) if self.proc.poll() is None else None
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self.proc.stdout.close()
        return code


def test_gnutls_cli_implicit_gets_the_greeting(gateway):
    cli = Interactive(["gnutls-cli", "--insecure", "--crlf", "-p", str(gateway.implicit_port),
                       "127.0.0.1"])
    try:
        cli.expect(rb"^220[ -]", 15)
        cli.send(b"QUIT\n")
        cli.expect(rb"^221", 10)
    finally:
        cli.close()


def test_gnutls_cli_starttls_ftp_on_the_explicit_listener(gateway):
    cli = Interactive(["gnutls-cli", "--insecure", "--crlf", "--starttls-proto=ftp",
                       "-p", str(gateway.explicit_port), "127.0.0.1"])
    try:
        cli.expect(rb"Handshake was completed", 15)
        cli.send(b"FEAT\n")
        cli.expect(rb"^211 ", 10)
        cli.send(b"QUIT\n")
        cli.expect(rb"^221", 10)
    finally:
        cli.close()
