"""bench_util.py — helpers shared by the bench scripts (bench.py, auth_latency.py, bandwidth.py,
inspection.py, agent.py).

Imported as `import bench_util` / `from bench_util import …`: a script run as `python3 bench/x.py`
has bench/ on sys.path. Nothing here starts a process that outlives the call.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Callable

CLK = os.sysconf("SC_CLK_TCK")
MB = 1_000_000
# One Prometheus text-format sample: name, {labels} (optional), value.
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)')


class RunLog:
    """What a run did, for its report: the log lines (each also printed to stderr with the time)
    and the commands it ran (with their password masked)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.commands: list[str] = []

    def log(self, msg: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {msg}"
        self.lines.append(line)
        print(line, file=sys.stderr, flush=True)

    def command(self, cmd: list[str], secret: str) -> None:
        self.commands.append(" ".join(cmd).replace(secret, "***"))


# --------------------------------------------------------------------------- machine and processes

def loadavg() -> str:
    return Path("/proc/loadavg").read_text().strip()


def cpu_busy(seconds: float = 2.0) -> float:
    """Share of all cores busy (not idle/iowait) over a short sample of /proc/stat: what the
    machine does now, unlike the load average, which lags by minutes."""
    def snap():
        f = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        return sum(f), f[3] + f[4]
    t0, i0 = snap()
    time.sleep(seconds)
    t1, i1 = snap()
    return 1 - (i1 - i0) / max(1, t1 - t0)


def proc_cpu_s(pid: int) -> float:
    """utime+stime of one process (all its threads), from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def proc_table() -> dict[int, tuple[int, int]]:
    """pid -> (ppid, utime+stime+cutime+cstime in ticks), for every process now."""
    t = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
        except OSError:
            continue
        rest = s[s.rindex(")") + 2:].split()
        # rest[0] = state (field 3); utime = field 14 -> rest[11]
        t[int(d)] = (int(rest[1]), sum(int(x) for x in rest[11:15]))
    return t


def tree(pid, table=None):
    """pid and its live descendants."""
    table = table or proc_table()
    kids = {}
    for p, (pp, _) in table.items():
        kids.setdefault(pp, []).append(p)
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        if p in table:
            out.append(p)
            todo.extend(kids.get(p, []))
    return out


def tree_cpu(pid):
    """CPU seconds of a process tree: live processes' own + reaped children's time.
    Each dead descendant is counted once, in the c-times of the process that reaped it."""
    table = proc_table()
    return sum(table[p][1] for p in tree(pid, table)) / CLK


def binary_id(path: str) -> tuple:
    """(mtime_ns, size) of a file: a binary rebuilt during a run shows as a change."""
    st = os.stat(path)
    return (st.st_mtime_ns, st.st_size)


def write_random_file(path: Path, nbytes: int) -> str:
    """path filled with nbytes of os.urandom (4 MiB at a time); its sha256 hex digest."""
    h = hashlib.sha256()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        left = nbytes
        while left:
            chunk = os.urandom(min(left, 4 << 20))
            f.write(chunk)
            h.update(chunk)
            left -= len(chunk)
    return h.hexdigest()


def machine_start() -> dict:
    """The first entries of a run's R["machine"]: load average, cores busy in a 2 s sample, nproc, kernel."""
    return {"loadavg_start": loadavg(), "cpu_busy_start": round(cpu_busy(), 3), "nproc": os.cpu_count(),
            "kernel": os.uname().release}


def command_output(cmd: list[str]) -> str:
    """stdout of a short command (10 s at most), whatever its exit status."""
    return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout


def ftpsgate_version(gw_bin: str) -> str:
    return command_output([gw_bin, "--version"]).strip().splitlines()[0]


def openssl_version() -> str:
    return command_output(["openssl", "version"]).strip()


def vsftpd_version() -> str:
    return "vsftpd " + (command_output(["dpkg-query", "-W", "-f=${Version}", "vsftpd"]).strip() or "?")


def git_commit(repo: Path) -> str:
    return command_output(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"]).strip() or "unknown"


def require_root() -> bool:
    """True as root; otherwise says why not on stderr (vsftpd needs its local account)."""
    if os.geteuid() != 0:
        print("run as root (vsftpd's local account)", file=sys.stderr)
        return False
    return True


def new_work_dir(root: Path) -> tuple[datetime.datetime, str, Path]:
    """(start time in UTC, its stamp for file names, root/stamp created)."""
    started = datetime.datetime.now(datetime.timezone.utc)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    work = root / stamp
    work.mkdir(parents=True, exist_ok=True)
    return started, stamp, work


def start_run(root: Path, script: str, params: dict, run: RunLog) -> tuple[str, Path, dict]:
    """A run's start: (stamp, work directory root/stamp, R) with R's started (UTC), params, rows, command
    (`python3 bench/SCRIPT` and the arguments given) and machine (machine_start()); logs the directory."""
    started, stamp, work = new_work_dir(root)
    R = {"started": started.strftime("%Y-%m-%d %H:%M:%S"), "params": params, "rows": [],
         "command": f"python3 bench/{script}" + "".join(" " + a for a in sys.argv[1:]),
         "machine": machine_start()}
    run.log(f"work directory {work}; loadavg {R['machine']['loadavg_start']}")
    return stamp, work, R


def binary_facts(gw_bin: str, repo: Path) -> dict:
    """R["machine"] entries: the gateway binary (path, mtime, --version), the checkout's commit, and the
    versions of OpenSSL, vsftpd and curl."""
    mtime = datetime.datetime.fromtimestamp(os.stat(gw_bin).st_mtime).strftime("%Y-%m-%d %H:%M:%S")
    return {"ftpsgate_bin": gw_bin, "ftpsgate_mtime": mtime, "ftpsgate": ftpsgate_version(gw_bin),
            "openssl": openssl_version(), "vsftpd": vsftpd_version(), "commit": git_commit(repo),
            "curl": command_output(["curl", "--version"]).splitlines()[0].split(" (")[0]}


# --------------------------------------------------------------------------- gateway

def metrics_text(port: int) -> str:
    """The gateway's /metrics page (Prometheus text format)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return r.read().decode("utf-8", "replace")


def scrape(port: int, wanted: tuple[str, ...]) -> dict:
    """The samples of the metric families named in `wanted` (a histogram's name covers its
    _bucket/_sum/_count): {"name{labels}": value}."""
    out: dict = {}
    for line in metrics_text(port).splitlines():
        m = SAMPLE.match(line)
        if m and m.group(1).removesuffix("_bucket").removesuffix("_sum").removesuffix("_count") in wanted:
            out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


def metrics_delta(before: dict, after: dict) -> dict:
    """after − before per sample (rounded to 3 places), the samples that changed."""
    keys = sorted(set(before) | set(after))
    d = {k: round(after.get(k, 0) - before.get(k, 0), 3) for k in keys}
    return {k: v for k, v in d.items() if v}


def wait_ready(port: int, proc, timeout: float = 20.0) -> None:
    """Until the gateway's /readyz answers 200; raises if the process exits or `timeout` s pass."""
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"gateway exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                if r.status == 200:
                    return
        except Exception:  # noqa: BLE001 — not ready yet
            pass
        time.sleep(0.2)
    raise RuntimeError(f"gateway not ready (/readyz on {port}) within {timeout} s")


def transfer_records(gw, since: int) -> list[dict]:
    """The gateway's `transfer` log records after the first `since` records (harness Gateway)."""
    return [r for r in gw.log_records()[since:] if r.get("event") == "transfer"]


def parse_ts(ts: str) -> float | None:
    try:
        return datetime.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
    except (ValueError, AttributeError):
        return None


def gw_row(rec: dict) -> dict:
    """The figures of one `transfer` record: MB/s = bytes / seconds; start/end (epoch s) from its ts."""
    end = parse_ts(rec.get("ts", ""))
    return {"bytes": rec["bytes"], "seconds": rec["seconds"], "MBps": rec["bytes"] / rec["seconds"] / MB,
            "throttled_seconds": rec.get("throttled_seconds"), "result": rec.get("result"),
            "user": rec.get("user"), "path": rec.get("path"), "command": rec.get("command"),
            "protection": rec.get("protection"),
            "end": end, "start": (end - rec["seconds"]) if end is not None else None, "record": rec}


# --------------------------------------------------------------------------- client

class Curl:
    """One curl transfer through a harness Gateway's explicit listener (FTPS: --ssl-reqd -k, PROT P,
    PASV via --disable-epsv) in the background; finish() waits and returns its figures."""

    def __init__(self, run: RunLog, gw, user: str, password: str, remote: str, local: Path, upload: bool,
                 max_time: float):
        self.remote, self.local, self.upload, self.user = remote, local, upload, user
        url = f"ftp://127.0.0.1:{gw.explicit_port}/{remote}"
        cmd = ["curl", "-sS", "--ssl-reqd", "-k", "--disable-epsv", "--connect-timeout", "10",
               "--max-time", str(int(max_time)), "-u", f"{user}:{password}", "-w", "%{json}"]
        cmd += ["-T", str(local), url] if upload else ["-o", str(local), url]
        run.command(cmd, password)
        self.max_time = max_time
        self.t_launch = time.time()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)

    def finish(self) -> dict:
        """Waits (max_time + 20 s at most; then kills it); raises unless curl succeeded. MBps = size /
        (time_total − time_pretransfer): from the command to the final reply."""
        try:
            out, err = self.proc.communicate(timeout=self.max_time + 20)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.proc.returncode != 0:
            raise RuntimeError(f"curl {'upload' if self.upload else 'download'} {self.remote} as {self.user} "
                               f"failed ({self.proc.returncode}): {err.strip()[-2000:]}")
        w = json.loads(out.strip().splitlines()[-1])
        size = int(w["size_upload"] if self.upload else w["size_download"])
        xfer_s = float(w["time_total"]) - float(w["time_pretransfer"])
        return {"user": self.user, "remote": self.remote, "bytes": size, "time_total": float(w["time_total"]),
                "time_pretransfer": float(w["time_pretransfer"]), "transfer_s": round(xfer_s, 4),
                "MBps": size / xfer_s / MB if xfer_s > 0 else None,
                "start": self.t_launch + float(w["time_pretransfer"]), "end": self.t_launch + float(w["time_total"]),
                "ssl_verify_result": w.get("ssl_verify_result"), "scheme": w.get("scheme")}


# --------------------------------------------------------------------------- results

def fmt(x, nd=2):
    return "—" if x is None else f"{x:.{nd}f}"


def load_line(M: dict) -> str:
    """The report's line on the machine's load at start and end (M = R["machine"])."""
    return (f"loadavg at start: {M['loadavg_start']}    at end: {M['loadavg_end']}    "
            f"(cores busy in a 2 s sample at start: {M['cpu_busy_start'] * 100:.0f}%)")


def busy_note(M: dict, consequence: str) -> list[str]:
    """A note for the reading when more than a quarter of the cores were busy at start (M = R["machine"]);
    `consequence` follows the share ("; …" or ": …")."""
    busy = M["cpu_busy_start"]
    if busy > 0.25:
        return [f"NOTE: the machine was busy with other work at start ({busy * 100:.0f}% of the cores in a 2 s "
                f"sample){consequence}"]
    return []


def report_head(R: dict, title: str, shared_by: str) -> list[str]:
    """A report's title and its "Run …" line (R's started and command; the cores shared by `shared_by`),
    each followed by an empty line."""
    return [f"# {title}", "", f"Run {R['started']} UTC, `{R['command']}`; everything on 127.0.0.1 on one machine "
            f"({R['machine']['nproc']} cores shared by {shared_by}).", ""]


def problems_section(title: str, problems: list[str]) -> list[str]:
    """A "## title" section listing the problems in bold, followed by an empty line."""
    return [f"## {title}", "", *(f"- **{p}**" for p in problems), ""]


def reading_section(notes: list[str]) -> list[str]:
    """The report's "## Reading" section (one bullet a note), followed by an empty line."""
    return ["## Reading", "", *(f"- {n}" for n in notes), ""]


def unique_commands(commands: list[str], subs: tuple[tuple[str, str], ...] = ()) -> list[str]:
    """The commands with 127.0.0.1 ports, /dev/shm work paths and the (regex, replacement) `subs` masked,
    each once, in order of first use."""
    seen: list[str] = []
    for c in commands:
        for pattern, repl in ((r"127\.0\.0\.1:\d+", "127.0.0.1:PORT"), (r"/dev/shm/\S+/", "WORK/"), *subs):
            c = re.sub(pattern, repl, c)
        if c not in seen:
            seen.append(c)
    return seen


def commands_section(commands: list[str]) -> list[str]:
    """The report's "## Commands" section (a code block), followed by an empty line."""
    return ["## Commands", "", "```", *commands, "```", ""]


def machine_section(M: dict, binary: str = "", after: str = "") -> list[str]:
    """The report's "## Machine" section (M = R["machine"]): load, then nproc, kernel and versions;
    `binary` goes before the commit in the ftpsgate parenthesis, `after` at the end of that line."""
    return ["## Machine", "", load_line(M), "",
            f"nproc {M['nproc']}, kernel {M['kernel']}, {M['openssl']}, {M['vsftpd']}, ftpsgate "
            f"`{M['ftpsgate_bin']}` ({M['ftpsgate']}, {binary}checkout at commit {M['commit']}).{after}"]


def write_json(R: dict, path: Path, indent: int | None = 1) -> None:
    """R as JSON (`indent` None: one compact line); what JSON cannot hold as str()."""
    separators = None if indent is not None else (",", ":")
    path.write_text(json.dumps(R, indent=indent, separators=separators, default=str) + "\n")


def write_results(R: dict, run: RunLog, out_dir: str | Path, name: str,
                  report: Callable[[dict, Path], None], indent: int | None = 1) -> Path:
    """Adds the run's commands and log to R, writes out_dir/name (the report, by `report`) and
    the same name with .json (all of R; `indent` None: one compact line), and prints the report's path."""
    R["commands"] = run.commands
    R["log"] = run.lines
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md = out / name
    report(R, md)
    write_json(R, md.with_suffix(".json"), indent)
    print(md)
    return md
