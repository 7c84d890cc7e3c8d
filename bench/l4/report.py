#!/usr/bin/env python3
"""report.py — turn bench/l4.sh's raw measurements (PAIR<TAB>KEY<TAB>VALUE lines) into
bench/results/l4.json, l4.md and l4.svg. No third-party modules: the SVG is written as text."""
import argparse
import datetime
import json
import math
import os
import platform
import statistics

PAIRS = ["direct", "plain", "haproxy", "stunnel", "ztunnel"]
LABEL = {"direct": "direct", "plain": "plain (haproxy, no TLS)", "haproxy": "haproxy mTLS",
         "stunnel": "stunnel mTLS", "ztunnel": "ztunnel (HBONE)"}
COLOR = {"direct": "#9e9e9e", "plain": "#607d8b", "haproxy": "#1f77b4", "stunnel": "#2ca02c", "ztunnel": "#d62728"}


def load_raw(path):
    raw = {}
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 3:
                continue
            raw.setdefault(parts[0], {}).setdefault(parts[1], []).append(parts[2])
    return raw


def nums(raw, pair, key):
    out = []
    for v in raw.get(pair, {}).get(key, []):
        try:
            x = float(v)
        except ValueError:
            continue
        if not math.isnan(x):
            out.append(x)
    return out


def med(raw, pair, key):
    v = nums(raw, pair, key)
    return statistics.median(v) if v else None


def total(raw, pair, key):
    return sum(nums(raw, pair, key))


def rnd(x, n):
    return None if x is None else round(x, n)


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def fmt(x, n=2):
    if x is None:
        return "-"
    if abs(x) >= 1000:
        return "{:,.0f}".format(x)
    return ("{:.%df}" % n).format(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--dur", default="5")
    ap.add_argument("--rounds", default="1")
    ap.add_argument("--conns", type=int, default=1000)
    ap.add_argument("--load-start", default="")
    ap.add_argument("--load-end", default="")
    ap.add_argument("--seconds", default="")
    a = ap.parse_args()
    raw = load_raw(a.raw)

    # ---- l4.json, exactly the shape ----
    rss = {}  # pair -> dict of per-process figures in MB
    for p in PAIRS[1:]:
        d = {}
        for k in ("idle", "idle_anon", "warm", "conns", "after"):
            for side in ("client", "server"):
                v = med(raw, p, ("%s_kb_%s" if k == "idle_anon" else "%s_rss_kb_%s") % (k, side))
                d["%s_%s" % (k, side)] = None if v is None else v / 1024.0
        if d["idle_client"] is not None and d["conns_client"] is not None:
            d["growth_client"] = d["conns_client"] - d["idle_client"]
            d["growth_server"] = d["conns_server"] - d["idle_server"]
        rss[p] = d
    result = {}
    for p in PAIRS:
        r = rss.get(p, {})
        idle = [r[k] for k in ("idle_client", "idle_server") if r.get(k) is not None]
        conns = [r[k] for k in ("conns_client", "conns_server") if r.get(k) is not None]
        result[p] = {
            "iperf_gbps": rnd(med(raw, p, "iperf_gbps"), 3),
            "keepalive_rps": rnd(med(raw, p, "keepalive_rps"), 0),
            "p99_ms": rnd(med(raw, p, "keepalive_p99_ms"), 3),
            "newconn_rps": rnd(med(raw, p, "newconn_rps"), 0),
            # per process: the larger of the pair's two processes (the targets are per ztunnel)
            "idle_rss_mb": rnd(max(idle), 2) if idle else None,
            "rss_1k_conns_mb": rnd(max(conns), 2) if conns else None,
        }
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "l4.json"), "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")

    # ---- targets ----
    z = result["ztunnel"]
    mtls = [p for p in ("haproxy", "stunnel")]
    best_tp = max((result[p]["iperf_gbps"] or 0 for p in mtls), default=0)
    best_tp_name = max(mtls, key=lambda p: result[p]["iperf_gbps"] or 0)
    best_rps = max((result[p]["keepalive_rps"] or 0 for p in mtls), default=0)
    best_rps_name = max(mtls, key=lambda p: result[p]["keepalive_rps"] or 0)
    p99s = [(result[p]["p99_ms"], p) for p in mtls if result[p]["p99_ms"] is not None]
    best_p99, best_p99_name = min(p99s) if p99s else (None, "-")

    def ratio(x, y):
        return None if x is None or not y else x / y

    zr = rss["ztunnel"]
    targets = [
        ("iperf vs plain haproxy pair", ratio(z["iperf_gbps"], result["plain"]["iperf_gbps"]), ">=", 0.9, "x"),
        ("iperf vs better mTLS peer (%s)" % best_tp_name, ratio(z["iperf_gbps"], best_tp), ">=", 1.0, "x"),
        ("keep-alive rps vs better mTLS peer (%s)" % best_rps_name, ratio(z["keepalive_rps"], best_rps), ">=", 1.3, "x"),
        ("new connections/s vs haproxy mTLS", ratio(z["newconn_rps"], result["haproxy"]["newconn_rps"]), ">=", 10.0, "x"),
        ("p99 vs better mTLS peer (%s)" % best_p99_name, ratio(z["p99_ms"], best_p99), "<=", 0.5, "x"),
        ("p99 vs direct", ratio(z["p99_ms"], result["direct"]["p99_ms"]), "<=", 5.0, "x"),
        ("idle RSS, client ztunnel", zr.get("idle_client"), "<=", 10.0, " MB"),
        ("idle RSS, server ztunnel", zr.get("idle_server"), "<=", 10.0, " MB"),
        ("RSS growth with %d conns, client ztunnel" % a.conns, zr.get("growth_client"), "<=", 32.0, " MB"),
        ("RSS growth with %d conns, server ztunnel" % a.conns, zr.get("growth_server"), "<=", 32.0, " MB"),
    ]

    # ---- HBONE verification ----
    verify = []
    zt_ok = True
    checks = [("hold", a.conns * len(nums(raw, "ztunnel", "opened_client_hold")), "%d held connections" % a.conns),
              ("iperf", 2 * len(nums(raw, "ztunnel", "opened_client_iperf")), "iperf3 control + data connection"),
              ("keepalive", 50 * len(nums(raw, "ztunnel", "opened_client_keepalive")), "wrk -c50"),
              ("latency1", 1 * len(nums(raw, "ztunnel", "opened_client_latency1")), "wrk -c1"),
              ("newconn", total(raw, "ztunnel", "newconn_requests"), "one per completed request (wrk count)")]
    for load, expected, why in checks:
        c = total(raw, "ztunnel", "opened_client_" + load)
        s = total(raw, "ztunnel", "opened_server_" + load)
        ok = expected > 0 and c >= expected and s >= expected
        zt_ok &= ok
        verify.append((load, int(expected), why, int(c), int(s), ok))

    # ---- l4.md ----
    meta = raw.get("meta", {})
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    L = []
    L.append("# L4 pairs: ztunnel vs peers (bench/l4.sh)")
    L.append("")
    L.append("Run %s on %d CPUs (%s), kernel %s. Load average (1/5/15 min) at start %s, at end %s. "
             "DUR=%s s per measurement, ROUNDS=%s (medians), whole run %s s. ztunnel worker threads: %s."
             % (now, os.cpu_count(), cpu_model(), platform.release(), a.load_start or "?", a.load_end or "?",
                a.dur, a.rounds, a.seconds or "?", (meta.get("zt_workers") or ["?"])[0]))
    L.append("")
    L.append("| pair | iperf3 Gbps | keep-alive rps | p99 ms | new conn/s | idle RSS MB | RSS %d conns MB |" % a.conns)
    L.append("|---|---:|---:|---:|---:|---:|---:|")
    for p in PAIRS:
        r = result[p]
        L.append("| %s | %s | %s | %s | %s | %s | %s |" % (LABEL[p], fmt(r["iperf_gbps"]), fmt(r["keepalive_rps"], 0),
                                                         fmt(r["p99_ms"]), fmt(r["newconn_rps"], 0),
                                                         fmt(r["idle_rss_mb"], 1), fmt(r["rss_1k_conns_mb"], 1)))
    L.append("")
    L.append("p99 is wrk's 99th percentile at 50 keep-alive connections in a closed loop, so it measures queueing "
             "and how evenly a pair serves its 50 connections as much as the path itself; the one-connection "
             "latency in the detail table is the path alone.")
    L.append("")
    L.append("RSS columns: the larger of the pair's two processes (VmRSS). Idle = ready, before any traffic; then %d keep-alive HTTP connections are opened through the pair (each answered "
             "once, so every hop holds it) and held while RSS is read." % a.conns)
    L.append("")
    L.append("## Targets (issue 3), ztunnel pair, same run")
    L.append("")
    L.append("| target | measured | goal | |")
    L.append("|---|---:|---:|---|")
    for name, val, op, goal, unit in targets:
        if val is None:
            L.append("| %s | - | %s %g%s | not measured |" % (name, op, goal, unit))
            continue
        met = val >= goal if op == ">=" else val <= goal
        L.append("| %s | %.2f%s | %s %g%s | %s |" % (name, val, unit, op, goal, unit, "met" if met else "**not met**"))
    L.append("")
    L.append("## Did the ztunnel measurements go through HBONE?")
    L.append("")
    L.append("`istio_tcp_connections_opened_total` (summed over label sets) on each ztunnel, read before and after "
             "each ztunnel measurement, against the connections the load opened:")
    L.append("")
    L.append("| load | expected at least | why | client ztunnel (reporter=source) | server ztunnel (reporter=destination) | |")
    L.append("|---|---:|---|---:|---:|---|")
    for load, exp, why, c, s, ok in verify:
        L.append("| %s | %d | %s | %d | %d | %s |" % (load, exp, why, c, s, "ok" if ok else "**NOT VERIFIED**"))
    L.append("")
    L.append("Access log over the whole run: %s inbound lines on the server ztunnel, %s outbound lines on the "
             "client ztunnel, %s lines with an error (kinds below; wrk also cuts its connections when a run ends)."
             % ((meta.get("access_log_inbound") or ["?"])[0], (meta.get("access_log_outbound") or ["?"])[0],
                (meta.get("access_log_errors") or ["?"])[0]))
    for side in ("client", "server"):
        errs = meta.get("errors_" + side) or []
        if errs:
            L.append("")
            L.append("Most frequent errors in the %s ztunnel's access log (numbers folded to N):" % side)
            L.append("")
            for e in errs:
                n, _, what = e.partition(" ")
                L.append("- %s x `%s`" % (n, what.replace("`", "'")))
    if any("REFUSED_STREAM" in e for e in meta.get("errors_client") or []):
        L.append("")
        L.append("REFUSED_STREAM on the client with GOAWAY(INTERNAL_ERROR) from the server: streams ended by the "
                 "client's RST_STREAM trip the server libnghttp2's rapid-reset limit; see bench/README.md, "
                 "section \"L4 pairs\".")
    if not zt_ok:
        L.append("")
        L.append("**WARNING: some ztunnel measurements are not accounted for by the ztunnels' metrics; the ztunnel "
                 "row may not be a tunnel measurement.**")
    L.append("")
    L.append("## Detail")
    L.append("")
    L.append("Proxy CPU seconds (both processes of the pair, utime+stime from /proc) over each measurement, and what "
             "that is per unit of work; latency of one keep-alive connection alone (`wrk -c1`: the round trip through the pair "
             "without queueing); wrk errors (socket errors: connect/read/write/timeout).")
    L.append("")
    L.append("| pair | iperf CPU s | CPU s/GB | keep-alive CPU s | CPU us/req | new-conn CPU s | CPU us/conn | new-conn p99 ms | 1-conn p50 / p99 ms | wrk errors (ka/nc) |")
    L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    dur = float(a.dur)
    for p in PAIRS:
        r = result[p]
        ic, kc, nc = med(raw, p, "iperf_cpu_s"), med(raw, p, "keepalive_cpu_s"), med(raw, p, "newconn_cpu_s")
        gb = (r["iperf_gbps"] or 0) * dur / 8
        kreq = (r["keepalive_rps"] or 0) * dur
        nreq = (r["newconn_rps"] or 0) * dur
        if p == "direct":
            ic = kc = nc = None
        L.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s / %s | %s/%s |" % (
            LABEL[p], fmt(ic), fmt(ic / gb if ic is not None and gb else None), fmt(kc),
            fmt(kc * 1e6 / kreq if kc is not None and kreq else None, 1), fmt(nc),
            fmt(nc * 1e6 / nreq if nc is not None and nreq else None, 1), fmt(med(raw, p, "newconn_p99_ms")),
            fmt(med(raw, p, "latency1_p50_ms"), 3), fmt(med(raw, p, "latency1_p99_ms"), 3),
            int(total(raw, p, "keepalive_errors")), int(total(raw, p, "newconn_errors"))))
    L.append("")
    L.append("Per-process CPU seconds, client side / server side:")
    L.append("")
    L.append("| pair | iperf | keep-alive | new-conn |")
    L.append("|---|---:|---:|---:|")
    for p in PAIRS[1:]:
        L.append("| %s | %s |" % (LABEL[p], " | ".join(
            "%s / %s" % (fmt(med(raw, p, "%s_cpu_s_client" % k)), fmt(med(raw, p, "%s_cpu_s_server" % k)))
            for k in ("iperf", "keepalive", "newconn"))))
    L.append("")
    L.append("RSS per process, MB (client side / server side). Idle: ready, no traffic yet (the JSON figure); "
             "anonymous part: `RssAnon` (heap, stacks; the rest is mapped binary and shared-library pages); "
             "warm: idle again after one smoke-test request through every pair; growth: with %d conns minus idle."
             % a.conns)
    L.append("")
    L.append("| pair | idle | idle, anonymous part | warm | with %d conns | growth | after all loads |" % a.conns)
    L.append("|---|---:|---:|---:|---:|---:|---:|")
    for p in PAIRS[1:]:
        d = rss[p]
        L.append("| %s | %s / %s | %s / %s | %s / %s | %s / %s | %s / %s | %s / %s |" % (
            LABEL[p], fmt(d.get("idle_client"), 1), fmt(d.get("idle_server"), 1),
            fmt(d.get("idle_anon_client"), 1), fmt(d.get("idle_anon_server"), 1),
            fmt(d.get("warm_client"), 1), fmt(d.get("warm_server"), 1), fmt(d.get("conns_client"), 1),
            fmt(d.get("conns_server"), 1), fmt(d.get("growth_client"), 1), fmt(d.get("growth_server"), 1),
            fmt(d.get("after_client"), 1), fmt(d.get("after_server"), 1)))
    hold = {p: (raw.get(p, {}).get("hold_status") or ["-"])[0] for p in PAIRS[1:]}
    L.append("")
    L.append("Connection holder result: " + ", ".join("%s: %s" % (p, hold[p]) for p in PAIRS[1:]) + ".")
    L.append("")
    L.append("## How it was measured")
    L.append("")
    L.append("- Two network namespaces made for the run, loopback only. Peers (`direct`, `plain`, `haproxy`, "
             "`stunnel`) in one, with no iptables rules (so no conntrack); the ztunnel pair in the other, with its "
             "own iperf3 server and nginx.")
    L.append("- Capture: the ztunnel netns has `iptables -t nat -A OUTPUT -p tcp -d 127.0.0.3 -m multiport --dports "
             "5201,8080 -m mark ! --mark 0x539 -j REDIRECT --to-ports 15001`. REDIRECT of a locally generated packet "
             "rewrites the destination to 127.0.0.1:15001: the client ztunnel (`--bind 127.0.0.1`, workload `client` "
             "= 127.0.0.1). It reads `SO_ORIGINAL_DST` (127.0.0.3:port = workload `server`, protocol HBONE) and "
             "opens a CONNECT stream to the server ztunnel on 127.0.0.3:15008 (`--bind 127.0.0.3`), which connects to "
             "the app. Both ztunnels run with `--packet-mark 1337` so their own sockets are not captured. Built-in CA "
             "from `hbone-demo ca` files shared by both, config from a local file (`LOCAL_XDS_PATH`), default "
             "settings otherwise (access log at info, 2 worker threads unless `ZT_WORKERS`).")
    L.append("- Peers: one haproxy process per side with one thread each (plain pair and mTLS pair), one stunnel "
             "process per side; TLS 1.3 only, TLS_AES_128_GCM_SHA256, P-256 ECDHE and P-256 ECDSA SPIFFE "
             "certificates, mutual verification. nginx: one worker, `return 200`, keep-alive; iperf3 server.")
    L.append("- Loads per pair: `iperf3 -c -t DUR` (one stream, receiver Gbps); `wrk -t1 -c50 -dDUR --latency` "
             "(keep-alive; rps and the 99th percentile); the same with `-H 'Connection: close'` (one connection per "
             "request: new connections/s). Loads run load by load, pair after pair (all iperf3 runs, then all "
             "keep-alive runs, then all new-connection runs), ROUNDS times.")
    L.append("- On a shared 2-CPU machine every process (load generator, backend, two proxies) competes for the "
             "same two cores, so compare ratios within this run, not absolute numbers across runs.")
    with open(os.path.join(a.out, "l4.md"), "w") as f:
        f.write("\n".join(L) + "\n")

    # ---- l4.svg: one panel per figure, one bar per pair ----
    panels = [("iperf3, Gbps", "iperf_gbps", 1.0, "{:.2f}"), ("keep-alive, k req/s", "keepalive_rps", 1e-3, "{:.1f}"),
              ("p99 keep-alive, ms", "p99_ms", 1.0, "{:.2f}"), ("new connections, k/s", "newconn_rps", 1e-3, "{:.2f}"),
              ("idle RSS, MB", "idle_rss_mb", 1.0, "{:.1f}"), ("RSS %d conns, MB" % a.conns, "rss_1k_conns_mb", 1.0, "{:.1f}")]
    pw, ph, top, bottom, left = 230, 230, 60, 40, 20
    width = left + pw * 3 + 20
    height = top + (ph + bottom) * 2 + 30
    s = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">'
         % (width, height), '<rect width="100%" height="100%" fill="white"/>',
         '<text x="%d" y="22" font-size="15" font-weight="bold">ztunnel L4 pair vs peers, one run (%s, %d CPUs, load %s)</text>'
         % (left, now, os.cpu_count(), a.load_start)]
    lx = left
    for p in PAIRS:
        s.append('<rect x="%d" y="34" width="10" height="10" fill="%s"/><text x="%d" y="43">%s</text>'
                 % (lx, COLOR[p], lx + 14, LABEL[p]))
        lx += 14 + 7 * len(LABEL[p]) + 14
    for i, (title, key, scale, vf) in enumerate(panels):
        x0 = left + (i % 3) * pw
        y0 = top + (i // 3) * (ph + bottom)
        vals = [(p, result[p][key] * scale if result[p][key] is not None else None) for p in PAIRS]
        vmax = max([v for _, v in vals if v is not None] or [1]) or 1
        inner_h = ph - 50
        s.append('<text x="%d" y="%d" font-size="12" font-weight="bold">%s</text>' % (x0 + 10, y0 + 14, title))
        base = y0 + 30 + inner_h
        s.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333"/>' % (x0 + 10, base, x0 + pw - 20, base))
        bw = (pw - 40) / len(PAIRS)
        for j, (p, v) in enumerate(vals):
            bx = x0 + 14 + j * bw
            if v is None:
                s.append('<text x="%.1f" y="%d" text-anchor="middle" fill="#999">n/a</text>' % (bx + bw * 0.4, base - 4))
                continue
            h = inner_h * v / vmax
            s.append('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>' % (bx, base - h, bw * 0.8, h, COLOR[p]))
            s.append('<text x="%.1f" y="%.1f" text-anchor="middle" font-size="10">%s</text>'
                     % (bx + bw * 0.4, base - h - 3, vf.format(v)))
            s.append('<text x="%.1f" y="%d" text-anchor="middle" font-size="9">%s</text>' % (bx + bw * 0.4, base + 12, p))
    s.append('<text x="%d" y="%d" font-size="10" fill="#555">bench/l4.sh: iperf3 1 stream; wrk -t1 -c50 keep-alive and '
             'Connection: close against nginx; RSS = larger process of each pair. Details in l4.md.</text>'
             % (left, height - 10))
    s.append("</svg>")
    with open(os.path.join(a.out, "l4.svg"), "w") as f:
        f.write("\n".join(s) + "\n")

    print("\n".join(L[:L.index("## Detail")]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
