#!/usr/bin/env python3
"""Soak test for mixreplace: mixed traffic on loopback for a given number of minutes.

Starts the release binary on 127.0.0.1 (a free port), then runs at once:

- streamers: thousands of concurrent demo clients (default 2000). Each watches the demo,
  checks its framing and X-Timestamp spacing and how late each part arrives, and then
  reconnects; a quarter leave early instead, at a random moment, half of them with a
  reset;
- slow readers of a fast stream, reading a few bytes to a few KiB a second (the server
  must keep them to one part in flight, and close those that stall past --send-timeout);
- trickled heads, a byte at a time: most too slow (408 at the head timeout), some fast
  enough to finish their head (200);
- bad and odd requests: random bytes, NUL, bare CR, a head over 8 KiB, no Host, HTTP/2,
  unknown paths, POST, a huge Content-Length body, pipelined requests; each kind has
  one expected status;
- resets: mid-head, mid-part of the fast stream, mid-demo.

Once a second it samples the server's RSS (VmRSS) and open file descriptors from /proc,
its CPU time, and its /stats, into samples.csv. At the end it sends SIGTERM with the
clients still connected (they must see the closing delimiter), waits for the exit, and
prints a summary: start/max/end RSS and descriptors, the first and last minute's
averages, requests by kind and outcome, how late demo parts were, and the last /stats.

Bounded: the traffic stops after MINUTES, the shutdown takes at most ~20 s more, and a
watchdog kills everything MINUTES + 5 minutes after the start whatever happens. Loopback
only: the server listens on 127.0.0.1 and every client connects there.

Standard library only. Usage: scripts/soak.py MINUTES [options]; see --help and
docs/soak.md.
"""

import argparse
import asyncio
import collections
import csv
import json
import os
import random
import resource
import signal
import socket
import struct
import subprocess
import sys
import time

HOST = "127.0.0.1"  # loopback only, never anything else
DEMO_DELAYS_US = [500_000] * 6 + [1_000_000] + [300_000] * 8
DEMO_PARTS = len(DEMO_DELAYS_US)
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Bad(Exception):
    """The server sent something it should not have."""


class Soak:
    def __init__(self, args):
        self.args = args
        self.port = None
        self.server = None
        self.stop = False
        self.counts = collections.Counter()
        # Lateness of demo parts, in whole milliseconds (arrival minus X-Timestamp).
        self.late_ms = collections.Counter()
        self.late_ms_recent = collections.Counter()
        # How late this client's own event loop woke from 100 ms sleeps, in milliseconds.
        self.loop_lag_ms = collections.Counter()
        self.loop_lag_recent_max = 0
        self.lag_window = collections.deque(maxlen=200)  # (when, lag ms) of the last 100 ms sleeps
        self.events = None  # every unexpected event, as it happens (events.log)
        self.problems = []  # the first few unexpected things, for the summary
        self.samples = []
        self.started = time.monotonic()
        self.sem = None  # bounds the short-lived connections in flight

    # ---- bookkeeping -------------------------------------------------------------------

    def count(self, key, n=1):
        self.counts[key] += n

    def problem(self, key, detail):
        self.count(key)
        self.count("unexpected")
        line = f"{time.monotonic() - self.started:8.1f}s {key}: {detail}"
        if len(self.problems) < 50:
            self.problems.append(line)
        if self.events is not None:
            self.events.write(line + "\n")
            self.events.flush()

    def recent_loop_lag(self):
        """The longest this client's loop lagged in the last 10 s, in seconds."""
        cutoff = time.monotonic() - 10
        return max((lag for at, lag in self.lag_window if at >= cutoff), default=0) / 1000

    # ---- connections -------------------------------------------------------------------

    async def connect(self, rcvbuf=None, limit=2**16):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        try:
            await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, (HOST, self.port)), 10)
        except BaseException:
            sock.close()
            raise
        return await asyncio.open_connection(sock=sock, limit=limit)

    @staticmethod
    def reset(writer):
        """Closes with a reset (SO_LINGER 0) instead of a FIN."""
        sock = writer.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        writer.transport.abort()

    @staticmethod
    def close(writer):
        writer.transport.close()

    @staticmethod
    async def read_head(reader):
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith((b"HTTP/1.1 ", b"HTTP/1.0 ")):
            raise Bad(f"not a status line: {head[:40]!r}")
        status = int(head[9:12])
        headers = {}
        for line in head.split(b"\r\n")[1:]:
            if b":" in line:
                name, value = line.split(b":", 1)
                headers[name.strip().lower().decode()] = value.strip().decode("latin-1")
        return status, headers

    async def read_answer(self, reader):
        """A short answer: head, body by Content-Length, then EOF (nothing more)."""
        status, headers = await self.read_head(reader)
        length = int(headers.get("content-length", "0")) if status != 204 else 0
        body = await reader.readexactly(length)
        rest = await asyncio.wait_for(reader.read(1024), 10)
        if rest:
            raise Bad(f"{len(rest)} bytes after the {status} answer: {rest[:40]!r}")
        return status, headers, body

    # ---- streamers ---------------------------------------------------------------------

    async def streamer(self, i):
        await asyncio.sleep(6.4 * i / max(1, self.args.streamers))  # spread the starts
        while not self.stop:
            leave = random.uniform(0.2, 6.3) if random.random() < 0.25 else None
            try:
                await asyncio.wait_for(self.demo_once(leave), 30)
            except asyncio.TimeoutError:
                self.problem("demo:timeout", "no progress for 30 s")
            except (ConnectionError, OSError, asyncio.IncompleteReadError) as e:
                if self.stop:
                    self.count("demo:cut_at_shutdown")
                else:
                    self.problem("demo:connection_error", repr(e))
            except (Bad, ValueError, asyncio.LimitOverrunError) as e:
                self.problem("demo:bad_stream", str(e))
            await asyncio.sleep(random.uniform(0, 0.5))

    async def demo_once(self, leave_after):
        reader, writer = await self.connect()
        began = time.monotonic()
        rst = random.random() < 0.5
        try:
            writer.write(b"GET / HTTP/1.1\r\nHost: soak\r\n\r\n")
            status, headers = await self.read_head(reader)
            if status == 503:
                self.problem("demo:503", "refused at the client cap")
                return
            if status != 200:
                raise Bad(f"demo answered {status}")
            ctype = headers.get("content-type", "")
            prefix = "multipart/x-mixed-replace; boundary="
            if not ctype.startswith(prefix):
                raise Bad(f"content type {ctype!r}")
            dash = b"--" + ctype[len(prefix):].encode()
            if await reader.readuntil(b"\r\n") != dash + b"\r\n":
                raise Bad("no opening delimiter")
            stamps = []
            while True:
                fields = {}
                line = await reader.readuntil(b"\r\n")
                for _ in range(32):
                    if line == b"\r\n":
                        break
                    name, _, value = line.partition(b":")
                    fields[name.strip().lower()] = value.strip()
                    line = await reader.readuntil(b"\r\n")
                else:
                    raise Bad("too many part headers")
                length = int(fields[b"content-length"])
                if length == 0 and b"x-timestamp" not in fields:
                    # The empty final part of a graceful stop (typed, unstamped), then
                    # the closing delimiter and nothing more.
                    if await reader.readexactly(len(dash) + 6) != b"\r\n" + dash + b"--\r\n":
                        raise Bad("bad closing delimiter after a stop")
                    if await asyncio.wait_for(reader.read(1), 10):
                        raise Bad("bytes after the closing delimiter")
                    self.count("demo:stopped_with_closing_delimiter")
                    return
                stamp = fields[b"x-timestamp"].decode()
                secs, micros = stamp.split(".")
                stamp_us = int(secs) * 1_000_000 + int(micros)
                await reader.readexactly(length)
                tail = await reader.readexactly(len(dash) + 4)
                arrived_us = time.time() * 1e6
                late = max(0, int((arrived_us - stamp_us) / 1000))
                self.late_ms[late] += 1
                self.late_ms_recent[late] += 1
                if stamps and stamp_us - stamps[-1] != DEMO_DELAYS_US[len(stamps) - 1]:
                    raise Bad(f"X-Timestamp spacing {stamp_us - stamps[-1]} us before part {len(stamps)}")
                stamps.append(stamp_us)
                self.count("demo:parts")
                if tail == b"\r\n" + dash + b"--":
                    if await reader.readexactly(2) != b"\r\n":
                        raise Bad("bad closing delimiter")
                    if len(stamps) != DEMO_PARTS:
                        raise Bad(f"{len(stamps)} parts")
                    if await asyncio.wait_for(reader.read(1), 10):
                        raise Bad("bytes after the closing delimiter")
                    self.count("demo:complete")
                    return
                if tail != b"\r\n" + dash + b"\r\n":
                    raise Bad(f"bad delimiter {tail[-6:]!r}")
                if len(stamps) >= DEMO_PARTS:
                    raise Bad("more parts than the demo has")
                if leave_after is not None and time.monotonic() - began >= leave_after:
                    self.count("demo:left_early_reset" if rst else "demo:left_early")
                    if rst:
                        self.reset(writer)
                    return
        finally:
            self.close(writer)

    # ---- slow readers ------------------------------------------------------------------

    async def slow_reader(self, i):
        await asyncio.sleep(random.uniform(0, 5))
        while not self.stop:
            rate = random.choice([16, 256, 4096, 32768])  # bytes a second
            lifetime = random.uniform(10, 60)
            try:
                reader, writer = await self.connect(rcvbuf=16384, limit=16384)
            except (ConnectionError, OSError, asyncio.TimeoutError) as e:
                if not self.stop:
                    self.problem("slow:connect_error", repr(e))
                await asyncio.sleep(1)
                continue
            got = 0
            try:
                writer.write(b"GET /fast HTTP/1.1\r\nHost: soak\r\n\r\n")
                end = time.monotonic() + lifetime
                while not self.stop and time.monotonic() < end:
                    data = await asyncio.wait_for(reader.read(max(1, rate // 4)), 20)
                    if not data:
                        self.count("slow:closed_by_server")
                        break
                    got += len(data)
                    await asyncio.sleep(0.25)
                else:
                    self.count("slow:left")
            except (ConnectionError, OSError, asyncio.TimeoutError):
                self.count("slow:closed_by_server")
            finally:
                self.close(writer)
            self.count("slow:bytes", got)

    # ---- trickled heads ----------------------------------------------------------------

    async def trickler(self, i):
        await asyncio.sleep(random.uniform(0, 5))
        while not self.stop:
            fast = random.random() < 0.2
            try:
                await asyncio.wait_for(self.trickle_once(fast), 40)
            except asyncio.TimeoutError:
                self.problem("trickle:timeout", "no answer within 40 s")
            except (ConnectionError, OSError, asyncio.IncompleteReadError) as e:
                if not self.stop:
                    self.problem("trickle:connection_error", repr(e))
            except Bad as e:
                self.problem("trickle:bad", str(e))
            await asyncio.sleep(random.uniform(0, 1))

    async def trickle_once(self, fast):
        # Timed from before the connect: the server's head timeout starts at the accept,
        # which comes after it, so the 408 can never come sooner than 5 s after this.
        began = time.monotonic()
        reader, writer = await self.connect()
        head = b"GET / HTTP/1.1\r\nHost: soak\r\nX-Trickle: " + b"t" * 20 + b"\r\n\r\n"
        interval = 0.01 if fast else 1.0
        answer = asyncio.ensure_future(self.read_head(reader))
        try:
            for k in range(len(head)):
                if answer.done() or self.stop:
                    break
                if fast and time.monotonic() - began > 2:
                    # Behind schedule (this client's loop is busy): the rest at once, so
                    # a fast trickle stays well inside the head timeout.
                    writer.write(head[k:])
                    break
                writer.write(head[k:k + 1])
                await writer.drain()
                await asyncio.wait({answer}, timeout=interval)
            status, _ = await asyncio.wait_for(answer, 30)
            took = time.monotonic() - began
            if fast and status == 200:
                self.count("trickle:completed_head_200")
            elif not fast and status == 408:
                self.count("trickle:408")
                # The head timeout is 5 s: the answer must come then, not much later;
                # later by no more than this client's own loop lagged is the client's.
                if took < 5.0:
                    self.problem("trickle:408_early", f"after {took:.2f} s")
                elif took > 7.0 + self.recent_loop_lag():
                    self.problem("trickle:408_late", f"after {took:.2f} s")
                elif took > 7.0:
                    self.count("trickle:408_late_while_this_client_lagged")
            else:
                raise Bad(f"{'fast' if fast else 'slow'} trickle answered {status} after {took:.2f} s")
        finally:
            answer.cancel()
            self.close(writer)

    # ---- bad and odd requests ----------------------------------------------------------

    BAD_KINDS = {
        "random_bytes": 400,
        "nul_in_request_line": 400,
        "bare_cr": 400,
        "head_over_8k": 431,
        "no_host": 400,
        "http2_preface": 400,
        "not_found": 404,
        "post": 405,
        "huge_content_length": 200,
        "pipelined": 200,
        "metrics": 200,
    }

    def bad_request(self, kind):
        if kind == "random_bytes":
            return os.urandom(random.randint(64, 4096))
        return {
            "nul_in_request_line": b"GET /\0 HTTP/1.1\r\nHost: soak\r\n\r\n",
            "bare_cr": b"GET / HTTP/1.1\rHost: soak\r\n\r\n",
            "head_over_8k": b"GET / HTTP/1.1\r\nHost: soak\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n",
            "no_host": b"GET / HTTP/1.1\r\n\r\n",
            "http2_preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            "not_found": b"GET /nowhere HTTP/1.1\r\nHost: soak\r\n\r\n",
            "post": b"POST / HTTP/1.1\r\nHost: soak\r\nContent-Length: 5\r\n\r\nhello",
            "huge_content_length": b"GET /stats HTTP/1.1\r\nHost: soak\r\nContent-Length: 1000000000000\r\n\r\n"
            + b"x" * 262144,
            "pipelined": b"GET /stats HTTP/1.1\r\nHost: soak\r\n\r\nGET /quit HTTP/1.1\r\nHost: soak\r\n\r\n"
            b"GET /nowhere HTTP/1.1\r\nHost: soak\r\n\r\n",
            "metrics": b"GET /metrics HTTP/1.1\r\nHost: soak\r\n\r\n",
        }[kind]

    async def bad_one(self, kind):
        async with self.sem:
            try:
                reader, writer = await self.connect()
            except (ConnectionError, OSError, asyncio.TimeoutError) as e:
                if not self.stop:
                    self.problem("bad:connect_error", repr(e))
                return
            try:
                writer.write(self.bad_request(kind))
                status, _, _ = await asyncio.wait_for(self.read_answer(reader), 15)
                if status == self.BAD_KINDS[kind]:
                    self.count(f"bad:{kind}:{status}")
                else:
                    self.problem(f"bad:{kind}:{status}", f"expected {self.BAD_KINDS[kind]}")
            except (ConnectionError, OSError, asyncio.IncompleteReadError, asyncio.TimeoutError) as e:
                if not self.stop:
                    self.problem(f"bad:{kind}:connection_error", repr(e))
            except Bad as e:
                self.problem(f"bad:{kind}:bad_answer", str(e))
            finally:
                self.close(writer)

    async def resetter_one(self, variant):
        async with self.sem:
            try:
                reader, writer = await self.connect()
            except (ConnectionError, OSError, asyncio.TimeoutError) as e:
                if not self.stop:
                    self.problem("reset:connect_error", repr(e))
                return
            try:
                if variant == "mid_head":
                    writer.write(b"GET /fast HTTP/1.1\r\nHo")
                    await asyncio.sleep(random.uniform(0, 0.2))
                elif variant == "mid_part":
                    writer.write(b"GET /fast HTTP/1.1\r\nHost: soak\r\n\r\n")
                    want = random.randint(1, 200_000)
                    got = 0
                    while got < want:
                        data = await asyncio.wait_for(reader.read(want - got), 10)
                        if not data:
                            break
                        got += len(data)
                else:  # mid_demo
                    writer.write(b"GET / HTTP/1.1\r\nHost: soak\r\n\r\n")
                    await asyncio.wait_for(reader.read(random.randint(1, 4000)), 10)
                    await asyncio.sleep(random.uniform(0, 2))
                self.count(f"reset:{variant}")
            except (ConnectionError, OSError, asyncio.TimeoutError) as e:
                if not self.stop:
                    self.problem(f"reset:{variant}:error", repr(e))
            finally:
                self.reset(writer)

    async def spawner(self, rate, make):
        """Starts `make()` tasks at about `rate` a second until the stop."""
        tasks = set()
        while not self.stop:
            await asyncio.sleep(random.expovariate(rate))
            if self.stop:
                break
            task = asyncio.ensure_future(make())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks, timeout=10)
        for task in tasks:
            task.cancel()

    # ---- sampling ----------------------------------------------------------------------

    async def lag_meter(self):
        """How late this client's own event loop wakes up: lateness of demo parts below
        this is the client's, not the server's."""
        while not self.stop:
            before = time.monotonic()
            await asyncio.sleep(0.1)
            lag = max(0, int((time.monotonic() - before - 0.1) * 1000))
            self.loop_lag_ms[lag] += 1
            self.loop_lag_recent_max = max(self.loop_lag_recent_max, lag)
            self.lag_window.append((time.monotonic(), lag))

    def proc(self):
        pid = self.server.pid
        rss = 0
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return rss, fds, cpu

    async def stats(self):
        reader, writer = await self.connect()
        try:
            writer.write(b"GET /stats HTTP/1.1\r\nHost: soak\r\n\r\n")
            status, _, body = await asyncio.wait_for(self.read_answer(reader), 5)
            if status != 200:
                raise Bad(f"/stats answered {status}")
            return json.loads(body)
        finally:
            self.close(writer)

    COLUMNS = [
        "t_s", "rss_kib", "fds", "cpu_s", "clients", "viewers", "accepted", "streams", "parts",
        "bytes", "r400", "r404", "r405", "r408", "r431", "r503", "closed_send_timeout",
        "closed_client_gone", "closed_error", "demo_complete", "demo_late_p99_ms",
    ]

    async def sampler(self, out):
        writer = csv.writer(out)
        writer.writerow(self.COLUMNS)
        next_at = time.monotonic()
        last_report = time.monotonic()
        while not self.stop:
            next_at += 1.0
            rss, fds, cpu = self.proc()
            try:
                s = await self.stats()
            except Exception as e:  # noqa: BLE001 - any failure to get /stats is reported
                self.problem("stats:error", repr(e))
                s = None
            late_p99 = percentile(self.late_ms_recent, 0.99)
            self.late_ms_recent.clear()
            row = {
                "t_s": round(time.monotonic() - self.started, 1),
                "rss_kib": rss,
                "fds": fds,
                "cpu_s": round(cpu, 2),
                "demo_complete": self.counts["demo:complete"],
                "demo_late_p99_ms": late_p99,
            }
            if s:
                answers, closed = s["answers"], s["closed"]
                row.update(
                    clients=s["clients"], viewers=sum(s["viewers"].values()), accepted=s["accepted"],
                    streams=s["streams"], parts=s["parts"], bytes=s["bytes"], r400=answers["400"],
                    r404=answers["404"], r405=answers["405"], r408=answers["408"], r431=answers["431"],
                    r503=answers["503"], closed_send_timeout=closed["send_timeout"],
                    closed_client_gone=closed["client_gone"], closed_error=closed["error"],
                )
                self.last_stats = s
            self.samples.append(row)
            writer.writerow([row.get(c, "") for c in self.COLUMNS])
            out.flush()
            if time.monotonic() - last_report >= self.args.report_every:
                last_report = time.monotonic()
                self.loop_lag_recent_max_shown, self.loop_lag_recent_max = self.loop_lag_recent_max, 0
                print(
                    f"[{row['t_s']:7.1f}s] rss {rss / 1024:.1f} MiB, fds {fds}, clients {row.get('clients')}, "
                    f"cpu {cpu:.1f} s, demos complete {row['demo_complete']}, "
                    f"late p99 {late_p99} ms (client loop lag max {self.loop_lag_recent_max_shown} ms), "
                    f"unexpected {self.counts['unexpected']}",
                    flush=True,
                )
            await asyncio.sleep(max(0, next_at - time.monotonic()))

    # ---- the run -----------------------------------------------------------------------

    def start_server(self, log):
        cmd = [
            self.args.binary, "--listen", f"{HOST}:0",
            "--stream", "/=demo",
            "--stream", "/fast=synthetic:parts=1000000,size=65536,interval=0",
            "--head-timeout", "5", "--send-timeout", "10",
        ]
        self.server = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL)
        line = self.server.stdout.readline().decode().strip()
        prefix = f"listening on http://{HOST}:"
        if not line.startswith(prefix):
            raise SystemExit(f"soak: unexpected first line from the server: {line!r}")
        self.port = int(line[len(prefix):].rstrip("/"))
        print(f"soak: server pid {self.server.pid} on {HOST}:{self.port}: {' '.join(cmd)}", flush=True)

    async def run(self, samples_out):
        a = self.args
        self.sem = asyncio.Semaphore(a.max_short)
        self.last_stats = None
        tasks = [asyncio.ensure_future(self.sampler(samples_out)), asyncio.ensure_future(self.lag_meter())]
        tasks += [asyncio.ensure_future(self.streamer(i)) for i in range(a.streamers)]
        tasks += [asyncio.ensure_future(self.slow_reader(i)) for i in range(a.slow)]
        tasks += [asyncio.ensure_future(self.trickler(i)) for i in range(a.tricklers)]
        kinds = list(self.BAD_KINDS)
        if a.bad_rate > 0:
            tasks.append(asyncio.ensure_future(self.spawner(a.bad_rate, lambda: self.bad_one(random.choice(kinds)))))
        variants = ["mid_head", "mid_part", "mid_demo"]
        if a.reset_rate > 0:
            tasks.append(
                asyncio.ensure_future(self.spawner(a.reset_rate, lambda: self.resetter_one(random.choice(variants))))
            )
        await asyncio.sleep(a.minutes * 60)
        # Stop: one last /stats, then SIGTERM with the clients still connected.
        try:
            self.final_stats = await self.stats()
        except Exception as e:  # noqa: BLE001
            self.final_stats = {"error": repr(e)}
        self.stop = True
        self.viewers_at_stop = self.final_stats.get("viewers", {})
        self.server.send_signal(signal.SIGTERM)
        loop = asyncio.get_running_loop()
        t0 = time.monotonic()
        self.exit_code = await loop.run_in_executor(None, wait_exit, self.server, 10)
        self.stop_took = time.monotonic() - t0
        done, pending = await asyncio.wait(tasks, timeout=10)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


def probe(port, seconds, out_path):
    """A lone, well-behaved demo client in a process of its own (blocking sockets, no
    event loop to fall behind): how late the server's parts are, as in the tests, from
    the moment of the request."""
    late = collections.Counter()
    streams = parts = 0
    problems = []
    due_offsets = [sum(DEMO_DELAYS_US[:k]) / 1e6 for k in range(DEMO_PARTS)]
    end = time.monotonic() + seconds
    while time.monotonic() < end and len(problems) < 20:
        try:
            with socket.create_connection((HOST, port), timeout=10) as sock:
                stream = sock.makefile("rb")
                requested = time.monotonic()
                sock.sendall(b"GET / HTTP/1.1\r\nHost: soak-probe\r\n\r\n")
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    line = stream.readline(8192)
                    if not line:
                        raise Bad("EOF in the head")
                    head += line
                if not head.startswith(b"HTTP/1.1 200 "):
                    raise Bad(f"answered {head[:12]!r}")
                boundary = head.split(b"boundary=", 1)[1].split(b"\r\n", 1)[0]
                dash = b"--" + boundary
                if stream.readline(8192) != dash + b"\r\n":
                    raise Bad("no opening delimiter")
                for k in range(DEMO_PARTS):
                    length = None
                    stamped = False
                    line = stream.readline(8192)
                    while line not in (b"\r\n", b""):
                        if line.lower().startswith(b"content-length:"):
                            length = int(line.split(b":", 1)[1])
                        stamped |= line.lower().startswith(b"x-timestamp:")
                        line = stream.readline(8192)
                    if length is None:
                        raise Bad(f"part {k} without Content-Length")
                    if length == 0 and not stamped:
                        break  # the empty final part: the server is stopping
                    body = stream.read(length + len(dash) + 4)
                    if len(body) != length + len(dash) + 4:
                        raise Bad(f"part {k} cut short")
                    offset = time.monotonic() - requested - due_offsets[k]
                    late[max(0, int(offset * 1000))] += 1
                    parts += 1
                    if offset < -0.005:
                        raise Bad(f"part {k} early by {-offset:.3f} s")
                    last = body.endswith(dash + b"--")
                    if last != (k == DEMO_PARTS - 1):
                        raise Bad(f"part {k}: last={last}")
                    if time.monotonic() >= end:
                        break
                else:
                    streams += 1
        except (OSError, Bad, ValueError, IndexError) as e:
            problems.append(f"{time.monotonic() - end + seconds:8.1f}s {e!r}")
            time.sleep(0.5)
    with open(out_path, "w") as f:
        json.dump({"streams": streams, "parts": parts, "late_ms": late, "problems": problems}, f)


def wait_exit(proc, timeout):
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        return None


def percentile(hist, q):
    total = sum(hist.values())
    if total == 0:
        return 0
    rank = q * (total - 1)
    seen = 0
    for value in sorted(hist):
        seen += hist[value]
        if seen > rank:
            return value
    return max(hist)


def average(rows, key, since, until):
    values = [r[key] for r in rows if since <= r["t_s"] < until and r.get(key) not in (None, "")]
    return sum(values) / len(values) if values else float("nan")


def average_of(values):
    return sum(values) / len(values) if values else float("nan")


def summary(soak, args):
    rows = soak.samples
    lines = []
    put = lines.append
    length = rows[-1]["t_s"] if rows else 0
    put(f"soak: {args.minutes:g} min on {HOST}: {args.streamers} streamers, {args.slow} slow readers, "
        f"{args.tricklers} tricklers, {args.bad_rate:g} bad requests/s, {args.reset_rate:g} resets/s")
    if rows:
        first_end = min(60, length / 2)
        last_start = max(length - 60, length / 2)
        for key, unit, scale in (("rss_kib", "MiB", 1 / 1024), ("fds", "", 1), ("clients", "", 1)):
            values = [r[key] for r in rows if r.get(key) not in (None, "")]
            if not values:
                continue
            first = average(rows, key, 0, first_end) * scale
            last = average(rows, key, last_start, length + 1) * scale
            put(f"{key:8} start {values[0] * scale:9.1f} max {max(values) * scale:9.1f} "
                f"end {values[-1] * scale:9.1f} {unit:3} | first minute avg {first:9.1f}, "
                f"last minute avg {last:9.1f}")
        own = [r["fds"] - r["clients"] for r in rows if r.get("clients") not in (None, "")]
        if own:
            put(f"fds - clients (the server's own descriptors; the samples are not atomic): "
                f"first minute avg {average_of(own[:60]):.1f}, last minute avg {average_of(own[-60:]):.1f}")
        put(f"server CPU: {rows[-1]['cpu_s']:.1f} s over {length:.0f} s; "
            f"this client's CPU: {sum(os.times()[:2]):.1f} s")
    put(f"demo parts (the load's streamers): {sum(soak.late_ms.values())} received; lateness p50 {percentile(soak.late_ms, 0.5)} ms, "
        f"p99 {percentile(soak.late_ms, 0.99)} ms, p99.9 {percentile(soak.late_ms, 0.999)} ms, "
        f"max {max(soak.late_ms) if soak.late_ms else 0} ms; "
        f"over 300 ms: {sum(n for ms, n in soak.late_ms.items() if ms > 300)}")
    if soak.probe is None:
        put("probe: no result (it did not finish)")
    else:
        pl = collections.Counter({int(k): v for k, v in soak.probe["late_ms"].items()})
        put(f"probe (one demo client at a time, in its own process): {soak.probe['streams']} complete streams, "
            f"{soak.probe['parts']} parts; lateness from the request p50 {percentile(pl, 0.5)} ms, "
            f"p99 {percentile(pl, 0.99)} ms, max {max(pl) if pl else 0} ms; "
            f"over 300 ms: {sum(n for ms, n in pl.items() if ms > 300)}; problems: {soak.probe['problems']}")
    put(f"this client's event loop lag (100 ms sleeps): p50 {percentile(soak.loop_lag_ms, 0.5)} ms, "
        f"p99 {percentile(soak.loop_lag_ms, 0.99)} ms, max {max(soak.loop_lag_ms) if soak.loop_lag_ms else 0} ms "
        f"(demo lateness up to this is the client's own delay)")
    put("client outcomes by kind:")
    for key in sorted(soak.counts):
        put(f"  {key:45} {soak.counts[key]}")
    put(f"server /stats before the stop: {json.dumps(soak.final_stats, sort_keys=True)}")
    put(f"SIGTERM with {sum(soak.viewers_at_stop.values()) if isinstance(soak.viewers_at_stop, dict) else '?'} "
        f"viewers: exit code {soak.exit_code} after {soak.stop_took:.2f} s; "
        f"{soak.counts['demo:stopped_with_closing_delimiter']} demo clients saw the closing delimiter")
    if soak.problems:
        put("first unexpected events:")
        lines.extend("  " + p for p in soak.problems)
    # The graceful stop must reach the demo's viewers: at least 90% of those watching when
    # SIGTERM went (the rest were between streams or leaving) see the closing delimiter.
    demo_viewers = soak.viewers_at_stop.get("/", 0) if isinstance(soak.viewers_at_stop, dict) else 0
    stop_reached = soak.counts["demo:stopped_with_closing_delimiter"] >= 0.9 * demo_viewers
    if not stop_reached:
        put(f"the stop reached too few demo viewers (of {demo_viewers})")
    ok = (
        soak.counts["unexpected"] == 0
        and soak.exit_code == 0
        and stop_reached
        and soak.probe is not None
        and not soak.probe["problems"]
    )
    put(f"result: {'OK' if ok else 'PROBLEMS'} ({soak.counts['unexpected']} unexpected events)")
    return "\n".join(lines), ok


def main():
    parser = argparse.ArgumentParser(
        description="Soak mixreplace with mixed loopback traffic; see docs/soak.md.")
    parser.add_argument("minutes", type=float, help="how long the traffic runs (minutes, > 0)")
    parser.add_argument("--streamers", type=int, default=2000, help="concurrent demo clients (default 2000)")
    parser.add_argument("--slow", type=int, default=50, help="slow readers of /fast (default 50)")
    parser.add_argument("--tricklers", type=int, default=50, help="trickled-head clients (default 50)")
    parser.add_argument("--bad-rate", type=float, default=20, help="bad/odd requests a second (default 20)")
    parser.add_argument("--reset-rate", type=float, default=10, help="resets a second (default 10)")
    parser.add_argument("--max-short", type=int, default=200,
                        help="bad requests and resets in flight at most (default 200)")
    parser.add_argument("--out", help="output folder (default target/soak/<UTC time>)")
    parser.add_argument("--binary", help="server binary (default: cargo build --release, then target/release/)")
    parser.add_argument("--report-every", type=float, default=60, help="progress line every N s (default 60)")
    parser.add_argument("--seed", type=int, help="random seed")
    parser.add_argument("--probe", nargs=3, metavar=("PORT", "SECONDS", "OUT"), help=argparse.SUPPRESS)
    if len(sys.argv) > 1 and sys.argv[1] == "--probe":
        # Internal: the lone demo client, started by the soak itself.
        port, seconds, out = sys.argv[2:5]
        probe(int(port), float(seconds), out)
        return
    args = parser.parse_args()
    if not 0 < args.minutes <= 24 * 60:
        parser.error("minutes must be above 0 and at most 1440")
    random.seed(args.seed)

    if args.binary is None:
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=REPO, check=True)
        args.binary = os.path.join(REPO, "target", "release", "mixreplace")
    out_dir = args.out or os.path.join(REPO, "target", "soak", time.strftime("%Y%m%d-%H%M%S", time.gmtime()))
    os.makedirs(out_dir, exist_ok=True)

    # Every connection is a descriptor here too.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = args.streamers + args.slow + args.tricklers + args.max_short + 100
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(need, soft)), hard))
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if soft < need:
            raise SystemExit(f"soak: need {need} file descriptors, the hard limit is {hard}")

    soak = Soak(args)
    soak.events = open(os.path.join(out_dir, "events.log"), "w")
    probe_proc = None
    log = open(os.path.join(out_dir, "server.log"), "wb")
    samples = open(os.path.join(out_dir, "samples.csv"), "w", newline="")

    def watchdog(signum, frame):
        # Whatever is stuck, stop everything: the run is bounded.
        for proc in (probe_proc, soak.server):
            if proc is not None and proc.poll() is None:
                proc.kill()
        print("soak: watchdog or signal: stopped", file=sys.stderr, flush=True)
        os._exit(3)

    signal.signal(signal.SIGALRM, watchdog)
    signal.signal(signal.SIGINT, watchdog)
    signal.signal(signal.SIGTERM, watchdog)
    signal.alarm(int(args.minutes * 60) + 300)
    try:
        soak.start_server(log)
        print(f"soak: output in {out_dir}", flush=True)
        probe_out = os.path.join(out_dir, "probe.json")
        probe_proc = subprocess.Popen(
            # It stops a little before the traffic, so the stop does not cut its stream.
            [sys.executable, os.path.abspath(__file__), "--probe", str(soak.port),
             str(max(1.0, args.minutes * 60 - 2)), probe_out],
            stdin=subprocess.DEVNULL,
        )
        asyncio.run(soak.run(samples))
        try:
            probe_proc.wait(15)
        except subprocess.TimeoutExpired:
            pass
    finally:
        for proc in (probe_proc, soak.server):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        signal.alarm(0)
        soak.events.close()
        soak.events = None
        samples.close()
        log.close()
    try:
        with open(probe_out) as f:
            soak.probe = json.load(f)
    except (OSError, ValueError):
        soak.probe = None
    text, ok = summary(soak, args)
    print(text, flush=True)
    with open(os.path.join(out_dir, "summary.txt"), "w") as f:
        f.write(text + "\n")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
