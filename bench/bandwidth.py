#!/usr/bin/env python3
"""bandwidth.py — issue 15: bandwidth limits per session, user and class are met.

Against a real vsftpd backend and a real client (curl, explicit FTPS with `--ssl-reqd -k`,
PROT P, PASV via `--disable-epsv`), with ftpsgate in between (harness `Gateway`, class
`tls_required: on`), in one run:

1. session limit (`bandwidth.session: {download: R, upload: R}`, R = 10MB/s by default):
   one session downloads a random file of 60 MB, then uploads one; achieved MB/s from the
   gateway's `transfer` record (`bytes` / `seconds`) and from curl (size / (time_total −
   time_pretransfer)), ratio to the limit; the gateway's CPU (utime+stime of its process from
   /proc/PID/stat) and context switches (all its threads) over the limited download;
2. unlimited: the same download through a gateway without `bandwidth` (limited / unlimited);
3. user limit (`bandwidth.user: {download: R}`, no session limit): gateway-side users `alice`
   and `bob` from a users file, both mapped to the one backend account; two concurrent
   sessions of alice, 30 MB each (their sum should be ≈ R), then alice and bob concurrently
   (each ≈ R: other users are not slowed);
4. class limit (`bandwidth.class: {download: C}`, C = 15MB/s by default): alice and bob
   concurrently, 30 MB each (their sum should be ≈ C).

Every download is sha256-checked against the file on the backend, every upload's copy on the
backend against the source. Run as root (vsftpd's local account), ~1-2 minutes:

    python3 bench/bandwidth.py                  # uses build/ftpsgate
    FTPSGATE_BIN=/path/to/ftpsgate python3 bench/bandwidth.py

Everything binds 127.0.0.1; processes are started here, every wait is bounded, and each is
stopped by its pid. Work files (configs, gateway logs, the users file) stay in
/dev/shm/ftpsgate-bw-bench/<timestamp> (payloads are deleted at the end). Writes
bench/results/<UTC timestamp>-bandwidth.md (the report) and .json (every raw number).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))   # bench_util
sys.path.insert(0, str(REPO / "tests" / "integration"))

import harness  # noqa: E402
from harness import TEST_PASS, TEST_USER  # noqa: E402
from bench_util import (MB, Curl, RunLog, binary_facts, binary_id, busy_note, commands_section, fmt,  # noqa: E402
                        gw_row, loadavg, machine_section, metrics_delta, problems_section, proc_cpu_s,
                        reading_section, report_head, require_root, scrape, start_run, transfer_records,
                        unique_commands, wait_ready, write_random_file, write_results)

WORK_ROOT = Path(os.environ.get("BW_BENCH_ROOT", "/dev/shm/ftpsgate-bw-bench"))
PASSWORDS = {"alice": "bw-alice-pw-1515", "bob": "bw-bob-pw-2626"}
KIB = 1024
RUN = RunLog()
log = RUN.log


def ctx_switches(pid: int) -> int:
    """Voluntary + involuntary context switches summed over the process's live threads."""
    total = 0
    for st in Path(f"/proc/{pid}/task").glob("*/status"):
        try:
            for line in st.read_text().splitlines():
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def proc_io(pid: int) -> dict:
    """/proc/PID/io of the whole process: syscr/syscw = read/write system calls (all threads)."""
    out = {}
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        k, v = line.split(":")
        out[k] = int(v)
    return out


def burst_of(rate: int) -> int:
    return max(rate // 10, 16 * KIB)


def expected_ratio(nbytes: int, rate: int) -> float:
    """measured/limit if the bucket starts full (one burst free) and then moves exactly `rate`."""
    b = burst_of(rate)
    return nbytes / (nbytes - b) if nbytes > b else float("inf")


# --------------------------------------------------------------------------- one bench

WANTED = ("ftpsgate_bandwidth_throttled_seconds_total", "ftpsgate_class_transfer_bytes_total")


class Bench:
    def __init__(self, args, work: Path, backend, certs, service_pw: Path, users_file: Path):
        self.args, self.work, self.backend, self.certs = args, work, backend, certs
        self.service_pw, self.users_file = service_pw, users_file
        self.rate = int(args.rate_mb * MB)
        self.class_rate = int(args.class_rate_mb * MB)
        self.dl_dir = work / "dl"
        self.dl_dir.mkdir(exist_ok=True)
        self.digests: dict[str, str] = {}
        self.rows: list[dict] = []
        self.max_time = max(60.0, 3 * args.size_mb * MB / self.rate + 30)

    # -- files
    def make_file(self, name: str, nbytes: int) -> None:
        path = self.work / "src" / name
        self.digests[name] = write_random_file(path, nbytes)
        self.backend.put_file(name, path)

    # -- gateways
    def gateway(self, tag: str, bandwidth: dict | None, auth: bool):
        mport = harness.PORTS.port()
        cls = harness.klass("default", "on")
        if bandwidth:
            cls["bandwidth"] = bandwidth
        overrides = {
            "metrics": {"address": f"127.0.0.1:{mport}"},
            "logging": {"format": "json", "level": "info"},
            "classes": [cls],
            "limits": {"data_connect_timeout": "20s"},
        }
        edit = None
        if auth:
            overrides["auth"] = {"providers": [{"name": "local", "type": "file", "path": str(self.users_file)}]}

            def edit(c):
                for listener in c["listeners"]:
                    listener["auth"] = ["local"]
        gw = harness.Gateway(self.work / f"gw-{tag}", self.backend.port, self.certs, overrides, name=tag, edit=edit)
        gw.binary = binary_id(str(harness.GATEWAY_BIN))
        gw.start()
        wait_ready(mport, gw.proc)
        gw.metrics_port = mport
        log(f"[{tag}] gateway pid {gw.proc.pid} on {gw.explicit_port}, metrics {mport}, bandwidth {bandwidth}")
        return gw

    # -- one measurement: a set of concurrent transfers
    def run(self, gw, scenario: str, jobs: list[tuple[str, str, bool]], limit: int | None, limit_scope: str,
            rep: int) -> dict:
        """jobs: (user, remote name, upload?) started together."""
        mark = len(gw.log_records())
        m0 = scrape(gw.metrics_port, WANTED)
        pid = gw.proc.pid
        c0, x0, io0, t0 = proc_cpu_s(pid), ctx_switches(pid), proc_io(pid), time.time()
        curls = []
        for i, (user, name, upload) in enumerate(jobs):
            password = TEST_PASS if user == TEST_USER else PASSWORDS[user]
            if upload:
                remote = f"up-{scenario}-{rep}-{i}.bin"
                curls.append(Curl(RUN, gw, user, password, remote, self.work / "src" / name, True, self.max_time))
            else:
                local = self.dl_dir / f"{scenario}-{rep}-{i}-{name}"
                curls.append(Curl(RUN, gw, user, password, name, local, False, self.max_time))
        results = [c.finish() for c in curls]
        wall = time.time() - t0
        cpu = proc_cpu_s(pid) - c0
        ctx = ctx_switches(pid) - x0
        io1 = proc_io(pid)
        syscr, syscw = io1["syscr"] - io0["syscr"], io1["syscw"] - io0["syscw"]
        # The gateway writes the transfer record before it relays the final 226.
        harness.wait_until(lambda: len(transfer_records(gw, mark)) >= len(jobs), 10, "transfer records",
                           context=gw.tail)
        m1 = scrape(gw.metrics_port, WANTED)
        recs = transfer_records(gw, mark)
        sessions = []
        for (user, name, upload), c, cl in zip(jobs, results, curls):
            remote = c["remote"]
            match = [r for r in recs if r.get("path") == remote and (r.get("user") in (None, user))]
            if not match:
                raise RuntimeError(f"no transfer record for {remote} ({user}): {recs}")
            g = gw_row(match[0])
            recs.remove(match[0])
            if upload:
                got = harness.sha256_file(self.backend.root / remote)
                (self.backend.root / remote).unlink()
            else:
                got = harness.sha256_file(cl.local)
                cl.local.unlink()
            ok = got == self.digests[name]
            if not ok:
                raise RuntimeError(f"sha256 mismatch for {remote} ({user}, {'upload' if upload else 'download'})")
            if g["result"] != "ok":
                raise RuntimeError(f"transfer record not ok: {g['record']}")
            sessions.append({"user": user, "direction": "upload" if upload else "download", "file": name,
                             "sha256_ok": ok, "client": c, "gateway": g})
        total = sum(s["gateway"]["bytes"] for s in sessions)
        c_span = max(s["client"]["end"] for s in sessions) - min(s["client"]["start"] for s in sessions)
        g_ends = [s["gateway"]["end"] for s in sessions]
        g_span = (max(g_ends) - min(s["gateway"]["start"] for s in sessions)) if None not in g_ends else None
        if len(sessions) == 1:
            g_span = sessions[0]["gateway"]["seconds"]
            c_span = sessions[0]["client"]["transfer_s"]
        row = {"scenario": scenario, "rep": rep, "limit_Bps": limit, "limit_scope": limit_scope,
               "sessions": sessions, "total_bytes": total,
               "sum_MBps_gateway": total / g_span / MB if g_span else None,
               "sum_MBps_client": total / c_span / MB if c_span else None,
               "wall_s": round(wall, 3), "gateway_cpu_s": round(cpu, 3),
               "gateway_cpu_pct": round(cpu / wall * 100, 2), "gateway_ctx_switches": ctx,
               "gateway_ctx_per_s": round(ctx / wall, 1), "gateway_syscr": syscr, "gateway_syscw": syscw,
               "gateway_reads_per_s": round(syscr / wall, 1), "bytes_per_read": round(total / syscr) if syscr else None,
               "gateway_binary": gw.binary, "metrics": metrics_delta(m0, m1), "loadavg": loadavg()}
        per = ", ".join(f"{s['user']} {s['gateway']['MBps']:.2f} (client {s['client']['MBps']:.2f})" for s in sessions)
        log(f"[{scenario} #{rep}] {per} MB/s; sum {row['sum_MBps_gateway']:.2f} MB/s; "
            f"gateway CPU {row['gateway_cpu_pct']:.1f}% over {wall:.1f} s; metrics {row['metrics']}")
        self.rows.append(row)
        return row


# --------------------------------------------------------------------------- report

def summarize(R: dict) -> None:
    """Adds ratios and verdicts: R['summary'] rows and R['problems']."""
    rate = R["params"]["rate_Bps"]
    crate = R["params"]["class_rate_Bps"]
    rows = R["rows"]
    def mean_rate(scenario):
        v = [r["sessions"][0]["gateway"]["MBps"] for r in rows if r["scenario"] == scenario]
        return sum(v) / len(v) if v else None
    unl_rate, unl_up_rate = mean_rate("unlimited-download"), mean_rate("unlimited-upload")
    problems, summary = [], []
    for r in rows:
        sc = r["scenario"]
        s0 = r["sessions"]
        item = {"scenario": sc, "rep": r["rep"], "limit_MBps": (r["limit_Bps"] / MB) if r["limit_Bps"] else None,
                "gateway_cpu_pct": r["gateway_cpu_pct"], "ctx_per_s": r["gateway_ctx_per_s"],
                "reads_per_s": r["gateway_reads_per_s"], "bytes_per_read": r["bytes_per_read"],
                "sessions": [{"user": s["user"], "dir": s["direction"], "MB": s["gateway"]["bytes"] / MB,
                              "gw_MBps": s["gateway"]["MBps"], "client_MBps": s["client"]["MBps"],
                              "throttled_s": s["gateway"]["throttled_seconds"]} for s in s0],
                "sum_MBps": r["sum_MBps_gateway"], "sum_MBps_client": r["sum_MBps_client"]}
        checks = []   # (label, measured MB/s, limit B/s, bytes the limit covers)
        if sc in ("session-download", "session-upload"):
            checks.append(("session", s0[0]["gateway"]["MBps"], rate, s0[0]["gateway"]["bytes"]))
            base = unl_rate if sc == "session-download" else unl_up_rate
            if base:
                item["limited_over_unlimited"] = s0[0]["gateway"]["MBps"] / base
        elif sc == "user-same-user":
            checks.append(("sum of one user's sessions", r["sum_MBps_gateway"], rate, r["total_bytes"]))
        elif sc == "user-two-users":
            for s in s0:
                checks.append((f"user {s['user']}", s["gateway"]["MBps"], rate, s["gateway"]["bytes"]))
        elif sc == "class-two-users":
            checks.append(("sum of the class", r["sum_MBps_gateway"], crate, r["total_bytes"]))
        item["checks"] = []
        for label, measured, limit, nbytes in checks:
            ratio = measured / (limit / MB)
            exp = expected_ratio(nbytes, limit)
            verdict = "ok"
            if abs(ratio - 1) > 0.10:
                verdict = "FAIL"
                problems.append(f"{sc} #{r['rep']}: {label} {measured:.2f} MB/s = {ratio:.3f}× the "
                                f"{limit / MB:g} MB/s limit (outside ±10%)")
            elif abs(ratio / exp - 1) > 0.05:
                verdict = "note"
            item["checks"].append({"what": label, "MBps": measured, "limit_MBps": limit / MB, "ratio": ratio,
                                   "expected_ratio_with_burst": exp, "verdict": verdict})
        summary.append(item)
    R["unlimited_MBps_mean"] = unl_rate
    R["unlimited_upload_MBps_mean"] = unl_up_rate
    R["summary"], R["problems"] = summary, problems


def report(R: dict, path_md: Path) -> None:
    L: list[str] = []
    A = L.append
    P = R["params"]
    rate_mb, crate_mb = P["rate_Bps"] / MB, P["class_rate_Bps"] / MB
    L.extend(report_head(R, "Bandwidth limits per session, user and class (issue 15)",
                         "curl, the gateway and vsftpd"))
    if R["problems"]:
        L.extend(problems_section("LIMIT NOT MET", R["problems"]))
        A("Gateway `transfer` records of those runs:")
        A("")
        A("```")
        for line in R.get("problem_records", []):
            A(line)
        A("```")
        A("")
    else:
        A(f"**Every limit was met within ±10%** (all measured/limit ratios are listed below; the burst of "
          f"max(rate/10, 16 KiB) lets a transfer that starts with a full bucket exceed rate×time by up to 0.1 s "
          f"worth of bytes, the \"expected\" column).")
        A("")
    A("Setup: a plaintext vsftpd backend (harness `Vsftpd`, account `ftpsgate-t`, home on tmpfs); in front of "
      "it one ftpsgate at a time (harness `Gateway`: explicit FTPS listener, class `default` with "
      "`tls_required: on`, JSON log at level info, metrics on a loopback port). Client: "
      f"{R['machine']['curl']} — `curl -sS --ssl-reqd -k --disable-epsv` (AUTH TLS, PROT P, PASV, TLS data "
      "connection resuming the control session), one curl process per session, concurrent sessions started "
      "together. Files are random bytes made by the script on the backend; every downloaded copy and every "
      "uploaded copy on the backend matched the source's sha256.")
    A("")
    A(f"Gateways: **session** — `bandwidth: {{session: {{download: {P['rate']}, upload: {P['rate']}}}}}`; "
      "**unlimited** — no `bandwidth`; "
      f"**user** — `bandwidth: {{user: {{download: {P['rate']}}}}}` and no session limit, with gateway-side users "
      "`alice` and `bob` (users file, `$6$` hashes, both `backend_user=ftpsgate-t;backend_password_file=…`, so "
      "the bandwidth key is the gateway user); "
      f"**class** — `bandwidth: {{class: {{download: {P['class_rate']}}}}}`, same users.")
    A("")
    A("MB = 10⁶ bytes. **gateway MB/s** = `bytes` / `seconds` of the gateway's `transfer` record (from the "
      "RETR/STOR command to the end of the transfer); **client MB/s** = curl's size / (`time_total` − "
      "`time_pretransfer`). For concurrent sessions the **sum** = all bytes / (last end − first start), "
      "from the gateway records' timestamps. **expected** = bytes / (bytes − burst): the ratio a transfer "
      "gets when the bucket starts full and then moves exactly the rate. Gateway CPU = utime+stime of the "
      "gateway process (all threads) over the wall time of the measurement; ctx/s = its threads' voluntary + "
      "involuntary context switches per second; read syscalls/s = `syscr` of /proc/PID/io (the whole "
      "process: reads of both the backend and the client connection, TLS and clear) per second, and the "
      "bytes relayed per read syscall.")
    A("")
    A("| scenario | run | limit | session(s): gateway MB/s (client MB/s), throttled s | sum MB/s | measured / limit "
      "| expected | limited / unlimited | gateway CPU | ctx/s | read syscalls/s (bytes per read) | verdict |")
    A("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for it in R["summary"]:
        sess = "; ".join(f"{s['user']} {s['dir']} {s['MB']:.0f} MB: {fmt(s['gw_MBps'])} ({fmt(s['client_MBps'])}), "
                         f"{fmt(s['throttled_s'])}" for s in it["sessions"])
        ratios = "; ".join(f"{c['what']}: {c['ratio']:.3f}×" for c in it["checks"]) or "—"
        exp = "; ".join(f"{c['expected_ratio_with_burst']:.3f}×" for c in it["checks"]) or "—"
        verdict = ", ".join(c["verdict"] for c in it["checks"]) or "baseline"
        lim = f"{it['limit_MBps']:g} MB/s" if it["limit_MBps"] else "none"
        lu = f"{it['limited_over_unlimited']:.4f}" if it.get("limited_over_unlimited") else "—"
        summ = fmt(it["sum_MBps"]) if len(it["sessions"]) > 1 else "—"
        A(f"| {it['scenario']} | {it['rep']} | {lim} | {sess} | {summ} | {ratios} | {exp} | {lu} | "
          f"{it['gateway_cpu_pct']:.1f}% | {it['ctx_per_s']:.0f} | {it['reads_per_s']:.0f} "
          f"({it['bytes_per_read'] if it['bytes_per_read'] is not None else '—'}) | {verdict} |")
    A("")
    L.extend(reading_section(R["notes"]))
    A("## Metrics deltas per run")
    A("")
    for r in R["rows"]:
        A(f"- {r['scenario']} #{r['rep']}: `{json.dumps(r['metrics'])}`")
    A("")
    A("## Key numbers (JSON)")
    A("")
    A("```json")
    A(json.dumps({"summary": R["summary"], "unlimited_MBps_mean": R["unlimited_MBps_mean"],
                  "unlimited_upload_MBps_mean": R["unlimited_upload_MBps_mean"],
                  "problems": R["problems"]}, indent=1, default=lambda x: round(x, 4) if isinstance(x, float) else str(x)))
    A("```")
    A("")
    L.extend(commands_section(unique_commands(R["commands"])))
    L.extend(machine_section(R["machine"], binary=f"binary mtime {R['machine']['ftpsgate_mtime']}, "))
    A("")
    A(f"Raw numbers (every curl `-w %{{json}}` subset, every gateway `transfer` record, metrics, the run log): "
      f"`{path_md.with_suffix('.json').name}`.")
    path_md.write_text("\n".join(L) + "\n")


def notes(R: dict) -> list[str]:
    out = busy_note(R["machine"], "; limited rates should not depend on it much, the unlimited baseline and CPU "
                                  "shares do.")
    S = R["summary"]
    lim = [c["ratio"] for it in S for c in it["checks"]]
    if lim:
        out.append(f"measured/limit over all {len(lim)} checks: {min(lim):.3f}× … {max(lim):.3f}×.")
    for sc, key, what in (("session-download", "unlimited_MBps_mean", "download"),
                          ("session-upload", "unlimited_upload_MBps_mean", "upload")):
        lu = [it["limited_over_unlimited"] for it in S if it["scenario"] == sc and it.get("limited_over_unlimited")]
        if R.get(key) and lu:
            out.append(f"Without `bandwidth` the same 1-session {what} ran at {R[key]:.1f} MB/s (mean of the "
                       f"unlimited runs; it varies with what else the machine does), {1 / max(lu):.0f}× the "
                       "limited one: the limit, not the machine, sets the limited rate.")
    cpu = [it["gateway_cpu_pct"] for it in S if it["scenario"] == "session-download"]
    ctx = [it["ctx_per_s"] for it in S if it["scenario"] == "session-download"]
    ucpu = [r for r in R["rows"] if r["scenario"] == "unlimited-download"]
    if cpu:
        per_gb = ""
        if ucpu:
            cpg = sum(u["gateway_cpu_s"] for u in ucpu) / (sum(u["total_bytes"] for u in ucpu) / 1e9)
            per_gb = (f"; unlimited, the gateway spent {cpg:.2f} CPU-s per GB (incl. the session's handshakes), "
                      f"i.e. {cpg * R['params']['rate_Bps'] / 1e9 * 100:.1f}% "
                      f"of a core at {R['params']['rate_Bps'] / MB:g} MB/s if throttling cost nothing")
        out.append(f"Gateway CPU during the limited {R['params']['size_mb']} MB download: "
                   f"{', '.join(f'{c:.1f}%' for c in cpu)} of one core ({', '.join(f'{x:.0f}' for x in ctx)} context "
                   f"switches/s){per_gb}. A busy-waiting relay would show ~100% of a core.")
    for r in R["rows"]:
        if r["scenario"] not in ("user-same-user", "class-two-users"):
            continue
        g = [s["gateway"] for s in r["sessions"]]
        if None in [x["start"] for x in g]:
            continue
        first, last = sorted(g, key=lambda x: x["end"])
        who = "two sessions of alice" if r["scenario"] == "user-same-user" else "alice and bob"
        out.append(f"{r['scenario']} #{r['rep']} ({who}), together {r['sum_MBps_gateway']:.2f} MB/s: one session "
                   f"finished its {first['bytes'] / MB:.0f} MB in {first['seconds']:.2f} s ({first['MBps']:.2f} MB/s), "
                   f"the other took {last['seconds']:.2f} s ({last['MBps']:.2f} MB/s), finishing "
                   f"{last['end'] - first['end']:.2f} s later. " + (
                       "The sum is held, but the split between sessions that share a bucket was not equal (no "
                       "fairness between them: the relay that wakes when tokens are there takes them); the one left "
                       "alone then gets the whole rate." if last["end"] - first["end"] > 0.1 * last["seconds"] else
                       "The sum is held and the two got about equal shares."))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate-mb", type=float, default=10, help="session/user limit in MB/s (default 10)")
    ap.add_argument("--class-rate-mb", type=float, default=15, help="class limit in MB/s (default 15)")
    ap.add_argument("--size-mb", type=int, default=60, help="single-session file size, MB (default 60)")
    ap.add_argument("--shared-size-mb", type=int, default=30, help="per-session size when concurrent (default 30)")
    ap.add_argument("--repeat", type=int, default=2, help="runs of each scenario (default 2)")
    ap.add_argument("--out-dir", default=str(HERE / "results"))
    args = ap.parse_args()
    if not require_root():
        return 1

    def rate_text(mb: float) -> str:
        return f"{mb:g}MB/s"
    params = vars(args).copy()
    params.update(rate=rate_text(args.rate_mb), class_rate=rate_text(args.class_rate_mb),
                  rate_Bps=int(args.rate_mb * MB), class_rate_Bps=int(args.class_rate_mb * MB))
    stamp, work, R = start_run(WORK_ROOT, "bandwidth.py", params, RUN)
    gw_bin = str(harness.GATEWAY_BIN)
    R["machine"].update(binary_facts(gw_bin, REPO))

    from auth_util import crypt_hash, write_secret
    service_pw = write_secret(work / "backend.pass", TEST_PASS)
    users_file = work / "users.txt"
    users_file.write_text("# written by bench/bandwidth.py\n" + "".join(
        f"{u}:{crypt_hash(pw, '$6$')}::backend_user={TEST_USER};backend_password_file={service_pw}\n"
        for u, pw in PASSWORDS.items()))
    users_file.chmod(0o600)

    backend = harness.Vsftpd(work / "vsftpd", pasv_ports=50)
    certs = harness.make_certs(work / "certs")
    gw = None
    rate = int(args.rate_mb * MB)
    crate = int(args.class_rate_mb * MB)
    try:
        backend.start()
        log(f"vsftpd pid {backend.proc.pid} on {backend.port}")
        b = Bench(args, work, backend, certs, service_pw, users_file)
        big, a_file, b_file = "big.bin", "shared-a.bin", "shared-b.bin"
        b.make_file(big, args.size_mb * MB)
        b.make_file(a_file, args.shared_size_mb * MB)
        b.make_file(b_file, args.shared_size_mb * MB)
        log(f"payloads made: {big} {args.size_mb} MB, {a_file} and {b_file} {args.shared_size_mb} MB")
        u = TEST_USER
        plan = [
            ("session", {"session": {"download": params["rate"], "upload": params["rate"]}}, False, [
                ("session-download", [(u, big, False)], rate, "session"),
                ("session-upload", [(u, big, True)], rate, "session")]),
            ("unlimited", None, False, [
                ("unlimited-download", [(u, big, False)], None, "none"),
                ("unlimited-upload", [(u, big, True)], None, "none")]),
            ("user", {"user": {"download": params["rate"]}}, True, [
                ("user-same-user", [("alice", a_file, False), ("alice", b_file, False)], rate, "user"),
                ("user-two-users", [("alice", a_file, False), ("bob", b_file, False)], rate, "user")]),
            ("class", {"class": {"download": params["class_rate"]}}, True, [
                ("class-two-users", [("alice", a_file, False), ("bob", b_file, False)], crate, "class")]),
        ]
        for tag, bw, auth, scenarios in plan:
            gw = b.gateway(tag, bw, auth)
            for rep in range(1, args.repeat + 1):
                for scenario, jobs, limit, scope in scenarios:
                    b.run(gw, scenario, jobs, limit, scope, rep)
                    time.sleep(0.5)
            warn = [r for r in gw.log_records() if r.get("level") in ("warn", "error")]
            R.setdefault("gateway_warnings", {})[tag] = warn[:20]
            gw.stop()
            R.setdefault("gateway_exit", {})[tag] = gw.exit_code
            R.setdefault("gateway_logs", {})[tag] = str(gw.log_path)
            gw = None
        R["rows"] = b.rows
    finally:
        if gw is not None:
            gw.stop()
        backend.stop()
        for d in (work / "src", work / "dl", backend.root):
            shutil.rmtree(d, ignore_errors=True)
    R["machine"]["loadavg_end"] = loadavg()
    ids = {tuple(r["gateway_binary"]) for r in R["rows"]} | {binary_id(gw_bin)}
    R["binary_changed"] = len(ids) > 1
    summarize(R)
    if R["binary_changed"]:
        R["problems"].insert(0, f"{gw_bin} changed during the run (rebuilt): rows come from different binaries, "
                                "rerun")
    if R["problems"]:
        bad = {(it["scenario"], it["rep"]) for it in R["summary"] if any(c["verdict"] == "FAIL" for c in it["checks"])}
        R["problem_records"] = [json.dumps(s["gateway"]["record"]) for r in R["rows"] if (r["scenario"], r["rep"]) in bad
                                for s in r["sessions"]]
    R["notes"] = notes(R)
    write_results(R, RUN, args.out_dir, f"{stamp}-bandwidth.md", report)
    for p in R["problems"]:
        print("LIMIT NOT MET: " + p, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
