#!/usr/bin/env bash
# bench/hardening.sh [BUILD_DIR] — issue 8's storm, fault cases and soak against a real ztunnel pair whose
# state and certificates come from fake-istiod (bench/hardening/run.py says what each case does and checks).
#
# Needs root: it creates the network namespace bench-hard-<pid> (lo only, nothing leaves it), runs
# run.py inside it and deletes it (with anything still running there) at the end.
#
#   bench/hardening.sh                     build/ (the plain build): the numbers of the report
#   bench/hardening.sh build-ci            the sanitized build: SOAK_SECONDS short, the logs must hold no
#                                          ASan/LSan/UBSan report after a graceful stop
# Environment: CASES (default all: storm,kill_peer,backend_rst,cp_loss,cert_expiry,drain,soak),
#              STORM_CONNS (20000), SOAK_SECONDS (600), CERT_TTL (90 s), RESULTS_DIR (bench/results),
#              KEEP=1 keeps the work directory (process logs), KEEP_OTHER_CASES=1 keeps the results of the
#              cases not in CASES in the report (re-running one case).
# Results: RESULTS_DIR/hardening.json, hardening.md, hardening.svg. Exit status 1 when a check failed.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-build}
[[ "$build" = /* ]] || build="$here/../$build"
results=${RESULTS_DIR:-$here/results}
[ "$(id -u)" = 0 ] || { echo "hardening.sh: needs root (network namespace, iptables)" >&2; exit 1; }
for tool in ip iptables python3 openssl nm; do
  command -v "$tool" >/dev/null || { echo "hardening.sh: $tool not found (setup.sh installs it)" >&2; exit 1; }
done

work=$(mktemp -d /tmp/bench-hard.XXXXXX)
NS="bench-hard-$$"
cleanup() {
  trap - EXIT INT TERM
  if ip netns list | grep -qw "$NS"; then
    for p in $(ip netns pids "$NS" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
    ip netns del "$NS" 2>/dev/null
  fi
  if [ "${KEEP:-0}" = 1 ]; then echo "hardening.sh: work dir kept: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ip netns add "$NS" || { echo "hardening.sh: ip netns add $NS failed" >&2; exit 1; }
ip -n "$NS" link set lo up
# 20,000 connections through the pair use about 60,000 local ports on lo; the closes leave TIME_WAIT.
ip netns exec "$NS" sysctl -qw net.ipv4.ip_local_port_range="1024 65000" net.ipv4.tcp_tw_reuse=1 \
  net.core.somaxconn=8192 net.ipv4.tcp_max_syn_backlog=8192
ip netns exec "$NS" python3 "$here/hardening/run.py" --build "$build" --work "$work" --out "$results" \
  --cases "${CASES:-storm,kill_peer,backend_rst,cp_loss,cert_expiry,drain,soak}" \
  --storm-conns "${STORM_CONNS:-20000}" --soak-seconds "${SOAK_SECONDS:-600}" --cert-ttl "${CERT_TTL:-90}" \
  ${KEEP_OTHER_CASES:+--keep-other-cases}
