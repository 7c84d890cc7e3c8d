#!/usr/bin/env bash
# bench/l4.sh [BUILD_DIR] — the ztunnel L4 pair next to its peers, all in one run on this machine
# (DESIGN.md section 9: figures are ratios against peers measured in the same run; issue 3 "Benchmark").
#
# Pairs: direct (no proxy), plain (haproxy pair, no TLS), haproxy (mTLS pair), stunnel (mTLS pair),
# ztunnel (our pair, HBONE: mTLS 1.3 + HTTP/2 CONNECT, traffic captured by iptables REDIRECT).
# Loads, per pair: iperf3 single stream (Gbps), wrk -c50 keep-alive against nginx (rps, p99),
# wrk -c1 keep-alive (latency without queueing, detail only), wrk -c50 'Connection: close' (new connections/s); per proxy process: VmRSS idle (right after start) and
# with 1000 open connections through the pair (bench/l4/hold_conns.py).
#
# Topology (needs root; nothing leaves the two network namespaces this script creates):
#   netns bench-l4-<pid>-peers   lo only, no iptables: iperf3 -s 127.0.0.1:5201, nginx 127.0.0.1:8080,
#                                haproxy/stunnel pairs on 127.0.0.1 (fronts: plain 18001/18080,
#                                haproxy 17001/17080, stunnel 16001/16080), as in shared/tools/anchors.sh
#   netns bench-l4-<pid>-zt      lo only: the same iperf3 server and nginx (listening on all addresses),
#                                server ztunnel --bind 127.0.0.3 (workload "server" = 127.0.0.3),
#                                client ztunnel --bind 127.0.0.1 (workload "client" = 127.0.0.1, the source
#                                address loopback apps get), both --packet-mark 1337, and
#                                  iptables -t nat -A OUTPUT -p tcp -d 127.0.0.3 -m multiport --dports 5201,8080
#                                          -m mark ! --mark 0x539 -j REDIRECT --to-ports 15001
#                                iperf3 -c / wrk target 127.0.0.3:{5201,8080}; REDIRECT in OUTPUT rewrites the
#                                destination to 127.0.0.1:15001 (the kernel's choice for locally generated
#                                packets), which is the CLIENT ztunnel's outbound listener; it reads
#                                SO_ORIGINAL_DST = 127.0.0.3:port, a HBONE workload, and tunnels to
#                                127.0.0.3:15008 (the server ztunnel), which connects to the app. Their own
#                                sockets carry mark 1337 and are not captured.
#   Peers live in their own netns so they do not pay the conntrack that the nat table turns on.
#
# Results: bench/results/l4.json, l4.md, l4.svg. The run checks istio_tcp_connections_opened_total on both
# ztunnels around every ztunnel measurement: a run whose connections did not go through HBONE is flagged.
#
# Environment: DUR (5 s per measurement), ROUNDS (1; medians over rounds), CONNS (1000, for the RSS step),
#              ZT_WORKERS (ztunnel --worker-threads, default: ztunnel's own default), KEEP=1 keeps the work dir,
#              LOADS (default "iperf keepalive latency1 newconn": which loads to run, for diagnosis),
#              PROFILE=1 adds strace -c counts per ztunnel and load to bench/results/l4-profile.txt (+1 min),
#              RESULTS_DIR (default bench/results) to write the three files elsewhere.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-build}
[[ "$build" = /* ]] || build="$here/../$build"
ZT="$build/ztunnel/ztunnel"
CA_TOOL="$build/ztunnel/hbone-demo"
DUR=${DUR:-5}
ROUNDS=${ROUNDS:-1}
CONNS=${CONNS:-1000}
results=${RESULTS_DIR:-$here/results}

[ "$(id -u)" = 0 ] || { echo "l4.sh: needs root (network namespaces, iptables)" >&2; exit 1; }
for tool in ip iptables iperf3 wrk nginx haproxy stunnel openssl python3 curl; do
  command -v "$tool" >/dev/null || { echo "l4.sh: $tool not found (setup.sh installs it)" >&2; exit 1; }
done
for b in "$ZT" "$CA_TOOL"; do
  [ -x "$b" ] || { echo "l4.sh: $b not found; build it: ninja -C $build ztunnel hbone_demo" >&2; exit 1; }
done
mkdir -p "$results"
ulimit -n 65536 2>/dev/null || ulimit -n 8192 2>/dev/null || true

work=$(mktemp -d /tmp/bench-l4.XXXXXX)
NSP="bench-l4-$$-peers"
NSZ="bench-l4-$$-zt"
pids=()
cleanup() {
  trap - EXIT INT TERM
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done
  sleep 0.3
  # Anything still inside our namespaces was started by this script.
  for ns in "$NSP" "$NSZ"; do
    if ip netns list | grep -qw "$ns"; then
      for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
      ip netns del "$ns" 2>/dev/null
    fi
  done
  wait 2>/dev/null
  if [ "${KEEP:-0}" = 1 ]; then echo "l4.sh: work dir kept: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
log() { echo "# $*" >&2; }
inp() { ip netns exec "$NSP" "$@"; }
inz() { ip netns exec "$NSZ" "$@"; }

for ns in "$NSP" "$NSZ"; do
  ip netns add "$ns" || { echo "l4.sh: ip netns add $ns failed" >&2; exit 1; }
  ip -n "$ns" link set lo up
  # New-connection runs make tens of thousands of short connections: a wide port range in our netns only.
  ip netns exec "$ns" sysctl -qw net.ipv4.ip_local_port_range="1024 65000" net.ipv4.tcp_tw_reuse=1
done

# ---- certificates for the peers: P-256 root and two SPIFFE leaves (same as anchors.sh / run.sh) ----
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
[ -s "$c/server-bundle.pem" ] || { echo "l4.sh: certificate generation failed" >&2; exit 1; }
"$CA_TOOL" ca --out "$work/cacerts" >/dev/null || { echo "l4.sh: hbone-demo ca failed" >&2; exit 1; }

# ---- backends, one set per netns ----
backends() {  # NETNS TAG LISTEN-ADDR-PREFIX
  local ns=$1 tag=$2 addr=$3
  cat > "$work/nginx-$tag.conf" <<EOF
worker_processes 1; daemon off; pid $work/nginx-$tag.pid; error_log $work/nginx-$tag.err;
events { worker_connections 8192; }
http { access_log off; server { listen ${addr}8080 reuseport backlog=4096; keepalive_requests 1000000;
  location / { return 200 "hello from backend\n"; } } }
EOF
  ip netns exec "$ns" nginx -c "$work/nginx-$tag.conf" >/dev/null 2>&1 & pids+=($!)
  if [ -n "$addr" ]; then ip netns exec "$ns" iperf3 -s -B "${addr%:}" -p 5201 >/dev/null 2>&1 &
  else ip netns exec "$ns" iperf3 -s -p 5201 >/dev/null 2>&1 &
  fi
  pids+=($!)
}
backends "$NSP" peers "127.0.0.1:"
backends "$NSZ" zt ""

# ---- peers (netns NSP) ----
stunnel_conf() {  # NAME ROLE ACCEPT-IPERF CONNECT-IPERF ACCEPT-HTTP CONNECT-HTTP
  local name=$1 role=$2
  {
    echo "foreground = yes"; echo "pid ="
    local svc a b
    for svc in "iperf $3 $4" "http $5 $6"; do
      read -r s a b <<<"$svc"
      echo "[$s]"
      [ "$role" = client ] && echo "client = yes"
      echo "accept = 127.0.0.1:$a"; echo "connect = 127.0.0.1:$b"
      echo "cert = $c/$role-cert.pem"; echo "key = $c/$role-key.pem"; echo "CAfile = $c/ca.pem"
      echo "verifyChain = yes"; [ "$role" = server ] && echo "requireCert = yes"
      echo "sslVersion = TLSv1.3"; echo "ciphersuites = TLS_AES_128_GCM_SHA256"; echo "curves = prime256v1"
    done
  } > "$work/$name.conf"
}
stunnel_conf st-client client 16001 16008 16080 16088
stunnel_conf st-server server 16008 5201 16088 8080

# One haproxy process per side, one thread each (two nodes' proxies), pinned to TLS 1.3 AES-128-GCM, P-256.
haproxy_conf() {  # NAME then pairs of "BIND-LINE" "SERVER-LINE" per listener
  local name=$1; shift
  {
    cat <<EOF
global
  nbthread 1
  maxconn 3000
  ssl-default-bind-options ssl-min-ver TLSv1.3
  ssl-default-server-options ssl-min-ver TLSv1.3
  ssl-default-bind-ciphersuites TLS_AES_128_GCM_SHA256
  ssl-default-server-ciphersuites TLS_AES_128_GCM_SHA256
  ssl-default-bind-curves P-256
defaults
  mode tcp
  maxconn 3000
  timeout connect 5s
  timeout client 60s
  timeout server 60s
EOF
    local i=0
    while [ $# -ge 2 ]; do
      i=$((i + 1)); printf "listen l%d\n  %s\n  %s\n" "$i" "$1" "$2"; shift 2
    done
  } > "$work/$name.cfg"
}
cli_ssl="ssl crt $c/client-bundle.pem ca-file $c/ca.pem verify required"
srv_ssl="ssl crt $c/server-bundle.pem ca-file $c/ca.pem verify required"
haproxy_conf ha-client "bind 127.0.0.1:17001" "server s 127.0.0.1:17008 $cli_ssl" \
                       "bind 127.0.0.1:17080" "server s 127.0.0.1:17088 $cli_ssl"
haproxy_conf ha-server "bind 127.0.0.1:17008 $srv_ssl" "server s 127.0.0.1:5201" \
                       "bind 127.0.0.1:17088 $srv_ssl" "server s 127.0.0.1:8080"
haproxy_conf pl-client "bind 127.0.0.1:18001" "server s 127.0.0.1:18008" \
                       "bind 127.0.0.1:18080" "server s 127.0.0.1:18088"
haproxy_conf pl-server "bind 127.0.0.1:18008" "server s 127.0.0.1:5201" \
                       "bind 127.0.0.1:18088" "server s 127.0.0.1:8080"
ip netns exec "$NSP" stunnel "$work/st-server.conf" >"$work/st-server.log" 2>&1 & pids+=($!); pid_st_s=$!
ip netns exec "$NSP" stunnel "$work/st-client.conf" >"$work/st-client.log" 2>&1 & pids+=($!); pid_st_c=$!
for n in ha-server ha-client pl-server pl-client; do
  ip netns exec "$NSP" haproxy -db -f "$work/$n.cfg" >"$work/$n.log" 2>&1 & pids+=($!); eval "pid_${n//-/_}=$!"
done

# ---- the ztunnel pair (netns NSZ) ----
zt_flags=(--packet-mark 1337)
[ -n "${ZT_WORKERS:-}" ] && zt_flags+=(--worker-threads "$ZT_WORKERS")
start_zt() {  # NAME IP WORKLOAD-INFO
  ip netns exec "$NSZ" env LOCAL_XDS_PATH="$here/l4/pair.yaml" PROXY_WORKLOAD_INFO="$3" CA_CERTS_DIR="$work/cacerts" \
    "$ZT" --bind "$2" --admin "$2:15000" --metrics "$2:15020" --readiness "$2:15021" "${zt_flags[@]}" \
    >"$work/zt-$1.log" 2>&1 &
  pids+=($!)
}
start_zt server 127.0.0.3 bench/server/server; pid_zt_s=$!
start_zt client 127.0.0.1 bench/client/client; pid_zt_c=$!
inz iptables -t nat -A OUTPUT -p tcp -d 127.0.0.3 -m multiport --dports 5201,8080 -m mark ! --mark 0x539 \
  -j REDIRECT --to-ports 15001 || { echo "l4.sh: iptables REDIRECT failed" >&2; exit 1; }

ready=0
for _ in $(seq 50); do
  if inz curl -fs http://127.0.0.3:15021/healthz/ready >/dev/null 2>&1 && inz curl -fs http://127.0.0.1:15021/healthz/ready >/dev/null 2>&1; then
    ready=1; break
  fi
  sleep 0.1
done
sleep 0.5
[ $ready = 1 ] || { echo "l4.sh: ztunnels not ready:" >&2; tail -n 5 "$work"/zt-*.log >&2; exit 1; }
for p in "${pids[@]}"; do
  kill -0 "$p" 2>/dev/null || { echo "l4.sh: a process did not start; logs:" >&2; tail -n 5 "$work"/*.log >&2; exit 1; }
done
for p in "$pid_zt_c" "$pid_zt_s"; do
  [ "$(cat /proc/$p/comm)" = ztunnel ] || { echo "l4.sh: pid $p is $(cat /proc/$p/comm), not ztunnel" >&2; exit 1; }
done
# Idle RSS: ready, nothing has gone through any pair yet.
# RssAnon is the process's own heap and stacks; the rest of VmRSS is mapped files (binary, shared libraries).
declare -A IDLE_RSS=() IDLE_ANON=()
for p in "$pid_pl_client" "$pid_pl_server" "$pid_ha_client" "$pid_ha_server" "$pid_st_c" "$pid_st_s" "$pid_zt_c" "$pid_zt_s"; do
  IDLE_RSS[$p]=$(awk '/^VmRSS:/{print $2}' "/proc/$p/status")
  IDLE_ANON[$p]=$(awk '/^RssAnon:/{print $2}' "/proc/$p/status")
done
# Smoke test every path once (also proves the capture works before anything is measured).
for hp in "inp 127.0.0.1:8080" "inp 127.0.0.1:18080" "inp 127.0.0.1:17080" "inp 127.0.0.1:16080" "inz 127.0.0.3:8080"; do
  read -r run addr <<<"$hp"
  out=$($run curl -fs --max-time 5 "http://$addr/")
  [ "$out" = "hello from backend" ] || { echo "l4.sh: smoke test through $addr failed ('$out')" >&2; tail -n 5 "$work"/*.log >&2; exit 1; }
done

# ---- helpers ----
raw="$work/raw.tsv"; : > "$raw"
rec() { printf "%s\t%s\t%s\n" "$1" "$2" "$3" >> "$raw"; }  # PAIR KEY VALUE
clk=$(getconf CLK_TCK)
cpu_ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{sub(/.*\) /,""); print $12+$13}' "/proc/$p/stat"))); done; echo "$t"; }
split_ticks() {  # PAIR -> "client-ticks server-ticks" (empty for direct)
  local pc ps; read -r pc ps <<<"${PROCS[$1]}"
  [ -n "$pc" ] && echo "$(cpu_ticks "$pc") $(cpu_ticks "$ps")"
}
rec_split() {  # PAIR LOAD "client0 server0": per-process CPU seconds over the measurement
  [ -n "$3" ] || return 0
  local c0 s0 c1 s1; read -r c0 s0 <<<"$3"; read -r c1 s1 <<<"$(split_ticks "$1")"
  rec "$1" "$2_cpu_s_client" "$(awk -v t=$((c1 - c0)) -v k="$clk" 'BEGIN{printf "%.2f", t/k}')"
  rec "$1" "$2_cpu_s_server" "$(awk -v t=$((s1 - s0)) -v k="$clk" 'BEGIN{printf "%.2f", t/k}')"
}
rss_kb() { awk '/^VmRSS:/{print $2}' "/proc/$1/status"; }
# Sum of istio_tcp_connections_opened_total over all label sets, from a ztunnel's metrics endpoint.
zt_opened() { inz curl -fs "http://$1:15020/metrics" | awk '/^istio_tcp_connections_opened_total/{s+=$NF} END{printf "%d", s}'; }
zt_mark() { zc0=$(zt_opened 127.0.0.1); zs0=$(zt_opened 127.0.0.3); }
zt_check() {  # LOAD: records how many connections each ztunnel saw during the measurement
  rec ztunnel "opened_client_$1" $(( $(zt_opened 127.0.0.1) - zc0 ))
  rec ztunnel "opened_server_$1" $(( $(zt_opened 127.0.0.3) - zs0 ))
}

declare -A RUN=([direct]=inp [plain]=inp [haproxy]=inp [stunnel]=inp [ztunnel]=inz)
declare -A HOST=([direct]=127.0.0.1 [plain]=127.0.0.1 [haproxy]=127.0.0.1 [stunnel]=127.0.0.1 [ztunnel]=127.0.0.3)
declare -A IPORT=([direct]=5201 [plain]=18001 [haproxy]=17001 [stunnel]=16001 [ztunnel]=5201)
declare -A HPORT=([direct]=8080 [plain]=18080 [haproxy]=17080 [stunnel]=16080 [ztunnel]=8080)
declare -A PROCS=([direct]="" [plain]="$pid_pl_client $pid_pl_server" [haproxy]="$pid_ha_client $pid_ha_server"
                  [stunnel]="$pid_st_c $pid_st_s" [ztunnel]="$pid_zt_c $pid_zt_s")
PAIRS=(direct plain haproxy stunnel ztunnel)

# ---- RSS: idle (nothing has gone through yet but the smoke test) and with CONNS open connections ----
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
t_start=$(date +%s)
for pair in plain haproxy stunnel ztunnel; do
  read -r pc ps <<<"${PROCS[$pair]}"
  rec "$pair" idle_rss_kb_client "${IDLE_RSS[$pc]}"; rec "$pair" idle_rss_kb_server "${IDLE_RSS[$ps]}"
  rec "$pair" idle_anon_kb_client "${IDLE_ANON[$pc]}"; rec "$pair" idle_anon_kb_server "${IDLE_ANON[$ps]}"
  rec "$pair" warm_rss_kb_client "$(rss_kb "$pc")"; rec "$pair" warm_rss_kb_server "$(rss_kb "$ps")"
  [ "$pair" = ztunnel ] && zt_mark
  coproc HOLD { ${RUN[$pair]} python3 "$here/l4/hold_conns.py" "${HOST[$pair]}" "${HPORT[$pair]}" "$CONNS"; }
  line=""; [ -n "${HOLD[0]:-}" ] && read -r -t 120 -u "${HOLD[0]}" line
  sleep 1
  rec "$pair" conns_rss_kb_client "$(rss_kb "$pc")"; rec "$pair" conns_rss_kb_server "$(rss_kb "$ps")"
  rec "$pair" hold_status "${line:-timeout}"
  [ "$pair" = ztunnel ] && zt_check hold
  log "$pair: $CONNS connections: ${line:-timeout}; RSS client $(rss_kb "$pc") kB server $(rss_kb "$ps") kB"
  [ -n "${HOLD[1]:-}" ] && eval "exec ${HOLD[1]}>&-"
  wait "${HOLD_PID:-}" 2>/dev/null
  sleep 1
done

# ---- loads ----
iperf_run() {  # PAIR
  local pair=$1 before after json split0
  split0=$(split_ticks "$pair")
  before=$(cpu_ticks ${PROCS[$pair]})
  json=$(${RUN[$pair]} timeout $((DUR + 20)) iperf3 -c "${HOST[$pair]}" -p "${IPORT[$pair]}" -t "$DUR" -J 2>/dev/null)
  after=$(cpu_ticks ${PROCS[$pair]})
  local gbps
  gbps=$(python3 -c 'import json,sys
try: print("%.4f" % (json.loads(sys.argv[1])["end"]["sum_received"]["bits_per_second"]/1e9))
except Exception: print("nan")' "$json")
  rec "$pair" iperf_gbps "$gbps"
  rec "$pair" iperf_cpu_s "$(awk -v t=$((after - before)) -v k="$clk" 'BEGIN{printf "%.2f", t/k}')"
  rec_split "$pair" iperf "$split0"
  log "$pair iperf3: $gbps Gbps"
}
wrk_run() {  # PAIR KIND(keepalive|newconn|latency1)
  local pair=$1 kind=$2 before after out hdr=() conns=50
  [ "$kind" = newconn ] && hdr=(-H "Connection: close")
  [ "$kind" = latency1 ] && conns=1
  local split0; split0=$(split_ticks "$pair")
  before=$(cpu_ticks ${PROCS[$pair]})
  out=$(${RUN[$pair]} timeout $((DUR + 20)) wrk -t1 -c"$conns" -d"${DUR}s" --latency "${hdr[@]}" "http://${HOST[$pair]}:${HPORT[$pair]}/" 2>&1)
  after=$(cpu_ticks ${PROCS[$pair]})
  echo "== $pair $kind" >> "$work/wrk.txt"; echo "$out" >> "$work/wrk.txt"
  local rps p99 reqs errs
  rps=$(awk '/^Requests\/sec/{print $2}' <<<"$out")
  reqs=$(awk '/requests in/{print $1}' <<<"$out")
  errs=$(awk '/Socket errors/{gsub(",","");s=0; for(i=3;i<=NF;i++) if ($i ~ /^[0-9]+$/) s+=$i; print s}' <<<"$out")
  pct() { awk -v q="$1" '$1==q{v=$2; if (v ~ /us$/) {sub("us","",v); v/=1000} else if (v ~ /ms$/) {sub("ms","",v)} else if (v ~ /s$/) {sub("s","",v); v*=1000}; printf "%.3f", v}'; }
  p99=$(pct 99% <<<"$out")
  rec "$pair" "${kind}_p50_ms" "$(pct 50% <<<"$out")"
  rec "$pair" "${kind}_rps" "${rps:-nan}"
  rec "$pair" "${kind}_p99_ms" "${p99:-nan}"
  rec "$pair" "${kind}_requests" "${reqs:-0}"
  rec "$pair" "${kind}_errors" "${errs:-0}"
  rec "$pair" "${kind}_cpu_s" "$(awk -v t=$((after - before)) -v k="$clk" 'BEGIN{printf "%.2f", t/k}')"
  rec_split "$pair" "$kind" "$split0"
  log "$pair $kind: ${rps:-fail} rps, p99 ${p99:-?} ms, ${errs:-0} socket errors"
}
for ((r = 1; r <= ROUNDS; r++)); do
  log "round $r/$ROUNDS"
  for load in ${LOADS:-iperf keepalive latency1 newconn}; do
    for pair in "${PAIRS[@]}"; do
      [ "$pair" = ztunnel ] && zt_mark
      if [ "$load" = iperf ]; then iperf_run "$pair"; else wrk_run "$pair" "$load"; fi
      [ "$pair" = ztunnel ] && { sleep 0.5; zt_check "$load"; }
      sleep 1
    done
  done
done
for pair in plain haproxy stunnel ztunnel; do
  read -r pc ps <<<"${PROCS[$pair]}"
  rec "$pair" after_rss_kb_client "$(rss_kb "$pc")"; rec "$pair" after_rss_kb_server "$(rss_kb "$ps")"
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)
t_end=$(date +%s)

# ---- PROFILE=1: syscall counts of each ztunnel per load (strace slows the run: counts, not timing) ----
if [ "${PROFILE:-0}" = 1 ] && command -v strace >/dev/null; then
  prof="$results/l4-profile.txt"
  { echo "# bench/l4.sh PROFILE=1, $(date -u '+%Y-%m-%d %H:%M UTC'): strace -c -f on each ztunnel while one"
    echo "# more ${DUR}s run of the load goes through the pair (strace slows it: read the counts per unit of work)"; } > "$prof"
  for load in iperf keepalive newconn; do
    sp=()
    for side in client server; do
      pid=$pid_zt_c; [ "$side" = server ] && pid=$pid_zt_s
      strace -c -f -q -p "$pid" -o "$work/strace-$side-$load.txt" & sp+=($!)
    done
    sleep 1
    case $load in
      iperf) w=$(inz iperf3 -c 127.0.0.3 -p 5201 -t "$DUR" 2>&1 | grep -E 'receiver$' | awk '{print $(NF-4), $(NF-3), "transferred,", $(NF-2), $(NF-1)}') ;;
      keepalive) w=$(inz wrk -t1 -c50 -d"${DUR}s" http://127.0.0.3:8080/ 2>&1 | grep -E 'requests in') ;;
      newconn) w=$(inz wrk -t1 -c50 -d"${DUR}s" -H 'Connection: close' http://127.0.0.3:8080/ 2>&1 | grep -E 'requests in') ;;
    esac
    for p in "${sp[@]}"; do kill -INT "$p" 2>/dev/null; done
    wait "${sp[@]}" 2>/dev/null
    for side in client server; do
      { echo; echo "## $load, $side ztunnel (load: $w)"; head -n 14 "$work/strace-$side-$load.txt"; } >> "$prof"
    done
  done
  log "profile: $prof"
fi
rec meta access_log_inbound "$(grep -c 'direction="inbound"' "$work/zt-server.log")"
rec meta access_log_outbound "$(grep -c 'direction="outbound"' "$work/zt-client.log")"
rec meta access_log_errors "$(cat "$work"/zt-*.log | grep -c 'error=')"
# Error kinds in the ztunnels' access logs (numbers and addresses folded), for the report.
for side in client server; do
  grep -o 'error=.*' "$work/zt-$side.log" | sed 's/[0-9][0-9.:]*/N/g' | sort | uniq -c | sort -rn | head -6 |
    while read -r n what; do rec meta "errors_$side" "$n $what"; done
done
rec meta zt_workers "$(grep -o '[0-9]* workers' "$work/zt-client.log" | head -1 | cut -d' ' -f1)"

python3 "$here/l4/report.py" --raw "$raw" --out "$results" --dur "$DUR" --rounds "$ROUNDS" --conns "$CONNS" \
  --load-start "$load_start" --load-end "$load_end" --seconds $((t_end - t_start))
