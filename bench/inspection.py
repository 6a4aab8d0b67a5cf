#!/usr/bin/env python3
"""inspection.py — issue 16: what upload inspection costs. Clean uploads through three ftpsgate
gateways in front of one plaintext vsftpd, side by side in one run:

- **off**: no `inspection` (the relay);
- **clamd**: class `inspection: {scanner: av-clamd}`, clamd INSTREAM over its unix socket;
- **icap**: class `inspection: {scanner: av-icap}`, c-icap's virus_scan (RESPMOD, preview
  4096 by default) in front of the same clamd.

The scanners are tests/integration/scanner_servers.py's `Clamd` and `CIcap` (their own configs,
sockets and two-signature database; nothing of the system instances is touched). Scenarios,
each `--repeat` times per mode, the modes taking turns (a different mode first each round):

1. **single**: one session (curl, explicit FTPS, PROT P, PASV) uploads one `--size-mib` file
   (64 MiB);
2. **concurrent**: `--sessions` (8) curl sessions started together, `--concurrent-mib` (8 MiB)
   each;
3. **small**: one ftplib session (TLS, PROT P, data connections resuming the control
   session) uploads `--small-count` (200) files of `--small-kib` (64 KiB) one after the other;
   per-file latency (STOR command to the final reply, client side).

Every file is fresh random bytes (clamd caches the verdicts of files it has seen; a repeated
file would be a cache hit), and every uploaded copy is sha256-checked on the backend, then
deleted. Reported per mode: MB/s (median, min–max) and its ratio to off; CPU seconds per GB
(10⁹ bytes uploaded) of the gateway (utime+stime, /proc/PID/stat), of clamd, of c-icap (main
process and its workers, live and reaped) and of vsftpd; where an inspected upload's time goes
(its `transfer` record's spool_seconds / scan_seconds / forward_seconds against `seconds`) and,
for the single uploads, the CPU each process spent in each phase (a CPU time series sampled every
`--spool-poll` s, cut at the record's phase boundaries); the peak of `ftpsgate_spool_bytes` seen
by polling /metrics at the same interval; the `ftpsgate_inspections_total` and
`ftpsgate_scan_duration_seconds` deltas.

Run as root (vsftpd's local account), ~2-3 minutes on 2 cores with the defaults:

    python3 bench/inspection.py                 # uses build/ftpsgate
    FTPSGATE_BIN=/path/to/ftpsgate python3 bench/inspection.py --repeat 2
    python3 bench/inspection.py --report bench/results/<stamp>-inspection.json   # re-make the .md only

Everything binds 127.0.0.1; every process is started here and stopped by its pid, every wait is
bounded. Work files (configs, logs, the spool directory, the scanners' directories, the FTP home)
are in /dev/shm/ftpsgate-insp-bench/<timestamp> (tmpfs; payloads are deleted). Writes
bench/results/<UTC timestamp>-inspection.md (the report) and .json (every raw number, one line;
each row's uploads as columns and values).
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import re
import shutil
import statistics
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
from clients import NoDelayFTP_TLS, connect  # noqa: E402
from scanner_servers import CIcap, Clamd  # noqa: E402
from bench_util import (MB, SAMPLE, Curl, RunLog, binary_facts, binary_id, busy_note, command_output,  # noqa: E402
                        commands_section, fmt, loadavg, machine_section, metrics_delta, metrics_text, parse_ts,
                        problems_section, proc_cpu_s, reading_section, report_head, require_root, scrape,
                        start_run, transfer_records, tree, tree_cpu, unique_commands, wait_ready, write_json,
                        write_random_file, write_results)

WORK_ROOT = Path(os.environ.get("INSP_BENCH_ROOT", "/dev/shm/ftpsgate-insp-bench"))
MODES = ("off", "clamd", "icap")
SCENARIOS = ("single", "concurrent", "small")
WANTED = ("ftpsgate_inspections_total", "ftpsgate_scan_duration_seconds", "ftpsgate_spool_bytes")
PHASES = ("spool_seconds", "scan_seconds", "forward_seconds")   # of an inspected upload's transfer record
MIB = 1 << 20
GB = 1e9
RUN = RunLog()
log = RUN.log


def median(xs):
    return statistics.median(xs) if xs else None


def quantile(xs, q: float):
    """Nearest-rank quantile of xs (q in 0..1)."""
    if not xs:
        return None
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(q * len(s) + 0.5) - 1))]


class Sampler:
    """A thread that, every `interval` s until stop(), reads the gateway's ftpsgate_spool_bytes gauge
    (`spool`: the values) and the CPU seconds (utime+stime) of the processes in `pids` (name -> [pid, ...],
    summed): `series` = [(time.time(), {name: CPU s})]."""

    def __init__(self, port: int, interval: float, pids: dict[str, list[int]]):
        self.port, self.interval, self.pids = port, interval, pids
        self.spool: list[float] = []
        self.errors = 0
        self.series: list[tuple[float, dict]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _cpu(self) -> dict:
        out = {}
        for name, pids in self.pids.items():
            total = 0.0
            for pid in pids:
                try:
                    total += proc_cpu_s(pid)
                except OSError:   # a c-icap worker that ended: its time went to the main process's cutime
                    pass
            out[name] = total
        return out

    def _sample(self) -> None:
        self.series.append((time.time(), self._cpu()))
        try:
            text = metrics_text(self.port)
        except OSError:
            self.errors += 1
            return
        for line in text.splitlines():
            m = SAMPLE.match(line)
            if m and m.group(1) == "ftpsgate_spool_bytes":
                self.spool.append(float(m.group(3)))

    def _run(self) -> None:
        self._sample()
        while not self._stop.wait(self.interval):
            self._sample()
        self._sample()

    def __enter__(self) -> "Sampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def spool_peak(self, before: float) -> float:
        """The largest gauge value this run set. The gauge keeps its last value when a spool is freed (it is
        set just before the finished upload's deferred deletion), so a run starts with the value the run
        before left: samples count from the first that differs from `before` (none differs: `before`, the
        value each upload then set again)."""
        for i, v in enumerate(self.spool):
            if v != before:
                return max(self.spool[i:])
        return before if self.spool else 0.0

    def cpu_at(self, t: float) -> dict:
        """CPU seconds per name at time t, interpolated linearly between samples (clamped to the ends)."""
        S = self.series
        if t <= S[0][0]:
            return S[0][1]
        for (t0, c0), (t1, c1) in zip(S, S[1:]):
            if t <= t1:
                f = (t - t0) / (t1 - t0) if t1 > t0 else 1.0
                return {k: c0[k] + f * (c1[k] - c0[k]) for k in c0}
        return S[-1][1]


def phase_cpu(sampler: Sampler, rec: dict) -> dict | None:
    """CPU seconds per process name in each phase of one inspected upload (its `transfer` record: ts is the
    end, ms precision; start = ts − seconds; then spool, scan, forward in turn)."""
    end = parse_ts(rec.get("ts", ""))
    if end is None or not sampler.series:
        return None
    t = end - rec["seconds"]
    out: dict = {}
    for ph in PHASES:
        a, b = sampler.cpu_at(t), sampler.cpu_at(t + rec[ph])
        out[ph] = {k: round(b[k] - a[k], 4) for k in a}
        t += rec[ph]
    return out


class Bench:
    def __init__(self, args, work: Path, backend, certs, clamd: Clamd, icap: CIcap):
        self.args, self.work, self.backend, self.certs = args, work, backend, certs
        self.clamd, self.icap = clamd, icap
        self.src = work / "src"
        self.src.mkdir(exist_ok=True)
        self.spool = Path(args.spool_dir) if args.spool_dir else work / "spool"
        self.spool.mkdir(parents=True, exist_ok=True)
        self.rows: list[dict] = []
        self.gateways: dict[str, harness.Gateway] = {}

    # -- gateways
    def scanner_entry(self, mode: str) -> dict:
        entry = {"name": f"av-{mode}"}
        if mode == "clamd":
            entry["clamd"] = {"socket": str(self.clamd.socket)}
        else:
            entry["icap"] = {"url": self.icap.url, "method": "respmod", "preview": self.args.icap_preview}
        return entry

    def gateway(self, mode: str) -> harness.Gateway:
        mport = harness.PORTS.port()
        cls = harness.klass("default", "on")
        overrides = {
            "metrics": {"address": f"127.0.0.1:{mport}"},
            "logging": {"format": "json", "level": "info"},
            "limits": {"data_connect_timeout": "20s"},
        }
        if mode != "off":
            cls["inspection"] = {"scanner": f"av-{mode}"}
            overrides["inspection"] = {"spool_dir": str(self.spool), "memory_threshold": self.args.memory_threshold,
                                       "max_spool_bytes": self.args.max_spool, "scanners": [self.scanner_entry(mode)]}
        overrides["classes"] = [cls]
        gw = harness.Gateway(self.work / f"gw-{mode}", self.backend.port, self.certs, overrides, name=mode)
        gw.start()
        wait_ready(mport, gw.proc)
        gw.metrics_port = mport
        log(f"[{mode}] gateway pid {gw.proc.pid} on {gw.explicit_port}, metrics {mport}")
        self.gateways[mode] = gw
        return gw

    # -- scenarios: each returns the uploads [{remote, sha256, bytes, client_s, start, end}]
    def max_time(self, nbytes: int) -> float:
        return 120 + nbytes / (2 * MB)     # 2 MB/s would be far below any rate seen here

    def curl_uploads(self, gw, tag: str, sizes: list[int]) -> list[dict]:
        files = []
        for i, size in enumerate(sizes):
            path = self.src / f"{tag}-{i}.bin"
            files.append((path, write_random_file(path, size)))
        curls = [Curl(RUN, gw, TEST_USER, TEST_PASS, f"{tag}-{i}.bin", path, True, self.max_time(sum(sizes)))
                 for i, (path, _) in enumerate(files)]
        out = []
        try:
            for c, (path, digest) in zip(curls, files):
                r = c.finish()
                path.unlink()
                out.append({"remote": c.remote, "sha256": digest, "bytes": r["bytes"], "client_s": r["transfer_s"],
                            "start": r["start"], "end": r["end"]})
        finally:   # one failed: the others (ours, by their Popen) do not run on after the run
            for c in curls:
                if c.proc.poll() is None:
                    c.proc.kill()
                    c.proc.wait(timeout=10)
        return out

    def single(self, gw, tag: str) -> list[dict]:
        return self.curl_uploads(gw, tag, [self.args.size_mib * MIB])

    def concurrent(self, gw, tag: str) -> list[dict]:
        return self.curl_uploads(gw, tag, [self.args.concurrent_mib * MIB] * self.args.sessions)

    def small(self, gw, tag: str) -> list[dict]:
        size = self.args.small_kib * 1024
        ftp = connect(gw, cls=NoDelayFTP_TLS, timeout=120)   # AUTH TLS, USER, PASS, PBSZ 0, PROT P
        out = []
        try:
            RUN.command(["python3 ftplib (FTP_TLS, data sessions resumed, TCP_NODELAY)",
                         "AUTH TLS, USER, PASS, PBSZ 0, PROT P,",
                         f"{self.args.small_count} × (PASV, STOR {tag}-N.bin of {size} bytes)",
                         f"127.0.0.1:{gw.explicit_port}"], TEST_PASS)
            for i in range(self.args.small_count):
                data = os.urandom(size)
                remote = f"{tag}-{i:04d}.bin"
                t0, w0 = time.monotonic(), time.time()
                reply = ftp.storbinary(f"STOR {remote}", io.BytesIO(data), blocksize=65536)
                dt = time.monotonic() - t0
                if not reply.startswith("226"):
                    raise RuntimeError(f"STOR {remote}: {reply}")
                out.append({"remote": remote, "sha256": hashlib.sha256(data).hexdigest(), "bytes": size,
                            "client_s": dt, "start": w0, "end": w0 + dt})
            ftp.quit()
        finally:
            ftp.close()
        return out

    # -- one measurement
    def run(self, mode: str, scenario: str, rep: int) -> dict:
        gw = self.gateways[mode]
        tag = f"{scenario}-{mode}-{rep}"
        mark = len(gw.log_records())
        m0 = scrape(gw.metrics_port, WANTED)
        pids = {"gateway": gw.proc.pid, "clamd": self.clamd.pid, "c-icap": self.icap.pid,
                "vsftpd": self.backend.proc.pid}
        # The gateway is one process (threads in its own utime/stime); vsftpd forks per session and
        # c-icap has worker processes: their trees, reaped children included.
        def cpu_now() -> dict:
            return {k: proc_cpu_s(v) if k == "gateway" else tree_cpu(v) for k, v in pids.items()}
        cpu0 = cpu_now()
        t0 = time.time()
        # c-icap's workers as they are now (they live as long as the main process here): the sampler reads
        # only these pids, cheaply; the run's totals above and below walk the whole tree.
        sample_pids = {"gateway": [gw.proc.pid], "clamd": [self.clamd.pid], "c-icap": tree(self.icap.pid)}
        with Sampler(gw.metrics_port, self.args.spool_poll, sample_pids) as poller:
            uploads = getattr(self, scenario)(gw, tag)
        wall = time.time() - t0
        cpu1 = cpu_now()
        # The gateway writes the transfer record before it relays the final reply.
        harness.wait_until(lambda: len(transfer_records(gw, mark)) >= len(uploads), 15, "transfer records",
                           context=gw.tail)
        m1 = scrape(gw.metrics_port, WANTED)
        gauge0, gauge1 = m0.get("ftpsgate_spool_bytes", 0.0), m1.get("ftpsgate_spool_bytes", 0.0)
        peak = poller.spool_peak(gauge0)
        recs = {r.get("path"): r for r in transfer_records(gw, mark)}
        for u in uploads:
            rec = recs.get(u["remote"])
            if rec is None:
                raise RuntimeError(f"no transfer record for {u['remote']}")
            if rec.get("result") != "ok" or rec.get("bytes") != u["bytes"]:
                raise RuntimeError(f"transfer record not ok: {rec}")
            if mode != "off" and (rec.get("verdict") != "clean" or rec.get("scanner") != f"av-{mode}"):
                raise RuntimeError(f"not inspected clean by av-{mode}: {rec}")
            stored = self.backend.root / u["remote"]
            got = harness.sha256_file(stored)
            stored.unlink()
            if got != u["sha256"]:
                raise RuntimeError(f"sha256 mismatch on the backend for {u['remote']} ({mode})")
            u["sha256_ok"] = True
            u["record"] = {k: rec.get(k) for k in ("bytes", "seconds", "spool_seconds", "scan_seconds",
                                                   "forward_seconds", "verdict", "scanner", "ts")}
            if mode != "off" and len(uploads) == 1:   # one upload at a time: the phases are its own
                u["phase_cpu_s"] = phase_cpu(poller, rec)
        total = sum(u["bytes"] for u in uploads)
        span = max(u["end"] for u in uploads) - min(u["start"] for u in uploads)
        cpu = {k: round(cpu1[k] - cpu0[k], 3) for k in cpu0}
        delta = metrics_delta(m0, m1)
        row = {"scenario": scenario, "mode": mode, "rep": rep, "files": len(uploads), "bytes": total,
               "span_s": round(span, 4), "wall_s": round(wall, 3), "MBps": total / span / MB,
               "cpu_s": cpu, "cpu_s_per_GB": {k: v / (total / GB) for k, v in cpu.items()},
               "spool_peak_bytes": peak, "spool_samples": len(poller.spool), "spool_poll_errors": poller.errors,
               "spool_gauge_before": gauge0, "spool_gauge_after_idle": gauge1,
               "metrics": delta, "uploads": uploads, "loadavg": loadavg()}
        inspected = delta.get(f'ftpsgate_inspections_total{{engine="{mode}",verdict="clean"}}', 0) \
            if mode != "off" else None
        row["inspections_clean"] = inspected
        lat = [u["client_s"] for u in uploads]
        log(f"[{scenario} {mode} #{rep}] {len(uploads)} file(s), {total / MB:.1f} MB in {span:.2f} s = "
            f"{row['MBps']:.1f} MB/s; client s/file median {median(lat):.4f}; gateway CPU {cpu['gateway']:.2f} s, "
            f"clamd {cpu['clamd']:.2f} s, c-icap {cpu['c-icap']:.2f} s; spool peak {peak / MIB:.1f} MiB "
            f"(gauge {gauge0 / MIB:.1f} before, {gauge1 / MIB:.1f} after, idle); "
            f"inspections clean {inspected}")
        if mode != "off" and inspected != len(uploads):
            raise RuntimeError(f"ftpsgate_inspections_total clean grew by {inspected}, expected {len(uploads)}: "
                               f"{delta}")
        self.rows.append(row)
        return row


# --------------------------------------------------------------------------- summary and report

def summarize(R: dict) -> None:
    rows = R["rows"]
    S = []
    for sc in SCENARIOS:
        base = None
        for mode in MODES:
            rs = [r for r in rows if r["scenario"] == sc and r["mode"] == mode]
            if not rs:
                continue
            rates = [r["MBps"] for r in rs]
            total = sum(r["bytes"] for r in rs)
            uploads = [u for r in rs for u in r["uploads"]]
            recs = [u["record"] for u in uploads]
            lat = [u["client_s"] for u in uploads]
            it = {"scenario": sc, "mode": mode, "runs": len(rs), "files": len(uploads), "bytes": total,
                  "MBps_median": median(rates), "MBps_min": min(rates), "MBps_max": max(rates),
                  "cpu_s_per_GB": {k: sum(r["cpu_s"][k] for r in rs) / (total / GB) for k in rs[0]["cpu_s"]},
                  "spool_peak_bytes": max(r["spool_peak_bytes"] for r in rs),
                  "client_s_p50": median(lat), "client_s_p90": quantile(lat, 0.9),
                  "client_s_p99": quantile(lat, 0.99), "client_s_max": max(lat),
                  "record_seconds_p50": median([x["seconds"] for x in recs])}
            if mode == "off":
                base = it
            it["ratio_to_off"] = it["MBps_median"] / base["MBps_median"] if base else None
            it["p50_latency_ratio_to_off"] = it["client_s_p50"] / base["client_s_p50"] if base else None
            if mode != "off":
                secs = sum(x["seconds"] for x in recs)
                split = {}
                for ph in PHASES:
                    v = [x[ph] for x in recs if x.get(ph) is not None]
                    split[ph] = {"median": median(v), "share": sum(v) / secs if secs else None}
                split["other_share"] = 1 - sum(split[ph]["share"] or 0 for ph in PHASES) if secs else None
                scan_rates = [x["bytes"] / x["scan_seconds"] / MB for x in recs if x.get("scan_seconds")]
                split["scan_MBps_median"] = median(scan_rates)
                spool_rates = [x["bytes"] / x["spool_seconds"] / MB for x in recs if x.get("spool_seconds")]
                split["spool_MBps_median"] = median(spool_rates)
                fwd_rates = [x["bytes"] / x["forward_seconds"] / MB for x in recs if x.get("forward_seconds")]
                split["forward_MBps_median"] = median(fwd_rates)
                it["split"] = split
                hsum = sum(r["metrics"].get(f'ftpsgate_scan_duration_seconds_sum{{engine="{mode}"}}', 0) for r in rs)
                hcnt = sum(r["metrics"].get(f'ftpsgate_scan_duration_seconds_count{{engine="{mode}"}}', 0)
                           for r in rs)
                it["scan_histogram_mean_s"] = hsum / hcnt if hcnt else None
                it["scan_histogram_count"] = hcnt
                pcs = [u["phase_cpu_s"] for u in uploads if u.get("phase_cpu_s")]
                if pcs:
                    it["phase_cpu_s_median"] = {ph: {k: median([pc[ph][k] for pc in pcs]) for k in pcs[0][ph]}
                                                for ph in PHASES}
                    it["phase_cpu_files"] = len(pcs)
            S.append(it)
    R["summary"] = S


def pct(x):
    return "—" if x is None else f"{x * 100:.0f}%"


def ms(x):
    return "—" if x is None else f"{x * 1000:.1f}"


def report(R: dict, path_md: Path) -> None:
    L: list[str] = []
    A = L.append
    P = R["params"]
    M = R["machine"]
    label = {"single": f"single, 1 × {P['size_mib']} MiB",
             "concurrent": f"concurrent, {P['sessions']} × {P['concurrent_mib']} MiB",
             "small": f"small, {P['small_count']} × {P['small_kib']} KiB in 1 session"}
    L.extend(report_head(R, "Upload inspection: throughput with inspection off, clamd, ICAP (issue 16)",
                         "the clients, the three gateways, vsftpd, clamd and c-icap"))
    if R["problems"]:
        L.extend(problems_section("PROBLEMS", R["problems"]))
    A("Setup: one plaintext vsftpd (harness `Vsftpd`, account `ftpsgate-t`, home on tmpfs); in front of it "
      "three ftpsgate processes, all running for the whole run (harness `Gateway`: explicit FTPS, class "
      "`default` with `tls_required: on`, JSON log at level info, metrics on a loopback port): **off** without "
      "`inspection`; **clamd** with `inspection: {scanner: av-clamd}`, clamd INSTREAM over its unix socket; "
      f"**icap** with `inspection: {{scanner: av-icap}}`, c-icap virus_scan (RESPMOD, preview {P['icap_preview']}) "
      f"in front of the same clamd. Inspection: `memory_threshold: {P['memory_threshold']}`, `max_spool_bytes: "
      f"{P['max_spool']}`, spool directory on {M['spool_fs']} (`{M['spool_dir']}`); scanner defaults "
      "(`max_connections: 8` per worker, timeouts). Scanners: tests/integration/scanner_servers.py's `Clamd` "
      f"({M['clamd']}, two signatures, MaxThreads 8, temporary files on tmpfs) and `CIcap` ({M['c_icap']}, "
      "1-4 worker processes × 16 threads; it writes the file to its TmpDir and has clamd scan it by path).")
    A("")
    A(f"Clients: {M['curl']} (`--ssl-reqd -k --disable-epsv`: AUTH TLS, PROT P, PASV) for single and "
      "concurrent, one process per session; Python ftplib (`FTP_TLS`, data connections resuming the control "
      "session, 64 KiB writes) for the small files, one session. Every file is fresh random bytes (clamd caches "
      "verdicts by hash), every copy on the backend matched the source's sha256, and for every inspected upload "
      "the `transfer` record said `verdict: clean` and `ftpsgate_inspections_total{verdict=\"clean\"}` grew by "
      f"one. {P['repeat']} runs per scenario and mode, the modes taking turns (each round starts with another).")
    A("")
    A("MB = 10⁶ bytes, GB = 10⁹. **MB/s** = bytes / (last final reply − first STOR), client side (curl: "
      "`time_total − time_pretransfer`; concurrent: all bytes over the span of all sessions); the median of the "
      "runs, min–max in brackets; **÷ off** = median / off's median. **CPU s/GB**: CPU seconds over the run per "
      "10⁹ bytes uploaded, session set-up (TLS handshakes, logins) included: the gateway process (all threads), "
      "clamd, c-icap (main process + workers, live and reaped), vsftpd (its process tree). **spool peak**: the "
      f"largest `ftpsgate_spool_bytes` seen polling /metrics every {P['spool_poll']} s, counted from the first "
      "value that differs from the one the run started with (the gauge keeps a stale value between uploads, "
      "see Reading). The gateway sets it when an upload is fully spooled and when it ends, not while bytes "
      "arrive.")
    A("")
    A("## Throughput and CPU")
    A("")
    A("| scenario | mode | MB/s median (min–max) | ÷ off | gateway CPU s/GB | clamd CPU s/GB | c-icap CPU s/GB "
      "| vsftpd CPU s/GB | spool peak MiB |")
    A("|---|---|---|---|---|---|---|---|---|")
    for it in R["summary"]:
        c = it["cpu_s_per_GB"]
        A(f"| {label[it['scenario']]} | {it['mode']} | {it['MBps_median']:.1f} ({it['MBps_min']:.1f}–"
          f"{it['MBps_max']:.1f}) | {fmt(it['ratio_to_off'])}× | {c['gateway']:.2f} | {c['clamd']:.2f} | "
          f"{c['c-icap']:.2f} | {c['vsftpd']:.2f} | {it['spool_peak_bytes'] / MIB:.1f} |")
    A("")
    A("## Where an inspected upload's time goes")
    A("")
    A("From the gateway's `transfer` records: `seconds` = STOR to the record (written before the final reply); "
      "**spool** = STOR to the last byte in the spool (the client's transfer), **scan** = spooled to verdict, "
      "**forward** = verdict to the backend's final reply (fresh PASV, connect, STOR, the spool streamed). "
      "Median seconds over every file, and the share = sum of the phase / sum of `seconds`; **other** = what the "
      "three phases leave of `seconds`. Phase MB/s = file bytes / phase seconds (median). off's `seconds` "
      "median is given for comparison.")
    A("")
    A("| scenario | mode | files | `seconds` median | spool median (share) | scan median (share) | forward median "
      "(share) | other | spool / scan / forward MB/s | off `seconds` median | scan histogram mean |")
    A("|---|---|---|---|---|---|---|---|---|---|---|")
    offs = {it["scenario"]: it for it in R["summary"] if it["mode"] == "off"}
    for it in R["summary"]:
        if it["mode"] == "off":
            continue
        s = it["split"]
        off = offs.get(it["scenario"])
        cells = " | ".join(f"{fmt(s[ph]['median'], 3)} s ({pct(s[ph]['share'])})" for ph in PHASES)
        A(f"| {label[it['scenario']]} | {it['mode']} | {it['files']} | {fmt(it['record_seconds_p50'], 3)} s | "
          f"{cells} | "
          f"{pct(s['other_share'])} | {fmt(s['spool_MBps_median'], 0)} / {fmt(s['scan_MBps_median'], 0)} / "
          f"{fmt(s['forward_MBps_median'], 0)} | {fmt(off['record_seconds_p50'] if off else None, 3)} s | "
          f"{fmt(it['scan_histogram_mean_s'], 3)} s |")
    A("")
    phased = [it for it in R["summary"] if it.get("phase_cpu_s_median")]
    if phased:
        A("## CPU by phase (one upload at a time)")
        A("")
        A(f"A thread samples the CPU seconds (utime+stime) of the gateway, clamd and c-icap (main process and "
          f"the workers alive at the run's start) every {P['spool_poll']} s; each upload's phases (from its "
          "`transfer` record: end = `ts` (ms), start = end − `seconds`) cut that series (linear interpolation "
          "between samples). Median CPU seconds per phase over the files; a phase shorter than a few sampling "
          "intervals (the forward) is only roughly resolved.")
        A("")
        A("| scenario | mode | files | phase seconds spool / scan / forward | gateway CPU s | clamd CPU s | "
          "c-icap CPU s |")
        A("|---|---|---|---|---|---|---|")
        for it in phased:
            pc = it["phase_cpu_s_median"]
            def cells(k):
                return " / ".join(f"{pc[ph][k]:.2f}" for ph in PHASES)
            secs = " / ".join(fmt(it["split"][ph]["median"], 2) for ph in PHASES)
            A(f"| {label[it['scenario']]} | {it['mode']} | {it['phase_cpu_files']} | {secs} | {cells('gateway')} | "
              f"{cells('clamd')} | {cells('c-icap')} |")
        A("")
    A("## Per-file latency (client: STOR to the final reply)")
    A("")
    A("| scenario | mode | files | p50 ms | p90 ms | p99 ms | max ms | p50 ÷ off | files/s |")
    A("|---|---|---|---|---|---|---|---|---|")
    for it in R["summary"]:
        rs = [r for r in R["rows"] if r["scenario"] == it["scenario"] and r["mode"] == it["mode"]]
        fps = median([r["files"] / r["span_s"] for r in rs])
        A(f"| {label[it['scenario']]} | {it['mode']} | {it['files']} | {ms(it['client_s_p50'])} | "
          f"{ms(it['client_s_p90'])} | {ms(it['client_s_p99'])} | {ms(it['client_s_max'])} | "
          f"{fmt(it['p50_latency_ratio_to_off'])}× | {fps:.1f} |")
    A("")
    L.extend(reading_section(R["notes"]))
    A("## Every run")
    A("")
    A("| scenario | mode | run | files | MB | span s | MB/s | gateway CPU s | clamd CPU s | c-icap CPU s | "
      "vsftpd CPU s | spool gauge MiB: before / peak (samples) / after | loadavg after |")
    A("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in R["rows"]:
        c = r["cpu_s"]
        A(f"| {r['scenario']} | {r['mode']} | {r['rep']} | {r['files']} | {r['bytes'] / MB:.1f} | {r['span_s']:.2f} | "
          f"{r['MBps']:.1f} | {c['gateway']:.2f} | {c['clamd']:.2f} | {c['c-icap']:.2f} | {c['vsftpd']:.2f} | "
          f"{r['spool_gauge_before'] / MIB:.2f} / {r['spool_peak_bytes'] / MIB:.2f} ({r['spool_samples']}) / "
          f"{r['spool_gauge_after_idle'] / MIB:.2f} | {r['loadavg'].split()[0]} |")
    A("")
    A("## Metrics deltas per run (histogram buckets in the JSON)")
    A("")
    for r in R["rows"]:
        d = {k: v for k, v in r["metrics"].items() if "_bucket" not in k}
        A(f"- {r['scenario']} {r['mode']} #{r['rep']}: `{d}`")
    A("")
    names = (r"(single|concurrent|small)-(off|clamd|icap)-\d+-(\d+|N)\.bin", r"\1-MODE-RUN-N.bin")
    L.extend(commands_section(unique_commands(R["commands"], (names,))))
    L.extend(machine_section(M, binary=f"{M['build_type']}, binary mtime {M['ftpsgate_mtime']}, ",
                             after=f" {M['clamd']}, {M['c_icap']} (virus_scan {M['virus_scan']}), {M['curl']}, "
                                   f"Python {M['python']}."))
    A("")
    A(f"Raw numbers (every upload's client time and `transfer` record figures, CPU, metrics, the run log): "
      f"`{path_md.with_suffix('.json').name}`.")
    path_md.write_text("\n".join(L) + "\n")


def notes(R: dict) -> list[str]:
    out = busy_note(R["machine"], "; every figure shares the cores with it.")
    by = {(it["scenario"], it["mode"]): it for it in R["summary"]}
    for sc in SCENARIOS:
        parts = []
        for mode in ("clamd", "icap"):
            it = by.get((sc, mode))
            if not it:
                continue
            s = it["split"]
            top = max(PHASES, key=lambda ph: s[ph]["share"] or 0)
            parts.append(f"{mode} {fmt(it['ratio_to_off'])}× off, the most time in {top.split('_')[0]} "
                         f"({pct(s[top]['share'])})")
        if parts:
            out.append(f"{sc}: " + "; ".join(parts) + ".")
    off = by.get(("single", "off"))
    for mode in ("clamd", "icap"):
        it = by.get(("single", mode))
        pc = it and it.get("phase_cpu_s_median")
        if not (pc and off):
            continue
        sp = it["split"]
        spool_s, scan_s = sp["spool_seconds"]["median"], sp["scan_seconds"]["median"]
        scan_cpu = pc["scan_seconds"]["clamd"] + (pc["scan_seconds"]["c-icap"] if mode == "icap" else 0)
        c = it["cpu_s_per_GB"]
        gw_spool = pc["spool_seconds"]["gateway"]
        faster = "faster" if sp["spool_MBps_median"] > off["MBps_median"] else "slower"
        out.append(
            f"single, {mode}: in the scan phase (median {scan_s:.2f} s) the scanner"
            + ("s" if mode == "icap" else "") + f" used {scan_cpu:.2f} CPU-s ({scan_cpu / scan_s * 100:.0f}% of a "
            f"core; clamd {pc['scan_seconds']['clamd']:.2f}"
            + (f", c-icap {pc['scan_seconds']['c-icap']:.2f}" if mode == "icap" else "") +
            f") and the gateway {pc['scan_seconds']['gateway']:.2f}. In the spool phase (median {spool_s:.2f} s, "
            f"{sp['spool_MBps_median']:.0f} MB/s, {faster} than off's relay of the same upload at "
            f"{off['MBps_median']:.0f} MB/s) the gateway used {gw_spool:.2f} CPU-s ({gw_spool / spool_s * 100:.0f}% of "
            f"a core: TLS, then memory up to {R['params']['memory_threshold']} and the spool file). Gateway CPU per "
            f"GB: {c['gateway']:.2f} against off's {off['cpu_s_per_GB']['gateway']:.2f}; scanners per GB: clamd "
            f"{c['clamd']:.1f}" + (f", c-icap {c['c-icap']:.1f}" if mode == "icap" else "") + ".")
    soff = by.get(("small", "off"))
    for mode in ("clamd", "icap"):
        it = by.get(("small", mode))
        if not (it and soff):
            continue
        sp = it["split"]
        out.append(f"small, {mode}: per file (p50) {it['client_s_p50'] * 1000:.1f} ms against off's "
                   f"{soff['client_s_p50'] * 1000:.1f} ms at the client; the record's `seconds` median "
                   f"{it['record_seconds_p50'] * 1000:.1f} ms = spool {sp['spool_seconds']['median'] * 1000:.1f} "
                   "+ scan "
                   f"{sp['scan_seconds']['median'] * 1000:.1f} + forward {sp['forward_seconds']['median'] * 1000:.1f} "
                   f"ms (medians; off's `seconds` median {soff['record_seconds_p50'] * 1000:.1f} ms).")
    pairs = [(sc, by[(sc, "icap")]["cpu_s_per_GB"]["clamd"], by[(sc, "clamd")]["cpu_s_per_GB"]["clamd"])
             for sc in SCENARIOS if (sc, "icap") in by and (sc, "clamd") in by]
    if pairs:
        line = ("clamd's CPU per GB behind c-icap vs with INSTREAM: "
                + "; ".join(f"{sc} {i:.1f} vs {c:.1f}" for sc, i, c in pairs) + ".")
        if all(i < c for _, i, c in pairs):
            line += (" Lower behind c-icap every time: c-icap has clamd scan its temporary file by path (zSCAN), "
                     "while INSTREAM makes clamd receive the stream (and write it to its own temporary file) first.")
        else:
            line += " Neither is lower in every scenario here."
        out.append(line)
    hist = [f"{it['scenario']} {it['mode']} {fmt(it['scan_histogram_mean_s'], 3)} s over "
            f"{it['scan_histogram_count']:.0f} (records' median {fmt(it['split']['scan_seconds']['median'], 3)} s)"
            for it in R["summary"] if it["mode"] != "off" and it.get("scan_histogram_count")]
    if hist:
        out.append("`ftpsgate_scan_duration_seconds` mean (sum/count delta) per scenario: " + "; ".join(hist) + ".")
    stale = [r for r in R["rows"] if r["spool_gauge_after_idle"] > 0]
    if stale:
        worst = max(stale, key=lambda r: r["spool_gauge_after_idle"])
        out.append(f"`ftpsgate_spool_bytes` did not return to 0 when idle: after {len(stale)} of "
                   f"{sum(1 for r in R['rows'] if r['mode'] != 'off')} inspected runs, with every upload answered, "
                   f"it still read up to {worst['spool_gauge_after_idle'] / MIB:.2f} MiB ({worst['scenario']} "
                   f"{worst['mode']} #{worst['rep']}), and the next run started from that value. The gateway sets "
                   "it at the end of an inspected upload (TransferCoordinator::end_inspected) right after handing "
                   "the upload, which owns the spool, to deferred deletion, so the value still counts that spool "
                   "until the next upload sets it again.")
    if R.get("binary_changed"):
        out.append("The gateway binary changed during the run: rows come from different binaries.")
    return out


UPLOAD_COLUMNS = ("remote", "bytes", "client_s", "start", "end", "seconds", "spool_seconds", "scan_seconds",
                  "forward_seconds")


def compact_uploads(R: dict) -> None:
    """Each row's uploads as {columns, values} for the JSON (client figures, then the `transfer` record's;
    each was sha256-checked and, inspected, clean); a single upload's phase CPU stays as phase_cpu_s."""
    for r in R["rows"]:
        values = []
        for u in r["uploads"]:
            rec = u["record"]
            values.append([u["remote"], u["bytes"], round(u["client_s"], 6), round(u["start"], 4),
                           round(u["end"], 4), *(None if rec.get(k) is None else round(rec[k], 6)
                                                 for k in UPLOAD_COLUMNS[5:])])
        phase = [u["phase_cpu_s"] for u in r["uploads"] if u.get("phase_cpu_s")]
        if phase:
            r["phase_cpu_s"] = phase
        r["uploads"] = {"columns": list(UPLOAD_COLUMNS), "values": values}


def expand_uploads(R: dict) -> None:
    """The inverse of compact_uploads: each row's uploads as dicts again (for summarize)."""
    for r in R["rows"]:
        cols, values = r["uploads"]["columns"], r["uploads"]["values"]
        uploads = []
        for v in values:
            u = dict(zip(cols, v))
            uploads.append({k: u[k] for k in cols[:5]} | {"record": {"bytes": u["bytes"],
                                                                     **{k: u[k] for k in cols[5:]}}})
        for u, pc in zip(uploads, r.get("phase_cpu_s", [])):
            u["phase_cpu_s"] = pc
        r["uploads"] = uploads


def rerender(path: Path) -> int:
    """--report: the report (and the JSON's summary and notes) made again from a run's JSON, without
    measuring; for changes to the report's wording or summary."""
    R = json.loads(path.read_text())
    expand_uploads(R)
    summarize(R)
    R["notes"] = notes(R)
    compact_uploads(R)
    report(R, path.with_suffix(".md"))
    write_json(R, path, indent=None)
    print(path.with_suffix(".md"))
    return 0


def build_type(gw_bin: str) -> str:
    """CMAKE_BUILD_TYPE of the build directory that holds the binary (empty: CMakeLists.txt's default)."""
    cache = Path(gw_bin).parent / "CMakeCache.txt"
    if not cache.exists():
        return "unknown build type"
    m = re.search(r"^CMAKE_BUILD_TYPE:STRING=(.*)$", cache.read_text(errors="replace"), re.M)
    value = m.group(1).strip() if m else ""
    return f"CMAKE_BUILD_TYPE {value}" if value else "CMAKE_BUILD_TYPE unset: CMakeLists.txt's RelWithDebInfo"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=64, help="single-session upload, MiB (default 64)")
    ap.add_argument("--sessions", type=int, default=8, help="concurrent sessions (default 8)")
    ap.add_argument("--concurrent-mib", type=int, default=8, help="upload per concurrent session, MiB (default 8)")
    ap.add_argument("--small-count", type=int, default=200, help="small files per run, one session (default 200)")
    ap.add_argument("--small-kib", type=int, default=64, help="small file size, KiB (default 64)")
    ap.add_argument("--repeat", type=int, default=5, help="runs of each scenario per mode (default 5)")
    ap.add_argument("--only", default=",".join(SCENARIOS), help="scenarios, comma-separated (default all)")
    ap.add_argument("--icap-preview", type=int, default=4096, help="ICAP preview bytes, 0 = none (default 4096)")
    ap.add_argument("--memory-threshold", default="1MiB", help="inspection.memory_threshold (default 1MiB)")
    ap.add_argument("--max-spool", default="1GiB", help="inspection.max_spool_bytes (default 1GiB)")
    ap.add_argument("--spool-dir", default="", help="inspection.spool_dir (default WORK/spool, on tmpfs)")
    ap.add_argument("--spool-poll", type=float, default=0.05,
                    help="interval of the spool gauge and CPU samples, s (default 0.05)")
    ap.add_argument("--out-dir", default=str(HERE / "results"))
    ap.add_argument("--report", metavar="RESULT.json", help="make RESULT.md again from RESULT.json, no measuring")
    args = ap.parse_args()
    if args.report:
        return rerender(Path(args.report))
    only = [s for s in args.only.split(",") if s]
    if any(s not in SCENARIOS for s in only) or args.repeat < 1:
        ap.error(f"--only takes {', '.join(SCENARIOS)}; --repeat at least 1")
    if not require_root():
        return 1

    stamp, work, R = start_run(WORK_ROOT, "inspection.py", vars(args).copy(), RUN)
    R["problems"] = []
    gw_bin = str(harness.GATEWAY_BIN)
    bin0 = binary_id(gw_bin)
    M = R["machine"]
    M.update(binary_facts(gw_bin, REPO))
    M.update(python=sys.version.split()[0], build_type=build_type(gw_bin),
             clamd=command_output(["/usr/sbin/clamd", "--version"]).strip(),
             c_icap=command_output(["/usr/bin/c-icap", "-VV"]).splitlines()[0].replace(" version:", ""),
             virus_scan=command_output(["dpkg-query", "-W", "-f=${Version}", "libc-icap-mod-virus-scan"]).strip())

    backend = harness.Vsftpd(work / "vsftpd", pasv_ports=50)
    certs = harness.make_certs(work / "certs")
    clamd = icap = None
    b = None
    try:
        backend.start()
        log(f"vsftpd pid {backend.proc.pid} on {backend.port}")
        clamd = Clamd(work / "clamd").start()
        log(f"clamd pid {clamd.pid} on {clamd.socket}")
        icap = CIcap(work / "cicap", clamd).start()
        log(f"c-icap pid {icap.pid} on {icap.url}")
        b = Bench(args, work, backend, certs, clamd, icap)
        M["spool_dir"] = str(b.spool)
        M["spool_fs"] = command_output(["stat", "-f", "-c", "%T", str(b.spool)]).strip()
        for mode in MODES:
            b.gateway(mode)
        for sc in only:
            for rep in range(1, args.repeat + 1):
                k = (rep - 1) % len(MODES)
                for mode in MODES[k:] + MODES[:k]:
                    b.run(mode, sc, rep)
                    time.sleep(0.3)
    finally:
        if b is not None:
            for mode, gw in b.gateways.items():
                R.setdefault("gateway_warnings", {})[mode] = [
                    r for r in gw.log_records() if r.get("level") in ("warn", "error")][:20]
                gw.stop()
                R.setdefault("gateway_exit", {})[mode] = gw.exit_code
                R.setdefault("gateway_logs", {})[mode] = str(gw.log_path)
            R["rows"] = b.rows
        for proc in (icap, clamd):
            if proc is not None:
                proc.close()
        backend.stop()
        for d in (work / "src", backend.root):
            shutil.rmtree(d, ignore_errors=True)
    M["loadavg_end"] = loadavg()
    R["binary_changed"] = binary_id(gw_bin) != bin0
    if R["binary_changed"]:
        R["problems"].append(f"{gw_bin} changed during the run (rebuilt): rerun")
    for mode, warns in R.get("gateway_warnings", {}).items():
        if warns:
            R["problems"].append(f"gateway {mode} logged {len(warns)} warn/error record(s), first: {warns[0]}")
    summarize(R)
    R["notes"] = notes(R)
    compact_uploads(R)
    # Thousands of small uploads: one compact line (indented it would be ~2 MB).
    write_results(R, RUN, args.out_dir, f"{stamp}-inspection.md", report, indent=None)
    for p in R["problems"]:
        print("PROBLEM: " + p, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
