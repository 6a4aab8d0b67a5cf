"""Fixtures: a real vsftpd backend, test certificates, big random files and a factory
that starts ftpsgate processes with per-test configuration.

Run:  /usr/bin/python3 -m pytest -q tests/integration
Env:  FTPSGATE_BIN (default build/ftpsgate), FTPSGATE_SOURCE_DIR (repo root),
      FTPSGATE_KEEP_TMP=1 keeps the temporary directory for inspection.
"""
from __future__ import annotations

import os
import shutil
import signal
import tempfile
from pathlib import Path

import pytest

import harness
from harness import Gateway, Vsftpd

DEFAULT_TIME_LIMIT = 120  # seconds per test body; override with @pytest.mark.time_limit(N)
SETUP_TIME_LIMIT = 60


@pytest.fixture(autouse=True)
def _ports_of_one_test():
    # Function scope runs after every session/module fixture has taken its ports, so only
    # the test's own ports (its gateways, fake servers) are given back afterwards.
    harness.PORTS.begin_test()
    yield
    harness.PORTS.end_test()


def pytest_configure(config):
    config.addinivalue_line("markers", "time_limit(seconds): wall-clock limit of the test body")


class TestTimeLimit(Exception):
    pass


def _alarm(seconds: float, what: str):
    def handler(signum, frame):
        raise TestTimeLimit(f"{what} exceeded its time limit of {seconds}s")
    signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)


def _cancel_alarm():
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, signal.SIG_DFL)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    _alarm(SETUP_TIME_LIMIT, f"setup of {item.nodeid}")
    try:
        yield
    finally:
        _cancel_alarm()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    marker = item.get_closest_marker("time_limit")
    limit = marker.args[0] if marker else DEFAULT_TIME_LIMIT
    _alarm(limit, item.nodeid)
    try:
        yield
    finally:
        _cancel_alarm()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and call.when in ("setup", "call"):
        for gw in getattr(item, "_ftpsgate_gateways", []):
            rep.sections.append((f"gateway {gw.name}", gw.tail(60)))
        backend = getattr(item, "_ftpsgate_backend", None)
        mark = getattr(item, "_ftpsgate_backend_mark", None)
        if backend is not None and mark is not None:
            rep.sections.append(("backend (vsftpd) log since test start",
                                 backend.log_since(mark)[-5000:]))


# --------------------------------------------------------------------------- session fixtures

@pytest.fixture(scope="session")
def workdir():
    d = Path(tempfile.mkdtemp(prefix="ftpsgate-it-"))
    d.chmod(0o755)  # the backend's unprivileged user must traverse it
    yield d
    if not os.environ.get("FTPSGATE_KEEP_TMP"):
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def certs(workdir):
    return harness.make_certs(workdir / "certs")


@pytest.fixture(scope="session")
def backend(workdir):
    b = Vsftpd(workdir / "vsftpd", pasv_ports=200)  # test_scale_out runs 50 sessions at once
    try:
        b.start()
        yield b
    finally:
        b.stop()


@pytest.fixture(scope="session")
def big_file(workdir):
    """A 64 MiB random file and its sha256."""
    path = workdir / "big-64MiB.bin"
    with open(path, "wb") as f:
        for _ in range(64):
            f.write(os.urandom(1 << 20))
    return path, harness.sha256_file(path)


@pytest.fixture(scope="session")
def medium_file(workdir):
    """A 4 MiB random file and its sha256 (for quicker transfers)."""
    path = workdir / "medium-4MiB.bin"
    path.write_bytes(os.urandom(4 << 20))
    return path, harness.sha256_file(path)


# --------------------------------------------------------------------------- per-test fixtures

@pytest.fixture
def backend_log(request, backend):
    """Marks the backend's protocol log at test start (for 'the backend saw nothing')."""
    mark = backend.log_mark()
    request.node._ftpsgate_backend = backend
    request.node._ftpsgate_backend_mark = mark
    return mark


def _slug(request, prefix: str, limit: int = 60) -> str:
    """A file-system-safe, unique name for this test (parametrized ids included)."""
    import hashlib
    name = "".join(c if c.isalnum() else "-" for c in request.node.name)[:limit]
    return f"{prefix}{name}-{hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:8]}"


@pytest.fixture
def remote_dir(request, backend, backend_log):
    """A fresh directory on the backend, owned by the test user. Returns its name."""
    name = _slug(request, "t-")
    path = backend.root / name
    if path.exists():
        shutil.rmtree(path)
    backend.mkdir(name)
    return name


@pytest.fixture
def local_dir(workdir, request):
    path = workdir / _slug(request, "l-")
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


@pytest.fixture
def gateway_factory(request, workdir, backend, certs, backend_log):
    """start(overrides: dict = None, name=..., edit=fn(config)) -> a running Gateway.

    overrides are deep-merged into the base config (lists replaced); edit may then
    change the config dict in place. All gateways are stopped at teardown."""
    started: list[Gateway] = []
    request.node._ftpsgate_gateways = started

    def start(overrides: dict | None = None, name: str | None = None,
              edit=None) -> Gateway:
        label = name or f"gw{len(started)}"
        d = workdir / "gateways" / f"{_slug(request, '')}-{label}"
        if d.exists():
            shutil.rmtree(d)
        gw = Gateway(d, backend.port, certs, overrides, name=label, edit=edit)
        started.append(gw)
        gw.start()
        return gw

    yield start
    for gw in started:
        gw.stop()
    reports = [(gw.name, gw.sanitizer_report()) for gw in started]
    reports = [(name, r) for name, r in reports if r]
    if reports:
        pytest.fail("sanitizer report(s) on the gateway's stderr:\n"
                    + "\n".join(f"--- {name} ---\n{r}" for name, r in reports), pytrace=False)


@pytest.fixture
def gateway(gateway_factory):
    """The default gateway: tls_required on, session_reuse_required default (true)."""
    return gateway_factory()
