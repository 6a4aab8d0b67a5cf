#!/usr/bin/env python3
"""fakeftpd.py — a tiny asyncio plaintext FTP server used as a *fast* backend.

Only for benchmarks: it lets the gateway be measured without a fork-per-session
backend in the way (vsftpd and ProFTPD fork a process per session, which caps the
session rate at a few dozen per second and makes 10,000 idle sessions cost
10,000+ processes).  It is NOT an FTP server: any USER/PASS logs in, there are no
files.

Commands: USER (331), PASS (230), NOOP (200), PWD (257 "/"), TYPE (200),
PBSZ/PROT (200), SYST (215), FEAT (211 no features), PASV (227) and EPSV (229) on an
ephemeral port of the listen address, LIST/NLST/MLSD (150, a two-line listing on the
data connection, 226), QUIT (221); anything else 502.

usage: fakeftpd.py [--host 127.0.0.1] --port PORT [--pidfile F] [--max-seconds S]
"""
import argparse
import asyncio
import os
import resource
import signal

LISTING = (b"-rw-r--r--    1 1000     1000         1024 Jan 01 00:00 a.bin\r\n"
           b"-rw-r--r--    1 1000     1000         2048 Jan 01 00:00 b.bin\r\n")


class Session:
    def __init__(self, host, reader, writer):
        self.host, self.r, self.w = host, reader, writer
        self.pasv_server = None
        self.data_q = None

    def reply(self, line):
        self.w.write(line.encode() + b"\r\n")

    async def open_pasv(self):
        await self.close_pasv()
        self.data_q = asyncio.Queue()
        q = self.data_q

        async def on_data(r, w):
            await q.put((r, w))
        self.pasv_server = await asyncio.start_server(on_data, self.host, 0, backlog=4)
        return self.pasv_server.sockets[0].getsockname()[1]

    async def close_pasv(self):
        if self.pasv_server is not None:
            self.pasv_server.close()
            self.pasv_server = None

    async def run(self):
        self.reply("220 fakeftpd ready")
        try:
            while True:
                line = await self.r.readline()
                if not line:
                    return
                parts = line.decode("latin-1").strip().split(" ", 1)
                cmd = parts[0].upper()
                if cmd == "USER":
                    self.reply("331 Please specify the password.")
                elif cmd == "PASS":
                    self.reply("230 Login successful.")
                elif cmd == "NOOP":
                    self.reply("200 NOOP ok.")
                elif cmd == "PWD":
                    self.reply('257 "/" is the current directory')
                elif cmd in ("TYPE", "PBSZ", "PROT", "MODE", "STRU", "OPTS"):
                    self.reply("200 OK.")
                elif cmd == "SYST":
                    self.reply("215 UNIX Type: L8")
                elif cmd == "FEAT":
                    self.reply("211 No features")
                elif cmd == "PASV":
                    port = await self.open_pasv()
                    h = self.host.replace(".", ",")
                    self.reply(f"227 Entering Passive Mode ({h},{port >> 8},{port & 255}).")
                elif cmd == "EPSV":
                    port = await self.open_pasv()
                    self.reply(f"229 Entering Extended Passive Mode (|||{port}|)")
                elif cmd in ("LIST", "NLST", "MLSD"):
                    if self.data_q is None:
                        self.reply("425 Use PORT or PASV first.")
                        continue
                    self.reply("150 Here comes the directory listing.")
                    await self.w.drain()
                    try:
                        dr, dw = await asyncio.wait_for(self.data_q.get(), 30)
                    except asyncio.TimeoutError:
                        self.reply("425 Failed to establish connection.")
                        await self.close_pasv()
                        self.data_q = None
                        continue
                    await self.close_pasv()
                    self.data_q = None
                    dw.write(LISTING)
                    try:
                        await dw.drain()
                    except ConnectionError:
                        pass
                    dw.close()
                    self.reply("226 Directory send OK.")
                elif cmd == "QUIT":
                    self.reply("221 Goodbye.")
                    await self.w.drain()
                    return
                else:
                    self.reply("502 Command not implemented.")
                await self.w.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            await self.close_pasv()
            self.w.close()


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pidfile")
    ap.add_argument("--max-seconds", type=float, default=3600,
                    help="exit by itself after this long (bounded runs)")
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    server = await asyncio.start_server(lambda r, w: Session(a.host, r, w).run(),
                                        a.host, a.port, backlog=4096)
    if a.pidfile:
        with open(a.pidfile, "w") as f:
            f.write(str(os.getpid()))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, stop.set)
    try:
        await asyncio.wait_for(stop.wait(), a.max_seconds)
    except asyncio.TimeoutError:
        pass
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
