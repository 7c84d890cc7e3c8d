#!/usr/bin/env bash
# bench/l4/profile_one.sh [BUILD_DIR] — profile ONE ztunnel of the captured pair (same layout as bench/l4.sh)
# while one load runs through it. Manual diagnosis helper, not part of l4.sh's figures. Needs root.
#
#   SIDE=client|server     which ztunnel to profile (default client)
#   LOAD=keepalive|newconn|iperf   wrk -c50 keep-alive, wrk -c50 'Connection: close', iperf3 -n 256M
#   TOOL=callgrind         valgrind --tool=callgrind (default); prints the cost per shared object and the
#                          top inclusive functions; the profile stays in OUT/cg.out for callgrind_annotate
#   TOOL=rst               LD_PRELOAD bench/l4/rst_count.c (compiled here): counts RST_STREAM frames the
#                          ztunnel submits (nghttp2_submit_rst_stream), by error code
#   TOOL=perf              perf record -g on the running ztunnel while the load runs; prints the top
#                          self-cost symbols (perf report --stdio -i OUT/perf.data for the call graphs)
#   TOOL=none              just the load (iperf also records vmstat 1 in OUT/vmstat.txt)
#   DUR (5)  OUT (/tmp/l4-profile-SIDE-LOAD)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-build}
[[ "$build" = /* ]] || build="$here/../../$build"
ZT=${ZT:-"$build/ztunnel/ztunnel"}
SIDE=${SIDE:-client}; LOAD=${LOAD:-keepalive}; TOOL=${TOOL:-callgrind}; DUR=${DUR:-5}
OUT=${OUT:-/tmp/l4-profile-$SIDE-$LOAD}
[ "$(id -u)" = 0 ] || { echo "profile_one.sh: needs root" >&2; exit 1; }
rm -rf "$OUT"; mkdir -p "$OUT"
NS="bench-l4prof-$$"
ip netns add "$NS" || exit 1
cleanup() {
  for p in $(ip netns pids "$NS" 2>/dev/null); do kill "$p" 2>/dev/null; done
  sleep 1
  for p in $(ip netns pids "$NS" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
  ip netns del "$NS" 2>/dev/null
  wait 2>/dev/null
}
trap cleanup EXIT
trap 'exit 130' INT TERM
ip -n "$NS" link set lo up
ip netns exec "$NS" sysctl -qw net.ipv4.ip_local_port_range="1024 65000" net.ipv4.tcp_tw_reuse=1
"$build/ztunnel/hbone-demo" ca --out "$OUT/ca" >/dev/null || exit 1
cat > "$OUT/nginx.conf" <<EOF
worker_processes 1; daemon off; pid $OUT/nginx.pid; error_log $OUT/nginx.err;
events { worker_connections 8192; }
http { access_log off; server { listen 8080 reuseport backlog=4096; keepalive_requests 1000000;
  location / { return 200 "hello from backend\n"; } } }
EOF
ip netns exec "$NS" nginx -c "$OUT/nginx.conf" &
ip netns exec "$NS" iperf3 -s -p 5201 >/dev/null 2>&1 &
pre=()
case $TOOL in
  callgrind) pre=(valgrind --tool=callgrind "--callgrind-out-file=$OUT/cg.out") ;;
  rst) gcc -shared -fPIC -O2 -o "$OUT/rst_count.so" "$here/rst_count.c" -ldl || exit 1
       pre=(env "LD_PRELOAD=$OUT/rst_count.so") ;;
  none) ;;
  perf) command -v perf >/dev/null || { echo "profile_one.sh: perf not found" >&2; exit 1; } ;;
  *) echo "profile_one.sh: TOOL is callgrind, perf or rst" >&2; exit 1 ;;
esac
for s in server client; do
  ip=127.0.0.3; [ "$s" = client ] && ip=127.0.0.1
  p=(); [ "$s" = "$SIDE" ] && p=("${pre[@]}")
  ip netns exec "$NS" env LOCAL_XDS_PATH="$here/pair.yaml" PROXY_WORKLOAD_INFO="bench/$s/$s" CA_CERTS_DIR="$OUT/ca" \
    "${p[@]}" "$ZT" --bind "$ip" --admin "$ip:15000" --metrics "$ip:15020" --readiness "$ip:15021" \
    --packet-mark 1337 >"$OUT/$s.log" 2>&1 &
done
ip netns exec "$NS" iptables -t nat -A OUTPUT -p tcp -d 127.0.0.3 -m multiport --dports 5201,8080 \
  -m mark ! --mark 0x539 -j REDIRECT --to-ports 15001
for _ in $(seq 150); do
  ip netns exec "$NS" curl -fs --max-time 2 http://127.0.0.3:8080/ >/dev/null 2>&1 && break
  sleep 0.2
done
side_pid() {  # the ztunnel bound to SIDE's address
  local ip=127.0.0.3 p; [ "$SIDE" = client ] && ip=127.0.0.1
  for p in $(ip netns pids "$NS"); do
    [ "$(cat /proc/$p/comm 2>/dev/null)" = ztunnel ] && tr '\0' ' ' < /proc/$p/cmdline | grep -q -- "--bind $ip " && echo "$p"
  done
}
perf_pid=""
if [ "$TOOL" = perf ]; then
  perf record -F 1999 -g -p "$(side_pid)" -o "$OUT/perf.data" >/dev/null 2>&1 & perf_pid=$!
  sleep 0.3
fi
case $LOAD in
  keepalive) ip netns exec "$NS" wrk -t1 -c50 -d"${DUR}s" http://127.0.0.3:8080/ | grep -E 'requests in|errors' ;;
  newconn) ip netns exec "$NS" wrk -t1 -c50 -d"${DUR}s" -H 'Connection: close' http://127.0.0.3:8080/ | grep -E 'requests in|errors' ;;
  iperf) (vmstat 1 "$DUR" > "$OUT/vmstat.txt" &)
         lo0=$(ip -n "$NS" -s -j link show lo)
         zt_ticks() { local t=0 p; for p in $(ip netns pids "$NS"); do
             [ "$(cat /proc/$p/comm 2>/dev/null)" = ztunnel ] && t=$((t + $(awk '{sub(/.*\) /,""); print $12+$13}' /proc/$p/stat))); done; echo $t; }
         t0=$(zt_ticks)
         ip netns exec "$NS" iperf3 -c 127.0.0.3 -t "$DUR" -J > "$OUT/iperf.json"
         python3 -c 'import json,sys
j=json.load(open(sys.argv[1]))["end"]["sum_received"]; gb=j["bytes"]/1e9
print("iperf: %.2f Gbits/sec receiver, %d bytes; both ztunnels %.3f CPU s/GB" % (j["bits_per_second"]/1e9, j["bytes"], (int(sys.argv[3])-int(sys.argv[2]))/100.0/gb))' \
           "$OUT/iperf.json" "$t0" "$(zt_ticks)"
         python3 -c 'import json,sys
a,b=(json.loads(x)[0]["stats64"]["tx"] for x in sys.argv[1:])
p,n=b["packets"]-a["packets"],b["bytes"]-a["bytes"]
print("lo: %d packets, %.0f bytes per packet" % (p, n/max(p,1)))' "$lo0" "$(ip -n "$NS" -s -j link show lo)" ;;
esac
if [ -n "$perf_pid" ]; then
  kill -INT "$perf_pid"; wait "$perf_pid" 2>/dev/null
  perf report --stdio --no-children --sort dso,sym -i "$OUT/perf.data" 2>/dev/null | grep -E '^ +[0-9.]+%' | head -40 | cut -c1-150
  exit 0
fi
sleep 0.5
echo "connections: $(grep -c 'connection complete' "$OUT/$SIDE.log") in the $SIDE ztunnel's access log"
ip=127.0.0.3; [ "$SIDE" = client ] && ip=127.0.0.1
zpid=""
for p in $(ip netns pids "$NS"); do
  [ "$(cat /proc/$p/comm 2>/dev/null)" != nginx ] && tr '\0' ' ' < /proc/$p/cmdline | grep -q -- "--bind $ip " && zpid=$p
done
[ "$TOOL" = none ] && exit 0
if [ "$TOOL" = rst ]; then
  kill -USR2 "$zpid"; sleep 0.5; grep 'rst_stream' "$OUT/$SIDE.log"
  exit 0
fi
ip netns exec "$NS" curl -s -XPOST "http://$ip:15000/quitquitquit" >/dev/null
for _ in $(seq 60); do kill -0 "$zpid" 2>/dev/null || break; sleep 0.5; done
callgrind_annotate --inclusive=no --threshold=100 "$OUT/cg.out" 2>/dev/null | python3 -c '
import collections, re, sys
cost = collections.Counter()
for line in sys.stdin:
    m = re.match(r"\s*([\d,]+) \([\s\d.]+%\)\s+(.*)\[(.*)\]\s*$", line)
    if m:
        cost[m.group(3).split("/")[-1]] += int(m.group(1).replace(",", ""))
total = sum(cost.values()) or 1
print("instructions: %d" % total)
for obj, n in cost.most_common(10):
    print("%5.1f%%  %s" % (100.0 * n / total, obj))'
echo "-- top inclusive (callgrind_annotate --inclusive=yes $OUT/cg.out for all) --"
callgrind_annotate --inclusive=yes "$OUT/cg.out" 2>/dev/null | grep -E '^ *[0-9,]+ \(' | grep -E 'ambient::|nghttp2_session|SSL_|fmt::|malloc|free' |
  head -25 | cut -c1-160
