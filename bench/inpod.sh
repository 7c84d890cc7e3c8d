#!/usr/bin/env bash
# bench/inpod.sh [BUILD_DIR] — issue 5's enrollment benchmark (root: network namespaces, iptables).
# One node: a ztunnel in shared (in-pod) mode and the node agent (cni-agent), PODS=100 client pods and one
# server pod as network namespaces on a bridge. Each client reaches the server through a service VIP that only
# the mesh can route (a REJECT for the VIP range that the in-pod REDIRECT bypasses), so the first echo through
# the VIP is the pod's first HBONE connection.
#
# Measures
#   single   enroll request -> first HBONE connection for one pod (REPEAT=20 rounds: enroll, probe, unenroll)
#   batch    the same for all PODS pods enrolled at once (concurrent requests): p50 and the time until all have one
#   memory   ztunnel VmRSS with only the server pod, then with every client pod enrolled and idle (no traffic yet):
#            (after - before) / PODS = RSS per idle enrolled pod (each pod has its own service account, so its
#            own certificate: the worst case)
# Targets (issue 5): single p50 <= 50 ms; 100 pods <= 2 s; <= 150 KB RSS per idle enrolled pod.
# Results: bench/results/inpod.json and inpod.md.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-build}
[[ "$build" = /* ]] || build="$here/../$build"
PODS=${PODS:-100}
REPEAT=${REPEAT:-20}
results=${RESULTS_DIR:-$here/results}
ZT="$build/ztunnel/ztunnel"; AGENT="$build/cni/agent/cni-agent"; BENCH="$build/bench/bench-inpod-enroll"; DEMO="$build/ztunnel/hbone-demo"
[ "$(id -u)" -eq 0 ] || { echo "inpod.sh: needs root (network namespaces, iptables)" >&2; exit 1; }
for b in "$ZT" "$AGENT" "$BENCH" "$DEMO"; do
  [ -x "$b" ] || { echo "inpod.sh: $b not found; build it: ninja -C $build ztunnel cni_agent bench-inpod-enroll hbone_demo" >&2; exit 1; }
done
mkdir -p "$results"
work=$(mktemp -d /tmp/bench-inpod.XXXXXX)
tag="bi$$"
pids=()
namespaces=()
cleanup() {
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  for n in "${namespaces[@]:-}"; do [ -n "$n" ] && ip netns del "$n" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT
log() { echo "# $*" >&2; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# --- the node: a bridge, the server pod, the client pods ---------------------------------------------------
fabric="$tag-fab"
ip netns add "$fabric" && namespaces+=("$fabric")
ip -n "$fabric" link add br0 type bridge && ip -n "$fabric" link set br0 up
add_pod() {  # name ip
  ip netns add "$1" && namespaces+=("$1")
  ip -n "$1" link set lo up
  ip link add eth0 netns "$1" type veth peer name "v$3" netns "$fabric"
  ip -n "$fabric" link set "v$3" master br0 && ip -n "$fabric" link set "v$3" up
  ip -n "$1" addr add "$2/16" dev eth0 && ip -n "$1" link set eth0 up
}
log "creating $PODS client pods and a server pod"
add_pod "$tag-srv" 10.82.0.2 s
: >"$work/pods.txt"
{
  echo "workloads:"
  echo "- {uid: Kubernetes//Pod/bench/server, name: server, namespace: bench, serviceAccount: server, workloadIps: [\"10.82.0.2\"], protocol: HBONE, services: {\"bench/echo.bench.svc.cluster.local\": {80: 8080}}}"
} >"$work/mesh.yaml"
for i in $(seq 1 "$PODS"); do
  ip_addr="10.82.$((i / 250 + 1)).$((i % 250 + 1))"
  name="$tag-c$i"
  add_pod "$name" "$ip_addr" "c$i"
  # The VIP range: routed out of eth0, but refused at once unless the in-pod REDIRECT took the connection first.
  ip -n "$name" route add 10.96.0.0/12 dev eth0
  ip netns exec "$name" iptables -A OUTPUT -d 10.96.0.0/12 -p tcp -j REJECT --reject-with tcp-reset
  echo "uid-c$i client-$i bench sa-$i /var/run/netns/$name $ip_addr" >>"$work/pods.txt"
  echo "- {uid: Kubernetes//Pod/bench/client-$i, name: client-$i, namespace: bench, serviceAccount: sa-$i, workloadIps: [\"$ip_addr\"], protocol: HBONE}" >>"$work/mesh.yaml"
done
cat >>"$work/mesh.yaml" <<'YAML'
services:
- {name: echo, namespace: bench, hostname: echo.bench.svc.cluster.local, vips: ["/10.96.0.10"], ports: {80: 8080}}
YAML

# --- the node agent and ztunnel ------------------------------------------------------------------------------
"$DEMO" ca --out "$work/cacerts" >/dev/null
"$AGENT" run --zds-socket "$work/zds.sock" --api-socket "$work/agent.sock" --state-dir "$work/state" --log-level info \
  >"$work/agent.log" 2>&1 &
pids+=($!)
"$ZT" --proxy-mode shared --inpod-uds "$work/zds.sock" --local-config "$work/mesh.yaml" --cacerts "$work/cacerts" \
  --worker-threads 2 --socks5 false --admin 127.0.0.1:0 --metrics 127.0.0.1:0 --readiness 127.0.0.1:0 --log-level warn \
  >"$work/ztunnel.log" 2>&1 &
ztpid=$!
pids+=($ztpid)
for _ in $(seq 1 100); do [ -S "$work/agent.sock" ] && break; sleep 0.1; done
"$AGENT" enroll --api-socket "$work/agent.sock" --uid uid-server --name server --namespace bench \
  --service-account server --netns "/var/run/netns/$tag-srv" --ips 10.82.0.2 >/dev/null || { cat "$work/agent.log" "$work/ztunnel.log" >&2; exit 1; }
sleep 1
common=(--api "$work/agent.sock" --pods "$work/pods.txt" --vip 10.96.0.10:80 --echo-netns "/var/run/netns/$tag-srv" --echo-addr 10.82.0.2:8080)

# --- memory: every client enrolled, idle -----------------------------------------------------------------
rss_before=$(rss_kb "$ztpid")
"$BENCH" "${common[@]}" --mode enroll >"$work/enroll.json" || exit 1
sleep 2
rss_enrolled=$(rss_kb "$ztpid")
"$BENCH" "${common[@]}" --mode unenroll >/dev/null || exit 1
log "RSS: ${rss_before} kB with the server pod, ${rss_enrolled} kB with $PODS more pods enrolled and idle"

# --- latency: one pod at a time, then all at once ----------------------------------------------------------
"$BENCH" "${common[@]}" --mode single --repeat "$REPEAT" >"$work/single.json" || exit 1
log "single: $(cat "$work/single.json")"
"$BENCH" "${common[@]}" --mode batch >"$work/batch.json" || exit 1
log "batch: $(cat "$work/batch.json")"
rss_used=$(rss_kb "$ztpid")

python3 - "$work" "$results" "$PODS" "$rss_before" "$rss_enrolled" "$rss_used" <<'PY'
import json, sys, time
work, results, pods, before, enrolled, used = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
single = json.load(open(f"{work}/single.json")); batch = json.load(open(f"{work}/batch.json"))
per_pod_kb = (enrolled - before) / pods
# The agent's own split per enrollment, in order: the server pod, the memory phase, the single rounds, the batch.
import re, statistics
timing = [(float(a), float(b)) for a, b in re.findall(r"timing: rules ([0-9.]+) ms, ztunnel ([0-9.]+) ms", open(f"{work}/agent.log").read())]
rounds = len(single["first_hbone_ms"])
single_split = timing[1 + pods:1 + pods + rounds]
split = {"rules_p50_ms": statistics.median(t[0] for t in single_split), "ztunnel_p50_ms": statistics.median(t[1] for t in single_split)} if single_split else {}
out = {
  "date": time.strftime("%Y-%m-%d %H:%M:%S"), "pods": pods,
  "single": {"p50_ms": single["p50_ms"], "p90_ms": single["p90_ms"], "max_ms": single["max_ms"], "failures": single["failures"],
             "samples_ms": single["first_hbone_ms"], "enroll_answer_ms": single["enroll_answer_ms"]},
  "batch": {"p50_ms": batch["p50_ms"], "all_ms": batch["all_ms"], "enroll_answers_all_ms": batch["enroll_answers_all_ms"], "failures": batch["failures"]},
  "single_agent_split": split,
  "rss_kb": {"server_only": before, "all_enrolled_idle": enrolled, "after_traffic": used, "per_idle_pod_kb": round(per_pod_kb, 1)},
  "targets": {"single_p50_ms": 50, "batch_all_ms": 2000, "per_idle_pod_kb": 150},
}
out["met"] = {"single_p50": 0 <= single["p50_ms"] <= 50, "batch_all": 0 <= batch["all_ms"] <= 2000, "per_idle_pod": per_pod_kb <= 150}
json.dump(out, open(f"{results}/inpod.json", "w"), indent=2)
def ratio(v, lim): return f"{v / lim:.2f}x of the limit"
md = f"""# In-pod enrollment (bench/inpod.sh, {out['date']})

One node: ztunnel (shared mode, 2 workers) + cni-agent (iptables rules), {pods} client pods and a server pod as network
namespaces on a bridge. Time zero: the enroll request to the agent's API socket. Done: the pod's first echo through a
service VIP that only the mesh routes (its first HBONE connection).

| measure | value | target | ratio |
|---|---|---|---|
| one pod, p50 (of {len(single['first_hbone_ms'])}) | {single['p50_ms']:.1f} ms (p90 {single['p90_ms']:.1f}, max {single['max_ms']:.1f}) | <= 50 ms | {ratio(single['p50_ms'], 50)} |
| {pods} pods at once, all connected | {batch['all_ms']:.0f} ms (p50 {batch['p50_ms']:.0f} ms; all enroll answers {batch['enroll_answers_all_ms']:.0f} ms) | <= 2000 ms | {ratio(batch['all_ms'], 2000)} |
| ztunnel RSS per idle enrolled pod | {per_pod_kb:.1f} KB ({before} kB -> {enrolled} kB for {pods} pods) | <= 150 KB | {ratio(per_pod_kb, 150)} |

One pod, inside the agent (p50 of the single rounds): in-pod rules {split.get('rules_p50_ms', -1):.1f} ms, ZDS Add until
ztunnel's ack (its listeners bound in the pod netns on every worker) {split.get('ztunnel_p50_ms', -1):.1f} ms.
After the batch's traffic (a pooled HBONE connection per pod): {used} kB.
"""
open(f"{results}/inpod.md", "w").write(md)
print(md)
PY
