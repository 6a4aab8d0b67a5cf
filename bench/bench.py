#!/usr/bin/env python3
"""bench.py — the benchmark driver behind bench/run.sh (which installs, builds and sets
ulimit -n first; run that, not this).

Starts on loopback: vsftpd plain and vsftpd TLS (the peers' start-vsftpd.sh), ProFTPD
mod_proxy in front of the plain vsftpd (start-proftpd-proxy.sh), fakeftpd.py (a fast
asyncio backend), and ftpsgate with two listeners: one in front of the same plain vsftpd,
one in front of fakeftpd. Then measures
  1. bulk throughput with curl (download/upload, 1 and 8 streams) and server CPU per GiB,
  2. complete sessions/s at 32 concurrent clients (loadgen.py rate), CPU per session,
     handshake share of the gateway's CPU (perf, or openssl speed),
  3. idle logged-in FTPS sessions held by one gateway process, RSS per session, the
     per-session cost of ProFTPD and vsftpd, a 1 GiB transfer alongside,
  4. NOOP/PWD round-trip latency,
and writes a markdown report. Every process it starts is stopped by pid at the end.
"""
import argparse
import datetime
import json
import os
import platform
import re
import resource
import select
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)   # bench_util
from bench_util import tree, tree_cpu  # noqa: E402

BENCH_ROOT = os.environ.get("BENCH_ROOT", "/tmp/ftpsgate-bench")
PEERS_ROOT = os.environ.get("PEERS_ROOT", "/dev/shm/ftpsgate-bench-peers")
USER = os.environ.get("PEER_USER", "ftpbench")
PASS = os.environ.get("PEER_PASS", "ftpbench")
HOME = os.path.join(PEERS_ROOT, "home")

PORT_VS_PLAIN, PORT_VS_TLS, PORT_PROFTPD = 2610, 2620, 2630  # passive: PORT*10 .. +99
PORT_GW, PORT_GW_FAKE, PORT_GW_METRICS = 2640, 2641, 2642
GW_PASSIVE = "26400-26599"
PORT_FAKE = 2650

COMMANDS = []   # every measuring command, for the report
LOG = []


def log(msg):
    line = f"[{time.strftime('%H:%M:%S')}] {msg}"
    LOG.append(line)
    print(line, flush=True)


def sh(cmd, timeout=60, check=False, env=None):
    r = subprocess.run(cmd, shell=isinstance(cmd, str), capture_output=True, text=True,
                       timeout=timeout, env=env)
    if check and r.returncode != 0:
        raise RuntimeError(f"{cmd}: exit {r.returncode}: {r.stderr.strip()[-400:]}")
    return r


# ---------------------------------------------------------------- /proc accounting
def cpu_snapshot(pids):
    return {k: tree_cpu(v) for k, v in pids.items()}


def cpu_delta(before, pids):
    after = cpu_snapshot(pids)
    return {k: after[k] - before[k] for k in pids}


def mem_kib(pid):
    """(VmRSS, Pss) in KiB."""
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss


def nthreads_fds(pid):
    try:
        th = len(os.listdir(f"/proc/{pid}/task"))
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        return th, fds
    except OSError:
        return None, None


# ---------------------------------------------------------------- processes
class Procs:
    def __init__(self, peers):
        self.peers = peers
        self.started = []  # (name, Popen or pid)

    def pidfile(self, name, pid):
        with open(os.path.join(BENCH_ROOT, f"{name}.pid"), "w") as f:
            f.write(str(pid))

    def spawn(self, name, argv, **kw):
        out = open(os.path.join(BENCH_ROOT, f"{name}.out"), "w")
        p = subprocess.Popen(argv, stdout=kw.pop("stdout", out), stderr=out,
                             stdin=kw.pop("stdin", subprocess.DEVNULL), **kw)
        self.started.append((name, p))
        self.pidfile(name, p.pid)
        return p

    def stop(self, p, name=None, grace=10):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(grace)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        if name:
            try:
                os.unlink(os.path.join(BENCH_ROOT, f"{name}.pid"))
            except OSError:
                pass

    def stop_all(self):
        for name, p in reversed(self.started):
            try:
                self.stop(p, name)
            except Exception as e:  # noqa: BLE001
                log(f"stopping {name}: {e}")
        self.started.clear()
        sh(["bash", os.path.join(self.peers, "stop-all.sh")], timeout=30)


def wait_port(port, timeout=15):
    import socket
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def port_free(port):
    import socket
    s = socket.socket()
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def read_pid(name):
    with open(os.path.join(PEERS_ROOT, f"{name}.pid")) as f:
        return int(f.read().strip())


def gateway_config(path, cert, key, log, shared=False):
    with open(path, "w") as f:
        f.write(f"""# written by bench/bench.py
listeners:
  - name: vsftpd
    address: "127.0.0.1:{PORT_GW}"
    backend: vsftpd
  - name: fake
    address: "127.0.0.1:{PORT_GW_FAKE}"
    backend: fake
tls:
  certificates:
    - cert: {cert}
      key: {key}
backends:
  - name: vsftpd
    servers: ["127.0.0.1:{PORT_VS_PLAIN}"]
    health_check: {{interval: 2s, timeout: 2s}}
  - name: fake
    servers: ["127.0.0.1:{PORT_FAKE}"]
    health_check: {{interval: 2s, timeout: 2s}}
passive:
  ports: "{GW_PASSIVE.split('-')[0] if shared else GW_PASSIVE}"
  shared_port: {'true' if shared else 'false'}
limits:
  max_sessions: 30000
  max_sessions_per_ip: 30000
  idle_timeout: 900s
  login_timeout: 120s
  drain_timeout: 0s
metrics:
  address: "127.0.0.1:{PORT_GW_METRICS}"
logging:
  level: info
  file: {log}
""")


def start_gateway(procs, binary, tag, shared=False):
    """A fresh gateway process with its own config and log file (BENCH_ROOT/ftpsgate-TAG.*)."""
    conf = os.path.join(BENCH_ROOT, f"ftpsgate-{tag}.yaml")
    logf = os.path.join(BENCH_ROOT, f"ftpsgate-{tag}.log")
    if os.path.exists(logf):
        os.unlink(logf)
    gateway_config(conf, os.path.join(PEERS_ROOT, "cert.pem"), os.path.join(PEERS_ROOT, "key.pem"), logf, shared)
    chk = sh([binary, "--check", "--config", conf], timeout=30)
    if chk.returncode != 0:
        raise RuntimeError("gateway config refused: " + chk.stdout + chk.stderr)
    p = procs.spawn(f"ftpsgate-{tag}", [binary, "--config", conf])
    end = time.time() + 20
    while time.time() < end:
        if p.poll() is not None:
            raise RuntimeError(f"ftpsgate exited with {p.returncode}; see {BENCH_ROOT}/ftpsgate-{tag}.out")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{PORT_GW_METRICS}/readyz", timeout=1) as r:
                if r.status == 200:
                    return p
        except Exception:  # noqa: BLE001 — not ready yet
            pass
        time.sleep(0.2)
    raise RuntimeError("ftpsgate not ready (/readyz) within 20 s")


# ---------------------------------------------------------------- measurements
def curl_base(tls):
    base = ["curl", "-sS", "-u", f"{USER}:{PASS}"]
    if tls:
        base += ["--ssl-reqd", "-k"]
    return base


def transfer(target, op, streams, files, max_time):
    """Run `streams` curls at once; returns dict with bytes, wall, GB/s."""
    port, tls = target["port"], target["tls"]
    procs = []
    t0 = time.perf_counter()
    for i in range(streams):
        url = f"ftp://127.0.0.1:{port}/"
        if op == "download":
            argv = curl_base(tls) + ["--max-time", str(max_time), "-o", "/dev/null",
                                     "-w", "%{size_download}", url + files["down"]]
        else:
            argv = curl_base(tls) + ["--max-time", str(max_time), "-T", files["up_src"],
                                     "-w", "%{size_upload}", url + f"up-{i}.bin"]
        if i == 0:
            COMMANDS.append(" ".join(argv).replace(f"{USER}:{PASS}", "USER:PASS")
                            + (f"   (x{streams} at once)" if streams > 1 else ""))
        procs.append(subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    total, errs = 0, []
    for p in procs:
        try:
            out, err = p.communicate(timeout=max_time + 30)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
        if p.returncode != 0:
            errs.append(f"curl exit {p.returncode}: {err.strip()[:200]}")
        try:
            total += int(float(out.strip() or 0))
        except ValueError:
            pass
    wall = time.perf_counter() - t0
    if op == "upload":
        for i in range(streams):
            try:
                os.unlink(os.path.join(HOME, f"up-{i}.bin"))
            except OSError:
                pass
    return {"bytes": total, "wall_s": wall, "gbps": total / 1e9 / wall if wall else 0, "errors": errs}


def driver(python=False):
    """(argv prefix, name for the report): the C++ driver run.sh compiled, else loadgen.py."""
    b = os.environ.get("LOADGEN_BIN", "")
    if not python and b and os.access(b, os.X_OK):
        return [b], "loadgen (C++, bench/loadgen.cpp)"
    return [sys.executable, os.path.join(HERE, "loadgen.py")], "python3 bench/loadgen.py"


def loadgen(args, timeout, python=False):
    prefix, name = driver(python)
    argv = prefix + [str(a) for a in args] + ["--user", USER, "--password", PASS]
    COMMANDS.append(name.split(" (")[0] + " " + " ".join(str(a) for a in args) + " --user USER --password PASS")
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        return {"error": r.stderr.strip()[-500:]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def read_line(p, timeout):
    """One stdout line of a Popen (text mode), or None after `timeout` seconds."""
    end = time.time() + timeout
    buf = ""
    fd = p.stdout.fileno()
    while time.time() < end:
        r, _, _ = select.select([fd], [], [], min(1.0, max(0.0, end - time.time())))
        if r:
            ch = os.read(fd, 1).decode()
            if not ch:
                return buf or None
            if ch == "\n":
                return buf
            buf += ch
    return None


def hold_idle(port, n, sources, timeout, tls=True):
    """Start loadgen idle; returns (Popen, ready dict)."""
    args = ["idle", "--port", port, "--sessions", n, "--sources", sources,
            "--connect-concurrency", 64, "--hold-max", 900] + (["--tls"] if tls else [])
    prefix, name = driver()
    COMMANDS.append(name.split(" (")[0] + " " + " ".join(str(a) for a in args) + " --user USER --password PASS")
    p = subprocess.Popen(prefix + [str(a) for a in args] + ["--user", USER, "--password", PASS],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    with open(os.path.join(BENCH_ROOT, "loadgen-idle.pid"), "w") as f:
        f.write(str(p.pid))
    while True:
        line = read_line(p, timeout)
        if line is None:
            p.kill()
            raise RuntimeError(f"idle sessions to port {port}: no READY within {timeout}s")
        if line.startswith("READY "):
            return p, json.loads(line[6:])


def release_idle(p):
    try:
        p.stdin.write(b"stop\n")
        p.stdin.flush()
        out, _ = p.communicate(timeout=120)
        res = json.loads(out.decode().strip().splitlines()[-1])
    except Exception as e:  # noqa: BLE001
        p.kill()
        p.wait()
        res = {"error": str(e)}
    try:
        os.unlink(os.path.join(BENCH_ROOT, "loadgen-idle.pid"))
    except OSError:
        pass
    return res


def session_procs_mem(master):
    """Per-session processes below a forking server's master: (count, RSS KiB, PSS KiB) summed."""
    ps = [p for p in tree(master) if p != master]
    rss = pss = 0
    for p in ps:
        r, s = mem_kib(p)
        rss += r
        pss += s
    return len(ps), rss, pss


def openssl_speed(seconds):
    out = {}
    r = sh(["openssl", "speed", "-seconds", str(seconds), "ecdsap256"], timeout=60)
    m = re.search(r"256 bits ecdsa \(nistp256\)\s+\S+\s+\S+\s+([\d.]+)\s+([\d.]+)", r.stdout)
    if m:
        out["ecdsap256_sign_per_s"] = float(m.group(1))
        out["ecdsap256_verify_per_s"] = float(m.group(2))
    r = sh(["openssl", "speed", "-seconds", str(seconds), "ecdhx25519"], timeout=60)
    m = re.search(r"253 bits ecdh \(X25519\)\s+\S+\s+([\d.]+)", r.stdout)
    if m:
        out["x25519_op_per_s"] = float(m.group(1))
    r = sh(["openssl", "speed", "-seconds", str(seconds), "-evp", "aes-256-gcm", "-bytes", "16384"], timeout=60)
    m = re.search(r"(?i)aes-256-gcm\s+([\d.]+)k", r.stdout)
    if m:
        out["aes256gcm_16k_gb_per_s"] = float(m.group(1)) * 1000 / 1e9
    return out


def perf_profile(pid, seconds, path):
    """perf record the gateway for `seconds`; (share by dso, top symbols) or None."""
    if not shutil.which("perf"):
        return None
    for f in (path, path + ".old"):
        if os.path.exists(f):
            os.unlink(f)
    rec = subprocess.Popen(["perf", "record", "-F", "1999", "-p", str(pid), "-o", path, "--",
                            "sleep", str(seconds)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return rec


def perf_report(path):
    r = sh(["perf", "report", "-i", path, "--no-children", "--sort", "dso,sym", "--stdio",
            "-g", "none", "--percent-limit", "0"], timeout=120)
    if r.returncode != 0:
        return None
    rows = []
    for line in r.stdout.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+(\S+)\s+\[(.)\]\s+(.*)$", line)
        if m:
            rows.append((float(m.group(1)), m.group(2), m.group(4).strip()))
    if not rows:
        return None
    total = sum(x[0] for x in rows)
    by_dso = {}
    for pct, dso, _ in rows:
        by_dso[dso] = by_dso.get(dso, 0) + pct
    bulk_re = re.compile(r"(?i)gcm|aes|ghash|chacha|poly1305|memcpy|memmove")
    crypto = sum(p for p, d, _ in rows if d.startswith("libcrypto") or d.startswith("libssl"))
    bulk = sum(p for p, d, s in rows if (d.startswith("libcrypto") or d.startswith("libssl")) and bulk_re.search(s))
    return {"samples_pct_total": total,
            "by_dso": dict(sorted(by_dso.items(), key=lambda kv: -kv[1])[:8]),
            "crypto_pct": crypto, "record_cipher_pct": bulk,
            "handshake_pct_est": crypto - bulk,
            "top": [f"{p:.1f}% {d} {s}" for p, d, s in rows[:12]]}


# ---------------------------------------------------------------- report
def fmt(x, nd=2):
    if x is None:
        return "n/a"
    if isinstance(x, str):
        return x
    if abs(x) >= 100:
        return f"{x:.0f}"
    return f"{x:.{nd}f}"


def ratio(a, b):
    if a is None or b is None or not b:
        return None
    return a / b


def measured(results, targets):
    """(target, its result) for each of `targets` that has a result, in that order."""
    for k in targets:
        m = results.get(k)
        if m:
            yield k, m


def machine_info(gw_bin):
    info = {}
    info["nproc"] = sh("nproc").stdout.strip()
    info["lscpu"] = sh("lscpu | head -n 15").stdout.rstrip()
    info["free"] = sh("free -g").stdout.rstrip()
    info["kernel"] = platform.release()
    info["openssl"] = sh("openssl version").stdout.strip()
    info["vsftpd"] = sh("v=$(command -v vsftpd || echo $PEERS_ROOT/debx/usr/sbin/vsftpd); $v -v 0>&1").stdout.strip()
    info["proftpd"] = sh("proftpd -v 2>&1 | head -1").stdout.strip()
    info["curl"] = sh("curl --version | head -1").stdout.strip()
    info["python"] = sys.version.split()[0]
    info["ftpsgate"] = sh([gw_bin, "--version"]).stdout.strip().replace("\n", "; ")
    info["ftpsgate_bin"] = gw_bin
    info["ftpsgate_commit"] = os.environ.get("FTPSGATE_COMMIT", "unknown")
    info["loadavg_start"] = open("/proc/loadavg").read().strip()
    info["driver"] = driver()[1]
    return info


def report(R, quick, started):
    q = " (QUICK smoke run: small sizes, short runs; not the reference figures)" if quick else ""
    L = []
    A = L.append

    def table(*columns):
        """A blank line, then a markdown table's header and separator rows."""
        A("")
        A("| " + " | ".join(columns) + " |")
        A("|" + "---|" * len(columns))

    A(f"# ftpsgate benchmark results{q}")
    A("")
    A(f"Run {started} UTC, `bash bench/run.sh{' --quick' if quick else ''}`; everything on loopback on one machine "
      "(clients, servers and gateway share the same cores). Machine and versions at the end.")
    A("")
    P = R["params"]
    A(f"Targets: (a) vsftpd plaintext direct, (b) vsftpd explicit FTPS direct (require_ssl_reuse), "
      f"(c) {R['machine'].get('proftpd', '')} mod_proxy (reverse, mod_tls, TLSRequired on) → the plaintext vsftpd, "
      f"(d) ftpsgate → the same plaintext vsftpd. TLS: {R.get('tls_negotiated', 'n/a')} for every TLS target.")
    A("")
    # ---------------- summary
    A("## Summary against the targets")
    table("figure", "ftpsgate", "ProFTPD mod_proxy", "vsftpd TLS direct", "ftpsgate / ProFTPD",
          "ftpsgate / vsftpd-TLS", "target", "met")
    T = R.get("throughput", {})
    for key, label in [("download-1", "download, 1 stream"), ("download-8", "download, 8 streams"),
                       ("upload-1", "upload, 1 stream"), ("upload-8", "upload, 8 streams")]:
        g = T.get("d", {}).get(key, {}).get("gbps")
        p = T.get("c", {}).get(key, {}).get("gbps")
        v = T.get("b", {}).get(key, {}).get("gbps")
        r1, r2 = ratio(g, p), ratio(g, v)
        met = None if r1 is None or r2 is None else (r1 >= 1.3 and r2 >= 0.8)
        A(f"| throughput {label}, GB/s | {fmt(g)} | {fmt(p)} | {fmt(v)} | {fmt(r1)}× | {fmt(r2)}× | ≥1.3× ProFTPD, ≥0.8× vsftpd-TLS | {'yes' if met else ('no' if met is False else 'n/a')} |")
    S = R.get("rate", {})
    g, p, v = (S.get(k, {}).get("sessions_per_s") for k in ("d", "c", "b"))
    r1 = ratio(g, p)
    A(f"| complete sessions/s, 32 clients | {fmt(g, 1)} | {fmt(p, 1)} | {fmt(v, 1)} | {fmt(r1)}× | {fmt(ratio(g, v))}× | ≥3× ProFTPD | {'yes' if r1 and r1 >= 3 else ('no' if r1 else 'n/a')} |")
    gc = S.get("d", {}).get("cpu_ms_per_session", {}).get("ftpsgate")
    pc = S.get("c", {}).get("cpu_ms_per_session", {}).get("proftpd")
    vc = S.get("b", {}).get("cpu_ms_per_session", {}).get("vsftpd-tls")
    A(f"| server CPU ms per session (lower is better) | {fmt(gc)} | {fmt(pc)} | {fmt(vc)} | {fmt(ratio(gc, pc))}× | {fmt(ratio(gc, vc))}× | | |")
    I = R.get("idle", {})
    gk = I.get("gateway", {}).get("rss_kib_per_session")
    pk = I.get("proftpd", {}).get("rss_kib_per_session")
    vk = I.get("vsftpd-tls", {}).get("rss_kib_per_session")
    A(f"| memory per idle FTPS session, KiB RSS | {fmt(gk, 1)} | {fmt(pk, 0)} | {fmt(vk, 0)} | {fmt(ratio(gk, pk), 3)}× | {fmt(ratio(gk, vk), 3)}× | ≤64 KiB | {'yes' if gk is not None and gk <= 64 else ('no' if gk is not None else 'n/a')} |")
    Lt = R.get("latency", {})
    g, p, v = (Lt.get(k, {}).get("NOOP", {}).get("us_median") for k in ("d", "c", "b"))
    A(f"| NOOP round trip median, µs | {fmt(g, 0)} | {fmt(p, 0)} | {fmt(v, 0)} | {fmt(ratio(g, p))}× | {fmt(ratio(g, v))}× | | |")
    A("")
    # ---------------- throughput
    A("## 1. Bulk throughput (curl, PROT P; plaintext for (a))")
    A("")
    A(f"One stream moves {P['size_mib']} MiB; 8 streams move {P['size_mib'] // 8} MiB each at the same time "
      f"({P['size_mib']} MiB in all). Downloads go to /dev/null, uploads come from a file on tmpfs and land "
      "on tmpfs (the FTP home), deleted after each run. GB/s = 10⁹ bytes/s of wall time for all streams. "
      "CPU = utime+stime of the server's whole process tree (vsftpd and ProFTPD fork per session; reaped "
      "children counted through cutime/cstime), per GiB moved.")
    table("target", "transfer", "GB/s", "server CPU s/GiB", "backend vsftpd CPU s/GiB", "errors")
    for k in "abcd":
        for key in ("download-1", "download-8", "upload-1", "upload-8"):
            m = T.get(k, {}).get(key)
            if not m:
                continue
            cpu = m.get("cpu_s_per_gib", {})
            main = cpu.get(R["targets"][k]["main"])
            back = cpu.get("vsftpd (backend)") if k in "cd" else None
            A(f"| ({k}) {R['targets'][k]['name']} | {key.replace('-', ', ')} stream(s) | {fmt(m['gbps'])} | {fmt(main)} | {fmt(back)} | {'; '.join(m['errors'])[:120] or '-'} |")
    A("")
    # ---------------- rate
    A(f"## 2. Session rate ({P['rate_concurrency']} concurrent clients, {P['rate_seconds']} s each)")
    A("")
    A("A session = connect, [AUTH TLS + handshake], USER, PASS, [PBSZ 0, PROT P], PASV, data connection "
      "[TLS, resuming the control session], LIST, QUIT. Counted when it completed inside the window. "
      f"Driver: {R.get('driver', 'n/a')}, one process, one thread, all sessions concurrent. "
      "(e)/(f) use bench/fakeftpd.py, an asyncio backend that does not fork, to show the gateway's and "
      "the driver's own ceiling; (g) repeats (e) with the Python asyncio driver bench/loadgen.py as a "
      "cross-check of the driver.")
    table("target", "sessions/s", "errors", "median / p99 session ms", "server CPU ms/session",
          "backend CPU ms/session", "driver CPU ms/session")
    for k, m in measured(S, "abcdefg"):
        if "error" in m:
            A(f"| ({k}) {R['targets'][k]['name']} | failed: {m['error'][:150]} | | | | | |")
            continue
        cpu = m.get("cpu_ms_per_session", {})
        main = cpu.get(R["targets"][k]["main"])
        backs = [v for n, v in cpu.items() if n != R["targets"][k]["main"]]
        ek = "; ".join(f"{n}×{e}" for e, n in m.get("error_kinds", {}).items())[:120]
        A(f"| ({k}) {R['targets'][k]['name']} | {fmt(m['sessions_per_s'], 1)} | {m['errors']}{(' (' + ek + ')') if ek else ''} | "
          f"{fmt(m.get('latency_ms_median'), 0)} / {fmt(m.get('latency_ms_p99'), 0)} | {fmt(main)} | {fmt(backs[0] if backs else None)} | "
          f"{fmt(1000 * m['driver_cpu_s'] / m['sessions'] if m.get('sessions') else None)} |")
    A("")
    a_rate = S.get("a", {}).get("sessions_per_s")
    A(f"The backend's own plaintext ceiling in this run is (a): {fmt(a_rate, 1)} sessions/s; "
      f"(d) cannot exceed it, so compare (d) with (a) and read the gateway's cost as its CPU per session.")
    H = R.get("handshake", {})
    A("")
    A("Handshake share of the gateway's CPU in (d):")
    A("")
    if H.get("perf"):
        pf = H["perf"]
        A(f"- perf ({H.get('perf_seconds')} s, 1999 Hz, run (d) again): libcrypto+libssl {fmt(pf['crypto_pct'], 1)}% of the "
          f"gateway's samples, of which record ciphers/copies {fmt(pf['record_cipher_pct'], 1)}%; handshake ≈ "
          f"**{fmt(pf['handshake_pct_est'], 1)}%** (crypto minus record layer). By library: "
          + ", ".join(f"{d} {fmt(v, 1)}%" for d, v in pf["by_dso"].items()) + ".")
        A("- top symbols: " + "; ".join(f"`{t}`" for t in pf["top"][:8]))
    else:
        A(f"- perf: {H.get('perf_note', 'not available')}")
    if H.get("estimate_pct") is not None:
        A(f"- estimate from `openssl speed` (one core): ECDSA P-256 sign {fmt(H['speed'].get('ecdsap256_sign_per_s'), 0)}/s, "
          f"X25519 {fmt(H['speed'].get('x25519_op_per_s'), 0)} op/s; per session the gateway does one full handshake "
          f"(1 sign + 2 X25519) and one resumed psk_dhe handshake (2 X25519) ≈ {fmt(H['handshake_ms'], 3)} ms, "
          f"= **{fmt(H['estimate_pct'], 1)}%** of its {fmt(H['gw_ms_per_session'])} ms CPU per session (public-key "
          "operations only; hashing, key schedule and certificate encoding not included, so a lower bound).")
    A("")
    # ---------------- idle
    A(f"## 3. Concurrency and memory ({P['idle_sessions']} idle logged-in FTPS sessions)")
    A("")
    gi = I.get("gateway", {})
    if gi:
        A(f"One ftpsgate process (fresh, {gi.get('threads')} threads) holds the sessions; they come from "
          f"{P['idle_sources']} source addresses 127.0.0.1–{P['idle_sources']}; each did AUTH TLS, USER, PASS (230) "
          "and stays idle. The backend is bench/fakeftpd.py (asyncio, no fork): "
          f"{P['idle_sessions']} vsftpd processes behind it would measure vsftpd, not the gateway "
          "(see the per-session cost of vsftpd below).")
        table("figure", "value")
        A(f"| sessions requested / established / errors | {gi.get('requested')} / {gi.get('established')} / {gi.get('errors')} {gi.get('error_kinds') or ''} |")
        A(f"| setup time (≤64 handshakes in flight) | {fmt(gi.get('setup_s'), 1)} s |")
        A(f"| gateway RSS before / with sessions / after release | {gi.get('rss_before')} / {gi.get('rss_after')} / {gi.get('rss_released')} KiB |")
        A(f"| gateway PSS before / with sessions | {gi.get('pss_before')} / {gi.get('pss_after')} KiB |")
        A(f"| **RSS per session** ((after − before) / established) | **{fmt(gi.get('rss_kib_per_session'), 1)} KiB** (target ≤ 64) |")
        A(f"| gateway open fds with sessions | {gi.get('fds')} |")
        A(f"| sessions still answering NOOP at release (sample) / closed by the server while held | "
          f"{gi.get('alive_sample')} / {gi.get('lost_while_held', 'n/a')} {gi.get('lost_kinds') or ''} |")
        t_with = gi.get("transfer_alongside", [])
        t_before = gi.get("transfer_before", [])
        if isinstance(t_with, dict):  # runs before the repeated measurement kept one sample
            t_with = [t_with]
        def med(ms):
            v = sorted(m["gbps"] for m in ms if m.get("gbps") and not m.get("errors"))
            return v[len(v) // 2] if v else None
        errs = [e for m in t_with + t_before for e in m.get("errors", [])]
        A(f"| {P['size_mib']} MiB download through the same gateway process (→ vsftpd), median of "
          f"{len(t_with)}: without / while they are held | {fmt(med(t_before))} / {fmt(med(t_with))} GB/s "
          f"(ratio **{fmt(ratio(med(t_with), med(t_before)))}**; runs: "
          f"{', '.join(fmt(m.get('gbps')) for m in t_before)} / {', '.join(fmt(m.get('gbps')) for m in t_with)}) "
          f"{'; '.join(errs)} |")
        A("")
    A(f"Per-session cost of the forking servers ({P['fork_sessions']} idle logged-in sessions each; RSS counts shared "
      "pages in every process, PSS divides them among the sharers):")
    table("server", "sessions held", "processes per session", "RSS KiB per session", "PSS KiB per session")
    for k, label in [("proftpd", "ProFTPD mod_proxy (FTPS)"), ("proftpd-backend", "  + its vsftpd backend session"),
                     ("vsftpd-tls", "vsftpd TLS direct"), ("vsftpd-plain", "vsftpd plaintext (a backend session)")]:
        m = I.get(k)
        if m:
            held = f"{m['established']}/{m['requested']}" if "requested" in m else ""
            errs = "; ".join(f"{e} ×{c}" for e, c in (m.get("error_kinds") or {}).items())
            A(f"| {label} | {held}{(' (' + errs + ')') if errs else ''} | {fmt(m['procs_per_session'], 1)} | "
              f"{fmt(m['rss_kib_per_session'], 0)} | {fmt(m['pss_kib_per_session'], 0)} |")
    if gi:
        A(f"| ftpsgate (from the table above) | {gi.get('established')} | 0 (threads: {gi.get('threads')}) | {fmt(gi.get('rss_kib_per_session'), 1)} | "
          f"{fmt(gi.get('pss_kib_per_session'), 1)} |")
    A("")
    # ---------------- latency
    A(f"## 4. Added latency ({P['lat_count']} round trips after {P['lat_warmup']} warm-up, one established session)")
    table("target", "NOOP median µs", "NOOP p99 µs", "PWD median µs", "PWD p99 µs")
    for k, m in measured(Lt, "abcde"):
        n, w = m.get("NOOP", {}), m.get("PWD", {})
        A(f"| ({k}) {R['targets'][k]['name']} | {fmt(n.get('us_median'), 0)} | {fmt(n.get('us_p99'), 0)} | "
          f"{fmt(w.get('us_median'), 0)} | {fmt(w.get('us_p99'), 0)} |")
    d, b, a = (Lt.get(k, {}).get("PWD", {}).get("us_median") for k in ("d", "b", "a"))
    if d and a:
        A("")
        A(f"Added by the gateway over its plaintext backend (PWD, median): {fmt(d - a, 0)} µs; over vsftpd-TLS direct: "
          f"{fmt(d - b, 0) if b else 'n/a'} µs. The times include the driver's own overhead "
          f"({R.get('driver', 'n/a')}), the same for every target.")
    A("")
    # ---------------- shared passive port
    S = R.get("shared")
    if S and S.get("shared"):
        A("## 5. Shared passive port (issue 6): ftpsgate with per-transfer ports vs `passive.shared_port`")
        A("")
        A(f"Same gateway binary and backend, fresh gateway per round, the two modes alternating "
          f"({len(S['shared'])} rounds; medians). With the shared port every protected data connection's TLS "
          "handshake runs on a worker chosen round robin and the connection is handed to its session's worker.")
        table("transfer (curl, PROT P)", "per-transfer ports GB/s", "shared port GB/s", "shared / per-transfer")

        def med(runs, key):
            v = sorted(r[key] for r in runs if r.get(key))
            return v[len(v) // 2] if v else None
        for key, label in (("download-1", "download, 1 stream"), ("upload-1", "upload, 1 stream"),
                           ("download-8", "download, 8 streams"), ("upload-8", "upload, 8 streams")):
            a, b = med(S["per_transfer"], key), med(S["shared"], key)
            A(f"| {label} | {fmt(a)} | {fmt(b)} | {fmt(ratio(b, a))}× |")
        A("")
    # ---------------- machine
    M = R["machine"]
    A("## Machine and versions")
    A("")
    A("```")
    A(f"nproc: {M['nproc']}")
    A(M["lscpu"])
    A(M["free"])
    A(f"kernel: {M['kernel']}")
    A(f"OpenSSL: {M['openssl']}")
    A(f"vsftpd: {M['vsftpd']}    proftpd: {M['proftpd']}")
    A(f"curl: {M['curl']}")
    A(f"python: {M['python']}    ftpsgate: {M['ftpsgate']} ({M['ftpsgate_bin']}, commit {M['ftpsgate_commit']})")
    A(f"load driver: {M.get('driver', '')}")
    A(f"loadavg at start: {M['loadavg_start']}    at end: {M.get('loadavg_end', '')}")
    sp = R.get("handshake", {}).get("speed", {})
    if sp:
        A(f"openssl speed (1 core): ECDSA P-256 sign {fmt(sp.get('ecdsap256_sign_per_s'), 0)}/s, X25519 "
          f"{fmt(sp.get('x25519_op_per_s'), 0)} op/s, AES-256-GCM 16 KiB {fmt(sp.get('aes256gcm_16k_gb_per_s'))} GB/s")
    A("```")
    A("")
    A("## Exact commands")
    A("")
    A("```")
    A(f"bash bench/run.sh{' --quick' if quick else ''}")
    seen = set()
    for c in COMMANDS:
        if c not in seen:
            seen.add(c)
            A(c)
    A("```")
    A("")
    if R.get("notes"):
        A("## Notes from this run")
        A("")
        for n in R["notes"]:
            A(f"- {n}")
        A("")
    return "\n".join(L)


# ---------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--peers", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--size-mib", type=int)
    ap.add_argument("--rate-seconds", type=float)
    ap.add_argument("--idle-sessions", type=int)
    ap.add_argument("--only", default="tput,rate,idle,lat,shared", help="comma list of phases")
    a = ap.parse_args()
    quick = a.quick
    P = {
        "size_mib": a.size_mib or (64 if quick else 1024),
        "rate_seconds": a.rate_seconds or (5 if quick else 15),
        "rate_concurrency": 32,
        "idle_sessions": a.idle_sessions or (1000 if quick else 10000),
        "idle_sources": 16,
        "alongside_reps": 1 if quick else 5,
        "shared_reps": 1 if quick else 3,
        "fork_sessions": 20,
        "lat_count": 1000, "lat_warmup": 100,
        "perf_seconds": 5,
    }
    phases = set(a.only.split(","))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    gw_bin = os.environ.get("FTPSGATE_BIN")
    if not gw_bin or not os.access(gw_bin, os.X_OK):
        sys.exit("FTPSGATE_BIN must name the ftpsgate binary (bench/run.sh sets it)")
    os.makedirs(BENCH_ROOT, exist_ok=True)
    started = datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M:%S")
    stamp = datetime.datetime.utcnow().strftime("%Y%m%dT%H%M%SZ") + ("-quick" if quick else "")
    for port in (PORT_VS_PLAIN, PORT_VS_TLS, PORT_PROFTPD, PORT_GW, PORT_GW_FAKE, PORT_GW_METRICS, PORT_FAKE):
        if not port_free(port):
            sys.exit(f"port {port} is in use on 127.0.0.1: another benchmark running? (stop it first)")
    procs = Procs(a.peers)
    R = {"params": P, "notes": [], "throughput": {}, "rate": {}, "idle": {}, "latency": {}}
    try:
        # ------------------------------------------------------------ start everything
        env = dict(os.environ)
        # the peers append to their logs; start each run with empty ones (our own PEERS_ROOT)
        for root, _, names in os.walk(PEERS_ROOT):
            for nm in names:
                if nm.endswith(".log") and root != HOME:
                    os.unlink(os.path.join(root, nm))
        for port, mode in ((PORT_VS_PLAIN, "plain"), (PORT_VS_TLS, "tls")):
            sh(["bash", os.path.join(a.peers, "start-vsftpd.sh"), str(port), mode], timeout=120, check=True, env=env)
        sh(["bash", os.path.join(a.peers, "start-proftpd-proxy.sh"), str(PORT_PROFTPD), str(PORT_VS_PLAIN)],
           timeout=600, check=True, env=env)
        R["machine"] = machine_info(gw_bin)
        pid_vs = read_pid(f"vsftpd-{PORT_VS_PLAIN}")
        pid_vst = read_pid(f"vsftpd-{PORT_VS_TLS}")
        pid_pf = read_pid(f"proftpd-{PORT_PROFTPD}")
        log(f"peers: vsftpd plain {pid_vs}, vsftpd tls {pid_vst}, proftpd {pid_pf}")
        fake = procs.spawn("fakeftpd", [sys.executable, os.path.join(HERE, "fakeftpd.py"), "--port", str(PORT_FAKE),
                                        "--max-seconds", "5400"])
        wait_port(PORT_FAKE)
        gw = start_gateway(procs, gw_bin, "main")
        log(f"ftpsgate {gw.pid}, fakeftpd {fake.pid}")
        R["targets"] = {
            "a": {"name": "vsftpd plaintext direct", "port": PORT_VS_PLAIN, "tls": False,
                  "pids": {"vsftpd": pid_vs}, "main": "vsftpd"},
            "b": {"name": "vsftpd TLS direct", "port": PORT_VS_TLS, "tls": True,
                  "pids": {"vsftpd-tls": pid_vst}, "main": "vsftpd-tls"},
            "c": {"name": "ProFTPD mod_proxy → vsftpd", "port": PORT_PROFTPD, "tls": True,
                  "pids": {"proftpd": pid_pf, "vsftpd (backend)": pid_vs}, "main": "proftpd"},
            "d": {"name": "ftpsgate → vsftpd", "port": PORT_GW, "tls": True,
                  "pids": {"ftpsgate": gw.pid, "vsftpd (backend)": pid_vs}, "main": "ftpsgate"},
            "e": {"name": "ftpsgate → fakeftpd", "port": PORT_GW_FAKE, "tls": True,
                  "pids": {"ftpsgate": gw.pid, "fakeftpd": fake.pid}, "main": "ftpsgate"},
            "f": {"name": "fakeftpd plaintext direct", "port": PORT_FAKE, "tls": False,
                  "pids": {"fakeftpd": fake.pid}, "main": "fakeftpd"},
            "g": {"name": "ftpsgate → fakeftpd, Python driver", "port": PORT_GW_FAKE, "tls": True,
                  "pids": {"ftpsgate": gw.pid, "fakeftpd": fake.pid}, "main": "ftpsgate", "python": True},
        }
        R["driver"] = driver()[1]
        TG = R["targets"]

        # files: the FTP home is on tmpfs (PEERS_ROOT)
        size = P["size_mib"] << 20
        files = {}
        for name, n in (("big.bin", size), ("part.bin", size // 8)):
            path = os.path.join(HOME, name)
            if not os.path.exists(path) or os.path.getsize(path) != n:
                sh(f"head -c {n} /dev/urandom > {path} && chown {USER} {path}", timeout=300, check=True)
        up_big = os.path.join(PEERS_ROOT, "upload-src.bin")
        up_part = os.path.join(PEERS_ROOT, "upload-part.bin")
        shutil.copyfile(os.path.join(HOME, "big.bin"), up_big)
        shutil.copyfile(os.path.join(HOME, "part.bin"), up_part)
        os.chmod(HOME, 0o755)
        max_time = 600

        # TLS actually negotiated (same for all targets?)
        tls_seen = {}

        # ------------------------------------------------------------ 1. throughput
        if "tput" in phases:
            log("1. throughput")
            for k in "abcd":
                t = TG[k]
                R["throughput"][k] = {}
                for op in ("download", "upload"):
                    for streams in (1, 8):
                        f = {"down": "big.bin" if streams == 1 else "part.bin",
                             "up_src": up_big if streams == 1 else up_part}
                        before = cpu_snapshot(t["pids"])
                        m = transfer(t, op, streams, f, max_time)
                        time.sleep(0.5)  # let the forked session processes exit and be reaped
                        d = cpu_delta(before, t["pids"])
                        gib = m["bytes"] / (1 << 30)
                        m["cpu_s"] = d
                        m["cpu_s_per_gib"] = {n: (v / gib if gib else None) for n, v in d.items()}
                        R["throughput"][k][f"{op}-{streams}"] = m
                        log(f"  ({k}) {op} x{streams}: {m['gbps']:.3f} GB/s, cpu {d} {m['errors'] or ''}")

        # ------------------------------------------------------------ 2. session rate
        if "rate" in phases:
            log("2. session rate")
            for k in "abcdefg":
                t = TG[k]
                before = cpu_snapshot(t["pids"])
                args = ["rate", "--port", t["port"], "--concurrency", P["rate_concurrency"],
                        "--duration", P["rate_seconds"]] + (["--tls"] if t["tls"] else [])
                m = loadgen(args, timeout=P["rate_seconds"] + 120, python=t.get("python", False))
                time.sleep(1.0)
                d = cpu_delta(before, t["pids"])
                if "error" not in m:
                    m["cpu_s"] = d
                    n = m["sessions"] or None
                    m["cpu_ms_per_session"] = {x: (1000 * v / n if n else None) for x, v in d.items()}
                    if t["tls"] and m.get("tls_version"):
                        tls_seen[k] = f"{m['tls_version']} {m['cipher']}"
                R["rate"][k] = m
                log(f"  ({k}) {m.get('sessions_per_s', m.get('error'))} sessions/s, errors {m.get('errors')}, cpu {d}")
            # handshake share of the gateway's CPU
            H = {"perf_seconds": P["perf_seconds"]}
            speed = openssl_speed(1 if quick else 3)
            H["speed"] = speed
            gms = R["rate"].get("d", {}).get("cpu_ms_per_session", {}).get("ftpsgate")
            if speed.get("ecdsap256_sign_per_s") and speed.get("x25519_op_per_s") and gms:
                hs = 1000 * (1 / speed["ecdsap256_sign_per_s"] + 4 / speed["x25519_op_per_s"])
                H.update(handshake_ms=hs, gw_ms_per_session=gms, estimate_pct=100 * hs / gms)
            pdata = os.path.join(BENCH_ROOT, "perf-gateway.data")
            rec = perf_profile(gw.pid, P["perf_seconds"], pdata)
            if rec is not None:
                loadgen(["rate", "--port", PORT_GW, "--tls", "--concurrency", P["rate_concurrency"],
                         "--duration", P["perf_seconds"]], timeout=P["perf_seconds"] + 120)
                try:
                    rec.wait(30)
                except subprocess.TimeoutExpired:
                    rec.kill()
                COMMANDS.append(f"perf record -F 1999 -p <ftpsgate pid> -o perf-gateway.data -- sleep {P['perf_seconds']}"
                                " (during a repeat of (d)); perf report --no-children --sort dso,sym")
                H["perf"] = perf_report(pdata)
                if not H["perf"]:
                    H["perf_note"] = "perf record/report failed"
            else:
                H["perf_note"] = "perf is not installed"
            R["handshake"] = H
            R["tls_negotiated"] = ", ".join(sorted(set(tls_seen.values()))) or "n/a"

        # ------------------------------------------------------------ 3. idle sessions
        if "idle" in phases:
            log("3. idle sessions")
            n = P["fork_sessions"]
            for key, port, master in (("proftpd", PORT_PROFTPD, pid_pf),
                                      ("vsftpd-tls", PORT_VS_TLS, pid_vst),
                                      ("vsftpd-plain", PORT_VS_PLAIN, pid_vs)):
                try:
                    vs_before = session_procs_mem(pid_vs)
                    lp, ready = hold_idle(port, n, 1, 120, tls=key != "vsftpd-plain")
                    time.sleep(1.0)
                    cnt, rss, pss = session_procs_mem(master)
                    est = ready["established"] or 1
                    R["idle"][key] = {"established": ready["established"], "requested": n,
                                      "error_kinds": ready.get("error_kinds"), "procs_per_session": cnt / est,
                                      "rss_kib_per_session": rss / est, "pss_kib_per_session": pss / est}
                    if key == "proftpd":
                        c2, r2, p2 = session_procs_mem(pid_vs)
                        R["idle"]["proftpd-backend"] = {
                            "procs_per_session": (c2 - vs_before[0]) / est,
                            "rss_kib_per_session": (r2 - vs_before[1]) / est,
                            "pss_kib_per_session": (p2 - vs_before[2]) / est}
                    release_idle(lp)
                    log(f"  {key}: {R['idle'][key]}")
                except Exception as e:  # noqa: BLE001
                    R["notes"].append(f"idle sessions on {key}: {e}")
                    log(f"  {key}: {e}")
            # the gateway: a fresh process
            nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
            cap = (nofile - 200) // 2  # the gateway needs two descriptors per session
            if P["idle_sessions"] > cap:
                R["notes"].append(
                    f"idle sessions: {P['idle_sessions']} requested, but the open-files limit here is {nofile} "
                    f"(`ulimit -n`, hard limit, cannot be raised without CAP_SYS_RESOURCE) and the gateway needs two "
                    f"descriptors per session (client and backend), so {cap} were held")
                P["idle_sessions_requested"] = P["idle_sessions"]
                P["idle_sessions"] = cap
            procs.stop(gw, "ftpsgate-main")
            gw2 = start_gateway(procs, gw_bin, "idle")
            time.sleep(1.0)
            rss0, pss0 = mem_kib(gw2.pid)
            # Same process, same run, alternating order is not possible (the sessions take ~12 s
            # to open), so each side gets several downloads and the medians are compared.
            reps = P["alongside_reps"]
            before = [transfer({"port": PORT_GW, "tls": True}, "download", 1, {"down": "big.bin"}, max_time)
                      for _ in range(reps)]
            log(f"  download without idle sessions: {[round(m['gbps'], 3) for m in before]} GB/s")
            log(f"  gateway fresh: RSS {rss0} KiB; opening {P['idle_sessions']} sessions")
            lp, ready = hold_idle(PORT_GW_FAKE, P["idle_sessions"], P["idle_sources"], 900)
            time.sleep(2.0)
            rss1, pss1 = mem_kib(gw2.pid)
            th, fds = nthreads_fds(gw2.pid)
            gi = dict(ready)
            gi.update(rss_before=rss0, pss_before=pss0, rss_after=rss1, pss_after=pss1, threads=th, fds=fds)
            est = ready["established"] or 1
            gi["rss_kib_per_session"] = (rss1 - rss0) / est
            gi["pss_kib_per_session"] = (pss1 - pss0) / est
            log(f"  gateway with {ready['established']} sessions: RSS {rss1} KiB -> {gi['rss_kib_per_session']:.1f} KiB/session")
            with_ = [transfer({"port": PORT_GW, "tls": True}, "download", 1, {"down": "big.bin"}, max_time)
                     for _ in range(reps)]
            gi["transfer_before"] = before
            gi["transfer_alongside"] = with_
            log(f"  download alongside: {[round(m['gbps'], 3) for m in with_]} GB/s")
            fin = release_idle(lp)
            gi["alive_sample"] = fin.get("alive_sample")
            gi["lost_while_held"] = fin.get("lost_while_held")
            gi["lost_kinds"] = fin.get("lost_kinds")
            time.sleep(2.0)
            gi["rss_released"] = mem_kib(gw2.pid)[0]
            R["idle"]["gateway"] = gi
            gw = gw2
            for k in "deg":
                TG[k]["pids"]["ftpsgate"] = gw.pid

        # ------------------------------------------------------------ 4. latency
        if "lat" in phases:
            log("4. latency")
            for k in "abcde":
                t = TG[k]
                R["latency"][k] = {}
                for cmd in ("NOOP", "PWD"):
                    args = ["latency", "--port", t["port"], "--count", P["lat_count"], "--warmup", P["lat_warmup"],
                            "--command", cmd] + (["--tls"] if t["tls"] else [])
                    m = loadgen(args, timeout=300)
                    R["latency"][k][cmd] = m
                log(f"  ({k}) NOOP {R['latency'][k]['NOOP'].get('us_median')} µs, PWD {R['latency'][k]['PWD'].get('us_median')} µs")

        # ------------------------------------------------------------ 5. shared passive port
        if "shared" in phases:
            log("5. shared passive port")
            R["shared"] = {"per_transfer": [], "shared": []}
            for _ in range(P["shared_reps"]):
                # Alternating fresh gateways, so both modes see the same machine.
                for mode in ("per_transfer", "shared"):
                    procs.stop(gw)
                    gw = start_gateway(procs, gw_bin, f"shared-{mode}", shared=mode == "shared")
                    run = {}
                    for op, streams in (("download", 1), ("upload", 1), ("download", 8), ("upload", 8)):
                        f = {"down": "big.bin" if streams == 1 else "part.bin",
                             "up_src": up_big if streams == 1 else up_part}
                        m = transfer({"port": PORT_GW, "tls": True}, op, streams, f, max_time)
                        run[f"{op}-{streams}"] = None if m["errors"] else m["gbps"]
                        if m["errors"]:
                            R["notes"].append(f"shared-port phase, {mode} {op}-{streams}: {m['errors'][:2]}")
                    R["shared"][mode].append(run)
                    log(f"  {mode}: {run}")
    except Exception as e:  # noqa: BLE001
        R["notes"].append(f"run aborted: {type(e).__name__}: {e}")
        log(f"ABORTED: {e}")
    finally:
        proxy_log = os.path.join(PEERS_ROOT, f"proftpd-{PORT_PROFTPD}", "proxy.log")
        try:
            text = open(proxy_log, errors="replace").read()
            locked = text.count("database is locked")
            gave_up = text.count("ProxyRetryCount") 
            if locked or gave_up:
                R["notes"].append(
                    f"ProFTPD mod_proxy logged 'database is locked' {locked} times and gave up on a session "
                    f"('ProxyRetryCount ... reached') {gave_up} times ({proxy_log}): the peer's "
                    "ProxyReverseConnectPolicy RoundRobin keeps its state in SQLite (ProxyTables), which "
                    "concurrent session processes contend for; a session it gives up on is closed (its client sees "
                    "an error, counted in the tables above where a driver saw it)")
        except OSError:
            pass
        procs.stop_all()
        # the test files live on tmpfs (memory): remove them
        for f in (os.path.join(PEERS_ROOT, "upload-src.bin"), os.path.join(PEERS_ROOT, "upload-part.bin"),
                  os.path.join(HOME, "big.bin"), os.path.join(HOME, "part.bin")):
            try:
                os.unlink(f)
            except OSError:
                pass
    R.setdefault("machine", {}).update(loadavg_end=open("/proc/loadavg").read().strip())
    try:
        l1 = max(float(R["machine"]["loadavg_start"].split()[0]), float(R["machine"]["loadavg_end"].split()[0]))
        if l1 > 0.5 * os.cpu_count():
            R["notes"].insert(0, f"the machine was busy with other work (load average {l1:.1f} on "
                                 f"{os.cpu_count()} cores at start or end): figures are depressed and noisy; "
                                 "only ratios between targets measured in this same run mean anything")
    except (KeyError, ValueError, IndexError):
        pass
    R["log"] = LOG
    for k in ("nproc", "lscpu", "free", "kernel", "openssl", "vsftpd", "proftpd", "curl", "python",
              "ftpsgate", "ftpsgate_bin", "ftpsgate_commit", "loadavg_start"):
        R["machine"].setdefault(k, "")
    R.setdefault("targets", {})
    md = report(R, quick, started)
    rdir = os.path.join(a.out, "results")
    os.makedirs(rdir, exist_ok=True)
    with open(os.path.join(rdir, f"{stamp}.md"), "w") as f:
        f.write(md + "\n")
    with open(os.path.join(rdir, f"{stamp}.json"), "w") as f:
        json.dump(R, f, indent=1, default=str)
    summary = os.path.join(a.out, "RESULTS.md")
    prev_quick = (not os.path.exists(summary)) or "QUICK smoke run" in open(summary).read(400)
    if not quick or prev_quick:
        with open(summary, "w") as f:
            f.write(md + "\n")
        log(f"wrote {summary}")
    log(f"wrote {os.path.join(rdir, stamp + '.md')}")
    print()
    print(md)
    return 1 if any(n.startswith("run aborted") for n in R["notes"]) else 0


if __name__ == "__main__":
    sys.exit(main())
