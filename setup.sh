#!/usr/bin/env bash
# setup.sh: install every Debian package the project needs to build, test and benchmark.
# Idempotent: skips apt entirely when everything is already installed; runs `apt-get update` at most once.
set -euo pipefail

PACKAGES=(
  # toolchain
  build-essential cmake ninja-build pkg-config git clang libclang-rt-14-dev llvm
  # libraries (see ../shared/DESIGN.md section 2)
  libboost1.81-dev android-libboringssl-dev libnghttp2-dev
  libprotobuf-dev protobuf-compiler libgrpc++-dev protobuf-compiler-grpc
  libfmt-dev libspdlog-dev libyaml-cpp-dev doctest-dev libbenchmark-dev
  # test and benchmark peers
  iproute2 iptables nftables procps psmisc openssl haproxy nginx stunnel4 wrk iperf3 nghttp2-client python3
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PACKAGES[@]} packages present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done"
