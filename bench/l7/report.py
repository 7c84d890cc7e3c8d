#!/usr/bin/env python3
"""report.py — turn bench/l7.sh's raw measurements (PATH<TAB>KEY<TAB>VALUE lines) into bench/results/l7.json,
l7.md and l7.svg (issue 6 targets: waypoint rps >= 0.8x nginx, p99 <= 2x nginx, idle RSS <= 15 MB).
No third-party modules: the SVG is written as text."""
import argparse
import datetime
import json
import math
import os
import platform
import statistics

PATHS = ["direct", "nginx", "relay3", "waypoint"]
LABEL = {"direct": "direct", "nginx": "nginx reverse proxy", "relay3": "3 plaintext TCP relays (haproxy, floor)",
         "waypoint": "ztunnel -> waypoint -> ztunnel"}
COLOR = {"direct": "#9e9e9e", "nginx": "#2ca02c", "relay3": "#1f77b4", "waypoint": "#d62728"}


def load_raw(path):
    raw = {}
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) == 3:
                raw.setdefault(parts[0], {}).setdefault(parts[1], []).append(parts[2])
    return raw


def med(raw, path, key):
    vals = []
    for v in raw.get(path, {}).get(key, []):
        try:
            x = float(v)
        except ValueError:
            continue
        if not math.isnan(x):
            vals.append(x)
    return statistics.median(vals) if vals else None


def fmt(x, digits=1):
    return "n/a" if x is None else f"{x:,.{digits}f}"


def bars(title, unit, values, x0, y0, w, h):
    """One bar chart: values = [(label, value, color)]."""
    out = [f'<text x="{x0}" y="{y0 - 8}" font-size="13" font-weight="bold">{title}</text>']
    top = max((v for _, v, _ in values if v), default=1) or 1
    bw = w / (len(values) * 1.5)
    for i, (label, v, color) in enumerate(values):
        bh = 0 if not v else h * v / top
        x = x0 + i * bw * 1.5
        out.append(f'<rect x="{x:.1f}" y="{y0 + h - bh:.1f}" width="{bw:.1f}" height="{bh:.1f}" fill="{color}"/>')
        out.append(f'<text x="{x + bw / 2:.1f}" y="{y0 + h - bh - 4:.1f}" font-size="11" text-anchor="middle">{fmt(v, 0 if (v or 0) > 100 else 2)}</text>')
        out.append(f'<text x="{x + bw / 2:.1f}" y="{y0 + h + 14:.1f}" font-size="10" text-anchor="middle">{label}</text>')
    out.append(f'<text x="{x0}" y="{y0 + h + 30}" font-size="10" fill="#555">{unit}</text>')
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--dur", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--load-start", default="")
    ap.add_argument("--load-end", default="")
    ap.add_argument("--seconds", type=int, default=0)
    a = ap.parse_args()
    raw = load_raw(a.raw)

    result = {}
    for p in PATHS:
        r = {"h1_rps": med(raw, p, "h1_rps"), "h1_p99_ms": med(raw, p, "h1_p99_ms"), "h1_p50_ms": med(raw, p, "h1_p50_ms"),
             "h2_rps": med(raw, p, "h2_rps"), "h2_mean_ms": med(raw, p, "h2_mean_ms")}
        rss = med(raw, p, "idle_rss_kb")
        r["idle_rss_mb"] = None if rss is None else round(rss / 1024, 2)
        after = med(raw, p, "after_rss_kb")
        if after is not None:
            r["after_rss_mb"] = round(after / 1024, 2)
        result[p] = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()}
    w, n, f = result["waypoint"], result["nginx"], result["relay3"]
    ratio = lambda x, y: None if (x is None or not y) else x / y
    targets = [
        ("HTTP/1.1 rps, waypoint / nginx", ratio(w["h1_rps"], n["h1_rps"]), ">= 0.8", lambda v: v is not None and v >= 0.8),
        ("HTTP/1.1 p99, waypoint / nginx", ratio(w["h1_p99_ms"], n["h1_p99_ms"]), "<= 2.0", lambda v: v is not None and v <= 2.0),
        ("waypoint idle RSS (MB)", w["idle_rss_mb"], "<= 15", lambda v: v is not None and v <= 15),
    ]
    h2_ratio = ratio(w["h2_rps"], n["h2_rps"])
    floor_ratio = ratio(f["h1_rps"], n["h1_rps"])
    of_floor = ratio(w["h1_rps"], f["h1_rps"])
    of_floor_h2 = ratio(w["h2_rps"], f["h2_rps"])
    counted_h1 = med(raw, "waypoint", "h1_counted")
    counted_h2 = med(raw, "waypoint", "h2_counted")
    reqs_h1 = med(raw, "waypoint", "h1_requests")
    ok_h2 = med(raw, "waypoint", "h2_succeeded")
    meta = {"date": datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC"), "host": platform.node(),
            "cpus": os.cpu_count(), "duration_s": a.dur, "rounds": a.rounds, "loadavg_start": a.load_start,
            "loadavg_end": a.load_end, "seconds": a.seconds,
            "waypoint_workers": med(raw, "meta", "waypoint_workers"), "nginx_workers": med(raw, "meta", "nginx_workers")}
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "l7.json"), "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")

    md = [f"# L7: the waypoint path vs nginx as a reverse proxy vs direct ({meta['date']})", "",
          f"bench/l7.sh, {a.rounds} round(s) of {a.dur} s per load, one network namespace on this machine ({meta['cpus']} CPUs, "
          f"load average {a.load_start} -> {a.load_end}). waypoint: {fmt(meta['waypoint_workers'], 0)} workers; nginx proxy: "
          f"{fmt(meta['nginx_workers'], 0)} workers. Every process shares the same cores; access logs off on both proxies.", "",
          "| path | HTTP/1.1 rps (wrk -c50) | p50 ms | p99 ms | HTTP/2 rps (h2load -c10 -m10) | h2 mean ms | idle RSS MB |",
          "|---|---|---|---|---|---|---|"]
    for p in PATHS:
        r = result[p]
        md.append(f"| {LABEL[p]} | {fmt(r['h1_rps'], 0)} | {fmt(r['h1_p50_ms'], 3)} | {fmt(r['h1_p99_ms'], 3)} | {fmt(r['h2_rps'], 0)} | "
                  f"{fmt(r['h2_mean_ms'], 3)} | {fmt(r['idle_rss_mb'], 2)} |")
    md += ["", "## Targets (issue 6)", "", "| target | measured | limit | |", "|---|---|---|---|"]
    for name, v, limit, ok in targets:
        md.append(f"| {name} | {fmt(v, 2)} | {limit} | {'met' if ok(v) else '**NOT MET**'} |")
    md += ["", "The floor of any three-proxy path on these cores: three chained plaintext TCP relays (haproxy, no TLS, no HTTP) "
           f"reach {fmt(floor_ratio, 2)}x the nginx path's HTTP/1.1 rps in this run; a 0.8x target for a path with three proxies is "
           "above that floor whenever this ratio is below 0.8. The waypoint path (mTLS on two hops, HTTP parsed, routed, "
           f"authorized and counted per request) reaches {fmt(of_floor, 2)}x the floor's HTTP/1.1 rps and "
           f"{fmt(of_floor_h2, 2)}x its HTTP/2 rps.", "",
           "CPU seconds per process during each load (the waypoint path has three proxies, nginx one, the floor three relays):", "",
           "| load | client ztunnel | waypoint | server ztunnel | nginx proxy | 3 relays |", "|---|---|---|---|---|---|"]
    for load in ("h1", "h2"):
        md.append(f"| {load} | {fmt(med(raw, 'waypoint', load + '_cpu_s_zt_client'), 2)} | {fmt(med(raw, 'waypoint', load + '_cpu_s_waypoint'), 2)} | "
                  f"{fmt(med(raw, 'waypoint', load + '_cpu_s_zt_server'), 2)} | {fmt(med(raw, 'nginx', load + '_cpu_s_proxy'), 2)} | "
                  f"{fmt(med(raw, 'relay3', load + '_cpu_s_relays'), 2)} |")
    md += ["", f"HTTP/2 rps, waypoint / nginx: {fmt(h2_ratio, 2)} (no target; nginx proxies HTTP/2 to an HTTP/1.1 upstream, the "
               "waypoint keeps HTTP/2 end to end).", ""]
    checked = (counted_h1 is not None and reqs_h1 is not None and counted_h1 >= reqs_h1 and
               counted_h2 is not None and ok_h2 is not None and counted_h2 >= ok_h2)
    md.append(f"Through the waypoint: istio_requests_total grew by {fmt(counted_h1, 0)} during the HTTP/1.1 load (wrk counted "
              f"{fmt(reqs_h1, 0)}) and by {fmt(counted_h2, 0)} during the HTTP/2 load (h2load succeeded {fmt(ok_h2, 0)}): "
              + ("verified." if checked else "**NOT VERIFIED**."))
    with open(os.path.join(a.out, "l7.md"), "w") as f:
        f.write("\n".join(md) + "\n")

    svg = ['<svg xmlns="http://www.w3.org/2000/svg" width="1000" height="300" font-family="sans-serif">',
           '<rect width="1000" height="300" fill="white"/>']
    svg += bars("HTTP/1.1 keep-alive", "requests/s (wrk -c50)", [(p, result[p]["h1_rps"], COLOR[p]) for p in PATHS], 20, 40, 300, 200)
    svg += bars("HTTP/1.1 p99", "ms", [(p, result[p]["h1_p99_ms"], COLOR[p]) for p in PATHS], 350, 40, 300, 200)
    svg += bars("HTTP/2", "requests/s (h2load -c10 -m10)", [(p, result[p]["h2_rps"], COLOR[p]) for p in PATHS], 680, 40, 300, 200)
    svg.append("</svg>")
    with open(os.path.join(a.out, "l7.svg"), "w") as f:
        f.write("\n".join(svg) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
