#!/usr/bin/env python3
"""The embedded default, end to end, without a cluster and without root.

Three ztunnels (dedicated mode) and a waypoint on loopback share one local config
(ztunnel/examples/embedded.yaml) and one built-in CA loaded from istiod-style cacerts files. An app on the
client side talks SOCKS5 to its ztunnel.
  L4: SOCKS5 -> ztunnel (client) -> HBONE (mTLS 1.3 + HTTP/2 CONNECT) -> ztunnel (server) -> echo app.
      One call is allowed by policy, one is denied.
  L7: HTTP to the `web` service goes SOCKS5 -> ztunnel -> HBONE -> waypoint -> HBONE -> ztunnel -> web v1 or v2:
      the waypoint routes by header (waypoint/examples/web-routes.yaml) and denies a path with 403.
The report shows identities, bytes, the policy decisions, the routes taken and the Istio metrics.

usage: embedded_demo.py BUILD_DIR
"""
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
HERE = os.path.dirname(os.path.abspath(__file__))
CONFIG = os.path.join(HERE, "..", "examples", "embedded.yaml")
ZTUNNEL = os.path.join(BUILD, "ztunnel", "ztunnel")
WAYPOINT = os.path.join(BUILD, "waypoint", "waypoint")
ROUTES = os.path.join(HERE, "..", "..", "waypoint", "examples", "web-routes.yaml")
HBONE_DEMO = os.path.join(BUILD, "ztunnel", "hbone-demo")
CLIENT_IP, SERVER_IP, WAYPOINT_IP, SERVER_V2_IP = "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"


def web_app(ip, port, version, stop):
    """A tiny HTTP/1.1 app: answers "web <version> <path>" and echoes the x-served-via header it got."""
    import http.server

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            body = ("web %s %s%s\n" % (version, self.path,
                    " (x-served-via: %s)" % self.headers["x-served-via"] if self.headers["x-served-via"] else "")).encode()
            self.send_response(200)
            self.send_header("content-type", "text/plain")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    class Server(http.server.ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request, client_address):
            pass  # a keep-alive connection closed by the mesh at shutdown is not an error of the demo

    srv = Server((ip, port), Handler)
    srv.timeout = 0.2
    while not stop.is_set():
        srv.handle_request()
    srv.server_close()


def http_via_socks(proxy_ip, dst_ip, dst_port, path, headers=None):
    """One HTTP/1.1 GET through SOCKS5. Returns (status, body)."""
    s = socket.create_connection((proxy_ip, 15080), timeout=10)
    with s:
        s.sendall(b"\x05\x01\x00")
        if s.recv(2) != b"\x05\x00":
            return (0, "")
        s.sendall(b"\x05\x01\x00\x01" + socket.inet_aton(dst_ip) + struct.pack(">H", dst_port))
        reply = b""
        while len(reply) < 10:
            chunk = s.recv(10 - len(reply))
            if not chunk:
                return (0, "")
            reply += chunk
        if reply[1] != 0:
            return (0, "")
        extra = "".join("%s: %s\r\n" % kv for kv in (headers or {}).items())
        s.sendall(("GET %s HTTP/1.1\r\nHost: web.demo.svc.cluster.local\r\n%sConnection: close\r\n\r\n" % (path, extra)).encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    try:
        status = int(head.split(b" ")[1])
    except (IndexError, ValueError):
        status = 0
    return (status, body.decode(errors="replace").strip())


def echo_app(ip, port, stop):
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((ip, port))
    srv.listen(64)
    srv.settimeout(0.2)

    def handle(c):
        with c:
            while True:
                data = c.recv(65536)
                if not data:
                    break
                c.sendall(data)

    while not stop.is_set():
        try:
            c, _ = srv.accept()
        except socket.timeout:
            continue
        threading.Thread(target=handle, args=(c,), daemon=True).start()
    srv.close()


def socks5_call(proxy_ip, dst_ip, dst_port, payload):
    """CONNECT through SOCKS5, send payload, half-close, read the echo. Returns (reply code, bytes back)."""
    s = socket.create_connection((proxy_ip, 15080), timeout=10)
    with s:
        s.sendall(b"\x05\x01\x00")
        if s.recv(2) != b"\x05\x00":
            return (-1, b"")
        s.sendall(b"\x05\x01\x00\x01" + socket.inet_aton(dst_ip) + struct.pack(">H", dst_port))
        reply = b""
        while len(reply) < 10:
            chunk = s.recv(10 - len(reply))
            if not chunk:
                break
            reply += chunk
        if len(reply) < 2 or reply[1] != 0:
            return (reply[1] if len(reply) > 1 else -1, b"")
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        got = bytearray()
        while True:
            try:
                data = s.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            got += data
        return (0, bytes(got))


def fetch(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read().decode()


def wait_ready(ip, proc, log):
    for _ in range(100):
        if proc.poll() is not None:
            sys.exit("process on %s exited at start-up:\n%s" % (ip, open(log).read()))
        try:
            if fetch("http://%s:15021/healthz/ready" % ip).startswith("ready"):
                return
        except OSError:
            pass
        time.sleep(0.1)
    sys.exit("process on %s did not become ready:\n%s" % (ip, open(log).read()))


def access_lines(log):
    return [l.rstrip() for l in open(log) if "access" in l and "connection" in l]


def field(line, key):
    for part in line.replace("\t", " ").split(" "):
        if part.startswith(key + "="):
            return part.split("=", 1)[1].strip('"')
    return ""


def main():
    tmp = tempfile.mkdtemp(prefix="ztunnel-demo-")
    subprocess.run([HBONE_DEMO, "ca", "--out", os.path.join(tmp, "cacerts")], check=True, stdout=subprocess.DEVNULL)
    stop = threading.Event()
    for port in (8080, 9090):
        threading.Thread(target=echo_app, args=(SERVER_IP, port, stop), daemon=True).start()
    threading.Thread(target=web_app, args=(SERVER_IP, 8081, "v1", stop), daemon=True).start()
    threading.Thread(target=web_app, args=(SERVER_V2_IP, 8081, "v2", stop), daemon=True).start()

    procs = {}
    for name, ip, info in (("server", SERVER_IP, "demo/server/server"), ("server-v2", SERVER_V2_IP, "demo/server-v2/server"),
                           ("client", CLIENT_IP, "demo/client/client")):
        log = os.path.join(tmp, name + ".log")
        env = dict(os.environ, LOCAL_XDS_PATH=CONFIG, PROXY_WORKLOAD_INFO=info, CA_CERTS_DIR=os.path.join(tmp, "cacerts"))
        args = [ZTUNNEL, "--bind", ip, "--admin", ip + ":15000", "--metrics", ip + ":15020", "--readiness", ip + ":15021"]
        procs[name] = (subprocess.Popen(args, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT), log, ip)
    log = os.path.join(tmp, "waypoint.log")
    env = dict(os.environ, LOCAL_XDS_PATH=CONFIG, WAYPOINT_CONFIG_PATHS=ROUTES, WAYPOINT_WORKLOAD_INFO="demo/waypoint/waypoint",
               CA_CERTS_DIR=os.path.join(tmp, "cacerts"))
    args = [WAYPOINT, "--bind", WAYPOINT_IP, "--admin", WAYPOINT_IP + ":15000", "--metrics", WAYPOINT_IP + ":15020",
            "--readiness", WAYPOINT_IP + ":15021"]
    procs["waypoint"] = (subprocess.Popen(args, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT), log, WAYPOINT_IP)
    for name, (proc, log, ip) in procs.items():
        wait_ready(ip, proc, log)

    ok = True
    print("== embedded default: three ztunnels and a waypoint on loopback, built-in CA from cacerts files, local config ==")
    print("client workload spiffe://cluster.local/ns/demo/sa/client at %s (apps use SOCKS5 %s:15080)" % (CLIENT_IP, CLIENT_IP))
    print("server workload spiffe://cluster.local/ns/demo/sa/server at %s (echo app :8080, admin app :9090)" % SERVER_IP)
    print()

    payload = os.urandom(1 << 20)
    code, back = socks5_call(CLIENT_IP, "127.10.0.10", 80, payload)
    allowed_ok = code == 0 and back == payload
    ok &= allowed_ok
    print("call 1: app -> echo.demo.svc.cluster.local (VIP 127.10.0.10:80) with 1 MiB")
    print("        %s" % ("allowed by policy allow-demo-namespace: 1 MiB echoed back byte-exact"
                          if allowed_ok else "FAILED: SOCKS5 reply %d, %d bytes back" % (code, len(back))))
    code, back = socks5_call(CLIENT_IP, SERVER_IP, 9090, b"let me in")
    denied_ok = code != 0 or back == b""
    ok &= denied_ok
    print("call 2: app -> server:9090 (the admin port)")
    print("        %s" % ("denied: the server ztunnel answered the CONNECT with 401, the app's connection was refused"
                          if denied_ok else "FAILED: the call went through"))
    time.sleep(0.3)

    print()
    print("-- L7: HTTP to web.demo.svc.cluster.local (VIP 127.10.0.11:80), whose waypoint is %s --" % WAYPOINT_IP)
    l7 = [("GET /hello", "/hello", {}, 200, "web v1 /hello (x-served-via: waypoint)"),
          ("GET /hello with x-version: v2", "/hello", {"x-version": "v2"}, 200, "web v2 /hello"),
          ("GET /admin/users", "/admin/users", {}, 403, "RBAC: access denied")]
    for label, path, headers, want_status, want_body in l7:
        status, body = http_via_socks(CLIENT_IP, "127.10.0.11", 80, path, headers)
        good = status == want_status and body == want_body
        ok &= good
        why = {200: "routed", 403: "denied by AuthorizationPolicy no-admin"}[want_status]
        print("call: %-32s -> %d %s   %s" % (label, status, body, why if good else "FAILED (wanted %d %s)" % (want_status, want_body)))
    print()
    print("-- what each ztunnel saw (access log) --")
    for name in ("client", "server", "server-v2"):
        for line in access_lines(procs[name][1]):
            print("%s ztunnel: %s -> %s  src.identity=%s dst.identity=%s bytes_sent=%s bytes_recv=%s%s" % (
                name, field(line, "src.addr"), field(line, "dst.hbone_addr") or field(line, "dst.addr"),
                field(line, "src.identity") or "-", field(line, "dst.identity") or "-",
                field(line, "bytes_sent") or "0", field(line, "bytes_recv") or "0",
                ("  error=" + line.split("error=", 1)[1]) if "error=" in line else ""))
    print()
    print("-- Istio metrics (server ztunnel, %s:15020/metrics) --" % SERVER_IP)
    metrics = fetch("http://%s:15020/metrics" % SERVER_IP)
    for line in metrics.splitlines():
        if line.startswith("istio_tcp_") and not line.startswith("#"):
            labels = dict(kv.split("=", 1) for kv in line[line.index("{") + 1:line.rindex("}")].split(",") if "=" in kv)
            short = ",".join("%s=%s" % (k, labels[k]) for k in ("reporter", "source_principal", "destination_workload",
                                                                 "response_flags", "connection_security_policy") if k in labels)
            print("%s{%s} %s" % (line[:line.index("{")], short, line.rsplit(" ", 1)[1]))
    deny_metric = any("response_flags=\"DENY\"" in l for l in metrics.splitlines() if l.startswith("istio_tcp_connections_closed_total"))
    ok &= deny_metric
    print()
    print("-- what the waypoint saw (one access-log line per request) --")
    for line in open(procs["waypoint"][1]):
        if "request:" in line:
            print("waypoint: method=%s path=%s src.identity=%s route=%s dst.service=%s upstream=%s status=%s flags=%s" % (
                field(line, "method"), field(line, "path"), field(line, "src.identity"), field(line, "route") or "-",
                field(line, "dst.service"), field(line, "upstream"), field(line, "status"), field(line, "flags")))
    print()
    print("-- Istio request metrics (waypoint, %s:15020/metrics, reporter=waypoint) --" % WAYPOINT_IP)
    wmetrics = fetch("http://%s:15020/metrics" % WAYPOINT_IP)
    counted = 0
    for line in wmetrics.splitlines():
        if line.startswith("istio_requests_total{"):
            labels = dict(kv.split("=", 1) for kv in line[line.index("{") + 1:line.rindex("}")].split(",") if "=" in kv)
            short = ",".join("%s=%s" % (k, labels[k]) for k in ("reporter", "source_principal", "destination_service",
                                                                 "destination_workload", "response_code", "response_flags") if k in labels)
            print("istio_requests_total{%s} %s" % (short, line.rsplit(" ", 1)[1]))
            counted += int(float(line.rsplit(" ", 1)[1]))
    ok &= counted == 3

    for name, (proc, log, ip) in procs.items():
        proc.send_signal(signal.SIGTERM)
    for name, (proc, log, ip) in procs.items():
        rc = proc.wait(timeout=15)
        ok &= rc == 0
    stop.set()
    print()
    print("RESULT: %s" % ("ok: mTLS tunnels carried the allowed call byte-exact and the L4 policy denied the other; the waypoint "
                          "routed by header and denied /admin with 403; metrics recorded every outcome"
                          if ok else "FAILED (logs in %s)" % tmp))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
