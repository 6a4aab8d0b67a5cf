#!/usr/bin/env python3
"""auth_latency.py — issue 14: authentication never blocks an event loop.

Shows that 200 concurrent gateway-side logins (yescrypt at libxcrypt's default cost, verified
on the auth thread pool) do not stall an established session on the same gateway: the NOOP
round trip of one logged-in FTPS session is measured on an idle gateway and again while
`loadgen rate --concurrency 200` logs in as fast as it can, and the same is done with a
gateway without `auth` (passthrough: the backend vsftpd checks the password with PAM) for
contrast (and with `auth.workers: 1`). Run as root (vsftpd needs its local account), ~3 minutes:

    python3 bench/auth_latency.py                  # uses build/ftpsgate
    FTPSGATE_BIN=/path/to/ftpsgate python3 bench/auth_latency.py

Everything binds 127.0.0.1. Processes (vsftpd, the gateways, the drivers) are started by
this script, every wait is bounded, and each one is stopped by its pid at the end. The work
directory (configs, logs, users file) is /tmp/ftpsgate-auth-bench/<timestamp>.

Writes bench/results/<UTC timestamp>-auth.md (the report) and .json (every raw number) and
prints the report's path.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))   # bench_util
sys.path.insert(0, str(REPO / "tests" / "integration"))

import harness  # noqa: E402
from harness import TEST_PASS, TEST_USER  # noqa: E402
from bench_util import (SAMPLE, RunLog, binary_facts, busy_note, commands_section, fmt, loadavg,  # noqa: E402
                        machine_section, metrics_text, proc_cpu_s, reading_section, require_root, start_run,
                        wait_ready, write_results)

WORK_ROOT = Path(os.environ.get("AUTH_BENCH_ROOT", "/tmp/ftpsgate-auth-bench"))
USER_PASSWORD = "auth-bench-pw-1414"   # every gateway user's password (each hash has its own salt)
RUN = RunLog()
log = RUN.log


def _hash(i: int) -> str:
    from auth_util import crypt_hash
    return crypt_hash(USER_PASSWORD, "$y$")   # cost 0 = libxcrypt's default


def auth_metrics(text: str) -> dict:
    """ftpsgate_auth_* samples: {"attempts": {"provider/result": n}, "duration_sum": s, "duration_count": n}."""
    out = {"attempts": {}, "duration_sum": 0.0, "duration_count": 0.0}
    for line in text.splitlines():
        m = SAMPLE.match(line)
        if not m:
            continue
        name, labels, value = m.group(1), m.group(2) or "", float(m.group(3))
        lab = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        if name == "ftpsgate_auth_attempts_total":
            key = f"{lab.get('provider', '')}/{lab.get('result', '')}"
            out["attempts"][key] = out["attempts"].get(key, 0) + value
        elif name == "ftpsgate_auth_duration_seconds_sum":
            out["duration_sum"] += value
        elif name == "ftpsgate_auth_duration_seconds_count":
            out["duration_count"] += value
    return out


def metrics_delta(before: dict, after: dict) -> dict:
    keys = set(before["attempts"]) | set(after["attempts"])
    att = {k: after["attempts"].get(k, 0) - before["attempts"].get(k, 0) for k in sorted(keys)}
    att = {k: v for k, v in att.items() if v}
    n = after["duration_count"] - before["duration_count"]
    s = after["duration_sum"] - before["duration_sum"]
    return {"attempts": att, "auth_decisions": n, "auth_seconds_sum": s, "auth_mean_s": (s / n) if n else None}


def build_loadgen(work: Path) -> str:
    out = WORK_ROOT / "loadgen"
    src = HERE / "loadgen.cpp"
    if not out.exists() or out.stat().st_mtime < src.stat().st_mtime:
        cmd = ["g++", "-O2", "-std=c++17", str(src), "-o", str(out), "-levent", "-levent_openssl", "-lssl", "-lcrypto"]
        log("building " + " ".join(cmd))
        subprocess.run(cmd, check=True, timeout=300)
    return str(out)


def latency(lg: str, port: int, user: str, password: str, count: int, warmup: int, timeout: float) -> dict:
    cmd = [lg, "latency", "--port", str(port), "--tls", "--count", str(count), "--warmup", str(warmup),
           "--command", "NOOP", "--user", user, "--password", password, "--timeout", "60"]
    RUN.command(cmd, password)
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    wall = time.time() - t0
    if p.returncode != 0:
        raise RuntimeError(f"loadgen latency failed ({p.returncode}): {p.stderr.strip()[-2000:]}")
    r = json.loads(p.stdout.strip().splitlines()[-1])
    r["wall_s"] = round(wall, 3)
    return r


class LocalProbe(threading.Thread):
    """A second session that stays before login (AUTH TLS done, no USER): the gateway answers its
    NOOPs itself (`200 NOOP ok`), so its round trip is the event loop alone, without vsftpd. One
    NOOP every PROBE_GAP s while the latency measurement runs."""

    PROBE_GAP = 0.002

    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.port, self.stop_flag, self.samples, self.error = port, threading.Event(), [], None

    def run(self) -> None:
        try:
            c = harness.Ctrl(self.port, timeout=30)
            try:
                c.greeting()
                c.auth_tls()
                while not self.stop_flag.is_set():
                    t = time.perf_counter()
                    r = c.cmd("NOOP")
                    self.samples.append(time.perf_counter() - t)
                    if r.code != 200:
                        raise RuntimeError(f"NOOP before login: {r.text}")
                    self.stop_flag.wait(self.PROBE_GAP)
            finally:
                c.close()
        except Exception as e:  # noqa: BLE001 — reported with the phase
            self.error = repr(e)

    def result(self) -> dict:
        self.stop_flag.set()
        self.join(timeout=40)
        v = sorted(self.samples)
        if not v:
            return {"count": 0, "error": self.error}

        def q(f):
            return v[int(f * (len(v) - 1))] * 1e6
        return {"count": len(v), "us_median": q(0.5), "us_p90": q(0.9), "us_p99": q(0.99), "us_max": v[-1] * 1e6,
                "error": self.error}


class Phase:
    """One gateway: idle latency, then latency while `rate` logs in at full speed."""

    def __init__(self, args, lg, gw, mport, user, password, tag):
        self.args, self.lg, self.gw, self.mport = args, lg, gw, mport
        self.user, self.password, self.tag = user, password, tag

    def idle(self) -> dict:
        log(f"[{self.tag}] idle: {self.args.count} NOOPs on one session")
        m0 = auth_metrics(metrics_text(self.mport))
        c0 = proc_cpu_s(self.gw.proc.pid)
        probe = LocalProbe(self.gw.explicit_port)
        probe.start()
        try:
            r = latency(self.lg, self.gw.explicit_port, self.user, self.password, self.args.count, self.args.warmup,
                        120)
        finally:
            local = probe.result()
        return {"latency": r, "local": local, "gateway_cpu_s": round(proc_cpu_s(self.gw.proc.pid) - c0, 3),
                "metrics": metrics_delta(m0, auth_metrics(metrics_text(self.mport))), "loadavg": loadavg()}

    def loaded(self) -> dict:
        a = self.args
        log(f"[{self.tag}] {a.concurrency} concurrent logins for {a.duration} s; NOOPs after {a.ramp} s")
        m0 = auth_metrics(metrics_text(self.mport))
        c0 = proc_cpu_s(self.gw.proc.pid)
        cmd = [self.lg, "rate", "--port", str(self.gw.explicit_port), "--tls", "--concurrency", str(a.concurrency),
               "--duration", str(a.duration), "--no-list", "--user", self.user, "--password", self.password,
               "--timeout", "60"]
        RUN.command(cmd, self.password)
        t0 = time.time()
        rate = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            time.sleep(a.ramp)
            lat_start = time.time() - t0
            probe = LocalProbe(self.gw.explicit_port)
            probe.start()
            try:
                lat = latency(self.lg, self.gw.explicit_port, self.user, self.password, a.count, a.warmup,
                              a.duration + 120)
            finally:
                local = probe.result()
            lat_end = time.time() - t0
            under_load = rate.poll() is None
            m_mid = auth_metrics(metrics_text(self.mport))
            out, err = rate.communicate(timeout=a.duration + 120)
        finally:
            if rate.poll() is None:
                rate.kill()
                rate.wait(timeout=10)
        rate_wall = time.time() - t0
        if rate.returncode != 0:
            raise RuntimeError(f"loadgen rate failed ({rate.returncode}): {err.strip()[-2000:]}")
        rr = json.loads(out.strip().splitlines()[-1])
        m1 = auth_metrics(metrics_text(self.mport))
        lat["start_s"], lat["end_s"] = round(lat_start, 2), round(lat_end, 2)
        return {"latency": lat, "local": local, "rate": rr, "rate_wall_s": round(rate_wall, 2),
                "latency_under_load": under_load,
                "gateway_cpu_s": round(proc_cpu_s(self.gw.proc.pid) - c0, 3),
                "metrics": metrics_delta(m0, m1), "metrics_until_latency_end": metrics_delta(m0, m_mid),
                "loadavg": loadavg()}


def gateway_warnings(gw) -> dict:
    """Counts of the gateway's warn/error records by (event, reason)."""
    out: dict = {}
    for r in gw.log_records():
        if r.get("level") in ("warn", "error"):
            k = f"{r.get('event')}: {r.get('error') or r.get('reason') or ''}".rstrip(": ")
            out[k] = out.get(k, 0) + 1
    return out


def make_gateway(work: Path, backend_port: int, certs, mport: int, users_file: Path | None,
                 service_pw: Path | None, workers: int) -> harness.Gateway:
    overrides = {
        "metrics": {"address": f"127.0.0.1:{mport}"},
        "logging": {"format": "json", "level": "info"},
        "limits": {"max_sessions": 5000, "max_sessions_per_ip": 5000, "login_timeout": "120s",
                   "handshake_timeout": "30s"},
        "backends": [{"name": "vsftpd", "servers": [f"127.0.0.1:{backend_port}"], "connect_timeout": "10s"}],
    }
    edit = None
    if users_file is not None:
        overrides["auth"] = {
            "workers": workers,
            # 200 logins queued behind a ~85 ms hash on 2 cores wait ~8 s: more than the 10 s
            # default would leave no margin, and a 421 would not measure the loop.
            "timeout": "60s",
            "providers": [{"name": "local", "type": "file", "path": str(users_file)}],
            "backend_logins": [{"backend_user": TEST_USER, "backend_password_file": str(service_pw)}],
        }

        def edit(c):
            for listener in c["listeners"]:
                listener["auth"] = ["local"]
    gw = harness.Gateway(work, backend_port, certs, overrides, name="gw", edit=edit)
    return gw


def ms(us):
    return fmt(us / 1000, 3)


def report(R: dict, path_md: Path) -> None:
    L = []
    A = L.append
    P = R["params"]
    c = P["concurrency"]
    A("# Authentication and event-loop latency (issue 14)")
    A("")
    A(f"Run {R['started']} UTC, `python3 bench/auth_latency.py`; everything on 127.0.0.1 on one machine "
      f"({R['machine']['nproc']} cores shared by the drivers, the gateway and vsftpd).")
    A("")
    A(f"Question: do {c} concurrent gateway-side logins stall the other sessions on the same gateway? "
      "Password checks run on the auth thread pool (`auth.workers`), never on an event loop, so an established "
      "session's round trips should not wait for them.")
    A("")
    A("Setup: a plaintext vsftpd backend; ftpsgate in front of it (explicit FTPS, class `tls_required: on`, "
      f"`workers: 0` = one event loop per core) with a users file of {P['users']} users "
      f"`u000..u{P['users'] - 1:03d}`, each a yescrypt hash at libxcrypt's default cost "
      f"(`{R['hash']['prefix']}`, {fmt(R['hash']['verify_ms'], 1)} ms per verification on this machine, "
      "crypt(3) in one thread), all mapped to one backend service account (`auth.backend_logins`), "
      f"`auth.timeout: 60s`; run once with each `auth.workers` of {P['auth_workers']}. "
      "For contrast the same gateway without `auth` (passthrough: USER/PASS go to vsftpd, which checks them "
      "with PAM against a sha512crypt shadow entry).")
    A("")
    A(f"- **idle**: one logged-in FTPS session, `loadgen latency --count {P['count']} --warmup {P['warmup']} "
      "--command NOOP` (as `u000` on the auth gateways, as the backend account on the passthrough one). "
      "After login the gateway relays NOOP to the backend, so this round trip is client → gateway loop → "
      "vsftpd's session process → gateway loop → client.")
    A(f"- **{c} logins**: `loadgen rate --concurrency {c} --duration {P['duration']} --no-list --tls` runs "
      "complete sessions back to back (connect, AUTH TLS, USER, PASS, QUIT; one user name for all, loadgen "
      f"takes one) and {P['ramp']} s after it starts the same latency measurement runs alongside (its own login "
      "waits in the same queue as the others).")
    A("- **gateway-local NOOP**: during each latency measurement a second session that never logs in "
      f"(AUTH TLS only) sends a NOOP every {LocalProbe.PROBE_GAP * 1000:.0f} ms (Python client); the gateway "
      "answers those itself, so they measure the event loop without vsftpd.")
    A("")
    A("Milliseconds; ratios are against the same gateway's idle row. Logins/s = sessions loadgen completed "
      "inside its window / window. Mean auth = `ftpsgate_auth_duration_seconds` sum/count over the phase "
      "(PASS to decision: queue wait + hashing). Gateway CPU = utime+stime of the gateway process over the "
      "phase.")
    A("")
    A("### Established session, NOOP relayed to the backend")
    A("")
    A("| phase | gateway | NOOP p50 | p90 | p99 | max | p50 / idle | p99 / idle | logins/s | login errors | "
      "mean auth s | gateway CPU s |")
    A("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for row in R["rows"]:
        lat = row["latency"]
        A(f"| {row['phase']} | {row['gateway']} | {ms(lat['us_median'])} | {ms(lat['us_p90'])} | "
          f"{ms(lat['us_p99'])} | {ms(lat['us_max'])} | {fmt(row['ratio_p50'])}× | {fmt(row['ratio_p99'])}× | "
          f"{fmt(row['rate']['sessions_per_s'], 1) if row.get('rate') else '—'} | "
          f"{row['rate']['errors'] if row.get('rate') else '—'} | "
          f"{fmt(row['metrics']['auth_mean_s'], 3)} | {fmt(row['gateway_cpu_s'], 1)} |")
    A("")
    A("### Gateway-local NOOP (a session before login, answered by the gateway's event loop)")
    A("")
    A("| phase | gateway | samples | p50 | p90 | p99 | max | p50 / idle | p99 / idle |")
    A("|---|---|---|---|---|---|---|---|---|")
    for row in R["rows"]:
        lo = row["local"]
        if not lo.get("count"):
            A(f"| {row['phase']} | {row['gateway']} | 0 ({lo.get('error')}) | | | | | | |")
            continue
        A(f"| {row['phase']} | {row['gateway']} | {lo['count']} | {ms(lo['us_median'])} | {ms(lo['us_p90'])} | "
          f"{ms(lo['us_p99'])} | {ms(lo['us_max'])} | {fmt(row.get('local_ratio_p50'))}× | "
          f"{fmt(row.get('local_ratio_p99'))}× |")
    A("")
    A("### Per phase")
    A("")
    for row in R["rows"]:
        if row.get("rate"):
            lat = row["latency"]
            A(f"- {row['phase']}, {row['gateway']}: the latency session ran from {lat['start_s']} s to "
              f"{lat['end_s']} s after the login load started "
              f"({'the load was still running when it ended' if row['latency_under_load'] else 'NOTE: the load had ended before it did'}; "
              f"loadgen rate stopped starting sessions at {P['duration']} s and exited at {row['rate_wall_s']} s, "
              f"once its sessions in flight were done); auth decisions {json.dumps(row['metrics']['attempts'])}; "
              f"whole-session latency of the login load median {fmt(row['rate']['latency_ms_median'] / 1000, 1)} s, "
              f"p99 {fmt(row['rate']['latency_ms_p99'] / 1000, 1)} s; errors {json.dumps(row['rate']['error_kinds'])}"
              f"{'; gateway warnings ' + json.dumps(row['gateway_warnings']) if row.get('gateway_warnings') else ''}; "
              f"load average after: {row['loadavg'].split()[0]}.")
    A("")
    L.extend(reading_section(R["notes"]))
    L.extend(commands_section(R["commands"]))
    L.extend(machine_section(R["machine"], after=f" {P['users']} hashes made in {R['hash']['make_s']} s."))
    A("")
    A(f"Raw numbers: `{path_md.with_suffix('.json').name}`.")
    path_md.write_text("\n".join(L) + "\n")


def notes(R: dict) -> list[str]:
    out = busy_note(R["machine"], ": absolute figures are depressed and noisy; compare rows of this run only")
    c = R["params"]["concurrency"]
    hash_ms = R["hash"]["verify_ms"]
    for row in R["rows"]:
        if not row.get("rate"):
            continue
        lo = row["local"]
        loc = (f"; gateway-local NOOP p50 {fmt(row.get('local_ratio_p50'))}×, p99 {fmt(row.get('local_ratio_p99'))}× "
               f"(max {ms(lo['us_max'])} ms)") if lo.get("count") else ""
        extra = ""
        if row["metrics"]["auth_mean_s"]:
            extra = (f", {fmt(row['rate']['sessions_per_s'], 1)} logins/s with a mean "
                     f"{fmt(row['metrics']['auth_mean_s'], 1)} s from PASS to decision (the queue)")
        else:
            extra = f", {fmt(row['rate']['sessions_per_s'], 1)} logins/s"
        out.append(f"{row['gateway']}: with {c} logins in flight{extra}, the established session's NOOP p50 is "
                   f"{fmt(row['ratio_p50'])}× and p99 {fmt(row['ratio_p99'])}× idle (max {ms(row['latency']['us_max'])} ms)"
                   f"{loc}.")
    nloops = R["machine"]["nproc"]
    for row in R["rows"]:
        if not (row.get("rate") and row["metrics"]["auth_mean_s"]):
            continue
        per_s = row["metrics"]["auth_decisions"] / row["rate_wall_s"]
        share = per_s / nloops * hash_ms / 1000
        # A NOOP arriving at a random moment finds its loop inside a hash with probability `share`
        # and then waits for the rest of it (uniform over 0..hash): P(wait > x) = share * (1 - x/hash).
        p90 = hash_ms * (1 - 0.1 / share) if share > 0.1 else 0.0
        out.append(f"{row['gateway']}: if the hashes ran on the event loops, each of the {nloops} loops would spend "
                   f"~{min(share, 1) * 100:.0f}% of its time inside {fmt(hash_ms, 0)} ms hashes ({per_s:.1f} "
                   f"decisions/s over the phase); a NOOP arriving at a random moment would wait for the rest of "
                   f"the current one, so p90 would be at least ~{p90:.0f} ms. Measured p90: "
                   f"{ms(row['latency']['us_p90'])} ms (relayed), "
                   f"{ms(row['local']['us_p90']) if row['local'].get('count') else '—'} ms (gateway-local).")
    out.append("The tails that remain are CPU contention, not a loop blocked on a hash: on this machine the "
               "hashing threads, both drivers, vsftpd's processes and the event loops share the same cores, so a "
               "loop (or the client, or vsftpd's session process) that wakes for a NOOP can wait in the run queue. "
               "The passthrough rows show the same effect with almost no gateway CPU: there vsftpd forks a "
               "process and runs PAM per login, the machine is overloaded, and vsftpd greets some connections "
               "later than the backend `connect_timeout` (10 s here; the gateway logs `greeting timeout`, "
               "marks the server down for a moment and the client gets 421 or a close). `auth.workers` "
               "below the number of cores leaves a core to the event loops and shortens the tail, at the price "
               "of fewer logins per second.")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=200)
    ap.add_argument("--duration", type=float, default=30)
    ap.add_argument("--ramp", type=float, default=3)
    ap.add_argument("--count", type=int, default=3000)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--auth-workers", type=lambda v: [int(x) for x in v.split(",")], default=[4, 1],
                    help="auth.workers of each auth gateway, comma-separated (default 4,1: the default "
                         "and one hash thread, which leaves a core to the event loops)")
    ap.add_argument("--out-dir", default=str(HERE / "results"))
    args = ap.parse_args()
    if not require_root():
        return 1
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(soft, 65536), hard), hard))

    stamp, work, R = start_run(WORK_ROOT, "auth_latency.py", vars(args).copy(), RUN)
    lg = build_loadgen(work)
    gw_bin = str(harness.GATEWAY_BIN)
    R["machine"].update(binary_facts(gw_bin, REPO))

    # ---- users: distinct yescrypt hashes (one salt each), made on every core
    t0 = time.time()
    with multiprocessing.Pool(os.cpu_count()) as pool:
        hashes = pool.map(_hash, range(args.users), chunksize=4)
    from auth_util import _libcrypt, write_secret
    v0 = time.time()
    for _ in range(5):
        assert _libcrypt.crypt(USER_PASSWORD.encode(), hashes[0].encode()).decode() == hashes[0]
    R["hash"] = {"prefix": hashes[0][:7], "make_s": round(time.time() - t0, 2),
                 "verify_ms": (time.time() - v0) / 5 * 1000}
    log(f"{args.users} yescrypt hashes in {R['hash']['make_s']} s; {R['hash']['verify_ms']:.1f} ms per verification")
    users_file = work / "users.txt"
    users_file.write_text("# written by bench/auth_latency.py\n"
                          + "".join(f"u{i:03d}:{h}\n" for i, h in enumerate(hashes)))
    users_file.chmod(0o600)
    service_pw = write_secret(work / "backend.pass", TEST_PASS)

    backend = harness.Vsftpd(work / "vsftpd", pasv_ports=50)
    certs = harness.make_certs(work / "certs")
    gw = None
    try:
        backend.start()
        log(f"vsftpd pid {backend.proc.pid} on {backend.port}")
        variants = [(f"auth-w{w}", f"auth, workers: {w}", users_file, "u000", USER_PASSWORD, w)
                    for w in args.auth_workers]
        variants.append(("passthrough", "passthrough", None, TEST_USER, TEST_PASS, 0))
        for tag, label, ufile, user, password, workers in variants:
            mport = harness.PORTS.port()
            gw = make_gateway(work / f"gw-{tag}", backend.port, certs, mport, ufile, service_pw, workers)
            gw.start()
            wait_ready(mport, gw.proc)
            log(f"[{tag}] gateway pid {gw.proc.pid} on {gw.explicit_port}, metrics {mport}")
            ph = Phase(args, lg, gw, mport, user, password, tag)
            idle = ph.idle()
            idle.update(phase="idle", gateway=label, ratio_p50=1.0, ratio_p99=1.0)
            R["rows"].append(idle)
            time.sleep(1)
            busy = ph.loaded()
            busy.update(phase=f"{args.concurrency} logins", gateway=label,
                        ratio_p50=busy["latency"]["us_median"] / idle["latency"]["us_median"],
                        ratio_p99=busy["latency"]["us_p99"] / idle["latency"]["us_p99"])
            if busy["local"].get("count") and idle["local"].get("count"):
                busy["local_ratio_p50"] = busy["local"]["us_median"] / idle["local"]["us_median"]
                busy["local_ratio_p99"] = busy["local"]["us_p99"] / idle["local"]["us_p99"]
                idle["local_ratio_p50"] = idle["local_ratio_p99"] = 1.0
            busy["gateway_warnings"] = gateway_warnings(gw)
            R["rows"].append(busy)
            log(f"[{tag}] idle p50/p99 {idle['latency']['us_median']:.0f}/{idle['latency']['us_p99']:.0f} us; "
                f"loaded {busy['latency']['us_median']:.0f}/{busy['latency']['us_p99']:.0f} us; "
                f"{busy['rate']['sessions_per_s']:.1f} logins/s, {busy['rate']['errors']} errors; "
                f"auth {busy['metrics']}")
            gw.stop()
            R.setdefault("gateway_exit", {})[tag] = gw.exit_code
            gw = None
            time.sleep(1)
    finally:
        if gw is not None:
            gw.stop()
        backend.stop()
    R["machine"]["loadavg_end"] = loadavg()
    R["notes"] = notes(R)
    write_results(R, RUN, args.out_dir, f"{stamp}-auth.md", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
