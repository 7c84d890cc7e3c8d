#!/usr/bin/env bash
# bench/run.sh [BUILD_DIR] — HBONE bulk throughput next to its peers, all in one run on this machine
# (DESIGN.md section 9: figures are ratios against peers measured in the same run).
#
# Builds nothing: BUILD_DIR (default: build) must hold bench/bench-hbone-throughput. Each round runs,
# back to back, over loopback only:
#   iperf3 direct            single stream, DUR seconds, no proxy: the machine's physical limit
#   haproxy plain pair       iperf3 -> haproxy -> haproxy -> iperf3, no TLS: the copy-bound limit of any pair
#   stunnel mTLS pair        the same through two stunnel processes, TLS 1.3 AES-128-GCM, P-256 certs, mTLS
#   haproxy mTLS pair        the same through two haproxy processes (one thread each)
#   bench-hbone-throughput   our plain TLS / HBONE / h2c / TCP modes (--repeat 1 per round)
# ROUNDS rounds (default 3) interleave everything; medians over rounds are reported. Writes
# bench/results/hbone_throughput.{md,svg,json}. Every process started here is killed on exit.
#
# Environment: ROUNDS (3), DUR (5, seconds per iperf3 run), BYTES (1Gi, per bench run).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-build}
[[ "$build" = /* ]] || build="$here/../$build"
bin="$build/bench/bench-hbone-throughput"
ROUNDS=${ROUNDS:-3}
DUR=${DUR:-5}
BYTES=${BYTES:-1Gi}
results="$here/results"
for tool in iperf3 stunnel haproxy openssl python3; do
  command -v "$tool" >/dev/null || { echo "run.sh: $tool not found (setup.sh installs it)" >&2; exit 1; }
done
[ -x "$bin" ] || { echo "run.sh: $bin not found; build it first (see bench/README.md)" >&2; exit 1; }
mkdir -p "$results"

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- certificates: a P-256 root and two SPIFFE leaves, as the built-in CA issues them ----
c="$work/certs"; mkdir -p "$c"
openssl ecparam -name prime256v1 -genkey -noout -out "$c/ca-key.pem" 2>/dev/null
openssl req -x509 -new -key "$c/ca-key.pem" -sha256 -days 2 -subj "/O=cluster.local" -out "$c/ca.pem" 2>/dev/null
for n in client server; do
  openssl ecparam -name prime256v1 -genkey -noout -out "$c/$n-key.pem" 2>/dev/null
  openssl req -new -key "$c/$n-key.pem" -subj "/O=bench" -out "$c/$n.csr" 2>/dev/null
  printf "subjectAltName=critical,URI:spiffe://cluster.local/ns/bench/sa/%s\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n" "$n" > "$c/$n.ext"
  openssl x509 -req -in "$c/$n.csr" -CA "$c/ca.pem" -CAkey "$c/ca-key.pem" -CAcreateserial -days 2 -sha256 \
    -extfile "$c/$n.ext" -out "$c/$n-cert.pem" 2>/dev/null
  cat "$c/$n-cert.pem" "$c/$n-key.pem" > "$c/$n-bundle.pem"
done
[ -s "$c/server-bundle.pem" ] || { echo "run.sh: certificate generation failed" >&2; exit 1; }

# ---- ports: free loopback ports below the ephemeral range, so outgoing connections of other jobs on
# this machine (tests run in parallel) cannot take them between this check and the peers' bind ----
read -r P_IPERF P_ST_C P_ST_S P_HA_C P_HA_S P_PL_C P_PL_S < <(python3 -c '
import random, socket
lo = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
picked = []
for port in random.sample(range(20000, max(20100, lo)), 400):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port)); picked.append(port)
    except OSError:
        pass
    finally:
        s.close()
    if len(picked) == 7: break
print(" ".join(map(str, picked)))')
[ -n "$P_PL_S" ] || { echo "run.sh: no free ports" >&2; exit 1; }

# ---- peers ----
iperf3 -s -B 127.0.0.1 -p "$P_IPERF" >"$work/iperf3.log" 2>&1 & pids+=($!); pid_iperf=$!

stunnel_conf() {  # NAME ROLE ACCEPT CONNECT
  {
    echo "foreground = yes"; echo "pid ="; echo "[tunnel]"
    [ "$2" = client ] && echo "client = yes"
    echo "accept = 127.0.0.1:$3"; echo "connect = 127.0.0.1:$4"
    echo "cert = $c/$2-cert.pem"; echo "key = $c/$2-key.pem"; echo "CAfile = $c/ca.pem"
    echo "verifyChain = yes"; [ "$2" = server ] && echo "requireCert = yes"
    echo "sslVersion = TLSv1.3"; echo "ciphersuites = TLS_AES_128_GCM_SHA256"
  } > "$work/$1.conf"
}
stunnel_conf st-client client "$P_ST_C" "$P_ST_S"
stunnel_conf st-server server "$P_ST_S" "$P_IPERF"
stunnel "$work/st-server.conf" >"$work/st-server.log" 2>&1 & pids+=($!); pid_st_s=$!
stunnel "$work/st-client.conf" >"$work/st-client.log" 2>&1 & pids+=($!); pid_st_c=$!

# One haproxy process per side (one thread each), like two nodes' proxies, not one process doing both.
haproxy_conf() {  # NAME BIND-LINE SERVER-LINE
  cat > "$work/$1.cfg" <<EOF
global
  nbthread 1
  maxconn 1000
  ssl-default-bind-options ssl-min-ver TLSv1.3
  ssl-default-server-options ssl-min-ver TLSv1.3
  ssl-default-bind-ciphersuites TLS_AES_128_GCM_SHA256
  ssl-default-server-ciphersuites TLS_AES_128_GCM_SHA256
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
listen tunnel
  $2
  $3
EOF
}
haproxy_conf ha-client "bind 127.0.0.1:$P_HA_C" \
  "server s 127.0.0.1:$P_HA_S ssl crt $c/client-bundle.pem ca-file $c/ca.pem verify required"
haproxy_conf ha-server "bind 127.0.0.1:$P_HA_S ssl crt $c/server-bundle.pem ca-file $c/ca.pem verify required" \
  "server s 127.0.0.1:$P_IPERF"
haproxy_conf pl-client "bind 127.0.0.1:$P_PL_C" "server s 127.0.0.1:$P_PL_S"
haproxy_conf pl-server "bind 127.0.0.1:$P_PL_S" "server s 127.0.0.1:$P_IPERF"
start_haproxy() { haproxy -db -f "$work/$1.cfg" >"$work/$1.log" 2>&1 & pids+=($!); }
start_haproxy ha-server; pid_ha_server=$!
start_haproxy ha-client; pid_ha_client=$!
start_haproxy pl-server; pid_pl_server=$!
start_haproxy pl-client; pid_pl_client=$!
sleep 1
for n in iperf st_s st_c ha_server ha_client pl_server pl_client; do
  p=pid_$n
  kill -0 "${!p}" 2>/dev/null || { echo "run.sh: peer $n did not start; logs:" >&2; tail -n 5 "$work"/*.log >&2; exit 1; }
done

# utime+stime of processes (all their threads), in seconds.
clk=$(getconf CLK_TCK)
cpu_of() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{sub(/.*\) /,""); print $12+$13}' "/proc/$p/stat"))); done; echo "$t"; }

# One iperf3 run through PORT; prints "gbps bytes proxy_cpu_s" (proxy CPU of PIDS over the run).
iperf_row() {  # PORT PIDS...
  local port=$1; shift
  local before after json
  before=$(cpu_of "$@")
  json=$(iperf3 -c 127.0.0.1 -p "$port" -t "$DUR" -J 2>/dev/null)
  after=$(cpu_of "$@")
  python3 -c '
import json,sys
try:
    d=json.loads(sys.argv[1]); r=d["end"]["sum_received"]
    print("%.4f %d %.3f" % (r["bits_per_second"]/1e9, r["bytes"], (int(sys.argv[3])-int(sys.argv[2]))/int(sys.argv[4])))
except Exception:
    print("nan 0 nan")' "$json" "$before" "$after" "$clk"
}

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
: > "$work/peers.tsv"
for ((r = 1; r <= ROUNDS; r++)); do
  echo "# round $r/$ROUNDS" >&2
  printf "direct\t%s\n"        "$(iperf_row "$P_IPERF" "$pid_iperf")" >> "$work/peers.tsv"
  printf "haproxy_plain\t%s\n" "$(iperf_row "$P_PL_C" "$pid_pl_client" "$pid_pl_server")" >> "$work/peers.tsv"
  printf "stunnel_mtls\t%s\n"  "$(iperf_row "$P_ST_C" "$pid_st_c" "$pid_st_s")" >> "$work/peers.tsv"
  printf "haproxy_mtls\t%s\n"  "$(iperf_row "$P_HA_C" "$pid_ha_client" "$pid_ha_server")" >> "$work/peers.tsv"
  "$bin" --bytes="$BYTES" --repeat=1 --out="$work/bench-$r.json" >"$work/bench-$r.txt" 2>&1 \
    || { echo "run.sh: bench-hbone-throughput failed:" >&2; cat "$work/bench-$r.txt" >&2; exit 1; }
  grep '^# run' "$work/bench-$r.txt" >&2
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)
negotiated=$(grep -m1 '^hbone negotiated:' "$work/bench-1.txt" | sed 's/^hbone negotiated: //')

# ---- report: JSON (all runs), markdown table, SVG bar chart ----
python3 - "$work" "$ROUNDS" "$results" "$DUR" "$BYTES" "$load_start" "$load_end" "$negotiated" \
  "$(nproc)" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')" "$(uname -r)" \
  "$(haproxy -v | head -1 | cut -d' ' -f1-3)" "$(stunnel -version 2>&1 | grep -m1 '^stunnel' | cut -d' ' -f1-2)" \
  "$(iperf3 --version | head -1 | cut -d' ' -f1-2)" <<'PY'
import json, math, statistics, sys, datetime, html
work, rounds, out, dur, nbytes, load0, load1, neg, ncpu, cpu, kernel, hap, stun, iperf = sys.argv[1:15]
rounds = int(rounds)
med = lambda v: statistics.median(v) if v else float("nan")

rows = {}  # key -> {"gbps": [...], "cpu_per_gib": [...]}
def add(key, gbps, cpu_per_gib):
    r = rows.setdefault(key, {"gbps": [], "cpu_per_gib": []})
    if not math.isnan(gbps): r["gbps"].append(gbps)
    if not math.isnan(cpu_per_gib): r["cpu_per_gib"].append(cpu_per_gib)

for line in open(f"{work}/peers.tsv"):
    key, rest = line.rstrip("\n").split("\t")
    gbps, nb, cpu_s = rest.split()
    gbps, nb, cpu_s = float(gbps), int(nb), float(cpu_s)
    add(key, gbps, cpu_s / (nb / 2**30) if nb and key != "direct" else float("nan"))
for r in range(1, rounds + 1):
    d = json.load(open(f"{work}/bench-{r}.json"))
    gib = d["bytes"] / 2**30
    for mode, m in d["modes"].items():
        add(mode, m["gbps"], (m["client_cpu_s"] + m["server_cpu_s"]) / gib)

setups = [  # key, label, what it is, ours?
    ("hbone", "HBONE (ours)", "TLS 1.3 + HTTP/2 CONNECT stream, client and server threads in one process", True),
    ("tls", "plain TLS (ours)", "TlsStream to TlsStream, same TLS stack, no HTTP/2", True),
    ("h2c", "h2c (ours, diagnostic)", "the HBONE path without TLS: cost of the HTTP/2 layer alone", True),
    ("tcp", "TCP (ours)", "TcpStream to TcpStream, same harness, no TLS", True),
    ("direct", "iperf3 direct", "iperf3 client to server, no proxy", False),
    ("haproxy_plain", "haproxy plain pair", "iperf3 through two haproxy processes, no TLS", False),
    ("stunnel_mtls", "stunnel mTLS pair", "iperf3 through two stunnel processes, mTLS", False),
    ("haproxy_mtls", "haproxy mTLS pair", "iperf3 through two haproxy processes, mTLS", False),
]
G = {k: med(rows.get(k, {}).get("gbps", [])) for k, *_ in setups}
hb = G["hbone"]
ratio = lambda k: hb / G[k] if G.get(k) and not math.isnan(G[k]) and G[k] > 0 else float("nan")
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
fmt = lambda x, p=2: "n/a" if x is None or math.isnan(x) else f"{x:.{p}f}"
L = []
L.append("# HBONE bulk throughput vs peers\n")
L.append(f"Generated by `bench/run.sh` on {now}. Machine: {ncpu} CPUs, {cpu}, kernel {kernel}. "
         f"Load average at start {load0}, at end {load1} (the machine is shared: anything above ~0 means other "
         f"jobs competed for the {ncpu} CPUs and the absolute numbers are low; ratios within a round are the figure).\n")
L.append(f"{rounds} interleaved rounds; each round: iperf3 single stream for {dur} s through each peer, then one "
         f"bench-hbone-throughput run per mode of {nbytes} bytes. Medians over rounds; min-max in brackets. "
         f"Our TLS: {neg}, P-256 certificates. Peers: TLS 1.3 TLS_AES_128_GCM_SHA256, P-256 certificates, mTLS. "
         f"Versions: {hap}, {stun}, {iperf}.\n")
L.append("| setup | Gbps (median) | [min-max] | CPU s/GiB | HBONE / this | what it is |")
L.append("|---|---:|---:|---:|---:|---|")
for k, label, what, ours in setups:
    g = rows.get(k, {}).get("gbps", [])
    c = rows.get(k, {}).get("cpu_per_gib", [])
    rng = f"[{min(g):.2f}-{max(g):.2f}]" if g else "n/a"
    L.append(f"| {label} | {fmt(med(g))} | {rng} | {fmt(med(c), 3) if c else 'n/a'} | "
             f"{'1.00' if k == 'hbone' else fmt(ratio(k))} | {what} |")
target = ratio("tls")
# Same-round pairs are less exposed to load changing between rounds than a ratio of medians.
paired = med([h / t for h, t in zip(rows.get("hbone", {}).get("gbps", []), rows.get("tls", {}).get("gbps", [])) if t > 0])
cpu_ratio = med(rows.get("hbone", {}).get("cpu_per_gib", [])) / med(rows.get("tls", {}).get("cpu_per_gib", [])) \
    if rows.get("tls", {}).get("cpu_per_gib") else float("nan")
nan_to_none = lambda x: None if isinstance(x, float) and math.isnan(x) else x
json.dump({"date": now, "nproc": int(ncpu), "cpu": cpu, "kernel": kernel, "rounds": rounds, "iperf_seconds": int(dur),
           "bench_bytes": nbytes, "load_start": load0, "load_end": load1, "negotiated": neg,
           "rows": rows, "median_gbps": {k: nan_to_none(v) for k, v in G.items()},
           "hbone_vs_tls_paired": nan_to_none(paired), "hbone_vs_tls_cpu": nan_to_none(cpu_ratio),
           "hbone_ratio": {k: nan_to_none(ratio(k)) for k, *_ in setups if k != "hbone"}},
          open(f"{out}/hbone_throughput.json", "w"), indent=2)
L.append("")
L.append(f"**HBONE / plain TLS = {fmt(target)}x** (target >= 0.80x: {'met' if target >= 0.8 else 'NOT met'}); "
         f"median of the per-round ratios {fmt(paired)}x; CPU per GiB HBONE / plain TLS = {fmt(cpu_ratio)}x "
         f"(lower is better; the steadier figure when the machine is loaded). "
         f"HBONE / iperf3 direct = {fmt(ratio('direct'))}x; HBONE / stunnel mTLS pair = {fmt(ratio('stunnel_mtls'))}x; "
         f"HBONE / haproxy mTLS pair = {fmt(ratio('haproxy_mtls'))}x; HBONE / haproxy plain pair = "
         f"{fmt(ratio('haproxy_plain'))}x.\n")
L.append("CPU s/GiB: ours = client thread + server thread CPU over the transfer (both tunnel ends, which are "
         "also the data source and sink); proxy pairs = both proxy processes (utime+stime), not the iperf3 "
         "endpoints; direct: not measured. Not the same topology: a proxy pair moves each byte through three TCP "
         "connections and four processes on these CPUs, our modes through one connection and two threads. "
         "Compare ours with ours (HBONE vs plain TLS vs TCP) as the figure, and the peers as context.\n")
open(f"{out}/hbone_throughput.md", "w").write("\n".join(L) + "\n")

# Horizontal bars with min-max whiskers; ours in blue, peers in grey.
W, left, bar_h, gap, top = 760, 200, 22, 10, 50
maxg = max([max(rows[k]["gbps"]) for k, *_ in setups if rows.get(k, {}).get("gbps")] + [1])
scale = (W - left - 90) / maxg
H = top + len(setups) * (bar_h + gap) + 40
s = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
     f'<rect width="{W}" height="{H}" fill="white"/>',
     f'<text x="{W/2}" y="20" text-anchor="middle" font-size="15">Bulk throughput on loopback, Gbps (median of {rounds})</text>',
     f'<text x="{W/2}" y="38" text-anchor="middle" fill="#555">{html.escape(now)} - {ncpu} CPUs - {html.escape(cpu)} - HBONE/TLS = {fmt(target)}x</text>']
for i, (k, label, _, ours) in enumerate(setups):
    g = rows.get(k, {}).get("gbps", [])
    y = top + i * (bar_h + gap)
    s.append(f'<text x="{left-8}" y="{y+bar_h*0.7}" text-anchor="end">{html.escape(label)}</text>')
    if not g: continue
    m = med(g)
    s.append(f'<rect x="{left}" y="{y}" width="{m*scale:.1f}" height="{bar_h}" fill="{"#2b6cb0" if ours else "#a0aec0"}"/>')
    lo, hi = min(g) * scale + left, max(g) * scale + left
    s.append(f'<line x1="{lo:.1f}" x2="{hi:.1f}" y1="{y+bar_h/2}" y2="{y+bar_h/2}" stroke="black"/>')
    s.append(f'<text x="{max(hi, left + m*scale)+6:.1f}" y="{y+bar_h*0.7}">{m:.2f}</text>')
s.append(f'<line x1="{left}" x2="{left}" y1="{top-4}" y2="{H-30}" stroke="black"/>')
s.append(f'<text x="{left}" y="{H-12}" fill="#555">blue: this project\'s harness (one process, two threads); grey: peers via iperf3</text>')
s.append("</svg>")
open(f"{out}/hbone_throughput.svg", "w").write("\n".join(s) + "\n")
print("\n".join(L))
PY
