"""Monitoring artefacts (dashboards/): the Prometheus rules load and behave (promtool),
the Grafana dashboard is well-formed and its queries parse, and every ftpsgate_* metric
they use is exported by a running gateway after a short real session, in an exposition
that `promtool check metrics` accepts."""
from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import tempfile
import threading
from pathlib import Path

import pytest
import yaml

import harness
from clients import ReusingFTP_TLS, connect, download, metric, metrics_up, scrape_metrics
from agent_util import agents_section, make_agent_pki
from harness import Ctrl

pytestmark = pytest.mark.artifacts

DASHBOARDS = harness.REPO / "dashboards"
DASHBOARD = DASHBOARDS / "ftpsgate.json"
ALERTS = DASHBOARDS / "alerts.yaml"
ALERT_TESTS = DASHBOARDS / "alerts_test.yaml"

# SPEC §4: the metric families the gateway exports.
SPEC_FAMILIES = {
    "ftpsgate_sessions_active", "ftpsgate_sessions_total", "ftpsgate_tls_handshakes_total",
    "ftpsgate_policy_denials_total", "ftpsgate_data_connections_total",
    "ftpsgate_transfer_bytes_total", "ftpsgate_backend_up", "ftpsgate_backend_connect_failures_total",
    "ftpsgate_backend_connect_seconds", "ftpsgate_config_reloads_total",
    "ftpsgate_certificate_expiry_timestamp_seconds",
}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
METRIC_NAME = re.compile(r"\bftpsgate_[a-zA-Z0-9_]+")
# Grafana's variables, replaced by values PromQL can parse.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h",
                     "$job": ".*", "$instance": ".*", "${job}": ".*", "${instance}": ".*"}


def promtool() -> str:
    path = shutil.which("promtool")
    if not path:
        pytest.fail("promtool is needed (Debian package prometheus; scripts/install-deps.sh)")
    return path


def _out(proc) -> str:
    return (proc.stdout + proc.stderr).decode("utf-8", "replace")


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def dashboard_exprs() -> list[str]:
    exprs = []
    for panel in dashboard()["panels"]:
        for target in panel.get("targets", []):
            exprs.append(target["expr"])
        for inner in panel.get("panels", []):  # collapsed rows keep their panels inside
            exprs.extend(t["expr"] for t in inner.get("targets", []))
    return exprs


def alert_exprs() -> list[str]:
    rules = yaml.safe_load(ALERTS.read_text())
    return [r["expr"] for g in rules["groups"] for r in g["rules"]]


def variable_queries() -> list[str]:
    out = []
    for var in dashboard()["templating"]["list"]:
        q = var.get("query")
        if var["type"] == "query":
            out.append(q["query"] if isinstance(q, dict) else q)
    return out


def family(name: str, histograms: set[str]) -> str:
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix) and name[: -len(suffix)] in histograms:
            return name[: -len(suffix)]
    return name


# --------------------------------------------------------------------------- rules

def test_alert_rules_pass_promtool_check_rules():
    proc = harness.run([promtool(), "check", "rules", str(ALERTS)], timeout=60)
    assert proc.returncode == 0 and "SUCCESS" in _out(proc), _out(proc)
    names = {r["alert"] for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]}
    assert {"FtpsgateDown", "FtpsgateBackendDown", "FtpsgateAllBackendsDown",
            "FtpsgateCertificateExpiresSoon", "FtpsgateConfigReloadFailed",
            "FtpsgateHandshakeFailuresHigh", "FtpsgatePolicyDenialsSpike"} <= names, names


def test_alert_rules_fire_in_promtool_unit_tests():
    """dashboards/alerts_test.yaml: each alert fires on its situation, not on the near miss."""
    proc = harness.run([promtool(), "test", "rules", str(ALERT_TESTS)], timeout=120)
    assert proc.returncode == 0 and "SUCCESS" in _out(proc), _out(proc)
    tested = set(re.findall(r"alertname:\s*(\w+)", ALERT_TESTS.read_text()))
    rules = {r["alert"] for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]}
    assert rules <= tested, f"alerts without a unit test: {rules - tested}"


# --------------------------------------------------------------------------- dashboard

def test_dashboard_is_a_grafana_dashboard_with_a_datasource_variable():
    d = dashboard()
    assert d["title"] and d["uid"] and isinstance(d["schemaVersion"], int)
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    panels = [p for p in d["panels"] if p["type"] != "row"]
    assert len(panels) >= 10, [p["title"] for p in panels]
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    cells = set()
    for p in d["panels"]:
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24, (p["title"], g)
        area = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not area & cells, f"panel {p['title']!r} overlaps another"
        cells |= area
    for p in panels:
        assert p["targets"], p["title"]
        # Every query goes through the selectable data source.
        assert p["datasource"]["uid"] == "${datasource}", p["title"]
        assert all(t["datasource"]["uid"] == "${datasource}" for t in p["targets"]), p["title"]


def test_dashboard_queries_are_valid_promql(tmp_path):
    """Each query (Grafana variables substituted) loads as a recording rule in promtool;
    for label_values(SELECTOR, label) variable queries, the selector."""
    exprs = list(dashboard_exprs())
    for query in variable_queries():
        m = re.fullmatch(r"label_values\((.+),\s*\w+\)", query.strip())
        assert m, f"unexpected variable query {query!r}"
        exprs.append(m.group(1))
    rules = []
    for i, expr in enumerate(exprs):
        for var, value in sorted(GRAFANA_VARIABLES.items(), key=lambda kv: -len(kv[0])):
            expr = expr.replace(var, value)
        assert "$" not in expr, f"unsubstituted variable in {expr!r}"
        rules.append({"record": f"dashboard:query_{i}", "expr": expr})
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    proc = harness.run([promtool(), "check", "rules", str(path)], timeout=60)
    assert proc.returncode == 0, f"{_out(proc)}\n{path.read_text()}"


def test_dashboard_shows_every_exported_metric_family():
    used = {family(n, {"ftpsgate_backend_connect_seconds"})
            for e in dashboard_exprs() for n in METRIC_NAME.findall(e)}
    assert SPEC_FAMILIES <= used, f"metrics with no panel: {sorted(SPEC_FAMILIES - used)}"


# --------------------------------------------------------------------------- against a real gateway

class VanishingServer:
    """A backend server that greets health checks ("220") until closed; afterwards a
    connection to it is refused, which the gateway counts as a connect failure."""

    def __init__(self):
        self.port = harness.PORTS.port()
        self.sock = socket.create_server(("127.0.0.1", self.port))
        self.greeted = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return  # closed
            with conn:
                try:
                    conn.sendall(b"220 about to vanish\r\n")
                    self.greeted += 1
                except OSError:
                    pass

    def close(self):
        # shutdown() stops the listening socket even while accept() blocks in the thread.
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(5)
        assert not self.thread.is_alive()


def scrape_after_session(gateway_factory, backend, remote_dir) -> str:
    """A gateway whose every metric family has a child: a STARTTLS injection (denial), a
    TLS login and download (sessions, handshakes, data, bytes, backend connect), a listing
    by stock ftplib under session_reuse_required: audit (data_unresumed), a login
    routed to a backend server that went away (connect failure), a SIGHUP (reload) and an
    `agents` section with one peer (the agent families exist per configured peer)."""
    mport = harness.PORTS.port()
    pki = make_agent_pki(Path(tempfile.mkdtemp(prefix="ftpsgate-dash-pki-")))
    agents_port = harness.PORTS.port()
    vanishing = VanishingServer()
    vanishing_listener = harness.PORTS.port()

    def edit(cfg):
        cfg["metrics"] = {"address": f"127.0.0.1:{mport}"}
        cfg["tls"]["session_reuse_required"] = "audit"
        cfg["agents"] = agents_section(pki, agents_port)
        # Health checks (where implemented) see the server up once, and not again soon.
        cfg["backends"].append({"name": "vanishing", "servers": [f"127.0.0.1:{vanishing.port}"],
                                "connect_timeout": "2s", "health_check": {"interval": "300s", "timeout": "2s"}})
        cfg["listeners"].append({"name": "vanishing", "address": f"127.0.0.1:{vanishing_listener}",
                                 "mode": "explicit", "backend": "vanishing"})

    try:
        gw = gateway_factory(edit=edit)
        harness.wait_until(lambda: metrics_up(mport), 10, "metrics endpoint")
        payload = b"ftpsgate dashboards\n" * 1000
        backend.put(f"{remote_dir}/file.txt", payload)

        with Ctrl(gw.explicit_port) as c:
            c.greeting()
            c.send_raw(b"AUTH TLS\r\nUSER x\r\n")
            c.read_until_closed(5)
        ftp = connect(gw, cls=ReusingFTP_TLS)
        try:
            assert download(ftp, f"{remote_dir}/file.txt") == payload
            ftp.quit()
        finally:
            ftp.close()
        # Stock ftplib does not resume: counted by session_reuse_required: audit.
        ftp = connect(gw)
        try:
            assert ftp.nlst(remote_dir)
            ftp.quit()
        finally:
            ftp.close()
        # A gateway with health checks probes the server at start; one without never does.
        try:
            harness.wait_until(lambda: metric(scrape_metrics(mport), "ftpsgate_backend_up",
                                              backend="vanishing") == 1, 3, "vanishing server up")
        except harness.HarnessError:
            assert vanishing.greeted == 0, "the server greeted a health check, yet backend_up is not 1"
    finally:
        vanishing.close()
    with Ctrl(vanishing_listener) as c:
        c.greeting()
        c.auth_tls()
        assert c.cmd(f"USER {harness.TEST_USER}").code == 421
    gw.proc.send_signal(signal.SIGHUP)
    harness.wait_until(lambda: metric(scrape_metrics(mport), "ftpsgate_config_reloads_total") is not None,
                       10, "config_reloads_total after SIGHUP")
    harness.wait_until(lambda: (metric(scrape_metrics(mport), "ftpsgate_transfer_bytes_total",
                                       direction="download") or 0) > len(payload),  # and the listing
                       10, "download bytes counted")
    return scrape_metrics(mport)


def exposition_families(text: str) -> tuple[dict[str, str], set[str]]:
    """({family: type} from # TYPE lines, {sample names})."""
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
    samples = {m.group(1) for m in re.finditer(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", text, re.M)}
    return types, samples


def test_every_metric_in_the_dashboard_and_alerts_is_exported(gateway_factory, backend, remote_dir):
    text = scrape_after_session(gateway_factory, backend, remote_dir)
    types, samples = exposition_families(text)
    histograms = {n for n, t in types.items() if t == "histogram"}
    sources = {"dashboard": dashboard_exprs() + variable_queries(), "alerts": alert_exprs()}
    problems = []
    for source, exprs in sources.items():
        for name in sorted({n for e in exprs for n in METRIC_NAME.findall(e)}):
            fam = family(name, histograms)
            if fam not in types:
                problems.append(f"{source}: {name} (no family {fam} in /metrics)")
            elif name not in samples:
                problems.append(f"{source}: {name} (family {fam} has no such sample)")
    exported = {n for n in types if n.startswith("ftpsgate_")}
    assert not problems, "\n".join(problems) + f"\nexported families: {sorted(exported)}"
    # And the session above gave every SPEC family a child.
    assert SPEC_FAMILIES <= exported, f"not exported: {sorted(SPEC_FAMILIES - exported)}"


def test_metrics_exposition_passes_promtool_check_metrics(gateway_factory, backend, remote_dir):
    text = scrape_after_session(gateway_factory, backend, remote_dir)
    proc = harness.run([promtool(), "check", "metrics"], timeout=60, input=text.encode())
    assert proc.returncode == 0 and not _out(proc).strip(), \
        f"promtool check metrics:\n{_out(proc)}\n--- /metrics ---\n{text}"
