"""Inside-out agent tests (issue 17): a throwaway PKI, the `ftpsgate agent` process and the
config blocks that join a gateway and an agent on loopback.

PKI: one CA for the gateways' agents listener (the agent pins it), one CA for agents (the
gateway's agents.tls.client_ca), and an unrelated CA for the wrong-certificate cases.
"""
from __future__ import annotations

import json
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import harness
from harness import GATEWAY_BIN, PORTS, HarnessError, tail_file, wait_until

try:
    import yaml as _yaml
except ImportError:  # pragma: no cover
    _yaml = None

ALPN = "ftpsgate-agent/1"
PY = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable

# GET one URL; prints the status, a newline and the body (also for 4xx/5xx).
HTTP_GET = ("import sys,urllib.request,urllib.error\n"
            "try:\n r=urllib.request.urlopen(sys.argv[1],timeout=5); s=r.status; b=r.read()\n"
            "except urllib.error.HTTPError as e:\n s=e.code; b=e.read()\n"
            "sys.stdout.write(str(s)+'\\n'+b.decode('utf-8','replace'))\n")


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@dataclass
class AgentPki:
    dir: Path

    def path(self, name: str) -> str:
        return str(self.dir / name)

    def cert(self, name: str) -> str:
        return self.path(f"{name}.pem")

    def key(self, name: str) -> str:
        return self.path(f"{name}.key")


def make_agent_pki(d: Path) -> AgentPki:
    """gateway-ca → gateway (DNS:gw.agents.test, IP:127.0.0.1); agent-ca → site-a, site-b,
    inside, unmapped (SAN URIs); other-ca → other-gateway and stranger (site-a's URI, wrong CA)."""
    d.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    for ca in ("gateway-ca", "agent-ca", "other-ca"):
        _openssl("req", "-x509", *ec, "-days", "30", "-subj", f"/CN=ftpsgate-test-{ca}",
                 "-keyout", f"{ca}.key", "-out", f"{ca}.pem", cwd=d)
    leaves = (
        ("gateway", "gateway-ca", "subjectAltName=DNS:gw.agents.test,IP:127.0.0.1"),
        ("other-gateway", "other-ca", "subjectAltName=DNS:gw.agents.test,IP:127.0.0.1"),
        ("site-a", "agent-ca", "subjectAltName=URI:urn:ftpsgate:agent:site-a"),
        ("site-b", "agent-ca", "subjectAltName=URI:urn:ftpsgate:agent:site-b"),
        ("inside", "agent-ca", "subjectAltName=URI:urn:ftpsgate:agent:inside"),
        ("unmapped", "agent-ca", "subjectAltName=URI:urn:ftpsgate:agent:nobody"),
        ("stranger", "other-ca", "subjectAltName=URI:urn:ftpsgate:agent:site-a"),
    )
    for name, ca, san in leaves:
        (d / f"{name}.ext").write_text(san + "\n")
        _openssl("req", *ec, "-subj", f"/CN={name}", "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
                 "-CAcreateserial", "-days", "30", "-extfile", f"{name}.ext", "-out", f"{name}.pem", cwd=d)
    for key in d.glob("*.key"):
        key.chmod(0o600)
    return AgentPki(d)


def agents_section(pki: AgentPki, port: int, peers: list[dict] | None = None, **extra) -> dict:
    """The gateway's `agents` section: one listener on 127.0.0.1:PORT, peer site-a mapped by
    its SAN URI unless `peers` is given."""
    section = {
        "address": f"127.0.0.1:{port}",
        "tls": {"cert": pki.cert("gateway"), "key": pki.key("gateway"), "client_ca": pki.cert("agent-ca")},
        "peers": peers if peers is not None else [peer("site-a")],
    }
    section.update(extra)
    return section


def peer(name: str, **extra) -> dict:
    entry = {"name": name, "certificate": {"field": "san_uri", "equals": f"urn:ftpsgate:agent:{name}"}}
    entry.update(extra)
    return entry


class Agent(harness.Daemon):
    """One `ftpsgate agent` process with its own config and log file."""

    def __init__(self, workdir: Path, pki: AgentPki, gateway_port: int, targets: list[str],
                 name: str = "site-a", ca: str = "gateway-ca", idle: int = 4,
                 overrides: dict | None = None, prefix: list[str] | None = None,
                 gateway_host: str = "127.0.0.1"):
        """prefix: e.g. ["ip", "netns", "exec", NS] to run the agent in a namespace (its
        metrics endpoint is then probed from inside it)."""
        self.workdir = workdir
        self.prefix = list(prefix or [])
        workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / "agent.log"
        self.stderr_path = workdir / "agent.stderr"
        self.config_path = workdir / "agent.yaml"
        self.metrics_port = PORTS.port()
        self.config: dict[str, Any] = {
            "agent": {
                "gateways": [{"address": f"{gateway_host}:{gateway_port}", "server_name": "gw.agents.test"}],
                "tls": {"ca": pki.cert(ca), "cert": pki.cert(name), "key": pki.key(name)},
                "pool": {"idle": idle, "backoff": {"initial": "100ms", "max": "1s"}},
                "targets": targets,
                "connect_timeout": "3s",
                "drain_timeout": "2s",
            },
            "metrics": {"address": f"127.0.0.1:{self.metrics_port}"},
            "logging": {"format": "json", "level": "debug", "file": str(self.log_path)},
        }
        if overrides:
            self.config = harness.deep_merge(self.config, overrides)
        self.proc = None

    def write_config(self) -> None:
        text = (_yaml.safe_dump(self.config, sort_keys=False) if _yaml is not None
                else json.dumps(self.config, indent=2))
        self.config_path.write_text(text)

    def start(self, timeout: float = 15.0) -> "Agent":
        self.write_config()
        err = open(self.stderr_path, "ab")
        try:
            self.proc = subprocess.Popen([*self.prefix, str(GATEWAY_BIN), "agent", "--config", str(self.config_path)],
                                         stdin=subprocess.DEVNULL, stdout=err, stderr=subprocess.STDOUT,
                                         cwd=self.workdir)
        finally:
            err.close()
        wait_until(self._metrics_listening, timeout, "agent metrics endpoint", context=self.tail)
        return self

    def _metrics_listening(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise HarnessError(f"agent exited with {self.proc.returncode} during start\n" + self.tail())
        if self.prefix:
            return self.http("/healthz")[0] == 200
        try:
            with socket.create_connection(("127.0.0.1", self.metrics_port), timeout=1):
                return True
        except OSError:
            return False

    def http(self, path: str) -> tuple[int, str]:
        """(status, body) of GET on the agent's metrics endpoint; status 0 when unreachable."""
        proc = subprocess.run([*self.prefix, PY, "-c", HTTP_GET, f"http://127.0.0.1:{self.metrics_port}{path}"],
                              capture_output=True, timeout=20)
        if proc.returncode != 0:
            return 0, ""
        status, _, body = proc.stdout.decode("utf-8", "replace").partition("\n")
        return int(status), body

    def log_lines(self) -> list[str]:
        try:
            return self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return []

    # The gateway's JSON-log readers work on any object with log_lines().
    log_records = harness.Gateway.log_records
    events = harness.Gateway.events

    def sanitizer_report(self) -> str | None:
        text = tail_file(self.stderr_path, 200000)
        for marker in harness.Gateway.SANITIZER_MARKERS:
            at = text.find(marker)
            if at >= 0:
                return text[max(0, at - 200):at + 4000]
        return None

    def tail(self, lines: int = 40) -> str:
        try:
            log = "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            log = "<no log>"
        return (f"--- agent log tail ({self.log_path}) ---\n{log}\n"
                f"--- agent stderr tail ---\n{tail_file(self.stderr_path, 3000)}")


def wait_metric(scrape: Callable[[], str], name: str, want: Callable[[float | None], bool], what: str,
                timeout: float = 15.0, context: Callable[[], str] | None = None, **labels) -> float | None:
    from clients import metric
    seen: list[float | None] = [None]

    def check():
        seen[0] = metric(scrape(), name, **labels)
        return want(seen[0])
    wait_until(check, timeout, f"{what} (last {name}{labels} = {seen[0]})", context=context)
    return seen[0]
