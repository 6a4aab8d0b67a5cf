#!/usr/bin/env python3
"""Inside-out agent benchmark (issue 17, docs/agent-design.md §6 "Benchmark", §7 step 9).

One plaintext vsftpd on loopback; one gateway with two explicit-FTPS listeners in front of it:
backend **direct** (127.0.0.1:vsftpd) and backend **via-agent** (agent:bench/127.0.0.1:vsftpd),
plus one `ftpsgate agent` (pool idle --agent-idle, targets = vsftpd's port and passive range).
In each of --repeat rounds every case runs in both modes back to back (direct first on odd
rounds, via-agent first on even), so each round gives one paired ratio per case.

Per round and mode:
1. bulk: download and upload of one --size-mib file (curl, --ssl-reqd: PROT P, PASV), MB/s;
   and --streams concurrent curls of --size-mib/--streams each (MB/s = all bytes / wall time);
2. rate: --sessions short sessions (ftplib TLS: AUTH TLS, USER, PASS, PBSZ, PROT P, LIST, QUIT),
   --concurrency at once (Python threads), sessions/s;
3. CPU s per GB (bulk) and ms per session (rate) of the gateway and the agent
   (utime+stime, /proc/PID/stat);
4. via-agent / direct ratios, against "throughput >= 0.8x direct": the verdict reads the median
   of the rounds' paired ratios (the two measurements of a pair are seconds apart, so the
   host's drift mostly cancels); the ratio of the two modes' medians is shown beside it.
Every file is sha256-checked. Work files on /dev/shm. Run as root.

Two CPU layouts (--layout, default both), each with its own rounds:
- split: the deployment's picture on two cores: the inside host's processes (vsftpd and the
  agent) on CPU 1, the DMZ gateway and the clients (curl, the Python sessions) on CPU 0, in
  both modes. The agent's work happens beside the server, as in a deployment, and the
  throughput target is read here.
- shared: every process on both cores. The agent's CPU is taken from the gateway's and the
  clients', so this ratio is the total cost of the hop on one box.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
import types
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "tests" / "integration"))

import harness  # noqa: E402
from harness import TEST_PASS, TEST_USER  # noqa: E402
from clients import NoDelayFTP_TLS, connect  # noqa: E402
from agent_util import Agent, agents_section, make_agent_pki, peer  # noqa: E402
from bench_util import (MB, Curl, RunLog, binary_facts, binary_id, busy_note, fmt, load_line,  # noqa: E402
                        loadavg, proc_cpu_s, require_root, start_run, wait_ready, write_random_file,
                        write_results)

MIB = 1 << 20
MODES = ("direct", "via-agent")
LAYOUTS = ("split", "shared")
WORK_ROOT = Path("/dev/shm/ftpsgate-agent-bench")
RUN = RunLog()
log = RUN.log
TARGET = 0.8


def set_cpus(pid: int, cpus: set[int]) -> None:
    """Every thread of `pid` (and, for vsftpd, the sessions it forks later inherit it)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            os.sched_setaffinity(int(task.name), cpus)
        except (ProcessLookupError, PermissionError):
            pass  # a thread that just ended


def vsftpd_sessions(listener: int) -> list[int]:
    kids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == listener:
                    kids.append(int(d.name))
            except (OSError, IndexError, ValueError):
                pass
    return kids


class Bench:
    def __init__(self, args, work: Path, backend, gw, agent):
        self.args, self.work, self.backend, self.gw, self.agent = args, work, backend, gw, agent
        self.layout = "shared"
        self.src = work / "src"
        self.src.mkdir(exist_ok=True)
        self.ports = {"direct": gw.explicit_port, "via-agent": gw.implicit_port}
        self.rows: list[dict] = []

    def use_layout(self, layout: str) -> None:
        """split: the inside host (vsftpd, the agent) on CPU 1, the gateway and the clients
        (this process and the curls it starts) on CPU 0; shared: everything on both."""
        self.layout = layout
        both = {0, 1}
        dmz, inside = ({0}, {1}) if layout == "split" else (both, both)
        set_cpus(self.gw.proc.pid, dmz)
        set_cpus(self.agent.proc.pid, inside)
        for pid in [self.backend.proc.pid] + vsftpd_sessions(self.backend.proc.pid):
            set_cpus(pid, inside)
        os.sched_setaffinity(0, dmz)
        for task in Path("/proc/self/task").iterdir():
            os.sched_setaffinity(int(task.name), dmz)
        log(f"layout {layout}: gateway and clients on CPUs {sorted(dmz)}, vsftpd and agent on {sorted(inside)}")

    def shim(self, mode):
        return types.SimpleNamespace(explicit_port=self.ports[mode])

    def cpu(self) -> dict:
        return {"gateway": proc_cpu_s(self.gw.proc.pid), "agent": proc_cpu_s(self.agent.proc.pid)}

    def max_time(self, nbytes: int) -> float:
        return 60 + nbytes / (5 * MB)

    def bulk(self, mode: str, rep: int, direction: str, streams: int) -> dict:
        each = self.args.size_mib * MIB // streams
        files = []
        for i in range(streams):
            src = self.src / f"{direction}-{i}.bin"
            digest = write_random_file(src, each)
            remote = f"{mode}-{rep}-{direction}-{streams}-{i}.bin"
            if direction == "down":
                self.backend.put_file(remote, src)
                src.unlink()
                local = self.src / f"got-{i}.bin"
            else:
                local = src
            files.append((remote, local, digest))
        c0, t0 = self.cpu(), time.time()
        curls = [Curl(RUN, self.shim(mode), TEST_USER, TEST_PASS, r, l, direction == "up",
                      self.max_time(each * streams)) for r, l, _ in files]
        res = []
        try:
            for c in curls:
                res.append(c.finish())
        finally:
            for c in curls:
                if c.proc.poll() is None:
                    c.proc.kill()
                    c.proc.wait(timeout=10)
        c1 = self.cpu()
        start, end = min(r["start"] for r in res), max(r["end"] for r in res)
        nbytes = sum(r["bytes"] for r in res)
        bad = []
        for remote, local, digest in files:
            target = local if direction == "down" else self.backend.root / remote
            if harness.sha256_file(target) != digest:
                bad.append(remote)
            (self.backend.root / remote).unlink(missing_ok=True)
            local.unlink(missing_ok=True)
        if bad:
            raise RuntimeError(f"sha256 mismatch: {bad}")
        gb = nbytes / 1e9
        row = {"kind": "bulk", "layout": self.layout, "mode": mode, "rep": rep, "direction": direction,
               "streams": streams,
               "bytes": nbytes, "wall_s": round(end - start, 4), "MBps": nbytes / (end - start) / MB,
               "per_stream_MBps": [r["MBps"] for r in res], "sha256_ok": True,
               "cpu_s": {k: round(c1[k] - c0[k], 3) for k in c0},
               "cpu_s_per_GB": {k: (c1[k] - c0[k]) / gb for k in c0}, "t": t0}
        log(f"[{self.layout} {mode} r{rep}] {direction} x{streams}: {row['MBps']:.1f} MB/s, CPU s/GB gw "
            f"{row['cpu_s_per_GB']['gateway']:.2f} agent {row['cpu_s_per_GB']['agent']:.2f}")
        return row

    def one_session(self, mode: str) -> tuple[bool, float, str]:
        t0 = time.monotonic()
        try:
            ftp = connect(self.shim(mode), cls=NoDelayFTP_TLS, timeout=30)
            try:
                lines: list[str] = []
                ftp.retrlines("LIST", lines.append)
                ftp.quit()
            finally:
                ftp.close()
            return True, time.monotonic() - t0, ""
        except Exception as e:  # noqa: BLE001 — counted as an error
            return False, time.monotonic() - t0, f"{type(e).__name__}: {e}"[:200]

    def rate(self, mode: str, rep: int) -> dict:
        n, conc = self.args.sessions, self.args.concurrency
        RUN.command([f"python3 ftplib x{n} (concurrency {conc}): AUTH TLS, USER, PASS, PBSZ 0, PROT P, "
                     f"PASV+LIST, QUIT", f"127.0.0.1:{self.ports[mode]}"], TEST_PASS)
        c0, t0 = self.cpu(), time.monotonic()
        with ThreadPoolExecutor(conc) as ex:
            results = list(ex.map(lambda _: self.one_session(mode), range(n), timeout=60 + n))
        wall = time.monotonic() - t0
        c1 = self.cpu()
        ok = [r for r in results if r[0]]
        errors: dict[str, int] = {}
        for r in results:
            if not r[0]:
                errors[r[2]] = errors.get(r[2], 0) + 1
        times = sorted(r[1] for r in ok)
        row = {"kind": "rate", "layout": self.layout, "mode": mode, "rep": rep, "sessions": n, "ok": len(ok), "errors": errors,
               "wall_s": round(wall, 3), "sessions_per_s": len(ok) / wall,
               "p50_ms": 1000 * times[len(times) // 2] if times else None,
               "p99_ms": 1000 * times[min(len(times) - 1, int(0.99 * len(times)))] if times else None,
               "cpu_s": {k: round(c1[k] - c0[k], 3) for k in c0},
               "cpu_ms_per_session": {k: 1000 * (c1[k] - c0[k]) / max(1, len(ok)) for k in c0}}
        log(f"[{self.layout} {mode} r{rep}] rate: {row['sessions_per_s']:.1f} sessions/s ({len(ok)}/{n} ok), "
            f"CPU ms/session gw {row['cpu_ms_per_session']['gateway']:.2f} "
            f"agent {row['cpu_ms_per_session']['agent']:.2f}")
        return row

    def round(self, rep: int) -> None:
        # Each case in both modes back to back: this host's speed drifts by tens of percent
        # within seconds, so a pair measured a whole round apart compares two machines.
        order = MODES if rep % 2 == 1 else MODES[::-1]
        for direction in ("down", "up"):
            for streams in (1, self.args.streams):
                for mode in order:
                    self.rows.append(self.bulk(mode, rep, direction, streams))
                    time.sleep(0.3)
        for mode in order:
            self.rows.append(self.rate(mode, rep))


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def summarize(R: dict) -> None:
    R["summary"] = {layout: summarize_layout(R, [r for r in R["rows"] if r.get("layout") == layout])
                    for layout in R["params"]["layouts"]}


def summarize_layout(R: dict, rows: list[dict]) -> list[dict]:
    S = []
    keys = [("bulk", d, s) for d in ("down", "up") for s in (1, R["params"]["streams"])] + [("rate", None, None)]
    for kind, d, s in keys:
        sel = {m: [r for r in rows if r["kind"] == kind and r["mode"] == m and
                   (kind == "rate" or (r["direction"] == d and r["streams"] == s))] for m in MODES}
        if kind == "bulk":
            name, metric = f"{'download' if d == 'down' else 'upload'} x{s} (MB/s)", "MBps"
            cpu = "cpu_s_per_GB"
        else:
            name, metric, cpu = "sessions/s (LIST)", "sessions_per_s", "cpu_ms_per_session"
        v = {m: med([r[metric] for r in sel[m]]) for m in MODES}
        ratio = v["via-agent"] / v["direct"] if v["direct"] and v["via-agent"] is not None else None
        by_rep = {m: {r["rep"]: r[metric] for r in sel[m]} for m in MODES}
        paired = [by_rep["via-agent"][k] / by_rep["direct"][k] for k in sorted(by_rep["direct"])
                  if by_rep["direct"][k] and k in by_rep["via-agent"]]
        pr = med(paired)
        S.append({"name": name, "kind": kind, "direct": v["direct"], "via": v["via-agent"], "ratio": ratio,
                  "paired": [round(x, 3) for x in paired], "paired_ratio": pr,
                  "all": {m: [round(r[metric], 2) for r in sel[m]] for m in MODES},
                  "cpu_unit": "CPU s/GB" if kind == "bulk" else "CPU ms/session",
                  "cpu": {m: {p: med([r[cpu][p] for r in sel[m]]) for p in ("gateway", "agent")} for m in MODES},
                  "meets": (pr >= TARGET) if (kind == "bulk" and pr is not None) else None})
    return S


LAYOUT_NOTES = {
    "split": "Two hosts on two cores, as deployed: vsftpd and the agent (the inside host) on CPU 1, the gateway "
             "and the clients on CPU 0, in both modes. The target is read here.",
    "shared": "Every process on both cores: the agent's CPU comes out of the gateway's and the clients' share, "
              "so this ratio is the hop's total cost on one box, not what a client of a deployed gateway sees.",
}


def report(R: dict, path: Path) -> None:
    M, P = R["machine"], R["params"]
    L = [f"# Inside-out agent benchmark — {R['started']} UTC", "",
         f"Command: `{R['command']}`", "",
         load_line(M), ""]
    L += busy_note(M, "; every figure is skewed by the other work; compare the two modes only within this run "
                      "(they alternate, so both see a similar share of the load)")
    for layout, S in R["summary"].items():
        L += ["", f"## Summary, layout {layout} (medians over the rounds; ratio = via-agent / direct)", "",
              LAYOUT_NOTES[layout], "",
              "Paired ratio: the median of the rounds' via-agent / direct ratios, each from the two modes "
              "of one case run back to back (the verdict reads it); ratio of medians: the two medians' "
              "ratio.", "",
              "| metric | direct | via-agent | paired ratio | ratio of medians | target ≥ 0.8× | paired ratios "
              "| all direct | all via-agent |",
              "|---|---|---|---|---|---|---|---|---|"]
        for s in S:
            meets = "—" if s["meets"] is None else ("met" if s["meets"] else "**missed**")
            L.append(f"| {s['name']} | {fmt(s['direct'], 1)} | {fmt(s['via'], 1)} | {fmt(s['paired_ratio'], 3)} | "
                     f"{fmt(s['ratio'], 3)} | {meets} | {s['paired']} | {s['all']['direct']} | "
                     f"{s['all']['via-agent']} |")
        L += ["", f"### CPU, layout {layout} (medians)", "",
              "| metric | unit | gateway direct | gateway via-agent | agent via-agent | gw+agent / gw direct |",
              "|---|---|---|---|---|---|"]
        for s in S:
            c = s["cpu"]
            tot = (c["via-agent"]["gateway"] or 0) + (c["via-agent"]["agent"] or 0)
            rr = tot / c["direct"]["gateway"] if c["direct"]["gateway"] else None
            L.append(f"| {s['name']} | {s['cpu_unit']} | {fmt(c['direct']['gateway'])} | "
                     f"{fmt(c['via-agent']['gateway'])} | {fmt(c['via-agent']['agent'])} | {fmt(rr)} |")
    errs = [(r["mode"], r["rep"], r["errors"]) for r in R["rows"] if r["kind"] == "rate" and r["errors"]]
    L += ["", "## Setup", "",
          f"vsftpd (plaintext, loopback, home on tmpfs) ← one ftpsgate with two explicit listeners: backend "
          f"`direct` and backend `via-agent` (`agent:bench/127.0.0.1:PORT`), one agent (pool idle "
          f"{P['agent_idle']}, targets = vsftpd's port + passive range), gateway and agent log level info "
          f"(the gateway's {len(R.get('startup_warnings', []))} warning(s) before the agent's links were up are "
          f"not counted). "
          f"{P['repeat']} rounds; in each, every case runs in both modes back to back (direct first on odd "
          f"rounds). Bulk: curl `--ssl-reqd -k "
          f"--disable-epsv` (PROT P, PASV), {P['size_mib']} MiB in one stream and {P['streams']} × "
          f"{P['size_mib'] / P['streams']:g} MiB at once, down and up; every file sha256-checked. MB/s = 10⁶ "
          f"bytes / (last final reply − first transfer start). Rate: {P['sessions']} sessions of Python ftplib "
          f"(TLS, PROT P, data session resumed, LIST), {P['concurrency']} at once; the Python client itself "
          f"uses CPU on the same 2 cores. CPU = utime+stime of the process (/proc/PID/stat) over the "
          f"measurement.", ""]
    if errs:
        L += ["Session errors: " + "; ".join(f"{m} r{r}: {e}" for m, r, e in errs), ""]
    if R.get("problems"):
        L += ["## Problems", ""] + [f"- {p}" for p in R["problems"]] + [""]
    L += ["## Machine", "", f"nproc {M['nproc']}, kernel {M['kernel']}, {M['openssl']}, {M['vsftpd']}, "
          f"{M['curl']}, ftpsgate `{M['ftpsgate_bin']}` ({M['ftpsgate']}, mtime {M['ftpsgate_mtime']}), "
          f"checkout at {M['commit']}. Load at end: {M.get('loadavg_end')}.", ""]
    path.write_text("\n".join(L) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--streams", type=int, default=4)
    ap.add_argument("--sessions", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--agent-idle", type=int, default=8)
    ap.add_argument("--layout", choices=("both",) + LAYOUTS, default="both",
                    help="CPU layouts to measure (see above); both: split first, then shared")
    ap.add_argument("--out-dir", default=str(HERE / "results"))
    args = ap.parse_args()
    if not require_root():
        return 1
    params = vars(args).copy()
    params["layouts"] = list(LAYOUTS) if args.layout == "both" else [args.layout]
    if len(os.sched_getaffinity(0)) < 2 and "split" in params["layouts"]:
        params["layouts"].remove("split")
        log("fewer than two CPUs: no split layout")
        if not params["layouts"]:
            return 1
    stamp, work, R = start_run(WORK_ROOT, "agent.py", params, RUN)
    R["problems"] = []
    gw_bin = str(harness.GATEWAY_BIN)
    bin0 = binary_id(gw_bin)
    M = R["machine"]
    M.update(binary_facts(gw_bin, REPO))
    backend = harness.Vsftpd(work / "vsftpd", pasv_ports=50)
    certs = harness.make_certs(work / "certs")
    pki = make_agent_pki(work / "pki")
    gw = agent = b = None
    mark = 0
    try:
        backend.start()
        log(f"vsftpd pid {backend.proc.pid} on {backend.port}, passive {backend.pasv[0]}-{backend.pasv[-1]}")
        aport, mport = harness.PORTS.port(), harness.PORTS.port()

        def edit(c):
            c["listeners"] = [
                {"name": "direct", "address": f"127.0.0.1:{c['_ports'][0]}", "mode": "explicit", "backend": "direct"},
                {"name": "via-agent", "address": f"127.0.0.1:{c['_ports'][1]}", "mode": "explicit",
                 "backend": "via-agent"}]
            del c["_ports"]
            c["backends"] = [
                {"name": "direct", "servers": [f"127.0.0.1:{backend.port}"], "connect_timeout": "3s"},
                {"name": "via-agent", "servers": [f"agent:bench/127.0.0.1:{backend.port}"], "connect_timeout": "3s",
                 "health_check": {"interval": "2s", "timeout": "2s"}}]

        overrides = {"metrics": {"address": f"127.0.0.1:{mport}"}, "logging": {"level": "info"},
                     "limits": {"data_connect_timeout": "20s"},
                     "agents": agents_section(pki, aport, peers=[peer(
                         "bench", certificate={"field": "san_uri", "equals": "urn:ftpsgate:agent:site-a"})])}
        gw = harness.Gateway(work / "gw", backend.port, certs, overrides, name="agent-bench",
                             edit=lambda c: None)
        gw.config["_ports"] = (gw.explicit_port, gw.implicit_port)
        edit(gw.config)
        gw.start()
        log(f"gateway pid {gw.proc.pid}: direct {gw.explicit_port}, via-agent {gw.implicit_port}, agents {aport}")
        targets = [f"127.0.0.1:{backend.port}", f"127.0.0.1:{backend.pasv[0]}-{backend.pasv[-1]}"]
        agent = Agent(work / "agent", pki, aport, targets, name="site-a", idle=args.agent_idle,
                      overrides={"logging": {"level": "info"}}).start()
        log(f"agent pid {agent.proc.pid}")
        wait_ready(mport, gw.proc, timeout=30)  # the via-agent backend is ready once links are up
        # Before the agent's links were up the health check logged "not connected": expected, not counted.
        mark = len(gw.log_records())
        R["startup_warnings"] = [r for r in gw.log_records() if r.get("level") in ("warn", "error")][:20]
        b = Bench(args, work, backend, gw, agent)
        for layout in params["layouts"]:
            b.use_layout(layout)
            for rep in range(1, args.repeat + 1):
                b.round(rep)
    except Exception as e:  # noqa: BLE001 — reported
        R["problems"].append(f"run aborted: {type(e).__name__}: {e}")
        log(f"ABORT: {e}")
    finally:
        if b is not None:
            R["rows"] = b.rows
        if gw is not None:   # before the agent stops: its stop makes the gateway log agent_disconnected
            R["gateway_warnings"] = [r for r in gw.log_records()[mark:] if r.get("level") in ("warn", "error")][:20]
        if agent is not None:
            agent.stop()
        if gw is not None:
            gw.stop()
        backend.stop()
        for d in (work / "src", backend.root):
            shutil.rmtree(d, ignore_errors=True)
    M["loadavg_end"] = loadavg()
    if binary_id(gw_bin) != bin0:
        R["problems"].append(f"{gw_bin} changed during the run: rerun")
    if R.get("gateway_warnings"):
        R["problems"].append(f"gateway logged {len(R['gateway_warnings'])} warn/error record(s), first: "
                             f"{R['gateway_warnings'][0]}")
    summarize(R)
    write_results(R, RUN, args.out_dir, f"{stamp}-agent.md", report)
    return 0 if not R["problems"] else 1


if __name__ == "__main__":
    sys.exit(main())
