#!/usr/bin/env python3
"""loadgen.py — FTP/FTPS load driver: one process, many concurrent sessions (asyncio).

TLS is done with ssl.SSLObject over memory BIOs on plain asyncio streams, so that the
data connection can resume the control connection's TLS session (asyncio's own TLS
transport cannot be given a session), as vsftpd's require_ssl_reuse, ProFTPD's
mod_tls and ftpsgate's session_reuse_required demand.

Modes (every mode prints one JSON object on stdout at the end):

  rate     --concurrency C --duration S: C workers run complete sessions back to back
           (connect, [AUTH TLS], USER, PASS, [PBSZ 0, PROT P], PASV, LIST, QUIT) until S
           seconds have passed; reports completed sessions/s, errors, session latency,
           and the driver's own CPU seconds (its headroom).
  idle     --sessions N: opens N logged-in sessions ([AUTH TLS], USER, PASS) with at most
           --connect-concurrency handshakes at a time, spread over --sources source
           addresses 127.0.0.1..; prints "READY {json}" on stdout, holds them until a
           line arrives on stdin (or --hold-max seconds), then QUITs them all.
  latency  --count N --warmup W --command NOOP|PWD: on one logged-in session, N timed
           round trips after W untimed ones; median / p90 / p99 in microseconds.

Common: --host 127.0.0.1 --port P [--tls] --user U --password P --timeout T
"""
import argparse
import asyncio
import json
import os
import re
import resource
import ssl
import statistics
import sys
import time


class FTPError(Exception):
    pass


class Conn:
    """A TCP connection that may be upgraded to TLS (client side)."""

    def __init__(self, reader, writer):
        self.r, self.w = reader, writer
        self.sslobj = None
        self.buf = bytearray()

    @classmethod
    async def open(cls, host, port, src=None):
        r, w = await asyncio.open_connection(host, port, local_addr=(src, 0) if src else None,
                                             limit=1 << 20)
        return cls(r, w)

    def _flush(self):
        data = self.outb.read()
        if data:
            self.w.write(data)

    async def _tls(self, fn, *args):
        while True:
            try:
                res = fn(*args)
                self._flush()
                return res
            except ssl.SSLWantReadError:
                self._flush()
                await self.w.drain()
                data = await self.r.read(1 << 17)
                if data:
                    self.inb.write(data)
                else:
                    self.inb.write_eof()

    async def starttls(self, ctx, session=None):
        self.inb, self.outb = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.sslobj = ctx.wrap_bio(self.inb, self.outb, server_side=False,
                                   server_hostname=None, session=session)
        await self._tls(self.sslobj.do_handshake)
        await self.w.drain()

    async def recv(self):
        """Some bytes, or b'' at end of stream (close_notify or a bare FIN)."""
        if self.sslobj is None:
            return await self.r.read(1 << 17)
        try:
            return await self._tls(self.sslobj.read, 1 << 17)
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            return b""

    async def send(self, data):
        if self.sslobj is None:
            self.w.write(data)
        else:
            await self._tls(self.sslobj.write, data)
        await self.w.drain()

    async def readline(self):
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[:i + 1])
                del self.buf[:i + 1]
                return line
            d = await self.recv()
            if not d:
                raise FTPError("connection closed by server")
            self.buf += d

    async def reply(self):
        line = await self.readline()
        code = line[:3]
        if line[3:4] == b"-":
            while True:
                more = await self.readline()
                if more[:3] == code and more[3:4] == b" ":
                    break
        return int(code), line.decode("latin-1").rstrip()

    async def cmd(self, text, *expect):
        await self.send(text.encode() + b"\r\n")
        code, line = await self.reply()
        if expect and code not in expect:
            raise FTPError(f"{text.split()[0]}: {line}")
        return code, line

    def close(self):
        try:
            self.w.close()
        except Exception:
            pass


def make_ctx():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def login(a, ctx, src=None):
    c = await Conn.open(a.host, a.port, src)
    try:
        code, line = await c.reply()
        if code != 220:
            raise FTPError(f"greeting: {line}")
        if a.tls:
            await c.cmd("AUTH TLS", 234)
            await c.starttls(ctx)
        code, _ = await c.cmd(f"USER {a.user}", 331, 230)
        if code == 331:
            await c.cmd(f"PASS {a.password}", 230)
        return c
    except BaseException:
        c.close()
        raise


PASV_RE = re.compile(rb"\((\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\)")


async def list_dir(a, ctx, c, src):
    if a.tls:
        await c.cmd("PBSZ 0", 200)
        await c.cmd("PROT P", 200)
    _, line = await c.cmd("PASV", 227)
    m = PASV_RE.search(line.encode())
    if not m:
        raise FTPError(f"PASV: {line}")
    port = int(m.group(5)) * 256 + int(m.group(6))
    d = await Conn.open(a.host, port, src)  # the address in the reply is ignored (loopback)
    try:
        await c.send(b"LIST\r\n")
        if a.tls:
            await d.starttls(ctx, session=c.sslobj.session)
        n = 0
        while True:
            chunk = await d.recv()
            if not chunk:
                break
            n += len(chunk)
    finally:
        d.close()
    code, line = await c.reply()
    if code == 150 or code == 125:
        code, line = await c.reply()
    if code != 226:
        raise FTPError(f"LIST: {line}")
    return n


def src_addr(a, i):
    return f"127.0.0.{1 + i % a.sources}" if a.sources > 1 else None


async def one_session(a, ctx, src, info):
    c = await login(a, ctx, src)
    try:
        if a.list:
            await list_dir(a, ctx, c, src)
        if a.tls and not info:
            info["tls_version"] = c.sslobj.version()
            info["cipher"] = c.sslobj.cipher()[0]
        await c.cmd("QUIT", 221)
    finally:
        c.close()


async def run_rate(a):
    ctx = make_ctx()
    info = {}
    done, errors, lat = 0, {}, []
    t0 = time.monotonic()
    deadline = t0 + a.duration
    ru0 = resource.getrusage(resource.RUSAGE_SELF)

    async def worker(wi):
        nonlocal done
        k = 0
        while time.monotonic() < deadline:
            s = time.monotonic()
            try:
                await asyncio.wait_for(one_session(a, ctx, src_addr(a, wi), info), a.timeout)
                e = time.monotonic()
                if e <= deadline:
                    done += 1
                    lat.append(e - s)
            except Exception as ex:  # noqa: BLE001 — counted and reported
                key = f"{type(ex).__name__}: {str(ex)[:80]}"
                errors[key] = errors.get(key, 0) + 1
                await asyncio.sleep(0.01)
            k += 1

    await asyncio.gather(*(worker(i) for i in range(a.concurrency)))
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    lat.sort()
    return {
        "mode": "rate", "port": a.port, "tls": a.tls, "concurrency": a.concurrency,
        "duration": a.duration, "sessions": done, "sessions_per_s": done / a.duration,
        "errors": sum(errors.values()), "error_kinds": errors,
        "latency_ms_median": 1000 * statistics.median(lat) if lat else None,
        "latency_ms_p99": 1000 * lat[int(0.99 * (len(lat) - 1))] if lat else None,
        "driver_cpu_s": (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime),
        "wall_s": time.monotonic() - t0, **info,
    }


async def run_idle(a):
    ctx = make_ctx()
    sem = asyncio.Semaphore(a.connect_concurrency)
    conns, errors = [], {}
    t0 = time.monotonic()

    async def opener(i):
        async with sem:
            try:
                c = await asyncio.wait_for(login(a, ctx, src_addr(a, i)), a.timeout)
                conns.append(c)
            except Exception as ex:  # noqa: BLE001
                key = f"{type(ex).__name__}: {str(ex)[:80]}"
                errors[key] = errors.get(key, 0) + 1

    await asyncio.gather(*(opener(i) for i in range(a.sessions)))
    ready = {"mode": "idle", "requested": a.sessions, "established": len(conns),
             "errors": sum(errors.values()), "error_kinds": errors,
             "setup_s": time.monotonic() - t0}
    print("READY " + json.dumps(ready), flush=True)
    loop = asyncio.get_running_loop()
    try:
        await asyncio.wait_for(loop.run_in_executor(None, sys.stdin.readline), a.hold_max)
    except asyncio.TimeoutError:
        ready["hold_timed_out"] = True
    # are they still alive? one NOOP on a sample, then QUIT all
    alive = 0
    sample = conns[:: max(1, len(conns) // 100)]
    for c in sample:
        try:
            await asyncio.wait_for(c.cmd("NOOP", 200), 10)
            alive += 1
        except Exception:  # noqa: BLE001
            pass
    ready["alive_sample"] = f"{alive}/{len(sample)}"

    async def quit(c):
        try:
            await asyncio.wait_for(c.cmd("QUIT"), 10)
        except Exception:  # noqa: BLE001
            pass
        c.close()
    qs = asyncio.Semaphore(256)

    async def q(c):
        async with qs:
            await quit(c)
    await asyncio.gather(*(q(c) for c in conns))
    return ready


async def run_latency(a):
    ctx = make_ctx()
    c = await asyncio.wait_for(login(a, ctx), a.timeout)
    try:
        line = f"{a.command}\r\n".encode()
        expect = {"NOOP": 200, "PWD": 257}.get(a.command.upper(), None)
        for _ in range(a.warmup):
            await c.send(line)
            await c.reply()
        samples = []
        for _ in range(a.count):
            t = time.perf_counter_ns()
            await c.send(line)
            code, text = await c.reply()
            samples.append((time.perf_counter_ns() - t) / 1000.0)
            if expect and code != expect:
                raise FTPError(f"{a.command}: {text}")
        await c.cmd("QUIT")
    finally:
        c.close()
    samples.sort()
    return {"mode": "latency", "port": a.port, "tls": a.tls, "command": a.command,
            "count": a.count, "us_median": statistics.median(samples),
            "us_p90": samples[int(0.90 * (len(samples) - 1))],
            "us_p99": samples[int(0.99 * (len(samples) - 1))],
            "us_min": samples[0], "us_max": samples[-1]}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["rate", "idle", "latency"])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--tls", action="store_true")
    ap.add_argument("--user", default="ftpuser")
    ap.add_argument("--password", default="ftppass")
    ap.add_argument("--timeout", type=float, default=30, help="per session / setup step")
    ap.add_argument("--sources", type=int, default=1, help="spread over 127.0.0.1..N")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--duration", type=float, default=15)
    ap.add_argument("--no-list", dest="list", action="store_false", help="rate: skip PASV+LIST")
    ap.add_argument("--sessions", type=int, default=1000)
    ap.add_argument("--connect-concurrency", type=int, default=64)
    ap.add_argument("--hold-max", type=float, default=300)
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--command", default="NOOP")
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    fn = {"rate": run_rate, "idle": run_idle, "latency": run_latency}[a.mode]
    res = asyncio.run(fn(a))
    print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
