#!/usr/bin/env bash
# bench/l7.sh [BUILD_DIR] — the waypoint path next to nginx as a plain reverse proxy and direct, in one run on
# this machine (DESIGN.md section 9; issue 6 "Benchmark").
#
# Paths (one network namespace bench-l7-<pid>, loopback only; needs root for the netns and iptables):
#   direct    wrk / h2load -> nginx backend 127.0.0.5:8080 (HTTP/1.1) / :8081 (h2c)
#   nginx     wrk / h2load -> nginx reverse proxy 127.0.0.7:80 (HTTP/1.1) / :81 (h2c) -> backend (HTTP/1.1 keep-alive)
#   relay3    wrk / h2load -> three haproxy processes in TCP mode, chained (127.0.0.8:80 -> :90 -> :100 -> backend):
#             plaintext, no TLS, no HTTP parsing, 2 threads each. The floor of ANY path with three proxies on these
#             cores (every hop pays the kernel's loopback TCP both ways); the waypoint path has three proxies.
#   waypoint  wrk / h2load -> 127.10.0.20:80 / :81 (the `echo` service VIP, whose waypoint is 127.0.0.4):
#             iptables REDIRECT -> client ztunnel (127.0.0.1:15001, workload "client") -> HBONE (mTLS 1.3 +
#             HTTP/2 CONNECT) -> waypoint 127.0.0.4:15008 (routes and authorizes every request: an HTTPRoute
#             and an ALLOW AuthorizationPolicy are loaded) -> HBONE -> server ztunnel 127.0.0.5:15008 -> backend.
#             HTTP/2 from h2load stays HTTP/2 to the backend (the waypoint's upstream sessions are h2c).
# Loads per path: wrk -t1 -c50 keep-alive HTTP/1.1 (rps, p50, p99) and h2load -c10 -m10 (rps, mean latency).
# Memory: VmRSS of the waypoint and of the nginx proxy (master + workers) right after start (idle), and after.
# The access log of both proxies is off for the loads (nginx `access_log off`, waypoint WAYPOINT_ACCESS_LOG=false);
# the waypoint's request metrics are recorded as always. Every process runs on the same 2 cores.
#
# Results: bench/results/l7.json ({"<path>": {"h1_rps", "h1_p99_ms", "h2_rps", "idle_rss_mb", ...}}), l7.md, l7.svg.
# The waypoint's istio_requests_total is read before and after each waypoint load: a run whose requests did not
# go through the waypoint is flagged in l7.md.
# Environment: DUR (5 s per measurement), ROUNDS (1; medians over rounds), KEEP=1 keeps the work dir,
#              WP_WORKERS (waypoint worker threads, default 2), RESULTS_DIR (default bench/results),
#              PROFILE=1: perf record of the waypoint during its HTTP/1.1 load -> bench/results/l7-profile.txt.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-build}
[[ "$build" = /* ]] || build="$here/../$build"
ZT="$build/ztunnel/ztunnel"
WP="$build/waypoint/waypoint"
CA_TOOL="$build/ztunnel/hbone-demo"
DUR=${DUR:-5}
ROUNDS=${ROUNDS:-1}
results=${RESULTS_DIR:-$here/results}

[ "$(id -u)" = 0 ] || { echo "l7.sh: needs root (network namespace, iptables)" >&2; exit 1; }
for tool in ip iptables wrk h2load nginx haproxy python3 curl; do
  command -v "$tool" >/dev/null || { echo "l7.sh: $tool not found (setup.sh installs it)" >&2; exit 1; }
done
for b in "$ZT" "$WP" "$CA_TOOL"; do
  [ -x "$b" ] || { echo "l7.sh: $b not found; build it: ninja -C $build ztunnel waypoint hbone_demo" >&2; exit 1; }
done
mkdir -p "$results"
ulimit -n 65536 2>/dev/null || ulimit -n 8192 2>/dev/null || true

work=$(mktemp -d /tmp/bench-l7.XXXXXX)
NS="bench-l7-$$"
pids=()
cleanup() {
  trap - EXIT INT TERM
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done
  sleep 0.3
  if ip netns list | grep -qw "$NS"; then
    for p in $(ip netns pids "$NS" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
    ip netns del "$NS" 2>/dev/null
  fi
  wait 2>/dev/null
  if [ "${KEEP:-0}" = 1 ]; then echo "l7.sh: work dir kept: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
log() { echo "# $*" >&2; }
inn() { ip netns exec "$NS" "$@"; }

ip netns add "$NS" || { echo "l7.sh: ip netns add $NS failed" >&2; exit 1; }
ip -n "$NS" link set lo up

# ---- backend and the nginx reverse proxy ----
cat > "$work/backend.conf" <<EOF
worker_processes 1; daemon off; pid $work/backend.pid; error_log $work/backend.err;
events { worker_connections 8192; }
http { access_log off; keepalive_requests 1000000; http2_max_requests 1000000;
  server { listen 127.0.0.5:8080 reuseport backlog=4096; location / { return 200 "hello from backend\n"; } }
  server { listen 127.0.0.5:8081 http2 reuseport backlog=4096; location / { return 200 "hello from backend\n"; } } }
EOF
cat > "$work/proxy.conf" <<EOF
worker_processes auto; daemon off; pid $work/proxy.pid; error_log $work/proxy.err;
events { worker_connections 8192; }
http { access_log off; keepalive_requests 1000000; http2_max_requests 1000000;
  upstream backend { server 127.0.0.5:8080; keepalive 128; keepalive_requests 1000000; }
  server { listen 127.0.0.7:80 reuseport backlog=4096; listen 127.0.0.7:81 http2 reuseport backlog=4096;
    location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
EOF
ip netns exec "$NS" nginx -c "$work/backend.conf" >/dev/null 2>&1 & pids+=($!)
# The three-relay floor: plaintext TCP relays, one process per hop (as the three proxies of the mesh path); each
# process relays the HTTP/1.1 chain (80 -> 90 -> 100 -> backend 8080) and the h2c chain (81 -> 91 -> 101 -> 8081).
pid_relays=()
relay_conf() {  # HOP NEXT-HTTP1 NEXT-H2C
  { printf 'global\n  maxconn 4000\n  nbthread 2\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n'
    printf '  timeout server 60s\nlisten h1\n  bind 127.0.0.8:%s\n  server next %s\n' $((80 + 10 * $1)) "$2"
    printf 'listen h2c\n  bind 127.0.0.8:%s\n  server next %s\n' $((81 + 10 * $1)) "$3"; } > "$work/relay-$1.cfg"
}
relay_conf 0 127.0.0.8:90 127.0.0.8:91; relay_conf 1 127.0.0.8:100 127.0.0.8:101; relay_conf 2 127.0.0.5:8080 127.0.0.5:8081
for hop in 0 1 2; do
  ip netns exec "$NS" haproxy -f "$work/relay-$hop.cfg" >"$work/relay-$hop.log" 2>&1 & pids+=($!); pid_relays+=($!)
done
ip netns exec "$NS" nginx -c "$work/proxy.conf" >/dev/null 2>&1 & pids+=($!); pid_nginx=$!

# ---- the mesh: two ztunnels (dedicated mode) and the waypoint, one CA ----
"$CA_TOOL" ca --out "$work/cacerts" >/dev/null || { echo "l7.sh: hbone-demo ca failed" >&2; exit 1; }
cat > "$work/mesh.yaml" <<'EOF'
workloads:
- {uid: Kubernetes//Pod/bench/client, name: client, namespace: bench, serviceAccount: client,
   workloadIps: ["127.0.0.1"], protocol: HBONE, canonicalName: client, canonicalRevision: v1}
- {uid: Kubernetes//Pod/bench/waypoint, name: waypoint, namespace: bench, serviceAccount: waypoint,
   workloadIps: ["127.0.0.4"], protocol: HBONE}
- {uid: Kubernetes//Pod/bench/server, name: server, namespace: bench, serviceAccount: server,
   workloadIps: ["127.0.0.5"], protocol: HBONE, canonicalName: echo, canonicalRevision: v1,
   services: {"bench/echo.bench.svc.cluster.local": {80: 8080, 81: 8081}}}
services:
- {name: echo, namespace: bench, hostname: echo.bench.svc.cluster.local, vips: ["/127.10.0.20"],
   ports: {80: 8080, 81: 8081}, waypoint: {destination: "/127.0.0.4", hboneMtlsPort: 15008}}
EOF
cat > "$work/routes.yaml" <<'EOF'
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: echo, namespace: bench}
spec:
  parentRefs: [{group: "", kind: Service, name: echo, port: 80}]
  rules:
  - matches: [{headers: [{name: x-canary, value: "true"}]}]
    backendRefs: [{name: echo, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /}}]
    filters: [{type: RequestHeaderModifier, requestHeaderModifier: {add: [{name: x-via, value: waypoint}]}}]
    backendRefs: [{name: echo, port: 80}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-client, namespace: bench}
spec:
  targetRefs: [{group: "", kind: Service, name: echo}]
  action: ALLOW
  rules:
  - from: [{source: {principals: ["cluster.local/ns/bench/sa/client"]}}]
    to: [{operation: {methods: ["GET"], paths: ["/*"]}}]
EOF
start_zt() {  # NAME IP WORKLOAD-INFO
  ip netns exec "$NS" env LOCAL_XDS_PATH="$work/mesh.yaml" PROXY_WORKLOAD_INFO="$3" CA_CERTS_DIR="$work/cacerts" \
    "$ZT" --bind "$2" --admin "$2:15000" --metrics "$2:15020" --readiness "$2:15021" --packet-mark 1337 \
    >"$work/zt-$1.log" 2>&1 &
  pids+=($!)
}
start_zt server 127.0.0.5 bench/server/server; pid_zt_s=$!
start_zt client 127.0.0.1 bench/client/client; pid_zt_c=$!
ip netns exec "$NS" env LOCAL_XDS_PATH="$work/mesh.yaml" WAYPOINT_CONFIG_PATHS="$work/routes.yaml" CA_CERTS_DIR="$work/cacerts" \
  WAYPOINT_WORKLOAD_INFO=bench/waypoint/waypoint WAYPOINT_ACCESS_LOG=false WAYPOINT_WORKER_THREADS="${WP_WORKERS:-2}" \
  "$WP" --bind 127.0.0.4 --admin 127.0.0.4:15000 --metrics 127.0.0.4:15020 --readiness 127.0.0.4:15021 \
  >"$work/waypoint.log" 2>&1 &
pids+=($!); pid_wp=$!
inn iptables -t nat -A OUTPUT -p tcp -d 127.10.0.20 -m multiport --dports 80,81 -m mark ! --mark 0x539 \
  -j REDIRECT --to-ports 15001 || { echo "l7.sh: iptables REDIRECT failed" >&2; exit 1; }

ready=0
for _ in $(seq 50); do
  ok=1
  for ip in 127.0.0.1 127.0.0.4 127.0.0.5; do inn curl -fs "http://$ip:15021/healthz/ready" >/dev/null 2>&1 || ok=0; done
  [ $ok = 1 ] && { ready=1; break; }
  sleep 0.1
done
sleep 0.5
[ $ready = 1 ] || { echo "l7.sh: mesh not ready:" >&2; tail -n 5 "$work"/*.log >&2; exit 1; }
for p in "${pids[@]}"; do
  kill -0 "$p" 2>/dev/null || { echo "l7.sh: a process did not start; logs:" >&2; tail -n 5 "$work"/*.log "$work"/*.err >&2; exit 1; }
done
[ "$(cat /proc/$pid_wp/comm)" = waypoint ] || { echo "l7.sh: pid $pid_wp is $(cat /proc/$pid_wp/comm), not the waypoint" >&2; exit 1; }

rss_kb() { awk '/^VmRSS:/{print $2}' "/proc/$1/status"; }
clk=$(getconf CLK_TCK)
cpu_ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{sub(/.*\) /,""); print $12+$13}' "/proc/$p/stat"))); done; echo "$t"; }
# CPU seconds of each proxy process over a measurement: "zt_client waypoint zt_server nginx" ticks.
cpu_snapshot() { echo "$(cpu_ticks $pid_zt_c) $(cpu_ticks $pid_wp) $(cpu_ticks $pid_zt_s) $(cpu_ticks $pid_nginx $(pgrep -P "$pid_nginx")) $(cpu_ticks "${pid_relays[@]}")"; }
rec_cpu() {  # PATH LOAD "before"
  local a b c d e f g h i j; read -r a b c d i <<<"$3"; read -r e f g h j <<<"$(cpu_snapshot)"
  if [ "$1" = waypoint ]; then
    rec waypoint "$2_cpu_s_zt_client" "$(awk -v t=$((e - a)) -v k="$clk" 'BEGIN{printf "%.2f", t/k}')"
    rec waypoint "$2_cpu_s_waypoint" "$(awk -v t=$((f - b)) -v k="$clk" 'BEGIN{printf "%.2f", t/k}')"
    rec waypoint "$2_cpu_s_zt_server" "$(awk -v t=$((g - c)) -v k="$clk" 'BEGIN{printf "%.2f", t/k}')"
  elif [ "$1" = nginx ]; then
    rec nginx "$2_cpu_s_proxy" "$(awk -v t=$((h - d)) -v k="$clk" 'BEGIN{printf "%.2f", t/k}')"
  elif [ "$1" = relay3 ]; then
    rec relay3 "$2_cpu_s_relays" "$(awk -v t=$((j - i)) -v k="$clk" 'BEGIN{printf "%.2f", t/k}')"
  fi
}
tree_rss_kb() {  # PID and its children (nginx master + workers)
  local t=0 p
  for p in $1 $(pgrep -P "$1"); do t=$((t + $(rss_kb "$p"))); done
  echo "$t"
}
raw="$work/raw.tsv"; : > "$raw"
rec() { printf "%s\t%s\t%s\n" "$1" "$2" "$3" >> "$raw"; }
rec waypoint idle_rss_kb "$(rss_kb "$pid_wp")"
rec waypoint idle_anon_kb "$(awk '/^RssAnon:/{print $2}' "/proc/$pid_wp/status")"
rec nginx idle_rss_kb "$(tree_rss_kb "$pid_nginx")"
log "idle RSS: waypoint $(rss_kb "$pid_wp") kB, nginx proxy $(tree_rss_kb "$pid_nginx") kB"

# Smoke test every path, HTTP/1.1 and HTTP/2 (also proves the capture and the waypoint's route work).
for url in http://127.0.0.5:8080/ http://127.0.0.7:80/ http://127.0.0.8:80/ http://127.10.0.20:80/; do
  out=$(inn curl -fs --max-time 5 "$url")
  [ "$out" = "hello from backend" ] || { echo "l7.sh: smoke test $url failed ('$out')" >&2; tail -n 5 "$work"/*.log >&2; exit 1; }
done
for url in http://127.0.0.5:8081/ http://127.0.0.7:81/ http://127.0.0.8:81/ http://127.10.0.20:81/; do
  out=$(inn curl -fs --http2-prior-knowledge --max-time 5 "$url")
  [ "$out" = "hello from backend" ] || { echo "l7.sh: HTTP/2 smoke test $url failed ('$out')" >&2; tail -n 5 "$work"/*.log >&2; exit 1; }
done
# The policy is enforced on this path: a POST is not in the ALLOW rule.
code=$(inn curl -s -o /dev/null -w '%{http_code}' -X POST --max-time 5 http://127.10.0.20:80/)
[ "$code" = 403 ] || { echo "l7.sh: the waypoint did not deny a POST (got $code): is the policy loaded?" >&2; exit 1; }

wp_requests() { inn curl -fs http://127.0.0.4:15020/metrics | awk '/^istio_requests_total/{s+=$NF} END{printf "%d", s}'; }
declare -A H1=([direct]=http://127.0.0.5:8080/ [nginx]=http://127.0.0.7:80/ [relay3]=http://127.0.0.8:80/ [waypoint]=http://127.10.0.20:80/)
declare -A H2=([direct]=http://127.0.0.5:8081/ [nginx]=http://127.0.0.7:81/ [relay3]=http://127.0.0.8:81/ [waypoint]=http://127.10.0.20:81/)
PATHS=(direct nginx relay3 waypoint)
pct() { awk -v q="$1" '$1==q{v=$2; if (v ~ /us$/) {sub("us","",v); v/=1000} else if (v ~ /ms$/) {sub("ms","",v)} else if (v ~ /s$/) {sub("s","",v); v*=1000}; printf "%.3f", v}'; }
h1_run() {  # PATH
  local path=$1 out before
  before=$(wp_requests)
  local cpu0; cpu0=$(cpu_snapshot) perf_pid=""
  if [ "${PROFILE:-0}" = 1 ] && [ "$path" = waypoint ] && command -v perf >/dev/null; then
    perf record -q -F ${PERF_FREQ:-2000} ${PERF_G:--g} -p "$pid_wp" -o "$work/perf.data" -- sleep "$DUR" >/dev/null 2>&1 & perf_pid=$!
  fi
  out=$(inn timeout $((DUR + 20)) wrk -t1 -c50 -d"${DUR}s" --latency "${H1[$path]}" 2>&1)
  echo "== $path h1" >> "$work/loads.txt"; echo "$out" >> "$work/loads.txt"
  local rps reqs non2xx
  rps=$(awk '/^Requests\/sec/{print $2}' <<<"$out")
  reqs=$(awk '/requests in/{print $1}' <<<"$out")
  non2xx=$(awk '/Non-2xx/{print $NF}' <<<"$out")
  rec "$path" h1_rps "${rps:-nan}"
  rec "$path" h1_p50_ms "$(pct 50% <<<"$out")"
  rec "$path" h1_p99_ms "$(pct 99% <<<"$out")"
  rec "$path" h1_requests "${reqs:-0}"
  rec "$path" h1_non2xx "${non2xx:-0}"
  rec_cpu "$path" h1 "$cpu0"
  if [ -n "$perf_pid" ]; then
    wait "$perf_pid"
    { perf report -i "$work/perf.data" --no-children --sort dso --stdio -g none 2>/dev/null | grep -v "^#" | grep -v "^$" | head -8
      perf report -i "$work/perf.data" --no-children --percent-limit 0.7 --stdio -g none 2>/dev/null | grep -v "^#" | grep -v "^$"; } \
      | head -60 > "$results/l7-profile.txt"
    log "profile of the waypoint during the HTTP/1.1 load: $results/l7-profile.txt"
  fi
  [ "$path" = waypoint ] && rec waypoint h1_counted $(( $(wp_requests) - before ))
  log "$path HTTP/1.1: ${rps:-fail} rps, p99 $(pct 99% <<<"$out") ms"
}
h2_run() {  # PATH
  local path=$1 out before
  before=$(wp_requests)
  local cpu0; cpu0=$(cpu_snapshot)
  out=$(inn timeout $((DUR + 20)) h2load -D "$DUR" -c 10 -m 10 -t 1 "${H2[$path]}" 2>&1)
  echo "== $path h2" >> "$work/loads.txt"; echo "$out" >> "$work/loads.txt"
  local rps succeeded failed mean
  rps=$(awk '/^finished in/{for(i=1;i<=NF;i++) if ($i=="req/s,") print $(i-1)}' <<<"$out")
  succeeded=$(awk '/^requests:/{for(i=1;i<=NF;i++) if ($i=="succeeded,") print $(i-1)}' <<<"$out")
  failed=$(awk '/^requests:/{for(i=1;i<=NF;i++) if ($i=="failed,") print $(i-1)}' <<<"$out")
  mean=$(awk '/^time for request:/{v=$6; if (v ~ /us$/) {sub("us","",v); v/=1000} else if (v ~ /ms$/) {sub("ms","",v)} else if (v ~ /s$/) {sub("s","",v); v*=1000}; printf "%.3f", v}' <<<"$out")
  rec "$path" h2_rps "${rps:-nan}"
  rec "$path" h2_mean_ms "${mean:-nan}"
  rec "$path" h2_succeeded "${succeeded:-0}"
  rec "$path" h2_failed "${failed:-0}"
  rec_cpu "$path" h2 "$cpu0"
  [ "$path" = waypoint ] && rec waypoint h2_counted $(( $(wp_requests) - before ))
  log "$path HTTP/2: ${rps:-fail} rps, mean ${mean:-?} ms, ${failed:-?} failed"
}
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
t_start=$(date +%s)
for ((r = 1; r <= ROUNDS; r++)); do
  log "round $r/$ROUNDS"
  for path in "${PATHS[@]}"; do h1_run "$path"; sleep 1; done
  for path in "${PATHS[@]}"; do h2_run "$path"; sleep 1; done
done
rec waypoint after_rss_kb "$(rss_kb "$pid_wp")"
rec nginx after_rss_kb "$(tree_rss_kb "$pid_nginx")"
load_end=$(cut -d' ' -f1-3 /proc/loadavg)
t_end=$(date +%s)
rec meta waypoint_workers "${WP_WORKERS:-2}"
rec meta nginx_workers "$(pgrep -P "$pid_nginx" | wc -l)"

python3 "$here/l7/report.py" --raw "$raw" --out "$results" --dur "$DUR" --rounds "$ROUNDS" \
  --load-start "$load_start" --load-end "$load_end" --seconds $((t_end - t_start))
