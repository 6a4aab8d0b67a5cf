"""TLS scan with testssl.sh (issue 5): the gateway's TLS defaults, on the explicit
(STARTTLS via FTP) and the implicit listener, offer no SSLv2/SSLv3/TLS 1.0/1.1, no
NULL/aNULL/export/LOW/RC4/3DES ciphers, no compression, no client-initiated
renegotiation, and testssl flags none of its known vulnerabilities.

Long-ish (both scans run at once, about 70s on 2 cores): one module-scoped gateway with the
embedded default's TLS settings (tls: certificates: [] -> a self-signed ECDSA certificate
made at start, every other tls key at its default) on free loopback ports, scanned with
`testssl -p -s -f -U` (protocols, cipher categories, forward secrecy, all vulnerability
checks), findings read from --jsonfile. The full scans of the real embedded default
(`ftpsgate` without --config) are committed as bench/testssl-explicit.txt and
bench/testssl-implicit.txt.

Needs the Debian package testssl.sh (command `testssl`); skipped when it is missing.
"""
from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import time

import pytest

import harness
from harness import Certs, Gateway

pytestmark = [pytest.mark.tls, pytest.mark.time_limit(300)]

TESTSSL = shutil.which("testssl") or shutil.which("testssl.sh")
SCAN_TIMEOUT = 240

# testssl's per-finding "severity": OK, INFO, LOW, MEDIUM, HIGH, CRITICAL (WARN/DEBUG: scan issues).
VULNERABILITIES = ["heartbleed", "CCS", "ROBOT", "secure_renego", "secure_client_renego",
                   "CRIME_TLS", "POODLE_SSL", "fallback_SCSV", "SWEET32", "FREAK", "DROWN", "LOGJAM",
                   "BEAST", "RC4"]
# testssl runs the Ticketbleed check only where it does not know the service is not HTTP
# (so on the implicit port, not through STARTTLS FTP).
OPTIONAL_VULNERABILITIES = ["ticketbleed"]
CBC_SUITES_TLS12 = ["ECDHE-ECDSA-AES256-SHA384", "ECDHE-ECDSA-AES256-SHA", "ECDHE-ECDSA-AES128-SHA256",
                    "ECDHE-ECDSA-AES128-SHA"]


class Scanner:
    """Runs both scans at once, in the first test's body (fixture setup has a 60s limit)."""

    def __init__(self, gw: Gateway, workdir):
        self.gw, self.workdir = gw, workdir
        self.results: dict | None = None

    def __getitem__(self, listener: str) -> dict:
        if self.results is None:
            self.results = {}  # a failed scan is reported once, by the first test
            self.results = _scan_both(self.gw, self.workdir)
        assert listener in self.results, "the scan failed (see the first testssl test)"
        return self.results[listener]


@pytest.fixture(scope="module")
def scans(workdir, certs, backend):
    if TESTSSL is None:
        pytest.skip("testssl.sh is not installed (Debian package testssl.sh, command `testssl`)")
    gw = Gateway(workdir / "testssl-gw", backend.port, certs,
                 {"tls": {"certificates": []}, "logging": {"level": "info"}}, name="testssl")
    gw.start()
    try:
        yield Scanner(gw, workdir)
    finally:
        gw.stop()
    report = gw.sanitizer_report()
    assert report is None, report


def _scan_both(gw, workdir) -> dict:
    runs = {}
    started = time.monotonic()
    for listener in ("explicit", "implicit"):
        port = gw.explicit_port if listener == "explicit" else gw.implicit_port
        jsonfile = workdir / f"testssl-{listener}.json"
        jsonfile.unlink(missing_ok=True)
        cmd = [TESTSSL, "--color", "0", "--quiet", "--warnings", "off", "--connect-timeout", "10",
               "--openssl-timeout", "10", "-p", "-s", "-f", "-U", "--jsonfile", str(jsonfile)]
        if listener == "explicit":
            cmd += ["-t", "ftp"]
        cmd.append(f"127.0.0.1:{port}")
        out = open(workdir / f"testssl-{listener}.txt", "wb")
        runs[listener] = (subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                           cwd=workdir), jsonfile, out)
    results = {}
    for listener, (proc, jsonfile, out) in runs.items():
        try:
            proc.wait(timeout=max(1, SCAN_TIMEOUT - (time.monotonic() - started)))
        except subprocess.TimeoutExpired:
            for other, *_ in runs.values():
                harness.stop_process(other, timeout=5)
            raise harness.HarnessError(f"testssl on {listener} took over {SCAN_TIMEOUT}s")
        finally:
            out.close()
        text = (workdir / f"testssl-{listener}.txt").read_text(errors="replace")
        assert jsonfile.exists(), f"testssl wrote no JSON (exit {proc.returncode}):\n{text[-3000:]}\n{gw.tail()}"
        findings = {}
        for entry in json.loads(jsonfile.read_text()):
            findings.setdefault(entry["id"], entry)
        results[listener] = {"findings": findings, "text": text, "seconds": time.monotonic() - started}
    assert gw.proc.poll() is None, f"the gateway died during the scan\n{gw.tail()}"
    return results


def _get(scan: dict, fid: str) -> dict:
    entry = scan["findings"].get(fid)
    assert entry is not None, f"testssl reported no {fid!r}; ids: {sorted(scan['findings'])}\n{scan['text'][-3000:]}"
    return entry


def _show(scan: dict, *ids: str) -> str:
    return "; ".join(f"{i}: {scan['findings'].get(i, {}).get('severity')} "
                     f"{scan['findings'].get(i, {}).get('finding')!r}" for i in ids)


@pytest.mark.parametrize("listener", ["explicit", "implicit"])
def test_only_tls12_and_tls13_are_offered(scans, listener):
    scan = scans[listener]
    for old in ("SSLv2", "SSLv3", "TLS1", "TLS1_1"):
        assert _get(scan, old)["finding"].startswith("not offered"), _show(scan, old)
    for new in ("TLS1_2", "TLS1_3"):
        assert _get(scan, new)["finding"].startswith("offered"), _show(scan, new)


@pytest.mark.parametrize("listener", ["explicit", "implicit"])
def test_no_weak_cipher_categories(scans, listener):
    scan = scans[listener]
    for category in ("cipherlist_NULL", "cipherlist_aNULL", "cipherlist_EXPORT", "cipherlist_LOW",
                     "cipherlist_3DES_IDEA"):
        assert _get(scan, category)["finding"] == "not offered", _show(scan, category)
    assert _get(scan, "cipherlist_STRONG")["finding"] == "offered"
    assert _get(scan, "PFS")["severity"] == "OK", _show(scan, "PFS")


@pytest.mark.parametrize("listener", ["explicit", "implicit"])
def test_no_known_vulnerability_compression_or_client_renegotiation(scans, listener):
    scan = scans[listener]
    for fid in VULNERABILITIES + [f for f in OPTIONAL_VULNERABILITIES if f in scan["findings"]]:
        entry = _get(scan, fid)
        assert entry["severity"] in ("OK", "INFO"), _show(scan, fid)
        assert "VULNERABLE" not in entry["finding"].upper().replace("NOT VULNERABLE", ""), _show(scan, fid)
    assert _get(scan, "CRIME_TLS")["finding"].startswith("not vulnerable"), "TLS compression offered"
    assert _get(scan, "secure_client_renego")["finding"].startswith("not vulnerable"), \
        _show(scan, "secure_client_renego")
    # Nothing flagged in what was scanned (certificate checks are not part of -p -s -f -U).
    flagged = {fid: (e["severity"], e["finding"]) for fid, e in scan["findings"].items()
               if e["severity"] in ("MEDIUM", "HIGH", "CRITICAL")}
    assert not flagged, flagged


@pytest.mark.parametrize("listener", ["explicit", "implicit"])
def test_no_cbc_suites_lucky13(scans, listener):
    scan = scans[listener]
    assert _get(scan, "LUCKY13")["severity"] == "OK", _show(scan, "LUCKY13")
    assert _get(scan, "cipherlist_AVERAGE")["finding"] == "not offered", _show(scan, "cipherlist_AVERAGE")


# ----------------------------------------------------------------------------- without testssl

# TLS 1.2 suites a "secure built-in default" (docs/configuration.md, tls.ciphers "") must
# refuse: static RSA key exchange (no forward secrecy) and CBC (LUCKY13).
NOT_FORWARD_SECRET = ["AES128-SHA", "AES256-SHA", "AES128-SHA256", "AES256-SHA256", "AES128-GCM-SHA256",
                      "AES256-GCM-SHA384"]
CBC = {"rsa": ["ECDHE-RSA-AES128-SHA", "ECDHE-RSA-AES256-SHA", "ECDHE-RSA-AES128-SHA256",
               "ECDHE-RSA-AES256-SHA384"],
       "ec": ["ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA", "ECDHE-ECDSA-AES128-SHA256",
              "ECDHE-ECDSA-AES256-SHA384"]}
GOOD = {"rsa": "ECDHE-RSA-AES128-GCM-SHA256", "ec": "ECDHE-ECDSA-AES128-GCM-SHA256"}


def _rsa_certs(directory) -> Certs:
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "rsa-cert.pem", directory / "rsa-key.pem"
    if not cert.exists():
        harness.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
                     "-subj", "/CN=ftpsgate-rsa-test", "-addext", "subjectAltName=IP:127.0.0.1",
                     "-keyout", str(key), "-out", str(cert)], timeout=60, check=True)
    return Certs(cert=cert, key=key)


def _accepts(port: int, cipher: str) -> bool:
    ctx = harness.client_tls_context(min_version=ssl.TLSVersion.TLSv1_2, max_version=ssl.TLSVersion.TLSv1_2)
    ctx.set_ciphers(cipher)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        try:
            with ctx.wrap_socket(raw, server_hostname="localhost") as t:
                return t.cipher()[0] == cipher
        except (ssl.SSLError, ConnectionResetError):
            return False


@pytest.mark.parametrize("key_type", ["ec", "rsa"])
def test_default_tls12_suites_are_forward_secret_aead_only(gateway_factory, workdir, key_type):
    edit = None
    if key_type == "rsa":
        rsa = _rsa_certs(workdir / "certs-rsa")
        edit = lambda cfg: cfg["tls"].update({"certificates": [{"cert": str(rsa.cert), "key": str(rsa.key)}]})  # noqa: E731
    gw = gateway_factory(edit=edit)
    assert _accepts(gw.implicit_port, GOOD[key_type]), f"{GOOD[key_type]} refused"
    candidates = CBC[key_type] + (NOT_FORWARD_SECRET if key_type == "rsa" else [])
    accepted = [c for c in candidates if _accepts(gw.implicit_port, c)]
    assert gw.proc.poll() is None
    assert not accepted, f"TLS 1.2 suites accepted by default with an {key_type.upper()} certificate: {accepted}"
