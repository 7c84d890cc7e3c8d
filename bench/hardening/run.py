#!/usr/bin/env python3
"""bench/hardening/run.py: issue 8's connection storm, fault cases and soak against a real ztunnel pair.

Run by bench/hardening.sh inside a network namespace of its own (lo only); do not run it elsewhere.

Topology (all on lo of that netns):
  fake-istiod   127.0.0.1:15012 (Delta ADS + CA over TLS), admin 127.0.0.1:15014; config dir with the two
                workloads of bench/l4/pair.yaml (client 127.0.0.1, server 127.0.0.3, HBONE); certificates
                valid CERT_TTL seconds, so every case runs across certificate rotations
  ztunnel "server" --bind 127.0.0.3, ztunnel "client" --bind 127.0.0.1, both --packet-mark 1337, state and
                certificates from fake-istiod only
  backend       run.py --backend (asyncio), 0.0.0.0:9000: the first line picks HOLD | ECHO | SINK | SOURCE n | RST n
  iptables      OUTPUT -d 127.0.0.3 --dport 9000, mark != 1337 -> REDIRECT :15001 (the client ztunnel's
                outbound listener): every client connection here crosses client ztunnel -> HBONE (mTLS 1.3,
                HTTP/2 CONNECT) -> server ztunnel -> backend

Cases (each checks what it states; see the `--cases` help):
  storm       STORM_CONNS (20000) concurrent connections from 4 client processes, each proven end to end by
              an echo, all echoing again at the peak; RSS and fds of both ztunnels sampled throughout: the peak
              under 24 KiB per connection, fds back to the baseline and the heap returned after the close.
              Both ztunnels run with MAX_CONNECTIONS = the storm's size, or (hard RLIMIT_NOFILE) - 500 when
              one process cannot hold that many descriptors: then the connections past it must be reset at
              once (they are counted, not lost)
  kill_peer   the server ztunnel killed (SIGKILL) under 10 live downloads: every client ends (reset) within
              5 s, no fd leak in the client ztunnel, a restarted server ztunnel serves again
  backend_rst the backend resets 10 connections mid-stream: each client sees a reset, not a clean end
  cp_loss     fake-istiod killed for 10 s under load (short and long connections): no failed connection;
              the ztunnels reconnect when it returns
  cert_expiry load across certificate rotations (0 failures); then the CA refuses renewals: once the
              certificates expire new connections fail closed; when the CA answers again traffic returns
  drain       SIGTERM to the client ztunnel under 10 uploads, and to the server ztunnel under 10
              downloads: every acknowledged byte arrives (byte counts match end to end), new connections
              are refused during the drain, the process exits 0
  soak        SOAK_SECONDS of mixed load (long echo streams, short connections, a policy push every 10 s)
              with RSS and fds sampled every 5 s: flat after warm-up, no failures

Writes <out>/hardening.json, hardening.md and hardening.svg (RSS and fd curves of the soak and the storm).
With a sanitized build (ASan/LSan linked into ztunnel), every process is stopped gracefully at the end and
its log must hold no sanitizer report.
"""
import argparse
import asyncio
import json
import os
import resource
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT_IP, SERVER_IP, APP_PORT = "127.0.0.1", "127.0.0.3", 9000
ISTIOD, ISTIOD_ADMIN = "127.0.0.1:15012", "127.0.0.1:15014"
MARK = 1337

WORKLOADS_YAML = open(os.path.join(HERE, "..", "l4", "pair.yaml")).read()


def log(msg):
    print("# " + msg, file=sys.stderr, flush=True)


class Failure(Exception):
    pass


# ---------------------------------------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------------------------------------

def proc_rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def proc_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def http(method, addr, path, timeout=2.0):
    req = urllib.request.Request("http://%s%s" % (addr, path), method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except OSError as e:
        return 0, str(e)


class Mesh:
    """fake-istiod and the two ztunnels, as processes this script starts, signals and restarts."""

    def __init__(self, build, work, cert_ttl, max_connections):
        self.build, self.work, self.cert_ttl = build, work, cert_ttl
        self.max_connections = max_connections
        self.zt_bin = os.path.join(build, "ztunnel", "ztunnel")
        self.istiod_bin = os.path.join(build, "test", "fake_istiod", "fake-istiod")
        for b in (self.zt_bin, self.istiod_bin):
            if not os.access(b, os.X_OK):
                raise Failure("%s not found; build it: ninja -C %s ztunnel fake-istiod" % (b, build))
        self.sanitized = b"__asan_init" in subprocess.run(["nm", self.zt_bin], capture_output=True).stdout
        self.procs = {}
        self.logs = {}
        self.generation = {}
        self.config_dir = os.path.join(work, "config")
        os.makedirs(self.config_dir, exist_ok=True)
        self._certs()
        self.write_config("workloads.yaml", WORKLOADS_YAML)

    def _certs(self):
        d = os.path.join(self.work, "istiod")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "server.ext"), "w") as f:
            f.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                    "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\n")
        for c in ("openssl ecparam -name prime256v1 -genkey -noout -out ca.key",
                  "openssl req -x509 -new -key ca.key -subj /O=hardening-ca -days 2 -out ca.pem "
                  "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign",
                  "openssl ecparam -name prime256v1 -genkey -noout -out server.key",
                  "openssl req -new -key server.key -subj /CN=istiod -out server.csr",
                  "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -set_serial 2 -days 2 "
                  "-extfile server.ext -out server.pem"):
            subprocess.run(c, shell=True, cwd=d, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.certs = d

    def write_config(self, name, text):
        tmp = os.path.join(self.config_dir, "." + name + ".tmp")
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, os.path.join(self.config_dir, name))

    def remove_config(self, name):
        try:
            os.unlink(os.path.join(self.config_dir, name))
        except FileNotFoundError:
            pass

    def _spawn(self, name, args, env=None):
        gen = self.generation.get(name, 0) + 1
        self.generation[name] = gen
        path = os.path.join(self.work, "%s.%d.log" % (name, gen))
        self.logs.setdefault(name, []).append(path)
        out = open(path, "w")
        self.procs[name] = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
        out.close()

    def start_istiod(self):
        c = self.certs
        self._spawn("istiod", [self.istiod_bin, "--serving-cert", c + "/server.pem", "--serving-key", c + "/server.key",
                               "--ca-cert", c + "/ca.pem", "--ca-key", c + "/ca.key", "--listen", ISTIOD,
                               "--admin", ISTIOD_ADMIN, "--config-dir", self.config_dir, "--log-level", "warn",
                               "--cert-ttl-s", str(self.cert_ttl)])
        if not wait_until(lambda: http("GET", ISTIOD_ADMIN, "/status")[0] == 200 or not self.alive("istiod"), 10) \
                or not self.alive("istiod"):
            raise Failure("fake-istiod did not start: " + self.tail("istiod"))

    def restart_istiod(self, attempts=20):
        """Starts fake-istiod again on the same ports; a port of the killed one may still be held for a moment."""
        for _ in range(attempts):
            try:
                self.start_istiod()
                return
            except Failure:
                time.sleep(0.5)
        self.start_istiod()

    def start_zt(self, name):
        ip = SERVER_IP if name == "server" else CLIENT_IP
        env = dict(os.environ)
        env.update({
            "XDS_ADDRESS": "https://" + ISTIOD, "CA_ADDRESS": "https://" + ISTIOD,
            "XDS_ROOT_CA": self.certs + "/ca.pem", "CA_ROOT_CA": self.certs + "/ca.pem",
            "PROXY_WORKLOAD_INFO": "bench/%s/%s" % (name, name), "POD_NAME": "ztunnel-" + name,
            "POD_NAMESPACE": "istio-system", "INSTANCE_IP": ip,
            "POOL_UNUSED_RELEASE_TIMEOUT": "3s", "CONNECTION_TERMINATION_DEADLINE": "10s", "LOG_LEVEL": "warn",
            "MAX_CONNECTIONS": str(self.max_connections),
        })
        if self.sanitized:
            env["ASAN_OPTIONS"] = "detect_leaks=1"
        self._spawn(name, [self.zt_bin, "--bind", ip, "--admin", ip + ":15000", "--metrics", ip + ":15020",
                           "--readiness", ip + ":15021", "--packet-mark", str(MARK)], env)
        if not wait_until(lambda: http("GET", ip + ":15021", "/healthz/ready")[0] == 200, 20):
            raise Failure("ztunnel %s not ready: %s" % (name, self.tail(name)))

    def pid(self, name):
        return self.procs[name].pid

    def alive(self, name):
        return name in self.procs and self.procs[name].poll() is None

    def signal(self, name, sig):
        self.procs[name].send_signal(sig)

    def wait_exit(self, name, timeout):
        try:
            return self.procs[name].wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self, name):
        if self.alive(name):
            self.procs[name].kill()
            self.procs[name].wait()

    def stop_all(self):
        """Graceful stop (SIGTERM), so that a sanitized build runs its leak check; exit codes by name."""
        codes = {}
        for name in ("client", "server", "istiod"):
            if self.alive(name):
                self.signal(name, signal.SIGTERM)
                codes[name] = self.wait_exit(name, 30)
                if codes[name] is None:
                    self.kill(name)
        return codes

    def tail(self, name, lines=8):
        try:
            with open(self.logs[name][-1]) as f:
                return "".join(f.readlines()[-lines:])
        except (KeyError, OSError):
            return ""

    def sample(self):
        out = {}
        for name in ("client", "server"):
            if self.alive(name):
                out[name] = {"rss_kb": proc_rss_kb(self.pid(name)), "fds": proc_fds(self.pid(name))}
        return out

    def metric(self, name, metric):
        ip = SERVER_IP if name == "server" else CLIENT_IP
        status, body = http("GET", ip + ":15020", "/metrics")
        if status != 200:
            return -1
        return int(sum(float(line.split()[-1]) for line in body.splitlines() if line.startswith(metric)))

    def xds_connected(self, name):
        ip = SERVER_IP if name == "server" else CLIENT_IP
        status, body = http("GET", ip + ":15000", "/config_dump")
        return status == 200 and '"connected": true' in body


def istiod_status():
    status, body = http("GET", ISTIOD_ADMIN, "/status")
    try:
        return json.loads(body) if status == 200 else {}
    except ValueError:
        return {}


def socket_open(host, port):
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False


def wait_until(pred, timeout, step=0.05):
    until = time.monotonic() + timeout
    while time.monotonic() < until:
        if pred():
            return True
        time.sleep(step)
    return pred()


async def await_until(pred, timeout, step=0.1):
    until = time.monotonic() + timeout
    while time.monotonic() < until:
        if pred():
            return True
        await asyncio.sleep(step)
    return pred()


# ---------------------------------------------------------------------------------------------------------
# Backend (this process) and clients
# ---------------------------------------------------------------------------------------------------------

CHUNK = bytes(range(256)) * 256  # 64 KiB


class Backend:
    """The app behind the server ztunnel (its own process: `run.py --backend`, so its sockets do not count
    against the driver's descriptor limit). SINK answers with the byte count it received."""

    async def handle(self, r, w):
        try:
            line = await r.readline()
            cmd = line.split()
            if not cmd:
                return
            if cmd[0] in (b"HOLD", b"ECHO"):
                if cmd[0] == b"HOLD":
                    w.write(b"OK\n")
                while True:
                    data = await r.read(65536)
                    if not data:
                        break
                    w.write(data)
                    await w.drain()
            elif cmd[0] == b"SINK":
                n = 0
                while True:
                    data = await r.read(262144)
                    if not data:
                        break
                    n += len(data)
                w.write(b"GOT %d\n" % n)
                await w.drain()
            elif cmd[0] in (b"SOURCE", b"RST"):
                left = int(cmd[1])
                while left > 0:
                    piece = CHUNK[:min(left, len(CHUNK))]
                    w.write(piece)
                    left -= len(piece)
                    await w.drain()
                if cmd[0] == b"RST":
                    sock = w.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    w.transport.abort()
                    return
        except (ConnectionError, OSError, ValueError, IndexError):
            pass
        finally:
            try:
                w.close()
            except (ConnectionError, OSError):
                pass


async def serve_backend():
    server = await asyncio.start_server(Backend().handle, "0.0.0.0", APP_PORT, backlog=8192, limit=1 << 20)
    async with server:
        await server.serve_forever()


async def connect(timeout=10.0):
    return await asyncio.wait_for(asyncio.open_connection(SERVER_IP, APP_PORT), timeout)


async def read_exact(r, n, timeout=10.0):
    return await asyncio.wait_for(r.readexactly(n), timeout)


async def echo_once(payload=b"x" * 1024, timeout=10.0):
    """A short connection: ECHO payload, half-close, read it all back. True when byte-exact."""
    r, w = await connect(timeout)
    try:
        w.write(b"ECHO\n" + payload)
        await w.drain()
        w.write_eof()
        got = await asyncio.wait_for(r.read(len(payload) + 1), timeout)
        while len(got) < len(payload):
            more = await asyncio.wait_for(r.read(len(payload) + 1 - len(got)), timeout)
            if not more:
                break
            got += more
        return got == payload
    finally:
        w.close()


async def echo_ok(timeout=5.0):
    """echo_once, a failure (refused, reset, timeout) as False."""
    try:
        return await echo_once(timeout=timeout)
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
        return False


async def read_to_end(r, deadline):
    """Reads until EOF or an error. Returns (bytes, 'eof'|'reset'|'timeout'|error name)."""
    total = 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return total, "timeout"
        try:
            data = await asyncio.wait_for(r.read(1 << 20), left)
        except asyncio.TimeoutError:
            return total, "timeout"
        except ConnectionResetError:
            return total, "reset"
        except OSError as e:
            return total, type(e).__name__
        if not data:
            return total, "eof"
        total += len(data)


class Load:
    """Background load: `short` workers looping short ECHO connections, `long` streams echoing 16 KiB pieces.
    Counts successes and failures (with the first reasons)."""

    def __init__(self, short=8, long=4, pause=0.0):
        self.short, self.long, self.pause = short, long, pause
        self.ok = self.failed = 0
        self.long_bytes = 0
        self.long_failed = 0
        self.reasons = []
        self.stop = False
        self.tasks = []

    def _fail(self, why):
        self.failed += 1
        if len(self.reasons) < 5:
            self.reasons.append(why)

    async def _short(self):
        while not self.stop:
            try:
                if await echo_once():
                    self.ok += 1
                else:
                    self._fail("short: echo mismatch")
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError) as e:
                self._fail("short: %s" % (type(e).__name__ + ": " + str(e))[:120])
            if self.pause:
                await asyncio.sleep(self.pause)

    async def _long(self):
        piece = CHUNK[:16384]
        try:
            r, w = await connect()
            w.write(b"ECHO\n")
            while not self.stop:
                w.write(piece)
                await w.drain()
                back = await read_exact(r, len(piece))
                if back != piece:
                    raise ValueError("echo mismatch")
                self.long_bytes += len(piece)
                await asyncio.sleep(0.01)
            w.close()
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError) as e:
            self.long_failed += 1
            self._fail("long: %s" % (type(e).__name__ + ": " + str(e))[:120])

    def start(self):
        self.tasks = [asyncio.ensure_future(self._short()) for _ in range(self.short)]
        self.tasks += [asyncio.ensure_future(self._long()) for _ in range(self.long)]

    async def finish(self):
        self.stop = True
        await asyncio.gather(*self.tasks, return_exceptions=True)
        return {"short_ok": self.ok, "failed": self.failed, "long_streams": self.long,
                "long_failed": self.long_failed, "long_bytes": self.long_bytes, "reasons": self.reasons}


# ---------------------------------------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------------------------------------

async def settle_fds(mesh, baseline, timeout):
    """Waits until both ztunnels hold at most their baseline fds; returns the last sample."""
    await await_until(lambda: all(mesh.sample()[n]["fds"] <= baseline[n]["fds"] for n in baseline), timeout, 0.25)
    return mesh.sample()


async def storm_worker(count, first):
    """Child process of the storm: opens `count` connections (1000 being set up at a time), each proven by
    HOLD/OK and an 8-byte echo, and prints {"established", "failed", "reset_fast", "reasons"} as one JSON
    line. Then, per line on stdin: "ping" (one byte each way on every held connection, prints {"live"}),
    "close" (closes them all and exits)."""
    held, failed, reset_fast, reasons = [], 0, 0, []
    gate = asyncio.Semaphore(1000)

    async def one(i):
        nonlocal failed, reset_fast
        async with gate:
            t0 = time.monotonic()
            try:
                r, w = await connect(60)
                w.write(b"HOLD\n")
                if await read_exact(r, 3, 60) != b"OK\n":
                    raise ValueError("no OK")
                tag = b"%08d" % i
                w.write(tag)
                if await read_exact(r, 8, 60) != tag:
                    raise ValueError("echo mismatch")
                held.append((r, w))
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError) as e:
                failed += 1
                # Past MAX_CONNECTIONS the client ztunnel resets at accept: the client learns at once.
                if isinstance(e, (ConnectionResetError, asyncio.IncompleteReadError)) and time.monotonic() - t0 < 2:
                    reset_fast += 1
                if len(reasons) < 3:
                    reasons.append("%s: %s" % (type(e).__name__, e))

    await asyncio.gather(*(one(first + i) for i in range(count)))
    print(json.dumps({"established": len(held), "failed": failed, "reset_fast": reset_fast, "reasons": reasons}),
          flush=True)
    loop = asyncio.get_running_loop()
    while True:
        line = (await loop.run_in_executor(None, sys.stdin.readline)).strip()
        if line == "ping":
            live = 0

            async def ping(r, w):
                nonlocal live
                async with gate:
                    try:
                        w.write(b"p")
                        if await read_exact(r, 1, 60) == b"p":
                            live += 1
                    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
                        pass

            await asyncio.gather(*(ping(r, w) for r, w in held))
            print(json.dumps({"live": live}), flush=True)
        else:
            for _, w in held:
                w.close()
            return


async def case_storm(mesh, conns):
    cap = mesh.max_connections
    await asyncio.sleep(4)  # pooled connections of earlier traffic released (POOL_UNUSED_RELEASE_TIMEOUT 3s)
    before = mesh.sample()
    opened0 = mesh.metric("server", "istio_tcp_connections_opened_total")
    curve = []
    t0 = time.monotonic()
    per_worker = 5000  # client sockets per process, well inside one process's descriptor limit
    workers = []
    for k in range(0, conns, per_worker):
        n = min(per_worker, conns - k)
        workers.append(await asyncio.create_subprocess_exec(
            sys.executable, os.path.abspath(__file__), "--storm-worker", str(n), "--storm-first", str(k),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE))

    async def sampler():
        while True:
            s = mesh.sample()
            curve.append({"t": round(time.monotonic() - t0, 2),
                          **{"%s_%s" % (n, k): v for n in s for k, v in s[n].items()}})
            await asyncio.sleep(0.5)

    async def report(w):
        return json.loads(await asyncio.wait_for(w.stdout.readline(), 600))

    sampling = asyncio.ensure_future(sampler())
    opened_reports = await asyncio.gather(*(report(w) for w in workers))
    setup_s = time.monotonic() - t0
    established = sum(r["established"] for r in opened_reports)
    failed = sum(r["failed"] for r in opened_reports)
    reset_fast = sum(r["reset_fast"] for r in opened_reports)
    reasons = [x for r in opened_reports for x in r["reasons"]][:5]
    await asyncio.sleep(1)
    peak = mesh.sample()
    opened = mesh.metric("server", "istio_tcp_connections_opened_total") - opened0
    # At the peak, every held connection still carries bytes both ways.
    for w in workers:
        w.stdin.write(b"ping\n")
    await asyncio.gather(*(w.stdin.drain() for w in workers))
    live = sum(r["live"] for r in await asyncio.gather(*(report(w) for w in workers)))
    t_close = time.monotonic()
    for w in workers:
        w.stdin.write(b"close\n")
        await w.stdin.drain()
    await asyncio.gather(*(w.wait() for w in workers))
    await settle_fds(mesh, before, 30)
    settle_s = time.monotonic() - t_close
    # The heap the storm freed goes back to the kernel (net::HeapTrimmer checks every 5 s).
    def returned():
        now = mesh.sample()
        return all(now[n]["rss_kb"] - before[n]["rss_kb"] <= 0.25 * (peak[n]["rss_kb"] - before[n]["rss_kb"])
                   for n in before)
    await await_until(returned, 30, 0.5)  # the trimmer's tick (5 s) and its follow-up (15 s later)
    returned_s = time.monotonic() - t_close
    sampling.cancel()
    after = mesh.sample()
    expected = min(conns, cap)
    result = {
        "connections": conns, "max_connections": cap, "fd_hard_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[1],
        "established": established, "live_at_peak": live, "failed": failed, "reset_at_cap_fast": reset_fast,
        "reasons": reasons, "setup_s": round(setup_s, 2), "server_ztunnel_opened": opened,
        "settle_s": round(settle_s, 2), "rss_returned_s": round(returned_s, 1), "before": before, "peak": peak, "after": after, "curve": curve,
    }
    per_conn = {n: round((peak[n]["rss_kb"] - before[n]["rss_kb"]) / max(1, established), 2) for n in before}
    result["rss_kb_per_connection"] = per_conn
    checks = [
        ("%d connections established and echoed, all open at once" % expected, established == expected),
        ("at the peak every one still echoes a byte", live == established),
        ("the server ztunnel saw each one", opened >= established),
        ("no fd leak: fds after <= before (both ztunnels)", all(after[n]["fds"] <= before[n]["fds"] for n in before)),
        # None: not applicable (ASan's quarantine and shadow memory make RSS meaningless in a sanitized build).
        ("RSS bounded: under 24 KiB per connection at the peak (both ztunnels)",
         None if mesh.sanitized else all(v < 24 for v in per_conn.values())),
        ("memory returned: RSS back within 25% of the storm's growth within 30 s of the close",
         None if mesh.sanitized else
         all(after[n]["rss_kb"] - before[n]["rss_kb"] <= 0.25 * (peak[n]["rss_kb"] - before[n]["rss_kb"]) for n in before)),
    ]
    if conns > cap:
        checks.append(("the %d past MAX_CONNECTIONS=%d are reset at once (< 2 s), not left hanging" % (conns - cap, cap),
                       failed == conns - cap and reset_fast == failed))
    else:
        checks.append(("no connection failed", failed == 0))
    return result, checks


async def case_kill_peer(mesh):
    before = mesh.sample()
    streams = []
    for _ in range(10):
        r, w = await connect()
        w.write(b"SOURCE %d\n" % (1 << 40))
        streams.append((r, w))
    # Each download is flowing before the kill.
    for r, _ in streams:
        await read_exact(r, 1 << 20, 10)
    t_kill = time.monotonic()
    mesh.kill("server")
    outcomes = await asyncio.gather(*(read_to_end(r, t_kill + 5) for r, _ in streams))
    ended_s = time.monotonic() - t_kill
    for _, w in streams:
        w.close()
    kinds = {}
    for _, k in outcomes:
        kinds[k] = kinds.get(k, 0) + 1
    client_after = await settle_fds(mesh, {"client": before["client"]}, 15)
    # A new connection while the peer is gone fails fast instead of hanging.
    t0 = time.monotonic()
    try:
        new_ok = await echo_once(timeout=15)
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError) as e:
        new_ok = False
        log("kill_peer: new connection while the peer is down: %s" % type(e).__name__)
    new_fail_s = time.monotonic() - t0
    mesh.start_zt("server")
    restarted_ok = await echo_once()
    result = {"streams": len(streams), "outcomes": kinds, "all_ended_within_s": round(ended_s, 2),
              "client_fds_before": before["client"]["fds"], "client_fds_after": client_after["client"]["fds"],
              "new_connection_while_down": "ok" if new_ok else "failed after %.2f s" % new_fail_s,
              "after_restart": "ok" if restarted_ok else "failed"}
    checks = [
        ("every client saw its stream end (no hang) within 5 s", "timeout" not in kinds),
        ("every client saw a reset (a cut stream never looks complete)", kinds.get("reset", 0) == len(streams)),
        ("a new connection while the peer is down fails within 11 s (connect timeout 10 s)",
         not new_ok and new_fail_s < 11),
        ("no fd leak in the client ztunnel", client_after["client"]["fds"] <= before["client"]["fds"]),
        ("the restarted server ztunnel serves", restarted_ok),
    ]
    return result, checks


async def case_backend_rst(mesh):
    before = mesh.sample()
    size = 4 << 20
    streams = []
    for _ in range(10):
        r, w = await connect()
        w.write(b"RST %d\n" % size)
        streams.append((r, w))
    t0 = time.monotonic()
    outcomes = await asyncio.gather(*(read_to_end(r, t0 + 10) for r, _ in streams))
    for _, w in streams:
        w.close()
    kinds = {}
    for _, k in outcomes:
        kinds[k] = kinds.get(k, 0) + 1
    after = await settle_fds(mesh, before, 15)
    result = {"streams": len(streams), "bytes_before_reset": [n for n, _ in outcomes], "outcomes": kinds,
              "fds_before": {n: before[n]["fds"] for n in before}, "fds_after": {n: after[n]["fds"] for n in after}}
    checks = [
        ("every client saw a reset, none a clean end", kinds.get("reset", 0) == len(streams)),
        ("no client got more bytes than the backend sent", all(n <= size for n, _ in outcomes)),
        ("no fd leak in either ztunnel", all(after[n]["fds"] <= before[n]["fds"] for n in before)),
    ]
    return result, checks


async def case_cp_loss(mesh):
    load = Load(short=8, long=4)
    load.start()
    await asyncio.sleep(3)
    ok_before_kill = load.ok
    mesh.kill("istiod")
    down_since = time.monotonic()
    disconnected = await await_until(lambda: not mesh.xds_connected("client"), 5)
    await asyncio.sleep(10)
    ok_while_down = load.ok - ok_before_kill
    try:
        mesh.restart_istiod()
    except Failure:
        await load.finish()
        raise
    down_s = time.monotonic() - down_since
    reconnected = await await_until(lambda: mesh.xds_connected("client") and mesh.xds_connected("server"), 15)
    await asyncio.sleep(3)
    stats = await load.finish()
    result = {"down_s": round(down_s, 1), "short_connections_while_down": ok_while_down, **stats,
              "client_saw_disconnect": disconnected, "reconnected": reconnected}
    checks = [
        ("no failed connection while the control plane was gone", stats["failed"] == 0),
        ("new connections kept being made while it was down", ok_while_down > 0),
        ("both ztunnels reconnected to the returning control plane", reconnected),
    ]
    return result, checks


RETRY_CAP_S = 150  # IdentityOptions::backoff_max: the longest wait between two certificate fetches after failures


async def case_cert_expiry(mesh):
    ttl = mesh.cert_ttl
    load = Load(short=8, long=4)
    csrs0 = istiod_status().get("csrs_signed", 0)
    load.start()
    # Certificates are valid for `ttl` s with notBefore backdated 60 s, so each is renewed (ttl - 60) / 2 s
    # after issue: 15 s for the default 90. 40 s of load spans at least two rotations on each side.
    load_s = max(40, ttl - 50)
    await asyncio.sleep(load_s)
    during = await load.finish()
    rotations = istiod_status().get("csrs_signed", 0) - csrs0
    # The CA stops answering: renewals fail, and the certificates run out.
    status, _ = http("POST", ISTIOD_ADMIN, "/fault?refuse-csr=1")
    if status != 200:
        raise Failure("fake-istiod refused the refuse-csr fault: %d" % status)
    t_refuse = time.monotonic()
    # Fail closed: once no valid certificate is left, a new connection must not get through.
    expired = False
    attempts = refused = 0
    while time.monotonic() - t_refuse < ttl + 15:
        attempts += 1
        ok = await echo_ok()
        if not ok:
            refused += 1
            if refused >= 3:
                expired = True
                break
        await asyncio.sleep(0.5)
    expired_after_s = time.monotonic() - t_refuse
    # Once failing, it keeps failing: 20 more attempts.
    closed = 0
    for _ in range(20):
        ok = await echo_ok()
        closed += 0 if ok else 1
    http("POST", ISTIOD_ADMIN, "/fault?refuse-csr=0")
    t_back = time.monotonic()

    # Each identity retries a failed fetch with its own exponential backoff, capped at 150 s like Istio's
    # ztunnel (CERT_REFRESH_FAILURE_RETRY_DELAY_MAX_INTERVAL); after ~2 min of refusals the next retry may be
    # that far away, so traffic must return within the cap (plus the fetch and a 20 s margin).
    recovered = False
    while time.monotonic() - t_back < RETRY_CAP_S + 20:
        if await echo_ok():
            recovered = True
            break
        await asyncio.sleep(0.5)
    recovered_s = time.monotonic() - t_back
    result = {"cert_ttl_s": ttl, "load_seconds": load_s, "certificates_issued_during_load": rotations, **during,
              "refusing_until_failure_s": round(expired_after_s, 1), "failed_closed": "%d/20" % closed,
              "recovered_after_s": round(recovered_s, 1)}
    checks = [
        ("certificates rotated under load (>= 2 per ztunnel)", rotations >= 4),
        ("no failed connection across certificate rotations under load", during["failed"] == 0),
        ("after expiry new connections fail closed (20/20)", expired and closed == 20),
        ("expiry came no later than the certificate lifetime (+15 s)", expired_after_s < ttl + 15),
        ("traffic returns once the CA answers again, within the fetch retry cap (%d s)" % RETRY_CAP_S, recovered),
    ]
    return result, checks


async def case_drain(mesh):
    results = {}
    checks = []
    for side in ("client", "server"):
        streams = []
        for _ in range(10):
            r, w = await connect()
            w.write(b"SINK\n" if side == "client" else b"SOURCE %d\n" % (32 << 20))
            streams.append((r, w))

        async def upload(r, w):
            sent = 0
            for _ in range(400):  # 400 x 64 KiB = 25 MiB over ~3 s
                w.write(CHUNK)
                sent += len(CHUNK)
                await w.drain()
                await asyncio.sleep(0.0075)
            w.write_eof()
            line = await asyncio.wait_for(r.readline(), 20)
            w.close()
            return sent, int(line.split()[1]) if line.startswith(b"GOT ") else -1

        async def download(r, w):
            got = 0
            while True:
                data = await asyncio.wait_for(r.read(65536), 20)
                if not data:
                    break
                got += len(data)
                await asyncio.sleep(0.0005)  # a slow reader: the transfer is still running at SIGTERM
            w.close()
            return 32 << 20, got

        work = [asyncio.ensure_future(upload(r, w) if side == "client" else download(r, w)) for r, w in streams]
        await asyncio.sleep(1)
        t_term = time.monotonic()
        mesh.signal(side, signal.SIGTERM)
        await asyncio.sleep(0.3)
        # New connections during the drain: the listeners are closed (the client's) or HBONE refuses them.
        refused = 0
        for _ in range(5):
            ok = await echo_ok()
            refused += 0 if ok else 1
        done = await asyncio.gather(*work, return_exceptions=True)
        code = await asyncio.get_running_loop().run_in_executor(None, mesh.wait_exit, side, 20)
        exit_s = time.monotonic() - t_term
        pairs = [d for d in done if isinstance(d, tuple)]
        errors = [repr(d)[:120] for d in done if not isinstance(d, tuple)]
        exact = sum(1 for s, g in pairs if s == g)
        results[side] = {"transfers": len(streams), "byte_exact": exact,
                         "bytes_sent": sum(s for s, _ in pairs), "bytes_received": sum(g for _, g in pairs),
                         "errors": errors, "new_connections_refused": "%d/5" % refused,
                         "exit_code": code, "exit_after_s": round(exit_s, 2)}
        what = "uploads through the client ztunnel" if side == "client" else "downloads through the server ztunnel"
        checks += [
            ("SIGTERM %s: all 10 %s byte-exact" % (side, what), exact == len(streams) and not errors),
            ("SIGTERM %s: new connections refused during the drain" % side, refused == 5),
            ("SIGTERM %s: exits 0 within the 10 s deadline" % side, code == 0 and exit_s < 12),
        ]
        mesh.start_zt(side)
    return results, checks


POLICY_YAML = """policies:
- name: soak-deny-%d
  namespace: bench
  scope: Namespace
  action: Deny
  rules:
  - - - destinationPorts: [%d]
"""


async def case_soak(mesh, seconds):
    load = Load(short=6, long=4, pause=0.01)
    load.start()
    curve = []
    pushes = 0
    t0 = time.monotonic()
    next_push = t0 + 10
    while time.monotonic() - t0 < seconds:
        s = mesh.sample()
        curve.append({"t": round(time.monotonic() - t0, 1), "short_ok": load.ok, "failed": load.failed,
                      **{"%s_%s" % (n, k): v for n in s for k, v in s[n].items()}})
        if time.monotonic() >= next_push:
            # A policy push that matters to no connection here (a port nothing uses), new each time.
            pushes += 1
            mesh.write_config("soak-policy.yaml", POLICY_YAML % (pushes, 20000 + pushes % 1000))
            next_push += 10
        await asyncio.sleep(5)
    stats = await load.finish()
    mesh.remove_config("soak-policy.yaml")
    warm = [p for p in curve if p["t"] >= min(60, seconds / 5)]
    half = len(warm) // 2
    flat = {}
    for n in ("client", "server"):
        first = max(p["%s_rss_kb" % n] for p in warm[:half]) if half else 0
        second = max(p["%s_rss_kb" % n] for p in warm[half:]) if warm else 0
        fds = [p["%s_fds" % n] for p in warm]
        flat[n] = {"rss_kb_max_first_half": first, "rss_kb_max_second_half": second,
                   "fds_min": min(fds) if fds else 0, "fds_max": max(fds) if fds else 0}
    result = {"seconds": seconds, "policy_pushes": pushes, **stats, "flatness": flat, "curve": curve}
    checks = [
        ("no failed connection over the soak", stats["failed"] == 0),
        ("RSS flat after warm-up: second-half max <= first-half max + 5% + 1 MiB (both ztunnels)",
         all(f["rss_kb_max_second_half"] <= f["rss_kb_max_first_half"] * 1.05 + 1024 for f in flat.values())),
        ("fds flat after warm-up: within 40 of each other (pooled and live connections come and go)",
         all(f["fds_max"] - f["fds_min"] <= 40 for f in flat.values())),
    ]
    return result, checks


# ---------------------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------------------

def svg_plot(storm, soak):
    """Two panels: RSS (MiB) and fds of both ztunnels over time, for the storm and for the soak."""
    panels = []
    if storm and storm.get("curve"):
        panels.append(("storm: %d connections" % storm["connections"], storm["curve"]))
    if soak and soak.get("curve"):
        panels.append(("soak: %d s mixed load" % soak["seconds"], soak["curve"]))
    W, H, PAD = 520, 220, 45
    parts = []
    for col, (title, curve) in enumerate(panels):
        for row, (key, label, scale) in enumerate((("rss_kb", "RSS MiB", 1 / 1024), ("fds", "fds", 1))):
            x0, y0 = col * W, row * H
            ts = [p["t"] for p in curve]
            series = {n: [p.get("%s_%s" % (n, key), 0) * scale for p in curve] for n in ("client", "server")}
            vmax = max([max(v) for v in series.values() if v] + [1]) * 1.1
            tmax = max(ts + [1])
            parts.append('<text x="%d" y="%d" font-size="13">%s: %s</text>' % (x0 + PAD, y0 + 18, title, label))
            parts.append('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#999"/>'
                         % (x0 + PAD, y0 + 25, W - PAD - 15, H - 60))
            for frac in (0, 0.5, 1):
                y = y0 + 25 + (H - 60) * (1 - frac)
                parts.append('<text x="%d" y="%.0f" font-size="10" text-anchor="end">%.0f</text>'
                             % (x0 + PAD - 4, y + 3, vmax * frac))
            parts.append('<text x="%d" y="%d" font-size="10">0 s</text><text x="%d" y="%d" font-size="10" '
                         'text-anchor="end">%.0f s</text>' % (x0 + PAD, y0 + H - 22, x0 + W - 15, y0 + H - 22, tmax))
            for n, color in (("client", "#1f77b4"), ("server", "#d62728")):
                pts = " ".join("%.1f,%.1f" % (x0 + PAD + (W - PAD - 15) * t / tmax,
                                              y0 + 25 + (H - 60) * (1 - v / vmax))
                               for t, v in zip(ts, series[n]))
                parts.append('<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>' % (color, pts))
            parts.append('<text x="%d" y="%d" font-size="10" fill="#1f77b4">client ztunnel</text>'
                         '<text x="%d" y="%d" font-size="10" fill="#d62728">server ztunnel</text>'
                         % (x0 + PAD + 5, y0 + 38, x0 + PAD + 90, y0 + 38))
    width, height = max(1, len(panels)) * W, 2 * H
    return ('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif">'
            '<rect width="100%%" height="100%%" fill="white"/>%s</svg>\n' % (width, height, "".join(parts)))


def verdict(ok):
    return "n/a" if ok is None else "pass" if ok else "FAIL"


def markdown(report):
    out = ["# Hardening: storm, faults, soak (bench/hardening.sh)", "",
           "Last run %s on this machine (%s); binary %s%s. Each case below says when it ran." % (
               report["when"], report["machine"], report["ztunnel"],
               " (ASan+UBSan+LSan build)" if report["sanitized"] else ""),
           "Every case runs a real ztunnel pair with state and certificates from fake-istiod "
           "(certificates valid %d s, so rotations happen throughout); see bench/hardening/run.py." % report["cert_ttl_s"],
           "", "| case | check | result |", "|---|---|---|"]
    for name, case in report["cases"].items():
        for text, ok in case["checks"]:
            out.append("| %s | %s | %s |" % (name, text, "**FAIL**" if ok is False else verdict(ok)))
    out += ["", "## Observed", ""]
    for name, case in report["cases"].items():
        shown = {k: v for k, v in case["result"].items() if k != "curve"} if isinstance(case["result"], dict) else case["result"]
        out.append("- **%s** (%s, %.0f s): `%s`" % (name, case.get("ran", "an earlier run"), case["seconds"],
                                                   json.dumps(shown, sort_keys=True)))
    if report.get("sanitizer_logs") is not None:
        out += ["", "Sanitizer reports in the process logs after a graceful stop: %s; exit codes %s." % (
            report["sanitizer_logs"] or "none", json.dumps(report["exit_codes"], sort_keys=True))]
    out += ["", "RSS and fd curves: hardening.svg.", ""]
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------------------

ALL_CASES = ["storm", "kill_peer", "backend_rst", "cp_loss", "cert_expiry", "drain", "soak"]


async def main_async(args):
    # MAX_CONNECTIONS of both ztunnels: the storm's size, unless this machine's descriptor limit cannot hold
    # that many in one process (each connection is one descriptor in each ztunnel, plus ~250 of their own).
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    cap = args.storm_conns if hard >= args.storm_conns + 1000 else hard - 500
    mesh = Mesh(args.build, args.work, args.cert_ttl, cap)
    backend = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--backend"])
    if not wait_until(lambda: socket_open(SERVER_IP, APP_PORT), 10):
        raise Failure("the backend did not start")
    subprocess.run(["iptables", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", SERVER_IP, "--dport", str(APP_PORT),
                    "-m", "mark", "!", "--mark", str(MARK), "-j", "REDIRECT", "--to-ports", "15001"], check=True)
    report = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": "%d cores" % os.cpu_count(),
              "ztunnel": os.path.relpath(mesh.zt_bin, os.path.join(HERE, "..", "..")), "sanitized": mesh.sanitized,
              "cert_ttl_s": args.cert_ttl, "cases": {}}
    failed = False
    try:
        mesh.start_istiod()
        mesh.start_zt("server")
        mesh.start_zt("client")
        if not await echo_once():
            raise Failure("smoke test through the pair failed: " + mesh.tail("client"))
        for name in args.cases:
            log("case %s ..." % name)
            t0 = time.monotonic()
            if name == "storm":
                result, checks = await case_storm(mesh, args.storm_conns)
            elif name == "soak":
                result, checks = await case_soak(mesh, args.soak_seconds)
            else:
                result, checks = await globals()["case_" + name](mesh)
            for text, ok in checks:
                log("  %s %s" % (verdict(ok), text))
                failed |= ok is False
            report["cases"][name] = {"seconds": time.monotonic() - t0, "result": result, "checks": checks,
                                     "ran": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
            for n in ("istiod", "server", "client"):
                if not mesh.alive(n):
                    raise Failure("%s exited during %s: %s" % (n, name, mesh.tail(n)))
    finally:
        backend.kill()
        backend.wait()
        report["exit_codes"] = mesh.stop_all()
        if mesh.sanitized:
            found = []
            for name, paths in mesh.logs.items():
                for p in paths:
                    with open(p, errors="replace") as f:
                        text = f.read()
                    for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
                        if marker in text:
                            found.append("%s: %s" % (os.path.basename(p), marker))
            report["sanitizer_logs"] = ", ".join(found)
            if found:
                failed = True
                log("sanitizer reports: " + ", ".join(found))
            bad_exit = {n: c for n, c in report["exit_codes"].items() if n != "istiod" and c != 0}
            if bad_exit:
                failed = True
                log("ztunnel exit codes after SIGTERM: %s" % bad_exit)
    os.makedirs(args.out, exist_ok=True)
    previous = os.path.join(args.out, "hardening.json")
    if args.keep_other_cases and os.path.exists(previous):
        # Cases not run now keep their last results (each case records when it ran).
        with open(previous) as f:
            old = json.load(f)
        for name, case in old.get("cases", {}).items():
            report["cases"].setdefault(name, case)
        report["cases"] = {n: report["cases"][n] for n in ALL_CASES if n in report["cases"]}
    with open(os.path.join(args.out, "hardening.json"), "w") as f:
        json.dump(report, f, indent=1, sort_keys=True)
    with open(os.path.join(args.out, "hardening.md"), "w") as f:
        f.write(markdown(report))
    with open(os.path.join(args.out, "hardening.svg"), "w") as f:
        f.write(svg_plot(report["cases"].get("storm", {}).get("result"), report["cases"].get("soak", {}).get("result")))
    log("report: %s/hardening.md" % args.out)
    return 1 if failed else 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build")
    p.add_argument("--work")
    p.add_argument("--out")
    p.add_argument("--backend", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--storm-worker", type=int, help=argparse.SUPPRESS)
    p.add_argument("--storm-first", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--cases", default=",".join(ALL_CASES), help="comma-separated subset of " + ",".join(ALL_CASES))
    p.add_argument("--storm-conns", type=int, default=20000)
    p.add_argument("--soak-seconds", type=int, default=600)
    p.add_argument("--cert-ttl", type=int, default=90)
    p.add_argument("--keep-other-cases", action="store_true",
                   help="keep the other cases' last results in <out>/hardening.json (re-running one case)")
    args = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # children (ztunnels, workers) inherit it
    if args.backend:
        asyncio.run(serve_backend())
        return
    if args.storm_worker is not None:
        asyncio.run(storm_worker(args.storm_worker, args.storm_first))
        return
    if not (args.build and args.work and args.out):
        p.error("--build, --work and --out are required")
    args.cases = [c for c in args.cases.split(",") if c]
    for c in args.cases:
        if c not in ALL_CASES:
            p.error("unknown case %r (known: %s)" % (c, ", ".join(ALL_CASES)))
    try:
        sys.exit(asyncio.run(main_async(args)))
    except Failure as e:
        log("hardening: " + str(e))
        sys.exit(1)


if __name__ == "__main__":
    main()
