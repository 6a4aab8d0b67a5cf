"""FEAT before login (issue 13.3): the gateway answers with its own features plus those
every server of the pool announced (learned by the health check, which asks FEAT once a
server greets, and by sessions' own FEAT after login). lftp asks FEAT before USER, so
through the gateway to a backend with MLSD (pyftpdlib) it lists and mirrors with MLSD."""
from __future__ import annotations

import time
import subprocess
import sys

import pytest

import harness
from harness import TEST_PASS, TEST_USER, Ctrl
from test_transfers import lftp

pytestmark = pytest.mark.control


class PyFtpd:
    """pyftpdlib (Debian python3-pyftpdlib) on loopback: MLST/MLSD, SIZE, MDTM, UTF8."""

    def __init__(self, root):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.port = harness.PORTS.port()
        passive = harness.PORTS.range(10)
        self.log = open(root.parent / "pyftpd.log", "wb")  # it logs every command
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pyftpdlib", "-i", "127.0.0.1", "-p", str(self.port), "-w",
             "-d", str(root), "-u", TEST_USER, "-P", TEST_PASS, "-r", f"{passive[0]}-{passive[-1]}"],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        harness.wait_until(self._greets, 15, "pyftpdlib greeting")

    def _greets(self) -> bool:
        try:
            with Ctrl(self.port, timeout=2) as c:
                return c.greeting().code == 220
        except OSError:
            return False

    def stop(self) -> None:
        harness.stop_process(self.proc)
        self.log.close()


@pytest.fixture
def pyftpd(workdir):
    server = PyFtpd(workdir / "pyftpd")
    yield server
    server.stop()


def prelogin_feat(gw) -> list[str]:
    with Ctrl(gw.explicit_port) as c:
        c.greeting()
        c.auth_tls()
        return [line.strip() for line in c.cmd("FEAT").lines[1:-1]]


def gateway_for(gateway_factory, servers: list[int]):
    def edit(cfg):
        cfg["backends"] = [{"name": "vsftpd", "servers": [f"127.0.0.1:{p}" for p in servers],
                            "connect_timeout": "3s", "health_check": {"interval": "1s", "timeout": "2s"}}]
    return gateway_factory(edit=edit)


def test_prelogin_feat_carries_the_backends_features_and_lftp_uses_mlsd(
        gateway_factory, pyftpd, local_dir):
    tree = harness.make_tree(pyftpd.root / "tree", 12, 64 * 1024)
    gw = gateway_for(gateway_factory, [pyftpd.port])
    harness.wait_until(lambda: "MLST" in " ".join(prelogin_feat(gw)), 15, "pool features learned")
    features = prelogin_feat(gw)
    for wanted in ("AUTH TLS", "PBSZ", "PROT", "EPSV", "SIZE", "MDTM", "UTF8", "REST STREAM"):
        assert any(f.startswith(wanted) for f in features), (wanted, features)
    assert any(f.startswith("MLST ") for f in features), features
    debug = local_dir / "lftp.log"
    lftp(gw, f"cls tree\nmirror tree {local_dir}/copy\n", debug)
    log = debug.read_text(errors="replace")
    assert log.index("---> FEAT") < log.index("---> USER"), "lftp asks FEAT before login"
    assert "---> MLSD" in log and "---> LIST" not in log, log[-3000:]
    for rel, digest in tree.items():
        assert harness.sha256_file(local_dir / "copy" / rel) == digest, rel


def test_prelogin_feat_promises_only_what_every_server_of_the_pool_has(
        gateway_factory, backend, pyftpd):
    """vsftpd (no MLST) and pyftpdlib in one pool: MLST is left out before login, since the
    session may land on vsftpd; SIZE, which both have, is announced."""
    gw = gateway_for(gateway_factory, [pyftpd.port, backend.port])
    harness.wait_until(lambda: any(f.startswith("SIZE") for f in prelogin_feat(gw)), 15, "pool features")
    features = prelogin_feat(gw)
    assert not any(f.startswith("MLST") for f in features), features


def test_prelogin_feat_waits_for_every_server_of_the_pool(gateway_factory, pyftpd):
    """A server not heard from yet (here: down) may be where a session lands once it is
    back, so nothing of pyftpdlib's is promised while it has not answered."""
    dead = harness.PORTS.port()  # nothing listens there
    gw = gateway_for(gateway_factory, [pyftpd.port, dead])
    harness.wait_until(lambda: [r for r in gw.events("backend_health") if r.get("up")], 15, "pyftpdlib checked")
    time.sleep(1.5)  # another health round: pyftpdlib's FEAT is learned by now
    features = prelogin_feat(gw)
    assert not any(f.startswith(("MLST", "SIZE", "UTF8")) for f in features), features
    assert "AUTH TLS" in features
