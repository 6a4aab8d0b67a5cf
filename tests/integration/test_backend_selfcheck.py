"""Self-checks of the harness itself, without the gateway: when these fail, the
environment (vsftpd, PAM, test user, curl) is broken, not ftpsgate."""

import pytest

import harness
from harness import TEST_PASS, TEST_USER, Ctrl

pytestmark = pytest.mark.backend


def test_vsftpd_backend_serves_the_test_user_in_clear(backend, remote_dir, medium_file, local_dir):
    path, digest = medium_file
    backend.put_file(f"{remote_dir}/m.bin", path)
    url = f"ftp://127.0.0.1:{backend.port}/{remote_dir}/m.bin"
    harness.run(["curl", "-sS", "--max-time", "60", "-u", f"{TEST_USER}:{TEST_PASS}",
                 "-o", str(local_dir / "m.bin"), url], timeout=90, check=True)
    assert harness.sha256_file(local_dir / "m.bin") == digest
    harness.run(["curl", "-sS", "--max-time", "60", "-u", f"{TEST_USER}:{TEST_PASS}",
                 "-T", str(path), f"ftp://127.0.0.1:{backend.port}/{remote_dir}/up.bin"],
                timeout=90, check=True)
    assert harness.sha256_file(backend.root / remote_dir / "up.bin") == digest


def test_vsftpd_protocol_log_records_commands(backend, backend_log):
    with Ctrl(backend.port) as c:
        assert c.greeting().code == 220
        c.login()
        assert c.cmd("PWD").code == 257
        c.cmd("QUIT")
    cmds = harness.wait_until(
        lambda: [x for x in backend.commands_since(backend_log) if x.startswith("USER")],
        5, "USER in the vsftpd log")
    assert cmds == [f"USER {TEST_USER}"]
