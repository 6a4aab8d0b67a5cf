"""SIGHUP reload: new sessions get the new certificate, running sessions go on, a broken
config is refused and the old one kept; config_reloads_total counts both."""
from __future__ import annotations

import re
import signal
import subprocess

import pytest

import harness
from clients import metric, metrics_up, scrape_metrics
from harness import Ctrl

pytestmark = pytest.mark.reload


def _served_cn(port: int) -> str:
    proc = subprocess.run(["openssl", "s_client", "-starttls", "ftp", "-connect", f"127.0.0.1:{port}"],
                          input=b"QUIT\r\n", capture_output=True, timeout=30)
    m = re.search(r"subject=.*?CN ?= ?([^\s,/]+)", proc.stdout.decode("utf-8", "replace"))
    assert m, proc.stdout
    return m.group(1)


def test_sighup_swaps_the_certificate_and_keeps_sessions(gateway_factory, tmp_path):
    new_cert, new_key = tmp_path / "new.pem", tmp_path / "new.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-days", "30", "-subj", "/CN=reloaded-cert", "-keyout", str(new_key), "-out", str(new_cert)],
                   check=True, capture_output=True, timeout=30)
    mport = harness.PORTS.port()
    gw = gateway_factory({"metrics": {"address": f"127.0.0.1:{mport}"}})
    harness.wait_until(lambda: metrics_up(mport), 10, "metrics endpoint")
    assert _served_cn(gw.explicit_port) == "ftpsgate-test"
    with Ctrl(gw.explicit_port) as running:
        running.greeting()
        running.auth_tls()
        assert running.login().code == 230

        gw.config["tls"]["certificates"] = [{"cert": str(new_cert), "key": str(new_key)}]
        gw.write_config()
        gw.proc.send_signal(signal.SIGHUP)
        harness.wait_until(lambda: [r for r in gw.events("reload") if r.get("result") == "success"], 10,
                           "a successful reload")
        assert _served_cn(gw.explicit_port) == "reloaded-cert"
        assert running.cmd("PWD").code == 257  # the session from before the reload goes on

        gw.config_path.write_text("listeners: [\n")  # broken YAML
        gw.proc.send_signal(signal.SIGHUP)
        harness.wait_until(lambda: [r for r in gw.events("reload") if r.get("result") == "failure"], 10,
                           "a refused reload")
        assert _served_cn(gw.explicit_port) == "reloaded-cert"  # the last good config stays
        assert running.cmd("NOOP").code == 200
    text = scrape_metrics(mport)
    assert metric(text, "ftpsgate_config_reloads_total", result="success") == 1, text
    assert metric(text, "ftpsgate_config_reloads_total", result="failure") == 1, text
