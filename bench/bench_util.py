"""bench_util.py — helpers shared by the bench scripts (auth_latency.py, bandwidth.py).

Imported as `import bench_util` / `from bench_util import …`: a script run as `python3 bench/x.py`
has bench/ on sys.path. Nothing here starts a process that outlives the call.
"""
from __future__ import annotations

import datetime
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


# --------------------------------------------------------------------------- gateway

def metrics_text(port: int) -> str:
    """The gateway's /metrics page (Prometheus text format)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return r.read().decode("utf-8", "replace")


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


def reading_section(notes: list[str]) -> list[str]:
    """The report's "## Reading" section (one bullet a note), followed by an empty line."""
    return ["## Reading", "", *(f"- {n}" for n in notes), ""]


def commands_section(commands: list[str]) -> list[str]:
    """The report's "## Commands" section (a code block), followed by an empty line."""
    return ["## Commands", "", "```", *commands, "```", ""]


def machine_section(M: dict, binary: str = "", after: str = "") -> list[str]:
    """The report's "## Machine" section (M = R["machine"]): load, then nproc, kernel and versions;
    `binary` goes before the commit in the ftpsgate parenthesis, `after` at the end of that line."""
    return ["## Machine", "", load_line(M), "",
            f"nproc {M['nproc']}, kernel {M['kernel']}, {M['openssl']}, {M['vsftpd']}, ftpsgate "
            f"`{M['ftpsgate_bin']}` ({M['ftpsgate']}, {binary}checkout at commit {M['commit']}).{after}"]


def write_results(R: dict, run: RunLog, out_dir: str | Path, name: str,
                  report: Callable[[dict, Path], None]) -> Path:
    """Adds the run's commands and log to R, writes out_dir/name (the report, by `report`) and
    the same name with .json (all of R), and prints the report's path."""
    R["commands"] = run.commands
    R["log"] = run.lines
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md = out / name
    report(R, md)
    md.with_suffix(".json").write_text(json.dumps(R, indent=1, default=str) + "\n")
    print(md)
    return md
