"""Command, path and upload rules (issue 15) against a real vsftpd with real clients: a
read_only class (lftp mirror down works, mirror up fails cleanly), a drop box, DELE per user
on one listener and one shared backend account, a table of path escapes that never reach
the backend, max_upload_size at limit and limit+1 (552, partial deleted), a working
directory that follows the backend's PWD through a symlink, and monitor mode."""
from __future__ import annotations

import ftplib
import hashlib
import io
import os

import pytest

import harness
from auth_util import auth_overrides, crypt_hash, use_chain, write_secret
from clients import ReusingFTP_TLS, check_curl, connect, curl, metric, scrape_metrics
from harness import PORTS, Ctrl, TEST_PASS, TEST_USER
from test_transfers import lftp

pytestmark = pytest.mark.control


def _rules_gateway(gateway_factory, rules: list[dict], extra: dict | None = None, edit=None):
    mport = PORTS.port()
    overrides = {"rules": rules, "metrics": {"address": f"127.0.0.1:{mport}"}, **(extra or {})}
    gw = gateway_factory(overrides, edit=edit)
    gw.metrics_port = mport
    return gw


def _login(gw, user=TEST_USER, password=TEST_PASS) -> ReusingFTP_TLS:
    return connect(gw, cls=ReusingFTP_TLS, timeout=20, user=user, password=password)


def _ctrl_in(gw, directory) -> Ctrl:
    """A raw control connection, logged in with PROT P, in `directory`."""
    c = Ctrl(gw.explicit_port)
    c.greeting()
    c.auth_tls()
    c.expect(f"USER {TEST_USER}", 331)
    c.expect(f"PASS {TEST_PASS}", 230)
    c.expect("PBSZ 0", 200)
    c.expect("PROT P", 200)
    c.expect(f"CWD {directory}", 250)
    return c


def _snapshot(root) -> dict[str, tuple[str, int]]:
    """Every file and directory under root: content digest (files) and mtime."""
    out = {}
    for p in sorted(root.rglob("*")):
        st = os.lstat(p)
        digest = harness.sha256_file(p) if p.is_file() and not p.is_symlink() else "dir-or-link"
        out[str(p.relative_to(root))] = (digest, st.st_mtime_ns)
    return out


def _denials(gw, **fields) -> list[dict]:
    return [r for r in gw.events("policy_denial") if all(r.get(k) == v for k, v in fields.items())]


def test_read_only_class_mirror_down_works_and_mirror_up_fails_cleanly(gateway_factory, backend, remote_dir,
                                                                       local_dir, backend_log):
    tree = local_dir / "tree"
    digests = harness.make_tree(tree, 30, 64 * 1024)
    for rel in digests:
        backend.put_file(f"{remote_dir}/tree/{rel}", tree / rel)
    gw = _rules_gateway(gateway_factory, [{"name": "partners-ro", "classes": ["default"],
                                           "verbs": {"preset": "read_only"}}])
    dst = local_dir / "dst"
    lftp(gw, f"mirror --verbose=1 {remote_dir}/tree {dst}\n", local_dir / "lftp-down.log")
    assert harness.tree_digests(dst) == digests, "mirrored tree differs"

    before = _snapshot(backend.root / remote_dir)
    up = local_dir / "up"
    harness.make_tree(up, 5, 10_000, seed=99)
    full = ("set cmd:fail-exit true\nset ftp:ssl-force true\nset ssl:verify-certificate no\n"
            "set net:max-retries 1\nset net:timeout 15\n"
            f"open -u {TEST_USER},{TEST_PASS} ftp://127.0.0.1:{gw.explicit_port}\n"
            f"mirror -R --verbose=1 {up} {remote_dir}/uploaded\n")
    proc = harness.run(["lftp", "-c", full], timeout=120)
    assert proc.returncode != 0, "mirror up must fail in a read_only class"
    assert b"550" in proc.stderr + proc.stdout, harness._tail_bytes(proc.stderr, 2000)
    assert _snapshot(backend.root / remote_dir) == before, "the backend's tree changed"
    sent = backend.commands_since(backend_log)
    assert not [c for c in sent if c.split(" ")[0] in ("STOR", "MKD", "XMKD", "APPE", "DELE")], sent
    denied = _denials(gw, reason="rule_denied", rule="partners-ro")
    assert denied and all(r["reply"] == 550 for r in denied), gw.tail()
    text = scrape_metrics(gw.metrics_port)
    assert (metric(text, "ftpsgate_command_denials_total", rule="partners-ro", verb="MKD", mode="enforce") or 0) \
        + (metric(text, "ftpsgate_command_denials_total", rule="partners-ro", verb="STOR", mode="enforce") or 0) >= 1


def test_drop_box_uploads_but_cannot_list_or_download(gateway_factory, backend, remote_dir, local_dir, certs,
                                                      backend_log):
    gw = _rules_gateway(gateway_factory, [{"name": "dropbox", "classes": ["default"],
                                           "verbs": {"preset": "upload_only"}}])
    payload = os.urandom(200_000)
    src = local_dir / "report.csv"
    src.write_bytes(payload)
    url = f"ftp://127.0.0.1:{gw.explicit_port}/{remote_dir}/"
    check_curl(curl(certs, "--ssl-reqd", "-T", str(src), url + "report.csv"), gw, "upload")
    assert (backend.root / remote_dir / "report.csv").read_bytes() == payload
    got = local_dir / "back.csv"
    proc = curl(certs, "--ssl-reqd", "-o", str(got), url + "report.csv")
    assert proc.returncode != 0 and not (got.exists() and got.stat().st_size > 0)
    assert curl(certs, "--ssl-reqd", url).returncode != 0, "listing must fail"
    ftp = _login(gw)
    try:
        for verb in ("RETR", "NLST", "MLSD", "LIST"):
            with pytest.raises(ftplib.error_perm, match="^550"):
                ftp.retrbinary(f"{verb} {remote_dir}/report.csv", lambda b: None)
        with pytest.raises(ftplib.error_perm, match="^550"):
            ftp.sendcmd(f"SIZE {remote_dir}/report.csv")
    finally:
        ftp.close()
    sent = backend.commands_since(backend_log)
    assert not [c for c in sent if c.split(" ")[0] in ("RETR", "LIST", "NLST", "MLSD", "SIZE")], sent


def test_dele_denied_for_one_user_and_allowed_for_another_on_one_shared_account(gateway_factory, backend, remote_dir,
                                                                              local_dir):
    service = write_secret(local_dir / "backend.pass", TEST_PASS)
    users = local_dir / "users.txt"
    users.write_text("".join(
        f"{name}:{crypt_hash(pw, '$2b$', 5)}:{groups}:backend_user={TEST_USER};backend_password_file={service}\n"
        for name, pw, groups in (("alice", "alice-pw-1", "partners"), ("bob", "bob-pw-2", "ops"))))
    rules = [{"name": "no-dele", "classes": ["default"], "verbs": {"deny": ["DELE", "RMD"]}},
             {"name": "ops-clean-up", "groups": ["ops"], "verbs": {"allow": ["DELE"]}}]
    gw = _rules_gateway(gateway_factory, rules, extra=auth_overrides(users),
                        edit=lambda c: use_chain(c, ["local"]))
    for name in ("a.txt", "b.txt"):
        backend.put(f"{remote_dir}/{name}", b"keep me")
    alice = _login(gw, "alice", "alice-pw-1")
    try:
        with pytest.raises(ftplib.error_perm, match="^550"):
            alice.delete(f"{remote_dir}/a.txt")
        assert (backend.root / remote_dir / "a.txt").exists()
        assert harness.sha256_bytes(download_via(alice, f"{remote_dir}/a.txt")) == harness.sha256_bytes(b"keep me")
    finally:
        alice.close()
    bob = _login(gw, "bob", "bob-pw-2")
    try:
        assert bob.delete(f"{remote_dir}/b.txt").startswith("250")
        # bob's group allows DELE; RMD stays denied by the class rule.
        with pytest.raises(ftplib.error_perm, match="^550"):
            bob.rmd(remote_dir)
    finally:
        bob.close()
    assert not (backend.root / remote_dir / "b.txt").exists()
    assert (backend.root / remote_dir).is_dir()
    denied = _denials(gw, reason="rule_denied", rule="no-dele")
    assert {(r["user"], r["command"]) for r in denied} == {("alice", "DELE"), ("bob", "RMD")}, denied


def download_via(ftp, path: str) -> bytes:
    buf = io.BytesIO()
    ftp.retrbinary(f"RETR {path}", buf.write)
    return buf.getvalue()


# Each line: a command a client confined to <dir>/pub may try. {pub} is the allowed tree's
# absolute path on the backend, {root} the backend's root (vsftpd local_root, not chrooted).
ESCAPES = [
    "RETR ../secret/passwd.txt", "RETR ../../etc/passwd", "RETR {root}/secret/passwd.txt",
    "RETR {pub}/../secret/passwd.txt", "RETR {pub}/./../secret/passwd.txt", "RETR ..//secret//passwd.txt",
    "RETR ./../secret/passwd.txt", "RETR {pub}/in/../../secret/passwd.txt",
    "RETR %2e%2e/secret/passwd.txt", "RETR ..%2fsecret%2fpasswd.txt", "RETR %2E%2E%2Fsecret%2Fpasswd.txt",
    "RETR ..\\secret\\passwd.txt", "RETR {pub}\\..\\secret\\passwd.txt", "RETR ~/secret/passwd.txt",
    "RETR ~" + TEST_USER + "/secret/passwd.txt", "RETR {pub}/*/../../secret/passwd.txt", "RETR ../secre?/passwd.txt",
    "RETR ../secret/passw*.txt", "CWD {pub}/../secret", "CWD ..", "CDUP", "XCWD ../secret", "CWD /",
    "STOR ../secret/planted.txt", "STOR {root}/planted.txt", "APPE ../secret/passwd.txt",
    "STOU ../secret/x", "DELE ../secret/passwd.txt", "MKD ../secret/newdir", "XMKD {root}/newdir",
    "RMD ../secret", "RNFR ../secret/passwd.txt", "SIZE ../secret/passwd.txt", "MDTM ../secret/passwd.txt",
    "MDTM 20200101000000 passwd.txt", "SITE CHMOD 777 ../secret/passwd.txt", "SITE SYMLINK x y",
    "LIST ../secret", "LIST -la {root}/secret", "NLST ..", "MLSD ../secret", "MLST ../secret/passwd.txt",
    "STAT ../secret", "MFMT 20200101000000 ../secret/passwd.txt", "RNTO ../secret/renamed.txt",
]


def test_path_escapes_never_reach_the_backend(gateway_factory, backend, remote_dir, local_dir, backend_log):
    root = backend.root
    pub = root / remote_dir / "pub"
    backend.put(f"{remote_dir}/pub/in/a.txt", b"inside")
    backend.put(f"{remote_dir}/secret/passwd.txt", b"top secret")
    rules = [{"name": "confined", "classes": ["default"],
              "paths": {"allow": [f"{pub}/**"], "deny": [f"{pub}/private/**"]},
              "uploads": {"deny_names": ["*.exe"]}}]
    gw = _rules_gateway(gateway_factory, rules)
    before = _snapshot(root / remote_dir)
    assert len(ESCAPES) >= 30
    mark = backend.log_mark()
    with _ctrl_in(gw, pub) as c:
        for line in ESCAPES:
            line = line.format(pub=pub, root=root)
            r = c.cmd(line)
            assert r.code == 550, (line, r.text)
        # The working directory is still the allowed tree, and inside it things work.
        assert c.cmd("PWD").text.split('"')[1] == str(pub)
        assert c.cmd("SIZE in/a.txt").code == 213
        assert c.cmd("CWD in").code == 250
        assert c.cmd("MDTM a.txt").code == 213
        assert c.cmd("STOR evil.exe").code == 550  # a denied upload name, before any data connection
    sent = [cmd for cmd in backend.commands_since(mark) if not cmd.startswith(("FEAT", "QUIT", "USER", "PASS"))]
    assert sent == ["PWD", f"CWD {pub}", "PWD", "PWD", "SIZE in/a.txt", "CWD in", "PWD", "MDTM a.txt"], sent
    assert not [s for s in sent if "secret" in s or ".." in s or "%2" in s.lower() or "\\" in s], sent
    assert _snapshot(root / remote_dir) == before, "files outside (or inside) the tree changed"
    assert not (root / "planted.txt").exists() and not (root / "newdir").exists()
    reasons = {r["reason"] for r in gw.events("policy_denial")}
    assert reasons >= {"rule_denied", "path_unresolvable"}, reasons
    text = scrape_metrics(gw.metrics_port)
    assert metric(text, "ftpsgate_command_denials_total", rule="confined", verb="RETR", mode="enforce") >= 5
    assert metric(text, "ftpsgate_command_denials_total", rule="gateway", verb="other", mode="enforce") >= 1
    # With data connections too (ftplib, passive, TLS): a real download inside, refusals outside.
    ftp = _login(gw)
    try:
        ftp.cwd(str(pub))
        assert download_via(ftp, "in/a.txt") == b"inside"
        with pytest.raises(ftplib.error_perm, match="^550"):
            download_via(ftp, "../secret/passwd.txt")
        with pytest.raises(ftplib.error_perm, match="^550"):
            ftp.storbinary("STOR ../secret/planted.txt", io.BytesIO(b"x" * 1000))
    finally:
        ftp.close()
    assert (root / remote_dir / "secret" / "passwd.txt").read_bytes() == b"top secret"
    assert not (root / remote_dir / "secret" / "planted.txt").exists()


def test_working_directory_follows_the_backend_through_a_symlink(gateway_factory, backend, remote_dir):
    root = backend.root
    pub = root / remote_dir / "pub"
    backend.put(f"{remote_dir}/pub/ok.txt", b"ok")
    backend.put(f"{remote_dir}/secret/passwd.txt", b"top secret")
    (pub / "shortcut").symlink_to(root / remote_dir / "secret")
    gw = _rules_gateway(gateway_factory, [{"name": "confined", "classes": ["default"],
                                           "paths": {"allow": [f"{pub}/**"]}}])
    with _ctrl_in(gw, pub) as c:
        # vsftpd follows the link; its PWD then names the real directory, outside the tree,
        # and relative paths are judged there.
        assert c.cmd("CWD shortcut").code == 250
        assert c.cmd("SIZE passwd.txt").code == 550
        assert c.cmd("CWD ..").code == 550
        assert c.cmd(f"CWD {pub}").code == 250
        assert c.cmd("SIZE ok.txt").code == 213
    assert _denials(gw, reason="rule_denied", rule="confined", command="SIZE")


@pytest.mark.parametrize("size_delta", [0, 1], ids=["exactly-the-limit", "limit-plus-one"])
def test_max_upload_size(gateway_factory, backend, remote_dir, local_dir, certs, size_delta):
    limit = 300_000
    gw = _rules_gateway(gateway_factory, [{"name": "small-files", "classes": ["default"],
                                           "uploads": {"max_size": str(limit), "delete_partial": True}}])
    payload = os.urandom(limit + size_delta)
    src = local_dir / "up.bin"
    src.write_bytes(payload)
    url = f"ftp://127.0.0.1:{gw.explicit_port}/{remote_dir}/up.bin"
    proc = curl(certs, "--ssl-reqd", "-T", str(src), url)
    target = backend.root / remote_dir / "up.bin"
    if size_delta == 0:
        check_curl(proc, gw, "upload at the limit")
        assert hashlib.sha256(target.read_bytes()).hexdigest() == hashlib.sha256(payload).hexdigest()
        return
    assert proc.returncode != 0
    assert b"552" in proc.stderr, harness._tail_bytes(proc.stderr, 2000)
    assert not target.exists(), "the partial upload must be deleted"
    denied = _denials(gw, reason="upload_too_large", rule="small-files")
    assert denied and denied[0]["reply"] == 552, gw.tail()
    assert [r for r in gw.events("partial_deleted") if r["result"] == "ok"], gw.tail()
    records = [r for r in gw.events("transfer") if r["command"] == "STOR"]
    assert records and records[-1]["result"] == "refused" and records[-1]["bytes"] <= limit, records
    # ALLO announces the size: refused before a byte moves; within the limit it is relayed.
    ftp = _login(gw)
    try:
        with pytest.raises(ftplib.error_perm, match="^552"):
            ftp.sendcmd(f"ALLO {limit + 1}")
        assert ftp.sendcmd(f"ALLO {limit}")[:1] == "2"
        # The session goes on after a refused upload: an upload within the limit passes.
        ftp.storbinary(f"STOR {remote_dir}/ok.bin", io.BytesIO(payload[:limit]))
    finally:
        ftp.close()
    assert (backend.root / remote_dir / "ok.bin").read_bytes() == payload[:limit]


def test_monitor_mode_denies_nothing_and_logs_every_would_be_denial(gateway_factory, backend, remote_dir,
                                                                    local_dir):
    pub = backend.root / remote_dir / "pub"
    backend.put(f"{remote_dir}/pub/a.txt", b"a" * 1000)
    backend.put(f"{remote_dir}/other/b.txt", b"b" * 1000)
    rules = [{"name": "ro-watch", "classes": ["default"], "verbs": {"preset": "read_only"}, "enforce": False},
             {"name": "tree-watch", "classes": ["default"], "paths": {"allow": [f"{pub}/**"]}, "enforce": False},
             {"name": "size-watch", "classes": ["default"], "uploads": {"max_size": "10KiB"}, "enforce": False}]
    gw = _rules_gateway(gateway_factory, rules)
    ftp = _login(gw)
    try:
        ftp.cwd(str(pub))
        ftp.storbinary("STOR big.bin", io.BytesIO(b"x" * 50_000))     # ro-watch and size-watch
        assert ftp.delete("a.txt").startswith("250")                    # ro-watch
        assert download_via(ftp, "../other/b.txt") == b"b" * 1000       # tree-watch
    finally:
        ftp.close()
    assert (pub / "big.bin").stat().st_size == 50_000
    assert not (pub / "a.txt").exists()
    watched = [r for r in gw.events("policy_denial") if r.get("reason") == "rule_monitor"]
    assert all(r["enforced"] is False for r in watched)
    seen = {(r["rule"], r["command"]) for r in watched}
    assert seen == {("ro-watch", "STOR"), ("ro-watch", "DELE"), ("tree-watch", "RETR"), ("size-watch", "STOR")}, watched
    assert not [r for r in gw.events("policy_denial") if r.get("reason") == "rule_denied"]
    text = scrape_metrics(gw.metrics_port)
    for rule, verb in seen:
        assert metric(text, "ftpsgate_command_denials_total", rule=rule, verb=verb, mode="monitor") == 1, (rule, verb)
    assert metric(text, "ftpsgate_command_denials_total", mode="enforce") is None


def test_appe_and_rest_cannot_grow_a_file_past_max_size(gateway_factory, backend, remote_dir):
    """Uploading in allowed chunks (APPE after APPE, REST then STOR) counts what the file
    already holds: the file never grows past max_size."""
    limit = 300_000
    gw = _rules_gateway(gateway_factory, [{"name": "small-files", "classes": ["default"],
                                           "uploads": {"max_size": str(limit)}}])
    target = backend.root / remote_dir / "grow.bin"
    ftp = _login(gw)
    try:
        ftp.cwd(remote_dir)
        ftp.storbinary("STOR grow.bin", io.BytesIO(os.urandom(200_000)))
        ftp.storbinary("APPE grow.bin", io.BytesIO(os.urandom(100_000)))  # exactly the limit
        assert target.stat().st_size == limit
        with pytest.raises(ftplib.error_perm, match="^552"):
            ftp.storbinary("APPE grow.bin", io.BytesIO(b"x"))
        ftp.storbinary("STOR resumed.bin", io.BytesIO(b"y" * 100))
        with pytest.raises(ftplib.error_perm, match="^552"):
            # REST 250000: the file keeps 250,000 bytes, so only 50,000 more may come.
            ftp.storbinary("STOR resumed.bin", io.BytesIO(os.urandom(60_000)), rest=250_000)
        # A download's REST is not an upload's: it does not count against the next STOR.
        ftp.sendcmd("TYPE I")
        ftp.retrbinary("RETR grow.bin", lambda b: None, rest=10)
        ftp.storbinary("STOR fresh.bin", io.BytesIO(os.urandom(limit)))
    finally:
        ftp.close()
    assert target.stat().st_size == limit
    assert (backend.root / remote_dir / "resumed.bin").stat().st_size <= limit
    assert (backend.root / remote_dir / "fresh.bin").stat().st_size == limit
    messages = [r["message"] for r in _denials(gw, reason="upload_too_large", rule="small-files")]
    assert any("already in the file" in m for m in messages), messages
