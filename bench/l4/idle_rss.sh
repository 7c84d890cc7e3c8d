#!/usr/bin/env bash
# bench/l4/idle_rss.sh [BUILD_DIR] — ztunnel's resident memory, idle and warm, measured as bench/l4.sh does.
# Manual diagnosis helper, not part of l4.sh's figures. Needs root (one network namespace, iptables).
#
# Same layout as l4.sh's ztunnel pair: netns with nginx on 8080, server ztunnel --bind 127.0.0.3, client
# ztunnel --bind 127.0.0.1, both --packet-mark 1337, iptables REDIRECT of 127.0.0.3:8080 to 15001.
#   idle: both ready (/healthz/ready 200), +0.5 s as in l4.sh, nothing proxied yet
#   warm: after one request through the pair (curl 127.0.0.3:8080: client -> HBONE -> server -> nginx)
# Prints VmRSS, RssAnon, RssFile (kB) of both ztunnels and the client's top mappings by Rss (smaps).
#   TOP (12): mappings to print;  VMAS=1: also every mapping (Size and Rss per VMA);  KEEP=1: keep the work dir
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-build}
[[ "$build" = /* ]] || build="$here/../../$build"
ZT="$build/ztunnel/ztunnel"
TOP=${TOP:-12}
[ "$(id -u)" = 0 ] || { echo "idle_rss.sh: needs root" >&2; exit 1; }
for b in "$ZT" "$build/ztunnel/hbone-demo"; do
  [ -x "$b" ] || { echo "idle_rss.sh: $b not found; build: ninja -C $build ztunnel hbone_demo" >&2; exit 1; }
done
work=$(mktemp -d /tmp/idle-rss.XXXXXX)
NS="bench-rss-$$"
ip netns add "$NS" || { rm -rf "$work"; exit 1; }
cleanup() {
  trap - EXIT INT TERM
  # Everything inside the netns was started by this script.
  for p in $(ip netns pids "$NS" 2>/dev/null); do kill "$p" 2>/dev/null; done
  for _ in $(seq 20); do [ -z "$(ip netns pids "$NS" 2>/dev/null)" ] && break; sleep 0.1; done
  for p in $(ip netns pids "$NS" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
  ip netns del "$NS" 2>/dev/null
  wait 2>/dev/null
  if [ "${KEEP:-0}" = 1 ]; then echo "idle_rss.sh: work dir kept: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
inz() { ip netns exec "$NS" "$@"; }
fail() { echo "idle_rss.sh: $*" >&2; tail -n 5 "$work"/*.log >&2; exit 1; }
ip -n "$NS" link set lo up
"$build/ztunnel/hbone-demo" ca --out "$work/ca" >/dev/null || exit 1
cat > "$work/nginx.conf" <<EOF
worker_processes 1; daemon off; pid $work/nginx.pid; error_log $work/nginx.err;
events { worker_connections 1024; }
http { access_log off; server { listen 8080; location / { return 200 "hello from backend\n"; } } }
EOF
inz nginx -c "$work/nginx.conf" >/dev/null 2>&1 &
declare -A PID=()
for s in server client; do
  ip=127.0.0.3; [ "$s" = client ] && ip=127.0.0.1
  # ip netns exec (not the inz function) so that $! is the ztunnel itself, as in l4.sh
  ip netns exec "$NS" env LOCAL_XDS_PATH="$here/pair.yaml" PROXY_WORKLOAD_INFO="bench/$s/$s" \
    CA_CERTS_DIR="$work/ca" "$ZT" --bind "$ip" --admin "$ip:15000" --metrics "$ip:15020" \
    --readiness "$ip:15021" --packet-mark 1337 >"$work/$s.log" 2>&1 &
  PID[$s]=$!
done
inz iptables -t nat -A OUTPUT -p tcp -d 127.0.0.3 --dport 8080 -m mark ! --mark 0x539 \
  -j REDIRECT --to-ports 15001 || fail "iptables REDIRECT failed"
ready=0
for _ in $(seq 50); do
  if inz curl -fs http://127.0.0.3:15021/healthz/ready >/dev/null 2>&1 &&
     inz curl -fs http://127.0.0.1:15021/healthz/ready >/dev/null 2>&1; then ready=1; break; fi
  sleep 0.1
done
sleep 0.5  # as l4.sh
[ $ready = 1 ] || fail "ztunnels not ready"
for s in server client; do
  [ "$(cat "/proc/${PID[$s]}/comm" 2>/dev/null)" = ztunnel ] || fail "the $s process is not a ztunnel"
done

status() {  # LABEL: one line per ztunnel
  local s
  for s in client server; do
    awk -v l="$1" -v s="$s" '/^(VmRSS|RssAnon|RssFile):/ { v[$1] = $2 }
      END { printf "%-5s %-6s VmRSS %6d kB  RssAnon %5d kB  RssFile %5d kB\n",
            l, s, v["VmRSS:"], v["RssAnon:"], v["RssFile:"] }' "/proc/${PID[$s]}/status"
  done
}
top_maps() {  # PID: Rss per mapped object (its mappings summed), largest first; VMAS=1: every mapping
  awk '/^[0-9a-f]+-[0-9a-f]+ / { name = ($6 == "") ? "[anon]" : $6 }
    /^Rss:/ { rss[name] += $2 }
    END { for (n in rss) printf "%8d kB  %s\n", rss[n], n }' "/proc/$1/smaps" | sort -rn | head -n "$TOP"
  [ "${VMAS:-0}" = 1 ] || return 0
  awk '/^[0-9a-f]+-[0-9a-f]+ / { perm = $2; name = ($6 == "") ? "[anon]" : $6 }
    /^Size:/ { size = $2 }
    /^Rss:/ { printf "  %s size %7d kB  rss %6d kB  %s\n", perm, size, $2, name }' "/proc/$1/smaps"
}

status idle
echo "-- client ztunnel, idle: Rss by mapping (smaps) --"
top_maps "${PID[client]}"
out=$(inz curl -fs --max-time 5 http://127.0.0.3:8080/)
[ "$out" = "hello from backend" ] || fail "request through the pair failed ('$out')"
sleep 0.5
grep -q 'connection complete' "$work/client.log" || fail "the request did not go through the client ztunnel"
status warm
echo "-- client ztunnel, warm: Rss by mapping (smaps) --"
top_maps "${PID[client]}"
